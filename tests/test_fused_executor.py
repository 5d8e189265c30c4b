"""The fused executor's bookkeeping on the CPU: with its kernels evaluated by the arrays' own
namespace (:class:`~rnnx._backend._fused.ReferenceKernels`, the same graphs the CUDA kernels
compute), every result of every cell-test case — states, outputs, every gradient, the
per-step observer — equals the eager loop's bit for bit, on NumPy and on array-api-strict's
second device; the LN-LSTM falls back to the eager loop; and a step costs its products plus one
kernel per stage."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import forced_executor, from_host, get_namespace
from rnnx._backend._fuse_kernels import At, ReferenceKernels, evaluate, kernel_source, view
from rnnx._backend._fused import Fused
from rnnx.functional.registry import CELLS
from rnnx.testing import assert_close, assert_equal, calls_per_step, recurrence_rtol
from rnnx.testing import counting as counting_module
from rnnx.testing.agreement import cell_variants

from ._fuse_cases import (
    FUSABLE,
    HostKernels,
    executor_cases,
    executor_graphs,
    run_executor_case,
    use_executor,
)

ALL_VARIANTS = list(cell_variants())
CASES = executor_cases()


def _compare(spec, options, put, dtype, cases, dev=None):
    fused = Fused(ReferenceKernels())
    for case in cases:
        with forced_executor("eager"):
            want = run_executor_case(spec, options, case, put, dtype)
        before = fused.kernels.launches
        with use_executor(fused):
            got = run_executor_case(spec, options, case, put, dtype)
        assert set(got) == set(want), case
        for name in want:
            assert_equal(got[name], want[name], err_msg=f"{spec.name} {options} {case}: {name}")
            if dev is not None:
                assert device_of(got[name]) == dev, (case, name)
        ran = fused.kernels.launches - before
        if spec.name in FUSABLE:
            # per step, per stage: one kernel forward and one backward
            assert ran == 2 * len(spec.step.forward) * case.shape[1], case
        else:
            assert ran == 0, case
    return fused


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=[v[0] for v in ALL_VARIANTS])
def test_fused_equals_eager_bit_for_bit_on_numpy(variant, dtype):
    """Every case of the cell tests (shapes, initial states, final-state gradients), three
    masks (lengths, left padding, holes and an empty sample) with per-step, last-state and no
    output gradients, the observer, a workspace: the fused executor's results are the eager
    loop's, bit for bit (same operations in the same order: the GEMMs are the same calls, the
    graphs evaluate the stages' operations, the sums of the backward run in the loop's order)."""
    _, spec, options = variant
    xp = get_namespace("numpy")
    fused = _compare(spec, options, lambda a, dt=None: from_host(a, xp=xp, dtype=dt),
                     getattr(xp, dtype), CASES)
    if spec.name in FUSABLE:
        assert fused.fallbacks == {}
    else:
        assert set(fused.fallbacks) == {f"{spec.name}_step", f"{spec.name}_step_backward"}


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=[v[0] for v in ALL_VARIANTS])
def test_fused_on_the_strict_second_device(variant):
    """array-api-strict's ``device1`` (the accelerator stand-in: arrays refuse to mix with the
    default device's): every buffer, constant and result of the fused executor is made there,
    and equals the eager loop's."""
    _, spec, options = variant
    xp = get_namespace("array_api_strict")
    dev = xp.Device("device1")
    cases = [c for c in CASES if c.mask is not None or c.name.startswith("long")]
    _compare(spec, options, lambda a, dt=None: from_host(a, xp=xp, dtype=dt, device=dev),
             xp.float64, cases, dev)


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    """:class:`HostKernels` with every executor graph's kernel built (float and double)."""
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler on PATH: the kernels' C is not run on the host here")
    kernels = HostKernels(tmp_path_factory.mktemp("kernels"))
    kernels.build([kernel_source(g, c) for _, g in executor_graphs() for c in ("float", "double")])
    return kernels


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", [v for v in ALL_VARIANTS if v[1].name in FUSABLE],
                         ids=[v[0] for v in ALL_VARIANTS if v[1].name in FUSABLE])
def test_fused_with_the_kernels_c_on_the_host(variant, dtype, host_kernels):
    """The GPU's launch path on the CPU: the kernels' own C compiled for the host and called
    with the arguments the CuPy launcher computes (slots of the time-major buffers by address
    and strides). Every case's results equal the eager loop's to the case's rounding bound
    (:func:`rnnx.testing.recurrence_rtol`, relative to each array's largest magnitude): the
    only difference is the C library's tanh against NumPy's, a few ulp, which the bound's
    safety factor covers (tests/test_fused_cupy.py argues the same bound on the GPU)."""
    _, spec, options = variant
    xp = get_namespace("numpy")
    dt = getattr(xp, dtype)
    fused = Fused(host_kernels)

    def put(a, d=None):
        return from_host(a, xp=xp, dtype=d)

    for case in CASES:
        with forced_executor("eager"):
            want = run_executor_case(spec, options, case, put, dt)
        before = host_kernels.launches
        with use_executor(fused):
            got = run_executor_case(spec, options, case, put, dt)
        assert host_kernels.launches - before == 2 * len(spec.step.forward) * case.shape[1]
        batch, time, features, hidden = case.shape
        rtol = recurrence_rtol(dt, xp, batch=batch, time=time, features=features, hidden=hidden,
                               gain=spec.rounding_gain)
        for name, ref in want.items():
            scale = float(np.max(np.abs(ref)))
            assert_close(got[name], ref, rtol=0.0, atol=rtol * scale,
                         err_msg=f"{case}: {name} host-compiled kernels against eager")


class _StrictKernels(ReferenceKernels):
    """The graphs evaluated on array-api-strict arrays' NumPy storage: the stand-in for one
    kernel launch, whose own operations the call counter does not see (on a GPU they are one
    kernel)."""

    def launch(self, graph, inputs, outputs, **kw):
        self.launches += 1
        np_xp = get_namespace("numpy")
        def storage(a):  # the NumPy view an argument stands for, made without a counted call
            return view(At(a.array._array, a.axis, a.index)) if isinstance(a, At) else a._array

        arrays = {}
        for src, kind, _, _ in graph.inputs:
            a = storage(inputs[src])
            arrays[src] = a[:, None] if kind == "col" and a.ndim == 1 else a
        values = evaluate(graph, arrays, xp=np_xp, hidden=kw["hidden"], float_dtype=np.float32)
        for (_, blocks), out in zip(values, outputs):
            h, out = kw["hidden"], storage(out)
            for k, b in enumerate(blocks):
                out[:, k * h:(k + 1) * h] = b


def fused_calls_per_step(spec, options, masked, monkeypatch):
    """``{"forward": (calls, launches), "backward": ...}`` per time step of ``spec`` on the fused
    executor: array-API calls counted by :func:`rnnx.testing.count_calls` (the GEMMs, views,
    anything the executor does) plus one launch per kernel."""
    fused = Fused(_StrictKernels())
    real_count = counting_module.count_calls

    @contextlib.contextmanager
    def with_kernels(xp=None):
        before = fused.kernels.launches
        with real_count(xp) as c:
            yield c
        c.by_name["kernel"] += fused.kernels.launches - before

    monkeypatch.setattr(counting_module, "forced_executor", lambda name: use_executor(fused))
    monkeypatch.setattr(counting_module, "count_calls", with_kernels)
    got = calls_per_step(spec, masked=masked, options=options, executor="fused")
    return {k: (v.per_step, v.launches, v.by_name) for k, v in got.items()}


# Calls and launches per time step on the fused executor, gradient at every step, plain and
# with a lengths mask (batch 2, hidden 16, float32): per stage, each way, one view (the
# product's operand: a slot of a time-major buffer), one product (`@`) and one kernel; the
# kernels take every other slot (u_t, the states of steps t-1 and t, the saved arrays, dhs_t,
# the mask columns) by address, without a view. The eager loop's calls/launches
# (tests/test_testing_counting.EXPECTED_STEP), forward/backward: rnn-tanh 5/4 and 9/6 (masked
# 7/5, 14/9), lstm 31/26 and 35/27 (34/28, 44/33), gru 31/24 and 29/23 (33/25, 34/26),
# gru_reset_before 33/24 and 31/26 (35/25, 36/29).
EXPECTED_FUSED = {
    ("rnn-tanh", False): ((3, 2), (3, 2)),
    ("rnn-tanh", True): ((3, 2), (3, 2)),
    ("rnn-relu", False): ((3, 2), (3, 2)),
    ("rnn-relu", True): ((3, 2), (3, 2)),
    ("lstm", False): ((3, 2), (3, 2)),
    ("lstm", True): ((3, 2), (3, 2)),
    ("gru", False): ((3, 2), (3, 2)),
    ("gru", True): ((3, 2), (3, 2)),
    ("gru_reset_before", False): ((6, 4), (6, 4)),
    ("gru_reset_before", True): ((6, 4), (6, 4)),
}


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("variant", [v for v in ALL_VARIANTS if v[1].name in FUSABLE],
                         ids=[v[0] for v in ALL_VARIANTS if v[1].name in FUSABLE])
def test_launches_per_step(variant, masked, monkeypatch):
    """Counted, not mocked: the executor runs on array-api-strict under
    :func:`rnnx.testing.count_calls`, each kernel a launch of its own."""
    label, spec, options = variant
    got = fused_calls_per_step(spec, options, masked, monkeypatch)
    stages = len(spec.step.forward)
    for direction in ("forward", "backward"):
        _, _, by_name = got[direction]
        assert by_name.get("kernel") == stages == by_name.get("__matmul__"), (direction, by_name)
        assert set(by_name) == {"kernel", "__matmul__", "__getitem__"}, (direction, by_name)
    assert (got["forward"][:2], got["backward"][:2]) == EXPECTED_FUSED[(label, masked)]


def test_layer_norm_cell_runs_eagerly_under_the_fused_executor():
    spec = CELLS["ln_lstm"]
    fused = Fused(ReferenceKernels())
    xp = get_namespace("numpy")
    case = executor_cases()[4]
    with use_executor(fused):
        run_executor_case(spec, {}, case, lambda a, dt=None: from_host(a, xp=xp, dtype=dt),
                          xp.float64)
    assert fused.kernels.launches == 0
    assert "xp.mean" in fused.fallbacks["ln_lstm_step"]
