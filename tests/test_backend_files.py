"""The file helpers of the backend package: atomic writes and ``.npz`` archives without pickle.
(What users see of them, damaged model files and saves killed midway, is tested in
``test_bad_inputs.py`` and ``test_hardening.py``.)"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rnnx._backend import atomic_path, save_npz_atomic


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    """A failed save leaves the previous file intact and no temporary file behind."""
    path = tmp_path / "m.npz"
    save_npz_atomic(path, {"a": np.arange(3)})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="dtype object"):
        save_npz_atomic(path, {"a": np.array([{}], dtype=object)})
    with pytest.raises(RuntimeError, match="boom"), atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)  # not mkstemp's 0o600
