"""The per-epoch progress of ``fit(progress=...)`` and of ``rnnx train``: one callback,
``EpochBar``, a tqdm bar on stderr showing the epoch, the training loss (and accuracy) and any
figures the caller adds, and optionally one line per epoch (``lines=True``: a record that stays
in a terminal and reads cleanly in a log, like Keras's ``verbose=2``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["EpochBar", "compact"]


def compact(v: float) -> str:
    """A loss or score in a few characters: 4 decimals in the usual range, scientific notation
    outside it (a diverging loss of 1e30 is ``1.000e+30``, not 31 digits)."""
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    if v != 0 and not 1e-4 <= abs(v) < 1e4:
        return f"{v:.3e}"
    return f"{v:.4f}"


class EpochBar:
    """``EpochBar(total, enabled)(epoch, history)``: advance a tqdm bar by one epoch, its postfix
    the last ``loss`` (and ``accuracy``, ``val_loss``, ``val_accuracy``) of ``history``, plus what
    ``extra(history)`` returns (a dict of already formatted figures).

    ``enabled``: True or False, or None for tqdm's rule: on when stderr is a terminal, off in
    non-interactive runs (logs, CI, pytest), which never see its carriage returns. ``lines``:
    also write one line per epoch to stderr (``epoch 3/40: loss 0.2032, accuracy 0.9145 (0.1
    s)``), above the bar when there is one. Call :meth:`close` when training ends."""

    def __init__(self, total: int, *, enabled: bool | None = None,
                 extra: Callable[[dict], dict[str, str]] | None = None,
                 lines: bool = False) -> None:
        from tqdm import tqdm

        self.extra, self.lines, self.total = extra, lines, total
        self.bar = tqdm(total=total, unit="epoch", disable=None if enabled is None else not enabled,
                        leave=False, file=sys.stderr, dynamic_ncols=True)
        self._last = time.perf_counter()

    def __call__(self, epoch: int, history: dict[str, Any]) -> None:
        post = {k: compact(history[k][-1]) for k in ("loss", "accuracy", "val_loss", "val_accuracy")
                if history.get(k)}
        if self.extra is not None:
            post.update(self.extra(history))
        if self.lines:
            now = time.perf_counter()
            figures = ", ".join(f"{k} {v}" for k, v in post.items())
            width = len(str(self.total))
            self.bar.write(f"epoch {epoch:>{width}}/{self.total}: {figures} "
                           f"({now - self._last:.2f} s)", file=sys.stderr)
            self._last = now
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    @property
    def disabled(self) -> bool:
        return bool(self.bar.disable)

    def close(self) -> None:
        self.bar.close()
