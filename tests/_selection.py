"""Which backends this test session selected (``RNNX_BACKENDS``, as in ``conftest.py``), for the
modules that do not depend on the backend and run once, in the NumPy session: the doc blocks,
ONNX Runtime and the Dask cluster (CI runs the suite once per backend, on a tight budget)."""

from __future__ import annotations

import os


def numpy_selected() -> bool:
    """Whether ``RNNX_BACKENDS`` is unset or names numpy."""
    raw = os.environ.get("RNNX_BACKENDS", "").strip()
    return not raw or "numpy" in {n.strip() for n in raw.split(",")}
