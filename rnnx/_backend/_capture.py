"""The captured executor: torch on a CUDA device, the estimators' training step recorded once as
a CUDA graph and replayed for every mini-batch.

On a GPU eager rnnx pays one Python dispatch and one kernel launch per operation per time step;
replaying a captured graph runs the same kernels without either (docs/gpu.md measured rnnx's
unchanged forward + backward replayed at 0.7-1.3x full-precision cuDNN for LSTM and GRU). The
estimators' epoch is already written for a compiler (:class:`rnnx.models._training.
CompiledEpoch`: one pure training step of arrays — forward, loss, hand-derived backward,
clipping, update — over equally shaped, padded mini-batches, with the dropout keys and the
optimizer's per-step factors as arguments), so :meth:`Captured.scan` can capture its body:

* static input slots hold the carry (parameters, optimizer state) and one mini-batch; the step
  is warmed up twice on a side stream, then captured with ``torch.cuda.graph`` (its
  allocations in the graph's private pool), and the captured step copies its new carry into the
  carry slots, so that one replay after another trains;
* per mini-batch: the batch is copied into its slots, the graph replayed, its per-batch outputs
  (loss, correct predictions) cloned; nothing synchronises with the host;
* one graph per (step, shapes, dtypes), kept for the next epoch and the next ``partial_fit``.

Everything else — the cell's time loop inside the step included — runs as :class:`Eager` does.
A step that cannot be captured (an operation that synchronises, which torch refuses while
capturing) runs eagerly, batch after batch, with the same results; why is kept in
:attr:`Captured.fallbacks`. ``RNNX_GPU_EXECUTOR=eager`` turns capture off.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ._executors import Eager

__all__ = ["Captured"]


def _flatten(tree: Any) -> tuple[list[Any], Any]:
    """The array leaves of ``tree`` (tuples, lists, dicts, ``None``, arrays) and its structure."""
    leaves: list[Any] = []

    def walk(x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, (tuple, list)):
            return (type(x), tuple(walk(v) for v in x))
        if isinstance(x, dict):
            return (dict, tuple(x), tuple(walk(v) for v in x.values()))
        leaves.append(x)
        return "leaf"

    return leaves, walk(tree)


def _unflatten(spec: Any, leaves: list[Any]) -> Any:
    it = iter(leaves)

    def build(s: Any) -> Any:
        if s is None:
            return None
        if s == "leaf":
            return next(it)
        if s[0] is dict:
            return dict(zip(s[1], (build(v) for v in s[2])))
        return s[0](build(v) for v in s[1])

    return build(spec)


def _signature(leaves: list[Any]) -> tuple:
    return tuple((tuple(a.shape), str(a.dtype), str(a.device)) for a in leaves)


class _Graph:
    """One captured training step: its static slots, the graph, its static outputs."""

    def __init__(self, body: Callable[..., Any], carry: Any, x0: Any) -> None:
        import torch

        carry_leaves, self.carry_spec = _flatten(carry)
        x_leaves, self.x_spec = _flatten(x0)
        self.carry = [a.clone() for a in carry_leaves]
        self.x = [a.clone() for a in x_leaves]
        static_carry = _unflatten(self.carry_spec, self.carry)
        static_x = _unflatten(self.x_spec, self.x)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # torch's recipe: warm up on a side stream first
            for _ in range(2):
                body(static_carry, static_x)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            new_carry, ys = body(static_carry, static_x)
            new_leaves, spec = _flatten(new_carry)
            if spec != self.carry_spec:
                raise RuntimeError("the training step returned a carry of another structure")
            for dst, src in zip(self.carry, new_leaves):
                dst.copy_(src)  # the carry stays in its slots: the next replay reads it
        self.ys, self.ys_spec = _flatten(ys)

    def run(self, carry: Any, xs: Any, n: int) -> tuple[Any, Any]:
        import torch

        for dst, src in zip(self.carry, _flatten(carry)[0]):
            dst.copy_(src)
        x_leaves = _flatten(xs)[0]
        outs: list[list[Any]] = [[] for _ in self.ys]
        for b in range(n):
            for dst, src in zip(self.x, x_leaves):
                dst.copy_(src[b])
            self.graph.replay()
            for k, y in enumerate(self.ys):
                outs[k].append(y.clone())  # the next replay overwrites the static outputs
        # Fresh arrays out: the trainer keeps references to them (its epoch snapshots).
        carry = _unflatten(self.carry_spec, [a.clone() for a in self.carry])
        return carry, _unflatten(self.ys_spec, [torch.stack(o) for o in outs])


class Captured(Eager):
    """torch on CUDA: :class:`Eager` for the cells' time loops, and :meth:`scan` (the
    estimators' epoch over its mini-batches) as replays of one captured CUDA graph of the
    training step (see the module docstring)."""

    name = "captured"
    #: Graphs kept (the least recently used is dropped past it: each holds its memory pool).
    keep = 4

    def __init__(self, capture: bool = True) -> None:
        super().__init__(tuned=False)
        #: ``False``: :meth:`scan` runs the step eagerly, batch after batch (the same kernels,
        #: launched one by one: what the tests compare a replay with, bit for bit).
        self.capture = capture
        self._graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        #: Why a step ran eagerly instead, by step (its code's name): empty when all captured.
        self.fallbacks: dict[str, str] = {}
        self._eager_steps: set[tuple] = set()  # (code, closure) of steps that could not be
        #: How many graphs were captured, and replayed, in this process.
        self.captures = 0
        self.replays = 0

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` itself: only the step inside an epoch is captured (:meth:`scan`)."""
        return fn

    def placed_like(self, tree: Any, like: Any) -> Any:
        """``tree`` as it is: torch places arrays where they are made."""
        return tree

    @staticmethod
    def _eager_scan(body: Callable[..., Any], carry: Any, xs: Any, n: int) -> tuple[Any, Any]:
        import torch

        x_leaves, x_spec = _flatten(xs)
        outs = None
        for b in range(n):
            carry, ys = body(carry, _unflatten(x_spec, [a[b] for a in x_leaves]))
            y_leaves, y_spec = _flatten(ys)
            outs = [[] for _ in y_leaves] if outs is None else outs
            for k, y in enumerate(y_leaves):
                outs[k].append(y)
        return carry, _unflatten(y_spec, [torch.stack(o) for o in outs])

    def scan(self, body: Callable[..., Any], carry: Any, xs: Any) -> tuple[Any, Any]:
        """``(carry, stacked per-batch outputs)`` of ``body(carry, xs[b])`` for every ``b`` along
        the leading axis of ``xs``, as ``jax.lax.scan`` would give them: the body captured once
        and replayed."""
        carry_leaves, carry_spec = _flatten(carry)
        x_leaves, x_spec = _flatten(xs)
        n = x_leaves[0].shape[0]
        code = getattr(body, "__code__", body)
        closure = tuple(id(c.cell_contents) for c in (getattr(body, "__closure__", None) or ()))
        key = (code, closure, carry_spec, x_spec, _signature(carry_leaves),
               _signature([a[0] for a in x_leaves]))
        name = getattr(code, "co_qualname", str(code))
        if not self.capture or (code, closure) in self._eager_steps:
            return self._eager_scan(body, carry, xs, n)
        graph = self._graphs.get(key)
        if graph is None:
            try:
                graph = _Graph(body, carry, _unflatten(x_spec, [a[0] for a in x_leaves]))
            except Exception as exc:  # an operation torch refuses while capturing
                self.fallbacks[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                self._eager_steps.add((code, closure))
                return self._eager_scan(body, carry, xs, n)
            self.captures += 1
            self._graphs[key] = graph
            while len(self._graphs) > self.keep:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        self.replays += n
        return graph.run(carry, xs, n)
