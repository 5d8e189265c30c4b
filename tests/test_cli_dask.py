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
    # Issue 24: the digits took 88 s on 2 workers against 3 s in one process, without a word.
    assert re.search(r"^warning: --workers/--scheduler will likely be slower than one process: "
                     r"a step of batch 32 takes \d+\.\d\d ms here, but a data-parallel step costs "
                     r"at least ~30 ms more in scheduling and transfers, about 3 s for these 90 "
                     r"steps\. 2 workers pay only with a batch of about \d+ or more", res.stderr,
                     re.M), res.stderr
    assert "warning" not in one.stderr


def test_the_small_data_warning_follows_the_model_of_docs_dask(monkeypatch):
    """N workers pay when one process's step time c*B, times (1 - 1/N), exceeds the per-step
    overhead o; the warning gives the batch that would (B * o / (c*B * (1 - 1/N)))."""
    import rnnx.cli._dask as cli_dask
    from rnnx.datasets import load_digits_sequences
    from rnnx.models import ScratchSimpleRNNClassifier

    X, y = load_digits_sequences()
    model = ScratchSimpleRNNClassifier(hidden_size=8, epochs=2, random_state=0)
    step = cli_dask.step_seconds(model, X, y)
    assert 0 < step < 1  # one step of batch 32 at hidden 8
    monkeypatch.setattr(cli_dask, "STEP_OVERHEAD_S", 1e-9)  # a free cluster always pays
    assert cli_dask.small_data_warning(step, model, len(y), 2) is None
    monkeypatch.setattr(cli_dask, "STEP_OVERHEAD_S", 10.0)  # a step dwarfed by its overhead
    msg = cli_dask.small_data_warning(0.002, model, len(y), 4)
    assert "a step of batch 32 takes 2.00 ms here" in msg
    assert "about 1140 s for these 114 steps" in msg  # 57 batches x 2 epochs x 10 s
    assert "4 workers pay only with a batch of about 213334 or more" in msg  # 32*10/(0.002*0.75)
    assert cli_dask.small_data_warning(13.4, model, len(y), 4) is None  # 13.4*0.75 > 10


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
