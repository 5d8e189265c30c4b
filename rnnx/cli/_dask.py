"""``rnnx train --workers N`` / ``--scheduler ADDRESS``: the options checked before any work,
the cluster started or joined for the fit (and closed after), and the data as dask arrays of
one sample chunk per worker."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .._backend import HostArray

if TYPE_CHECKING:
    from dask.array import Array as DaskArray

import click

__all__ = ["STEP_OVERHEAD_S", "check_dask_options", "dask_arrays", "dask_cluster",
           "small_data_warning", "step_seconds"]

#: What a data-parallel step costs beyond its computation, at least: the scheduler round trip of
#: a step on a dedicated cluster (docs/dask.md, "Scale, measured, and when it pays": 26 ms for
#: a tiny model's step; 90 ms on a 2-core machine shared with other jobs).
STEP_OVERHEAD_S = 0.03


def check_dask_options(workers: int | None, address: str | None, backend: str,
                        device: str | None) -> bool:
    """Whether ``train`` runs on dask; refuses, before any work, what cannot."""
    if workers is None and address is None:
        return False
    if workers is not None and address is not None:
        raise click.UsageError("--workers starts a local cluster and --scheduler joins one: "
                               "pass one of them")
    option = "--workers" if workers is not None else "--scheduler"
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise click.UsageError(f"{option} trains on a dask cluster, which needs dask and "
                               f"distributed ({exc}): pip install 'rnnx[dask]'") from None
    if backend != "numpy" or device is not None:
        raise click.UsageError(f"{option} trains in the chunks' NumPy on the workers; "
                               "--backend/--device choose a single-machine backend: leave them "
                               "out")
    return True


class dask_cluster:
    """``with dask_cluster(workers, address) as client``: a ``LocalCluster`` of ``workers``
    processes (closed after), the client of the scheduler at ``address``, or None."""

    def __init__(self, workers: int | None, address: str | None) -> None:
        self.workers, self.address = workers, address
        self.cluster = self.client = None

    def __enter__(self) -> Any:
        if self.workers is None and self.address is None:
            return None
        import distributed

        if self.workers is not None:
            self.cluster = distributed.LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                                    processes=True, dashboard_address=":0")
            try:
                self.client = distributed.Client(self.cluster)
            except BaseException:  # the worker processes must not outlive a failed start
                self.cluster.close()
                raise
            where = f"a local cluster of {self.workers} worker process(es)"
        else:
            try:
                self.client = distributed.Client(self.address, timeout=30)
            except (OSError, ValueError) as exc:
                raise click.UsageError(f"--scheduler {self.address}: cannot connect ({exc})") \
                    from None
            n = len(self.client.scheduler_info()["workers"])
            where = f"the cluster at {self.address} ({n} worker(s))"
        click.echo(f"dask    data-parallel on {where}")
        return self.client

    def __exit__(self, *exc: Any) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def dask_arrays(X: HostArray, y: HostArray, n_workers: int) -> tuple[DaskArray, DaskArray]:
    """``X``, ``y`` as dask arrays of one chunk of samples per worker."""
    import dask.array as da

    rows = -(-X.shape[0] // max(n_workers, 1))
    return (da.from_array(X, chunks=(rows, *X.shape[1:])),
            da.from_array(y, chunks=(rows, *y.shape[1:])))


def step_seconds(model: Any, X: HostArray, y: HostArray) -> float:
    """``c * B``: the time of one training step of a copy of ``model`` on one batch of the
    training rows, in this process (the least of up to three, after a first that builds the
    network). Measured before a local cluster starts, whose workers would compete for the
    CPU."""
    import time

    import numpy as np

    batch = min(model.batch_size, X.shape[0])
    rows = np.random.default_rng(0).permutation(X.shape[0])[:batch]
    probe = type(model)(**{**model.get_params(), "epochs": 1, "early_stopping": False,
                           "validation_fraction": None, "random_state": 0})
    kw = {} if not hasattr(probe, "predict_proba") else {"classes": np.unique(y)}
    probe.partial_fit(X[rows], y[rows], **kw)  # builds the network
    times: list[float] = []
    while len(times) < 3 and sum(times) < 1.0:
        start = time.perf_counter()
        probe.partial_fit(X[rows], y[rows])
        times.append(time.perf_counter() - start)
    return min(times)


def small_data_warning(step: float, model: Any, n_rows: int, n_workers: int) -> str | None:
    """The warning when the cluster cannot pay, or None. The model of docs/dask.md: a step of
    batch ``B`` takes ``c * B`` (``step``, :func:`step_seconds`) in one process and
    ``c * B / N + o`` on ``N`` workers, ``o`` at least :data:`STEP_OVERHEAD_S`; so ``N``
    workers are slower unless ``c * B * (1 - 1/N) > o``."""
    batch = min(model.batch_size, n_rows)
    gain = step * (1 - 1 / max(n_workers, 1))
    if gain > STEP_OVERHEAD_S:
        return None
    steps = -(-n_rows // batch) * model.epochs
    need = math.ceil(batch * STEP_OVERHEAD_S / gain) if gain > 0 else None
    larger = f"a batch of about {need} or more" if need else "much more work a step"
    return (f"--workers/--scheduler will likely be slower than one process: a step of batch "
            f"{batch} takes {step * 1e3:.2f} ms here, but a data-parallel step costs at least "
            f"~{STEP_OVERHEAD_S * 1e3:.0f} ms more in scheduling and transfers, about "
            f"{steps * STEP_OVERHEAD_S:.0f} s for these {steps} steps. {n_workers} workers pay "
            f"only with {larger} (a larger --batch-size or model; docs/dask.md, 'when it "
            "pays'). Without --workers this trains in one process; dask is for data that do "
            "not fit in it")
