"""Type aliases shared by every layer of the package (standard library only).

``Array`` is any array of a namespace compatible with the Python Array API standard (NumPy, CuPy,
torch, array-api-strict, JAX). The standard has no runtime protocol that every library satisfies,
so the alias is ``Any`` underneath; it names the role of a parameter in signatures and docs.
"""

from __future__ import annotations

from typing import Any, TypeAlias

Array: TypeAlias = Any
"""An array of any Array-API-compatible namespace, on any device."""

__all__ = ["Array"]
