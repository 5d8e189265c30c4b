"""The benchmark's implementations compute what rnnx computes: a timing table comparing
different maths would be meaningless. One small float64 case per variant, every implementation
that can run here against rnnx on NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.cases import Case, all_cases
from benchmarks.impls import IMPLS

NAMES = [n for n in IMPLS if n != "rnnx-numpy"]


def _host(a):
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


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
    elif name == "jax-scan":
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


def test_gated_flops_count_the_gate_blocks():
    (lstm,) = all_cases(((2, 3, 4, 5),), ("float32",), ("fwd",), ("lstm",))
    (gru,) = all_cases(((2, 3, 4, 5),), ("float32",), ("fwd",), ("gru",))
    assert lstm.flops == 4 * 2 * 2 * 3 * (4 * 5 + 5 * 5)
    assert gru.flops == 3 * 2 * 2 * 3 * (4 * 5 + 5 * 5)
    assert lstm.key == "lstm:2x3x4x5/float32/fwd"


def test_table_reports_calls_per_step_for_rnnx_rows():
    """The timing table's calls/step column: rnnx rows carry the counted forward (and backward)
    calls per step, the other implementations none."""
    from benchmarks.run import calls_per_step_table, to_markdown

    cases = all_cases(((2, 3, 4, 5),), ("float32",), ("fwd", "m2m"), ("rnn", "gru"))
    calls = calls_per_step_table(cases)
    assert calls == {"rnn": {"fwd": [5, None], "m2m": [5, 5]},
                     "gru": {"fwd": [23, None], "m2m": [23, 10]}}
    row = {"case": cases[1].key, "impl": "rnnx-numpy", "best_s": 1e-3, "median_s": 1e-3,
           "ratio_to_torch_nn": 0.5, "gflops": 1.0, "gemm_fraction": 0.1, **cases[1].to_dict()}
    ref = {**row, "impl": "torch.nn.RNN", "ratio_to_torch_nn": 1.0}
    result = {"machine": {"cpu": "c", "cores": 2, "python": "3", "platform": "p",
                          "thread_env": {}}, "when": "now", "threads": 1, "rounds": 1,
              "budget_s": 0.1, "min_reps": 1, "quick": True, "gemm_peak": {}, "info": {},
              "rows": [row, ref], "calls_per_step": calls}
    md = to_markdown(result)
    assert "calls/step (fwd, bwd) |" in md
    assert "| rnnx-numpy | 1.00 ms | 1.00 ms | 0.50 | 1.0 | 10 % | 5, 5 |" in md
    assert "| torch.nn.RNN | 1.00 ms | 1.00 ms | 1.00 | 1.0 | 10 % |  |" in md


def _bench(*args, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], capture_output=True,
                          text=True, cwd=root, env=env, timeout=120, check=False)


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
