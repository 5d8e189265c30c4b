"""Variable-length batches: one definition of "padded step", shared by every cell.

A step mask is a boolean array ``(batch, time)``: ``True`` where a sample has real input.
It may pad on either side (or anywhere: any pattern is allowed). The semantics, the same for
the Elman, LSTM and GRU loops:

* at a masked-out step the recurrent state (``h``, and ``c`` for an LSTM) is carried unchanged:
  ``state_t = where(m_t, cell(x_t, state_{t-1}), state_{t-1})``;
* the output at a masked-out step is zero: ``out_t = where(m_t, state_t, 0)``;
* so the final state ``state_T`` is each sample's own last valid state (``h0`` for a sample with
  no valid step), and every gradient through a masked-out step is exactly zero: the cell sees
  ``where(m_t, G_t, 0)`` and the state gradient ``where(m_t, 0, G_t)`` passes straight through.

Lengths ``(batch,)`` (integers, right padding: steps ``0 .. length-1`` are valid) are turned into
such a mask on the device of ``x`` without a trip to the host.
"""

from __future__ import annotations

from typing import Any

from .._backend import device as device_of
from .._backend import is_traced, move_to, namespace, on_input_device
from ._validate import dtype_name

__all__ = ["as_step_mask", "lengths_to_mask", "mask_outputs"]

_INT_NAMES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@on_input_device
def lengths_to_mask(lengths: Any, time: int, *, padding: str = "right") -> Any:
    """Boolean step mask ``(batch, time)`` from integer ``lengths`` ``(batch,)``.

    ``padding="right"``: steps ``0 .. length-1`` are valid (the real data comes first);
    ``padding="left"``: the last ``length`` steps are valid. The mask is in ``lengths``'
    namespace, on its device; nothing is copied to the host.
    """
    if padding not in ("right", "left"):
        raise ValueError(f"padding must be 'right' or 'left'; got {padding!r}")
    xp = namespace(lengths)
    steps = xp.arange(time, device=device_of(lengths))  # (T,)
    lens = lengths[:, None]  # (B, 1)
    if padding == "right":
        return steps[None, :] < lens  # (B, T)
    return steps[None, :] >= (time - lens)  # (B, T)


def as_step_mask(mask: Any, *, x: Any, xp: Any) -> Any:
    """Validate ``mask`` for input ``x (batch, time, features)`` and return a boolean
    ``(batch, time)`` mask in ``xp`` on ``x``'s device (or ``None`` for no mask).

    ``mask`` may be a boolean ``(batch, time)`` mask or integer ``(batch,)`` lengths (right
    padding), as an array of ``xp`` on any device (moved to ``x``'s device, never through the
    host) or as host data (a NumPy array or a sequence, moved with ``from_host``).
    """
    if mask is None:
        return None
    batch, time = x.shape[0], x.shape[1]
    # Host data, another library's array (NumPy lengths for torch inputs) or another device.
    mask = move_to(mask, xp=xp, device=device_of(x))
    kind = dtype_name(xp, mask.dtype)
    if kind == "bool":
        if tuple(mask.shape) != (batch, time):
            raise ValueError(
                f"mask must have shape (batch, time) = ({batch}, {time}) when boolean; got shape "
                f"{tuple(mask.shape)}"
            )
        return mask
    if kind in _INT_NAMES:
        if tuple(mask.shape) != (batch,):
            raise ValueError(
                f"mask given as integer lengths must have shape (batch,) = ({batch},); got shape "
                f"{tuple(mask.shape)}"
            )
        # One scalar to the host: a length outside [0, time] is a caller bug worth a sync
        # (not under jax.jit, where the values are abstract: the caller's data was checked).
        if not is_traced(mask) and bool(xp.any((mask < 0) | (mask > time))):
            raise ValueError(
                f"mask given as lengths must lie in [0, time] = [0, {time}]; got "
                f"min {int(xp.min(mask))}, max {int(xp.max(mask))}"
            )
        return lengths_to_mask(mask, time)
    raise TypeError(
        f"mask must be a boolean (batch, time) mask or integer (batch,) lengths; got dtype {kind}"
    )


def mask_outputs(states: Any, mask: Any, *, xp: Any) -> Any:
    """``states (batch, time, hidden)`` with masked-out steps set to zero (a new array)."""
    return xp.where(mask[:, :, None], states, 0.0)  # (B, T, H)
