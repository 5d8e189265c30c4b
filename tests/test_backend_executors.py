"""The executors (rnnx._backend._executors) where JAX compiles: every matrix product is traced at
full float32 precision whatever the caller's JAX setting, the traced program does not grow with
the sequence length (compile time independent of ``time``), a call of a shape seen before
compiles nothing, and an estimator's fit compiles its training once, not once a batch or an
epoch. And the backend's choice itself: JAX scans, NumPy runs the tuned forms, the rest the
readable step."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import executor, forced_executor, get_namespace
from rnnx.functional.registry import CELLS
from rnnx.testing import make_case

from .conftest import _COMBOS, _resolve


@pytest.fixture
def jax_xp():
    """JAX's namespace where JAX is selected (RNNX_BACKENDS) and can run here."""
    if ("jax", "default") not in _COMBOS:
        pytest.skip("jax is not selected (RNNX_BACKENDS)")
    return _resolve("jax", "default")[0]


@pytest.fixture
def jax(jax_xp):
    import jax

    return jax


def _case(xp, kind, batch=2, time=5, features=3, hidden=4):
    from rnnx._backend import from_host

    case = make_case(CELLS[kind], np.random.default_rng(0), batch, time, features, hidden)
    return {k: None if v is None else from_host(v, xp=xp, dtype=xp.float32)
            for k, v in case.items()}


def _loss(kind, a, mask=None, form="auto"):
    """The case's forward and backward, as one function of its arrays (for tracing)."""
    spec = CELLS[kind]

    def run(arrays):
        _, cache = spec.run(arrays, arrays["x"], {s + "0": arrays[s + "0"] for s in spec.states},
                              mask=mask, form=form)
        return spec.run_backward(cache, arrays["dhs"])

    return run


def _equations(jaxpr):
    """Every primitive equation of a jaxpr, nested calls and loop bodies included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for v in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(v, "jaxpr", v)
                if hasattr(inner, "eqns"):
                    yield from _equations(inner)


@pytest.mark.parametrize("kind", list(CELLS))
def test_every_product_is_traced_at_highest_precision(jax, jax_xp, kind):
    """JAX's GPU default is TF32 matrix products; rnnx traces each of its own at
    ``Precision.HIGHEST`` (full float32), also inside a caller's lower-precision scope."""
    a = _case(jax_xp, kind)
    for scope in (None, "bfloat16"):
        if scope is None:
            jaxpr = jax.make_jaxpr(_loss(kind, a))(a)
        else:
            with jax.default_matmul_precision(scope):
                jaxpr = jax.make_jaxpr(_loss(kind, a))(a)
        dots = [e for e in _equations(jaxpr.jaxpr) if e.primitive.name == "dot_general"]
        assert len(dots) >= 4, kind  # projection, recurrence forward and back, weight sums
        for e in dots:
            assert e.params["precision"] == (jax.lax.Precision.HIGHEST,) * 2, (kind, scope)


@pytest.mark.parametrize("kind", list(CELLS))
def test_traced_program_does_not_grow_with_time(jax, jax_xp, kind):
    """The forward and the backward are each one ``lax.scan`` over the step: the program (and
    so its compile time) is the same size at 4 steps and at 40. (A cell's parallel form, the
    chunked linear scan of rnnx.functional.scan, is traced chunk position by chunk position:
    its program grows as sqrt(time); docs/min-rnn.md.)"""
    sizes = []
    for time in (4, 40):
        a = _case(jax_xp, kind, time=time)
        sizes.append(len(list(_equations(jax.make_jaxpr(_loss(kind, a, form="step"))(a).jaxpr))))
    assert sizes[0] == sizes[1], sizes


def test_a_shape_seen_before_compiles_nothing(jax, jax_xp):
    """The driver's functions are compiled once per (cell, options, shapes); the precision
    scope rnnx enters is part of every call, so a caller's own scope does not make another."""
    ex = executor(jax_xp)
    a = _case(jax_xp, "lstm", batch=3, time=7)
    run = _loss("lstm", a)
    jax.block_until_ready(run(a))
    before = ex.compilations
    jax.block_until_ready(run(a))
    with jax.default_matmul_precision("bfloat16"):
        jax.block_until_ready(run(a))
    assert ex.compilations == before
    jax.block_until_ready(run(_case(jax_xp, "lstm", batch=3, time=8)))  # a new shape
    assert ex.compilations > before


class _CompileCounter:
    """Counts XLA compilations while active (JAX reports each backend compile as an event)."""

    def __init__(self, jax):
        self.active, self.count = False, 0
        jax.monitoring.register_event_duration_secs_listener(self._seen)

    def _seen(self, event, duration, **kwargs):
        if self.active and event == "/jax/core/compile/backend_compile_duration":
            self.count += 1


@pytest.fixture
def compilations(jax):
    counter = _CompileCounter(jax)
    yield counter
    counter.active = False


@pytest.mark.parametrize("kind, options", [("rnn", {}), ("lstm", {"num_layers": 2,
                                                                  "dropout": 0.3})])
def test_a_jax_fit_compiles_once_not_every_batch(jax_xp, compilations, kind, options):
    """A fit of 50 samples in batches of 8 (the last one shorter) over 3 epochs compiles its
    training once; once warm, more epochs (partial_fit) and predictions compile nothing."""
    from rnnx.models import RNNClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=50)
    model = RNNClassifier(cell=kind, hidden_size=5, epochs=3, batch_size=8, backend="jax",
                          dtype="float32", random_state=0, **options)
    model.fit(X, y)
    (epoch,) = [v for k, v in model.network_._compiled.items() if k[0] == "epoch"]
    assert epoch.fn.compilations == 1
    model.partial_fit(X, y)
    model.predict(X)
    compilations.active = True
    for _ in range(2):
        model.partial_fit(X, y)
        model.predict(X)
    assert compilations.count == 0
    assert epoch.fn.compilations == 1
    assert len(model.history_["loss"]) == 6 and np.isfinite(model.history_["loss"]).all()


def test_the_backend_picks_the_executor():
    """JAX scans under jit; NumPy runs the cells' tuned forms; every other namespace the
    readable step eagerly; a forced executor wins for its block."""
    assert executor(get_namespace("numpy")).name == "eager"
    assert executor(get_namespace("numpy")).tuned
    strict = get_namespace("array_api_strict")
    assert executor(strict).name == "eager" and not executor(strict).tuned
    with forced_executor("tuned"):
        assert executor(strict).tuned
    with pytest.raises(ValueError, match="executor must be one of"):
        with forced_executor("compiled"):
            pass


def test_the_backend_decides_when_a_parallel_form_pays():
    """``Cell.run(form="auto")`` runs a cell's parallel form where the backend's executor says
    it pays: on NumPy only for small steps (``batch * hidden`` below the measured crossover),
    on the other eager backends always; ``form=`` overrides either way."""
    from rnnx._backend._executors import NUMPY_PARALLEL_MAX_STEP_ELEMENTS
    from rnnx.functional import Cache

    spec = CELLS["min_gru"]
    assert executor(get_namespace("numpy")).parallel_pays(8, 64)
    assert not executor(get_namespace("numpy")).parallel_pays(32, 128)
    assert executor(get_namespace("array_api_strict")).parallel_pays(32, 128)
    rng = np.random.default_rng(0)
    for batch, parallel in ((2, True), (NUMPY_PARALLEL_MAX_STEP_ELEMENTS // 4, False)):
        case = make_case(spec, rng, batch, 3, 2, 4)
        _, cache = spec.run(case, case["x"])
        assert isinstance(cache, Cache) is not parallel, batch
        for form, want in (("step", True), ("parallel", False)):
            _, cache = spec.run(case, case["x"], form=form)
            assert isinstance(cache, Cache) is want, (batch, form)
    with pytest.raises(ValueError, match=r"form must be one of \('auto', 'step', 'parallel'\)"):
        spec.run(case, case["x"], form="scan")
    with pytest.raises(ValueError, match=r"cell 'lstm' has no parallel form .*min_gru"):
        CELLS["lstm"].run(make_case(CELLS["lstm"], rng, 2, 3, 2, 4), case["x"], form="parallel")
