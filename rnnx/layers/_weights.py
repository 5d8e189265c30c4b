"""A recurrent layer's weights by name: torch's suffixes in torch's order, and the check of
arrays given to a layer (:meth:`rnnx.layers.Recurrent.from_weights`, interop) before it adopts
them."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from .._backend import namespace
from .._typing import Array
from ..functional.registry import Cell

__all__ = ["check_given_weights", "layer_suffixes"]


def layer_suffixes(num_layers: int, bidirectional: bool) -> list[str]:
    """PyTorch's parameter suffixes in its order: ``l0, l0_reverse, l1, ...``."""
    return [f"l{k}{'_reverse' if d else ''}" for k in range(num_layers)
            for d in range(2 if bidirectional else 1)]


def check_given_weights(params: Mapping[str, Array], spec: Cell, keys: Collection[str],
                        w_h: str) -> None:
    """``params`` has exactly ``keys``, its arrays share a namespace, and the first recurrent
    weight (key ``w_h``) is ``(hidden, gates*hidden)`` for cell ``spec``; ``ValueError`` (or
    ``TypeError`` for arrays of several libraries) otherwise."""
    if set(params) != set(keys):
        raise ValueError(f"params must have exactly the keys {sorted(keys)}; got "
                         f"{sorted(params)}")
    namespace(*params.values())
    if not spec.recurrent_weights:
        w_x = w_h.replace("w_h", "w_x")
        a = params[w_x]
        if getattr(a, "ndim", None) != 2 or a.shape[1] % spec.gates or a.shape[1] == 0:
            raise ValueError(f"w_x must have shape (features, {spec.gates}*hidden) for cell "
                             f"{spec.name!r}; got shape {tuple(getattr(a, 'shape', ()))}")
        return
    a = params[w_h]
    if getattr(a, "ndim", None) != 2 or a.shape[1] != spec.gates * a.shape[0]:
        what = "(hidden, hidden)" if spec.gates == 1 else f"(hidden, {spec.gates}*hidden)"
        raise ValueError(f"w_h must have shape {what}; got shape {tuple(getattr(a, 'shape', ()))}")
