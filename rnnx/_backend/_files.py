"""Atomic files and sound ``.npz`` archives: a temporary path renamed over the target only once
the write succeeded (:func:`atomic_path`), and saving and loading host arrays as ``.npz``
without ever pickling, with a ``ValueError`` naming the path for any damaged file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["atomic_path", "check_writable", "load_npz", "save_npz_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it is flushed to disk, given the
    permissions a new file would get (``0o666`` less the umask; ``mkstemp`` makes ``0o600``) and
    renamed over ``path`` with ``os.replace``, so readers see the old file or the new one, never
    a partial write. On error the temporary file is removed and ``path`` is untouched."""
    path = os.fspath(path)
    check_writable(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
    except OSError as exc:  # its message would name the temporary file, not the user's path
        raise _named(exc, path) from None
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _named(exc, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _named(exc: OSError, path: str) -> OSError:
    """``exc`` again, its message naming ``path`` (never a temporary file)."""
    return type(exc)(f"cannot write {path!r}: {exc.strerror or exc}")


def check_writable(path: str | os.PathLike) -> None:
    """Raise ``OSError`` naming ``path`` unless a file can be created or replaced there: its
    folder exists, is a folder and is writable, and ``path`` itself is not a folder. Cheap (no
    file is created), so callers check output paths before long work."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path!r}: it is a directory")
    if not os.path.exists(folder):
        raise FileNotFoundError(f"cannot write {path!r}: its folder "
                                f"{os.path.dirname(path) or '.'!r} does not exist")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"cannot write {path!r}: "
                                 f"{os.path.dirname(path)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path!r}: its folder "
                              f"{os.path.dirname(path) or '.'!r} is not writable")


def save_npz_atomic(path: str | os.PathLike, arrays: dict[str, Any]) -> None:
    """Write host ``arrays`` to ``path`` as an uncompressed ``.npz``, atomically
    (:func:`atomic_path`). ``path`` is used exactly as given (no ``.npz`` is appended). Object
    arrays are refused, so the file always loads with ``allow_pickle=False``.
    """
    host = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in host.items():
        if v.dtype.hasobject:
            raise TypeError(f"array {k!r} has dtype object; rnnx files never hold pickled objects")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **host)


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip


def _check_npz_head(path: str, head: bytes) -> None:
    """Refuse, by its first bytes, a file that is not a zip archive (what ``numpy.savez``
    writes). np.load would try such a file as a pickle and answer with advice to unpickle it
    (``allow_pickle=``), which is wrong for a text file or any other non-NumPy file."""
    if head.startswith(_ZIP_MAGIC):
        return
    if head.startswith(_NPY_MAGIC):
        raise ValueError(f"{path!r} is a single .npy array, not an .npz archive")
    what = "the file is empty" if not head else (
        f"it does not start like one (it starts {head[:8]!r}; an .npz is the zip archive of "
        ".npy arrays that numpy.savez writes)")
    raise ValueError(f"{path!r} is not an .npz archive: {what}")


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, read with ``allow_pickle=False``.

    Raises ``ValueError`` naming the path for anything but a sound ``.npz``: a file that is not
    one, a truncated or corrupted archive (zip CRC or structure errors), and an archive holding
    an object array (which only pickle could read; nothing is ever unpickled).
    """
    path = os.fspath(path)
    # The file is opened here, not by np.load: np.load leaks its handle when the zip directory
    # is damaged (it hands the handle to NpzFile, whose constructor then raises).
    with open(path, "rb") as fh:
        _check_npz_head(path, fh.read(len(_NPY_MAGIC)))
        fh.seek(0)
        try:
            data = np.load(fh, allow_pickle=False)
        except zipfile.BadZipFile as exc:  # starts like a zip, but its directory is missing
            raise ValueError(f"{path!r} is a truncated or corrupted .npz archive ({exc})") from None
        except (ValueError, EOFError) as exc:  # a zip whose members np.load cannot read
            raise ValueError(f"{path!r} is not an .npz archive readable without pickle ({exc})") \
                from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path!r} is a single .npy array, not an .npz archive")
        out = {}
        with data:
            for k in data.files:
                try:
                    out[k] = data[k]
                except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
                    raise ValueError(f"{path!r} is a truncated or corrupted .npz archive: entry "
                                     f"{k!r} cannot be read ({exc})") from None
                except ValueError as exc:
                    if "allow_pickle" in str(exc):
                        raise ValueError(f"{path!r} holds an object array {k!r} that only pickle "
                                         "could read; rnnx never unpickles files") from None
                    raise ValueError(f"{path!r}: entry {k!r} cannot be read ({exc})") from None
    return out
