"""The one package that knows backend libraries.

Everything else in rnnx gets its array namespace from its inputs (:func:`namespace`) and never
imports NumPy, CuPy, PyTorch, JAX or array-api-strict for computation. This package does the few
things that cannot be written against the standard, one job a module:

* ``_namespaces``: namespace lookup from arrays and by backend name, the device of an array and
  the devices of a backend, whether arrays can be written in place;
* ``_availability``: whether a backend can run here, and why not (CuPy without a CUDA device is
  detected lazily, once, on first use); which must (``RNNX_REQUIRE_BACKENDS``); the CUDA driver
  probe;
* ``_devices``: the one device a call's arrays share and the scope that makes it current for
  the call (CuPy allocates on its current device whatever ``device=`` says);
* ``_host``: host transfer at the edges (:func:`to_numpy`, :func:`from_host`), the host random
  generator that makes a seed mean the same weights on every backend, and a device
  synchronisation for timers;
* ``_cpu``: CPU tuning (which tanh suits the CPU, thread limits, NumPy float warnings);
* ``_compile``: one-off costs of first use, said before they are paid (CuPy's kernel cache);
* ``_executors``: how a cell's step runs over time on each backend (eagerly, or as
  ``jax.lax.scan`` compiled with ``jax.jit``), and which executor a namespace gets;
* ``_files``: atomic files and ``.npz`` archives that never need pickle.

Import from the package (``from rnnx._backend import ...``), not from its modules.
"""

from __future__ import annotations

from ._availability import (
    BACKENDS,
    REQUIRE_ENV,
    REQUIREMENTS,
    BackendStatus,
    available_backends,
    cuda_driver_unavailable_reason,
    required_backends,
    requirement_status,
    torch_module,
)
from ._compile import cupy_kernel_cache, first_use_note
from ._cpu import ThreadLimit, float_errors_checked_by_caller, limit_threads, prefers_exp_tanh
from ._devices import (
    JAX_MATMUL_PRECISION,
    common_device,
    device_scope,
    jax_matmul_precision,
    on_device,
    on_input_device,
)
from ._executors import (
    GPU_EXECUTOR_ENV,
    Eager,
    Scanned,
    epoch_executor,
    executor,
    forced_executor,
    is_traced,
)
from ._files import atomic_path, check_writable, load_npz, save_npz_atomic
from ._host import (
    HostArray,
    HostGenerator,
    from_host,
    host_namespace,
    host_rng,
    move_to,
    synchronize,
    to_device,
    to_numpy,
)
from ._namespaces import (
    backend_name,
    device,
    device_label,
    devices,
    float64_unavailable,
    get_namespace,
    has_one_device,
    known_namespace,
    namespace,
    on_accelerator,
    settle_torch_cpu_kernels,
    writeable,
)

__all__ = [
    "BACKENDS",
    "GPU_EXECUTOR_ENV",
    "JAX_MATMUL_PRECISION",
    "REQUIREMENTS",
    "REQUIRE_ENV",
    "BackendStatus",
    "Eager",
    "HostArray",
    "HostGenerator",
    "Scanned",
    "ThreadLimit",
    "atomic_path",
    "available_backends",
    "backend_name",
    "check_writable",
    "common_device",
    "cuda_driver_unavailable_reason",
    "cupy_kernel_cache",
    "device",
    "device_label",
    "device_scope",
    "devices",
    "epoch_executor",
    "executor",
    "first_use_note",
    "float64_unavailable",
    "float_errors_checked_by_caller",
    "forced_executor",
    "from_host",
    "get_namespace",
    "has_one_device",
    "host_namespace",
    "host_rng",
    "is_traced",
    "jax_matmul_precision",
    "known_namespace",
    "limit_threads",
    "load_npz",
    "move_to",
    "namespace",
    "on_accelerator",
    "on_device",
    "on_input_device",
    "prefers_exp_tanh",
    "required_backends",
    "requirement_status",
    "save_npz_atomic",
    "settle_torch_cpu_kernels",
    "synchronize",
    "to_device",
    "to_numpy",
    "torch_module",
    "writeable",
]
