"""Truncated backpropagation through time and stateful training.

A long sequence is processed in chunks of ``k`` steps. Each chunk's forward pass starts from the
previous chunk's final state, so the forward computation is exactly the full-sequence one; the
backward pass stops at the chunk's start (the state is carried forward *without gradient*: the
``dh0`` of a chunk is dropped). Samples can be reset individually between chunks: a sample whose
sequence restarts gets a fresh (zero) state while the others keep theirs.

References
----------
- R. J. Williams, J. Peng, "An efficient gradient-based algorithm for on-line training of
  recurrent network trajectories", Neural Computation 2 (1990): BPTT(h; h').
- I. Sutskever, "Training recurrent neural networks", PhD thesis (2013), sec. 2.8.6.

Usage::

    runner = TruncatedBPTT(layer, k=50)
    for chunk in runner.chunks(x, mask=lengths):        # forward already run on the chunk
        dout = loss_grad(chunk.out, y[:, chunk.start:chunk.stop])
        layer.backward(dout)                             # gradients of this chunk only
        optimizer.step(layer.params, layer.grads)
    runner.reset(done)                                   # per-sample reset before the next batch
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from ._backend import device as device_of
from ._backend import move_to, namespace
from .functional._mask import as_step_mask

__all__ = ["Chunk", "TruncatedBPTT", "reset_state"]


class Chunk(NamedTuple):
    """One chunk of a truncated-BPTT pass: steps ``start .. stop-1`` of the sequence."""

    index: int
    start: int
    stop: int
    x: Any  # (batch, stop-start, features)
    mask: Any  # (batch, stop-start) bool, or None
    out: Any  # the layer's forward output on this chunk


def reset_state(state: tuple[Any, ...], reset: Any) -> tuple[Any, ...]:
    """``state`` with the samples where ``reset (batch,)`` is true set to zero (new arrays).

    Each state array has the batch on its second-to-last axis: ``(batch, hidden)`` or
    ``(num_layers*dirs, batch, hidden)``. ``reset`` is a boolean array in the state's namespace
    (any device) or host data.
    """
    xp = namespace(*state)
    reset = move_to(reset, xp=xp, device=device_of(state[0]))
    batch = state[0].shape[-2]
    if tuple(reset.shape) != (batch,) or reset.dtype != xp.bool:
        raise ValueError(f"reset must be a boolean array of shape (batch,) = ({batch},); got "
                         f"shape {tuple(reset.shape)}, dtype {reset.dtype}")
    return tuple(xp.where(reset[:, None], 0.0, s) for s in state)  # (..., B, H) each


class TruncatedBPTT:
    """Run a recurrent layer over long sequences in chunks of ``k`` steps, carrying its state.

    ``layer`` is any rnnx recurrent layer (SimpleRNN, LSTM, GRU, Recurrent): its ``forward(x,
    *state, mask=...)`` and ``final_state`` are used. :attr:`state` is ``None`` (zeros) until
    the first chunk has run; it persists across :meth:`chunks` calls (stateful training over
    consecutive batches of one stream) until :meth:`reset`.
    """

    def __init__(self, layer: Any, k: int) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int (steps per chunk); got {k!r}")
        self.layer = layer
        self.k = k
        self.state: tuple[Any, ...] | None = None

    def reset(self, samples: Any = None) -> None:
        """Fresh state for every sample (``samples=None``) or for the samples where the boolean
        ``samples (batch,)`` is true; the others keep theirs."""
        if samples is None or self.state is None:
            self.state = None
        else:
            self.state = reset_state(self.state, samples)

    def chunks(self, x: Any, *, mask: Any = None) -> Iterator[Chunk]:
        """Yield one :class:`Chunk` per ``k`` steps of ``x (batch, time, features)``, its
        forward pass already run from the carried state (the layer's cache is ready for
        ``layer.backward``). ``mask``: boolean ``(batch, time)`` or lengths ``(batch,)`` for
        the whole sequence. Calling :meth:`reset` inside the loop affects the next chunk."""
        xp = namespace(x)
        m = as_step_mask(mask, x=x, xp=xp)
        time = x.shape[1]
        for index, start in enumerate(range(0, time, self.k)):
            stop = min(start + self.k, time)
            xc = x[:, start:stop, :]  # (B, k, F)
            mc = None if m is None else m[:, start:stop]  # (B, k)
            state = () if self.state is None else self.state
            out = self.layer.forward(xc, *state, mask=mc)
            # Carried as plain arrays: the next chunk's backward stops at its initial state.
            self.state = self.layer.final_state
            yield Chunk(index, start, stop, xc, mc, out)
