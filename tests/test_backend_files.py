"""The file helpers of the backend package: atomic writes and ``.npz`` archives without pickle.
(What users see of them, damaged model files and saves killed midway, is tested in
``test_bad_inputs.py`` and ``test_hardening.py``.)"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rnnx._backend import atomic_path, load_npz, save_npz_atomic


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


@pytest.mark.parametrize("content, says", [
    (b"hello\n", "it does not start like one (it starts b'hello\\n'"),
    (b"", "the file is empty"),
    (b"\x80\x04\x95", "it does not start like one"),  # a real pickle: refused unread
])
def test_a_file_that_is_not_a_zip_is_not_an_npz_archive(tmp_path, content, says):
    """A text (or any non-zip) file named .npz is refused by its first bytes, in plain words:
    never np.load's advice to load it with ``allow_pickle=`` (the issue-24 message was "not an
    .npz archive readable without pickle (This file contains pickled data... allow_pickle=")."""
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        load_npz(path)
    msg = str(info.value)
    assert msg.startswith(f"{str(path)!r} is not an .npz archive: ") and says in msg
    assert "pickle" not in msg


def test_an_npy_named_npz_is_named_as_such(tmp_path):
    path = tmp_path / "a.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match=r"is a single \.npy array, not an \.npz archive"):
        load_npz(path)
