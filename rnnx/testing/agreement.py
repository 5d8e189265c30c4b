"""Seeded cases for every registered cell, and the tables ``rnnx check`` prints from them.

:func:`make_case` draws a host float64 case (input, parameters, initial states and the
gradients of the outputs and final states) for any cell of :data:`rnnx.functional.registry.CELLS`
from the cell's own parameter shapes; :func:`run_case` runs its forward and backward on any
backend and returns every result by name; :func:`loss_fn` is the scalar whose gradient that is,
for finite differences. The test suite and the agreement table both build on these, so a newly
registered cell is checked by both without new code.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._backend import (
    HostGenerator,
    device_label,
    devices,
    float64_unavailable,
    from_host,
    get_namespace,
    host_namespace,
    host_rng,
    namespace,
    on_device,
    to_numpy,
)
from .._typing import Array, DType, Namespace
from ..datasets import SEED_EXPECTED_LAST_STATE, seed_example
from ..functional.registry import CELLS, Cell
from ._checks import finite_difference_grads, grad_check_error, recurrence_rtol

__all__ = ["agreement_rows", "cell_variants", "differentiable", "float64_skips", "loss_fn", "make_case",
           "run_case", "seed_rows"]


def make_case(spec: Cell, rng: HostGenerator, batch: int, time: int, features: int, hidden: int, *,
              with_state: bool = True) -> dict[str, Any]:
    """A host float64 case for ``spec``: ``x (batch, time, features)``; every parameter with
    its shape (weights scaled ~1/sqrt(fan_in) so that gates stay out of saturation and
    gradients carry signal over tens of steps; biases small; gains near their initial value);
    initial states ``h0`` (``c0``) ``(batch, hidden)`` or ``None`` without ``with_state``; and
    the gradients ``dhs (batch, time, hidden)``, ``dh_n`` (``dc_n``) ``(batch, hidden)``."""
    case: dict[str, Any] = {"x": rng.normal(size=(batch, time, features))}
    for name, shape in spec.shapes(features, hidden).items():
        if name == "w_x":
            case[name] = rng.normal(size=shape) / math.sqrt(features)
        elif name == "w_h":
            case[name] = rng.normal(size=shape) * (0.6 / math.sqrt(hidden))
        else:
            init = spec.vectors[name][1]
            case[name] = (0.0 if init is None else init) + 0.1 * rng.normal(size=shape)
    for s in spec.states:
        case[s + "0"] = rng.normal(size=(batch, hidden)) * 0.5 if with_state else None
    case["dhs"] = rng.normal(size=(batch, time, hidden))
    for s in spec.states:
        case[f"d{s}_n"] = rng.normal(size=(batch, hidden))
    return case


def differentiable(spec: Cell) -> tuple[str, ...]:
    """Names of a case's differentiable inputs: ``x``, the parameters, the initial states."""
    return ("x", *spec.params, *(s + "0" for s in spec.states))


def run_case(spec: Cell, a: Mapping[str, Any], *, mask: Array | None = None, final: bool = True,
             options: Mapping[str, Any] | None = None, form: str = "auto") -> dict[str, Any]:
    """Forward and backward of ``sum(out * dhs) [+ sum(h_n * dh_n) + sum(c_n * dc_n)]`` (the
    final-state terms only if ``final``) on the arrays of ``a`` (any backend); every result by
    name: ``out``, ``h_n`` (``c_n``), ``dx``, ``dh0`` (``dc0``), ``d<param>``. ``form``: which
    form of the cell runs (:meth:`rnnx.functional.registry.Cell.run`)."""
    state0 = {s + "0": a.get(s + "0") for s in spec.states}
    out, cache = spec.run(a, a["x"], state0, mask=mask, options=options, form=form)
    finals = {s: a[f"d{s}_n"] for s in spec.states} if final else {}
    dx, d0, dp = spec.run_backward(cache, a["dhs"], finals)
    res = {"out": out}
    res.update({s + "_n": v for s, v in zip(spec.states, spec.final_states(cache))})
    res["dx"] = dx
    res.update({"d" + k: v for k, v in d0.items()})
    res.update({"d" + k: v for k, v in dp.items()})
    return res


def loss_fn(spec: Cell, a: Mapping[str, Any], *, mask: Array | None = None, final: bool = True,
            options: Mapping[str, Any] | None = None, form: str = "auto") -> Callable[..., Any]:
    """The scalar whose gradient :func:`run_case` computes, as a function of the
    differentiable inputs given by keyword (for :func:`finite_difference_grads`)."""

    def loss(**args: Any) -> Any:
        b = {**a, **args}
        out, cache = spec.run(b, b["x"], {s + "0": b.get(s + "0") for s in spec.states},
                              mask=mask, options=options, form=form)
        xp = namespace(out)
        total = xp.sum(out * a["dhs"])
        if final:
            for s, v in zip(spec.states, spec.final_states(cache)):
                total = total + xp.sum(v * a[f"d{s}_n"])
        return total

    return loss


def cell_variants() -> Iterator[tuple[str, Cell, dict[str, Any]]]:
    """``(label, cell, options)`` for every registered cell and every combination of its run
    options' values: ``rnn-tanh``, ``rnn-relu``, ``lstm``, ``gru``, ``ln_lstm``..."""
    for spec in CELLS.values():
        names = list(spec.options)
        for values in itertools.product(*(spec.options[n] for n in names)):
            label = "-".join([spec.name, *map(str, values)])
            yield label, spec, dict(zip(names, values))


def _targets(names: tuple[str, ...]) -> list[tuple[str, Any, Any, str]]:
    """``(backend, xp, device, device label)`` for every requested backend/device available here."""
    out = []
    for name in names:
        xp = get_namespace(name)
        for dev in devices(name):
            out.append((name, xp, dev, device_label(dev)))
    return out


def _put(host: Mapping[str, Any], xp: Any, dev: Any, dtype: Any) -> dict[str, Any]:
    return {k: None if v is None else from_host(v, xp=xp, device=dev, dtype=dtype)
            for k, v in host.items()}


def _deviation(got: Mapping[str, Any], ref: Mapping[str, Any]) -> tuple[float, float]:
    """Largest absolute deviation and largest deviation relative to each array's max magnitude."""
    hnp = host_namespace()
    max_abs = max_rel = 0.0
    for name, r in ref.items():
        d = float(hnp.max(hnp.abs(hnp.astype(to_numpy(got[name]), hnp.float64) - r)))
        max_abs = max(max_abs, d)
        max_rel = max(max_rel, d / max(float(hnp.max(hnp.abs(r))), 1e-300))
    return max_abs, max_rel


# (batch, time, features, hidden) of the agreement cases.
_AGREEMENT_SHAPE = (4, 16, 5, 8)


def _limit(spec: Cell, dtype: Any, xp: Any) -> float:
    batch, time, features, hidden = _AGREEMENT_SHAPE
    return recurrence_rtol(dtype, xp, batch=batch, time=time, features=features, hidden=hidden,
                           gain=spec.rounding_gain)


def agreement_rows(backends: tuple[str, ...], seed: int = 0, *,
                   cells: tuple[str, ...] | None = None) -> list[dict]:
    """For every cell variant (of the registry names in ``cells``; default all), backend,
    device and dtype: the deviation of the forward states and every gradient from NumPy
    float64."""
    rows = []
    hnp = get_namespace("numpy")
    for label, spec, options in cell_variants():
        if cells is not None and spec.name not in cells:
            continue
        host = make_case(spec, host_rng(seed), *_AGREEMENT_SHAPE)
        ref = {k: to_numpy(v) for k, v in
               run_case(spec, _put(host, hnp, "cpu", hnp.float64), options=options).items()}
        for name, xp, dev, dev_label in _targets(backends):
            for dtype_name in ("float64", "float32")[1 if float64_unavailable(xp) else 0:]:
                dtype = getattr(xp, dtype_name)
                got = run_case(spec, _put(host, xp, dev, dtype), options=options)
                max_abs, max_rel = _deviation(got, ref)
                # The rounding bound of this computation in this dtype (see rnnx.testing).
                limit = _limit(spec, dtype, xp)
                rows.append({"cell": label, "backend": name, "device": dev_label,
                             "dtype": dtype_name, "max_abs": max_abs, "max_rel": max_rel,
                             "limit": limit, "ok": max_rel <= limit})
    return rows


def seed_tolerance(dtype: DType, xp: Namespace) -> float:
    """Absolute tolerance on the seed's last state in ``dtype``: the seed printed 8 decimals
    (5e-9), plus, below float64, the rounding bound of its 3 steps of ``(1, 3, 2)`` inputs with
    4 units (:func:`~rnnx.testing.recurrence_rtol`; ``|h| <= 1``)."""
    if dtype == xp.float64:
        return 5e-9
    return 5e-9 + recurrence_rtol(dtype, xp, batch=1, time=3, features=2, hidden=4)


def seed_rows(backends: tuple[str, ...]) -> list[dict]:
    """The seed's Problem 2 value and a finite-difference check of Elman BPTT on every target,
    in float64; a target without float64 (JAX without x64) checks the value in float32 alone
    (finite differences in float32 cannot tell a right gradient from a wrong one)."""
    rows = []
    hnp = host_namespace()
    expected = hnp.asarray(SEED_EXPECTED_LAST_STATE)
    spec = CELLS["rnn"]
    for name, xp, dev, label in _targets(backends):
        no64 = float64_unavailable(xp)
        dtype = xp.float32 if no64 else xp.float64
        a = _put(seed_example(), xp, dev, dtype)
        out, _ = spec.run(a, a["x"])
        last = hnp.astype(to_numpy(out[:, -1, :]), hnp.float64)
        seed_err = float(hnp.max(hnp.abs(last - expected)))
        gc = float("nan")
        if not no64:
            case = _put(make_case(spec, host_rng(1), 2, 4, 3, 4), xp, dev, xp.float64)
            grads = run_case(spec, case, final=False)
            wrt = differentiable(spec)
            with on_device(*case.values()):  # the perturbations are made outside rnnx's calls
                numeric = finite_difference_grads(loss_fn(spec, case, final=False),
                                                  {k: case[k] for k in wrt})
                gc = max(grad_check_error(grads["d" + k], numeric[k]) for k in wrt)
        # Finite differences of a correct gradient score ~1e-10.
        value_ok = seed_err <= seed_tolerance(dtype, xp)
        rows.append({"backend": name, "device": label, "dtype": "float32" if no64 else "float64",
                     "last_state": last[0], "seed_err": seed_err, "grad_check": gc,
                     "ok": value_ok and (no64 != "" or gc <= 1e-7), "note": no64})
    return rows


def float64_skips(backends: tuple[str, ...]) -> list[str]:
    """One line per requested backend that cannot compute in float64 here, saying why (its
    float64 rows are left out of the tables)."""
    return [f"{name}: float64 skipped ({why})" for name in backends
            if (why := float64_unavailable(get_namespace(name)))]
