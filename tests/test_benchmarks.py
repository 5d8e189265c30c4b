"""The benchmark's implementations compute what rnnx computes: a timing table comparing
different maths would be meaningless. One small float64 case per variant, every implementation
that can run here against rnnx on NumPy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from benchmarks.cases import Case, all_cases
from benchmarks.impls import FLOOR, IMPLS, _numpy_gemm_floor
from rnnx._backend import on_accelerator, to_numpy
from tests._subprocess import ROOT, child_env

# The GEMM floor computes no cell (its products alone): it has its own test below.
NAMES = [n for n in IMPLS if n not in ("rnnx-numpy", FLOOR)]


def _host(a):
    # rnnx's one host-transfer helper: CuPy refuses np.asarray ("Implicit conversion to a NumPy
    # array is not allowed"), torch CUDA tensors need .cpu() first.
    return to_numpy(a)


def _outputs(result, variant):
    """(hs, dw_h) from what an implementation's run() returned."""
    if variant == "fwd":
        return _host(result), None
    hs, grads = result
    if isinstance(grads, tuple) and len(grads) == 5:  # (dx, dh0, dw_x, dw_h, db) order
        return _host(hs), _host(grads[3])
    if hasattr(grads, "dw_h"):
        return _host(hs), _host(grads.dw_h)
    return _host(hs), _host(grads)


@pytest.fixture(params=NAMES)
def name(request):
    """An implementation's name; skipped here, with the reason, if it cannot run here."""
    reason = IMPLS[request.param].unavailable()
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.mark.parametrize("variant", ["fwd", "m2m", "m2o"])
def test_same_maths_as_rnnx(name, variant):
    """States and dL/dw_h agree with rnnx to 1e-10 relative to the largest term (float64, the
    same data; orders of summation differ, so ~1e-15 is expected; a wrong term shows at O(1))."""
    impl = IMPLS[name]
    case = Case(3, 6, 4, 5, "float64", variant)
    want_hs, want_dwh = _outputs(IMPLS["rnnx-numpy"].make(case)(), variant)
    result = impl.make(case)()
    if name.startswith("torch.nn.RNN"):
        hs = _host(result if variant == "fwd" else result[0])
        dwh = None if variant == "fwd" else _host(result[2]).T  # torch keeps W_hh as (out, in)
    elif name.startswith("jax-scan"):
        hs = _host(result if variant == "fwd" else result[0])
        dwh = None if variant == "fwd" else _host(result[1][2])
    else:
        hs, dwh = _outputs(result, variant)
    np.testing.assert_allclose(hs, want_hs, rtol=0, atol=1e-10 * np.abs(want_hs).max())
    if dwh is not None:
        np.testing.assert_allclose(dwh, want_dwh, rtol=0, atol=1e-10 * np.abs(want_dwh).max())


def test_flops_count():
    """GEMM flops: forward 2BT(FH + H^2), forward + backward three times that."""
    fwd, m2m, _ = all_cases(((2, 3, 4, 5),), ("float32",))
    assert fwd.flops == 2 * 2 * 3 * (4 * 5 + 5 * 5)
    assert m2m.flops == 3 * fwd.flops


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("variant", ["fwd", "m2m", "m2o"])
def test_gated_cells_same_maths_in_torch_nn(cell, variant):
    """For the gated cells the suite times rnnx against torch.nn.LSTM/GRU: same states and
    dL/dw_h (float64, 1e-10 relative to the largest term, as above)."""
    if IMPLS["torch.nn.RNN"].unavailable():
        pytest.skip(IMPLS["torch.nn.RNN"].unavailable())
    case = Case(3, 6, 4, 5, "float64", variant, cell)
    want_hs, want_dwh = _outputs(IMPLS["rnnx-numpy"].make(case)(), variant)
    result = IMPLS["torch.nn.RNN"].make(case)()
    hs = _host(result if variant == "fwd" else result[0])
    np.testing.assert_allclose(hs, want_hs, rtol=0, atol=1e-10 * np.abs(want_hs).max())
    if variant != "fwd":
        dwh = _host(result[2]).T  # torch keeps W_hh as (G*hidden, hidden)
        np.testing.assert_allclose(dwh, want_dwh, rtol=0, atol=1e-10 * np.abs(want_dwh).max())


@pytest.mark.parametrize("name", ["jax-scan", "rnnx-jax"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("variant", ["fwd", "m2m", "m2o"])
def test_gated_cells_same_maths_in_jax(name, cell, variant):
    """The JAX rows of the gated cells (JAX's own autodiff of a lax.scan LSTM/GRU, and rnnx
    compiled on JAX) compute rnnx's: the same states and dL/dw_h (float64, 1e-10 relative to the
    largest term)."""
    if IMPLS[name].unavailable():
        pytest.skip(IMPLS[name].unavailable())
    case = Case(3, 6, 4, 5, "float64", variant, cell)
    want_hs, want_dwh = _outputs(IMPLS["rnnx-numpy"].make(case)(), variant)
    result = IMPLS[name].make(case)()
    if name == "jax-scan":
        hs = _host(result if variant == "fwd" else result[0])
        dwh = None if variant == "fwd" else _host(result[1][2])
    else:
        hs, dwh = _outputs(result, variant)
    np.testing.assert_allclose(hs, want_hs, rtol=0, atol=1e-10 * np.abs(want_hs).max())
    if dwh is not None:
        np.testing.assert_allclose(dwh, want_dwh, rtol=0, atol=1e-10 * np.abs(want_dwh).max())


def test_gated_flops_count_the_gate_blocks():
    (lstm,) = all_cases(((2, 3, 4, 5),), ("float32",), ("fwd",), ("lstm",))
    (gru,) = all_cases(((2, 3, 4, 5),), ("float32",), ("fwd",), ("gru",))
    assert lstm.flops == 4 * 2 * 2 * 3 * (4 * 5 + 5 * 5)
    assert gru.flops == 3 * 2 * 2 * 3 * (4 * 5 + 5 * 5)
    assert lstm.key == "lstm:2x3x4x5/float32/fwd"


def test_table_reports_calls_per_step_for_rnnx_rows():
    """The timing table's calls/step column: rnnx rows carry the counted forward (and backward)
    calls per step of their executor (NumPy the tuned forms, torch the readable step), the
    other implementations none."""
    from benchmarks.run import calls_per_step_table, to_markdown

    cases = all_cases(((2, 3, 4, 5),), ("float32",), ("fwd", "m2m"), ("rnn", "gru"))
    calls = calls_per_step_table(cases)
    assert calls == {"tuned": {"rnn": {"fwd": [5, None], "m2m": [5, 5]},
                               "gru": {"fwd": [23, None], "m2m": [23, 10]}},
                     "eager": {"rnn": {"fwd": [5, None], "m2m": [5, 9]},
                               "gru": {"fwd": [31, None], "m2m": [31, 29]}}}
    row = {"case": cases[1].key, "impl": "rnnx-numpy", "best_s": 1e-3, "median_s": 1e-3,
           "ratio_to_torch_nn": 0.5, "ratio_to_floor": 2.5, "gflops": 1.0, "gemm_fraction": 0.1,
           **cases[1].to_dict()}
    eager = {**row, "impl": "rnnx-torch", "ratio_to_floor": None}
    ref = {**row, "impl": "torch.nn.RNN", "ratio_to_torch_nn": 1.0, "ratio_to_floor": None}
    result = {"machine": {"cpu": "c", "cores": 2, "python": "3", "platform": "p",
                          "thread_env": {}}, "when": "now", "threads": 1, "rounds": 1,
              "budget_s": 0.1, "min_reps": 1, "quick": True, "gemm_peak": {}, "info": {},
              "rows": [row, eager, ref], "calls_per_step": calls}
    md = to_markdown(result)
    assert "| % peak | ÷ floor | calls/step (fwd, bwd) |" in md
    assert "| rnnx-numpy | 1.00 ms | 1.00 ms | 0.50 | 1.0 | 10 % | 2.50 | 5, 5 |" in md
    assert "| rnnx-torch | 1.00 ms | 1.00 ms | 0.50 | 1.0 | 10 % |  | 5, 9 |" in md
    assert "| torch.nn.RNN | 1.00 ms | 1.00 ms | 1.00 | 1.0 | 10 % |  |  |" in md


def test_summary_divides_rnnx_cpu_rows_by_the_floor_of_the_same_case():
    """``ratio_to_floor`` = rnnx's best ÷ the floor's best on the same case, for rnnx's CPU
    rows only; a case the floor did not time gets none."""
    from benchmarks.run import summarise

    a, b = all_cases(((2, 3, 4, 5),), ("float32",), ("fwd", "m2m"))
    raw = {"gemm": {"gemm-numpy": {"float32": [1.0], "float64": [2.0]}},
           "samples": {"rnnx-numpy": {a.key: [3.0, 2.0], b.key: [6.0]},
                       "torch.nn.RNN": {a.key: [4.0], b.key: [4.0]},
                       FLOOR: {a.key: [1.0, 0.5]}}}
    rows = {(r["impl"], r["variant"]): r for r in summarise(raw, [a, b], list(raw["samples"]))["rows"]}
    assert rows[("rnnx-numpy", "fwd")]["ratio_to_floor"] == 4.0  # 2.0 / 0.5
    assert rows[("rnnx-numpy", "m2m")]["ratio_to_floor"] is None  # no floor for that case
    assert rows[("torch.nn.RNN", "fwd")]["ratio_to_floor"] is None
    assert rows[(FLOOR, "fwd")]["ratio_to_floor"] is None
    assert rows[(FLOOR, "fwd")]["ratio_to_torch_nn"] == 0.5 / 4.0


def _floor_products(case):
    """The (left shape, right shape, left layout, right layout) of every product the floor's
    run() makes, in order: 'C' C-contiguous, 'T' a transposed view of a C-contiguous array,
    'S' rows of unit stride but a longer row stride (a column block of wider rows)."""
    calls = []

    def layout(a):
        if a.flags.c_contiguous:
            return "C"
        if a.flags.f_contiguous:
            return "T"
        assert a.strides[1] == a.itemsize and a.strides[0] > a.shape[1] * a.itemsize
        return "S"

    def matmul(a, b, *, out):
        assert a.dtype == b.dtype == out.dtype == np.dtype(case.dtype)
        assert out.flags.c_contiguous and out.shape == (a.shape[0], b.shape[1])
        calls.append((a.shape, b.shape, layout(a), layout(b)))
        return np.matmul(a, b, out=out)

    run = _numpy_gemm_floor(case, matmul=matmul)
    run()
    first = list(calls)
    run()  # every call makes the same products again, into the same buffers
    assert calls == first + first
    return first


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gemm_floor_runs_the_gemms_bptt_cannot_avoid(cell, dtype):
    """Per cell of G gate blocks, B=3, T=6, F=4, H=5, R=B*T: the input projection
    (R, F+1)@(F+1, GH); T-1 forward (B, H)@(H, GH) (none from the zero state); for the backward
    variants T backward (B, GH)@(GH, H), dw_x (F+1, R)@(R, GH), dw_h (H, B(T-1))@(B(T-1), GH)
    and dx (R, GH)@(GH, F), in rnnx's layouts (w_h^T a copy, the weight gradients' left sides
    transposed views, the GRU's dA blocks of its (B, 5H) factor rows, dx against w_x^T's view)."""
    B, T, F, H = 3, 6, 4, 5
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    gh, R = G * H, B * T
    fwd = [((R, F + 1), (F + 1, gh), "C", "C")] + [((B, H), (H, gh), "C", "C")] * (T - 1)
    assert _floor_products(Case(B, T, F, H, dtype, "fwd", cell)) == fwd
    strided = "S" if cell == "gru" else "C"
    bwd = [((B, gh), (gh, H), strided, "C")] * T + [
        ((F + 1, R), (R, gh), "T", strided),
        ((H, B * (T - 1)), (B * (T - 1), gh), "T", strided),
        ((R, gh), (gh, F), strided, "T"),
    ]
    for variant in ("m2m", "m2o"):
        got = _floor_products(Case(B, T, F, H, dtype, variant, cell))
        assert got == fwd + bwd
        assert len(got) == 2 * T + 3


def _bench(*args, tmp_path):
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], capture_output=True,
                          text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)


def test_gpu_benchmark_smoke_run_on_the_cpu_writes_both_tables(tmp_path):
    """The GPU benchmark's machinery (worker processes, synchronised timing, the summary and the
    atomic .md/.json writer) run for real against torch.nn.RNN on the CPU, in ~10 s."""
    import json

    if IMPLS["torch.nn.RNN"].unavailable():
        pytest.skip(IMPLS["torch.nn.RNN"].unavailable())
    out = tmp_path / "gpu-smoke"
    res = _bench("--device", "cpu", "--quick", "--impl", "torch.nn.RNN", "--impl", "rnnx-numpy",
                 "--out", str(out), tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    result = json.loads(out.with_suffix(".json").read_text())
    rows = {(r["impl"], r["variant"]): r for r in result["rows"]}
    assert set(rows) == {(i, v) for i in ("torch.nn.RNN", "rnnx-numpy") for v in ("fwd", "m2m")}
    assert all(rows[("torch.nn.RNN", v)]["ratio"] == 1.0 for v in ("fwd", "m2m"))
    assert all(r["best_s"] > 0 and r["n"] >= 1 and r["peak_fraction"] > 0 for r in rows.values())
    md = out.with_suffix(".md").read_text()
    assert "| 8x10x4x16/float32/m2m | rnnx-numpy |" in md
    assert "| rnnx-numpy (rnn) | (8, 10, 4, 16) |" in md
    assert not list(tmp_path.glob("*.tmp"))  # written through temporary files, renamed


def test_gpu_benchmark_without_a_gpu_fails_naming_why(tmp_path):
    if not all(IMPLS[n].unavailable() for n in ("torch.nn.RNN-cuda", "rnnx-cupy")):
        pytest.skip("a GPU implementation runs here")
    res = _bench("--quick", "--out", str(tmp_path / "none"), tmp_path=tmp_path)
    assert res.returncode == 1
    assert "no GPU implementation can run here" in res.stderr
    assert not (tmp_path / "none.md").exists()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_train_throughput_sides_train_the_same_model(cell):
    """benchmarks.train_throughput: both sides build the cell's model and train an epoch on
    64 digits (no timing); rnnx's is the estimator `rnnx train --cell` builds, torch's the
    torch.nn module of that cell with the same hidden size."""
    if IMPLS["torch.nn.RNN"].unavailable():
        pytest.skip(IMPLS["torch.nn.RNN"].unavailable())
    from benchmarks.train_throughput import CONFIG, _digits, make_rnnx_trainer, make_torch_trainer

    x, y = _digits()
    x, y = x[:64], y[:64]
    rng = np.random.default_rng(0)
    for make in (make_rnnx_trainer, make_torch_trainer):
        epoch = make(CONFIG, cell)
        epoch(x, y, rng)
        model = epoch.model
        if make is make_rnnx_trainer:
            assert model.cell == cell and model.n_epochs_ == 1
            assert type(model).__name__ == ("ScratchSimpleRNNClassifier" if cell == "rnn"
                                            else "RNNClassifier")
        else:
            assert type(model).__name__ == cell.upper() and model.hidden_size == CONFIG["hidden"]


def test_train_throughput_table_has_a_row_per_cell():
    from benchmarks.train_throughput import CONFIG, to_markdown

    per = {c: {"best": {"rnnx train": 3000.0, "torch.nn": 1500.0},
               "median": {"rnnx train": 2000.0, "torch.nn": 1000.0}, "ratio_best": 2.0}
           for c in ("rnn", "lstm", "gru")}
    md = to_markdown({"config": CONFIG, "threads": 1, "rounds": 1, "epochs": 1,
                      "machine": {"cpu": "c", "cores": 2}, "cells": per})
    for c in per:
        assert f"| {c} | 3000 (2000) | 1500 (1000) | 2.00x |" in md


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_train_throughput_gpu_sides_train_the_same_model_on_the_gpu(cell):
    """``--device cuda``: every side trains the cell's model one epoch on the GPU (a tiny
    config, no timing): rnnx's estimator with its parameters on the GPU, torch's module on cuDNN
    with TF32 off or on as labelled."""
    from benchmarks.train_throughput import DEVICE_SIDES, GPU_CONFIG, _synthetic

    cfg = {**GPU_CONFIG, "hidden": 8, "batch": 16, "time": 5, "features": 3, "samples": 40}
    x, y = _synthetic(cfg)
    rng = np.random.default_rng(0)
    ran = 0
    torch = pytest.importorskip("torch")
    tf32 = torch.backends.cudnn.allow_tf32  # the sides set it for their worker process
    try:
        ran = _train_each_gpu_side(DEVICE_SIDES, cfg, cell, x, y, rng)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    if not ran:
        pytest.skip("no CUDA device for CuPy or torch here")


def _train_each_gpu_side(sides, cfg, cell, x, y, rng) -> int:
    ran = 0
    for side, (make, library) in sides["cuda"].items():
        impl = "rnnx-cupy" if library == "cupy" else "torch.nn.RNN-cuda"
        if IMPLS[impl].unavailable():
            continue
        epoch = make(cfg, cell)
        epoch(x, y, rng)
        model, ran = epoch.model, ran + 1
        if side.startswith("rnnx"):
            assert model.n_epochs_ == 1 and model.cell == cell
            assert all(on_accelerator(p) for p in model.network_.parameters().values())
        else:
            import torch

            assert type(model).__name__ == cell.upper() and model.hidden_size == cfg["hidden"]
            assert model.weight_hh_l0.is_cuda
            assert torch.backends.cudnn.allow_tf32 == side.endswith("tf32")
    return ran


def test_the_gpu_check_stops_in_seconds_naming_why_without_a_gpu(tmp_path):
    """``python -m benchmarks.gpu_check`` on a machine without a usable CUDA device: exit 1,
    the driver probe's reason, and no results folder."""
    from rnnx._backend import cuda_driver_unavailable_reason

    reason = cuda_driver_unavailable_reason()
    if not reason:
        pytest.skip("a CUDA device is usable here: the check would run")
    res = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                         env=child_env(), timeout=120, check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"no usable CUDA device here: {reason}" in res.stderr
    assert not (tmp_path / "out").exists()


def test_the_gpu_check_reads_each_commands_outcome():
    from benchmarks.gpu_check import _summary_line

    assert _summary_line("....\n== 12 passed, 3 skipped in 4.20s ==\n") == "12 passed, 3 skipped in 4.20s"
    assert _summary_line("x\nheld-out accuracy: 0.9749 (359 sequences)\n").startswith("held-out acc")
    assert _summary_line("seed ...\nall checks within tolerance\n") == "all checks within tolerance"
    assert _summary_line("") == ""
