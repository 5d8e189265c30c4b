"""The time-loop driver on its own: the masked carry and its gradient, the observer, the blocks,
and the list-and-stack path for immutable arrays giving the buffered path's bits."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import to_numpy, writeable
from rnnx.functional import _common, _loop

from . import _cells


def _toy_step(xw_t, state):
    """h_t = 0.5 h_{t-1} + x_t, saving 2 x_t: easy to follow by hand."""
    (h,) = state
    return (0.5 * h + xw_t,), (2.0 * xw_t,)


def test_masked_carry_and_saved_values(xp, put):
    xw = put(np.arange(1.0, 7.0).reshape(3, 2, 1))  # (T, B, 1): steps 1..3 for 2 samples
    mask = put(np.array([[True, False, True], [False, True, True]]))  # (B, T)
    (hs,), (saved,) = _loop.scan_forward(_toy_step, xw, (put(np.zeros((2, 1))),),
                                         saved_widths=(1,), mask=mask, xp=xp)
    h = to_numpy(hs)[:, :, 0]  # (T, B)
    # sample 0: x = 1, (3 masked), 5 -> h = 1, 1 (carried), 0.5 + 5
    # sample 1: x = (2 masked), 4, 6 -> h = 0 (carried), 4, 2 + 6
    np.testing.assert_array_equal(h, [[1.0, 0.0], [1.0, 4.0], [5.5, 8.0]])
    np.testing.assert_array_equal(to_numpy(saved)[:, :, 0], 2.0 * to_numpy(xw)[:, :, 0])


def test_backward_passes_gradients_through_padded_steps_and_observes(xp, put):
    """With step_back the adjoint of the toy step (dh_{t-1} = 0.5 g), a padded step passes its
    gradient straight through, and ``state_grads`` receives the total gradient at each step."""
    mask = put(np.array([[True, False, True]]))  # (B=1, T=3)

    def step_back(g, fac, t, i):
        return (g[0],), (0.5 * g[0],)

    kept = [None] * 3
    (stored,), (g0,) = _loop.scan_backward(
        step_back, lambda s, e: None, (put(np.ones((1, 1))),), time=3, row_elements=1,
        stored_widths=(1,), seq=None, mask=mask, state_grads=kept,
        buffered=writeable(put(np.ones(1))), xp=xp)
    # step 3 (valid): stores 1, passes 0.5; step 2 (padded): stores 0, passes 0.5 through;
    # step 1 (valid): stores 0.5, passes 0.25 to h0.
    np.testing.assert_array_equal(to_numpy(stored)[:, 0, 0], [0.5, 0.0, 1.0])
    assert float(to_numpy(g0)[0, 0]) == 0.25
    np.testing.assert_array_equal([float(to_numpy(k)[0, 0]) for k in kept], [0.5, 0.5, 1.0])


@pytest.mark.parametrize("kind", _cells.KINDS)
def test_list_and_stack_path_equals_the_buffers(kind, rng, monkeypatch):
    """The path JAX takes (lists stacked at the end) gives the buffered path's results bit for
    bit, masked and unmasked: forced here on NumPy by making the driver see immutable arrays."""
    case = _cells.make_case(kind, rng, 3, 6, 2, 4)
    mask = np.array([[True] * 6, [False, True, True, True, False, False], [True] * 3 + [False] * 3])
    want = [_cells.run(kind, case), _cells.run(kind, case, mask=mask)]
    monkeypatch.setattr(_loop, "writeable", lambda a: False)
    import rnnx.functional.rnn as rnn_mod
    monkeypatch.setattr(rnn_mod, "writeable", lambda a: False)
    for cell_module in ("lstm", "gru", "gru_reset_before", "ln_lstm"):
        monkeypatch.setattr(f"rnnx.functional.{cell_module}.writeable", lambda a: False)
    got = [_cells.run(kind, case), _cells.run(kind, case, mask=mask)]
    for w, g in zip(want, got):
        assert set(w) == set(g)
        for name in w:
            np.testing.assert_array_equal(to_numpy(g[name]), to_numpy(w[name]), err_msg=name)


def test_blocks_cover_every_step_once():
    for time, row in ((1, 10), (7, 1 << 17), (20, 1 << 15), (1000, 64)):
        blocks = _common.step_blocks(time, row)
        steps = [t for s, e in blocks for t in range(s, e)]
        assert sorted(steps) == list(range(time)) and blocks[0][1] == time
