"""NeuralNetwork spec -> IR: op types, inferred shapes, weights, inputs, never crashing."""

from __future__ import annotations

import time
import warnings

import coremltools as ct
import nn_models
import numpy as np
import pytest
from coremltools.models import datatypes
from coremltools.models.neural_network import NeuralNetworkBuilder
from coremltools.proto import FeatureTypes_pb2, Model_pb2, NeuralNetwork_pb2

from anedoctor.ir import Graph
from anedoctor.loaders.neuralnetwork import graph_from_neuralnetwork


def translate(spec) -> tuple[Graph, list[str]]:
    notes: list[str] = []
    kind = spec.WhichOneof("Type")
    return graph_from_neuralnetwork(getattr(spec, kind), spec.description, "main", notes), notes


def by_name(graph: Graph) -> dict:
    return {op.name: op for op in graph.ops}


def out_shape(op, i=0):
    return op.outputs[i].type.shape


@pytest.fixture(scope="module")
def classifier():
    spec, w = nn_models.legacy_classifier()
    return translate(spec) + (w,)


def test_legacy_classifier_ops_shapes_and_weights(classifier):
    g, notes, w = classifier
    assert g.opset == "" and all(op.opset == "" for op in g.ops)
    assert [(op.layer_type, op.type) for op in g.ops] == [
        ("preprocessing", "nn.preprocessing"),
        ("convolution", "conv"),
        ("batchnorm", "batch_norm"),
        ("activation", "leaky_relu"),
        ("pooling", "max_pool"),
        ("pooling", "reduce_mean"),
        ("flatten", "reshape"),
        ("innerProduct", "linear"),
        ("softmax", "softmax"),
    ]
    ops = by_name(g)
    assert g.inputs[0].type.shape == (1, 3, 16, 16) and g.input_specs[0].image
    assert out_shape(ops["conv"]) == (1, 8, 8, 8)  # 'same' padding, stride 2
    assert out_shape(ops["pool"]) == (1, 8, 4, 4)
    assert out_shape(ops["gap"]) == (1, 8, 1, 1)
    assert out_shape(ops["flat"]) == (1, 128, 1, 1)
    assert out_shape(ops["fc"]) == (1, 4, 1, 1)
    assert [o.name for o in g.outputs] == ["probs"] and g.outputs[0].type.shape == (1, 4, 1, 1)

    conv = ops["conv"]
    assert conv.param("pad_type") == "same" and list(conv.param("strides")) == [2, 2] and conv.param("groups") == 1
    weight = conv.param("weight")
    assert weight.shape == (8, 3, 3, 3) and conv.input("weight").type.dtype == "fp32"
    np.testing.assert_array_equal(weight, w["conv_w"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(ops["fc"].param("weight"), w["fc_w"])
    assert ops["fc"].param("bias").shape == (4,)
    assert ops["act"].param("alpha") == pytest.approx(0.1)
    assert ops["softmax"].param("axis") == -3

    pre = g.ops[0]
    assert pre.name == "preprocessing:image" and conv.input("x") is pre.outputs[0]
    assert pre.param("scale") == pytest.approx(1 / 255)
    np.testing.assert_array_equal(pre.param("bias").ravel(), [-3, -2, -1])  # BGR order
    assert any("classifier with 4 class labels" in n for n in notes)


def test_legacy_rank5_layers():
    g, notes = translate(nn_models.legacy_ops())
    ops = by_name(g)
    expected = {
        "add": ("add", (4, 6, 6)),
        "scalar_mul": ("mul", (4, 6, 6)),
        "avg": ("nn.average", (4, 6, 6)),
        "add3": ("nn.add", (4, 6, 6)),
        "cat": ("concat", (8, 6, 6)),
        "split": ("split", (4, 6, 6)),
        "slice": ("slice_by_index", (4, 6, 2)),
        "reshape": ("reshape", (2, 12, 6)),
        "permute": ("transpose", (6, 6, 4)),
        "pad": ("pad", (4, 9, 9)),
        "up": ("upsample_bilinear", (4, 12, 18)),
        "crop": ("crop", (4, 4, 4)),
        "rsqrt": ("rsqrt", (4, 6, 6)),
        "reduce": ("reduce_mean", (4, 1, 1)),
        "s2d": ("space_to_depth", (16, 3, 3)),
        "l2": ("l2_norm", (4, 6, 6)),
        "lrn": ("local_response_norm", (4, 6, 6)),
        "mvn": ("instance_norm", (4, 6, 6)),
        "scale": ("nn.scale", (4, 6, 6)),
        "bias": ("add", (4, 6, 6)),
        "vec_fc": ("linear", (3,)),
        "vec_softmax": ("softmax", (3,)),
    }
    assert {n: (ops[n].type, out_shape(ops[n])) for n in expected} == expected
    assert not notes
    assert g.inputs[0].type.dtype == "fp64"  # the builder's default array type is DOUBLE
    assert all(o.type.dtype == "fp32" for op in g.ops for o in op.outputs)
    assert len(ops["split"].outputs) == 2 and out_shape(ops["split"], 1) == (4, 6, 6)
    assert list(ops["permute"].param("perm")) == [1, 2, 0]
    assert list(ops["pad"].param("pad")) == [3, 0, 1, 2] and ops["pad"].param("mode") == "reflect"
    # a scale layer with a bias is no single MIL op: it keeps its own name, its operands broadcast per channel
    assert ops["scale"].input("y").type.shape == (4, 1, 1) and ops["scale"].input("bias").type.shape == (4, 1, 1)
    assert [v.name for v in ops["avg"].inputs["values"]] == ["x", "sum", "scaled"]
    assert ops["scalar_mul"].param("y") == 2.0


@pytest.fixture(scope="module")
def nd():
    spec, w = nn_models.nd_ops()
    return translate(spec) + (w,)


def test_nd_and_broadcastable_layers(nd):
    g, notes, w = nd
    ops = by_name(g)
    expected = {
        "mm": ("matmul", (2, 3, 5)),
        "mm_w": ("linear", (2, 3, 6)),
        "badd": ("add", (2, 3, 5)),
        "const": ("load_constant", (3, 1)),
        "bmul": ("mul", (2, 3, 4)),
        "cat": ("concat", (2, 3, 8)),
        "rs": ("reshape", (6, 4)),
        "tr": ("transpose", (4, 2, 3)),
        "ss": ("slice_by_index", (2, 2, 2)),
        "rm": ("reduce_mean", (2, 4)),
        "smx": ("softmax", (2, 3, 4)),
        "ed": ("expand_dims", (1, 2, 3, 4, 1)),
        "sq": ("squeeze", (2, 3, 4, 1)),
        "emb": ("gather", (7, 8)),
        "gather": ("gather", (2, 7, 1, 4)),
        "f2d": ("reshape", (2, 12)),
        "tile": ("tile", (2, 6, 4)),
        "topk": ("topk", (2, 3, 2)),
        "argmax": ("reduce_argmax", (2, 4)),
        "cpad": ("pad", (2, 5, 6)),
        "ln": ("layer_norm", (2, 3, 4)),
        "where": ("select", (2, 3, 4)),
        "onehot": ("one_hot", (7, 1, 10)),
        "sd": ("slice_by_index", (None, 3, 4)),
    }
    assert {n: (ops[n].type, out_shape(ops[n])) for n in expected} == expected
    assert not notes
    assert [out_shape(ops["split"], i) for i in range(3)] == [(2, 3, 2), (2, 3, 2), (2, 3, 4)]
    assert [v.name for v in ops["mm"].runtime_inputs()] == ["a", "m"]
    mm_w = ops["mm_w"]
    assert [v.name for v in mm_w.runtime_inputs()] == ["a"]
    np.testing.assert_array_equal(mm_w.param("weight"), w["mm_w"].T)  # x @ W + b with W stored as (out, in)
    assert mm_w.param("bias").shape == (6,)
    emb = ops["emb"]
    assert emb.param("is_lookup") is True and emb.input("indices").name == "ids"
    np.testing.assert_array_equal(emb.param("x"), w["emb_w"].T)  # (vocab, embedding) rows
    assert ops["ln"].param("gamma").shape == (3, 4) and list(ops["ln"].param("axes")) == [-2, -1]
    assert ops["sd"].input("begin").name == "ids" and not ops["sd"].input("begin").is_const
    assert list(ops["rs"].param("shape")) == [6, 4]


def test_recurrent_layers():
    spec, w = nn_models.recurrent()
    g, notes = translate(spec)
    ops = by_name(g)
    lstm = ops["lstm"]
    assert (lstm.type, lstm.layer_type) == ("lstm", "uniDirectionalLSTM")
    assert [v.name for v in lstm.runtime_inputs()] == ["seq", "h0", "c0"]
    assert [o.type.shape for o in lstm.outputs] == [(5,), (5,), (5,)]  # rank-5 mapping: (C,) in, (H,) out
    np.testing.assert_array_equal(lstm.param("weight_ih"), np.concatenate(w["wx"]))  # i, f, o, z
    assert lstm.param("weight_hh").shape == (20, 5) and lstm.param("bias").shape == (20,)
    assert lstm.param("peephole").shape == (15,) and lstm.param("output_sequence") is True
    assert (lstm.param("recurrent_activation"), lstm.param("cell_activation")) == ("sigmoid", "tanh")

    bi = ops["bilstm"]
    assert bi.param("direction") == "bidirectional" and len(bi.outputs) == 5
    assert out_shape(bi) == (10,) and bi.param("weight_ih_back").shape == (20, 3)

    gru = ops["gru"]
    assert gru.type == "gru" and gru.param("recurrent_activation") == "sigmoid_hard"
    zro = w["wx"][:3]  # the builder takes update, reset, output; MIL wants reset, output, update
    np.testing.assert_array_equal(gru.param("weight_ih"), np.concatenate([zro[1], zro[2], zro[0]]))
    assert ops["rnn"].type == "rnn" and ops["rnn"].param("weight_hh").shape == (5, 5)
    assert not notes


def test_custom_layer_keeps_class_and_parameters():
    g, notes = translate(nn_models.custom_layer())
    op = g.ops[0]
    assert (op.type, op.layer_type) == ("custom", "custom")
    assert op.attrs["class_name"] == "MyFancyOp" and op.attrs["parameters"] == {"gain": 2.5}
    assert [v.name for v in op.runtime_inputs()] == ["x"]
    np.testing.assert_array_equal(op.param("weight0"), [1, 2, 3])
    assert out_shape(op) is None and out_shape(g.ops[1]) is None  # unknown, not an exception
    assert any("MyFancyOp" in n for n in notes)


def test_quantized_weights_keep_storage_dtype_and_dequantize():
    spec, expected = nn_models.quantized()
    g, notes = translate(spec)
    lin8, lut4 = g.ops
    assert lin8.input("weight").type.dtype == "uint8" and lut4.input("weight").type.dtype == "uint4"
    np.testing.assert_allclose(lin8.param("weight"), expected["lin8"])
    np.testing.assert_allclose(lut4.param("weight"), expected["lut4"])
    assert lut4.input("weight").type.nbytes == 6  # 12 four-bit values
    assert not notes


def test_fp16_weights():
    spec, w = nn_models.legacy_classifier()
    wp = spec.neuralNetworkClassifier.layers[0].convolution.weights
    values = np.array(wp.floatValue, np.float32)
    del wp.floatValue[:]
    wp.float16Value = values.astype(np.float16).tobytes()
    conv = by_name(translate(spec)[0])["conv"]
    assert conv.input("weight").type.dtype == "fp16"
    np.testing.assert_array_equal(conv.param("weight"), w["conv_w"].transpose(3, 2, 0, 1).astype(np.float16))


def test_flexible_inputs():
    g, _ = translate(nn_models.flexible())
    r, e = g.input_specs
    assert (r.flexibility, r.default_shape) == ("range", (1, 8, 16))
    assert (e.flexibility, e.default_shape) == ("enumerated", (2, 3))
    assert sorted(e.enumerated_shapes) == [(2, 3), (4, 3), (6, 3)]
    assert [v.type.shape for v in g.inputs] == [(1, 8, None), (None, 3)]  # the dims that vary are unknown
    assert [out_shape(op) for op in g.ops] == [(1, 8, None), (None, 3)]

    g, _ = translate(nn_models.flexible_image())
    spec = g.input_specs[0]
    assert spec.image and spec.flexibility == "range" and spec.default_shape == (1, 1, 32, 32)
    assert g.inputs[0].type.shape == (1, 1, 32, None)
    assert g.ops[0].name == "preprocessing:img" and g.ops[0].param("bias").ravel().tolist() == [-0.5]


def test_torch_module_converted_to_neuralnetwork():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            y = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            y = torch.cat([y, y], 1)[:, :8]
            return torch.softmax(self.fc(y.reshape(1, -1)), -1) + 1.0

    net = Net().eval()
    example = torch.rand(1, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(
            torch.jit.trace(net, example), inputs=[ct.TensorType(shape=example.shape)], convert_to="neuralnetwork"
        )
    g, notes = translate(mlmodel.get_spec())
    assert [op.type for op in g.ops] == [
        "conv",
        "relu",
        "max_pool",
        "concat",
        "slice_by_index",
        "reshape",
        "linear",
        "softmax",
        "add",
    ]
    ops = g.ops
    assert [out_shape(op) for op in ops[:7]] == [
        (1, 8, 8, 8),
        (1, 8, 8, 8),
        (1, 8, 4, 4),
        (1, 16, 4, 4),
        (1, 8, 4, 4),
        (1, 128),
        (1, 10),
    ]
    np.testing.assert_allclose(ops[0].param("weight"), net.conv.weight.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(ops[6].param("weight"), net.fc.weight.detach().numpy(), rtol=1e-6)
    assert g.outputs[0].type.shape == (1, 10) and not notes


def every_layer_spec():
    """One layer of every NeuralNetworkLayer type, each with default parameters."""
    spec = Model_pb2.Model()
    spec.specificationVersion = 5
    for name in ("a", "b", "c"):
        f = spec.description.input.add()
        f.name = name
        f.type.multiArrayType.shape.extend([2, 3, 4, 5])
        f.type.multiArrayType.dataType = FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    spec.neuralNetwork.arrayInputShapeMapping = NeuralNetwork_pb2.EXACT_ARRAY_MAPPING
    types = [f.name for f in NeuralNetwork_pb2.NeuralNetworkLayer.DESCRIPTOR.oneofs_by_name["layer"].fields]
    for lt in types:
        layer = spec.neuralNetwork.layers.add()
        layer.name = lt
        layer.input.extend(["a", "b", "c"])
        layer.output.append(lt + "_out")
        getattr(layer, lt).SetInParent()
    return spec, types


def test_every_layer_type_translates_without_crashing():
    spec, types = every_layer_spec()
    g, notes = translate(spec)
    assert [op.layer_type for op in g.ops] == types and len(types) > 150
    assert not any("no MIL equivalent" in n for n in notes)  # every layer type has a handler
    # default (empty) parameters make two layers meaningless: they keep their nn.* name and unknown shapes
    failed = {n.split("'")[1] for n in notes if "could not be translated" in n}
    assert failed == {"activation", "reorganizeData"}
    assert all(by_name(g)[lt].type == "nn." + lt and out_shape(by_name(g)[lt]) is None for lt in failed)
    assert all(op.outputs and op.outputs[0].type.dtype == "fp32" for op in g.ops)
    assert by_name(g)["addBroadcastable"].type == "add" and out_shape(by_name(g)["addBroadcastable"]) == (2, 3, 4, 5)


def test_malformed_layers_degrade_to_unknown_shapes():
    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 4))], [("y", None)], disable_rank5_shape_mapping=True)
    b.add_inner_product(
        "fc",
        W=np.ones((3, 4)),
        b=None,
        input_channels=4,
        output_channels=3,
        has_bias=False,
        input_name="x",
        output_name="h",
    )
    b.add_activation("y", "RELU", "missing_blob", "y")
    spec = b.spec
    del spec.neuralNetwork.layers[0].innerProduct.weights.floatValue[-1]  # 11 values for a 3x4 matrix
    g, notes = translate(spec)
    fc, relu = g.ops
    assert fc.input("weight") is None and out_shape(fc) == (1, 3)
    assert any("'fc'" in n and "left out" in n for n in notes)
    assert relu.input("x").type.shape is None and out_shape(relu) is None


def test_output_tensor_shape_wins_over_inference():
    spec = nn_models.custom_layer()
    t = spec.neuralNetwork.layers[0].outputTensor.add()
    t.rank = 4
    t.dimValue.extend([1, 2, 8, 8])
    g, _ = translate(spec)
    assert out_shape(g.ops[0]) == (1, 2, 8, 8) and out_shape(g.ops[1]) == (1, 2, 8, 8)


def test_branch_bodies_become_blocks():
    b = NeuralNetworkBuilder(
        [("x", datatypes.Array(2, 3)), ("cond", datatypes.Array(1))], [("y", None)], disable_rank5_shape_mapping=True
    )
    layer = b.add_branch("branch", "cond")
    NeuralNetworkBuilder(nn_spec=layer.branch.ifBranch, disable_rank5_shape_mapping=True).add_activation(
        "inner", "RELU", "x", "y"
    )
    g, _ = translate(b.spec)
    op = g.ops[0]
    assert op.type == "cond" and op.input("pred").name == "cond"
    assert [o.name for o in op.blocks[0].ops] == ["inner"] and op.blocks[0].ops[0].outputs[0].type.shape == (2, 3)
    assert op.blocks[1].ops == []


def test_five_thousand_layers_translate_quickly():
    spec = nn_models.conv_chain(5000)
    start = time.perf_counter()
    g, notes = translate(spec)
    elapsed = time.perf_counter() - start
    assert len(g.ops) == 5000 and g.outputs[0].type.shape == (1, 8, 32, 32) and not notes
    assert elapsed < 3.0, f"5,000 layers took {elapsed:.2f}s"
