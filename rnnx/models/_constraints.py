"""The estimators' hyper-parameters, checked from a declarative table.

:data:`PARAMETER_CONSTRAINTS` maps each constrained parameter to the values it accepts, in the
manner of scikit-learn's ``_parameter_constraints`` (scikit-learn is not imported): a value
passes when it satisfies any one entry of its list; ``None`` in a list accepts ``None``.
:func:`validate` checks a dict of parameters against such a table and raises a ``ValueError``
naming the parameter, what it accepts and what it got, e.g.
``hidden_size must be a positive int; got 0``. The table is the one place a hyper-parameter's
rule is written: the estimators check it at fit time, and ``rnnx train`` parses its options
with it (:func:`accepts`, :func:`expected`, :func:`value_type`).

The checks that depend on the chosen cell (which options that cell takes) are in
:func:`check_cell_options` alone.

``bool`` is never accepted as a number (``True`` is not a hidden size), nor NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from ..functional.registry import CELLS, get_cell
from ..optim import OPTIMIZERS

__all__ = ["PARAMETER_CONSTRAINTS", "Interval", "Options", "StrOptions", "accepts",
           "check_cell_options", "expected", "validate", "value_type"]


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

    def accepts(self, v: Any) -> bool:
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

    def accepts(self, v: Any) -> bool:
        return isinstance(v, str) and v in self.options

    def describe(self) -> str:
        return f"one of {sorted(self.options)}"


class Options:
    """One of a few literal ``values`` (``None``, ``True``/``False``, strings), compared by type
    and value so that ``1`` is not ``True`` (a ``str`` subclass still matches its string);
    messages list them as written."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values

    def accepts(self, v: Any) -> bool:
        return any(v is o or (isinstance(v, type(o)) and isinstance(v, bool) == isinstance(o, bool)
                              and v == o) for o in self.values)

    def describe(self) -> str:
        shown = [repr(o) for o in self.values]
        return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


_NONE = Options((None,))

# Each parameter: the values it accepts (any one entry). The order is the order of the checks.
PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    "hidden_size": [Interval(int, 1, None)],
    "epochs": [Interval(int, 1, None)],
    "batch_size": [Interval(int, 1, None)],
    "n_iter_no_change": [Interval(int, 1, None)],
    "learning_rate": [Interval(float, 0, None, closed="neither")],
    "tol": [Interval(float, 0, None, closed="left")],
    "optimizer": [StrOptions(OPTIMIZERS)],
    "clip_norm": [Interval(float, 0, None, closed="neither"), None],
    "validation_fraction": [Interval(float, 0, 1, closed="neither"), None],
    "dtype": [Options(("float32", "float64", None))],
    "num_layers": [Interval(int, 1, None)],
    "bidirectional": [Options((True, False))],
    "dropout": [Interval(float, 0, 1, closed="left", what="a probability",
                         note="the share of a layer's outputs zeroed between stacked layers "
                              "while training")],
    "forget_bias": [Interval(float, None, None)],
    "cell": [StrOptions(CELLS)],  # the registry itself: a cell registered later is accepted
}


def _entries(name: str) -> list[Any]:
    return [_NONE if c is None else c for c in PARAMETER_CONSTRAINTS[name]]


def accepts(name: str, value: Any) -> bool:
    """Whether hyper-parameter ``name`` (a key of the table) accepts ``value``."""
    return any(c.accepts(value) for c in _entries(name))


def expected(name: str, *, none: str = "None") -> str:
    """What hyper-parameter ``name`` accepts, in words (``"a positive int"``); ``none`` is how
    the value ``None`` is written where the table accepts it (``--clip 0``)."""
    return " or ".join(none if c is None else c.describe() for c in PARAMETER_CONSTRAINTS[name])


def value_type(name: str) -> type:
    """The Python type of hyper-parameter ``name``'s values other than ``None`` (``int``,
    ``float``, ``str`` or ``bool``): what a command line parses its text into."""
    for c in _entries(name):
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
    for name, allowed in constraints.items():
        if name not in params:
            continue
        v = params[name]
        entries = [_NONE if c is None else c for c in allowed]
        if not any(c.accepts(v) for c in entries):
            raise ValueError(f"{name} must be {' or '.join(c.describe() for c in entries)}; "
                             f"got {v!r}")


def check_cell_options(cell: str, options: dict[str, Any]) -> None:
    """The checks that depend on the chosen cell, read off its registry record
    (:mod:`rnnx.functional.registry`): ``forget_bias`` (0 means unset) needs a cell with a
    forget gate, and ``nonlinearity`` must be one the cell takes (``"tanh"``, implied, for a
    cell without that option). Run after :func:`validate`, so ``cell`` is a registered cell and
    the options' types are already checked."""
    spec = get_cell(cell)
    spec.check_forget_bias(options.get("forget_bias", 0))
    if "nonlinearity" in options:
        spec.layer_options(options["nonlinearity"])
