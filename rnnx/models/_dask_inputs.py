"""What a dask input must be before anything runs on the cluster (:mod:`rnnx.models._dask`
trains, :mod:`rnnx.models._dask_predict` scores): sample-chunked dask arrays chunked alike, a
current ``distributed`` client, and the options that cannot run exactly on dask yet. Nothing
here imports dask unless a dask array was passed (:func:`is_dask_array`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dask.array import Array as DaskArray

    from ._base import BaseRNN

__all__ = ["check_inputs", "check_lengths", "check_y_like_X", "current_client", "is_dask_array",
           "network_spec", "not_dask", "not_yet", "sample_chunked"]


def is_dask_array(a: object) -> bool:
    """Whether ``a`` is a dask collection (never imports dask)."""
    return type(a).__module__.startswith("dask.")


def not_yet(what: str) -> NotImplementedError:
    return NotImplementedError(f"{what} is not supported yet with dask arrays: compute the data "
                               "into memory (X.compute()) to use it, or leave it at its default")


def current_client() -> Any:
    try:
        import distributed
    except ImportError:  # pragma: no cover - the extra is missing
        raise ImportError("training on dask arrays needs dask.distributed: install the "
                          "'rnnx[dask]' extra") from None
    try:
        return distributed.default_client()
    except ValueError:
        raise RuntimeError("fit on dask arrays trains on the current dask.distributed client, and "
                           "there is none: start one first, e.g. client = distributed.Client() "
                           "(or Client(cluster) for a LocalCluster)") from None


def sample_chunked(a: DaskArray, name: str) -> None:
    """``a`` is chunked along samples only, with known chunk sizes."""
    if any(c != c for c in a.chunks[0]):  # NaN: unknown sizes
        raise ValueError(f"{name} has unknown chunk sizes along samples; call "
                         f"{name}.compute_chunk_sizes() first")
    split = [ax for ax in range(1, a.ndim) if len(a.chunks[ax]) > 1]
    if split:
        spec = ", ".join(f"{ax}: -1" for ax in range(1, a.ndim))
        raise ValueError(f"{name} must be chunked along samples (axis 0) only, with the other "
                         f"axes in one chunk each; {name} has chunks {a.chunks}, split along axis "
                         f"{split}. Rechunk it: {name}.rechunk({{{spec}}})")


def not_dask(name: str, a: object, other: str) -> TypeError:
    return TypeError(f"{other} is a dask array but {name} is "
                     f"{type(a).__module__}.{type(a).__qualname__}: pass both as dask arrays "
                     f"chunked alike along samples, e.g. dask.array.from_array({name}, "
                     f"chunks=({other}.chunks[0],))")


def check_lengths(X: DaskArray, lengths: DaskArray | None) -> None:
    """``lengths`` of a dask ``X``: a dask array with X's chunks along samples."""
    if lengths is None:
        return
    if not is_dask_array(lengths):
        raise not_dask("lengths", lengths, "X")
    if lengths.ndim not in (1, 2) or lengths.shape[0] != X.shape[0]:
        raise ValueError(f"lengths must be integer lengths (n_samples,) = ({X.shape[0]},) or a "
                         f"boolean mask (n_samples, time) = ({X.shape[0]}, {X.shape[1]}); got "
                         f"shape {tuple(lengths.shape)}")
    _chunked_like_X(X, lengths, "lengths")


def check_inputs(est: BaseRNN, X: DaskArray, y: DaskArray, lengths: DaskArray | None = None) -> None:
    """Refuse, before anything runs, what cannot train exactly."""
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is None")
    given = {"X": X, "y": y, "lengths": lengths}
    lazy = next(n for n, a in given.items() if is_dask_array(a))  # the one that sent us here
    for name, a in (("X", X), ("y", y)):
        if not is_dask_array(a):
            raise not_dask(name, a, lazy)
        if not hasattr(a, "chunks"):
            raise TypeError(f"{name} must be a dask array; got {type(a).__qualname__}")
    if est.backend is not None or est.device is not None:
        raise not_yet("backend= / device= (the chunks' own namespace trains)")
    if X.ndim not in (2, 3):
        raise ValueError(f"Expected 2D (n_samples, time) or 3D (n_samples, time, features) X, got "
                         f"{X.ndim}D array of shape {tuple(X.shape)} instead")
    if X.shape[0] == 0 or any(s == 0 for s in X.shape[1:]):
        raise ValueError(f"X must have at least 1 sample, step and feature; got shape {X.shape}")
    sample_chunked(X, "X")
    check_y_like_X(X, y)
    check_lengths(X, lengths)


def check_y_like_X(X: DaskArray, y: DaskArray) -> None:
    """``y`` (a dask array) has ``X``'s samples in ``X``'s chunks along samples."""
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y have inconsistent numbers of samples: X has {X.shape[0]}, y "
                         f"has {y.shape[0] if y.ndim else 'a scalar'}")
    _chunked_like_X(X, y, "y")


def _chunked_like_X(X: Any, a: Any, name: str) -> None:
    """``a`` is chunked along samples only, in ``X``'s chunks; the error says how to rechunk."""
    sample_chunked(a, name)
    if a.chunks[0] != X.chunks[0]:
        raise ValueError(f"X and {name} must have the same chunks along samples; X has "
                         f"{X.chunks[0]}, {name} has {a.chunks[0]}. Rechunk {name}: "
                         f"{name}.rechunk({{0: X.chunks[0]}})")


def network_spec(est: BaseRNN) -> tuple[Any, ...]:
    """What builds a network shaped like ``est.network_`` (its weights are loaded after)."""
    opts = tuple(sorted(est._network_options().items()))
    return (int(est._n_step_features()), int(est.hidden_size), int(est._n_outputs),
            est._loss, bool(est._sequence_output()), est._backend_name, est._dtype_name, opts)
