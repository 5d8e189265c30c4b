"""The command line: the default `rnnx train` meets its accuracy target, train/save/predict
round trips across backends, `rnnx info`, and one-line errors for bad arguments."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from rnnx.cli import main

from ._subprocess import child_env
from ._threads import one_thread  # noqa: F401  (autouse fixture)

TINY = ["--hidden-size", "8", "--epochs", "2", "--no-progress"]
# A GRU learns the sine waves in 6 epochs (0.94-0.99 held out over seeds 0-2): for tests whose
# run must learn (exit 0); TINY runs on sine or adding do not (exit 3, see _verdict).
LEARNS = ["--hidden-size", "8", "--epochs", "6", "--lr", "0.02", "--cell", "gru",
          "--no-progress"]


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_default_train_reaches_target_accuracy():
    """The README's first command: Elman classifier on digits, >= 0.95 on the 20 % held out."""
    res = run("train")
    assert res.exit_code == 0, res.output
    m = re.search(r"held-out accuracy: ([0-9.]+) \((\d+) sequences\)", res.stdout)
    assert m, res.stdout
    assert float(m.group(1)) >= 0.95 and int(m.group(2)) == 359  # round(0.2 * 1797)
    assert "ScratchSimpleRNNClassifier" in res.stdout


def test_layer_normalised_lstm_trains_the_digits():
    """``rnnx train --cell ln_lstm`` (every other option at its default) reaches >= 0.95 on the
    held-out digits, through the registry alone."""
    res = run("train", "--cell", "ln_lstm", "--no-progress")
    assert res.exit_code == 0, res.output
    m = re.search(r"held-out accuracy: ([0-9.]+) \((\d+) sequences\)", res.stdout)
    assert m, res.stdout
    assert float(m.group(1)) >= 0.95 and int(m.group(2)) == 359
    assert "RNNClassifier(cell=ln_lstm" in res.stdout


def test_train_save_plot_then_predict_on_other_backends(tmp_path):
    pytest.importorskip("matplotlib")
    model, png = tmp_path / "m.npz", tmp_path / "curves.png"
    res = run("train", "--dataset", "sine", *LEARNS, "--save", str(model), "--plot", str(png))
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from rnnx.datasets import make_sine_waves

    X, _ = make_sine_waves(random_state=0)
    np.save(tmp_path / "x.npy", X[:20])
    np.savez(tmp_path / "x.npz", X=X[:20])
    outs = []
    for args in (["x.npy"], ["x.npz", "--backend", "torch"],
                 ["x.npy", "--backend", "array_api_strict", "--device", "device1"]):
        res = run("predict", "--model", str(model), str(tmp_path / args[0]), *args[1:],
                  "--output", str(tmp_path / "pred.npy"))
        assert res.exit_code == 0, res.output
        outs.append(res.stdout.split())
        np.testing.assert_array_equal(np.load(tmp_path / "pred.npy").astype(str), outs[-1])
    assert len(outs[0]) == 20 and outs[0] == outs[1] == outs[2]
    res = run("predict", "--model", str(model), str(tmp_path / "x.npy"), "--proba")
    rows = np.array([[float(v) for v in line.split()] for line in res.stdout.splitlines()])
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-5)  # 6 printed decimals x 3


def test_train_gated_stacked_bidirectional_with_grad_plot(tmp_path):
    """--cell/--num-layers/--bidirectional/--dropout reach the estimator (and the saved file);
    --grad-plot writes a PNG."""
    pytest.importorskip("matplotlib")
    from rnnx.models import load_model

    png, model = tmp_path / "grads.png", tmp_path / "m.npz"
    res = run("train", "--dataset", "sine", *LEARNS, "--cell", "lstm", "--num-layers", "2",
              "--bidirectional", "--dropout", "0.25", "--grad-plot", str(png),
              "--save", str(model))
    assert res.exit_code == 0, res.output
    assert "RNNClassifier(cell=lstm, hidden_size=8, num_layers=2, bidirectional, dropout=0.25)" \
        in res.stdout
    assert f"wrote gradient norms to {png}" in res.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    params = load_model(model).get_params()
    assert (params["cell"], params["num_layers"], params["bidirectional"], params["dropout"]) \
        == ("lstm", 2, True, 0.25)
    res = run("train", "--dataset", "sine", *LEARNS, "--no-bidirectional", "--save", str(model))
    assert res.exit_code == 0, res.output
    assert load_model(model).get_params()["bidirectional"] is False


def test_train_grad_plot_real_subprocess(tmp_path):
    """The same through a real ``python -m rnnx`` process (this checkout's rnnx)."""
    pytest.importorskip("matplotlib")
    import subprocess
    import sys

    env = child_env()
    png = tmp_path / "g.png"
    res = subprocess.run([sys.executable, "-m", "rnnx", "train", "--dataset", "adding", *TINY,
                          "--cell", "gru", "--num-layers", "2", "--grad-plot", str(png)],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 3, res.stderr  # 2 epochs do not learn the adding problem
    assert res.stderr.startswith("warning: the model did not learn: its held-out MSE")
    assert "held-out MSE" in res.stdout and f"wrote gradient norms to {png}" in res.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_regression_dataset():
    res = run("train", "--dataset", "adding", *TINY, "--backend", "torch", "--dtype", "float64")
    assert res.exit_code == 3, res.output  # too short to learn: the warning, the figures kept
    assert re.search(r"held-out MSE: [0-9.]+", res.stdout)


def test_info_lists_backends_and_reasons():
    res = run("info")
    assert res.exit_code == 0
    assert re.search(r"^numpy\s+\S+\s+yes\s+cpu", res.stdout, re.M)
    assert re.search(r"^array_api_strict\s+\S+\s+yes\s+CPU_DEVICE, device1", res.stdout, re.M)
    from rnnx._backend import available_backends

    for name, s in available_backends().items():
        if not s.available:
            assert s.reason in res.stdout, name


@pytest.mark.parametrize("args", [
    ["train", "--epochs", "0"],
    ["train", "--backend", "nope"],
    ["train", "--lr", "-1"],
    ["train", "--cell", "nope"],
    ["train", "--num-layers", "0"],
    ["train", "--dropout", "1"],
    ["train", "--dropout", "nan"],
    ["train", "--backend", "numpy", "--device", "quantum"],
    ["train", "--dataset", "mnist"],
    ["train", "--dropout", "0.5"],
    ["train", "--test-size", "0.999"],
    ["train", "--save", "nodir/m.npz"],
    ["train", "--plot", "curves.xyz"],
    ["train", "--epochs", "ten"],
], ids=["epochs", "backend", "lr", "cell", "num-layers", "dropout-1", "dropout-nan", "device",
         "dataset", "dropout-one-layer", "test-size-split", "save-folder", "plot-format",
         "epochs-text"])
def test_bad_arguments_fail_without_traceback(args):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    assert res.output.startswith("rnnx: error: Invalid value") and res.output.count("\n") == 1


@pytest.mark.parametrize("option, param, bad", [
    ("--hidden-size", "hidden_size", "0"), ("--num-layers", "num_layers", "-1"),
    ("--dropout", "dropout", "1"), ("--epochs", "epochs", "0"), ("--batch-size", "batch_size", "0"),
    ("--optimizer", "optimizer", "adamw"), ("--lr", "learning_rate", "inf"),
    ("--cell", "cell", "gru-ish"), ("--dtype", "dtype", "float16"),
])
def test_hyper_parameter_options_are_the_estimators_table(option, param, bad):
    """`rnnx train`'s hyper-parameter options are checked by the estimators' own table (the
    rule written once, in rnnx.models._constraints) and default to the estimators' defaults."""
    import inspect

    from rnnx.cli.train import train
    from rnnx.models import RNNClassifier
    from rnnx.models._constraints import expected

    res = CliRunner().invoke(main, ["train", option, bad])
    assert res.exit_code == 2
    assert f"Invalid value for '{option}': must be {expected(param)}; got " in res.output
    default = {p.name: p.default for p in train.params}[param]
    if param == "learning_rate":  # the data set's default (DATASET_DEFAULTS), else the estimators'
        assert default is None
    elif param != "dtype":  # float32 unless told otherwise (the estimators keep X's dtype)
        assert default == inspect.signature(RNNClassifier).parameters[param].default


def test_clip_zero_is_off_as_in_python():
    """``--clip 0`` is ``clip_norm=0``, which the estimators take as off (one meaning for one
    value, in the CLI and in Python); a negative bound is refused in the table's words, without
    the ``None`` a command line cannot pass."""
    from rnnx.cli._common import Hyper

    assert Hyper("clip_norm").convert("0", None, None) == 0
    assert Hyper("clip_norm").convert("2.5", None, None) == 2.5
    res = CliRunner().invoke(main, ["train", "--clip", "-1"])
    assert "must be a non-negative finite number (0: off); got -1.0" in res.output
    res = run("train", *TINY, "--clip", "0")
    assert "clip off;" in res.stdout, res.output


def test_bad_model_file_is_one_line(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"")
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    res = CliRunner().invoke(main, ["predict", "--model", str(tmp_path / "x.npy"),
                                    str(tmp_path / "x.npy")])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and res.output.startswith("rnnx: error:")
    assert "not an .npz archive" in res.output


@pytest.mark.parametrize("command", ["train", "predict", "info", "check", "export"])
def test_help_exits_zero(command):
    """click's --help exits through Exit(0), a RuntimeError: it must not become an error line."""
    res = CliRunner().invoke(main, [command, "--help"])
    assert res.exit_code == 0 and "rnnx: error" not in res.output and "Usage:" in res.output


def test_closed_pipe_ends_quietly(tmp_path):
    """``rnnx check | head -3``: no error line, the SIGPIPE status (141), never exit 2."""
    import subprocess
    import sys

    res = subprocess.run(f"'{sys.executable}' -m rnnx check --backend numpy | head -3; "
                         "echo \"status=${PIPESTATUS[0]}\"", shell=True, executable="/bin/bash",
                         capture_output=True, text=True, env=child_env(), timeout=300,
                         cwd=tmp_path)
    assert "error" not in res.stderr and "Broken pipe" not in res.stderr, res.stderr
    assert res.stdout.strip().splitlines()[-1] in ("status=141", "status=0"), res.stdout


def test_plot_without_matplotlib_fails_before_training(tmp_path, monkeypatch):
    import sys

    for name in ("matplotlib", "matplotlib.figure", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    for option in ("--plot", "--grad-plot"):
        res = CliRunner().invoke(main, ["train", *TINY, option, str(tmp_path / "c.png")])
        assert res.exit_code == 2, res.output
        assert f"{option} needs matplotlib" in res.output and "nothing was trained" in res.output
        assert "trained" not in res.stdout  # no 'trained N epochs' line: it stopped first


def test_regression_summary_and_curves_share_one_unit(tmp_path, monkeypatch):
    """--dataset adding: the training figure is MSE in the targets' units, like the held-out
    MSE (not the standardised loss the regressor trains on)."""
    pytest.importorskip("matplotlib")
    import rnnx.cli.train as cli

    seen = {}
    monkeypatch.setattr(cli, "plot_history", lambda history, path, title, loss_label, kept: seen.update(
        history=history, label=loss_label))
    res = run("train", "--dataset", "adding", *TINY, "--epochs", "3", "--plot",
              str(tmp_path / "c.png"))
    assert res.exit_code == 3, res.output  # 3 epochs do not learn it: the curves still come
    train = float(re.search(r"final training MSE ([0-9.]+)", res.stdout).group(1))
    held = float(re.search(r"held-out MSE: ([0-9.]+)", res.stdout).group(1))
    mean = float(re.search(r"predicting the mean: MSE ([0-9.]+)", res.stdout).group(1))
    # Both near the variance of the target (~1/6) for an untrained-ish model: one unit.
    assert 0.5 < train / mean < 2 and 0.5 < held / mean < 2
    assert seen["label"] == "MSE (target units)"
    assert seen["history"]["loss"][-1] == pytest.approx(train, abs=1e-4)
    assert len(seen["history"]["test_loss"]) == 3


def test_figures_get_the_usual_file_mode(tmp_path):
    """--plot and --grad-plot files get 0o666 less the umask, like --save (not mkstemp's 0600)."""
    pytest.importorskip("matplotlib")
    import os
    import stat

    files = [tmp_path / n for n in ("c.png", "g.png", "m.npz")]
    res = run("train", "--dataset", "sine", *TINY, "--plot", str(files[0]), "--grad-plot",
              str(files[1]), "--save", str(files[2]))
    assert res.exit_code == 3, res.output  # 2 epochs: no learning, and every file written
    umask = os.umask(0)
    os.umask(umask)
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o666 & ~umask}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "g.png", "m.npz"]  # no temp


def test_compact_numbers():
    from rnnx.models._progress import compact

    assert compact(0.0005) == "0.0005" and compact(1.0143) == "1.0143"
    assert compact(1.2345e30) == "1.235e+30" and compact(float("nan")) == "nan"
    assert compact(3e-7) == "3.000e-07"


def _train_subprocess(*args, code=None, tmp_path, base=TINY):
    """``python -m rnnx train`` (or ``python -c code``) on this checkout's rnnx."""
    import subprocess
    import sys

    env = child_env()
    cmd = ["-c", code] if code else ["-m", "rnnx", "train", *base, *args]
    return subprocess.run([sys.executable, *cmd], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)


def test_train_prints_what_it_set_the_threads_to(tmp_path):
    """The header's ``threads`` line, between the model line and the training line: the default
    caps the BLAS at one thread through threadpoolctl; ``--threads 0`` caps nothing and says
    at how many threads the BLAS runs."""
    res = _train_subprocess(tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [ln.split(" ", 1)[0] for ln in lines[:4]] == ["data", "model", "threads", "trained"]
    assert re.fullmatch(r"threads BLAS capped at 1 thread \(\w+(, \w+)* via threadpoolctl\)",
                        lines[2]), lines[2]
    assert "warning" not in res.stderr
    res = _train_subprocess("--threads", "0", tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert re.search(r"^threads not capped \(library defaults: \w+ at \d+ threads?\)$",
                     res.stdout, re.MULTILINE), res.stdout


def test_train_warns_when_it_cannot_cap_the_threads(tmp_path):
    """Without threadpoolctl (an install that skipped rnnx's dependencies) training still runs,
    the threads line says the BLAS is not capped and why, and a warning goes to stderr."""
    code = ("import sys; sys.modules['threadpoolctl'] = None\n"
            "from rnnx.cli import main\n"
            f"main(['train', *{TINY!r}], standalone_mode=False)")
    res = _train_subprocess(code=code, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "threads BLAS NOT capped: threadpoolctl is not installed" in res.stdout
    assert "held-out accuracy" in res.stdout
    assert "warning: --threads 1 did not cap the BLAS threads: threadpoolctl is not installed" \
        in res.stderr


def test_train_on_each_backend_and_device_named_by_its_label(backend):
    """``rnnx train --device LABEL`` for every backend and device the fixtures select (CuPy's
    and torch's ``cuda:0`` on a GPU): it trains there and names the device as ``rnnx info``
    does. (The first GPU run found ``--device`` failing on every backend: the option's value
    shadowed the label function inside the command.)"""
    from rnnx._backend import device_label

    name, _, dev = backend
    label = device_label(dev)
    res = run("train", "--backend", name, "--device", label, *TINY)
    assert res.exit_code == 0, res.output
    assert f"; {name} ({label}) float32" in res.stdout, res.stdout
    assert re.search(r"held-out accuracy: \d\.\d{4}", res.stdout), res.stdout


def test_predict_names_the_only_array_of_an_npz(tmp_path):
    """An .npz INPUT with one array not named X: it is used, and a note on stderr names it
    (stdout keeps one prediction per line); two such arrays are refused (test_bad_inputs)."""
    from rnnx.datasets import make_sine_waves
    from rnnx.models import RNNClassifier, save_model

    X, y = make_sine_waves(30, 10)
    save_model(RNNClassifier(hidden_size=4, epochs=1, random_state=0).fit(X, y),
               tmp_path / "m.npz")
    np.savez(tmp_path / "a.npz", waves=X[:3])
    res = run("predict", "--model", str(tmp_path / "m.npz"), str(tmp_path / "a.npz"))
    assert res.exit_code == 0, res.output
    assert len(res.stdout.splitlines()) == 3
    assert res.stderr == (f"note: {tmp_path / 'a.npz'} holds one array, 'waves' (3, 10, 1), "
                          "and none named 'X': predicting on it\n")


def _in_a_terminal(args, tmp_path):
    """``python -m rnnx ARGS`` with stdout and stderr on one pseudo-terminal (120 columns), as
    a user at a terminal sees it: everything it wrote, carriage returns included."""
    import fcntl
    import os
    import pty  # noqa: F401  (os.openpty: POSIX only, as the CI machines are)
    import struct
    import subprocess
    import sys
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "rnnx", *args], stdout=slave, stderr=slave,
                            stdin=subprocess.DEVNULL, env=child_env(), cwd=tmp_path)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    return b"".join(chunks).decode()


def test_no_bar_and_no_carriage_returns_in_a_log(tmp_path):
    """stderr not a terminal (a log, CI, a pipe): by default no bar, so not one carriage return
    (issue 24 found the bar on by default: one long line of \\r updates in logs)."""
    res = _train_subprocess(tmp_path=tmp_path, base=["--hidden-size", "8", "--epochs", "3"])
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert "\r" not in res.stdout and "held-out accuracy" in res.stdout


def test_log_epochs_writes_one_line_an_epoch(tmp_path):
    """--log-epochs: one plain line an epoch on stderr, in order, with the figures of the bar
    (Keras's verbose=2), and stdout unchanged."""
    res = _train_subprocess("--log-epochs", tmp_path=tmp_path,
                            base=["--hidden-size", "8", "--epochs", "3"])
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 3 and "\r" not in res.stderr, res.stderr
    for i, line in enumerate(lines, 1):
        assert re.fullmatch(rf"epoch {i}/3: loss \d\.\d{{4}}, accuracy \d\.\d{{4}}, held-out acc "
                            r"\d\.\d{4} \(\d+\.\d\d s\)", line), line
    last = float(re.search(r"held-out acc (\S+)", lines[-1]).group(1))
    assert f"held-out accuracy: {last:.4f}" in res.stdout  # the same figure as the summary


def test_in_a_terminal_the_bar_starts_after_the_header(tmp_path):
    """At a terminal the bar is on by default and starts only after the header's last line
    (issue 24: the ``threads`` line was printed onto the bar's first frame); with --log-epochs
    the per-epoch lines stay on the screen after the bar is erased."""
    out = _in_a_terminal(["train", "--hidden-size", "8", "--epochs", "3", "--log-epochs"],
                         tmp_path)
    assert "\r" in out and "epoch/s" in out  # tqdm's bar was drawn
    header_end = out.index("threads BLAS")
    assert out[header_end - 2:header_end] == "\r\n"  # the threads line starts a line
    assert out.index("%|") > out.index("\n", header_end)  # the first frame comes after it
    screen = _screen(out)
    assert [ln.split(":")[0] for ln in screen[3:6]] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert screen[6].startswith("trained 3 epochs") and not any("%|" in ln for ln in screen)


def _screen(out):
    """The lines a terminal shows at the end of ``out``: each carriage return goes back to the
    line's start and what follows overwrites it."""
    lines = []
    for raw in out.replace("\r\n", "\n").split("\n"):
        shown = ""
        for seg in raw.split("\r"):
            shown = seg + shown[len(seg):]
        lines.append(shown.rstrip())
    return [ln for ln in lines if ln]


def _kept(stdout):
    m = re.search(r"^kept    the weights of epoch (\d+), the lowest validation loss \((\S+)\); "
                  r"training loss then \S+$", stdout, re.M)
    assert m, stdout
    return int(m.group(1)), float(m.group(2))


def test_restore_best_keeps_the_epoch_of_the_lowest_validation_loss(tmp_path):
    """--restore-best (Keras's restore_best_weights): every epoch trains, then the model keeps
    the weights of the lowest validation loss, on a 0.1 split of the training part (never the
    held-out part); the saved model and the held-out score are that epoch's."""
    from rnnx.cli.train import _split
    from rnnx.datasets import make_sine_waves
    from rnnx.models import load_model

    path = tmp_path / "m.npz"
    res = run("train", "--dataset", "sine", "--lr", "0.005", "--seed", "1", "--restore-best",
              "--no-progress", "--save", str(path))
    assert res.exit_code == 0, res.output
    assert "train 480 (48 of them validate), held out 120" in res.stdout
    assert ", best epoch kept;" in res.stdout and "trained 40 epochs in" in res.stdout
    epoch, val = _kept(res.stdout)
    model = load_model(path)
    assert model.n_epochs_ == 40 and model.best_epoch_ == epoch
    assert epoch == int(np.argmin(model.history_["val_loss"])) + 1
    assert f"{model.history_['val_loss'][epoch - 1]:.4f}" == f"{val:.4f}"
    X, y = make_sine_waves(random_state=1)
    te = _split(len(y), 0.2, 1)[1]
    acc = float(re.search(r"held-out accuracy: (\S+)", res.stdout).group(1))
    assert f"{model.score(X[te], y[te]):.4f}" == f"{acc:.4f}"


def test_early_stopping_stops_after_patience_epochs_and_keeps_the_best(tmp_path):
    path = tmp_path / "m.npz"
    res = run("train", "--dataset", "sine", "--lr", "0.005", "--seed", "1", "--early-stopping",
              "--patience", "3", "--validation-fraction", "0.2", "--no-progress",
              "--save", str(path))
    assert res.exit_code == 0, res.output
    assert "train 480 (96 of them validate)" in res.stdout
    assert ", early stopping (patience 3);" in res.stdout
    epoch, _ = _kept(res.stdout)
    trained = int(re.search(r"trained (\d+) epochs in \S+ s, stopped early \(no lower "
                            r"validation loss in 3 epochs\)", res.stdout).group(1))
    assert trained == epoch + 3 < 40
    from rnnx.models import load_model

    assert load_model(path).n_epochs_ == trained


def test_a_run_whose_loss_exploded_warns_and_exits_3():
    """The issue-24 run (``--lr 1e8 --clip 0 --optimizer sgd``) ended at loss 5e8 with exit 0
    and no word: now one warning line names the figures and what to try, and the status is 3
    (trained, did not learn); the results are still printed."""
    res = run("train", "--lr", "1e8", "--clip", "0", "--optimizer", "sgd", "--epochs", "3",
              "--dtype", "float64", "--no-progress")
    assert res.exit_code == 3, res.output
    assert "held-out accuracy" in res.stdout
    assert re.fullmatch(
        r"warning: training failed: the final training loss \S+e\+\d\d is far above 2\.3020, the "
        r"loss of predicting the class frequencies: the steps overshoot\. Try a lower --lr "
        r"\(1e\+08 now; try --lr 1e\+07\) or turn on clipping \(--clip 0 turns it off now; "
        r"try --clip 1\)\n", res.stderr), res.stderr


def test_a_run_at_chance_warns_and_exits_3(tmp_path):
    """Two epochs of a small Elman network leave the sine waves at chance: the warning gives the
    held-out accuracy against always answering the training majority class (3 standard errors
    above it: the bar), and what to try; the model is still saved."""
    res = run("train", "--dataset", "sine", *TINY, "--save", str(tmp_path / "m.npz"))
    assert res.exit_code == 3, res.output
    assert "saved model to" in res.stdout
    m = re.fullmatch(r"warning: the model did not learn: the held-out accuracy (\S+) is not 3 "
                     r"standard errors above chance \((\S+), always answering class (\d); the "
                     r"bar: (\S+)\); the final training loss is \S+ against 1\.0985, the loss "
                     r"of predicting the class frequencies\. Try more --epochs \(2 now\), another "
                     r"--lr \(\S+ now\), or a gated cell, .*; --plot FILE draws the curves\n",
                     res.stderr)
    assert m, res.stderr
    from rnnx.cli.train import _split
    from rnnx.datasets import make_sine_waves

    _, y = make_sine_waves(random_state=0)
    tr, te = _split(len(y), 0.2, 0)
    majority = np.bincount(y[tr]).argmax()
    p0 = np.mean(y[te] == majority)
    assert int(m.group(3)) == majority and m.group(2) == f"{p0:.4f}"
    assert m.group(4) == f"{p0 + 3 * np.sqrt(p0 * (1 - p0) / te.size):.4f}"
    assert float(m.group(1)) <= float(m.group(4))


def test_the_verdict_rules():
    """The rules of rnnx.cli._verdict on figures made by hand: a classifier must beat the
    entropy of the class frequencies in training loss and chance by 3 standard errors held
    out; a regressor must beat the held-out mean by 3 standard errors of the paired squared
    errors; 10x the loss of knowing nothing is an overshoot."""
    from rnnx.cli._verdict import classifier_verdict, regressor_verdict

    hyper = {"learning_rate": 0.01, "clip_norm": 5.0, "epochs": 40, "cell": "rnn"}
    y_tr, y_te = np.arange(1000) % 2, np.arange(100) % 2  # balanced: chance loss ln 2, p0 0.5
    bar = 0.5 + 3 * np.sqrt(0.25 / 100)  # 0.65
    assert classifier_verdict(0.5, y_tr, y_te, bar + 0.01, hyper) is None
    assert "not 3 standard errors above chance (0.5000, always answering class 0; the bar: "\
           "0.6500)" in classifier_verdict(0.5, y_tr, y_te, bar, hyper)
    assert "not below 0.6931" in classifier_verdict(np.log(2), y_tr, y_te, 0.9, hyper)
    assert "did not generalise" in classifier_verdict(0.01, y_tr, y_te, 0.5, hyper)
    assert "overshoot" in classifier_verdict(10 * np.log(2), y_tr, y_te, 0.9, hyper)
    assert "--clip 5 now; try --clip 1" in classifier_verdict(7.0, y_tr, y_te, 0.9, hyper)
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    assert regressor_verdict(0.5, y, y + 0.3 * rng.normal(size=200), hyper) is None
    assert "(R^2 0.0000)" in regressor_verdict(0.5, y, np.full(200, y.mean()), hyper)
    assert "is not below" in regressor_verdict(0.5, y, y + 1.0 * rng.normal(size=200), hyper)
    assert "overshoot" in regressor_verdict(11.0, y, y, hyper)
    assert "gated cell" not in regressor_verdict(0.5, y, y * 0, {**hyper, "cell": "gru"})


def test_ctrl_c_with_save_saves_the_last_completed_epoch(tmp_path):
    """Ctrl-C (a real SIGINT to a real process) during ``rnnx train --save``: exit 130, one line
    saying which epoch was interrupted and that the last completed one was saved, and a model
    file of exactly those epochs, written atomically (no temporary file left). Issue 24 found
    the model thrown away ("rnnx: interrupted", nothing saved)."""
    import signal
    import subprocess
    import sys

    from rnnx.models import load_model

    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnx", "train", "--hidden-size", "8", "--epochs", "100000",
         "--log-epochs", "--save", "m.npz"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
        cwd=tmp_path)  # no preexec_fn: a fork would trip JAX's at-fork warning where it is loaded
    logged = []
    try:
        for line in proc.stderr:  # one line an epoch: interrupt after the third
            logged.append(line)
            if line.startswith("epoch") and len(logged) == 3:
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(r"rnnx: interrupted in epoch (\d+): saved the model of the last completed "
                     r"epoch, (\d+) of 100000, to m\.npz", last)
    assert m and int(m.group(1)) == int(m.group(2)) + 1 and int(m.group(2)) >= 3, err
    model = load_model(tmp_path / "m.npz")
    assert model.n_epochs_ == int(m.group(2)) == len(model.history_["loss"])
    for line, loss in zip(logged, model.history_["loss"]):  # the very epochs that were logged
        assert f": loss {loss:.4f}," in line, (line, loss)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    assert "trained" not in out


def test_ctrl_c_before_any_epoch_saves_nothing(tmp_path, monkeypatch):
    """Interrupted in the first epoch: nothing to save, and it says so (exit 130)."""
    from rnnx.models import ScratchSimpleRNNClassifier

    def interrupted(self, *a, **k):
        self.n_epochs_ = 0
        raise KeyboardInterrupt

    monkeypatch.setattr(ScratchSimpleRNNClassifier, "fit", interrupted)
    res = CliRunner().invoke(main, ["train", *TINY, "--save", str(tmp_path / "m.npz")])
    assert res.exit_code == 130
    assert res.stderr.strip().endswith("rnnx: interrupted in epoch 1, before any epoch "
                                       f"completed: nothing saved to {tmp_path / 'm.npz'}")
    assert not (tmp_path / "m.npz").exists()


def test_sine_trains_at_its_own_learning_rate():
    """``--dataset sine`` defaults to lr 0.001 (the estimators' 0.005 left the last epoch at
    0.30-1.00 held out over seeds 0-9; docs/training.md, "The data sets"), and says so in the
    model line and in --help; a given --lr wins; other data sets keep the estimators' 0.005."""
    from rnnx.cli.train import DATASET_DEFAULTS

    assert DATASET_DEFAULTS == {"sine": {"learning_rate": 0.001}}
    res = run("train", "--dataset", "sine", "--epochs", "1", "--no-progress")
    assert "adam lr=0.001, batch 32" in res.stdout, res.output
    res = run("train", "--dataset", "sine", "--epochs", "1", "--lr", "0.005", "--no-progress")
    assert "adam lr=0.005, batch 32" in res.stdout, res.output
    res = run("train", "--dataset", "parity", "--epochs", "1", "--no-progress")
    assert "adam lr=0.005, batch 32" in res.stdout, res.output
    assert "0.005; 0.001 for --dataset sine" in " ".join(run("train", "--help").output.split())
