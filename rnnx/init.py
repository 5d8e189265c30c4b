"""Weight initialisers.

Every initialiser draws on the host from a NumPy ``Generator`` (see
:func:`rnnx._backend.host_rng`) and returns a host float64 array; :func:`place` then moves it to
the target namespace, device and dtype. Drawing on the host is what makes one seed give
bit-identical initial weights on NumPy, PyTorch, CuPy and array-api-strict.
:func:`draw_cell_params` draws every parameter of one layer of a registered cell.

References
----------
- X. Glorot, Y. Bengio, "Understanding the difficulty of training deep feedforward neural
  networks", AISTATS 2010, eq. (16) (Xavier uniform).
- K. He et al., "Delving deep into rectifiers", ICCV 2015, eq. (10) (He normal).
- A. Saxe et al., "Exact solutions to the nonlinear dynamics of learning in deep linear neural
  networks", ICLR 2014 (orthogonal recurrent weights).
- PyTorch ``torch.nn.RNN``: every weight and bias uniform on ``(-1/sqrt(hidden), 1/sqrt(hidden))``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._backend import HostGenerator, from_host, host_namespace
from ._typing import Array, Device, DType, Namespace

if TYPE_CHECKING:
    from .functional.registry import Cell

__all__ = ["INITIALIZERS", "draw_cell_params", "gaussian", "he", "orthogonal", "place",
           "resolve_dtype", "torch_uniform", "xavier"]


def gaussian(rng: HostGenerator, shape: tuple[int, ...], *, scale: float = 0.01, **_: Any) -> Array:
    """``scale * N(0, 1)``: the classic from-scratch exercise's ``sigma * randn``."""
    return scale * rng.standard_normal(shape)


def xavier(rng: HostGenerator, shape: tuple[int, ...], **_: Any) -> Array:
    """Glorot/Xavier uniform on ``±sqrt(6 / (fan_in + fan_out))`` for a ``(fan_in, fan_out)`` matrix."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def he(rng: HostGenerator, shape: tuple[int, ...], **_: Any) -> Array:
    """He/Kaiming normal with standard deviation ``sqrt(2 / fan_in)`` (for ReLU cells)."""
    return math.sqrt(2.0 / shape[0]) * rng.standard_normal(shape)


def orthogonal(rng: HostGenerator, shape: tuple[int, ...], *, gain: float = 1.0, **_: Any) -> Array:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian draw, signs fixed so
    the distribution is uniform (Haar) over orthogonal matrices."""
    hnp = host_namespace()
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = hnp.linalg.qr(a)
    q = q * hnp.sign(hnp.linalg.diagonal(r))  # Haar measure (Mezzadri 2007)
    if rows < cols:
        q = q.T
    return gain * q


def torch_uniform(rng: HostGenerator, shape: tuple[int, ...], *, hidden: int, **_: Any) -> Array:
    """PyTorch's RNN default: uniform on ``±1/sqrt(hidden)``."""
    k = 1.0 / math.sqrt(hidden)
    return rng.uniform(-k, k, size=shape)


INITIALIZERS = {
    "gaussian": gaussian,
    "xavier": xavier,
    "he": he,
    "orthogonal": orthogonal,
    "torch": torch_uniform,
}


def draw_cell_params(spec: Cell, rng: HostGenerator, features: int, hidden: int, *, init: str = "torch",
                     recurrent_init: str = "torch", forget_bias: float = 0.0) -> dict[str, Array]:
    """Host float64 initial parameters of one layer of cell ``spec`` (a registry record) for
    ``features`` inputs and ``hidden`` units, drawn from ``rng``. Each gate block is drawn
    separately (an orthogonal recurrent init is orthogonal per gate), in the order ``w_x``,
    ``w_h`` (a cell with recurrent weights), then the drawn vectors; constant vectors (a layer
    norm's gain and shift) draw nothing. ``forget_bias`` shifts the blocks of ``b`` that keep the
    state (:attr:`rnnx.functional.registry.Cell.forget_gates`: the LSTM's forget gate)."""
    hnp = host_namespace()
    w_x = hnp.concat([INITIALIZERS[init](rng, (features, hidden), hidden=hidden)
                      for _ in range(spec.gates)], axis=1)  # (F, G*H)
    out = {"w_x": w_x}
    if spec.recurrent_weights:
        out["w_h"] = hnp.concat([INITIALIZERS[recurrent_init](rng, (hidden, hidden), hidden=hidden)
                                 for _ in range(spec.gates)], axis=1)  # (H, G*H)
    for name, (w, value) in spec.vectors.items():
        if value is None:
            out[name] = INITIALIZERS["torch"](rng, (w * hidden,), hidden=hidden)  # (w*H,)
        else:
            out[name] = hnp.full((w * hidden,), float(value), dtype=hnp.float64)
    if forget_bias:
        spec.check_forget_bias(forget_bias)
        spec.shift_forget_gates(out["b"], forget_bias, hidden)  # a host array made here
    return out


def place(host: Array, *, xp: Namespace, device: Device, dtype: DType) -> Array:
    """Move a host draw to ``xp`` on ``device`` with ``dtype`` (rounded once, on the host side
    of the transfer, so every backend gets the same bits)."""
    return from_host(host, xp=xp, device=device, dtype=dtype)


def resolve_dtype(xp: Namespace, dtype: str | DType) -> DType:
    """``xp``'s dtype for a parameter dtype given by name (``"float32"``/``"float64"``) or as
    an ``xp`` dtype."""
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        return getattr(xp, dtype)
    return dtype
