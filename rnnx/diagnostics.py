"""Gradient diagnostics: how much of the loss's gradient reaches the hidden state at each step.

``||dL/dh_t||`` for ``t = 1 .. T`` is the picture of vanishing (or exploding) gradients: for a
loss on the last step only, an Elman cell's norms decay geometrically as ``t`` moves away from
``T`` (Bengio, Simard & Frasconi, "Learning long-term dependencies with gradient descent is
difficult", IEEE TNN 5 (1994); Pascanu, Mikolov & Bengio, ICML 2013, sec. 2), while an LSTM's
or GRU's stay far larger.

``dL/dh_t`` is the *total* gradient reaching ``h_t`` (through the output at ``t`` and through
every later step), recorded inside the same backward pass that computes the weight gradients:
one BPTT, no extra cost but keeping ``time`` arrays of ``(batch, hidden)``.

:func:`plot_grad_norms` is an edge function: it moves the norms to the host and imports
matplotlib inside its body.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._backend import atomic_path, namespace, on_input_device, to_numpy
from ._typing import Array
from .layers import Recurrent

if TYPE_CHECKING:
    from .models._base import BaseRNN
    from .models.network import SequenceNetwork

__all__ = ["estimator_grad_norms", "network_grad_norms", "plot_grad_norms", "state_grad_norms"]


@on_input_device
def state_grad_norms(layer: Recurrent, x: Array, dout: Array, *, h0: Array | None = None,
                     c0: Array | None = None, mask: Array | None = None,
                     per_sample: bool = False) -> dict[str, Array]:
    """``||dL/dh_t||`` at every step, for a loss whose gradient with respect to the layer's
    output is ``dout``.

    Parameters
    ----------
    layer : Recurrent (any cell), SimpleRNN, LSTM or GRU
        Its :meth:`forward` is run on ``x (batch, time, features)`` (with ``h0``/``c0``/
        ``mask``) and its backward fills ``layer.grads`` as usual.
    dout : array
        Gradient of forward's output: ``(batch, hidden)`` (final state: the classic "loss at the
        last step" picture) or ``(batch, time, hidden)``, per the layer's ``return_sequences``.
    per_sample : bool
        ``False``: the norm over the whole batch's ``(batch, hidden)`` gradient at each step,
        shape ``(time,)``. ``True``: one norm per sample, ``(batch, time)``.

    Returns
    -------
    dict
        ``{suffix: norms}`` with torch's suffixes (``"l0"``, ``"l0_reverse"``, ``"l1"``, ...;
        just ``"l0"`` for a single layer), in forward time order (index ``t`` is step ``t+1``),
        in ``x``'s namespace, on its device. For an LSTM this is the hidden state ``h_t``.
    """
    if not isinstance(layer, Recurrent):
        raise TypeError(f"layer must be an rnnx SimpleRNN, LSTM, GRU or Recurrent; got "
                        f"{type(layer).__name__}")
    states = layer.spec.states
    if c0 is not None and "c" not in states:
        raise ValueError(f"c0 is an LSTM state; this layer's cell {layer.cell!r} has none")
    layer.forward(x, *((h0, c0) if "c" in states else (h0,)), mask=mask)
    kept: dict[str, list] = {}
    layer.backward(dout, state_grads=kept)
    xp = namespace(x)
    out = {}
    for sfx, grads in kept.items():
        g = xp.stack(grads, axis=1)  # (B, T, H)
        if sfx.endswith("_reverse"):
            g = xp.flip(g, axis=1)  # (B, T, H): the reverse cell ran in reversed time
        out[sfx] = _norm(g, (2,) if per_sample else (0, 2), xp=xp)  # (B, T) or (T,)
    return out


@on_input_device
def network_grad_norms(network: SequenceNetwork, x: Array, target: Array, *, steps: Array | None = None,
                       per_sample: bool = False) -> dict[str, Array]:
    """:func:`state_grad_norms` of a :class:`rnnx.models.SequenceNetwork`'s recurrent layer for
    the network's own loss (cross-entropy or MSE) on ``x (batch, time, features)`` and
    ``target`` (as :meth:`~rnnx.models.SequenceNetwork.loss_and_grad` takes it), with ``steps``
    (lengths or a step mask) for variable lengths. Dropout is off (evaluation mode) while the
    norms are taken, so they describe the model that predicts. Results are in ``x``'s namespace,
    on its device; ``network.grads`` are overwritten."""
    from .functional._mask import as_step_mask
    from .losses import mse, softmax_cross_entropy

    rec = network.recurrent
    was = rec.training
    rec.eval()
    try:
        out = network.forward(x, steps=steps)  # (B, O) or (B, T, O)
        mask = None
        if steps is not None and network.sequence_output:
            mask = as_step_mask(steps, x=x, xp=namespace(x))  # (B, T)
        loss = softmax_cross_entropy if network.loss_name == "cross_entropy" else mse
        _, dout = loss(out, target, mask=mask)
        dh = network.dense.backward(dout)  # (B, D*H) or (B, T, D*H)
        return state_grad_norms(rec, x, dh, mask=steps, per_sample=per_sample)
    finally:
        rec.train(was)


def estimator_grad_norms(model: BaseRNN, X: Array, y: Array, *, lengths: Array | None = None,
                         per_sample: bool = False) -> dict[str, Array]:
    """:func:`network_grad_norms` of a fitted rnnx estimator (``RNNClassifier``,
    ``RNNRegressor``) on ``(X, y)`` as ``fit`` takes them (``y`` encoded as in training:
    class indices, or standardised targets). Norms are on the model's backend and device."""
    Xm, ym, steps = model.encode(X, y, lengths=lengths)  # NotFittedError before a fit
    return network_grad_norms(model.network_, Xm, ym, steps=steps, per_sample=per_sample)


def _norm(g: Any, axes: tuple[int, ...], *, xp: Any) -> Any:
    """Euclidean norm over ``axes`` without underflow: vanishing gradients reach 1e-25, whose
    square is below float32's smallest subnormal, so scale by the largest magnitude first."""
    big = xp.max(xp.abs(g), axis=axes, keepdims=True)  # (B, T, 1) or (1, T, 1)
    safe = xp.where(big > 0, big, 1.0)
    scaled = xp.sqrt(xp.sum((g / safe) ** 2, axis=axes, keepdims=True)) * big  # same shape
    return xp.reshape(scaled, tuple(s for i, s in enumerate(scaled.shape) if i not in axes))


def plot_grad_norms(norms: dict[str, Array], path: str | os.PathLike, *, title: str | None = None,
                    log: bool = True, styles: dict[str, dict] | None = None) -> None:
    """Plot ``{label: norms (time,)}`` (e.g. one :func:`state_grad_norms` result per cell kind,
    or its layers) against the step, on a log scale, and write the figure to ``path`` (PNG, SVG,
    PDF by extension) atomically: a temporary file in the same folder, then ``os.replace``.
    ``styles`` maps a label to matplotlib line options (``{"color": "C0", "ls": "--"}``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for label, values in norms.items():
        v = to_numpy(values)
        if v.ndim != 1:
            raise ValueError(f"norms[{label!r}] must be 1-D (time,); got shape {v.shape}")
        ax.plot(range(1, v.shape[0] + 1), v, label=label, **(styles or {}).get(label, {}))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel(r"$\|\partial L / \partial h_t\|$")
    ax.set_title(title or "Gradient reaching the hidden state at each step")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:  # 0o666 less the umask, like every other rnnx output
        fig.savefig(tmp, format=fmt)
