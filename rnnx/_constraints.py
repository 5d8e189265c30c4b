"""Hyper-parameters checked from declarative tables, in the manner of scikit-learn's
``_parameter_constraints`` (scikit-learn is not imported): a table maps each parameter to the
values it accepts, a value passing when it satisfies any one entry of its list (``None`` in a
list accepts ``None``). :func:`validate` checks a dict of parameters against a table and raises
a ``ValueError`` naming the parameter, what it accepts and what it got, e.g.
``hidden_size must be a positive int; got 0``.

The tables: the recurrent layers' (:data:`rnnx.layers._constraints.LAYER_CONSTRAINTS`) and the
estimators' (:data:`rnnx.models._constraints.PARAMETER_CONSTRAINTS`, which takes the layers'
rules for the parameters they share), so each rule is written once. Standard library only.

``bool`` is never accepted as a number (``True`` is not a hidden size), nor NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

__all__ = ["Interval", "Options", "StrOptions", "accepts", "expected", "validate", "value_type"]


class Interval:
    """Numbers of ``kind`` (``int``, or ``float``: any int or float) between ``left`` and
    ``right`` (``None``: unbounded), ``closed`` on ``"left"``, ``"right"``, ``"both"`` or
    ``"neither"`` side; NaN and infinity never pass. ``what`` names the values in messages of
    bounded intervals (``"a probability"``) and ``note`` adds a parenthesised explanation."""

    def __init__(self, kind: type, left: float | None, right: float | None, *,
                 closed: str = "both", what: str = "", note: str = "") -> None:
        if kind not in (int, float):
            raise TypeError(f"Interval kind must be int or float; got {kind!r}")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be 'left', 'right', 'both' or 'neither'; got {closed!r}")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed
        self.what, self.note = what, note

    def accepts(self, v: object) -> bool:
        types = (int,) if self.kind is int else (int, float)
        if isinstance(v, bool) or not isinstance(v, types):
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if self.left is not None:
            if v < self.left or (v == self.left and self.closed not in ("left", "both")):
                return False
        if self.right is not None:
            if v > self.right or (v == self.right and self.closed not in ("right", "both")):
                return False
        return True

    def describe(self) -> str:
        noun = "int" if self.kind is int else "finite number"
        left_closed = self.closed in ("left", "both")
        if self.left is None and self.right is None:
            text = f"a {noun}"
        elif self.right is None and self.left == 0:
            text = f"a {'non-negative' if left_closed else 'positive'} {noun}"
        elif self.right is None and self.left == 1 and self.kind is int and left_closed:
            text = f"a positive {noun}"
        else:
            lb = "(-inf" if self.left is None else ("[" if left_closed else "(") + f"{self.left}"
            rb = "inf)" if self.right is None else f"{self.right}" + (
                "]" if self.closed in ("right", "both") else ")")
            what = self.what or (f"an {noun}" if self.kind is int else "")
            text = f"{what} in {lb}, {rb}".strip()
        return f"{text} ({self.note})" if self.note else text


class StrOptions:
    """A string among ``options`` (a live collection, e.g. a registry dict: names added later
    are accepted, and messages list them sorted)."""

    def __init__(self, options: Collection[str]) -> None:
        self.options = options

    def accepts(self, v: object) -> bool:
        return isinstance(v, str) and v in self.options

    def describe(self) -> str:
        return f"one of {sorted(self.options)}"


class Options:
    """One of a few literal ``values`` (``None``, ``True``/``False``, strings), compared by type
    and value so that ``1`` is not ``True`` (a ``str`` subclass still matches its string);
    messages list them as written."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values

    def accepts(self, v: object) -> bool:
        return any(v is o or (isinstance(v, type(o)) and isinstance(v, bool) == isinstance(o, bool)
                              and v == o) for o in self.values)

    def describe(self) -> str:
        shown = [repr(o) for o in self.values]
        return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


_NONE = Options((None,))


def _entries(table: dict[str, list[Any]], name: str) -> list[Any]:
    return [_NONE if c is None else c for c in table[name]]


def accepts(table: dict[str, list[Any]], name: str, value: object) -> bool:
    """Whether parameter ``name`` of ``table`` accepts ``value``."""
    return any(c.accepts(value) for c in _entries(table, name))


def expected(table: dict[str, list[Any]], name: str, *, none: str | None = "None") -> str:
    """What parameter ``name`` of ``table`` accepts, in words (``"a positive int"``); ``none``
    is how the value ``None`` is written where the table accepts it, or ``None`` to leave it
    out (a command line, which cannot pass ``None``)."""
    return " or ".join(none if c is None else c.describe() for c in table[name]
                       if c is not None or none is not None)


def value_type(table: dict[str, list[Any]], name: str) -> type:
    """The Python type of parameter ``name``'s values other than ``None`` (``int``, ``float``,
    ``str`` or ``bool``): what a command line parses its text into."""
    for c in _entries(table, name):
        if isinstance(c, Interval):
            return c.kind
        if isinstance(c, StrOptions):
            return str
        kinds = {type(v) for v in c.values if v is not None}
        if len(kinds) == 1:
            return kinds.pop()
    raise TypeError(f"the table gives no value type for {name!r}")


def validate(params: dict[str, Any], constraints: dict[str, list[Any]]) -> None:
    """Check every parameter of ``constraints`` in ``params`` (in the table's order); the first
    that satisfies none of its entries raises ``ValueError("<name> must be <what>; got <v>")``.
    Parameters absent from ``params`` are not checked."""
    for name in constraints:
        if name in params and not accepts(constraints, name, params[name]):
            raise ValueError(f"{name} must be {expected(constraints, name)}; got "
                             f"{params[name]!r}")
