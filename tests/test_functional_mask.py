"""Variable-length batches for every registered cell: the mask semantics of
``rnnx.functional._mask`` against torch's ``pack_padded_sequence`` and against unpadded
single-sample runs, on every backend and device."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import devices, to_numpy
from rnnx.functional import lengths_to_mask

from . import _cell_checks as checks
from . import _cells

KINDS = _cells.KINDS
LENGTHS = np.array([5, 2, 7, 1])  # batch 4, time 7: full, short, single step


@pytest.mark.parametrize("block_steps", [None, 2], ids=["one-block", "blocks-of-2"])
@pytest.mark.parametrize("as_lengths", [True, False], ids=["lengths", "bool-mask"])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_torch_pack_padded(kind, xp, device, put, rng, as_lengths, block_steps,
                                   monkeypatch):
    """Outputs (zero past each end), final states (each sample's last valid one) and every
    gradient equal torch's packed run in float64 to 1e-10 relative (see _cell_checks); the gated
    cells' backward also with its factors computed two steps at a time."""
    if block_steps is not None:
        checks.use_blocks_of(monkeypatch, block_steps, 4 * 4 * 5)
    case = _cells.make_case(kind, rng, 4, 7, 3, 5)
    ref = _cells.reference(kind, case, lengths=LENGTHS)
    lengths = put(LENGTHS)  # integer lengths on the inputs' device: never the host
    mask = lengths if as_lengths else lengths_to_mask(lengths, 7)
    got = _cells.run(kind, checks.to_backend(case, put, xp.float64), mask=mask)
    for name, value in got.items():
        assert device_of(value) == device, name
        err = checks.max_rel_dev(value, ref[name])
        assert err <= 1e-10, f"{name}: max deviation from torch {err:.2e} (relative to max)"
    # Past each end: outputs and input gradients are exactly zero.
    pad = np.arange(7)[None, :] >= LENGTHS[:, None]
    assert np.all(to_numpy(got["out"])[pad] == 0.0)
    assert np.all(to_numpy(got["dx"])[pad] == 0.0)


def _pad(a, length, time, side):
    """Host ``(length, ...)`` sequence padded with garbage to ``time`` steps on ``side``: the
    garbage must not matter."""
    fill = np.full((time - length, *a.shape[1:]), 7.5)
    return np.concatenate([a, fill] if side == "right" else [fill, a])


@pytest.mark.parametrize("kind", KINDS)
def test_left_and_right_padding_equal_single_sample_runs(kind, xp, put, rng):
    """Left- and right-padded batches give, sample by sample, what an unpadded batch-1 run
    gives: outputs at the valid steps, final states and the input/initial-state gradients; the
    batch's weight gradients equal the sum of the single-sample ones. Same float64 operations
    up to summation order across the batch: 1e-12 relative to each array's max."""
    time, lens = 6, [6, 3, 1, 4]
    case = _cells.make_case(kind, rng, len(lens), time, 3, 4)
    singles = []
    for s, n in enumerate(lens):
        one = {k: (None if v is None else (v[s : s + 1, :n] if v.ndim == 3 else
                                           v[s : s + 1] if v.ndim == 2 and k not in
                                           ("w_x", "w_h") else v))
               for k, v in case.items()}
        singles.append({k: to_numpy(v) for k, v in
                        _cells.run(kind, checks.to_backend(one, put, xp.float64)).items()})
    for side in ("right", "left"):
        padded = dict(case)
        for key in ("x", "dhs"):
            padded[key] = np.stack([_pad(case[key][s, :n], n, time, side)
                                    for s, n in enumerate(lens)])
        mask = lengths_to_mask(put(np.array(lens)), time, padding=side)
        got = {k: to_numpy(v) for k, v in
               _cells.run(kind, checks.to_backend(padded, put, xp.float64), mask=mask).items()}
        for s, n in enumerate(lens):
            steps = slice(0, n) if side == "right" else slice(time - n, time)
            for name in ("out", "dx"):
                err = checks.max_rel_dev(got[name][s : s + 1, steps], singles[s][name])
                assert err <= 1e-12, f"{side} {name} sample {s}: {err:.2e}"
            for name in [k for k in got if k in ("h_n", "c_n", "dh0", "dc0")]:
                err = checks.max_rel_dev(got[name][s : s + 1], singles[s][name])
                assert err <= 1e-12, f"{side} {name} sample {s}: {err:.2e}"
        for name in [k for k in got if k.startswith(("dw", "db"))]:
            total = sum(single[name] for single in singles)
            err = checks.max_rel_dev(got[name], total)
            assert err <= 1e-12, f"{side} {name}: {err:.2e}"


@pytest.mark.parametrize("kind", KINDS)
def test_finite_differences_with_holes_and_empty_sample(kind, xp, put, rng):
    """Central differences through a mask with left padding, a hole and an all-padded sample
    (whose final state is h0 and whose dh0 is dh_n passed straight through)."""
    mask = np.array([[False, True, True, True],
                     [True, False, True, False],
                     [False, False, False, False]])
    checks.check_finite_differences(kind, xp, put, rng, (3, 4, 2, 3), mask=mask)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_sample_keeps_initial_state(kind, put, rng):
    case = _cells.make_case(kind, rng, 2, 3, 2, 4)
    got = _cells.run(kind, checks.to_backend(case, put, None), mask=put(np.array([3, 0])))
    np.testing.assert_array_equal(to_numpy(got["h_n"])[1], case["h0"][1])
    np.testing.assert_array_equal(to_numpy(got["dh0"])[1], case["dh_n"][1])
    assert np.all(to_numpy(got["out"])[1] == 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_mask_on_another_device_or_on_the_host(kind, rng):
    """Lengths on array-api-strict's default device (or as host data) for inputs on ``device1``:
    moved to the inputs' device without error; every result lands on ``device1``."""
    strict = pytest.importorskip("array_api_strict")
    from rnnx._backend import from_host

    dev1 = devices("array_api_strict")[1]
    case = _cells.make_case(kind, rng, 2, 3, 2, 4)
    a = {k: from_host(v, xp=strict, device=dev1) for k, v in case.items()}
    for mask in (strict.asarray([3, 1]), np.array([3, 1]), [[True, True, True],
                                                         [True, False, False]]):
        got = _cells.run(kind, a, mask=mask)
        for name, value in got.items():
            assert device_of(value) == dev1, name


@pytest.mark.parametrize("kind", KINDS)
def test_masked_results_on_input_device(kind, xp, device, dtype, put, rng):
    checks.check_device(kind, xp, device, dtype, put, rng,
                        mask=put(np.array([[True, False, True], [False, True, True]])))


def test_relu_elman_matches_torch_pack_padded(xp, device, put, rng):
    """The masked Elman path with relu (its derivative is read from the carried states): equal
    to torch's packed run in float64 to 1e-10 relative (see _cell_checks)."""
    case = _cells.make_case("rnn", rng, 4, 7, 3, 5)
    ref = _cells.reference("rnn", case, lengths=LENGTHS, nonlinearity="relu")
    got = _cells.run("rnn", checks.to_backend(case, put, xp.float64), mask=put(LENGTHS),
                     nonlinearity="relu")
    for name, value in got.items():
        assert device_of(value) == device, name
        assert checks.max_rel_dev(value, ref[name]) <= 1e-10, name
