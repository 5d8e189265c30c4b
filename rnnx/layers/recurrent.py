"""Stateful recurrent layers: parameters, gradients and the forward cache around
:mod:`rnnx.functional`."""

from __future__ import annotations

from typing import Any

from .._backend import device as device_of
from .._backend import from_host, get_namespace, host_rng, namespace
from ..functional._mask import as_step_mask
from ..functional.gru import gru_backward, gru_forward
from ..functional.lstm import lstm_backward, lstm_forward
from ..functional.rnn import NONLINEARITIES, RNNCache, rnn_backward, rnn_forward
from ..init import INITIALIZERS, place

__all__ = ["GRU", "LSTM", "Recurrent", "SimpleRNN"]


def _resolve_dtype(xp: Any, dtype: Any) -> Any:
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        return getattr(xp, dtype)
    return dtype


class _OneLayer:
    """Sizes and device of a one-layer cell, read off its parameters ``w_x (features, G*hidden)``
    and ``w_h (hidden, G*hidden)``."""

    params: dict

    @property
    def input_size(self) -> int:
        return int(self.params["w_x"].shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.params["w_h"].shape[0])

    @property
    def output_size(self) -> int:
        """Width of :meth:`forward`'s output's last axis (``hidden``)."""
        return self.hidden_size

    @property
    def device(self) -> Any:
        """Device the parameters live on."""
        return device_of(self.params["w_x"])


class SimpleRNN(_OneLayer):
    """Elman recurrent layer ``h_t = f(x_t @ w_x + h_{t-1} @ w_h + b)``.

    Parameters
    ----------
    input_size, hidden_size : int
        ``features`` and ``hidden``.
    nonlinearity : {"tanh", "relu"}
    return_sequences : bool
        If True, :meth:`forward` returns every state ``(batch, time, hidden)``; otherwise the
        final state ``(batch, hidden)``.
    init : str
        Initialiser for ``w_x`` (see :mod:`rnnx.init`); ``w_h`` uses ``recurrent_init``. The
        defaults (``"torch"``) match ``torch.nn.RNN``: uniform on ``±1/sqrt(hidden)``, bias too.
    seed : int or None
        Seed of the host generator the weights are drawn from: the same seed gives the same
        weights, bit for bit, on every backend.
    backend, device, dtype
        Where the parameters live: a backend name (``"numpy"``, ``"torch"``, ``"cupy"``,
        ``"array_api_strict"``), one of its devices (default device if ``None``) and
        ``"float32"``/``"float64"``.

    Attributes
    ----------
    params : dict
        ``{"w_x": (features, hidden), "w_h": (hidden, hidden), "b": (hidden,)}``.
    grads : dict
        Same keys and shapes, filled by :meth:`backward`.
    dh0 : array (batch, hidden)
        Gradient with respect to the initial state after :meth:`backward`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: str = "tanh",
        return_sequences: bool = False,
        init: str = "torch",
        recurrent_init: str = "torch",
        seed: int | None = None,
        backend: str = "numpy",
        device: Any = None,
        dtype: Any = "float64",
    ) -> None:
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        for name, value in (("init", init), ("recurrent_init", recurrent_init)):
            if value not in INITIALIZERS:
                raise ValueError(f"{name} must be one of {sorted(INITIALIZERS)}; got {value!r}")
        xp = get_namespace(backend)
        dt = _resolve_dtype(xp, dtype)
        rng = host_rng(seed)
        shapes = {"w_x": (input_size, hidden_size), "w_h": (hidden_size, hidden_size)}
        host = {
            "w_x": INITIALIZERS[init](rng, shapes["w_x"], hidden=hidden_size),
            "w_h": INITIALIZERS[recurrent_init](rng, shapes["w_h"], hidden=hidden_size),
            "b": INITIALIZERS["torch"](rng, (hidden_size,), hidden=hidden_size),
        }
        params = {k: place(v, xp=xp, device=device, dtype=dt) for k, v in host.items()}
        self._setup(params, nonlinearity, return_sequences)

    @classmethod
    def from_weights(
        cls,
        w_x: Any,
        w_h: Any,
        b: Any,
        *,
        nonlinearity: str = "tanh",
        return_sequences: bool = False,
    ) -> SimpleRNN:
        """Build a layer around given arrays ``w_x (features, hidden)``, ``w_h (hidden, hidden)``
        and ``b (hidden,)``. Their namespace and device decide where the layer runs; the arrays
        are used as given (not copied) and are never written to."""
        self = cls.__new__(cls)
        # Validate shapes/dtypes/devices once, here, through the functional checks.
        namespace(w_x, w_h, b)
        self._setup({"w_x": w_x, "w_h": w_h, "b": b}, nonlinearity, return_sequences)
        return self

    def _setup(self, params: dict, nonlinearity: str, return_sequences: bool) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}; got {nonlinearity!r}")
        self.params = params
        self.grads: dict[str, Any] = {}
        self.nonlinearity = nonlinearity
        self.return_sequences = bool(return_sequences)
        self.dh0: Any = None
        self._cache: RNNCache | None = None

    @property
    def final_state(self) -> tuple[Any, ...]:
        """``(h_n,)`` of the last :meth:`forward`, ``(batch, hidden)``: each sample's last valid
        state under a mask. Feed it back as ``forward(x, *state)`` to carry state across
        chunks (truncated BPTT)."""
        if self._cache is None:
            raise RuntimeError("final_state read before forward(): there is no state yet")
        return (self._cache.h_n,)

    def forward(self, x: Any, h0: Any = None, *, mask: Any = None) -> Any:
        """Run the layer over ``x (batch, time, features)``.

        Returns ``(batch, hidden)`` (the final state), or ``(batch, time, hidden)`` if
        ``return_sequences``; in ``x``'s namespace, on its device. Keeps the cache for
        :meth:`backward`. ``mask``: boolean ``(batch, time)`` or integer lengths ``(batch,)``
        (see :func:`rnnx.functional.rnn_forward`); the final state is then each sample's own
        last valid state.
        """
        p = self.params
        hs, self._cache = rnn_forward(x, p["w_x"], p["w_h"], p["b"], h0,
                                      nonlinearity=self.nonlinearity, mask=mask)
        if self.return_sequences:
            return hs
        return hs[:, -1, :] if mask is None else self._cache.h_n

    __call__ = forward

    def backward(self, dout: Any) -> Any:
        """Backpropagate ``dout`` (the gradient of what :meth:`forward` returned) through time.

        Fills :attr:`grads` and :attr:`dh0`; returns ``dx`` ``(batch, time, features)``.
        """
        if self._cache is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        want = 3 if self.return_sequences else 2
        if getattr(dout, "ndim", None) != want:
            what = "(batch, time, hidden)" if want == 3 else "(batch, hidden)"
            raise ValueError(
                f"dout must be the gradient of forward()'s output, shape {what}; got shape "
                f"{tuple(getattr(dout, 'shape', ()))}"
            )
        g = rnn_backward(dout, self._cache)  # 2-D dout: the final state's gradient
        self.grads = {"w_x": g.dw_x, "w_h": g.dw_h, "b": g.db}
        self.dh0 = g.dh0
        return g.dx

    def __repr__(self) -> str:
        return (f"SimpleRNN({self.input_size}, {self.hidden_size}, "
                f"nonlinearity={self.nonlinearity!r}, return_sequences={self.return_sequences})")


# ---------------------------------------------------------------------------------------------
# Gated cells and the stacked / bidirectional wrapper. One adapter per cell kind gives every
# layer below the same four operations, so stacking, reversal, dropout and masks are written once.
# ---------------------------------------------------------------------------------------------

#: Cell kinds: number of gate blocks and the bias names of their parameters.
CELL_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELL_BIASES = {"rnn": ("b",), "lstm": ("b",), "gru": ("b_ih", "b_hh")}


def _cell_forward(kind: str, p: dict, x: Any, h0: Any, c0: Any, mask: Any, nonlinearity: str
                  ) -> tuple[Any, Any]:
    if kind == "rnn":
        return rnn_forward(x, p["w_x"], p["w_h"], p["b"], h0, nonlinearity=nonlinearity, mask=mask)
    if kind == "lstm":
        return lstm_forward(x, p["w_x"], p["w_h"], p["b"], h0, c0, mask=mask)
    return gru_forward(x, p["w_x"], p["w_h"], p["b_ih"], p["b_hh"], h0, mask=mask)


def _cell_backward(kind: str, cache: Any, dhs: Any, dh_n: Any, dc_n: Any,
                   keep: list | None = None) -> tuple[Any, Any, Any, dict]:
    """``(dx, dh0, dc0 or None, {param name: grad})`` for one cell run; ``keep`` (a list of
    ``time`` slots) receives ``dL/dh_t`` per step for :mod:`rnnx.diagnostics`."""
    if kind == "rnn":
        g = rnn_backward(dhs, cache, dh_n, state_grads=keep)
        return g.dx, g.dh0, None, {"w_x": g.dw_x, "w_h": g.dw_h, "b": g.db}
    if kind == "lstm":
        g = lstm_backward(dhs, cache, dh_n, dc_n, state_grads=keep)
        return g.dx, g.dh0, g.dc0, {"w_x": g.dw_x, "w_h": g.dw_h, "b": g.db}
    g = gru_backward(dhs, cache, dh_n, state_grads=keep)
    return g.dx, g.dh0, None, {"w_x": g.dw_x, "w_h": g.dw_h, "b_ih": g.db_ih, "b_hh": g.db_hh}


def _draw_cell(rng: Any, kind: str, input_size: int, hidden: int, init: str, recurrent_init: str,
               forget_bias: float) -> dict:
    """Host float64 parameters of one cell. Each gate block is drawn separately (an orthogonal
    recurrent init is orthogonal per gate); for ``"rnn"`` the draws are exactly SimpleRNN's."""
    hnp = get_namespace("numpy")
    gates = CELL_GATES[kind]
    w_x = hnp.concat([INITIALIZERS[init](rng, (input_size, hidden), hidden=hidden)
                      for _ in range(gates)], axis=1)  # (F, G*H)
    w_h = hnp.concat([INITIALIZERS[recurrent_init](rng, (hidden, hidden), hidden=hidden)
                      for _ in range(gates)], axis=1)  # (H, G*H)
    out = {"w_x": w_x, "w_h": w_h}
    for name in CELL_BIASES[kind]:
        out[name] = INITIALIZERS["torch"](rng, (gates * hidden,), hidden=hidden)  # (G*H,)
    if kind == "lstm" and forget_bias:
        out["b"][hidden : 2 * hidden] += forget_bias  # a host array this function allocated
    return out


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")


def _check_inits(init: str, recurrent_init: str) -> None:
    for name, value in (("init", init), ("recurrent_init", recurrent_init)):
        if value not in INITIALIZERS:
            raise ValueError(f"{name} must be one of {sorted(INITIALIZERS)}; got {value!r}")


def _check_dout(dout: Any, want: int, width: int) -> None:
    if getattr(dout, "ndim", None) != want or dout.shape[-1] != width:
        what = f"(batch, time, {width})" if want == 3 else f"(batch, {width})"
        raise ValueError(
            f"dout must be the gradient of forward()'s output, shape {what}; got shape "
            f"{tuple(getattr(dout, 'shape', ()))}"
        )


class _GatedLayer(_OneLayer):
    """One gated cell over a sequence; :class:`LSTM` and :class:`GRU` fix ``_kind``."""

    _kind = "lstm"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        return_sequences: bool = False,
        init: str = "torch",
        recurrent_init: str = "torch",
        seed: int | None = None,
        backend: str = "numpy",
        device: Any = None,
        dtype: Any = "float64",
        forget_bias: float = 0.0,
    ) -> None:
        _check_sizes(input_size=input_size, hidden_size=hidden_size)
        _check_inits(init, recurrent_init)
        xp = get_namespace(backend)
        dt = _resolve_dtype(xp, dtype)
        host = _draw_cell(host_rng(seed), self._kind, input_size, hidden_size, init,
                          recurrent_init, forget_bias)
        self._setup({k: place(v, xp=xp, device=device, dtype=dt) for k, v in host.items()},
                    return_sequences)

    def _setup(self, params: dict, return_sequences: bool) -> None:
        self.params = params
        self.grads: dict[str, Any] = {}
        self.return_sequences = bool(return_sequences)
        self.dh0: Any = None
        self.dc0: Any = None
        self._cache: Any = None

    @classmethod
    def _from_params(cls, params: dict, return_sequences: bool) -> Any:
        self = cls.__new__(cls)
        namespace(*params.values())
        w_h = params["w_h"]
        gates = CELL_GATES[cls._kind]
        if getattr(w_h, "ndim", None) != 2 or w_h.shape[1] != gates * w_h.shape[0]:
            raise ValueError(f"w_h must have shape (hidden, {gates}*hidden); got shape "
                             f"{tuple(getattr(w_h, 'shape', ()))}")
        self._setup(dict(params), return_sequences)
        return self

    @property
    def final_state(self) -> tuple[Any, ...]:
        """Final states of the last :meth:`forward` (each ``(batch, hidden)``; each sample's
        last valid state under a mask): ``(h_n, c_n)`` for an LSTM, ``(h_n,)`` for a GRU. Feed
        back as ``forward(x, *state)`` to carry state across chunks."""
        if self._cache is None:
            raise RuntimeError("final_state read before forward(): there is no state yet")
        if self._kind == "lstm":
            return (self._cache.h_n, self._cache.c_n)
        return (self._cache.h_n,)

    def _run(self, x: Any, h0: Any, c0: Any, mask: Any) -> Any:
        out, self._cache = _cell_forward(self._kind, self.params, x, h0, c0, mask, "tanh")
        if self.return_sequences:
            return out
        return self._cache.h_n

    def backward(self, dout: Any, dh_n: Any = None, dc_n: Any = None) -> Any:
        """Backpropagate ``dout`` (the gradient of what :meth:`forward` returned; may be ``None``
        if ``dh_n`` is given) through time, plus optional gradients of the final states.

        Fills :attr:`grads`, :attr:`dh0` (and :attr:`dc0` for an LSTM); returns ``dx``
        ``(batch, time, features)``, in ``x``'s namespace and device.
        """
        if self._cache is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        if dout is not None:
            _check_dout(dout, 3 if self.return_sequences else 2, self.hidden_size)
        dx, self.dh0, self.dc0, self.grads = _cell_backward(self._kind, self._cache, dout, dh_n,
                                                            dc_n)
        return dx

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"return_sequences={self.return_sequences})")


class LSTM(_GatedLayer):
    """LSTM layer with PyTorch's gate layout (``i, f, g, o``; see :mod:`rnnx.functional.lstm`).

    Same interface as :class:`SimpleRNN`: ``forward(x, h0=None, c0=None, *, mask=None)`` returns
    the final hidden state ``(batch, hidden)`` or, with ``return_sequences``, every hidden state
    ``(batch, time, hidden)``; ``backward(dout)`` fills ``grads`` and ``dh0``/``dc0``.

    Parameters are ``{"w_x": (features, 4*hidden), "w_h": (hidden, 4*hidden), "b": (4*hidden,)}``
    (``b`` is torch's ``bias_ih + bias_hh``), drawn on the host from ``seed`` (``init="torch"``:
    uniform on ``±1/sqrt(hidden)`` like ``torch.nn.LSTM``) and moved to ``backend``/``device``/
    ``dtype``. ``forget_bias`` is added to the forget gate's bias (1.0 is the usual choice for
    long sequences; 0.0 matches torch).
    """

    _kind = "lstm"

    @classmethod
    def from_weights(cls, w_x: Any, w_h: Any, b: Any, *, return_sequences: bool = False) -> LSTM:
        """A layer around given arrays (used as given, never written to); their namespace and
        device decide where it runs."""
        return cls._from_params({"w_x": w_x, "w_h": w_h, "b": b}, return_sequences)

    def forward(self, x: Any, h0: Any = None, c0: Any = None, *, mask: Any = None) -> Any:
        """Run over ``x (batch, time, features)`` from ``h0``/``c0`` ``(batch, hidden)`` (zeros
        if omitted); ``mask`` as in :func:`rnnx.functional.lstm_forward`. Output in ``x``'s
        namespace and device."""
        return self._run(x, h0, c0, mask)

    __call__ = forward


class GRU(_GatedLayer):
    """GRU layer with PyTorch's layout (``r, z, n``, reset after the recurrent matmul, two
    biases; see :mod:`rnnx.functional.gru`).

    Same interface as :class:`SimpleRNN`; parameters ``{"w_x": (features, 3*hidden),
    "w_h": (hidden, 3*hidden), "b_ih": (3*hidden,), "b_hh": (3*hidden,)}``.
    """

    _kind = "gru"

    def __init__(self, input_size: int, hidden_size: int, **kwargs: Any) -> None:
        if "forget_bias" in kwargs:
            raise TypeError("forget_bias is an LSTM option; a GRU has no forget gate")
        super().__init__(input_size, hidden_size, **kwargs)

    @classmethod
    def from_weights(cls, w_x: Any, w_h: Any, b_ih: Any, b_hh: Any, *,
                     return_sequences: bool = False) -> GRU:
        """A layer around given arrays (used as given, never written to)."""
        return cls._from_params({"w_x": w_x, "w_h": w_h, "b_ih": b_ih, "b_hh": b_hh},
                                return_sequences)

    def forward(self, x: Any, h0: Any = None, *, mask: Any = None) -> Any:
        """Run over ``x (batch, time, features)`` from ``h0 (batch, hidden)`` (zeros if
        omitted); ``mask`` as in :func:`rnnx.functional.gru_forward`."""
        return self._run(x, h0, None, mask)

    __call__ = forward


def _suffixes(num_layers: int, bidirectional: bool) -> list[str]:
    """PyTorch's parameter suffixes in its order: ``l0, l0_reverse, l1, ...``."""
    return [f"l{k}{'_reverse' if d else ''}" for k in range(num_layers)
            for d in range(2 if bidirectional else 1)]


class Recurrent:
    """Stacked and/or bidirectional recurrent layer of any cell, the equivalent of
    ``torch.nn.RNN/LSTM/GRU(..., num_layers, bidirectional, dropout, batch_first=True)``.

    Parameters
    ----------
    input_size, hidden_size : int
    cell : {"rnn", "lstm", "gru"}
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
        Elman cells only.
    return_sequences : bool
        :meth:`forward` returns the last layer's output at every step ``(batch, time,
        dirs*hidden)``; otherwise the last layer's final state(s) ``(batch, dirs*hidden)``
        (forward direction first, like torch's ``h_n[-2:]``).
    return_state : bool
        :meth:`forward` returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for an LSTM) with
        ``h_n``/``c_n`` in torch's layout ``(num_layers*dirs, batch, hidden)``.
    init, recurrent_init, seed, backend, device, dtype, forget_bias
        As for :class:`SimpleRNN`/:class:`LSTM`; layers are drawn in torch's order from one
        generator, so a one-layer ``"rnn"`` equals ``SimpleRNN`` with the same seed.

    Attributes
    ----------
    params, grads : dict
        Keyed ``"<suffix>.<name>"`` with torch's suffixes, e.g. ``"l0.w_x"``,
        ``"l1_reverse.b_hh"``.
    dh0, dc0 : array (num_layers*dirs, batch, hidden)
        Gradients of the initial states after :meth:`backward`.
    """

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
        device: Any = None,
        dtype: Any = "float64",
        forget_bias: float = 0.0,
    ) -> None:
        _check_sizes(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        _check_inits(init, recurrent_init)
        if cell not in CELL_GATES:
            raise ValueError(f"cell must be one of {sorted(CELL_GATES)}; got {cell!r}")
        xp = get_namespace(backend)
        dt = _resolve_dtype(xp, dtype)
        rng = host_rng(seed)
        dirs = 2 if bidirectional else 1
        params = {}
        for sfx in _suffixes(num_layers, bidirectional):
            fan_in = input_size if sfx.startswith("l0") else dirs * hidden_size
            host = _draw_cell(rng, cell, fan_in, hidden_size, init, recurrent_init, forget_bias)
            for k, v in host.items():
                params[f"{sfx}.{k}"] = place(v, xp=xp, device=device, dtype=dt)
        self._setup(params, cell, num_layers, bidirectional, dropout, nonlinearity,
                    return_sequences, return_state, rng)

    @classmethod
    def from_weights(
        cls,
        params: dict,
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
        if cell not in CELL_GATES:
            raise ValueError(f"cell must be one of {sorted(CELL_GATES)}; got {cell!r}")
        _check_sizes(num_layers=num_layers)
        want = {f"{s}.{k}" for s in _suffixes(num_layers, bidirectional)
                for k in ("w_x", "w_h", *CELL_BIASES[cell])}
        if set(params) != want:
            raise ValueError(f"params must have exactly the keys {sorted(want)}; got "
                             f"{sorted(params)}")
        namespace(*params.values())
        self = cls.__new__(cls)
        self._setup(dict(params), cell, num_layers, bidirectional, dropout, nonlinearity,
                    return_sequences, return_state, host_rng(seed))
        return self

    def _setup(self, params: dict, cell: str, num_layers: int, bidirectional: bool,
               dropout: float, nonlinearity: str, return_sequences: bool, return_state: bool,
               rng: Any) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}; got {nonlinearity!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be a probability in [0, 1); got {dropout!r}")
        self.params = params
        self.grads: dict[str, Any] = {}
        self.cell = cell
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.nonlinearity = nonlinearity
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.training = True
        self.dh0: Any = None
        self.dc0: Any = None
        self._rng = rng
        self._caches: list | None = None
        self._drops: list = []

    # -- introspection ------------------------------------------------------------------------
    @property
    def dirs(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def input_size(self) -> int:
        return int(self.params["l0.w_x"].shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.params["l0.w_h"].shape[0])

    @property
    def output_size(self) -> int:
        """Width of :meth:`forward`'s output's last axis (``dirs * hidden``)."""
        return self.dirs * self.hidden_size

    @property
    def device(self) -> Any:
        return device_of(self.params["l0.w_x"])

    def layer_params(self, k: int, reverse: bool = False) -> dict:
        """The parameters of layer ``k`` (direction ``reverse``) under the cell's own names."""
        prefix = f"l{k}{'_reverse' if reverse else ''}."
        return {name[len(prefix):]: v for name, v in self.params.items() if name.startswith(prefix)}

    def train(self, mode: bool = True) -> Recurrent:
        """Training mode (dropout on) or, with ``mode=False``, evaluation mode."""
        self.training = bool(mode)
        return self

    def eval(self) -> Recurrent:
        return self.train(False)

    @property
    def final_state(self) -> tuple[Any, ...]:
        """``(h_n,)`` or ``(h_n, c_n)`` of the last forward, ``(num_layers*dirs, batch, hidden)``
        in torch's order; feed back as ``forward(x, *state)`` to carry state across chunks."""
        if self._caches is None:
            raise RuntimeError("final_state read before forward(): there is no state yet")
        xp = namespace(self._caches[0].hs)
        h_n = xp.stack([c.h_n for c in self._caches], axis=0)  # (L*D, B, H)
        if self.cell == "lstm":
            return (h_n, xp.stack([c.c_n for c in self._caches], axis=0))  # (L*D, B, H) each
        return (h_n,)

    # -- forward / backward -------------------------------------------------------------------
    def forward(self, x: Any, h0: Any = None, c0: Any = None, *, mask: Any = None) -> Any:
        """Run over ``x (batch, time, features)``.

        ``h0``/``c0``: initial states ``(num_layers*dirs, batch, hidden)`` (torch's layout),
        zeros if omitted. ``mask``: boolean ``(batch, time)`` (padding on either side) or
        integer lengths ``(batch,)``, any device. Output: see ``return_sequences`` and
        ``return_state``; in ``x``'s namespace, on its device.
        """
        if c0 is not None and self.cell != "lstm":
            raise ValueError(f"c0 is an LSTM state; this layer's cell is {self.cell!r}")
        xp = namespace(x, *self.params.values())
        batch = x.shape[0] if getattr(x, "ndim", 0) == 3 else None
        n = self.num_layers * self.dirs
        for name, s in (("h0", h0), ("c0", c0)):
            if s is not None and (getattr(s, "ndim", None) != 3 or tuple(s.shape) !=
                                  (n, batch, self.hidden_size)):
                raise ValueError(
                    f"{name} must have shape (num_layers*dirs, batch, hidden) = ({n}, {batch}, "
                    f"{self.hidden_size}); got shape {tuple(getattr(s, 'shape', ()))}")
        m = as_step_mask(mask, x=x, xp=xp) if getattr(x, "ndim", 0) == 3 else mask
        m_rev = None if m is None else xp.flip(m, axis=1)  # (B, T)
        caches, self._drops = [], []
        inp = x
        for k in range(self.num_layers):
            outs = []
            for d in range(self.dirs):
                j = k * self.dirs + d
                p = self.layer_params(k, bool(d))
                s0 = None if h0 is None else h0[j, ...]
                c = None if c0 is None else c0[j, ...]
                if d == 0:
                    out, cache = _cell_forward(self.cell, p, inp, s0, c, m, self.nonlinearity)
                else:
                    out, cache = _cell_forward(self.cell, p, xp.flip(inp, axis=1), s0, c, m_rev,
                                               self.nonlinearity)
                    out = xp.flip(out, axis=1)  # (B, T, H): back to forward time
                outs.append(out)
                caches.append(cache)
            inp = outs[0] if self.dirs == 1 else xp.concat(outs, axis=2)  # (B, T, D*H)
            if k < self.num_layers - 1 and self.training and self.dropout > 0.0:
                keep = self._rng.random(tuple(inp.shape)) >= self.dropout  # host draw
                scale = from_host(keep / (1.0 - self.dropout), xp=xp, device=device_of(inp),
                                  dtype=inp.dtype)  # (B, T, D*H)
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
        return (out, state[0]) if self.cell != "lstm" else (out, state)

    __call__ = forward

    def backward(self, dout: Any, dh_n: Any = None, dc_n: Any = None, *,
                 _state_grads: dict | None = None) -> Any:
        """Backpropagate through every layer, direction and step.

        ``dout`` is the gradient of forward's output (may be ``None`` when ``dh_n``/``dc_n``
        are given); ``dh_n``/``dc_n`` the gradients of the final states ``(num_layers*dirs,
        batch, hidden)``. Fills :attr:`grads`, :attr:`dh0` (and :attr:`dc0`); returns ``dx``
        ``(batch, time, features)`` in ``x``'s namespace and device.
        """
        if self._caches is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        hidden, dirs = self.hidden_size, self.dirs
        if dout is not None:
            _check_dout(dout, 3 if self.return_sequences else 2, dirs * hidden)
        if dout is None and dh_n is None and dc_n is None:
            raise ValueError("nothing to backpropagate: dout, dh_n and dc_n are all None")
        xp = namespace(self._caches[0].hs)
        n = self.num_layers * dirs
        dseq = dout if self.return_sequences else None
        fin: list[Any] = [None] * n
        fin_c: list[Any] = [None] * n
        for j in range(n):
            fin[j] = None if dh_n is None else dh_n[j, ...]
            fin_c[j] = None if dc_n is None else dc_n[j, ...]
        if dout is not None and not self.return_sequences:
            for d in range(dirs):
                j = n - dirs + d
                part = dout[:, d * hidden : (d + 1) * hidden]  # (B, H)
                fin[j] = part if fin[j] is None else fin[j] + part
        grads, dh0s, dc0s = {}, [None] * n, [None] * n
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
                if _state_grads is not None:  # diagnostics, in the cell's own time order
                    keep = _state_grads[sfx] = [None] * self._caches[j].hs.shape[1]
                gx, dh0s[j], dc0s[j], g = _cell_backward(self.cell, self._caches[j], ds, fin[j],
                                                         fin_c[j], keep)
                if d == 1:
                    gx = xp.flip(gx, axis=1)  # (B, T, F_in)
                dx = gx if dx is None else dx + gx
                grads.update({f"{sfx}.{name}": v for name, v in g.items()})
            if k > 0:
                drop = self._drops[k - 1]
                dseq = dx if drop is None else dx * drop  # (B, T, D*H)
        self.grads = {name: grads[name] for name in self.params}
        self.dh0 = xp.stack(dh0s, axis=0)  # (L*D, B, H)
        self.dc0 = xp.stack(dc0s, axis=0) if self.cell == "lstm" else None  # (L*D, B, H)
        return dx

    def __repr__(self) -> str:
        return (f"Recurrent({self.input_size}, {self.hidden_size}, cell={self.cell!r}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"dropout={self.dropout}, return_sequences={self.return_sequences})")
