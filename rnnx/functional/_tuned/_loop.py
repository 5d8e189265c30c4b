"""The loop of the tuned NumPy forms (:mod:`rnnx.functional._tuned`): a tuned cell supplies its
step in its tuned form and a backward step over precomputed factors; this loop runs them.

What it owns, so that no tuned cell writes it again:

* **buffers**: per-step results go into time-major ``(time, batch, width)`` buffers allocated
  once, where the namespace allows item assignment; JAX's immutable arrays are collected in
  lists and stacked at the end (:func:`rnnx._backend.writeable`);
* **the masked carry** (semantics in :mod:`rnnx.functional._mask`): at a masked-out step every
  state is carried, ``s_t = where(m_t, step(s_{t-1}), s_{t-1})``, and in the backward pass the
  cell sees ``where(m_t, G, 0)`` while ``where(m_t, 0, G)`` passes straight through;
* **blocking** of the gradient-independent backward factors: on the CPU they are computed a
  block of steps at a time, just before the loop needs them, while they fit in cache
  (:func:`rnnx.functional._common.step_blocks`); on an accelerator
  (:func:`rnnx._backend.on_accelerator`) in one block, the fewest calls;
* **gradients kept in the factors**: a cell multiplies its first factor array in place into
  the first of the per-step gradients the weight sums need, so that no step copies them into a
  buffer;
* **buffers kept across calls**: given a :class:`rnnx.functional._workspace.Workspace`, the
  buffers it fills by item assignment come from there (all but the first state's, which the
  cell returns to its caller);
* **the per-step observer** (``state_grads``) that :mod:`rnnx.diagnostics` reads: the total
  gradient ``dL/dh_t`` reaching each step's output state.

The one documented exception is the unmasked Elman loop in :mod:`rnnx.functional._tuned.rnn`,
which writes each state into its own input-projection slot and multiplies the factors in place:
two array calls a step, measurably leaner at the seed's sizes than any generic loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..._backend import device, on_accelerator, writeable
from .._common import step_blocks
from .._workspace import Workspace, empty

__all__ = ["scan_backward", "scan_forward"]


def _slots(xp: Any, like: Any, time: int, batch: int, widths: Sequence[int], buffered: bool,
           workspace: Workspace | None = None, name: str = "", fresh: int = 0) -> list[Any]:
    """Storage for per-step arrays of ``(batch, width)``: time-major buffers ``(time, batch,
    width)`` where the namespace allows item assignment, lists (stacked by :func:`_stacked`)
    otherwise. With a ``workspace``, all buffers but the first ``fresh`` are its buffers
    ``name0``, ``name1``, ...; the first ``fresh`` are new (the forward's output states)."""
    if buffered:
        return [empty(xp, None if k < fresh else workspace, f"{name}{k}", (time, batch, w), like)
                for k, w in enumerate(widths)]
    return [[None] * time for _ in widths]


def _stacked(xp: Any, slots: list[Any], buffered: bool) -> list[Any]:
    return slots if buffered else [xp.stack(s, axis=0) for s in slots]  # (T, B, w) each


def scan_forward(
    step: Callable[[Any, tuple[Any, ...]], tuple[tuple[Any, ...], tuple[Any, ...]]],
    xw: Any,
    state0: tuple[Any, ...],
    *,
    saved_widths: Sequence[int],
    mask: Any,
    xp: Any,
    workspace: Workspace | None = None,
    first: Callable[[Any], tuple[tuple[Any, ...], tuple[Any, ...]]] | None = None,
    state_widths: Sequence[int] = (),
) -> tuple[list[Any], list[Any]]:
    """Run ``step`` over the time-major input projection ``xw (time, batch, width)``.

    ``step(xw_t, state) -> (new_state, saved)``: ``state`` is a tuple of ``(batch, hidden)``
    arrays (``(h,)``, or ``(h, c)``), ``saved`` a tuple of per-step arrays the backward pass
    needs, of widths ``saved_widths``. ``mask`` is a boolean ``(batch, time)`` step mask or
    ``None``. Returns ``(states, saved)``: lists of time-major ``(time, batch, .)`` arrays, the
    states being the carried ones (equal to the step's outputs without a mask). With a
    ``workspace``, every buffer but the first state's is the workspace's (its ``"fwd0"``,
    ``"fwd1"``, ...): overwritten by the next call given that workspace.

    ``state0=None`` is the zero state, without a mask only: step 1 is then ``first(xw_0) ->
    (new_state, saved)``, which need not multiply anything by zeros (one recurrent GEMM of ``T``
    fewer, as the Elman loop does), and ``state_widths`` gives the states' widths."""
    time, batch, _ = xw.shape
    buffered = writeable(xw)
    widths = state_widths if state0 is None else [s.shape[1] for s in state0]
    if state0 is None and (first is None or mask is not None):
        raise ValueError("state0=None needs `first` and no mask")
    n_states = len(widths)
    slots = _slots(xp, xw, time, batch, [*widths, *saved_widths], buffered, workspace, "fwd", 1)
    state = state0
    # The loop is written out for the two storage kinds: it runs once per step, and a method
    # call per stored array would cost more than the copies it makes at small sizes.
    for t in range(time):
        new, keep = step(xw[t, ...], state) if t or state0 is not None else first(xw[0, ...])
        if mask is not None:
            m_t = mask[:, t, None]  # (B, 1)
            new = tuple(xp.where(m_t, n, s) for n, s in zip(new, state))  # carried if padded
        state = new
        if buffered:
            for slot, v in zip(slots, new + keep):
                slot[t, ...] = v  # (B, w): one contiguous row block
        else:
            for slot, v in zip(slots, new + keep):
                slot[t] = v
    slots = _stacked(xp, slots, buffered)
    return slots[:n_states], slots[n_states:]


def scan_backward(
    step_back: Callable[[tuple[Any, ...], Any, int, int], tuple[tuple[Any, ...], tuple[Any, ...]]],
    factors: Callable[[int, int], Any],
    g0: tuple[Any, ...],
    *,
    time: int,
    row_elements: int,
    stored_widths: Sequence[int],
    seq: Any,
    mask: Any,
    state_grads: list | None,
    buffered: bool,
    xp: Any,
    workspace: Workspace | None = None,
) -> tuple[list[Any], tuple[Any, ...]]:
    """Backpropagate through ``time`` steps, last to first.

    ``g0`` holds the total gradients reaching the final states (``(dL/dh_T,)`` or
    ``(dL/dh_T, dL/dc_T)``, each ``(batch, hidden)``). ``factors(s, e)`` returns the
    gradient-independent factors of steps ``s .. e-1`` (any object the cell's step reads), for
    blocks of about ``row_elements`` elements a step (:func:`step_blocks`).
    ``step_back(g, fac, t, i) -> (stored, g_prev)`` is the backward of step ``t`` (``i = t - s``
    indexes ``fac``): ``stored`` are the per-step gradients the weight sums need (widths
    ``stored_widths``), ``g_prev`` the gradients reaching the previous states — new arrays the
    driver may update in place. ``seq (batch, time, hidden)`` is the (masked) gradient of every
    step's output, or ``None``; ``state_grads`` (a list of ``time`` slots) receives ``dL/dh_t``.
    ``buffered``: whether the namespace allows item assignment (``writeable`` of an array the
    forward pass allocated).

    The first stored gradient is the first array of the factors ``(steps, batch, width)``,
    which the step updates in place, row ``i`` (where ``buffered``; otherwise it is stored as
    the step returns it, like the rest): no per-step copy into a buffer. A block of factors is
    copied into the stored array once a block (its first ``stored_widths[0]`` columns); a
    single block is kept as it is.

    Returns ``(stored, g)``: the stored gradients as time-major ``(time, batch, .)`` arrays and
    the gradients reaching the initial states. With a ``workspace`` their buffers are its
    (``"bwd0"``, ...; a single block's factors stay the cell's own): the caller consumes them
    before the next call given that workspace."""
    g = g0
    batch = g0[0].shape[0]
    n_in = 1 if buffered else 0  # the first stored gradient lives in the first factor array
    # On an accelerator the factors of all steps at once: each block costs its own dozen calls
    # (kernel launches there), and a GPU's caches are not what the blocks are sized for.
    blocks = [(0, time)] if on_accelerator(g0[0]) else step_blocks(time, row_elements)
    kept = (_slots(xp, g0[0], time, batch, stored_widths[:n_in], True, workspace, "bwd")
            if len(blocks) > 1 else [])
    slots = _slots(xp, g0[0], time, batch, stored_widths[n_in:], buffered, workspace, "bwd_")
    # The padded steps' zero, made once: a Python 0.0 in `where` becomes an array every call
    # behind array-api-compat's torch wrapper (a host -> device copy on a GPU).
    zero = None if mask is None else xp.zeros((), dtype=g0[0].dtype, device=device(g0[0]))
    for s, e in blocks:
        fac = factors(s, e)
        for t in range(e - 1, s - 1, -1):
            if state_grads is not None:  # diagnostics: dL/dh_t, the total gradient reaching h_t
                state_grads[t] = g[0]
            if mask is None:
                stored, g = step_back(g, fac, t, t - s)
            else:
                m_t = mask[:, t, None]  # (B, 1)
                stored, g_prev = step_back(tuple(xp.where(m_t, a, zero) for a in g), fac, t,
                                           t - s)
                # The carried state passes its gradient straight through a padded step.
                g = tuple(p + xp.where(m_t, zero, a) for p, a in zip(g_prev, g))  # (B, H) each
            if buffered:
                for slot, v in zip(slots, stored[n_in:]):
                    slot[t, ...] = v
            else:
                for slot, v in zip(slots, stored):
                    slot[t] = v
            if seq is not None and t > 0:
                g_h = g[0]
                # The output gradient of step t-1; g_h is an array of this step's own (step_back
                # returns new arrays), so in place (an immutable JAX array rebinds).
                g_h += seq[:, t - 1, :]  # (B, H)
                g = (g_h, *g[1:])
        if kept:
            for buf, f in zip(kept, fac[:n_in]):
                # (L, B, w): the block's gradients, one copy a block; a factor wider than its
                # stored width keeps only its first w columns (the rest fed the recurrence).
                buf[s:e, ...] = f if f.shape[2] == buf.shape[2] else f[:, :, : buf.shape[2]]
    if n_in and not kept:
        kept = list(fac[:n_in])  # one block: the factors are the stored gradients
    return [*kept, *_stacked(xp, slots, buffered)], g
