"""The figures of ``rnnx train``: ``--plot`` (loss and accuracy per epoch) and ``--grad-plot``
(``||dL/dh_t||`` per step of the trained model), and their paths checked before training.
matplotlib is imported inside, so a missing one is reported by the option that needs it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from .._backend import HostArray, atomic_path
from ._common import check_output

if TYPE_CHECKING:
    from ..models._base import BaseRNN

__all__ = ["check_figure_path", "plot_history", "plot_state_grads"]


def check_figure_path(path: str, option: str) -> None:
    """matplotlib importable, the file's format one it writes, the folder writable."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise click.UsageError(f"{option} needs matplotlib ({exc}): pip install 'rnnx[plot]'; "
                               "nothing was trained") from None
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    formats = Figure().canvas.get_supported_filetypes()
    if ext and ext not in formats:
        raise click.BadParameter(f"cannot write a figure as {ext!r} ({path}); formats: "
                                 f"{', '.join(sorted(formats))}", param_hint=option)
    check_output(path, option)


def plot_history(history: dict, path: str, title: str, *, loss_label: str = "loss",
                 kept: int | None = None) -> None:
    """Loss (and accuracy) per epoch: training, validation (``val_*``) and held-out
    (``test_*``) curves, and a dotted line at epoch ``kept`` (the one early stopping kept)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise click.UsageError(f"--plot needs matplotlib ({exc}); install rnnx[plot]") from None
    epochs = range(1, len(history["loss"]) + 1)
    panels = [("loss", loss_label)] + ([("accuracy", "accuracy")] if "accuracy" in history else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        ax.plot(epochs, history[key], label="train (mini-batches)")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        if f"test_{key}" in history:
            ax.plot(epochs, history[f"test_{key}"], label="held-out")
        if kept is not None:
            ax.axvline(kept, color="grey", linestyle=":", label=f"kept (epoch {kept})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if key == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=os.path.splitext(path)[1].lstrip(".") or "png")
    plt.close(fig)


def plot_state_grads(model: BaseRNN, X: HostArray, y: HostArray, path: str, title: str) -> None:
    """||dL/dh_t|| of the trained model's loss on ``(X, y)``, one line per layer/direction."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise click.UsageError(f"--grad-plot needs matplotlib ({exc}); install rnnx[plot]") from None
    from ..diagnostics import estimator_grad_norms, plot_grad_norms

    norms = estimator_grad_norms(model, X, y)
    if list(norms) == ["l0"]:
        norms = {f"{model.cell} (trained)": norms["l0"]}
    plot_grad_norms(norms, path, title=title)
