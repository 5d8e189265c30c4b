"""JAX in its default 32-bit mode (``JAX_ENABLE_X64`` unset): estimators fit and predict in
float32, ``rnnx check`` checks JAX in float32 and says why float64 is left out, and float64 is
refused with the reason, never computed in float32 behind the caller's back. Run in a child
process, since x64 is fixed when JAX is first imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests._subprocess import child_env

pytest.importorskip("jax", reason="jax not installed: `pip install jax` to include this check")

CHILD = textwrap.dedent("""
    import warnings
    warnings.simplefilter("error")
    import jax, jax.numpy as jnp, numpy as np
    assert not jax.config.jax_enable_x64
    from rnnx.models import RNNClassifier, RNNRegressor
    from rnnx.datasets import load_digits_sequences
    X, y = load_digits_sequences()
    X, y = X[:300].astype(np.float32), y[:300]
    kw = dict(cell="gru", hidden_size=12, epochs=2, num_layers=2, dropout=0.2, random_state=0)
    lengths = np.full(300, 8)
    ref = RNNClassifier(**kw).fit(X, y, lengths=lengths)
    clf = RNNClassifier(**kw).fit(jnp.asarray(X), jnp.asarray(y), lengths=jnp.asarray(lengths))
    proba = clf.predict_proba(jnp.asarray(X))
    assert proba.dtype == jnp.float32 and isinstance(proba, jax.Array)
    # float32 on both sides, the same seeded draws and batches: rounding apart, the same model
    print("dev", float(np.max(np.abs(np.asarray(proba) - ref.predict_proba(X)))))
    reg = RNNRegressor(hidden_size=6, epochs=1, random_state=0).fit(jnp.asarray(X), jnp.asarray(X[:, -1, 0]))
    assert reg.predict(jnp.asarray(X)).shape == (300,)
    for extra, data in (({"dtype": "float64"}, X), ({}, X.astype(np.int32))):
        try:
            RNNClassifier(epochs=1, **extra).fit(jnp.asarray(data), jnp.asarray(y))
        except TypeError as exc:
            print("refused", exc)
        else:
            raise AssertionError("float64 on JAX without x64 was not refused")
""")


def _env():
    return child_env(JAX_ENABLE_X64=None, JAX_PLATFORMS="cpu")


def test_estimators_train_in_float32_and_refuse_float64():
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         env=_env(), timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    dev = float(next(line for line in lines if line.startswith("dev ")).split()[1])
    assert dev < 1e-5, dev  # float32 rounding of two trainings of the same model: ~1e-7 seen
    refused = [line for line in lines if line.startswith("refused")]
    assert len(refused) == 2
    assert all("JAX_ENABLE_X64=1" in line and "float64" in line for line in refused)
    assert "X of dtype int32 trains in float64" in refused[1]


def test_rnnx_check_checks_jax_in_float32():
    res = subprocess.run([sys.executable, "-m", "rnnx", "check", "--backend", "jax"],
                         capture_output=True, text=True, env=_env(), timeout=300, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "jax: float64 skipped (JAX without JAX_ENABLE_X64=1 has no float64)" in res.stdout
    assert "all checks within tolerance" in res.stdout
    cells = ("rnn", "lstm", "gru", "ln_lstm")
    rows = [line.split() for line in res.stdout.splitlines() if line.startswith(cells)]
    assert rows and all(r[3] == "float32" for r in rows)
