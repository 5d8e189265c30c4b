"""JAX computes float32 matrix products in TF32 on GPUs unless told otherwise (its
``default_matmul_precision``): on the first GPU run every JAX float32 row of ``rnnx check``
deviated 5e-4 – 8e-3 from NumPy float64 against a limit of 8.1e-6. rnnx's calls on JAX arrays run
under ``jax.default_matmul_precision("highest")``.

What reaches the compiler is checked here, on any machine: every ``dot_general`` that rnnx's
code traces carries ``Precision.HIGHEST``, and the user's own setting outside rnnx's calls is
untouched. (On a CPU both precisions compute full float32, so the numbers cannot show it here;
``rnnx check``'s JAX rows on a GPU do.)
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax not installed: `pip install jax` to include this check")
jnp = pytest.importorskip("jax.numpy")

import rnnx  # noqa: E402
from rnnx.functional import rnn_backward_checkpointed, rnn_forward_checkpointed  # noqa: E402
from rnnx.testing.agreement import cell_variants, make_case, run_case  # noqa: E402

HIGHEST = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)


def _dot_precisions(jaxpr) -> list:
    """The ``precision`` of every ``dot_general`` in ``jaxpr`` and the jaxprs nested in it."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(eqn.params["precision"])
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found += _dot_precisions(inner)
    return found


def _traced(f, *args) -> list:
    return _dot_precisions(jax.make_jaxpr(f)(*args).jaxpr)


def _f32(host):
    return {k: None if v is None else jnp.asarray(v, dtype=jnp.float32) for k, v in host.items()}


@pytest.mark.parametrize("label, spec, options", list(cell_variants()),
                         ids=[v[0] for v in cell_variants()])
def test_every_matmul_of_a_cells_forward_and_backward_is_full_float32(label, spec, options):
    a = _f32(make_case(spec, np.random.default_rng(0), 2, 3, 4, 5))
    precisions = _traced(lambda a: run_case(spec, a, options=options), a)
    assert precisions, "no matrix product traced"
    assert all(p == HIGHEST for p in precisions), (label, precisions)


def test_the_dense_layer_and_checkpointed_bptt_are_full_float32():
    rng = np.random.default_rng(1)
    h, w, b = (jnp.asarray(rng.normal(size=s), dtype=jnp.float32) for s in ((2, 5), (5, 3), (3,)))

    def dense_fwd_bwd(h, w, b):
        dense = rnnx.Dense.from_weights(w, b)
        return dense.forward(h), dense.backward(jnp.ones((2, 3), dtype=jnp.float32))

    a = _f32(make_case(rnnx.functional.registry.CELLS["rnn"], rng, 2, 6, 4, 5, with_state=False))

    def checkpointed(x, w_x, w_h, b, dhs):
        h_n, cache = rnn_forward_checkpointed(x, w_x, w_h, b, every=2)
        return h_n, rnn_backward_checkpointed(dhs[:, -1], cache)

    for precisions in (_traced(dense_fwd_bwd, h, w, b),
                       _traced(checkpointed, a["x"], a["w_x"], a["w_h"], a["b"], a["dhs"])):
        assert precisions and all(p == HIGHEST for p in precisions), precisions


def test_the_users_own_setting_is_untouched_outside_rnnx():
    """rnnx sets the precision for its own calls only: the user's product before and after an
    rnnx call keeps the user's setting (none, or one chosen with JAX's own context manager)."""
    a = _f32(make_case(rnnx.functional.registry.CELLS["rnn"], np.random.default_rng(2),
                       2, 3, 4, 5, with_state=False))

    def user_then_rnnx_then_user(x, w_x, w_h, b):
        y1 = jnp.matmul(x[:, 0], w_x)
        hs, _ = rnnx.rnn_forward(x, w_x, w_h, b)
        y2 = jnp.matmul(hs[:, -1], w_h)
        return y1, hs, y2

    args = (a["x"], a["w_x"], a["w_h"], a["b"])
    plain = _traced(user_then_rnnx_then_user, *args)
    assert plain[0] is None and plain[-1] is None and all(p == HIGHEST for p in plain[1:-1])
    with jax.default_matmul_precision("bfloat16"):
        chosen = _traced(user_then_rnnx_then_user, *args)
    bf16 = (jax.lax.Precision.DEFAULT, jax.lax.Precision.DEFAULT)
    assert chosen[0] == bf16 and chosen[-1] == bf16 and all(p == HIGHEST for p in chosen[1:-1])
