"""What a cell is to the driver: its step, written as its equations (:class:`Step`), and what
the step's backward returns (:class:`StepGrads`); the cache every cell's forward returns
(:class:`Cache`).

A step of every cell has the same shape (Appleyard, Kocisky & Blunsom 2016, cuDNN's RNN): the
**driver** computes the matrix products, the **cell** everything elementwise between them.

* The input side ``u_t`` is hoisted over all steps by the driver: ``u = x w_x + p[input_bias]``,
  one GEMM over all ``batch * time`` rows (or the cell's own :attr:`Step.input` on ``x w_x``).
* Each *stage* of a step starts with one recurrent product the driver makes,
  ``v = operand @ w_h[:, block] (+ p[recurrent_bias][block])``; the operand of the first stage
  is the state ``h_{t-1}``, that of a later stage what the stage before returned. The stage is
  the cell's pointwise maths after it. Most cells have one stage; the reset-before GRU has two
  (its candidate's product takes ``r * h_{t-1}``).
* Forward, a cell's stages are ``stage(p, u_t, v, state[, ctx], *, xp, **options)``: ``p``
  maps parameter names to arrays, ``state`` is the tuple of states before the step (``(h,)``
  or ``(h, c)``, each ``(batch, hidden)``). A stage returns ``(operand, ctx)`` for the next
  stage, the last one ``(new_state, saved)``: the states after the step and the per-step
  arrays its backward needs (an array of ``new_state`` may be among them: it is kept once).
* Backward, the adjoint of each stage, last to first: the last stage's gets ``(p, g, saved,
  state)`` with ``g`` the total gradients reaching the new states, an earlier stage's ``(p,
  d_operand, saved, state, ctx)`` with ``d_operand`` the gradient of the next stage's operand
  (the driver's ``dv @ w^T``). An adjoint returns ``(dv, ctx)`` for the stage before, the
  first stage's a :class:`StepGrads`. The driver adds ``dv_1 @ w_1^T + dstate`` for the
  previous states, sums ``du`` and ``dv`` into the weight gradients with one GEMM each after
  the loop, and runs the steps over time with an executor the backend chose
  (:mod:`rnnx._backend`): eagerly, or compiled (``jax.lax.scan`` under ``jax.jit``).

Every function of a step is plain Array-API code: no matrix product, no in-place update, no
item assignment, no Python branch on array values, so that one definition runs eagerly, under
``jax.lax.scan``, or handed to an elementwise fuser.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["Cache", "Parallel", "Step", "StepGrads", "Tuned", "blocks"]


class StepGrads(NamedTuple):
    """What the adjoint of a step's first stage returns, per step.

    ``du``: the gradient of the hoisted input side ``u_t`` ``(batch, G*hidden)``; ``dv``: the
    gradient of the first stage's recurrent product ``v`` (its block's width); ``dstate``: one
    entry per state, the gradient reaching that previous state other than through ``dv @ w^T``
    (``None``: nothing else); ``dparams``: per-row contributions ``(batch, width)`` to the
    gradients of parameters the step reads itself (a layer norm's gain), which the driver sums
    over rows and steps."""

    du: Any
    dv: Any
    dstate: tuple[Any, ...]
    dparams: Mapping[str, Any] = {}


class Tuned(NamedTuple):
    """A cell's NumPy fast path (:mod:`rnnx.functional._tuned`): its whole-sequence
    ``forward(xp, x, params, state0, mask, options, workspace) -> (out, Cache)`` and
    ``backward(xp, cache, dhs, finals, state_grads, workspace) -> grads by name``."""

    forward: Callable[..., Any]
    backward: Callable[..., Any]


class Parallel(NamedTuple):
    """A cell's whole-sequence, parallel-in-time form (the minimal RNNs': a linear scan,
    :mod:`rnnx.functional.scan`), with the calling conventions of a cell's ``forward`` and
    ``backward`` (no ``workspace``): ``forward(x, *params, *initial states, *, mask=None) ->
    (out, cache)`` and ``backward(dhs, cache, *final-state gradients, *, state_grads=None)
    -> grads``. It computes what the step computes, to rounding (checked in the tests)."""

    forward: Callable[..., Any]
    backward: Callable[..., Any]


@dataclass(frozen=True, eq=False)
class Step:
    """A cell's time step for the driver (:mod:`rnnx.functional._loop`); see the module
    docstring for the calling conventions.

    Fields
    ------
    forward : tuple of callables
        The stages, in order (usually one).
    backward : tuple of callables
        Their adjoints, in the same order (the driver calls them last to first).
    products : tuple of (int, int)
        The gate blocks of ``w_h`` (and of ``recurrent_bias``) each stage's product uses,
        ``[start, stop)`` in units of ``hidden``; together they cover ``w_h`` once.
        ``None``: one stage over every block. ``()``: no recurrent product at all (a cell
        without ``w_h``, whose gates read ``x_t`` only: the stages get ``v=None`` and their
        first adjoint returns ``dv=None``).
    input_bias : str or None
        The parameter added to the hoisted input projection ``u = x w_x + p[input_bias]``.
    recurrent_bias : str or None
        A parameter added to the recurrent products (the GRU's ``b_hh``).
    input, input_backward : callables or None
        A cell's own input side instead of ``u = x w_x + p[input_bias]``: ``input(p, xw, *, xp)
        -> (u, saved)`` on the projection rows ``xw = x w_x`` ``(rows, G*hidden)``, and
        ``input_backward(p, du, saved, *, xp) -> (dxw, dparams)`` with ``dparams`` per-row
        contributions as in :class:`StepGrads`.
    tuned : Tuned or None
        A NumPy fast path for the whole sequence (:mod:`rnnx.functional._tuned`): taken where
        the backend says tuned forms pay (:func:`rnnx._backend.executor`), checked against
        this step on every test case.
    """

    forward: tuple[Callable[..., Any], ...]
    backward: tuple[Callable[..., Any], ...]
    products: tuple[tuple[int, int], ...] | None = None
    input_bias: str | None = "b"
    recurrent_bias: str | None = None
    input: Callable[..., Any] | None = None
    input_backward: Callable[..., Any] | None = None
    tuned: Tuned | None = None

    def __post_init__(self) -> None:
        if len(self.forward) != len(self.backward) or not self.forward:
            raise ValueError("a Step needs one backward function per forward stage; got "
                             f"{len(self.forward)} stages and {len(self.backward)} adjoints")
        if (self.input is None) != (self.input_backward is None):
            raise ValueError("a Step's input and input_backward come together")

    def product_blocks(self, gates: int) -> tuple[tuple[int, int], ...]:
        """:attr:`products`, with ``None`` read as one stage over all ``gates`` blocks."""
        return ((0, gates),) if self.products is None else self.products


def blocks(a: Any, n: int) -> list[Any]:
    """The ``n`` equal column blocks of ``a (batch, n*hidden)`` (views): the gates of a fused
    pre-activation, ``a_i, a_f, a_g, a_o = blocks(a, 4)``."""
    width = a.shape[-1] // n
    return [a[..., k * width : (k + 1) * width] for k in range(n)]


class Cache(NamedTuple):
    """What a cell's backward needs from its forward: references to the caller's ``x``,
    parameters and initial states, and the arrays the forward made.

    ``hs`` ``(batch, time, hidden)`` holds the states (carried through masked steps); without a
    mask it is the very array the forward returned. ``states``, ``saved``, ``operands`` are the
    driver's time-major ``(time, batch, .)`` arrays (the states, the step's saved arrays, the
    operands of products after the first), ``extra`` what a cell's own input side or fast
    path keeps. ``tuned`` says a NumPy fast path made it (its backward then reads it).
    Parameters and initial states read as attributes: ``cache.w_h``, ``cache.h0`` (``None``
    for a zero initial state). A tuple, so that :func:`rnnx._backend.on_input_device` finds
    its arrays (``x`` first)."""

    x: Any
    params: Mapping[str, Any]
    state0: Mapping[str, Any]
    hs: Any
    states: tuple[Any, ...]
    mask: Any = None
    saved: tuple[Any, ...] = ()
    operands: tuple[Any, ...] = ()
    extra: Any = None
    options: Mapping[str, Any] = {}
    tuned: bool = False

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not fields: the parameters (and other states).
        if name.startswith("__"):
            raise AttributeError(name)
        for table in (self.params, self.state0):
            if name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def h0(self) -> Any:
        """The initial hidden state ``(batch, hidden)``, ``None`` for zeros."""
        return self.state0.get("h0")

    @property
    def c0(self) -> Any:
        """The initial cell state ``(batch, hidden)`` of a cell with one, ``None`` for zeros."""
        return self.state0.get("c0")

    def arrays(self) -> dict[str, Any]:
        """Every array the forward made for the backward, by a name of its place
        (``"states0"``, ``"saved1"``, ``"extra2"``...): for code that copies or compares a
        cache."""
        out: dict[str, Any] = {}
        extra = self.extra if isinstance(self.extra, tuple) else (
            () if self.extra is None else (self.extra,))
        for name, group in (("states", self.states), ("saved", self.saved),
                            ("operands", self.operands), ("extra", extra)):
            out.update({f"{name}{k}": a for k, a in enumerate(group) if a is not None})
        return out

    @property
    def nonlinearity(self) -> str:
        """The Elman cell's activation (``"tanh"`` for every other cell)."""
        return self.options.get("nonlinearity", "tanh")

    @property
    def h_n(self) -> Any:
        """Final hidden state ``(batch, hidden)``: each sample's last valid state under a mask."""
        return self.hs[:, -1, :]

    @property
    def c_n(self) -> Any:
        """Final cell state ``(batch, hidden)`` of a cell that has one."""
        return self.states[1][-1, ...]
