"""The workspace (rnnx.functional.Workspace): buffers kept across calls of the same shapes give
the same bits as fresh ones; what is returned stays valid; shapes changing reallocate; a
namespace without item assignment (JAX) ignores it; a layer's outputs survive its next forward."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx import functional as F
from rnnx._backend import backend_name, from_host, get_namespace, to_numpy, writeable
from rnnx.functional import Workspace
from rnnx.functional.registry import CELLS
from rnnx.init import draw_cell_params
from rnnx.layers import Recurrent

from ._cell_checks import use_blocks_of

WS_CELLS = [name for name, c in CELLS.items() if c.workspace]


def _case(cell, put, dtype, rng, batch=3, time=6, features=4, hidden=5, masked=False):
    spec = CELLS[cell]
    host = draw_cell_params(spec, rng, features, hidden)
    params = {k: put(v, dtype) for k, v in host.items()}
    x = put(rng.normal(size=(batch, time, features)), dtype)
    dhs = put(rng.normal(size=(batch, time, hidden)), dtype)
    mask = put(np.array([time, time - 2, 1][:batch], dtype=np.int64)) if masked else None
    return params, x, dhs, mask


def _run(cell, params, x, dhs, mask, ws):
    spec = CELLS[cell]
    hs, cache = spec.run(params, x, mask=mask, workspace=ws, form="step")
    snapshot = {"hs": to_numpy(hs), **{k: to_numpy(v) for k, v in cache.arrays().items()}}
    dx, d0, g = spec.run_backward(cache, dhs, workspace=ws)
    grads = {"dx": dx, **d0, **g}
    return hs, cache, snapshot, {k: to_numpy(v) for k, v in grads.items()}, grads


def _same(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _skip_immutable(xp):
    """A workspace keeps buffers only where arrays can be written in place: on an immutable
    namespace (JAX) it is ignored, which test_immutable_namespace_ignores_it checks."""
    if not writeable(xp.zeros(1)):
        pytest.skip(f"{backend_name(xp)} arrays are immutable: a workspace is ignored there")


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "lengths"])
@pytest.mark.parametrize("blocks", [False, True], ids=["one-block", "blocks-of-2"])
@pytest.mark.parametrize("cell", WS_CELLS)
def test_workspace_gives_the_same_bits(cell, xp, put, dtype, rng, monkeypatch, masked, blocks):
    if blocks:
        use_blocks_of(monkeypatch, 2, 3 * 4 * 5)
    params, x, dhs, mask = _case(cell, put, dtype, rng, masked=masked)
    _, _, fwd0, grads0, _ = _run(cell, params, x, dhs, mask, None)
    ws = Workspace()
    for _ in range(3):  # the first call fills the workspace, the others reuse it
        _, _, fwd, grads, _ = _run(cell, params, x, dhs, mask, ws)
        _same(fwd, fwd0)
        _same(grads, grads0)


@pytest.mark.parametrize("cell", WS_CELLS)
def test_returned_arrays_survive_the_next_call(cell, xp, put, rng, monkeypatch):
    """``hs`` and the gradients are new arrays; the cache's saved arrays are the workspace's,
    as documented: the next forward with the workspace overwrites them."""
    _skip_immutable(xp)
    use_blocks_of(monkeypatch, 2, 3 * 4 * 5)  # the backward keeps its gradients in a buffer
    dtype = xp.float32
    params, x, dhs, _ = _case(cell, put, dtype, rng)
    ws = Workspace()
    hs1, cache1, fwd1, grads1, g1 = _run(cell, params, x, dhs, None, ws)
    x2 = put(rng.normal(size=tuple(x.shape)), dtype)
    hs2, cache2, *_ = _run(cell, params, x2, dhs, None, ws)
    assert len(ws) > 0
    np.testing.assert_array_equal(to_numpy(hs1), fwd1["hs"])
    _same({k: to_numpy(v) for k, v in g1.items()}, grads1)
    # The cache of call 1 shares the workspace's memory: the arrays the workspace holds now
    # have call 2's values. x differs between the calls, so only those can be equal (the
    # weights, the same in both calls, are left out).
    made1, made2 = cache1.arrays(), cache2.arrays()
    saved = [f for f in made1 if np.array_equal(to_numpy(made1[f]), to_numpy(made2[f]))]
    assert saved, f"no saved array of {cell}'s cache is the workspace's"
    assert not np.array_equal(to_numpy(hs1), to_numpy(hs2))


@pytest.mark.parametrize("cell", WS_CELLS)
def test_shapes_changing_reallocate(cell, xp, put, rng):
    dtype = xp.float32
    ws = Workspace()
    for time, batch in ((6, 3), (9, 3), (4, 2), (6, 3)):
        params, x, dhs, _ = _case(cell, put, dtype, rng, batch=batch, time=time)
        _, _, fwd0, grads0, _ = _run(cell, params, x, dhs, None, None)
        _, cache, fwd, grads, _ = _run(cell, params, x, dhs, None, ws)
        _same(fwd, fwd0)
        _same(grads, grads0)
        assert tuple(cache.hs.shape) == (batch, time, 5)


def test_one_buffer_per_name(xp):
    _skip_immutable(xp)
    ws = Workspace()
    like = xp.zeros((2, 3), dtype=xp.float32)
    a = ws.empty("a", (4, 2, 3), like, xp=xp)
    assert ws.empty("a", (4, 2, 3), like, xp=xp) is a
    b = ws.empty("a", (5, 2, 3), like, xp=xp)
    assert b is not a and tuple(b.shape) == (5, 2, 3) and ws.names == ("a",)
    assert ws.empty("a", (5, 2, 3), xp.zeros((2, 3), dtype=xp.float64), xp=xp).dtype == xp.float64
    ws.clear()
    assert len(ws) == 0


def test_immutable_namespace_ignores_it():
    try:
        xp = get_namespace("jax")
    except Exception as exc:  # jax missing or unusable here
        pytest.skip(f"jax unavailable: {exc}")
    rng = np.random.default_rng(0)
    host = draw_cell_params(CELLS["lstm"], rng, 4, 5)
    params = {k: from_host(v, xp=xp, dtype=xp.float32) for k, v in host.items()}
    x = from_host(rng.normal(size=(3, 6, 4)), xp=xp, dtype=xp.float32)
    ws = Workspace()
    hs, cache = F.lstm_forward(x, *params.values(), workspace=ws)
    ref, _ = F.lstm_forward(x, *params.values())
    F.lstm_backward(hs, cache, workspace=ws)
    assert len(ws) == 0
    np.testing.assert_array_equal(to_numpy(hs), to_numpy(ref))


@pytest.mark.parametrize("cell", [*WS_CELLS, "rnn"])
def test_layer_output_survives_the_next_forward(cell, xp, device, rng):
    layer = Recurrent(4, 5, cell=cell, num_layers=2, bidirectional=True, seed=1,
                      return_sequences=True, backend=backend_name(xp), device=device,
                      dtype="float32")
    fresh = Recurrent(4, 5, cell=cell, num_layers=2, bidirectional=True, seed=1,
                      return_sequences=True, backend=backend_name(xp), device=device,
                      dtype="float32")
    x1 = from_host(rng.normal(size=(3, 6, 4)), xp=xp, device=device, dtype=xp.float32)
    x2 = from_host(rng.normal(size=(3, 6, 4)), xp=xp, device=device, dtype=xp.float32)
    out1 = layer.forward(x1)
    kept = to_numpy(out1)
    layer.backward(out1)
    out2 = layer.forward(x2)
    np.testing.assert_array_equal(to_numpy(out1), kept)
    dx = layer.backward(out2)
    # The same as a layer that never saw x1.
    ref_out = fresh.forward(x2)
    ref_dx = fresh.backward(ref_out)
    np.testing.assert_array_equal(to_numpy(out2), to_numpy(ref_out))
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(ref_dx))
    for k in layer.grads:
        np.testing.assert_array_equal(to_numpy(layer.grads[k]), to_numpy(fresh.grads[k]),
                                      err_msg=k)
