"""The time-loop driver and its executors on their own: the masked carry and its gradient, the
observer, a two-stage step, the list-and-stack path for immutable arrays giving the buffered
path's bits, and the tuned forms' blocks."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import _executors, executor, to_numpy
from rnnx.functional import _common
from rnnx.functional._step import StepGrads
from rnnx.functional._tuned import _loop as tuned_loop

from . import _cells


def _toy_stage(u_t, v, state):
    """h_t = v + u_t with v = h_{t-1} w (w = 0.5), saving 2 u_t: easy to follow by hand."""
    return (v + u_t,), (2.0 * u_t,)


def _toy_adjoint(g, saved, prev):
    """The toy step's adjoint: du = dv = g, nothing else reaches the previous state (the
    driver's dv @ w^T, 0.5 g, does)."""
    return StepGrads(du=g[0], dv=g[0], dstate=(None,))


def test_masked_carry_and_saved_values(xp, put):
    ex = executor(xp)
    f32 = np.float32
    u = put(np.arange(1.0, 7.0, dtype=f32).reshape(3, 2, 1))  # (T, B, 1): steps 1..3 for 2 samples
    mask = put(np.array([[True, False, True], [False, True, True]]))  # (B, T)
    w = put(np.array([[0.5]], dtype=f32))
    (hs,), (saved,), ops = ex.forward([_toy_stage], [(w, None)], u, (put(np.zeros((2, 1), dtype=f32)),),
                                      mask, xp=xp)
    h = to_numpy(hs)[:, :, 0]  # (T, B)
    # sample 0: u = 1, (3 masked), 5 -> h = 1, 1 (carried), 0.5 + 5
    # sample 1: u = (2 masked), 4, 6 -> h = 0 (carried), 4, 2 + 6
    np.testing.assert_array_equal(h, [[1.0, 0.0], [1.0, 4.0], [5.5, 8.0]])
    np.testing.assert_array_equal(to_numpy(saved)[:, :, 0], 2.0 * to_numpy(u)[:, :, 0])
    assert ops == ()


def test_backward_passes_gradients_through_padded_steps_and_observes(xp, put):
    """With the toy step's adjoint (dh_{t-1} = 0.5 g), a padded step passes its gradient
    straight through, and the observer receives the total gradient at each step."""
    ex = executor(xp)
    mask = put(np.array([[True, False, True]]))  # (B=1, T=3)
    f32 = np.float32
    w_t = put(np.array([[0.5]], dtype=f32))
    states = (put(np.zeros((3, 1, 1), dtype=f32)),)
    du, dvs, dparams, (g0,), observed = ex.backward(
        [_toy_adjoint], [w_t], (put(np.ones((1, 1), dtype=f32)),), states,
        (put(np.zeros((1, 1), dtype=f32)),), (put(np.zeros((3, 1, 1), dtype=f32)),), (), mask,
        None, True, xp=xp)
    # step 3 (valid): stores 1, passes 0.5; step 2 (padded): stores 0, passes 0.5 through;
    # step 1 (valid): stores 0.5, passes 0.25 to h0.
    np.testing.assert_array_equal(to_numpy(du)[:, 0, 0], [0.5, 0.0, 1.0])
    assert dvs[0] is du and dparams == {}
    assert float(to_numpy(g0)[0, 0]) == 0.25
    np.testing.assert_array_equal(to_numpy(observed)[:, 0, 0], [0.5, 0.5, 1.0])


@pytest.mark.parametrize("kind", _cells.KINDS)
def test_list_and_stack_path_equals_the_buffers(kind, rng, monkeypatch):
    """The eager executor's path for arrays without item assignment (lists stacked at the end)
    gives the buffered path's results bit for bit, masked and unmasked, on the readable step
    and on the tuned forms: forced here on NumPy by making the loops see immutable arrays."""
    from rnnx._backend import forced_executor

    case = _cells.make_case(kind, rng, 3, 6, 2, 4)
    mask = np.array([[True] * 6, [False, True, True, True, False, False], [True] * 3 + [False] * 3])
    for name in ("eager", "tuned"):
        with forced_executor(name):
            want = [_cells.run(kind, case), _cells.run(kind, case, mask=mask)]
            with monkeypatch.context() as m:
                m.setattr(_executors, "writeable", lambda a: False)
                m.setattr(tuned_loop, "writeable", lambda a: False)
                for module in ("rnn", "lstm", "gru", "gru_reset_before", "ln_lstm"):
                    m.setattr(f"rnnx.functional._tuned.{module}.writeable", lambda a: False)
                got = [_cells.run(kind, case), _cells.run(kind, case, mask=mask)]
        for w, g in zip(want, got):
            assert set(w) == set(g)
            for k in w:
                np.testing.assert_array_equal(to_numpy(g[k]), to_numpy(w[k]), err_msg=f"{name} {k}")


def test_blocks_cover_every_step_once():
    for time, row in ((1, 10), (7, 1 << 17), (20, 1 << 15), (1000, 64)):
        blocks = _common.step_blocks(time, row)
        steps = [t for s, e in blocks for t in range(s, e)]
        assert sorted(steps) == list(range(time)) and blocks[0][1] == time
