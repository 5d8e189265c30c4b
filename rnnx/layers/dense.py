"""Fully connected output layer ``y = h @ w + b`` with its gradients.

Works on one vector per sequence ``(batch, hidden)`` (many-to-one) and on every step
``(batch, time, hidden)`` (many-to-many); the time axis is folded into the batch for one GEMM.
"""

from __future__ import annotations

from typing import Any

from .._backend import HostGenerator, get_namespace, host_rng, on_input_device
from .._backend import device as device_of
from .._constraints import validate
from .._typing import Array, Device, DType
from ..functional._validate import check_float, check_shape, resolve
from ..init import INITIALIZERS, place, resolve_dtype
from ._constraints import LAYER_CONSTRAINTS

__all__ = ["Dense"]


class Dense:
    """Affine layer from ``input_size`` to ``output_size`` features.

    Parameters
    ----------
    input_size, output_size : int
    init : str
        Initialiser for ``w`` (see :mod:`rnnx.init`; default Xavier/Glorot uniform). The bias
        starts at zero.
    seed, backend, device, dtype
        As for :class:`rnnx.layers.SimpleRNN`: the same seed gives the same weights, bit for bit,
        on every backend; ``rng`` (a host ``numpy.random.Generator``) may be passed instead of
        ``seed`` so one generator feeds a whole network.

    Attributes
    ----------
    params : dict
        ``{"w": (input, output), "b": (output,)}``.
    grads : dict
        Same keys and shapes after :meth:`backward`.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        init: str = "xavier",
        seed: int | None = None,
        rng: HostGenerator | None = None,
        backend: str = "numpy",
        device: Device = None,
        dtype: str | DType = "float64",
    ) -> None:
        validate(dict(input_size=input_size, output_size=output_size, init=init),
                 LAYER_CONSTRAINTS)
        xp = get_namespace(backend)
        dt = resolve_dtype(xp, dtype)
        rng = host_rng(seed) if rng is None else rng
        w = INITIALIZERS[init](rng, (input_size, output_size), hidden=input_size)
        self.params = {
            "w": place(w, xp=xp, device=device, dtype=dt),
            "b": place(0.0 * w[0], xp=xp, device=device, dtype=dt),  # (output,) zeros
        }
        self.grads: dict[str, Any] = {}
        self._x: Any = None

    @classmethod
    def from_weights(cls, w: Array, b: Array) -> Dense:
        """Layer around ``w (input, output)`` and ``b (output,)``, used as given (not copied)."""
        xp = resolve({"w": w, "b": b})
        check_float("w", w, xp=xp)
        check_shape("w", w, (None, None), "(input, output)")
        check_shape("b", b, (w.shape[1],), "(output,)")
        check_float("b", b, xp=xp, like=("w", w))
        self = cls.__new__(cls)
        self.params = {"w": w, "b": b}
        self.grads = {}
        self._x = None
        return self

    @property
    def input_size(self) -> int:
        return int(self.params["w"].shape[0])

    @property
    def output_size(self) -> int:
        return int(self.params["w"].shape[1])

    @property
    def device(self) -> Device:
        """Device the parameters live on."""
        return device_of(self.params["w"])

    @on_input_device
    def forward(self, h: Array) -> Array:
        """``h (batch, input)`` or ``(batch, time, input)`` to ``(batch[, time], output)``, in
        ``h``'s namespace on its device. Keeps ``h`` (a reference) for :meth:`backward`."""
        w, b = self.params["w"], self.params["b"]
        xp = resolve({"h": h, "w": w})
        check_float("h", h, xp=xp, like=("w", w))
        if h.ndim not in (2, 3) or h.shape[-1] != w.shape[0]:
            raise ValueError(
                f"h must have shape (batch, {w.shape[0]}) or (batch, time, {w.shape[0]}); got "
                f"shape {tuple(h.shape)}"
            )
        self._x = h
        if h.ndim == 2:
            return h @ w + b  # (B, O)
        batch, time, _ = h.shape
        flat = xp.reshape(h, (batch * time, w.shape[0]))  # (B*T, I)
        return xp.reshape(flat @ w + b, (batch, time, w.shape[1]))  # (B, T, O)

    __call__ = forward

    @on_input_device
    def backward(self, dout: Array) -> Array:
        """From ``dL/dy`` (the shape :meth:`forward` returned) fill :attr:`grads` and return
        ``dL/dh`` with the input's shape."""
        if self._x is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        h, w = self._x, self.params["w"]
        xp = resolve({"dout": dout, "h": h})
        want = (*h.shape[:-1], w.shape[1])
        if tuple(dout.shape) != want:
            raise ValueError(
                f"dout must be the gradient of forward()'s output, shape {want}; got shape "
                f"{tuple(dout.shape)}"
            )
        if h.ndim == 2:
            self.grads = {"w": h.T @ dout, "b": xp.sum(dout, axis=0)}  # (I, O), (O,)
            return dout @ w.T  # (B, I)
        batch, time, _ = h.shape
        h2 = xp.reshape(h, (batch * time, w.shape[0]))  # (B*T, I)
        d2 = xp.reshape(dout, (batch * time, w.shape[1]))  # (B*T, O)
        self.grads = {"w": h2.T @ d2, "b": xp.sum(d2, axis=0)}  # (I, O), (O,)
        return xp.reshape(d2 @ w.T, (batch, time, w.shape[0]))  # (B, T, I)

    def __repr__(self) -> str:
        return f"Dense({self.input_size}, {self.output_size})"
