"""Type aliases shared by every layer of the package (standard library only).

``Array`` is any array of a namespace compatible with the Python Array API standard (NumPy, CuPy,
torch, array-api-strict, JAX). The standard has no runtime protocol that every library satisfies,
so the alias is ``Any`` underneath; it names the role of a parameter in signatures and docs.
``Namespace``, ``Device`` and ``DType`` name the other roles the standard gives no common type
to: an Array API namespace (a module such as ``array_api_compat.numpy``, or an object with its
functions, like :mod:`rnnx.testing`'s counting proxy), one of its devices, one of its dtypes.
"""

from __future__ import annotations

from typing import Any, TypeAlias

Array: TypeAlias = Any
"""An array of any Array-API-compatible namespace, on any device."""

Namespace: TypeAlias = Any
"""An Array API namespace (``xp``)."""

Device: TypeAlias = Any
"""A device of some namespace (``"cpu"``, a ``torch.device``, a CuPy ``Device``...)."""

DType: TypeAlias = Any
"""A dtype of some namespace (``xp.float32``)."""

__all__ = ["Array", "DType", "Device", "Namespace"]
