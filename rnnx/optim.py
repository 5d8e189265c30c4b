"""Optimizers and gradient clipping over dicts of named parameters and gradients.

An optimizer never writes into an array: :meth:`Optimizer.step` replaces the entries of the
``params`` dict with new arrays. Its state (velocities, moment estimates) is created on the first
step with ``zeros_like`` of each parameter, so it lives in the parameters' namespace, on their
device, with their dtype; the step counter and hyper-parameters are Python scalars (no host sync).

References
----------
- SGD with momentum: B. T. Polyak, "Some methods of speeding up the convergence of iteration
  methods", USSR Comput. Math. Math. Phys. 4 (1964); here ``v <- mu v - lr g``, ``p <- p + v``.
- AdaGrad: J. Duchi, E. Hazan, Y. Singer, JMLR 12 (2011), eq. (1) with a diagonal matrix.
- RMSProp: T. Tieleman, G. Hinton, Coursera Neural Networks lecture 6.5 (2012).
- Adam: D. P. Kingma, J. Ba, ICLR 2015, Algorithm 1 (bias-corrected moments).
- Global-norm clipping: R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training
  recurrent neural networks", ICML 2013, Algorithm 1.
"""

from __future__ import annotations

import math
from typing import Any

from ._backend import device, namespace, on_input_device

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "AdaGrad",
    "Adam",
    "Momentum",
    "Optimizer",
    "RMSProp",
    "clip_grad_norm",
    "global_norm",
    "make_optimizer",
]


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


def _fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1); got {value!r}")
    return float(value)


class Optimizer:
    """Base class: ``step(params, grads)`` updates every key of ``grads``.

    Subclasses implement ``_update(key, p, g, xp) -> new p`` and keep per-key state in
    :attr:`state` (arrays on the parameters' device).
    """

    #: The names of the per-parameter state arrays (each of its parameter's shape and dtype,
    #: zeros before the first step): what :meth:`_slot` makes.
    slots: tuple[str, ...] = ()

    #: Where set, the step's :meth:`scalars` to use instead of computing them from ``t``: a
    #: compiled training loop passes them as arguments (0-d arrays), one set per step, so that
    #: the step count is not a constant of the compiled code.
    fixed_scalars: dict[str, Any] | None = None

    def __init__(self, lr: float) -> None:
        self.lr = _positive("lr", lr)
        self.state: dict[str, dict[str, Any]] = {}
        self.t = 0

    def scalars(self, t: int) -> dict[str, float]:
        """The scalar factors of step ``t`` (counted from 1) that depend on the step count, as
        host floats (Adam's bias corrections); none for the other optimizers."""
        return {}

    @on_input_device
    def step(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        """Replace ``params[k]`` by its updated value for every ``k`` in ``grads``.

        ``params`` and ``grads`` map names to arrays of one namespace and device; the new
        parameters are in that namespace, on that device, with the parameters' dtype.
        """
        missing = sorted(set(grads) - set(params))
        if missing:
            raise KeyError(f"grads has keys with no parameter: {missing}")
        if not grads:
            return
        xp = namespace(*params.values(), *grads.values())
        self.t += 1
        self._scalars = self.scalars(self.t) if self.fixed_scalars is None else self.fixed_scalars
        for k, g in grads.items():
            p = params[k]
            if tuple(g.shape) != tuple(p.shape):
                raise ValueError(f"grads[{k!r}] must have shape {tuple(p.shape)}; got "
                                 f"{tuple(g.shape)}")
            params[k] = self._update(k, p, g, xp)

    def _slot(self, key: str, name: str, p: Any, xp: Any) -> Any:
        slots = self.state.setdefault(key, {})
        if name not in slots:
            slots[name] = xp.zeros(p.shape, dtype=p.dtype, device=device(p))
        return slots[name]

    def _update(self, key: str, p: Any, g: Any, xp: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        """Forget all state (moments and step count)."""
        self.state.clear()
        self.t = 0

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                       if k not in ("state", "t", "_scalars", "fixed_scalars"))
        return f"{type(self).__name__}({hp})"


class SGD(Optimizer):
    """Plain gradient descent ``p <- p - lr g``."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _update(self, key, p, g, xp):
        return p - self.lr * g


class Momentum(Optimizer):
    """Heavy-ball momentum: ``v <- momentum v - lr g``; ``p <- p + v``."""

    slots = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = _fraction("momentum", momentum)

    def _update(self, key, p, g, xp):
        v = self.momentum * self._slot(key, "v", p, xp) - self.lr * g
        self.state[key]["v"] = v
        return p + v


class AdaGrad(Optimizer):
    """``G <- G + g^2``; ``p <- p - lr g / (sqrt(G) + eps)``."""

    slots = ("sum_sq",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.eps = _positive("eps", eps)

    def _update(self, key, p, g, xp):
        s = self._slot(key, "sum_sq", p, xp) + g * g
        self.state[key]["sum_sq"] = s
        return p - self.lr * g / (xp.sqrt(s) + self.eps)


class RMSProp(Optimizer):
    """``E <- rho E + (1 - rho) g^2``; ``p <- p - lr g / (sqrt(E) + eps)``."""

    slots = ("mean_sq",)

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.rho = _fraction("rho", rho)
        self.eps = _positive("eps", eps)

    def _update(self, key, p, g, xp):
        e = self.rho * self._slot(key, "mean_sq", p, xp) + (1.0 - self.rho) * (g * g)
        self.state[key]["mean_sq"] = e
        return p - self.lr * g / (xp.sqrt(e) + self.eps)


class Adam(Optimizer):
    """Adam with bias-corrected first and second moments (Kingma & Ba, Algorithm 1)."""

    slots = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.beta1 = _fraction("beta1", beta1)
        self.beta2 = _fraction("beta2", beta2)
        self.eps = _positive("eps", eps)

    def _update(self, key, p, g, xp):
        m = self.beta1 * self._slot(key, "m", p, xp) + (1.0 - self.beta1) * g
        v = self.beta2 * self._slot(key, "v", p, xp) + (1.0 - self.beta2) * (g * g)
        self.state[key]["m"], self.state[key]["v"] = m, v
        # Algorithm 1 as written (eps added to sqrt(v_hat), as torch.optim.Adam does), not the
        # folded "more efficient" form, whose eps acts at a different scale.
        s = self._scalars
        return p - s["lr_t"] * m / (xp.sqrt(v) / s["root_bc2"] + self.eps)

    def scalars(self, t: int) -> dict[str, float]:
        # Bias corrections in double precision on the host, as Algorithm 1 states them.
        bc1 = 1.0 - self.beta1**t
        bc2 = 1.0 - self.beta2**t
        return {"lr_t": self.lr / bc1, "root_bc2": math.sqrt(bc2)}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
}


def make_optimizer(name: str, lr: float | None = None, **kwargs: Any) -> Optimizer:
    """Optimizer by name (one of :data:`OPTIMIZERS`); ``lr=None`` keeps the class default."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}; got {name!r}")
    if lr is not None:
        kwargs["lr"] = lr
    return OPTIMIZERS[name](**kwargs)


@on_input_device
def global_norm(grads: dict[str, Any]) -> Any:
    """``sqrt(sum_k ||grads[k]||^2)`` as a 0-d array in the gradients' namespace and device."""
    if not grads:
        raise ValueError("grads must hold at least one array")
    xp = namespace(*grads.values())
    total = None
    for g in grads.values():
        s = xp.sum(g * g)
        total = s if total is None else total + s
    return xp.sqrt(total)


@on_input_device
def clip_grad_norm(grads: dict[str, Any], max_norm: float) -> tuple[dict[str, Any], Any]:
    """Rescale all gradients together so their global norm is at most ``max_norm``.

    Returns ``(new grads dict, norm before clipping)``; the caller's arrays are not modified.
    The scale ``max_norm / max(norm, max_norm)`` is computed on the device (no host sync), and
    is exactly 1 when the norm is already within bounds.
    """
    max_norm = _positive("max_norm", max_norm)
    norm = global_norm(grads)
    xp = namespace(norm)
    bound = xp.full((), max_norm, dtype=norm.dtype, device=device(norm))
    scale = bound / xp.maximum(norm, bound)
    return {k: g * scale for k, g in grads.items()}, norm
