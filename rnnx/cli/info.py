"""``rnnx info``: the backends here, their devices and versions, and why one is unavailable."""

from __future__ import annotations

import os
import platform

import click

from .._backend import available_backends, device_label, devices
from .._version import __version__
from ._common import print_table

__all__ = ["info"]


def _version_of(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


@click.command()
def info() -> None:
    """Backends and their devices, versions, and why a backend is unavailable."""
    click.echo(f"rnnx {__version__} on Python {platform.python_version()} ({platform.machine()}, "
               f"{os.cpu_count()} CPUs)")
    rows = []
    for name, s in available_backends().items():
        if s.available:
            try:
                devs = ", ".join(device_label(d) for d in devices(name))
            except Exception as exc:  # a backend that imports but cannot list devices
                devs = f"? ({type(exc).__name__}: {exc})"
            rows.append([name, s.version or "?", "yes", devs])
        else:
            rows.append([name, s.version or "-", "no", s.reason])
    print_table(["backend", "version", "available", "devices / why not"], rows)
    click.echo("")
    print_table(["package", "version"],
                 [[p, _version_of(p)] for p in ("numpy", "array-api-compat", "click", "tqdm",
                                                "matplotlib", "scikit-learn")])
