"""RNNX_REQUIRE_BACKENDS turns "unavailable" into a failure, and the CUDA driver probe.

Everything here runs on this machine: where CuPy (or torch's CUDA) cannot run, requiring it must
fail the test session, the fixture and ``rnnx check`` with the reason; where it can, those tests
are skipped (the requirement is met, nothing to show).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from rnnx._backend import (
    REQUIREMENTS,
    available_backends,
    cuda_driver_unavailable_reason,
    required_backends,
    requirement_status,
)
from tests._subprocess import ROOT, child_env
from tests.conftest import _resolve


def _run(*args: str, require: str | None, backends: str | None = None, timeout: float = 240):
    env = child_env(RNNX_REQUIRE_BACKENDS=require, RNNX_BACKENDS=backends)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout, check=False)


def _cupy_reason() -> str:
    s = available_backends()["cupy"]
    if s.available:
        pytest.skip("cupy runs here: requiring it is met, there is no failure to show")
    return s.reason


def test_required_backends_parse_in_order_once():
    assert required_backends("") == ()
    assert required_backends(" cupy, torch-cuda ,cupy,") == ("cupy", "torch-cuda")
    assert set(REQUIREMENTS) == {*available_backends(), "torch-cuda"}


def test_an_unknown_requirement_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"RNNX_REQUIRE_BACKENDS names unknown backend\(s\) "
                                         r"'gpu'; known: numpy, .*cupy, .*torch-cuda"):
        required_backends("numpy,gpu")


def test_requirement_status_matches_availability():
    assert requirement_status("numpy").available
    cuda = requirement_status("torch-cuda")
    torch = available_backends()["torch"]
    if not torch.available:
        assert not cuda.available and cuda.reason == torch.reason
    assert cuda.available or cuda.reason


def test_the_cuda_driver_probe_gives_the_reason_here():
    """The probe needs no CUDA library: it answers in a fraction of a second either way, and
    agrees with CuPy and torch (no device for the driver means none for them)."""
    reason = cuda_driver_unavailable_reason()
    if reason:
        assert "CUDA" in reason
        assert not available_backends()["cupy"].available
        assert not requirement_status("torch-cuda").available
    else:  # a driver with a device: CuPy, where installed, must agree
        cupy = available_backends()["cupy"]
        assert cupy.available or "not installed" in cupy.reason


def test_the_fixture_fails_instead_of_skipping_a_required_backend(monkeypatch):
    reason = _cupy_reason()
    monkeypatch.delenv("RNNX_REQUIRE_BACKENDS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="cupy: unavailable"):
        _resolve("cupy", "cuda")
    monkeypatch.setenv("RNNX_REQUIRE_BACKENDS", "numpy,cupy")
    with pytest.raises(pytest.fail.Exception,
                       match=re.escape(f"cupy is required (RNNX_REQUIRE_BACKENDS) but "
                                       f"unavailable: {reason}")):
        _resolve("cupy", "cuda")


def test_the_fixture_fails_for_a_required_torch_cuda(monkeypatch):
    reason = requirement_status("torch-cuda").reason
    if not reason or not available_backends()["torch"].available:
        pytest.skip("needs torch without a usable CUDA device")
    monkeypatch.setenv("RNNX_REQUIRE_BACKENDS", "torch-cuda")
    with pytest.raises(pytest.fail.Exception, match="torch-cuda is required"):
        _resolve("torch", "cuda")


TINY = "tests/test_backend_devices.py::test_common_device_of_numpy_arrays_is_the_cpu"


def test_a_test_session_requiring_cupy_fails_at_start_with_the_reason():
    reason = _cupy_reason()
    res = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", TINY, require="cupy")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert f"RNNX_REQUIRE_BACKENDS requires what cannot run here: cupy: {reason}" in out
    assert "passed" not in out and "skipped" not in out


def test_a_test_session_requiring_numpy_passes():
    res = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", TINY, require="numpy")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout


def test_rnnx_check_requiring_cupy_is_a_failing_row_and_a_nonzero_exit():
    reason = _cupy_reason()
    res = _run("-m", "rnnx", "check", "--backend", "numpy", require="cupy")
    assert res.returncode == 1, res.stdout + res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("cupy "))
    assert row.split()[1] == "NO" and reason in row
    assert f"cupy: {reason}" in res.stderr


def test_rnnx_check_with_an_unknown_requirement_exits_2_naming_the_known_ones():
    res = _run("-m", "rnnx", "check", "--backend", "numpy", require="gpu")
    assert res.returncode == 2
    assert "known: numpy" in res.stderr and "torch-cuda" in res.stderr


def test_nox_gpu_fails_in_seconds_naming_the_missing_device(tmp_path):
    """`nox -s gpu` asks the CUDA driver before installing anything: without a device it stops
    with the probe's reason long before an install could have started."""
    import time

    pytest.importorskip("nox")
    reason = cuda_driver_unavailable_reason()
    if not reason:
        pytest.skip("the CUDA driver sees a device here: nox -s gpu would run for real")
    t0 = time.perf_counter()
    res = _run("-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "gpu", "--envdir",
               str(tmp_path / "nox"), require=None, timeout=120)
    seconds = time.perf_counter() - t0
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert f"no usable CUDA device here: {reason}" in out
    assert "pip install" not in out
    assert seconds < 60, f"took {seconds:.0f} s"


def test_a_child_pytest_gets_none_of_the_running_pytests_state(monkeypatch):
    """Under ``pytest -n auto`` this test runs in an xdist worker: the child pytest it starts
    must not inherit the worker's variables or the parent's options (``PYTEST_ADDOPTS`` with
    ``-n`` made the child a distributed session, and pytest-benchmark 5.1's warning about that,
    under ``filterwarnings = error``, an INTERNALERROR on the first GPU run)."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "0123")
    monkeypatch.setenv("PYTEST_ADDOPTS", "--this-option-does-not-exist")
    env = child_env(RNNX_BACKENDS="numpy", RNNX_REQUIRE_BACKENDS=None)
    assert not [k for k in env if k.startswith("PYTEST_")], env
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    assert env["RNNX_BACKENDS"] == "numpy" and "RNNX_REQUIRE_BACKENDS" not in env
    res = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", TINY, require="numpy")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
