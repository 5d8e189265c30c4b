"""Sequence networks: a recurrent layer, then a dense layer on its last state (many-to-one) or on
every state (many-to-many), then a loss.

The recurrent layer is a :class:`rnnx.layers.Recurrent` of any cell in the registry
(:data:`rnnx.functional.registry.CELLS`), so a cell registered there trains here, in the
estimators and on the command line with no other change.
"""

from __future__ import annotations

from typing import Any

from .._backend import host_rng, namespace, on_input_device
from .._typing import Array, Device, DType
from ..functional._mask import as_step_mask
from ..functional.registry import register_cell
from ..layers import Dense, Recurrent
from ..losses import mse, softmax_cross_entropy
from ..optim import Optimizer, clip_grad_norm

__all__ = ["SequenceNetwork", "make_recurrent", "register_cell"]


def make_recurrent(cell: str, input_size: int, hidden_size: int, **kwargs: Any) -> Recurrent:
    """The recurrent layer of a network: :class:`~rnnx.layers.Recurrent` of ``cell`` (a key of
    :data:`rnnx.functional.registry.CELLS`) with ``kwargs`` (``num_layers``, ``nonlinearity``,
    ``return_sequences``, ``seed``, ``backend``...)."""
    return Recurrent(input_size, hidden_size, cell=cell, **kwargs)


class SequenceNetwork:
    """Recurrent layer -> dense layer -> loss, with a training step.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        ``features`` per step, recurrent state size, and outputs (classes or regression targets).
    cell : str
        Key of :data:`rnnx.functional.registry.CELLS` (``"rnn"``: Elman).
    loss : {"cross_entropy", "mse"}
        Softmax cross-entropy on integer labels, or mean squared error.
    sequence_output : bool
        False: many-to-one (the dense layer reads the final state ``(batch, hidden)``).
        True: many-to-many (it reads every state ``(batch, time, hidden)`` and targets are per step).
    seed : int or None
        One host generator draws the seeds of both layers, so a seed fixes every initial weight,
        bit for bit, on every backend.
    backend, device, dtype
        Where the parameters live.
    cell_options
        Passed to :class:`~rnnx.layers.Recurrent` (``nonlinearity``, ``num_layers``, ``init``,
        ``recurrent_init``...).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        cell: str = "rnn",
        loss: str = "cross_entropy",
        sequence_output: bool = False,
        output_init: str = "xavier",
        seed: int | None = None,
        backend: str = "numpy",
        device: Device = None,
        dtype: str | DType = "float64",
        **cell_options: Any,
    ) -> None:
        if loss not in ("cross_entropy", "mse"):
            raise ValueError(f"loss must be 'cross_entropy' or 'mse'; got {loss!r}")
        rng = host_rng(seed)
        # Two independent 63-bit seeds, drawn first so the recurrent layer's draws do not depend
        # on how many numbers the dense initialiser consumes (and vice versa).
        s_rec, s_out = (int(s) for s in rng.integers(0, 2**63 - 1, size=2))
        self.cell = cell
        self.loss_name = loss
        self.sequence_output = bool(sequence_output)
        self.recurrent = Recurrent(
            input_size, hidden_size, cell=cell, return_sequences=self.sequence_output,
            seed=s_rec, backend=backend, device=device, dtype=dtype, **cell_options,
        )
        # A bidirectional layer hands the dense layer both directions: (batch, 2*hidden).
        self.dense = Dense(self.recurrent.output_size, output_size, init=output_init, seed=s_out,
                           backend=backend, device=device, dtype=dtype)

    # -- parameters as one flat dict --------------------------------------------------------

    def parameters(self) -> dict[str, Array]:
        """``{"recurrent.<name>": array, "dense.<name>": array}`` (references, not copies)."""
        out = {f"recurrent.{k}": v for k, v in self.recurrent.params.items()}
        out.update({f"dense.{k}": v for k, v in self.dense.params.items()})
        return out

    def gradients(self) -> dict[str, Array]:
        """Gradients with the keys of :meth:`parameters`, after :meth:`loss_and_grad`."""
        out = {f"recurrent.{k}": v for k, v in self.recurrent.grads.items()}
        out.update({f"dense.{k}": v for k, v in self.dense.grads.items()})
        return out

    def load_parameters(self, params: dict[str, Array]) -> None:
        """Point the layers at the arrays in ``params`` (keys as in :meth:`parameters`)."""
        mine = self.parameters()
        if set(params) != set(mine):
            raise ValueError(f"parameters must have keys {sorted(mine)}; got {sorted(params)}")
        for k, v in params.items():
            layer, name = k.split(".", 1)
            target = self.recurrent if layer == "recurrent" else self.dense
            if tuple(v.shape) != tuple(mine[k].shape):
                raise ValueError(f"parameter {k!r} must have shape {tuple(mine[k].shape)}; got "
                                 f"{tuple(v.shape)}")
            target.params[name] = v

    # -- maths ------------------------------------------------------------------------------

    @on_input_device
    def forward(self, x: Array, *, steps: Array | None = None) -> Array:
        """Outputs (logits or predictions) for ``x (batch, time, features)``:
        ``(batch, outputs)``, or ``(batch, time, outputs)`` if ``sequence_output``; in ``x``'s
        namespace on its device.

        ``steps``: variable lengths, as integer lengths ``(batch,)`` or a boolean step mask
        ``(batch, time)`` (padding on either side); many-to-one then reads each sample's own
        last valid state.
        """
        if steps is None:
            return self.dense.forward(self.recurrent.forward(x))
        return self.dense.forward(self.recurrent.forward(x, mask=steps))

    __call__ = forward

    @on_input_device
    def loss_and_grad(self, x: Array, target: Array, *, mask: Array | None = None,
                      steps: Array | None = None) -> tuple[Array, Array]:
        """Forward, loss and backward through both layers (BPTT through the recurrent one).

        ``target`` is integer labels ``(batch,)``/``(batch, time)`` for cross-entropy, or floats
        with the output's shape for MSE; ``mask`` (bool over the output's leading axes) drops
        samples or steps. ``steps`` (lengths or a step mask, see :meth:`forward`) makes the
        recurrence skip padding; for a many-to-many network the padded steps also leave the
        loss (combined with ``mask``). Returns ``(loss, outputs)``; gradients are in
        :meth:`gradients`.
        """
        out = self.forward(x, steps=steps)
        if steps is not None and self.sequence_output:
            step_mask = as_step_mask(steps, x=x, xp=namespace(x))  # (B, T) bool
            mask = step_mask if mask is None else (mask & step_mask)
        if self.loss_name == "cross_entropy":
            loss, dout = softmax_cross_entropy(out, target, mask=mask)
        else:
            loss, dout = mse(out, target, mask=mask)
        self.recurrent.backward(self.dense.backward(dout))
        return loss, out

    @on_input_device
    def train_step(self, x: Array, target: Array, optimizer: Optimizer, *, clip_norm: float | None = None,
                   mask: Array | None = None, steps: Array | None = None) -> tuple[Array, Array]:
        """One optimisation step on a mini-batch; returns ``(loss, outputs)`` before the update
        (0-d array and outputs, on the parameters' device: no host sync)."""
        loss, out = self.loss_and_grad(x, target, mask=mask, steps=steps)
        grads = self.gradients()
        if clip_norm is not None:
            grads, _ = clip_grad_norm(grads, clip_norm)
        params = self.parameters()
        optimizer.step(params, grads)
        self.load_parameters(params)
        return loss, out
