"""The fused executor on CuPy (needs a CUDA device; skipped with the reason elsewhere): its CUDA
kernels, compiled from the cells' own steps, give the eager loop's states, outputs, every
gradient and the per-step observer on every case of the cell tests, to rounding; one kernel per
stage per step and direction runs; a wrong kernel argument is refused before launch.

Bound. Both executors do the same operations in the same dtype; the kernels are compiled
without fused multiply-add, so each ``*``/``+`` rounds as CuPy's one-operation kernels round it,
and their ``tanh``/``exp`` are the CUDA math library's, as CuPy's own. What may differ: the
recurrent GEMM's cuBLAS kernel (the fused loop's operand is a slice of the state buffer, the
eager loop's a fresh array: another alignment can pick another kernel, another summation
order) and nothing else. Each result is then within the rounding bound of the case
(:func:`rnnx.testing.recurrence_rtol`, with the cell's ``rounding_gain``) of exact arithmetic,
and the two are compared with that bound relative to each array's largest magnitude, as the
tuned NumPy forms are against the readable step (tests/_cells.check_tuned_against_step).
Run with ``-rP`` to see the measured deviations in units of the bound.
"""

from __future__ import annotations

import pytest

from rnnx._backend import forced_executor, from_host
from rnnx._backend._fuse_kernels import CupyKernels
from rnnx._backend._fused import Fused
from rnnx.testing import assert_close, assert_equal, recurrence_rtol
from rnnx.testing.agreement import cell_variants

from ._fuse_cases import FUSABLE, executor_cases, run_executor_case, use_executor
from .conftest import _resolve

ALL_VARIANTS = list(cell_variants())
CASES = executor_cases()


@pytest.fixture(scope="module")
def cuda():
    """``(cupy namespace, device)``; skips (or fails where CuPy is required) without CUDA."""
    return _resolve("cupy", "cuda")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=[v[0] for v in ALL_VARIANTS])
def test_fused_kernels_equal_the_eager_loop(cuda, variant, dtype):
    label, spec, options = variant
    xp, dev = cuda
    dt = getattr(xp, dtype)

    def put(a, d=None):
        return from_host(a, xp=xp, device=dev, dtype=d)

    fused = Fused(CupyKernels())
    worst, exact, total = 0.0, 0, 0
    for case in CASES:
        with forced_executor("eager"):
            want = run_executor_case(spec, options, case, put, dt)
        before = fused.kernels.launches
        with use_executor(fused):
            got = run_executor_case(spec, options, case, put, dt)
        ran = fused.kernels.launches - before
        batch, time, features, hidden = case.shape
        if spec.name in FUSABLE:
            assert ran == 2 * len(spec.step.forward) * time, (case, ran)
        else:
            assert ran == 0, case
        rtol = recurrence_rtol(dt, xp, batch=batch, time=time, features=features,
                               hidden=hidden, gain=spec.rounding_gain)
        assert set(got) == set(want), case
        for name, ref in want.items():
            if spec.name not in FUSABLE:
                assert_equal(got[name], ref, err_msg=f"{label} {case} {name}")
                continue
            scale = float(xp.max(xp.abs(ref)))
            dev_abs = float(xp.max(xp.abs(got[name] - ref)))
            if scale > 0:
                worst = max(worst, dev_abs / (rtol * scale))
            exact += dev_abs == 0.0
            total += 1
            assert_close(got[name], ref, rtol=0.0, atol=rtol * scale,
                         err_msg=f"{label} {dtype} {case}: {name} fused against eager")
    assert (fused.fallbacks == {}) == (spec.name in FUSABLE), fused.fallbacks
    print(f"{label} {dtype}: worst deviation {worst:.3g} of the bound; {exact}/{total} arrays "
          "bit for bit")


def test_kernel_arguments_are_checked_before_launch(cuda):
    """A buffer of the wrong dtype, shape or layout never reaches a kernel: the launcher names
    the argument. Slots of time-major buffers and strided views are read and written where
    they are (addresses and strides go to the kernel)."""
    import numpy as np

    from rnnx._backend._fuse import Tracer
    from rnnx._backend._fuse_kernels import At

    xp, dev = cuda
    eps = float(np.finfo(np.float32).eps)
    t = Tracer(xp, xp.float32, batch=2, hidden=3)
    a = t.input("a", "row", 2)
    graph = t.graph([("o", t.ns.tanh(a))])
    k = CupyKernels()
    host = np.arange(-12.0, 12.0).reshape(2, 12) / 7
    good = from_host(host[:, :6], xp=xp, device=dev, dtype=xp.float32)
    out = xp.empty((2, 6), dtype=xp.float32, device=dev)
    run = dict(xp=xp, rows=2, hidden=3, float_dtype=xp.float32, dev=dev)
    k.launch(graph, {"a": good}, [out], **run)
    assert k.launches == 1
    assert float(xp.max(xp.abs(out - xp.tanh(good)))) <= 4 * eps
    with pytest.raises(ValueError, match="'a': dtype float32 expected"):
        k.launch(graph, {"a": xp.astype(good, xp.float64)}, [out], **run)
    with pytest.raises(ValueError, match=r"'a': shape \(2, 6\) expected"):
        k.launch(graph, {"a": good[:, :3]}, [out], **run)
    with pytest.raises(ValueError, match="output 'o'"):
        k.launch(graph, {"a": good}, [out[:, :3]], **run)
    with pytest.raises(ValueError, match=r"cupy\.ndarray expected"):
        k.launch(graph, {"a": np.ones((2, 6), dtype=np.float32)}, [out], **run)
    with pytest.raises(ValueError, match="index 3 on axis 0"):
        k.launch(graph, {"a": At(xp.stack([good] * 3), 0, 3)}, [out], **run)
    assert k.launches == 1
    # a strided view, and slot 1 of a (3, 2, 6) buffer written in place
    wide = from_host(host, xp=xp, device=dev, dtype=xp.float32)
    buf = xp.zeros((3, 2, 6), dtype=xp.float32, device=dev)
    k.launch(graph, {"a": wide[:, ::2]}, [At(buf, 0, 1)], **run)
    assert float(xp.max(xp.abs(buf[1] - xp.tanh(wide[:, ::2])))) <= 4 * eps
    assert float(xp.max(xp.abs(buf[0]))) == float(xp.max(xp.abs(buf[2]))) == 0.0
