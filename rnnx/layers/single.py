"""The single-layer classes :class:`SimpleRNN`, :class:`LSTM` and :class:`GRU`: the one
:class:`~rnnx.layers.Recurrent` machinery with one layer and one direction, their own
signatures, parameter names without a layer prefix (``w_x``, not ``l0.w_x``) and states
``(batch, hidden)`` instead of ``(1, batch, hidden)``."""

from __future__ import annotations

from typing import Any

from .._backend import host_rng
from .._typing import Array, Device, DType
from ..functional.registry import get_cell
from .recurrent import Recurrent

__all__ = ["GRU", "LSTM", "SimpleRNN", "single_layer_class"]


class _Single(Recurrent):
    _flat = True
    _cell = "rnn"

    def __init__(self, input_size: int, hidden_size: int, *, return_sequences: bool = False,
                 init: str = "torch", recurrent_init: str = "torch", seed: int | None = None,
                 backend: str = "numpy", device: Device = None, dtype: str | DType = "float64",
                 **options: Any) -> None:
        unknown = set(options) - {"nonlinearity", "forget_bias"}
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                            f"{sorted(unknown)[0]!r}")
        if "forget_bias" in options and not get_cell(self._cell).forget_gates:
            raise TypeError(f"forget_bias is an option of cells with a forget gate; a "
                            f"{type(self).__name__} has none")
        super().__init__(input_size, hidden_size, cell=self._cell,
                         return_sequences=return_sequences, init=init,
                         recurrent_init=recurrent_init, seed=seed, backend=backend, device=device,
                         dtype=dtype, **options)

    @classmethod
    def from_params(cls, params: dict[str, Array], *, return_sequences: bool = False,
                    nonlinearity: str = "tanh") -> Any:
        """A layer around the arrays of ``params``, keyed by the cell's parameter names (used
        as given, never written to)."""
        spec = get_cell(cls._cell)
        self = cls.__new__(cls)
        self._adopt(dict(params), spec, spec.layer_options(nonlinearity), 1, False, 0.0,
                    return_sequences, False, host_rng(None))
        return self

    @classmethod
    def _of(cls, arrays: tuple[Any, ...], return_sequences: bool, nonlinearity: str = "tanh"
            ) -> Any:
        params = dict(zip(get_cell(cls._cell).params, arrays))
        return cls.from_params(params, return_sequences=return_sequences,
                               nonlinearity=nonlinearity)

    @property
    def final_state(self) -> tuple[Array, ...]:
        """Final states of the last :meth:`forward`, each ``(batch, hidden)`` (each sample's
        last valid state under a mask): ``(h_n,)``, or ``(h_n, c_n)`` for an LSTM. Feed back as
        ``forward(x, *state)`` to carry state across chunks (truncated BPTT)."""
        if self._caches is None:
            raise RuntimeError("final_state read before forward(): there is no state yet")
        return self.spec.final_states(self._caches[0])

    def _forward1(self, x: Any, init: dict[str, Any], mask: Any) -> Any:
        return self._forward(x, {s: None if v is None else v[None, ...] for s, v in init.items()},
                             mask)

    def _backward1(self, dout: Any, finals: dict[str, Any], state_grads: dict | None) -> Any:
        dx = self._backward(dout, {s: None if v is None else v[None, ...]
                                   for s, v in finals.items()}, state_grads)
        self.dh0 = self.dh0[0, ...]  # (B, H)
        if self.dc0 is not None:
            self.dc0 = self.dc0[0, ...]  # (B, H)
        return dx

    def __repr__(self) -> str:
        extra = "" if "nonlinearity" not in self.options else f", nonlinearity={self.nonlinearity!r}"
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}, "
                f"return_sequences={self.return_sequences})")


class SimpleRNN(_Single):
    """Elman recurrent layer ``h_t = f(x_t @ w_x + h_{t-1} @ w_h + b)``.

    Parameters
    ----------
    input_size, hidden_size : int
        ``features`` and ``hidden``.
    nonlinearity : {"tanh", "relu"}
    return_sequences : bool
        If True, :meth:`forward` returns every state ``(batch, time, hidden)``; otherwise the
        final state ``(batch, hidden)``.
    init, recurrent_init, seed, backend, device, dtype
        As for :class:`Recurrent`: the defaults match ``torch.nn.RNN``, and a seed gives the same
        weights, bit for bit, on every backend.

    Attributes
    ----------
    params : dict
        ``{"w_x": (features, hidden), "w_h": (hidden, hidden), "b": (hidden,)}``.
    grads : dict
        Same keys and shapes, filled by :meth:`backward`.
    dh0 : array (batch, hidden)
        Gradient with respect to the initial state after :meth:`backward`.
    """

    _cell = "rnn"

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "tanh",
                 **kwargs: Any) -> None:
        super().__init__(input_size, hidden_size, nonlinearity=nonlinearity, **kwargs)

    @classmethod
    def from_weights(cls, w_x: Array, w_h: Array, b: Array, *, nonlinearity: str = "tanh",
                     return_sequences: bool = False) -> SimpleRNN:
        """Build a layer around given arrays ``w_x (features, hidden)``, ``w_h (hidden, hidden)``
        and ``b (hidden,)``. Their namespace and device decide where the layer runs; the arrays
        are used as given (not copied) and are never written to."""
        return cls._of((w_x, w_h, b), return_sequences, nonlinearity)

    def forward(self, x: Array, h0: Array | None = None, *, mask: Array | None = None
                ) -> Array | tuple[Array, Any]:
        """Run the layer over ``x (batch, time, features)`` from ``h0 (batch, hidden)`` (zeros
        if omitted). Returns ``(batch, hidden)`` (the final state), or ``(batch, time,
        hidden)`` if ``return_sequences``; in ``x``'s namespace, on its device. ``mask``:
        boolean ``(batch, time)`` or integer lengths ``(batch,)`` (see
        :func:`rnnx.functional.rnn_forward`); the final state is then each sample's own last
        valid state."""
        return self._forward1(x, {"h": h0}, mask)

    __call__ = forward

    def backward(self, dout: Array | None, dh_n: Array | None = None, *,
                 state_grads: dict | None = None) -> Array:
        """Backpropagate ``dout`` (the gradient of what :meth:`forward` returned) through time,
        plus an optional gradient of the final state ``dh_n (batch, hidden)``. Fills
        :attr:`grads` and :attr:`dh0`; returns ``dx`` ``(batch, time, features)``.
        ``state_grads``: as for :meth:`Recurrent.backward` (key ``"l0"``)."""
        return self._backward1(dout, {"h": dh_n}, state_grads)


class LSTM(_Single):
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

    _cell = "lstm"

    def __init__(self, input_size: int, hidden_size: int, *, forget_bias: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(input_size, hidden_size, forget_bias=forget_bias, **kwargs)

    @classmethod
    def from_weights(cls, w_x: Array, w_h: Array, b: Array, *, return_sequences: bool = False) -> LSTM:
        """A layer around given arrays (used as given, never written to); their namespace and
        device decide where it runs."""
        return cls._of((w_x, w_h, b), return_sequences)

    def forward(self, x: Array, h0: Array | None = None, c0: Array | None = None, *,
                mask: Array | None = None) -> Array | tuple[Array, Any]:
        """Run over ``x (batch, time, features)`` from ``h0``/``c0`` ``(batch, hidden)`` (zeros
        if omitted); ``mask`` as in :func:`rnnx.functional.lstm_forward`. Output in ``x``'s
        namespace and device."""
        return self._forward1(x, {"h": h0, "c": c0}, mask)

    __call__ = forward

    def backward(self, dout: Array | None, dh_n: Array | None = None, dc_n: Array | None = None, *,
                 state_grads: dict | None = None) -> Array:
        """Backpropagate ``dout`` (the gradient of what :meth:`forward` returned; may be ``None``
        if ``dh_n`` or ``dc_n`` is given) through time, plus optional gradients of the final
        states ``(batch, hidden)``. Fills :attr:`grads`, :attr:`dh0` and :attr:`dc0`; returns
        ``dx`` ``(batch, time, features)``, in ``x``'s namespace and device. ``state_grads``: as
        for :meth:`Recurrent.backward`."""
        return self._backward1(dout, {"h": dh_n, "c": dc_n}, state_grads)


class GRU(_Single):
    """GRU layer with PyTorch's layout (``r, z, n``, reset after the recurrent matmul, two
    biases; see :mod:`rnnx.functional.gru`).

    Same interface as :class:`SimpleRNN`; parameters ``{"w_x": (features, 3*hidden),
    "w_h": (hidden, 3*hidden), "b_ih": (3*hidden,), "b_hh": (3*hidden,)}``.
    """

    _cell = "gru"

    @classmethod
    def from_weights(cls, w_x: Array, w_h: Array, b_ih: Array, b_hh: Array, *,
                     return_sequences: bool = False) -> GRU:
        """A layer around given arrays (used as given, never written to)."""
        return cls._of((w_x, w_h, b_ih, b_hh), return_sequences)

    def forward(self, x: Array, h0: Array | None = None, *, mask: Array | None = None
                ) -> Array | tuple[Array, Any]:
        """Run over ``x (batch, time, features)`` from ``h0 (batch, hidden)`` (zeros if
        omitted); ``mask`` as in :func:`rnnx.functional.gru_forward`."""
        return self._forward1(x, {"h": h0}, mask)

    __call__ = forward

    def backward(self, dout: Array | None, dh_n: Array | None = None, *,
                 state_grads: dict | None = None) -> Array:
        """Backpropagate ``dout`` (may be ``None`` if ``dh_n`` is given) through time. Fills
        :attr:`grads` and :attr:`dh0`; returns ``dx`` ``(batch, time, features)``.
        ``state_grads``: as for :meth:`Recurrent.backward`."""
        return self._backward1(dout, {"h": dh_n}, state_grads)


def single_layer_class(cell: str) -> type | None:
    """The single-layer class of ``cell`` (``SimpleRNN`` for ``"rnn"``...), or ``None`` for a
    cell that has only :class:`Recurrent`."""
    return {c._cell: c for c in (SimpleRNN, LSTM, GRU)}.get(cell)
