"""``rnnx train --workers N`` / ``--scheduler ADDRESS``: data-parallel training on a dask cluster
of worker processes from the command line, with the one-process fit's figures; the options are
checked before any work (no dask installed, both options, another backend).

Runs in the NumPy session only, like ``tests/test_models_dask.py`` (``nox -s distributed``
runs both)."""

from __future__ import annotations

import re
import sys

import pytest
from click.testing import CliRunner

from ._selection import numpy_selected

if not numpy_selected():
    pytest.skip("the dask tests run in the numpy session only", allow_module_level=True)

distributed = pytest.importorskip("distributed")

from rnnx.cli import main  # noqa: E402

TINY = ["--hidden-size", "8", "--epochs", "2", "--dtype", "float64"]


def run(*args):
    return CliRunner().invoke(main, ["train", *TINY, *args], catch_exceptions=False)


def _figures(out):
    """The lines that carry results (training loss and held-out score), without the timing."""
    loss = re.search(r"final training .*", out).group(0)
    return loss, re.search(r"held-out accuracy: .*", out).group(0)


def test_workers_start_a_local_cluster_and_match_one_process():
    """--workers 2 starts a LocalCluster of 2 worker processes, trains data-parallel (progress
    bar on), closes it, and prints the one-process fit's loss and accuracy digit for digit."""
    one = run("--no-progress")
    assert one.exit_code == 0, one.output
    res = run("--workers", "2", "--progress")
    assert res.exit_code == 0, res.output
    assert "dask    data-parallel on a local cluster of 2 worker process(es)" in res.stdout
    assert "/2 [" in res.stderr  # the usual progress bar (tqdm on stderr)
    assert "on this process only (dask starts each worker with 1 thread)" in res.stdout
    assert "on this process only" not in one.stdout
    assert _figures(res.stdout) == _figures(one.stdout)


def test_scheduler_joins_an_existing_cluster():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        res = run("--no-progress", "--scheduler", cluster.scheduler_address)
        assert res.exit_code == 0, res.output
        assert f"the cluster at {cluster.scheduler_address} (1 worker(s))" in res.stdout
        assert _figures(res.stdout) == _figures(run("--no-progress").stdout)
        with distributed.Client(cluster) as c:  # the cluster is still up: only joined
            assert len(c.scheduler_info()["workers"]) == 1


@pytest.mark.parametrize("option", [["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]])
def test_without_dask_installed_names_the_extra(monkeypatch, option):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    res = CliRunner().invoke(main, ["train", *TINY, *option])
    assert res.exit_code == 2
    assert f"{option[0]} trains on a dask cluster" in res.output
    assert "pip install 'rnnx[dask]'" in res.output
    assert "data " not in res.output  # refused before any work


@pytest.mark.parametrize("args, match", [
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "pass one of them"),
    (["--workers", "2", "--backend", "torch"], "--backend/--device"),
    (["--workers", "0"], "--workers"),
])
def test_bad_dask_options_refused_first(args, match):
    res = CliRunner().invoke(main, ["train", *TINY, *args])
    assert res.exit_code == 2 and match in res.output, res.output
    assert "data " not in res.output
