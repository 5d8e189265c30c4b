"""Buffers kept across calls: a :class:`Workspace` holds a recurrence's internal scratch so that
calls of the same shapes write into memory that is already mapped.

Each call of a cell allocates its per-step buffers anew. Large blocks are handed back to the
kernel when freed (glibc's ``malloc`` does so above its mmap threshold), so the next call
page-faults every page in again and zero-fills it: at (32, 50, 16, 64) that was a third of an
LSTM forward (docs/performance.md, "Buffers reused across calls"). A workspace keeps the buffers
a call fills by item assignment, one per name; a later call asking for the same name, shape,
dtype and device gets the same buffer back, any other request replaces it (the old one is
dropped first: never two of one name alive at once).

Only arrays that the namespace lets rnnx write in place are kept (:func:`rnnx._backend.writeable`);
for JAX a workspace is accepted and ignored. What a cell puts in its workspace, and so how long
the arrays it returns stay valid, is stated by each cell's forward (the outputs ``hs`` and the
gradients are always new arrays).
"""

from __future__ import annotations

from typing import Any

from .._backend import device, writeable

__all__ = ["Workspace", "empty"]


class Workspace:
    """Named buffers a cell's forward and backward reuse across calls of the same shapes.

    Pass one to a functional forward/backward as ``workspace=`` (the same one to both, or one
    each); a :class:`rnnx.layers.Recurrent` keeps one per layer and direction. A workspace
    serves one sequence of calls at a time: the arrays of a cache made with it are overwritten
    by the next forward given the same workspace. :meth:`clear` releases the memory."""

    __slots__ = ("_buffers",)

    def __init__(self) -> None:
        self._buffers: dict[str, tuple[tuple[Any, ...], Any]] = {}

    def empty(self, name: str, shape: tuple[int, ...], like: Any, *, xp: Any) -> Any:
        """An uninitialised array of ``shape`` with ``like``'s dtype and device: the one kept
        under ``name`` if it matches, else a new one that replaces it (a new array, not kept,
        where ``like``'s namespace does not allow item assignment)."""
        dev = device(like)
        if not writeable(like):
            return xp.empty(shape, dtype=like.dtype, device=dev)
        key = (tuple(shape), like.dtype, dev)
        held = self._buffers.get(name)
        if held is not None:
            if held[0] == key:
                return held[1]
            del self._buffers[name]  # release it before the replacement is allocated
            held = None
        buf = xp.empty(shape, dtype=like.dtype, device=dev)
        self._buffers[name] = (key, buf)
        return buf

    def clear(self) -> None:
        """Drop every buffer (their memory is freed once no cache refers to them)."""
        self._buffers.clear()

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the buffers held now."""
        return tuple(self._buffers)

    def __len__(self) -> int:
        return len(self._buffers)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}={k[0]}" for n, (k, _) in self._buffers.items())
        return f"Workspace({shapes})"


def empty(xp: Any, workspace: Workspace | None, name: str, shape: tuple[int, ...], like: Any
          ) -> Any:
    """``workspace.empty(...)``, or a new array without a workspace."""
    if workspace is None:
        return xp.empty(shape, dtype=like.dtype, device=device(like))
    return workspace.empty(name, shape, like, xp=xp)
