"""Host <-> device crossings of a fit, per cell: plain, with lengths, with dropout.

    python -m benchmarks.host_crossings

Fits an ``RNNClassifier`` (hidden 4, 2 epochs, 64 samples of 5 steps x 3 features) on
array-api-strict's ``device1`` at 2 and at 8 batches an epoch and counts every device -> host
read and host -> device ``asarray`` (``rnnx.testing.count_calls(...).host_crossings``). The
growth divided by the 12 extra batches is the crossings per batch: on a GPU each is a
synchronisation. Prints a markdown table (docs/gpu.md quotes it).
"""

from __future__ import annotations

import numpy as np

from rnnx._backend import from_host, get_namespace
from rnnx.functional.registry import CELLS
from rnnx.models import RNNClassifier
from rnnx.testing import count_calls

VARIANTS = {"plain": {}, "lengths": {}, "dropout (2 layers)": {"num_layers": 2, "dropout": 0.3}}
EPOCHS, BATCHES = 2, (2, 8)


def crossings(cell: str, variant: str, batches: int) -> int:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5, 3))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    lengths = rng.integers(1, 6, size=64) if variant == "lengths" else None
    strict = get_namespace("array_api_strict")
    dev = strict.Device("device1")
    Xd, yd = from_host(X, xp=strict, device=dev), from_host(y, xp=strict, device=dev)
    est = RNNClassifier(cell=cell, hidden_size=4, epochs=EPOCHS, batch_size=64 // batches,
                        random_state=0, **VARIANTS[variant])
    with count_calls() as counts:
        est.fit(Xd, yd, lengths=lengths)
    return counts.host_crossings


def main() -> None:
    print(f"| cell | {' | '.join(f'{v} ({BATCHES[0]} → {BATCHES[1]} batches)' for v in VARIANTS)}"
          " | per batch |")
    print("|---" * (len(VARIANTS) + 2) + "|")
    extra = EPOCHS * (BATCHES[1] - BATCHES[0])
    for cell in CELLS:
        cells, growth = [], []
        for v in VARIANTS:
            few, many = (crossings(cell, v, b) for b in BATCHES)
            cells.append(f"{few} → {many}")
            growth.append((many - few) / extra)
        print(f"| {cell} | {' | '.join(cells)} | {max(growth):g} |")


if __name__ == "__main__":
    main()
