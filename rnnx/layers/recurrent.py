"""The recurrent layer: parameters, gradients and the forward caches around
:mod:`rnnx.functional`, for every cell of :mod:`rnnx.functional.registry`, stacked and/or
bidirectional. The single-layer classes of :mod:`rnnx.layers.single` are this class with one
layer and one direction.
"""

from __future__ import annotations

from typing import Any

from .._backend import device as device_of
from .._backend import get_namespace, host_rng, namespace, on_input_device
from .._constraints import validate
from .._typing import Array, Device, DType
from ..functional._mask import as_step_mask
from ..functional._workspace import Workspace
from ..functional.dropout import DROPOUT_KEY_WORDS, dropout_scale
from ..functional.registry import Cell, get_cell
from ..init import draw_cell_params, place, resolve_dtype
from ._constraints import LAYER_CONSTRAINTS
from ._weights import check_given_weights, layer_suffixes

__all__ = ["Recurrent", "layer_suffixes"]


class Recurrent:
    """Stacked and/or bidirectional recurrent layer of any registered cell, the equivalent of
    ``torch.nn.RNN/LSTM/GRU(..., num_layers, bidirectional, dropout, batch_first=True)``.

    Parameters
    ----------
    input_size, hidden_size : int
    cell : str
        A key of :data:`rnnx.functional.registry.CELLS`: ``"rnn"`` (Elman), ``"lstm"``,
        ``"gru"``, ``"gru_reset_before"`` (Keras's ``reset_after=False`` GRU), ``"ln_lstm"``
        (layer-normalised LSTM), or one registered with
        :func:`rnnx.functional.registry.register_cell`.
    num_layers : int
    bidirectional : bool
        Each layer runs a forward and a time-reversed cell and concatenates their outputs
        (``(batch, time, 2*hidden)``); with a mask, the reverse cell starts at each sample's
        own last valid step (as torch's packed sequences do).
    dropout : float
        Dropout on the output of every layer but the last, in training mode (:meth:`train`).
        The keep masks are drawn on the host from the layer's seeded generator and moved to the
        device, so one seed gives the same masks on every backend.
    nonlinearity : {"tanh", "relu"}
        Elman cells only (other cells accept only ``"tanh"``).
    return_sequences : bool
        :meth:`forward` returns the last layer's output at every step ``(batch, time,
        dirs*hidden)``; otherwise the last layer's final state(s) ``(batch, dirs*hidden)``
        (forward direction first, like torch's ``h_n[-2:]``).
    return_state : bool
        :meth:`forward` returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for a cell with a
        cell state) with ``h_n``/``c_n`` in torch's layout ``(num_layers*dirs, batch, hidden)``.
    init, recurrent_init : str
        Initialisers (:mod:`rnnx.init`) of the input and recurrent weights; the defaults
        (``"torch"``) match torch: uniform on ``±1/sqrt(hidden)``, biases too.
    seed : int or None
        Seed of the host generator the weights are drawn from, in torch's layer order: the same
        seed gives the same weights, bit for bit, on every backend.
    backend, device, dtype
        Where the parameters live: a backend name (``"numpy"``, ``"torch"``, ``"cupy"``,
        ``"array_api_strict"``, ``"jax"``), one of its devices (default device if ``None``) and
        ``"float32"``/``"float64"``.
    forget_bias : float
        Added to the forget gate's bias (cells with a forget gate; 1.0 is the usual choice for
        long sequences, 0.0 matches torch).

    Attributes
    ----------
    params, grads : dict
        Keyed ``"<suffix>.<name>"`` with torch's suffixes, e.g. ``"l0.w_x"``,
        ``"l1_reverse.b_hh"``.
    dh0, dc0 : array (num_layers*dirs, batch, hidden)
        Gradients of the initial states after :meth:`backward` (``dc0`` ``None`` without a cell
        state).
    """

    _flat = False  # the single-layer classes name parameters without the "l0." prefix

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        cell: str = "rnn",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        nonlinearity: str = "tanh",
        return_sequences: bool = False,
        return_state: bool = False,
        init: str = "torch",
        recurrent_init: str = "torch",
        seed: int | None = None,
        backend: str = "numpy",
        device: Device = None,
        dtype: str | DType = "float64",
        forget_bias: float = 0.0,
    ) -> None:
        validate(dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                      init=init, recurrent_init=recurrent_init), LAYER_CONSTRAINTS)
        spec = get_cell(cell)
        options = spec.layer_options(nonlinearity)
        xp = get_namespace(backend)
        dt = resolve_dtype(xp, dtype)
        rng = host_rng(seed)
        params = {}
        for sfx in layer_suffixes(num_layers, bidirectional):
            fan_in = input_size if sfx.startswith("l0") else (2 if bidirectional else 1) * hidden_size
            host = draw_cell_params(spec, rng, fan_in, hidden_size, init=init,
                                    recurrent_init=recurrent_init, forget_bias=forget_bias)
            for k, v in host.items():
                params[self._key(sfx, k)] = place(v, xp=xp, device=device, dtype=dt)
        self._setup(params, spec, options, num_layers, bidirectional, dropout, return_sequences,
                    return_state, rng)

    @classmethod
    def from_weights(
        cls,
        params: dict[str, Array],
        *,
        cell: str,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        nonlinearity: str = "tanh",
        return_sequences: bool = False,
        return_state: bool = False,
        seed: int | None = None,
    ) -> Recurrent:
        """A layer around given arrays, keyed like :attr:`params` (``"l0.w_x"``, ...). They are
        used as given, never written to; ``seed`` seeds the dropout generator only."""
        spec = get_cell(cell)
        validate({"num_layers": num_layers}, LAYER_CONSTRAINTS)
        self = cls.__new__(cls)
        self._adopt(params, spec, spec.layer_options(nonlinearity), num_layers, bidirectional,
                    dropout, return_sequences, return_state, host_rng(seed))
        return self

    def _adopt(self, params: dict, spec: Cell, options: dict, num_layers: int,
               bidirectional: bool, dropout: float, return_sequences: bool, return_state: bool,
               rng: Any) -> None:
        keys = [self._key(s, k) for s in layer_suffixes(num_layers, bidirectional)
                for k in spec.params]
        check_given_weights(params, spec, keys, self._key("l0", "w_h"))
        self._setup(dict(params), spec, options, num_layers, bidirectional, dropout,
                    return_sequences, return_state, rng)

    def _setup(self, params: dict, spec: Cell, options: dict, num_layers: int,
               bidirectional: bool, dropout: float, return_sequences: bool, return_state: bool,
               rng: Any) -> None:
        validate({"dropout": dropout}, LAYER_CONSTRAINTS)
        self.params = params
        self.grads: dict[str, Any] = {}
        self.spec = spec
        self.options = options
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.training = True
        self.dh0: Array | None = None  # the initial states' gradients, after backward()
        self.dc0: Array | None = None
        self._rng = rng
        self._caches: list | None = None
        self._drops: list = []
        # One per layer and direction: their caches are alive together (:meth:`forward`).
        self._workspaces = [Workspace() for _ in range(num_layers * self.dirs)]

    def _key(self, sfx: str, name: str) -> str:
        return name if self._flat else f"{sfx}.{name}"

    def draw_dropout_keys(self) -> tuple[int, ...]:
        """The keys of the next dropout mask, from the layer's seeded host generator (one draw
        per stacked-layer boundary per training forward)."""
        return tuple(int(k) for k in self._rng.integers(0, 1 << 16, size=DROPOUT_KEY_WORDS))

    def _dropout_scale(self, shape: tuple[int, ...], *, xp: Any, dtype: Any, device: Any) -> Any:
        """The dropout multipliers of one layer's output ``(B, T, D*H)``: only the keys come
        from the host generator, the mask is drawn on the device. Data-parallel training
        (:mod:`rnnx.models._dask_worker`) replaces this, on a worker, by the rows of the global
        mini-batch's mask that the worker holds."""
        return dropout_scale(shape, self.dropout, self.draw_dropout_keys(), xp=xp, dtype=dtype,
                             device=device)

    # -- introspection ------------------------------------------------------------------------
    @property
    def cell(self) -> str:
        """The cell's registry name."""
        return self.spec.name

    @property
    def nonlinearity(self) -> str:
        return self.options.get("nonlinearity", "tanh")

    @property
    def dirs(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def input_size(self) -> int:
        return int(self.params[self._key("l0", "w_x")].shape[0])

    @property
    def hidden_size(self) -> int:
        return self.spec.hidden_size({"w_x": self.params[self._key("l0", "w_x")]})

    @property
    def output_size(self) -> int:
        """Width of :meth:`forward`'s output's last axis (``dirs * hidden``)."""
        return self.dirs * self.hidden_size

    @property
    def device(self) -> Device:
        """Device the parameters live on."""
        return device_of(self.params[self._key("l0", "w_x")])

    def layer_params(self, k: int, reverse: bool = False) -> dict[str, Array]:
        """The parameters of layer ``k`` (direction ``reverse``) under the cell's own names."""
        sfx = f"l{k}{'_reverse' if reverse else ''}"
        return {name: self.params[self._key(sfx, name)] for name in self.spec.params}

    def train(self, mode: bool = True) -> Recurrent:
        """Training mode (dropout on) or, with ``mode=False``, evaluation mode."""
        self.training = bool(mode)
        return self

    def eval(self) -> Recurrent:
        return self.train(False)

    @property
    def final_state(self) -> tuple[Array, ...]:
        """``(h_n,)`` or ``(h_n, c_n)`` of the last forward, ``(num_layers*dirs, batch, hidden)``
        in torch's order; feed back as ``forward(x, *state)`` to carry state across chunks."""
        if self._caches is None:
            raise RuntimeError("final_state read before forward(): there is no state yet")
        xp = namespace(self._caches[0].hs)
        per = [self.spec.final_states(c) for c in self._caches]
        return tuple(xp.stack([p[i] for p in per], axis=0)  # (L*D, B, H)
                     for i in range(len(self.spec.states)))

    # -- forward / backward -------------------------------------------------------------------
    def forward(self, x: Array, h0: Array | None = None, c0: Array | None = None, *,
                mask: Array | None = None) -> Array | tuple[Array, Any]:
        """Run over ``x (batch, time, features)``.

        ``h0``/``c0``: initial states ``(num_layers*dirs, batch, hidden)`` (torch's layout),
        zeros if omitted. ``mask``: boolean ``(batch, time)`` (padding on either side) or
        integer lengths ``(batch,)``, any device. Output: see ``return_sequences`` and
        ``return_state``; in ``x``'s namespace, on its device.

        The output is a new array that no later call overwrites. The caches kept for
        :meth:`backward` live in buffers the layer keeps across calls (one
        :class:`rnnx.functional.Workspace` per layer and direction, reused while the shapes stay
        the same), so the next forward overwrites them: :meth:`backward` and
        :attr:`final_state` always refer to the last forward.
        """
        return self._forward(x, {"h": h0, "c": c0}, mask)

    __call__ = forward

    @on_input_device
    def _forward(self, x: Any, init: dict[str, Any], mask: Any) -> Any:
        for s, v in init.items():
            if v is not None and s not in self.spec.states:
                raise ValueError(f"{s}0 is an LSTM state; this layer's cell is {self.cell!r}, "
                                 f"whose states are {', '.join(self.spec.states)}")
        xp = namespace(x, *self.params.values())
        batch = x.shape[0] if getattr(x, "ndim", 0) == 3 else None
        n = self.num_layers * self.dirs
        for s in self.spec.states:
            v = init.get(s)
            if v is not None and (getattr(v, "ndim", None) != 3 or tuple(v.shape) !=
                                  (n, batch, self.hidden_size)):
                raise ValueError(
                    f"{s}0 must have shape (num_layers*dirs, batch, hidden) = ({n}, {batch}, "
                    f"{self.hidden_size}); got shape {tuple(getattr(v, 'shape', ()))}")
        m = as_step_mask(mask, x=x, xp=xp) if getattr(x, "ndim", 0) == 3 else mask
        m_rev = None if m is None else xp.flip(m, axis=1)  # (B, T)
        # The last forward's caches go first: their buffers would otherwise be alive next to
        # the new ones (the workspaces hold the backward's buffers between calls instead).
        self._caches = None
        caches, self._drops = [], []
        inp = x
        for k in range(self.num_layers):
            outs = []
            for d in range(self.dirs):
                j = k * self.dirs + d
                state0 = {s + "0": init[s][j, ...] for s in self.spec.states
                          if init.get(s) is not None}
                p = self.layer_params(k, bool(d))
                ws = self._workspaces[j]
                if d == 0:
                    out, cache = self.spec.run(p, inp, state0, mask=m, options=self.options,
                                               workspace=ws)
                else:
                    out, cache = self.spec.run(p, xp.flip(inp, axis=1), state0, mask=m_rev,
                                               options=self.options, workspace=ws)
                    out = xp.flip(out, axis=1)  # (B, T, H): back to forward time
                outs.append(out)
                caches.append(cache)
            inp = outs[0] if self.dirs == 1 else xp.concat(outs, axis=2)  # (B, T, D*H)
            if k < self.num_layers - 1 and self.training and self.dropout > 0.0:
                scale = self._dropout_scale(tuple(inp.shape), xp=xp, dtype=inp.dtype,
                                            device=device_of(inp))  # (B, T, D*H)
                self._drops.append(scale)
                inp = inp * scale  # (B, T, D*H)
            elif k < self.num_layers - 1:
                self._drops.append(None)
        self._caches = caches
        if self.return_sequences:
            out = inp
        else:
            last = caches[-self.dirs:]
            out = last[0].h_n if self.dirs == 1 else xp.concat([c.h_n for c in last], axis=1)
        if not self.return_state:
            return out
        state = self.final_state
        return (out, state[0]) if len(state) == 1 else (out, state)

    def backward(self, dout: Array | None, dh_n: Array | None = None, dc_n: Array | None = None, *,
                 state_grads: dict | None = None) -> Array:
        """Backpropagate through every layer, direction and step.

        ``dout`` is the gradient of forward's output (may be ``None`` when ``dh_n``/``dc_n``
        are given); ``dh_n``/``dc_n`` the gradients of the final states ``(num_layers*dirs,
        batch, hidden)``. Fills :attr:`grads`, :attr:`dh0` (and :attr:`dc0`); returns ``dx``
        ``(batch, time, features)`` in ``x``'s namespace and device. ``state_grads``, a dict,
        receives ``{suffix: [dL/dh_t for each step]}`` in each cell's own time order
        (:mod:`rnnx.diagnostics`).
        """
        return self._backward(dout, {"h": dh_n, "c": dc_n}, state_grads)

    @on_input_device
    def _backward(self, dout: Any, finals: dict[str, Any], state_grads: dict | None) -> Any:
        if self._caches is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        hidden, dirs = self.hidden_size, self.dirs
        if dout is not None:
            self._check_dout(dout)
        if dout is None and all(v is None for v in finals.values()):
            raise ValueError("nothing to backpropagate: dout and the final-state gradients are "
                             "all None")
        xp = namespace(self._caches[0].hs)
        n = self.num_layers * dirs
        dseq = dout if self.return_sequences else None
        fin = [{s: (None if finals.get(s) is None else finals[s][j, ...])
                for s in self.spec.states} for j in range(n)]
        if dout is not None and not self.return_sequences:
            for d in range(dirs):
                part = dout[:, d * hidden : (d + 1) * hidden]  # (B, H)
                f = fin[n - dirs + d]
                f["h"] = part if f["h"] is None else f["h"] + part
        grads, d0s = {}, [None] * n
        dx = None
        for k in range(self.num_layers - 1, -1, -1):
            dx = None
            for d in range(dirs):
                j = k * dirs + d
                ds = None if dseq is None else dseq[:, :, d * hidden : (d + 1) * hidden]  # (B, T, H)
                if d == 1 and ds is not None:
                    ds = xp.flip(ds, axis=1)  # (B, T, H): reversed time, as the cell ran
                sfx = f"l{k}{'_reverse' if d else ''}"
                keep = None
                if state_grads is not None:  # diagnostics, in the cell's own time order
                    keep = state_grads[sfx] = [None] * self._caches[j].hs.shape[1]
                gx, d0s[j], g = self.spec.run_backward(self._caches[j], ds, fin[j],
                                                       state_grads=keep,
                                                       workspace=self._workspaces[j])
                if d == 1:
                    gx = xp.flip(gx, axis=1)  # (B, T, F_in)
                dx = gx if dx is None else dx + gx
                grads.update({self._key(sfx, name): v for name, v in g.items()})
            if k > 0:
                drop = self._drops[k - 1]
                dseq = dx if drop is None else dx * drop  # (B, T, D*H)
        self.grads = {name: grads[name] for name in self.params}
        for s in ("h", "c"):
            value = None
            if s in self.spec.states:
                value = xp.stack([d0[s + "0"] for d0 in d0s], axis=0)  # (L*D, B, H)
            setattr(self, f"d{s}0", value)
        return dx

    def _check_dout(self, dout: Any) -> None:
        want = 3 if self.return_sequences else 2
        width = self.output_size
        if getattr(dout, "ndim", None) != want or dout.shape[-1] != width:
            w = "hidden" if self.dirs == 1 else "2*hidden"
            what = f"(batch, time, {w})" if want == 3 else f"(batch, {w})"
            raise ValueError(f"dout must be the gradient of forward()'s output, shape {what}; "
                             f"got shape {tuple(getattr(dout, 'shape', ()))}")

    def __repr__(self) -> str:
        return (f"Recurrent({self.input_size}, {self.hidden_size}, cell={self.cell!r}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"dropout={self.dropout}, return_sequences={self.return_sequences})")
