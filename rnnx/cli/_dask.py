"""``rnnx train --workers N`` / ``--scheduler ADDRESS``: the options checked before any work,
the cluster started or joined for the fit (and closed after), and the data as dask arrays of
one sample chunk per worker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._backend import HostArray

if TYPE_CHECKING:
    from dask.array import Array as DaskArray

import click

__all__ = ["check_dask_options", "dask_arrays", "dask_cluster"]


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
