"""The implementations timed, each behind one factory ``make(case) -> run`` where ``run()``
performs one forward (``fwd``) or forward + backward (``m2m``/``m2o``) and returns only when the
device is idle. Libraries are imported inside the factories so that a worker process loads only
its own implementation's library (NumPy's OpenBLAS threads and torch's OpenMP threads in one
process slow each other down on a small machine).

Every implementation computes the same outputs: the states ``hs`` for ``fwd``; ``hs`` and the
gradients of ``x``, ``w_x``, ``w_h`` and ``b`` for the backward variants, starting from a zero
initial state. The exception is ``numpy-gemm-floor``: the matrix products alone, a floor to
divide rnnx's time by, not a cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cases import CELLS, GATES, Case, host_data

Run = Callable[[], Any]

#: The name of the GEMM floor (:func:`_numpy_gemm_floor`), which computes no cell.
FLOOR = "numpy-gemm-floor"


@dataclass(frozen=True)
class Impl:
    name: str
    device: str  # "cpu" or "cuda": ratios are taken to torch.nn.RNN on the same device
    make: Callable[[Case], Run]
    unavailable: Callable[[], str]  # empty string if it can run here, else the reason
    library: str  # what the worker reports threads/BLAS for: "numpy", "torch", "jax", "cupy"
    cells: tuple[str, ...] = ("rnn",)  # the cell kinds it implements


# ----------------------------------------------------------------------------------------------
# availability probes


def _always() -> str:
    return ""


def _no_torch_cuda() -> str:
    import torch

    return "" if torch.cuda.is_available() else "torch sees no CUDA device"


def _no_cupy() -> str:
    from rnnx._backend import available_backends

    status = available_backends()["cupy"]
    return "" if status.available else f"cupy unavailable: {status.reason}"


def _no_jax() -> str:
    try:
        import jax  # noqa: F401
    except ImportError as exc:
        return f"jax not installed ({exc}); `pip install jax` to include it"
    return ""


def _no_jax_gpu() -> str:
    reason = _no_jax()
    if reason:
        return reason
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError as exc:
        return f"jax sees no GPU ({str(exc).splitlines()[0]})"
    return ""


# ----------------------------------------------------------------------------------------------
# rnnx through the Array API


def _rnnx(put: Callable[[Any], Any], sync: Callable[[Any], None]) -> Callable[[Case], Run]:
    def make(case: Case) -> Run:
        from rnnx import functional as F

        d = {k: put(v) for k, v in host_data(case).items()}
        x, w_x, w_h, b, dhs = d["x"], d["w_x"], d["w_h"], d["b"], d["dhs"]
        biases = (b, d["b_hh"]) if case.cell == "gru" else (b,)
        forward = getattr(F, f"{case.cell}_forward")
        backward = getattr(F, f"{case.cell}_backward")
        if case.variant == "fwd":
            def run():
                hs, _ = forward(x, w_x, w_h, *biases)
                sync(hs)
                return hs
        else:
            def run():
                hs, cache = forward(x, w_x, w_h, *biases)
                g = backward(dhs, cache)
                sync(g.dw_h)
                return hs, g
        return run

    return make


def _numpy_put(a):
    return a


def _no_sync(_):
    return None


def _torch_put(device: str):
    def put(a):
        import torch

        return torch.from_numpy(a).to(device)

    return put


def _cupy_put(a):
    import cupy

    return cupy.asarray(a)


def _rnnx_sync(a):
    from rnnx._backend import synchronize

    synchronize(a)


# ----------------------------------------------------------------------------------------------
# torch.nn.RNN with autograd


def _torch_nn(device: str, tf32: bool = False) -> Callable[[Case], Run]:
    """torch.nn.RNN/LSTM/GRU on ``device``. On CUDA that is cuDNN, whose float32 RNNs run on
    TF32 tensor cores by default (``torch.backends.cudnn.allow_tf32`` is True): ``tf32=False``
    turns that off, so the reference computes full float32 as rnnx does; ``tf32=True`` keeps
    the library default. Each worker is its own process, so the switch is the process's."""

    def make(case: Case) -> Run:
        import torch

        if device == "cuda":
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = False  # torch's default: cuDNN's is the flag

        d = {k: torch.from_numpy(v).to(device) for k, v in host_data(case).items()}
        _, _, f_, h_ = case.shape
        module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.cell]
        rnn = module(f_, h_, batch_first=True, bias=True).to(device=device, dtype=d["x"].dtype)
        with torch.no_grad():
            # torch keeps W as (G*hidden, in) and two biases; same maths as rnnx's (w_x, w_h, b)
            # (a GRU keeps both biases in rnnx too).
            rnn.weight_ih_l0.copy_(d["w_x"].T)
            rnn.weight_hh_l0.copy_(d["w_h"].T)
            rnn.bias_ih_l0.copy_(d["b"])
            if case.cell == "gru":
                rnn.bias_hh_l0.copy_(d["b_hh"])
            else:
                rnn.bias_hh_l0.zero_()
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        x, dhs = d["x"], d["dhs"]
        if case.variant == "fwd":
            def run():
                with torch.no_grad():
                    out, _ = rnn(x)
                sync()
                return out
        else:
            xg = x.clone().requires_grad_(True)  # dx is computed, as rnnx does
            last = case.variant == "m2o"

            def run():
                rnn.zero_grad(set_to_none=True)
                xg.grad = None
                out, _ = rnn(xg)
                (out[:, -1, :] if last else out).backward(dhs)
                sync()
                return out, xg.grad, rnn.weight_hh_l0.grad
        return run

    return make


# ----------------------------------------------------------------------------------------------
# the same hoisted algorithm as rnnx, written directly with torch ops (no autograd)


def _torch_hoisted(case: Case) -> Run:
    import torch

    d = {k: torch.from_numpy(v) for k, v in host_data(case).items()}
    x, w_x, w_h, b, dhs = d["x"], d["w_x"], d["w_h"], d["b"], d["dhs"]
    bsz, T, F, H = case.shape
    last = case.variant == "m2o"
    w_hT = w_h.T.contiguous()  # (H, H)

    def forward():
        # Time-major buffers so each step reads and writes one contiguous (B, H) block.
        xw = torch.addmm(b, x.transpose(0, 1).reshape(T * bsz, F), w_x).view(T, bsz, H)  # (T, B, H)
        hs = torch.empty((T, bsz, H), dtype=x.dtype)  # (T, B, H)
        h = torch.zeros((bsz, H), dtype=x.dtype)  # (B, H)
        for t in range(T):
            torch.addmm(xw[t], h, w_h, out=hs[t])  # (B, H)
            torch.tanh_(hs[t])
            h = hs[t]
        return hs

    def backward(hs):
        da = torch.empty_like(hs)  # (T, B, H)
        g = (dhs if last else dhs[:, T - 1, :]).clone()  # (B, H)
        for t in range(T - 1, -1, -1):
            torch.mul(hs[t], hs[t], out=da[t])
            torch.sub(1.0, da[t], out=da[t])
            da[t].mul_(g)  # (B, H): g * (1 - h^2)
            if t > 0:
                if last:
                    g = da[t] @ w_hT  # (B, H)
                else:
                    g = torch.addmm(dhs[:, t - 1, :], da[t], w_hT)  # (B, H)
        dh0 = da[0] @ w_hT  # (B, H)
        da2 = da.reshape(T * bsz, H)  # (T*B, H)
        xt = x.transpose(0, 1).reshape(T * bsz, F)  # (T*B, F)
        dw_x = xt.T @ da2  # (F, H)
        dw_h = hs[:-1].reshape((T - 1) * bsz, H).T @ da[1:].reshape((T - 1) * bsz, H)  # (H, H)
        db = da2.sum(0)  # (H,)
        dx = (da2 @ w_x.T).view(T, bsz, F).transpose(0, 1)  # (B, T, F)
        return dx, dh0, dw_x, dw_h, db

    if case.variant == "fwd":
        def run():
            return forward().transpose(0, 1)
    else:
        def run():
            hs = forward()
            return hs.transpose(0, 1), backward(hs)
    return run


# ----------------------------------------------------------------------------------------------
# jit-compiled jax.lax.scan; gradients by jax.vjp of the same scan, also jitted


def _jax_scan(case: Case) -> Run:
    """Elman, LSTM or GRU written as a ``jax.lax.scan`` step in jax.numpy, gradients by JAX's
    own autodiff (``jax.vjp``) of that scan: what a JAX user writes by hand. Matrix products at
    ``"highest"`` precision, as rnnx computes them (full float32; TF32 on a GPU otherwise)."""
    import jax

    if case.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    d = {k: jnp.asarray(v) for k, v in host_data(case).items()}
    bsz, _, _, H = case.shape
    last = case.variant == "m2o"
    cell = case.cell

    def step(carry, xw_t, w_h, b_hh):
        if cell == "rnn":
            h = jnp.tanh(xw_t + carry @ w_h)  # (B, H)
            return h, h
        if cell == "lstm":
            h, c = carry
            a = xw_t + h @ w_h  # (B, 4H)
            i, f, g, o = jnp.split(a, 4, axis=1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)  # (B, H)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)  # (B, H)
            return (h, c), h
        h = carry  # GRU, torch's reset-after layout
        v = h @ w_h + b_hh  # (B, 3H)
        u_r, u_z, u_n = jnp.split(xw_t, 3, axis=1)
        v_r, v_z, v_n = jnp.split(v, 3, axis=1)
        r, z = jax.nn.sigmoid(u_r + v_r), jax.nn.sigmoid(u_z + v_z)  # (B, H)
        n = jnp.tanh(u_n + r * v_n)  # (B, H)
        h = (1.0 - z) * n + z * h  # (B, H)
        return h, h

    def forward(x, w_x, w_h, b, b_hh):
        xw = jnp.einsum("btf,fh->tbh", x, w_x) + b  # (T, B, G*H)
        h0 = jnp.zeros((bsz, H), dtype=x.dtype)
        carry = (h0, h0) if cell == "lstm" else h0
        _, hs = jax.lax.scan(lambda c, u: step(c, u, w_h, b_hh), carry, xw)  # (T, B, H)
        return jnp.swapaxes(hs, 0, 1)  # (B, T, H)

    def forward_highest(*args):
        with jax.default_matmul_precision("highest"):
            return forward(*args)

    fwd = jax.jit(forward_highest)

    @jax.jit
    def fwd_bwd(x, w_x, w_h, b, b_hh, dhs):
        hs, vjp = jax.vjp(forward_highest, x, w_x, w_h, b, b_hh)
        cot = jnp.zeros_like(hs).at[:, -1, :].set(dhs) if last else dhs
        return hs, vjp(cot)

    b_hh = d.get("b_hh", jnp.zeros_like(d["b"]))
    args = (d["x"], d["w_x"], d["w_h"], d["b"], b_hh)
    # The precision is read when the first call traces; a scope, not jax.config.update, so a
    # test process that calls this keeps its own setting.
    if case.variant == "fwd":
        def run():
            with jax.default_matmul_precision("highest"):
                return jax.block_until_ready(fwd(*args))
    else:
        def run():
            with jax.default_matmul_precision("highest"):
                return jax.block_until_ready(fwd_bwd(*args, d["dhs"]))
    return run


def _jax_put(a):
    import jax

    if a.dtype.name == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jnp.asarray(a)


def _jax_sync(a):
    import jax

    jax.block_until_ready(a)


# ----------------------------------------------------------------------------------------------
# the seed's textbook NumPy loop: one matmul per step for the input too, weight gradients
# accumulated step by step, states kept in a list


def _numpy_textbook(case: Case) -> Run:
    import numpy as np

    d = host_data(case)
    x, w_x, w_h, b, dhs = d["x"], d["w_x"], d["w_h"], d["b"], d["dhs"]
    bsz, T, _, H = case.shape
    last = case.variant == "m2o"

    def forward():
        h = np.zeros((bsz, H), dtype=x.dtype)
        hs = []
        for t in range(T):
            h = np.tanh(x[:, t, :] @ w_x + h @ w_h + b)  # (B, H)
            hs.append(h)
        return hs

    def backward(hs):
        dw_x = np.zeros_like(w_x)
        dw_h = np.zeros_like(w_h)
        db = np.zeros_like(b)
        dx = np.zeros_like(x)
        dh_next = np.zeros((bsz, H), dtype=x.dtype)
        for t in reversed(range(T)):
            g = dh_next + (dhs if (last and t == T - 1) else 0 if last else dhs[:, t, :])
            da = g * (1 - hs[t] ** 2)  # (B, H)
            h_prev = hs[t - 1] if t > 0 else np.zeros_like(hs[0])
            dw_x += x[:, t, :].T @ da  # (F, H)
            dw_h += h_prev.T @ da  # (H, H)
            db += da.sum(axis=0)
            dx[:, t, :] = da @ w_x.T  # (B, F)
            dh_next = da @ w_h.T  # (B, H)
        return dx, dh_next, dw_x, dw_h, db

    if case.variant == "fwd":
        def run():
            return np.stack(forward(), axis=1)
    else:
        def run():
            hs = forward()
            return np.stack(hs, axis=1), backward(hs)
    return run


# ----------------------------------------------------------------------------------------------
# the GEMMs a cell's BPTT cannot avoid, alone, in NumPy: the floor rnnx's time is divided by


def _numpy_gemm_floor(case: Case, *, matmul: Callable[..., Any] | None = None) -> Run:
    """Only the matrix products of ``case.cell``'s forward (``fwd``) or forward and BPTT
    (``m2m``/``m2o``), in NumPy, with the dtype and the operand layouts rnnx's functional code
    gives them, every operand and result buffer allocated here, outside the timed ``run()``.
    No nonlinearity, no elementwise gate maths, no bias sums: the time of this is what the BLAS
    alone needs, and ``rnnx ÷ floor`` is what rnnx spends on top of it. ``matmul`` (default
    ``np.matmul``) is called as ``matmul(a, b, out=c)`` for every product (the tests count them).

    With ``G`` gate blocks (1 Elman, 4 LSTM, 3 GRU), ``R = B*T`` rows, states ``h_1..h_T``:

    * input projection ``[x, 1] @ [w_x; b]``: ``(R, F+1) @ (F+1, G*H)``, one GEMM over all
      steps, time-major rows (a C-contiguous copy with the column of ones: rnnx folds the bias
      into the product; for a GRU that is ``b_ih``).
      rnnx folds only from ``2**14`` projection elements up; below, its ``(R, F)`` product plus
      an add replaces this, a difference of one row of ``F + 1``.
    * forward recurrence ``h_{t-1} @ w_h``: ``(B, H) @ (H, G*H)``, T-1 times: from the zero
      initial state step 1 has no recurrent term (a GRU's ``b_hh`` is then the whole of it: an
      add, not a product). Left operand a C-contiguous ``(B, H)`` slot of the time-major states.
    * backward recurrence ``dA_t @ w_h^T``: ``(B, G*H) @ (G*H, H)``, T times (step 1's gives
      ``dL/dh_0``, which rnnx returns). ``w_h^T`` a C-contiguous copy, made once per call, as
      ``rnnx.functional._common.per_step_transpose`` does above its small-case threshold (the
      floor's copy is made here, outside the clock). For the GRU ``dA_t = dv_t``, the
      ``(B, 3H)`` blocks ``r, z, n`` of the step's ``(B, 5H)`` factor row (row stride 5H).
    * ``[dw_x; db] = [x, 1]^T @ dA``: ``(F+1, R) @ (R, G*H)``, the transposed view of the
      projection's rows (for a GRU ``dA = du``, the blocks ``n, r, z`` of the factor rows, and
      ``db`` is ``db_ih``).
    * ``dw_h = H_prev^T @ dA_{2..T}``: ``(H, B(T-1)) @ (B(T-1), G*H)``, the transposed view of
      states 1..T-1 (``h_0 = 0`` adds nothing). The GRU's ``db_hh = sum_t dv_t`` is a column
      sum, not a product: not in the floor.
    * ``dx = dA @ w_x^T``: ``(R, G*H) @ (G*H, F)``, ``w_x^T`` a transposed view (rnnx's
      ``dxw @ w_x.T``; the GRU's ``w_x`` in block order ``n, r, z``, a concatenated copy).

    Forward: ``T`` GEMMs; forward + backward: ``2T + 3``. The per-step products write into one
    scratch buffer (the floor does not allocate a step's result); their left operands are the
    preallocated states and gradients (seeded, in ``tanh``'s range: no denormals from a
    repeated product decaying to zero).
    """
    import numpy as np

    mm = np.matmul if matmul is None else matmul
    d = host_data(case)
    bsz, T, F, H = case.shape
    G = GATES[case.cell]
    dt = d["x"].dtype
    rng = np.random.default_rng(1)
    x_rows = np.concatenate([d["x"].transpose(1, 0, 2).reshape(T * bsz, F),
                             np.ones((T * bsz, 1), dtype=dt)], axis=1)  # (R, F+1), time-major
    w_b = np.concatenate([d["w_x"], d["b"][None, :]], axis=0)  # (F+1, GH)
    w_h = d["w_h"]  # (H, GH)
    xw = np.empty((T * bsz, G * H), dtype=dt)  # (R, GH): the projection
    hs = rng.uniform(-1, 1, size=(T, bsz, H)).astype(dt)  # (T, B, H): the states
    step = np.empty((bsz, G * H), dtype=dt)  # (B, GH): a forward step's product
    forward = [(hs[t - 1], w_h, step) for t in range(1, T)]  # (B, H) @ (H, GH), T-1 times
    hoisted_fwd = [(x_rows, w_b, xw)]  # (R, F+1) @ (F+1, GH)
    if case.variant == "fwd":
        products = hoisted_fwd + forward
    else:
        w_hT = np.ascontiguousarray(w_h.T)  # (GH, H), per_step_transpose's copy
        if case.cell == "gru":
            # the step factor rows [da_n, da_r, da_z, da_n*r, g*z]: du = blocks 0-2, dv = 1-3
            rows = rng.normal(size=(T, bsz, 5 * H)).astype(dt)  # (T, B, 5H)
            du = rows[:, :, : 3 * H].reshape(T * bsz, 3 * H)  # (R, 3H), row stride 5H: a view
            dv_tm = rows[:, :, H: 4 * H]  # (T, B, 3H), row stride 5H
            w_x = np.concatenate([d["w_x"][:, 2 * H:], d["w_x"][:, : 2 * H]], axis=1)  # (F, 3H)
        else:
            rows = rng.normal(size=(T, bsz, G * H)).astype(dt)  # (T, B, GH): dA
            du = rows.reshape(T * bsz, G * H)  # (R, GH)
            dv_tm = rows  # (T, B, GH)
            w_x = d["w_x"]  # (F, GH)
        dv_next = dv_tm[1:].reshape((T - 1) * bsz, G * H)  # (B(T-1), GH): a view
        assert np.shares_memory(dv_next, rows) and np.shares_memory(du, rows)
        g = np.empty((bsz, H), dtype=dt)  # (B, H): a backward step's product
        backward = [(dv_tm[t], w_hT, g) for t in range(T - 1, -1, -1)]  # (B, GH) @ (GH, H)
        dwb = np.empty((F + 1, G * H), dtype=dt)  # (F+1, GH): [dw_x; db]
        dw_h = np.empty((H, G * H), dtype=dt)  # (H, GH)
        dx = np.empty((T * bsz, F), dtype=dt)  # (R, F), time-major rows
        h_prev = hs[: T - 1].reshape((T - 1) * bsz, H)  # (B(T-1), H): a view
        products = hoisted_fwd + forward + backward + [
            (x_rows.T, du, dwb),  # (F+1, R) @ (R, GH)
            (h_prev.T, dv_next, dw_h),  # (H, B(T-1)) @ (B(T-1), GH)
            (du, w_x.T, dx),  # (R, GH) @ (GH, F)
        ]

    def run():
        for a, b, out in products:
            mm(a, b, out=out)
        return out

    return run


IMPLS: dict[str, Impl] = {
    i.name: i
    for i in (
        Impl("torch.nn.RNN", "cpu", _torch_nn("cpu"), _always, "torch", CELLS),
        Impl("rnnx-numpy", "cpu", _rnnx(_numpy_put, _no_sync), _always, "numpy", CELLS),
        Impl("rnnx-torch", "cpu", _rnnx(_torch_put("cpu"), _no_sync), _always, "torch", CELLS),
        Impl("torch-hoisted", "cpu", _torch_hoisted, _always, "torch"),
        Impl("jax-scan", "cpu", _jax_scan, _no_jax, "jax", CELLS),
        Impl("rnnx-jax", "cpu", _rnnx(_jax_put, _jax_sync), _no_jax, "jax", CELLS),
        Impl("numpy-textbook", "cpu", _numpy_textbook, _always, "numpy"),
        Impl(FLOOR, "cpu", _numpy_gemm_floor, _always, "numpy", CELLS),
        Impl("torch.nn.RNN-cuda", "cuda", _torch_nn("cuda"), _no_torch_cuda, "torch", CELLS),
        Impl("torch.nn.RNN-cuda-tf32", "cuda", _torch_nn("cuda", tf32=True), _no_torch_cuda,
             "torch", CELLS),
        Impl("jax-scan-cuda", "cuda", _jax_scan, _no_jax_gpu, "jax"),
        Impl("rnnx-torch-cuda", "cuda", _rnnx(_torch_put("cuda"), _rnnx_sync), _no_torch_cuda,
             "torch", CELLS),
        Impl("rnnx-cupy", "cuda", _rnnx(_cupy_put, _rnnx_sync), _no_cupy, "cupy", CELLS),
    )
}

#: The reference each ratio is taken to, per device ("torch.nn.RNN" runs torch.nn.LSTM/GRU for
#: the gated cells' cases: the impl names stay those of the Elman suite). On CUDA it is cuDNN
#: with TF32 off: full float32, what rnnx computes.
REFERENCE = {"cpu": "torch.nn.RNN", "cuda": "torch.nn.RNN-cuda"}
