"""rnnx -> ONNX checked by an outside implementation (ONNX Runtime, float32; the onnx reference
evaluator, float64), and ONNX -> rnnx (from_onnx) round trips and refusals.

The export does not depend on the backend under test, so the module runs once, in the NumPy
session (``RNNX_BACKENDS`` unset or naming numpy), like the doc blocks.

Tolerances: float32 ONNX Runtime vs rnnx is 1e-5 absolute on outputs of order 1 (measured
deviations are 1e-7 .. 3e-7, docs/onnx.md: the same sums of at most ``4*hidden + features``
float32 products per step, in another order, over <= 8 steps); float64 against the reference
evaluator 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest

from ._selection import numpy_selected
from ._threads import one_thread  # noqa: F401  (autouse fixture)

if not numpy_selected():
    pytest.skip("the ONNX export is checked in the numpy session only", allow_module_level=True)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402
from onnx.reference.ops.op_rnn import RNN_14  # noqa: E402

from rnnx.datasets import load_digits_sequences  # noqa: E402
from rnnx.interop import from_onnx, to_onnx  # noqa: E402
from rnnx.models import (  # noqa: E402
    RNNClassifier,
    RNNRegressor,
    ScratchSimpleRNNClassifier,
    SequenceNetwork,
)

TOL32, TOL64 = 1e-5, 1e-10

VARIANTS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh"),
            ("gru_reset_before", "tanh")]
VARIANT_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru", "gru-reset-before"]
CONFIGS = [(1, False), (2, False), (1, True), (2, True)]
CONFIG_IDS = ["1layer", "2layers", "bidir", "2layers-bidir"]


class RNN(RNN_14):
    """The reference evaluator's RNN, taught ``Relu`` (it knows ``Tanh`` and ``Affine`` only)."""

    op_domain = ""

    def choose_act(self, name, alpha, beta):
        if name == "Relu":
            return lambda x: np.maximum(x, 0)
        return super().choose_act(name, alpha, beta)


def _ort(proto, **feeds):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _net(cell, nonlinearity, num_layers, bidirectional, *, sequence_output=False,
         dtype="float32", seed=3):
    return SequenceNetwork(3, 5, 2, cell=cell, nonlinearity=nonlinearity, num_layers=num_layers,
                           bidirectional=bidirectional, sequence_output=sequence_output,
                           seed=seed, dtype=dtype)


@pytest.mark.parametrize("sequence_output", [False, True], ids=["many2one", "many2many"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize(("cell", "nonlinearity"), VARIANTS, ids=VARIANT_IDS)
def test_onnxruntime_agrees_on_random_shapes(rng, cell, nonlinearity, num_layers, bidirectional,
                                             sequence_output):
    """ONNX Runtime's outputs equal rnnx's, without and with lengths (right padding, one
    sample of length 0 and one full)."""
    net = _net(cell, nonlinearity, num_layers, bidirectional, sequence_output=sequence_output)
    x = rng.standard_normal((6, 7, 3)).astype(np.float32)
    lengths = np.array([7, 0, 3, 1, 5, 6], dtype=np.int64)
    got = _ort(to_onnx(net), X=x)
    np.testing.assert_allclose(got, net.forward(x), rtol=0, atol=TOL32)
    got = _ort(to_onnx(net, lengths=True), X=x, lengths=lengths)
    want = net.forward(x, steps=lengths)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL32)


@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True)],
                         ids=["1layer", "2layers-bidir"])
@pytest.mark.parametrize(("cell", "nonlinearity"), VARIANTS, ids=VARIANT_IDS)
def test_float64_export_runs_in_the_reference_evaluator(rng, cell, nonlinearity, num_layers,
                                                        bidirectional):
    """ONNX Runtime has no float64 kernels for RNN/LSTM/GRU: the float64 export is checked by
    onnx's reference evaluator (which ignores sequence_lens, so without lengths)."""
    net = _net(cell, nonlinearity, num_layers, bidirectional, dtype="float64")
    x = rng.standard_normal((4, 6, 3))
    proto = to_onnx(net)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    (got,) = ReferenceEvaluator(proto, new_ops=[RNN]).run(None, {"X": x})
    np.testing.assert_allclose(got, net.forward(x), rtol=0, atol=TOL64)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_sequences()
    lengths = np.random.default_rng(0).integers(1, X.shape[1] + 1, size=240)
    return X[:240].astype(np.float32), y[:240], lengths


@pytest.mark.parametrize(("cell", "nonlinearity", "num_layers", "bidirectional"),
                         [("rnn", "relu", 1, False), ("lstm", "tanh", 2, True),
                          ("gru", "tanh", 1, True)], ids=["rnn-relu", "lstm-2layers-bidir",
                                                          "gru-bidir"])
def test_classifier_probabilities_on_digits(digits, tmp_path, cell, nonlinearity, num_layers,
                                            bidirectional):
    X, y, lengths = digits
    clf = RNNClassifier(cell=cell, nonlinearity=nonlinearity, num_layers=num_layers,
                        bidirectional=bidirectional, hidden_size=12, epochs=2, random_state=0,
                        dtype="float32").fit(X, y)
    path = tmp_path / "clf.onnx"
    proto = to_onnx(clf, path, lengths=True)
    assert onnx.load(path) == proto
    onnx.checker.check_model(proto, full_check=True)
    got = _ort(proto, X=X, lengths=lengths)
    np.testing.assert_allclose(got, clf.predict_proba(X, lengths=lengths), rtol=0, atol=TOL32)
    assert (clf.classes_[got.argmax(axis=1)] == clf.predict(X, lengths=lengths)).mean() > 0.99
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["classes"] == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"


def test_scratch_classifier_on_univariate_2d_input(digits):
    """A model fitted on 2-D X (univariate sequences) exports a 2-D input ``(batch, time)``."""
    X, y, _ = digits
    X2 = X[:, :, 0] + X[:, :, 3]  # (n, 8)
    clf = ScratchSimpleRNNClassifier(hidden_size=8, epochs=2, random_state=0,
                                     dtype="float32").fit(X2, y)
    proto = to_onnx(clf)
    assert len(proto.graph.input[0].type.tensor_type.shape.dim) == 2
    np.testing.assert_allclose(_ort(proto, X=X2), clf.predict_proba(X2), rtol=0, atol=TOL32)


@pytest.mark.parametrize("sequence_output", [False, True], ids=["many2one", "many2many"])
def test_regressor_predictions_are_unscaled(digits, sequence_output):
    """The regressor's target un-scaling (``out * scale + mean``) and its output shape (1-D
    targets give 1-D predictions) are in the graph."""
    X, _, lengths = digits
    y = (X.sum(axis=2) * 3.0 + 10.0 if sequence_output else X.sum(axis=(1, 2)) + 50.0)
    reg = RNNRegressor(cell="gru", hidden_size=8, epochs=2, random_state=0, dtype="float32",
                       sequence_output=sequence_output).fit(X, y)
    got = _ort(to_onnx(reg, lengths=True), X=X, lengths=lengths)
    want = reg.predict(X, lengths=lengths)
    assert got.shape == want.shape == y.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL32 * float(np.abs(want).max()))


def test_a_float64_model_exports_to_float32_for_onnxruntime(digits):
    """``dtype="float32"`` casts a float64 model's weights: ONNX Runtime then runs it, within
    1e-5 of the float64 model (measured 2e-7 .. 4e-7: the weights' and inputs' rounding)."""
    X, y, lengths = digits
    X64 = X.astype(np.float64)
    clf = RNNClassifier(cell="lstm", hidden_size=12, epochs=2, random_state=0).fit(X64, y)
    assert clf.network_.dense.params["w"].dtype == np.float64
    proto = to_onnx(clf, lengths=True, dtype="float32")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    got = _ort(proto, X=X, lengths=lengths)
    np.testing.assert_allclose(got, clf.predict_proba(X64, lengths=lengths), rtol=0, atol=TOL32)
    with pytest.raises(ValueError, match="dtype must be 'float32', 'float64' or None"):
        to_onnx(clf, dtype="float16")


def test_models_on_another_backend_export_and_import():
    """Weights travel through the host: a model on array-api-strict's non-default device exports
    the same graph as on NumPy, and imports onto that device."""
    strict = pytest.importorskip("array_api_strict")
    dev = strict.Device("device1")
    net = SequenceNetwork(3, 4, 2, cell="gru", bidirectional=True, seed=5, dtype="float32",
                          backend="array_api_strict", device=dev)
    ref = SequenceNetwork(3, 4, 2, cell="gru", bidirectional=True, seed=5, dtype="float32")
    assert to_onnx(net) == to_onnx(ref)
    layer = from_onnx(to_onnx(ref), backend="array_api_strict", device=dev)
    assert all(v.device == dev for v in layer.params.values())


@pytest.mark.filterwarnings("ignore")  # the TorchScript exporter's deprecation notices
@pytest.mark.parametrize("module", ["RNN", "LSTM", "GRU"])
def test_import_of_torch_exported_models(rng, module):
    """An outside exporter: ``torch.onnx.export`` of a stacked bidirectional torch module
    (``Constant`` weights, an ``Expand``-ed zero initial state) imports into an rnnx layer that
    gives torch's outputs (float32, 1e-5)."""
    torch = pytest.importorskip("torch")
    import io

    torch.manual_seed(0)
    m = getattr(torch.nn, module)(3, 4, num_layers=2, bidirectional=True, batch_first=True).eval()
    x = torch.from_numpy(rng.standard_normal((2, 5, 3)).astype(np.float32))
    buf = io.BytesIO()
    try:
        torch.onnx.export(m, (x,), buf, dynamo=False, opset_version=17)
    except Exception as exc:  # the TorchScript exporter is on its way out of torch
        pytest.skip(f"torch.onnx.export(dynamo=False) unavailable: {exc}")
    layer = from_onnx(onnx.load_from_string(buf.getvalue()), return_sequences=True)
    with torch.no_grad():
        want = m(x)[0].numpy()
    np.testing.assert_allclose(layer.forward(x.numpy()), want, rtol=0, atol=TOL32)


def test_cells_without_an_operator_are_refused():
    with pytest.raises(ValueError,
                       match=r"'ln_lstm'.*no ONNX operator.*rnn, lstm, gru, gru_reset_before"):
        to_onnx(SequenceNetwork(3, 4, 2, cell="ln_lstm", seed=0))
    with pytest.raises(TypeError, match="fitted RNNClassifier"):
        to_onnx(object())


# -- import ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("num_layers", "bidirectional"), CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize(("cell", "nonlinearity"), VARIANTS, ids=VARIANT_IDS)
def test_round_trip_gives_the_same_recurrent_outputs(rng, tmp_path, cell, nonlinearity,
                                                     num_layers, bidirectional):
    """to_onnx -> from_onnx is lossless: the same weights, so bit-equal outputs and states."""
    net = _net(cell, nonlinearity, num_layers, bidirectional, dtype="float64")
    path = tmp_path / "net.onnx"
    to_onnx(net, path)
    layer = from_onnx(path, return_sequences=True)
    assert (layer.cell, layer.nonlinearity, layer.num_layers, layer.bidirectional) == (
        cell, nonlinearity, num_layers, bidirectional)
    assert set(layer.params) == set(net.recurrent.params)
    for k, v in net.recurrent.params.items():
        np.testing.assert_array_equal(layer.params[k], v)
    x = rng.standard_normal((3, 5, 3))
    net.recurrent.return_sequences = True
    np.testing.assert_array_equal(layer.forward(x, mask=np.array([5, 2, 0])),
                                  net.recurrent.forward(x, mask=np.array([5, 2, 0])))


def _edit(proto, **attrs):
    """A copy of ``proto`` with the first recurrent node's attributes set to ``attrs``."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    node = next(n for n in out.graph.node if n.op_type in ("RNN", "LSTM", "GRU"))
    for name, value in attrs.items():
        kept = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(helper.make_attribute(name, value))
    return out


@pytest.mark.parametrize(("cell", "attrs", "match"), [
    ("lstm", {"clip": 3.0}, "clip=3.0"),
    ("lstm", {"input_forget": 1}, "input_forget=1"),
    ("lstm", {"activations": ["Sigmoid", "Tanh", "Relu"]}, "activations="),
    ("gru", {"activations": ["HardSigmoid", "Tanh"]}, "activations="),
    ("rnn", {"activation_alpha": [0.5]}, "activation_alpha"),
    ("rnn", {"direction": "reverse"}, "direction='reverse'"),
    ("rnn", {"hidden_size": 7}, "hidden_size=7"),
], ids=["clip", "input_forget", "lstm-activations", "gru-activations",
        "activation_alpha", "reverse", "hidden_size"])
def test_what_rnnx_does_not_implement_is_refused(cell, attrs, match):
    proto = to_onnx(_net(cell, "tanh", 1, False))
    from_onnx(proto)  # the unedited export loads
    with pytest.raises(ValueError, match=match):
        from_onnx(_edit(proto, **attrs))


def _set_gru(proto, linear_before_reset, *, nodes=None):
    """A copy of ``proto`` with the GRU nodes' ``linear_before_reset`` set (``None``: removed,
    ONNX's default 0), on every GRU node or on those of index ``nodes``."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for k, node in enumerate(n for n in out.graph.node if n.op_type == "GRU"):
        if nodes is not None and k not in nodes:
            continue
        kept = [a for a in node.attribute if a.name != "linear_before_reset"]
        del node.attribute[:]
        node.attribute.extend(kept)
        if linear_before_reset is not None:
            node.attribute.append(helper.make_attribute("linear_before_reset",
                                                        linear_before_reset))
    return out


@pytest.mark.parametrize("unset", [False, True], ids=["set-to-0", "default"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), CONFIGS, ids=CONFIG_IDS)
def test_reset_before_gru_nodes_import_as_gru_reset_before(rng, num_layers, bidirectional,
                                                          unset):
    """An outside reset-before GRU: a torch-layout GRU's export with every node switched to
    ``linear_before_reset=0`` (set, or left to ONNX's default 0), so ``Wb`` and ``Rb`` are both
    non-zero. ONNX Runtime runs that graph; the imported ``gru_reset_before`` layer, given the
    same lengths, gives its recurrent states (float32, 1e-5): ``Rb``'s candidate block adds into
    ``b`` outside the reset product, as ONNX computes it."""
    net = _net("gru", "tanh", num_layers, bidirectional, sequence_output=True)
    proto = _set_gru(to_onnx(net, lengths=True), None if unset else 0)
    proto.graph.output.append(helper.make_tensor_value_info("states", onnx.TensorProto.FLOAT,
                                                            None))
    layer = from_onnx(proto, return_sequences=True)
    assert (layer.cell, layer.num_layers, layer.bidirectional) == (
        "gru_reset_before", num_layers, bidirectional)
    for k in range(num_layers):  # Wb + Rb: the sum of torch's two biases
        p = net.recurrent.layer_params(k, False)
        np.testing.assert_allclose(layer.layer_params(k, False)["b"], p["b_ih"] + p["b_hh"],
                                   rtol=0, atol=1e-7)
    x = rng.standard_normal((6, 7, 3)).astype(np.float32)
    lengths = np.array([7, 0, 3, 1, 5, 6], dtype=np.int64)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(["states"], {"X": x, "lengths": lengths})[0]  # (batch, time, dirs*hidden)
    want = layer.forward(x, mask=lengths)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL32)
    # ... and not what the reset-after GRU with the same weights computes (the test can fail).
    assert np.abs(got - net.recurrent.forward(x, mask=lengths)).max() > 1e-3


def test_gru_nodes_of_both_variants_are_not_one_stack():
    proto = _set_gru(to_onnx(_net("gru", "tanh", 2, False)), 0, nodes={1})
    with pytest.raises(ValueError, match="is a 'gru_reset_before' layer, the nodes before it "
                                         "'gru' layers"):
        from_onnx(proto)


def test_peepholes_are_refused_unless_zero():
    proto = to_onnx(_net("lstm", "tanh", 1, False))
    node = next(n for n in proto.graph.node if n.op_type == "LSTM")
    inputs = list(node.input) + [""] * (8 - len(node.input))
    inputs[7] = "P"
    del node.input[:]
    node.input.extend(inputs)
    proto.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 15), np.float32), "P"))
    from_onnx(proto)
    proto.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.ones((1, 15), np.float32),
                                                                 "P"))
    with pytest.raises(ValueError, match="peepholes P"):
        from_onnx(proto)


def test_recurrent_nodes_that_are_not_one_stack_are_refused():
    """Two LSTMs side by side on the same input (not a stack) are refused, not read as one."""
    proto = to_onnx(_net("lstm", "tanh", 2, False))
    second = [n for n in proto.graph.node if n.op_type == "LSTM"][1]
    second.input[0] = "X_tbf"
    with pytest.raises(ValueError, match="does not read the output Y"):
        from_onnx(proto)


def test_the_input_has_dynamic_batch_and_time():
    proto = to_onnx(_net("gru", "tanh", 1, False), lengths=True)
    x, lengths = proto.graph.input
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == [
        "batch", "time", 3]
    assert [d.dim_param for d in lengths.type.tensor_type.shape.dim] == ["batch"]
    assert lengths.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert {o.version for o in proto.opset_import if o.domain == ""} == {17}


def test_a_model_without_a_recurrent_node_is_refused():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    with pytest.raises(ValueError, match="no RNN, LSTM or GRU node"):
        from_onnx(helper.make_model(graph))
