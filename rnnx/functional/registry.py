"""The cell registry: every cell kind rnnx knows, named once.

This module has one job: it registers the cell kinds and dispatches to their maths. A
:class:`Cell` record says what the rest of rnnx needs to know about a cell kind's maths — its
parameters and their shapes, its states, its forward and backward functions and its options —
and runs them by name (:meth:`Cell.run`, :meth:`Cell.run_backward`). Layers, networks,
estimators, the command line, interop, diagnostics, the agreement table and the tests read these
records; none of them branches on a cell's name. How a cell's initial weights are drawn lives
with the initialisers (:func:`rnnx.init.draw_cell_params`); how its weights map onto torch,
ONNX and Keras lives with each format (``LAYOUTS`` in :mod:`rnnx.interop.torch`,
:mod:`rnnx.interop.onnx` and :mod:`rnnx.interop.keras`).

Adding a cell is one maths module (its step, its step's backward and the sequence functions
built on :mod:`rnnx.functional._loop`) plus one entry in :data:`CELLS` below (or, from outside
rnnx, :func:`register_cell`). See ``docs/cells.md`` for the walk-through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._backend import executor, namespace, on_input_device
from . import gru, gru_reset_before, ln_lstm, lstm, min_gru, min_lstm, rnn
from ._loop import sequence_functions
from ._step import Cache, Parallel, Step

__all__ = ["CELLS", "FORMS", "Cell", "Parallel", "forget_cells", "get_cell", "register_cell",
           "unregister_cell"]

#: How :meth:`Cell.run` may run a cell: ``"auto"`` (its parallel form where it has one and
#: the backend says it pays, else its step through the driver), ``"step"`` or ``"parallel"``.
FORMS = ("auto", "step", "parallel")


@dataclass(frozen=True)
class Cell:
    """One cell kind.

    Parameters (the record's fields)
    --------------------------------
    name : str
        Registry key (``cell="lstm"`` everywhere).
    summary : str
        One line for help texts and tables.
    gates : int
        Gate blocks ``G``: ``w_x`` is ``(features, G*hidden)`` and ``w_h`` ``(hidden, G*hidden)``.
    recurrent_weights : bool
        Whether the cell has ``w_h``. The minimal RNNs have none: their gates read ``x_t``
        only, their recurrence is ``h_t = a_t h_{t-1} + b_t`` with ``a_t, b_t`` known for
        every step in advance (their step has no recurrent product, ``Step.products == ()``),
        and recurrent dropout has nothing to act on.
    parallel : Parallel or None
        The cell's parallel-in-time form over the whole sequence (:class:`Parallel`), which
        :meth:`run` takes by default where the backend's executor says it pays (the layers and
        estimators train and predict with it; on NumPy for small steps only); ``None``: the
        step through the driver only.
    gate_order : tuple of str
        The blocks' order along the ``G*hidden`` axis (``("i", "f", "g", "o")``).
    vectors : mapping name -> (width, init)
        The cell's 1-D parameters after ``w_x`` and ``w_h``, in the forward's argument order,
        each ``(width*hidden,)``; ``init`` is ``None`` for a bias drawn like torch's (uniform on
        ``±1/sqrt(hidden)``) or a constant (a layer norm's gain 1 and shift 0).
    states : tuple of str
        Recurrent states, ``("h",)`` or ``("h", "c")``; the forward takes ``h0`` (``c0``), the
        backward ``dh_n`` (``dc_n``), its gradients hold ``dh0`` (``dc0``) and the cache
        ``h_n`` (``c_n``).
    forward : callable
        ``forward(x, w_x, w_h, *vectors, *states0, mask=None, **options) -> (out, cache)``;
        made from ``step`` if omitted.
    backward : callable
        ``backward(dhs, cache, *final_state_grads, state_grads=None) -> grads`` (a NamedTuple
        with ``dx``, ``d<state>0`` and ``d<param>`` fields); made from ``step`` if omitted.
    options : mapping name -> allowed values
        Run options and their values, the first being the default (``{"nonlinearity":
        ("tanh", "relu")}``).
    forget_gates : mapping block -> sign
        The blocks of ``b`` that ``forget_bias`` shifts, each by ``sign * forget_bias``, so that
        a positive ``forget_bias`` makes the cell keep its state longer at initialisation: the
        LSTMs' forget gate ``{1: +1}``, minGRU's update gate ``{0: -1}`` (it keeps ``1 - z``),
        minLSTM's forget and input gates ``{0: +1, 1: -1}`` (it keeps ``f / (f + i)``). Empty:
        the cell takes no ``forget_bias``.
    rounding_gain : float
        How much more the cell amplifies rounding errors than a plain affine-tanh step (1 for
        rnn, lstm and gru); the tolerances of :mod:`rnnx.testing` and ``rnnx check`` scale by
        it. Layer normalisation divides each rounding error by a row's standard deviation.
    workspace : bool
        Whether ``forward`` and ``backward`` take ``workspace=`` (a
        :class:`rnnx.functional.Workspace` kept across calls); :meth:`run` and
        :meth:`run_backward` pass one only to such a cell (true for functions made from
        ``step``).
    step : Step
        The cell as its time step (:class:`rnnx.functional.Step`): the forward stage(s) and
        their hand-derived adjoints as plain Array-API functions, which the one driver runs over
        a sequence with the executor the backend picks (eagerly, or ``jax.lax.scan`` under
        ``jax.jit``). A cell given only its ``step`` gets ``forward`` and ``backward`` from it.
    """

    name: str
    summary: str
    gates: int
    gate_order: tuple[str, ...]
    vectors: Mapping[str, tuple[int, float | None]]
    states: tuple[str, ...]
    forward: Callable[..., tuple[Any, Any]] | None = None
    backward: Callable[..., Any] | None = None
    options: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    forget_gates: Mapping[int, float] = field(default_factory=dict)
    rounding_gain: float = 1.0
    workspace: bool = False
    step: Step | None = None
    recurrent_weights: bool = True
    parallel: Parallel | None = None

    def __post_init__(self) -> None:
        if self.step is not None and (self.step.products == ()) == self.recurrent_weights:
            raise ValueError(f"cell {self.name!r}: a step without recurrent products "
                             f"(products=()) is a cell with recurrent_weights=False, and only "
                             f"such a step")
        if self.forward is not None and self.backward is not None:
            return
        if self.step is None:
            raise TypeError(f"cell {self.name!r} needs its step (or forward and backward)")
        fwd, bwd = sequence_functions(self.step, name=self.name, gates=self.gates,
                                      vectors={k: w for k, (w, _) in self.vectors.items()},
                                      states=self.states, recurrent=self.recurrent_weights)
        object.__setattr__(self, "forward", self.forward or fwd)
        object.__setattr__(self, "backward", self.backward or bwd)
        object.__setattr__(self, "workspace", True)

    # -- parameters -------------------------------------------------------------------------
    @property
    def params(self) -> tuple[str, ...]:
        """Parameter names in the forward's argument order: ``w_x``, ``w_h`` (if the cell has
        recurrent weights), the vectors."""
        return ("w_x", "w_h", *self.vectors) if self.recurrent_weights else ("w_x", *self.vectors)

    def shapes(self, features: int, hidden: int) -> dict[str, tuple[int, ...]]:
        """Every parameter's shape for ``features`` inputs and ``hidden`` units."""
        width = self.gates * hidden
        out: dict[str, tuple[int, ...]] = {"w_x": (features, width)}
        if self.recurrent_weights:
            out["w_h"] = (hidden, width)
        out.update({name: (w * hidden,) for name, (w, _) in self.vectors.items()})
        return out

    def hidden_size(self, params: Mapping[str, Any]) -> int:
        """The hidden size of parameters ``params`` of this cell (from ``w_x``'s width)."""
        return int(params["w_x"].shape[1]) // self.gates

    # -- options ----------------------------------------------------------------------------
    def check_forget_bias(self, value: float) -> None:
        """A non-zero ``forget_bias`` needs gates that keep the state (:attr:`forget_gates`);
        ``ValueError`` naming the cells that have them otherwise."""
        if value and not self.forget_gates:
            raise ValueError(f"forget_bias is an option of cells with a forget gate (it shifts "
                             f"the gates that keep the state; cells with them: "
                             f"{', '.join(forget_cells())}); got forget_bias={value!r} with "
                             f"cell={self.name!r}")

    def shift_forget_gates(self, b: Any, forget_bias: float, hidden: int) -> None:
        """Add ``sign * forget_bias`` to each of :attr:`forget_gates`' blocks of the host
        bias ``b`` ``(G*hidden,)``, in place (checked with :meth:`check_forget_bias`)."""
        self.check_forget_bias(forget_bias)
        for k, sign in self.forget_gates.items():
            b[k * hidden : (k + 1) * hidden] += sign * forget_bias

    def layer_options(self, nonlinearity: str) -> dict[str, Any]:
        """The run options from the one option the layers and estimators take for every cell,
        ``nonlinearity``: passed to a cell that has it (Elman); any other cell takes only its
        implied ``"tanh"``."""
        if "nonlinearity" in self.options:
            return self.check_options({"nonlinearity": nonlinearity})
        if nonlinearity != "tanh":
            with_it = ", ".join(repr(n) for n, c in CELLS.items() if "nonlinearity" in c.options)
            raise ValueError(f"nonlinearity is an option of cells {with_it}; cell {self.name!r} "
                             f"has none (got nonlinearity={nonlinearity!r})")
        return self.check_options({})

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The run options with defaults filled in; a value the cell does not take, or an
        option it does not have, raises ``ValueError`` naming both."""
        out = {}
        for name, value in options.items():
            if name not in self.options:
                raise ValueError(f"{name} is not an option of cell {self.name!r} (its options: "
                                 f"{', '.join(self.options) or 'none'})")
            if value not in self.options[name]:
                raise ValueError(f"{name} must be one of {self.options[name]} for cell "
                                 f"{self.name!r}; got {value!r}")
            out[name] = value
        for name, allowed in self.options.items():
            out.setdefault(name, allowed[0])
        return out

    # -- running ----------------------------------------------------------------------------
    def _parallel(self, form: str, x: Any, params: Mapping[str, Any]) -> bool:
        """Whether :meth:`run` takes the parallel form for ``form`` (one of :data:`FORMS`) on
        input ``x`` ``(batch, time, features)``: ``"auto"`` asks the backend's executor
        whether it pays at this batch and hidden size."""
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}; got {form!r}")
        if form == "parallel" and self.parallel is None:
            with_it = ", ".join(n for n, c in CELLS.items() if c.parallel is not None)
            raise ValueError(f"cell {self.name!r} has no parallel form (cells with one: "
                             f"{with_it or 'none'}); got form='parallel'")
        if self.parallel is None or form == "step":
            return False
        if form == "parallel":
            return True
        batch = x.shape[0] if getattr(x, "ndim", 0) == 3 else 1  # a bad x: the form's checks
        hidden = self.hidden_size(params) if getattr(params.get("w_x"), "ndim", 0) == 2 else 1
        return executor(namespace(x)).parallel_pays(batch, hidden)

    @on_input_device
    def run(self, params: Mapping[str, Any], x: Any, state0: Mapping[str, Any] | None = None,
            *, mask: Any = None, options: Mapping[str, Any] | None = None,
            workspace: Any = None, form: str = "auto") -> tuple[Any, Any]:
        """``forward`` with parameters and initial states by name (``{"h0": ...}``);
        ``workspace`` is passed on where the cell takes one (:attr:`workspace`). ``form``
        (:data:`FORMS`): ``"auto"`` runs the cell's parallel form where it has one and the
        backend's executor says it pays at this batch and hidden size (on NumPy, small steps;
        everywhere else, always), its step through the driver otherwise; ``"step"`` always the
        step; ``"parallel"`` the parallel form (``ValueError`` for a cell without one).
        :meth:`run_backward` follows the form the cache came from."""
        state0 = state0 or {}
        args = (*(params[n] for n in self.params), *(state0.get(s + "0") for s in self.states))
        if self._parallel(form, x, params):
            return self.parallel.forward(x, *args, mask=mask, **(options or {}))
        extra = {"workspace": workspace} if workspace is not None and self.workspace else {}
        return self.forward(x, *args, mask=mask, **(options or {}), **extra)

    @on_input_device
    def run_backward(self, cache: Any, dhs: Any, finals: Mapping[str, Any] | None = None, *,
                     state_grads: list | None = None, workspace: Any = None
                     ) -> tuple[Any, dict, dict]:
        """``backward`` by name: ``finals`` maps ``"h"``/``"c"`` to the final states' gradients.
        Returns ``(dx, {"h0": dh0, ...}, {param name: gradient})``."""
        finals = finals or {}
        final_grads = tuple(finals.get(s) for s in self.states)
        if self.parallel is not None and not isinstance(cache, Cache):
            g = self.parallel.backward(dhs, cache, *final_grads, state_grads=state_grads)
        else:
            extra = {"workspace": workspace} if workspace is not None and self.workspace else {}
            g = self.backward(dhs, cache, *final_grads, state_grads=state_grads, **extra)
        return (g.dx, {s + "0": getattr(g, f"d{s}0") for s in self.states},
                {n: getattr(g, "d" + n) for n in self.params})

    def final_states(self, cache: Any) -> tuple[Any, ...]:
        """``(h_n,)`` or ``(h_n, c_n)`` of a forward's cache, each ``(batch, hidden)``."""
        return tuple(getattr(cache, s + "_n") for s in self.states)


#: Every cell kind, by name.
CELLS: dict[str, Cell] = {
    "rnn": Cell(
        name="rnn", summary="Elman RNN, h = f(x W_x + h W_h + b)", gates=1, gate_order=("h",),
        vectors={"b": (1, None)}, states=("h",), forward=rnn.rnn_forward,
        backward=rnn.rnn_backward, options={"nonlinearity": rnn.NONLINEARITIES},
        step=rnn.STEP),
    "lstm": Cell(
        name="lstm", summary="LSTM (torch's layout)", gates=4, gate_order=("i", "f", "g", "o"),
        vectors={"b": (4, None)}, states=("h", "c"), forward=lstm.lstm_forward,
        backward=lstm.lstm_backward, forget_gates={1: 1.0}, workspace=True,
        step=lstm.STEP),
    "gru": Cell(
        name="gru", summary="GRU, reset after the recurrent matmul (torch's layout)", gates=3,
        gate_order=("r", "z", "n"), vectors={"b_ih": (3, None), "b_hh": (3, None)},
        states=("h",), forward=gru.gru_forward, backward=gru.gru_backward, workspace=True,
        step=gru.STEP),
    "gru_reset_before": Cell(
        name="gru_reset_before",
        summary="GRU, reset before the recurrent matmul (Cho et al. 2014; Keras reset_after=False)",
        gates=3, gate_order=("r", "z", "n"), vectors={"b": (3, None)}, states=("h",),
        forward=gru_reset_before.gru_reset_before_forward,
        backward=gru_reset_before.gru_reset_before_backward, workspace=True,
        step=gru_reset_before.STEP),
    "ln_lstm": Cell(
        name="ln_lstm", summary="layer-normalised LSTM (Ba, Kiros & Hinton 2016)", gates=4,
        gate_order=("i", "f", "g", "o"),
        vectors={"b": (4, None), "gamma_x": (4, 1.0), "beta_x": (4, 0.0), "gamma_h": (4, 1.0),
                 "beta_h": (4, 0.0), "gamma_c": (1, 1.0), "beta_c": (1, 0.0)},
        states=("h", "c"), forward=ln_lstm.ln_lstm_forward, backward=ln_lstm.ln_lstm_backward,
        # Measured: float64 deviation between two implementations 10x the LSTM's, float32 40x.
        forget_gates={1: 1.0}, rounding_gain=10.0, step=ln_lstm.STEP),
    "min_gru": Cell(
        name="min_gru", summary="minGRU, gates on x_t only, parallel in time (Feng et al. 2024)",
        gates=2, gate_order=("z", "h"), vectors={"b": (2, None)}, states=("h",),
        forget_gates={0: -1.0}, step=min_gru.STEP, recurrent_weights=False,
        parallel=Parallel(min_gru.min_gru_forward, min_gru.min_gru_backward)),
    "min_lstm": Cell(
        name="min_lstm", summary="minLSTM, normalised gates on x_t only, parallel in time "
        "(Feng et al. 2024)", gates=3, gate_order=("f", "i", "h"), vectors={"b": (3, None)},
        states=("h",), forget_gates={0: 1.0, 1: -1.0}, step=min_lstm.STEP,
        recurrent_weights=False,
        parallel=Parallel(min_lstm.min_lstm_forward, min_lstm.min_lstm_backward)),
}


_BUILT_IN = frozenset(CELLS)


def get_cell(name: object) -> Cell:
    """The record of cell ``name``; ``ValueError`` naming the known cells otherwise."""
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"cell must be one of {sorted(CELLS)}; got {name!r}") from None


def register_cell(cell: Cell) -> None:
    """Make ``cell`` known to every part of rnnx (layers, networks, estimators, ``rnnx train
    --cell``, the agreement table) under ``cell.name``. A name already taken is refused. (Its
    torch, ONNX or Keras equivalent, if it has one, is an entry of that format's ``LAYOUTS`` in
    :mod:`rnnx.interop`.)"""
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be an rnnx.functional.registry.Cell; got "
                        f"{type(cell).__name__}")
    if cell.name in CELLS:
        raise ValueError(f"a cell named {cell.name!r} is registered already")
    CELLS[cell.name] = cell


def unregister_cell(name: str) -> None:
    """Remove a cell added with :func:`register_cell` (the built-in cells stay)."""
    if name in _BUILT_IN:
        raise ValueError(f"{name!r} is a built-in cell and cannot be removed")
    get_cell(name)
    del CELLS[name]


def forget_cells() -> list[str]:
    """Names of the cells that take ``forget_bias`` (:attr:`Cell.forget_gates`)."""
    return [n for n, c in CELLS.items() if c.forget_gates]
