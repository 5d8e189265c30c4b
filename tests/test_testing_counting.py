"""rnnx.testing.counting: the counter counts what it says, leaves the backend as it found it,
and the calls per time step of every cell stay where they are measured: the tuned NumPy forms
where the cuts of issue 13 left them, the readable steps where the step interface put them."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import from_host, get_namespace, on_accelerator, to_numpy
from rnnx.functional import _common
from rnnx.functional._tuned import _loop as tuned_loop
from rnnx.functional.registry import CELLS
from rnnx.testing import calls_per_step, cell_calls_rows, count_calls

xp = get_namespace("array_api_strict")
Array = type(xp.asarray(0.0))


def test_counts_namespace_calls_and_operators_exactly():
    """Three namespace functions and two operators: five calls, five launches, nothing else;
    the real computation runs (the numbers are the unwrapped backend's)."""
    a = xp.asarray([[0.5, -1.0, 2.0]])
    with count_calls(xp) as c:
        b = xp.tanh(a)
        s = xp.sum(b)
        z = xp.zeros((1, 3))
        d = a * b
        e = d - z
    assert dict(c.by_name) == {"tanh": 1, "sum": 1, "zeros": 1, "__mul__": 1, "__sub__": 1}
    assert (c.calls, c.launches, c.views, c.scalars) == (5, 5, 0, 0)
    want = np.tanh([[0.5, -1.0, 2.0]])
    np.testing.assert_array_equal(to_numpy(e), [[0.5, -1.0, 2.0]] * want)
    assert float(s) == pytest.approx(want.sum(), rel=1e-15)


def test_views_scalars_assignment_and_host_reads():
    """Basic indexing is a call and a view, not a launch; a Python scalar handed to a
    namespace function is counted as a scalar (an operator's scalar is not: it is a kernel
    argument); item assignment and host reads are calls; attribute reads are not."""
    a = xp.ones((2, 3))
    with count_calls(xp) as c:
        v = a[0, :]  # view
        m = xp.maximum(v, 0.0)  # one scalar operand
        w = xp.where(v > 0, v, 1.0)  # __gt__ and where, one scalar operand
        a[1, ...] = m  # __setitem__
        _ = a.shape, a.dtype, a.device, a.ndim, a.T  # not counted
        big = bool(xp.all(w > 0.5))  # __gt__, all, __bool__
        r = 2.0 * m  # __rmul__, no scalar counted
    assert big and float(r[0]) == 2.0
    assert dict(c.by_name) == {"__getitem__": 1, "maximum": 1, "where": 1, "__gt__": 2,
                               "__setitem__": 1, "all": 1, "__bool__": 1, "__rmul__": 1}
    assert (c.calls, c.views, c.launches, c.scalars) == (9, 1, 8, 2)


def test_restores_the_namespace_and_the_array_type_also_after_an_error():
    tanh, mul, getitem = xp.tanh, Array.__mul__, Array.__getitem__
    with pytest.raises(RuntimeError, match="boom"):
        with count_calls(xp):
            assert xp.tanh is not tanh and Array.__mul__ is not mul
            raise RuntimeError("boom")
    assert xp.tanh is tanh and Array.__mul__ is mul and Array.__getitem__ is getitem
    with count_calls(xp) as c:
        pass
    assert c.calls == 0 and xp.tanh is tanh


def test_refuses_a_namespace_whose_arrays_it_cannot_wrap():
    with pytest.raises(TypeError, match="not a Python class"):
        with count_calls(get_namespace("numpy")):
            pass


def test_elman_calls_per_step_derived_by_hand():
    """The unmasked Elman loops of the tuned form (NumPy's), counted by hand. Forward, each step
    after the first: ``xw[t]`` (a view), ``h @ w_h``, ``a += xw_t``, ``tanh(a)`` (or ``maximum(a, zero)``),
    ``xw[t] = h``: 5 calls, 4 launches. Backward with a gradient at every step: ``das[t]`` (a
    view), ``da *= g``, ``da @ w_h^T``, ``dhs[:, t-1]`` (a view), ``g += ...``: 5 calls, 3
    launches (before the cuts 7: ``das[t, ...] *= g`` also assigned the view to itself).
    The fixed forward part: the time-major copy of ``x`` (``permute_dims``, ``reshape``), the
    projection GEMM and its bias add, the buffer's views back (``permute_dims``, ``reshape``)
    = 6, less the first step's GEMM and add (a zero state needs neither) = 4; relu adds its
    zero array, made once."""
    for nonlinearity, fixed in (("tanh", 4), ("relu", 5)):
        got = calls_per_step("rnn", options={"nonlinearity": nonlinearity}, executor="tuned")
        f, b = got["forward"], got["backward"]
        assert (f.per_step, f.launches, f.scalars, f.fixed) == (5, 4, 0, fixed)
        assert (b.per_step, b.launches, b.scalars) == (5, 3, 0)
        name = "tanh" if nonlinearity == "tanh" else "maximum"
        assert f.by_name == {"__getitem__": 1, "__matmul__": 1, "__iadd__": 1, name: 1,
                             "__setitem__": 1}
        assert b.by_name == {"__getitem__": 2, "__imul__": 1, "__matmul__": 1, "__iadd__": 1}


def test_readable_elman_step_counted_by_hand():
    """The readable Elman step in the eager executor. Forward: ``u[t]`` (a view), ``h @ w_h``,
    ``u + v``, ``tanh`` (relu: ``zeros(())`` and ``maximum``), the state stored
    (``__setitem__``): 5 calls (relu 6), 4 launches (relu 5). Backward: ``state[t-1]`` and
    ``saved[t]`` (views), ``h * h``, ``1 - .``, ``G * .`` (relu: ``h > 0``, ``astype``,
    ``G * .``), ``da @ w_h^T``, ``seq[:, t-1]`` (a view) and its add, ``da`` stored once (it is
    both ``du`` and ``dv``): 9 calls, 6 launches."""
    for nonlinearity, forward in (("tanh", (5, 4)), ("relu", (6, 5))):
        got = calls_per_step("rnn", options={"nonlinearity": nonlinearity})
        f, b = got["forward"], got["backward"]
        assert (f.per_step, f.launches, f.scalars) == (*forward, 0)
        assert (b.per_step, b.launches, b.scalars) == (9, 6, 0)


# Calls per step (calls, launches) of the forward and the backward, gradient at every step, of
# the tuned NumPy forms, measured after the cuts of issue 13 (docs/performance.md, "Calls per
# time step", has them before and after). A regression guard: a change that adds a call to a
# step fails here.
EXPECTED = {
    ("rnn-tanh", False): ((5, 4), (5, 3)),
    ("rnn-tanh", True): ((7, 5), (9, 6)),
    ("rnn-relu", False): ((5, 4), (5, 3)),
    ("rnn-relu", True): ((7, 5), (9, 6)),
    ("lstm", False): ((18, 13), (11, 7)),
    ("lstm", True): ((21, 15), (18, 13)),
    ("gru", False): ((23, 16), (10, 5)),
    ("gru", True): ((25, 17), (14, 8)),
    # Two dependent matmuls a step each way (q = r h before W_hn; da_r after dq = da_n W_hn^T),
    # and two multipliers of the backward factors (G, then dq): more views than the gru's.
    ("gru_reset_before", False): ((20, 15), (18, 8)),
    ("gru_reset_before", True): ((22, 16), (22, 11)),
    ("ln_lstm", False): ((42, 37), (32, 24)),
    ("ln_lstm", True): ((45, 39), (39, 30)),
    # The minimal cells have no tuned form: their readable step (the counts below), which the
    # layers run only where the backend prefers it to the parallel form.
    ("min_gru", False): ((25, 22), (24, 18)),
    ("min_gru", True): ((27, 23), (29, 21)),
    ("min_lstm", False): ((45, 41), (44, 35)),
    ("min_lstm", True): ((47, 42), (49, 38)),
}


# The same of the readable steps in the eager executor (torch, CuPy, array-api-strict): each
# gate's activation, product and sum is its own call, and the driver stores each saved array
# and each per-step gradient by item assignment. What a fuser (one kernel for a step's
# pointwise part) or the compiled JAX executor takes down to one launch.
EXPECTED_STEP = {
    ("rnn-tanh", False): ((5, 4), (9, 6)),
    ("rnn-tanh", True): ((7, 5), (14, 9)),
    ("rnn-relu", False): ((6, 5), (9, 6)),
    ("rnn-relu", True): ((8, 6), (14, 9)),
    ("lstm", False): ((31, 26), (35, 27)),
    ("lstm", True): ((34, 28), (44, 33)),
    ("gru", False): ((31, 24), (29, 23)),
    ("gru", True): ((33, 25), (34, 26)),
    ("gru_reset_before", False): ((33, 24), (31, 26)),
    ("gru_reset_before", True): ((35, 25), (36, 29)),
    ("ln_lstm", False): ((55, 50), (61, 48)),
    ("ln_lstm", True): ((58, 52), (70, 54)),
    ("min_gru", False): ((25, 22), (24, 18)),
    ("min_gru", True): ((27, 23), (29, 21)),
    ("min_lstm", False): ((45, 41), (44, 35)),
    ("min_lstm", True): ((47, 42), (49, 38)),
}


@pytest.mark.parametrize("executor, expected", [("tuned", EXPECTED), ("eager", EXPECTED_STEP)])
def test_calls_per_step_of_every_cell(executor, expected):
    """Every registered cell, plain and with a lengths mask: no Python scalar reaches a
    namespace function in a step, and the per-step counts are the measured ones."""
    rows = cell_calls_rows(executor=executor)
    assert {(r["cell"], r["masked"]) for r in rows} == set(expected)
    for r in rows:
        f, b = r["forward"], r["backward"]
        assert ((f.per_step, f.launches), (b.per_step, b.launches)) == expected[
            (r["cell"], r["masked"])], r["cell"]
        assert f.scalars == b.scalars == 0, r["cell"]
        if executor == "tuned" and CELLS[r["cell"].split("-")[0]].step.tuned is not None:
            assert "concat" not in b.by_name or r["cell"].endswith("lstm"), r["cell"]
            assert "__setitem__" not in b.by_name or r["cell"] == "ln_lstm", r["cell"]


def test_nonlinear_counts_are_refused(monkeypatch):
    """Lengths on both sides of a block boundary give no per-step count: the caller learns
    that a threshold lies between them."""
    monkeypatch.setattr(_common, "_BLOCK_ELEMENTS", 6 * 2 * 4 * 16)  # blocks of 6 steps
    with pytest.raises(ValueError, match="not linear"):
        calls_per_step("lstm", lengths=(4, 8, 12), executor="tuned")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "gru_reset_before", "ln_lstm"])
def test_one_block_on_accelerators(cell, monkeypatch):
    """The tuned forms: on the CPU small blocks cost calls per block; where the arrays are on an
    accelerator the loop takes one block, and the calls are those of one block whatever the
    block size."""
    one_block = calls_per_step(cell, masked=True, executor="tuned")["backward"]
    monkeypatch.setattr(_common, "_BLOCK_ELEMENTS", 1)  # one step a block on the CPU
    blocked = calls_per_step(cell, masked=True, executor="tuned")["backward"]
    assert blocked.per_step > one_block.per_step
    monkeypatch.setattr(tuned_loop, "on_accelerator", lambda a: True)
    assert calls_per_step(cell, masked=True, executor="tuned")["backward"] == one_block


def test_on_accelerator_is_false_on_the_cpu_backends():
    assert not on_accelerator(np.zeros(2))
    assert not on_accelerator(from_host(np.zeros(2), xp=xp))
    torch = pytest.importorskip("torch")
    assert not on_accelerator(torch.zeros(2))


def test_registry_cells_are_all_counted():
    labels = {r[0] for r in EXPECTED}
    assert {label.split("-")[0] for label in labels} == set(CELLS)
