"""Stateful recurrent layers: parameters, gradients and the forward cache around
:mod:`rnnx.functional`."""

from __future__ import annotations

from typing import Any

from .._backend import device as device_of
from .._backend import get_namespace, host_rng, namespace
from ..functional.rnn import NONLINEARITIES, RNNCache, rnn_backward, rnn_forward
from ..init import INITIALIZERS, place

__all__ = ["SimpleRNN"]


def _resolve_dtype(xp: Any, dtype: Any) -> Any:
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        return getattr(xp, dtype)
    return dtype


class SimpleRNN:
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
    def input_size(self) -> int:
        return int(self.params["w_x"].shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.params["w_x"].shape[1])

    @property
    def device(self) -> Any:
        """Device the parameters live on."""
        return device_of(self.params["w_x"])

    def forward(self, x: Any, h0: Any = None) -> Any:
        """Run the layer over ``x (batch, time, features)``.

        Returns ``(batch, hidden)`` (the final state), or ``(batch, time, hidden)`` if
        ``return_sequences``; in ``x``'s namespace, on its device. Keeps the cache for
        :meth:`backward`.
        """
        p = self.params
        hs, self._cache = rnn_forward(x, p["w_x"], p["w_h"], p["b"], h0,
                                      nonlinearity=self.nonlinearity)
        return hs if self.return_sequences else hs[:, -1, :]

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
        g = rnn_backward(dout, self._cache)
        self.grads = {"w_x": g.dw_x, "w_h": g.dw_h, "b": g.db}
        self.dh0 = g.dh0
        return g.dx

    def __repr__(self) -> str:
        return (f"SimpleRNN({self.input_size}, {self.hidden_size}, "
                f"nonlinearity={self.nonlinearity!r}, return_sequences={self.return_sequences})")
