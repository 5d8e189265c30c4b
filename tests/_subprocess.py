"""The environment of a child process a test starts (``python -m rnnx ...``, ``python -m
pytest ...``): this checkout first on ``PYTHONPATH``, and none of the running pytest's own state.

pytest-xdist's workers carry ``PYTEST_XDIST_*`` and pytest sets ``PYTEST_CURRENT_TEST``; a child
pytest that inherits them, or the parent's ``PYTEST_ADDOPTS``/``PYTEST_PLUGINS``, runs under
options its test did not choose (on the first GPU run a child pytest inherited an xdist worker's
environment and stopped at configuration with pytest-benchmark's xdist warning).
"""

from __future__ import annotations

import os
from pathlib import Path

import rnnx

ROOT = Path(rnnx.__file__).resolve().parent.parent

#: Variables of the running pytest that a child must not inherit (and prefixes of such).
PYTEST_STATE = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST", "PYTEST_VERSION",
                "PYTEST_XDIST_")


def child_env(**overrides: str | None) -> dict[str, str]:
    """``os.environ`` without the running pytest's state, this checkout first on
    ``PYTHONPATH``, then ``overrides`` (a value of ``None`` removes the variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PYTEST_STATE)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env
