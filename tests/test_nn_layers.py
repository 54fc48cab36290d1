"""Every NeuralNetwork-only kernel the executor registers (``nn.*``) runs a real layer correctly.

Each case builds a one-layer NeuralNetwork with coremltools' NeuralNetworkBuilder, runs it with
the reference executor, and compares with a NumPy statement of the layer's Core ML semantics
(NeuralNetwork.proto). A kernel registered without a case here fails the coverage test.
"""

from __future__ import annotations

import numpy as np
import pytest
from coremltools.models import datatypes
from coremltools.models.neural_network import NeuralNetworkBuilder

from anedoctor.execute import run
from anedoctor.execute.kernels import OPS
from anedoctor.loaders import load

RNG = np.random.default_rng(7)
X = RNG.standard_normal((1, 3, 4, 5)).astype(np.float32)
Y = RNG.standard_normal((1, 3, 4, 5)).astype(np.float32)


def builder(inputs: dict[str, tuple[int, ...]], out_shape: tuple[int, ...]) -> NeuralNetworkBuilder:
    return NeuralNetworkBuilder(
        [(n, datatypes.Array(*s)) for n, s in inputs.items()],
        [("out", datatypes.Array(*out_shape))],
        disable_rank5_shape_mapping=True,
    )


def elementwise(mode: str):
    b = builder({"x": X.shape, "y": Y.shape, "z": X.shape}, X.shape)
    b.add_elementwise("layer", ["x", "y", "z"], "out", mode)
    return b


def unary(mode: str, **kw):
    b = builder({"x": X.shape}, X.shape)
    b.add_unary("layer", "x", "out", mode, scale=2.0, shift=3.0, **kw)
    return b


def scale():
    b = builder({"x": X.shape}, X.shape)
    b.add_scale(
        "layer",
        np.arange(1, 4, dtype=np.float32),
        np.full(3, 0.5, np.float32),
        True,
        "x",
        "out",
        shape_scale=[3, 1, 1],
        shape_bias=[3, 1, 1],
    )
    return b


def dot():
    b = builder({"x": (1, 3, 1, 1), "y": (1, 3, 1, 1)}, (1, 1, 1, 1))
    b.add_elementwise("layer", ["x", "y"], "out", "DOT")
    return b


def batchnorm():
    b = builder({"x": X.shape}, X.shape)
    b.add_batchnorm(
        "layer",
        3,
        np.array([1, 2, 3], np.float32),
        np.array([0, 1, -1], np.float32),
        np.zeros(3, np.float32),
        np.ones(3, np.float32),
        input_name="x",
        output_name="out",
    )
    b.spec.neuralNetwork.layers[0].batchnorm.computeMeanVar = True  # statistics of the input itself, not stored
    return b


def mvn():
    b = builder({"x": X.shape}, X.shape)
    b.add_mvn("layer", "x", "out", across_channels=False, normalize_variance=False)
    return b


def embedding():
    b = NeuralNetworkBuilder([("x", datatypes.Array(4, 1, 1, 1))], [("out", datatypes.Array(4, 6, 1, 1))])
    b.add_embedding("layer", EMB_W, EMB_B, 10, 6, True, "x", "out")
    return b


def triangular(upper: bool):
    b = builder({"x": (4, 5)}, (4, 5))
    # k > 0 above / k < 0 below the diagonal: the band_part translation cannot say these
    (b.add_upper_triangular if upper else b.add_lower_triangular)("layer", "x", "out", k=1 if upper else -1)
    return b


def broadcast(kind: str):
    if kind == "like":
        b = builder({"x": (1, 3, 1, 5), "y": X.shape}, X.shape)
        b.add_broadcast_to_like("layer", ["x", "y"], "out")
    elif kind == "static":
        b = builder({"x": (1, 3, 1, 5)}, X.shape)
        b.add_broadcast_to_static("layer", "x", "out", list(X.shape))
    else:
        b = builder({"x": (1, 3, 1, 5), "shape": (4,)}, X.shape)
        b.add_broadcast_to_dynamic("layer", ["x", "shape"], "out")
    return b


def sequence_repeat():
    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 4, 5))], [("out", datatypes.Array(3, 4, 5))])
    b.add_sequence_repeat("layer", 3, "x", "out")
    return b


def preprocessing():
    b = NeuralNetworkBuilder([("x", datatypes.Array(3, 4, 5))], [("out", datatypes.Array(3, 4, 5))])
    b.add_activation("layer", "LINEAR", "x", "out")
    b.set_pre_processing_parameters(
        image_input_names=["x"], red_bias=-1.0, green_bias=-2.0, blue_bias=-3.0, image_scale=0.5
    )
    return b


EMB_W = RNG.standard_normal((6, 10)).astype(np.float32)
EMB_B = RNG.standard_normal(6).astype(np.float32)
IDS = np.array([3, 0, 9, 3], np.float32).reshape(4, 1, 1, 1)
BIAS = np.array([-1.0, -2.0, -3.0], np.float32).reshape(3, 1, 1)
POS = np.abs(X) + 0.5
Z = 2 * X + 3
SEQ = RNG.standard_normal((1, 4, 5)).astype(np.float32)
TRI = RNG.standard_normal((4, 5)).astype(np.float32)
COL = RNG.standard_normal((1, 3, 1, 5)).astype(np.float32)

# kernel -> (builder, inputs, expected output)
CASES = {
    "nn.add": (lambda: elementwise("ADD"), {"x": X, "y": Y, "z": X}, X + Y + X),
    "nn.multiply": (lambda: elementwise("MULTIPLY"), {"x": X, "y": Y, "z": X}, X * Y * X),
    "nn.max": (lambda: elementwise("MAX"), {"x": X, "y": Y, "z": -X}, np.maximum(np.maximum(X, Y), -X)),
    "nn.min": (lambda: elementwise("MIN"), {"x": X, "y": Y, "z": -X}, np.minimum(np.minimum(X, Y), -X)),
    "nn.average": (lambda: elementwise("AVE"), {"x": X, "y": Y, "z": X}, (X + Y + X) / 3),
    "nn.scale": (scale, {"x": X}, X * np.arange(1, 4, dtype=np.float32).reshape(3, 1, 1) + 0.5),
    "nn.unary:sqrt": (lambda: unary("sqrt"), {"x": POS}, np.sqrt(2 * POS + 3)),
    "nn.unary:exp": (lambda: unary("exp"), {"x": X}, np.exp(Z)),
    "nn.unary:abs": (lambda: unary("abs"), {"x": X}, np.abs(Z)),
    "nn.unary:log": (lambda: unary("log"), {"x": POS}, np.log(2 * POS + 3)),
    "nn.unary:rsqrt": (lambda: unary("rsqrt", epsilon=1e-6), {"x": POS}, 1 / np.sqrt(2 * POS + 3 + 1e-6)),
    "nn.unary:inverse": (lambda: unary("inverse", epsilon=1e-6), {"x": POS}, 1 / (2 * POS + 3 + 1e-6)),
    "nn.unary:power": (lambda: unary("power", alpha=3.0), {"x": X}, Z**3),
    "nn.unary:threshold": (lambda: unary("threshold", alpha=2.5), {"x": X}, np.maximum(Z, 2.5)),
    "nn.dot": (
        dot,
        {"x": X[:, :, :1, :1], "y": Y[:, :, :1, :1]},
        (X[:, :, :1, :1] * Y[:, :, :1, :1]).sum(axis=(1, 2, 3), keepdims=True),
    ),
    "nn.batchnorm": (
        batchnorm,
        {"x": X},
        (X - X.mean((0, 2, 3), keepdims=True))
        / np.sqrt(X.var((0, 2, 3), keepdims=True) + 1e-5)
        * np.array([1, 2, 3], np.float32).reshape(3, 1, 1)
        + np.array([0, 1, -1], np.float32).reshape(3, 1, 1),
    ),
    "nn.mvn": (mvn, {"x": X}, X - X.mean((2, 3), keepdims=True)),
    "nn.embedding": (embedding, {"x": IDS}, (EMB_W.T[[3, 0, 9, 3]] + EMB_B).reshape(4, 6, 1, 1)),
    "nn.upperTriangular": (lambda: triangular(True), {"x": TRI}, np.triu(TRI, 1)),
    "nn.lowerTriangular": (lambda: triangular(False), {"x": TRI}, np.tril(TRI, -1)),
    "nn.broadcastToLike": (lambda: broadcast("like"), {"x": COL, "y": X}, np.broadcast_to(COL, X.shape)),
    "nn.broadcastToStatic": (lambda: broadcast("static"), {"x": COL}, np.broadcast_to(COL, X.shape)),
    "nn.broadcastToDynamic": (
        lambda: broadcast("dynamic"),
        {"x": COL, "shape": np.array(X.shape, np.float32)},
        np.broadcast_to(COL, X.shape),
    ),
    "nn.sequenceRepeat": (sequence_repeat, {"x": SEQ}, np.tile(SEQ, (3, 1, 1))),
    "nn.preprocessing": (preprocessing, {"x": X[0] * 100}, X[0] * 100 * 0.5 + BIAS),
}


def kernel_of(case: str) -> str:
    return case.partition(":")[0]


def test_every_nn_kernel_has_a_case():
    registered = {name for name in OPS if name.startswith("nn.")}
    assert len(registered) > 15
    assert registered - {kernel_of(c) for c in CASES} == set()


@pytest.mark.parametrize("case", sorted(CASES))
def test_nn_layer_matches_core_ml_semantics(case, tmp_path):
    build, inputs, expected = CASES[case]
    b = build()
    path = tmp_path / "layer.mlmodel"
    path.write_bytes(b.spec.SerializeToString())
    model = load(path)
    assert kernel_of(case) in {op.type for op in model.ops}, [op.type for op in model.ops]
    feeds = {
        k: (v.reshape(model.graphs[0].inputs[i].type.shape) if v.size else v) for i, (k, v) in enumerate(inputs.items())
    }
    got = run(model, feeds).outputs["out"]
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-4, atol=1e-5)


# ---- rank-5-era layers read blobs as NeuralNetwork.proto says: the trailing [C, H, W] of a blob of rank >= 3 (leading
# axes batch) and, under the rank-5 mapping, a (C,) vector as (C, 1, 1); the MIL ops they translate to say otherwise.

CHW = RNG.standard_normal((4, 6, 6)).astype(np.float32) * 3 + 1
VEC = RNG.standard_normal(4).astype(np.float32)
GAMMA, BETA = np.array([1, 2, 3, 4], np.float32), np.array([0, 1, -1, 0.5], np.float32)
PROTO_DEPTH = np.arange(1, 17, dtype=np.float32).reshape(8, 1, 2)  # the ReorganizeData example of NeuralNetwork.proto
PROTO_D2S = np.array([[[1, 5, 2, 6], [9, 13, 10, 14]], [[3, 7, 4, 8], [11, 15, 12, 16]]], np.float32)
PROTO_SHUFFLE = np.array([[[1, 3, 2, 4], [5, 7, 6, 8]], [[9, 11, 10, 12], [13, 15, 14, 16]]], np.float32)


def per_channel(x, eps):
    return (x - x.mean((-2, -1), keepdims=True)) / np.sqrt(x.var((-2, -1), keepdims=True) + eps)


def lrn(x, alpha, beta, size, k):
    """x / (k + alpha / size * sum of squares over a window of channels) ** beta, channel axis -3."""
    sq, out = x * x, np.empty_like(x)
    for c in range(x.shape[-3]):
        lo, hi = max(0, c - size // 2), min(x.shape[-3], c + (size - 1) // 2 + 1)
        out[..., c, :, :] = x[..., c, :, :] / (k + alpha / size * sq[..., lo:hi, :, :].sum(-3)) ** beta
    return out


def chc(v):
    return v[:, None, None]


BLOB_CASES = {  # name -> (add the layer reading "x" (C, H, W) / "v" (C,) and writing "out", inputs, expected)
    "mvn": (
        lambda b: b.add_mvn("layer", "x", "out", across_channels=False, normalize_variance=True, epsilon=1e-6),
        {"x": CHW},
        per_channel(CHW, 1e-6),
    ),
    "instance_batchnorm": (
        lambda b: b.add_batchnorm(
            "layer",
            4,
            GAMMA,
            BETA,
            compute_mean_var=True,
            instance_normalization=True,
            input_name="x",
            output_name="out",
            epsilon=1e-5,
        ),
        {"x": CHW},
        per_channel(CHW, 1e-5) * chc(GAMMA) + chc(BETA),
    ),
    "batchnorm": (
        lambda b: b.add_batchnorm(
            "layer",
            4,
            GAMMA,
            BETA,
            np.full(4, 0.5, np.float32),
            np.full(4, 2, np.float32),
            input_name="x",
            output_name="out",
            epsilon=1e-5,
        ),
        {"x": CHW},
        (CHW - 0.5) / np.sqrt(2 + 1e-5) * chc(GAMMA) + chc(BETA),
    ),
    "lrn": (
        lambda b: b.add_lrn("layer", "x", "out", alpha=0.5, beta=0.75, local_size=3, k=2.0),
        {"x": CHW},
        lrn(CHW, 0.5, 0.75, 3, 2.0),
    ),
    "depth_to_space": (
        lambda b: b.add_reorganize_data("layer", "x", "out", mode="DEPTH_TO_SPACE", block_size=2),
        {"x": PROTO_DEPTH},
        PROTO_D2S,
    ),
    "space_to_depth": (
        lambda b: b.add_reorganize_data("layer", "x", "out", mode="SPACE_TO_DEPTH", block_size=2),
        {"x": PROTO_D2S},
        PROTO_DEPTH,
    ),
    "pixel_shuffle": (
        lambda b: b.add_reorganize_data("layer", "x", "out", mode="PIXEL_SHUFFLE", block_size=2),
        {"x": PROTO_DEPTH},
        PROTO_SHUFFLE,
    ),
    "prelu": (
        lambda b: b.add_activation("layer", "PRELU", "x", "out", params=GAMMA / 8),
        {"x": CHW},
        np.where(CHW > 0, CHW, chc(GAMMA / 8) * CHW),
    ),
    "parametric_softplus": (
        lambda b: b.add_activation("layer", "PARAMETRICSOFTPLUS", "x", "out", params=[GAMMA, BETA + 2]),
        {"x": CHW},
        chc(GAMMA) * np.log1p(np.exp(chc(BETA + 2) * CHW)),
    ),
    "tile_fewer_reps": (lambda b: b.add_tile("layer", "x", "out", reps=[3]), {"x": CHW}, np.tile(CHW, (1, 1, 3))),
    "vector_softmax": (lambda b: b.add_softmax("layer", "v", "out"), {"v": VEC}, np.exp(VEC) / np.exp(VEC).sum()),
    "vector_concat": (
        lambda b: b.add_elementwise("layer", ["v", "v"], "out", "CONCAT"),
        {"v": VEC},
        np.concatenate([VEC, VEC]),
    ),
    "vector_split": (lambda b: b.add_split("layer", "v", ["out", "rest"]), {"v": VEC}, VEC[:2]),
    "vector_reduce_c": (
        lambda b: b.add_reduce("layer", "v", "out", axis="C", mode="sum"),
        {"v": VEC},
        VEC.sum(keepdims=True),
    ),
    "vector_reduce_hw": (lambda b: b.add_reduce("layer", "v", "out", axis="HW", mode="max"), {"v": VEC}, VEC),
    "vector_argmax": (
        lambda b: b.add_reduce("layer", "v", "out", axis="C", mode="argmax"),
        {"v": VEC},
        np.float32([VEC.argmax()]),
    ),
    "vector_slice_width": (  # W of a (C,) vector is a size-1 axis: [0, 1) keeps it
        lambda b: b.add_slice("layer", "v", "out", axis="width", start_index=0, end_index=1, stride=1),
        {"v": VEC},
        VEC,
    ),
    "vector_mean_only_mvn": (
        lambda b: b.add_mvn("layer", "v", "out", across_channels=True, normalize_variance=False),
        {"v": VEC},
        VEC - VEC.mean(),
    ),
    "vector_bias": (
        lambda b: b.add_bias("layer", b=BETA, input_name="v", output_name="out", shape_bias=[4]),
        {"v": VEC},
        VEC + BETA,
    ),
    "vector_scale": (
        lambda b: b.add_scale(
            "layer", W=GAMMA, b=BETA, has_bias=True, input_name="v", output_name="out", shape_scale=[4], shape_bias=[4]
        ),
        {"v": VEC},
        VEC * GAMMA + BETA,
    ),
    "vector_plus_blob": (
        lambda b: b.add_elementwise("layer", ["x", "v"], "out", "ADD"),
        {"x": CHW, "v": VEC},
        CHW + chc(VEC),
    ),
    "vector_max_blob": (
        lambda b: b.add_elementwise("layer", ["v", "x", "x"], "out", "MAX"),
        {"x": CHW, "v": VEC},
        np.maximum(CHW, chc(VEC)),
    ),
}


def run_layer(add, inputs, tmp_path, exact: bool, shapes=None):
    shapes = shapes or {k: v.shape for k, v in inputs.items()}
    b = NeuralNetworkBuilder(
        [(k, datatypes.Array(*s)) for k, s in shapes.items()], [("out", None)], disable_rank5_shape_mapping=exact
    )
    add(b)
    path = tmp_path / "layer.mlmodel"
    path.write_bytes(b.spec.SerializeToString())
    return run(load(path), {k: v.reshape(shapes[k]) for k, v in inputs.items()}).outputs["out"]


@pytest.mark.parametrize("case", sorted(BLOB_CASES))
def test_rank5_era_layers_read_unbatched_and_vector_blobs(case, tmp_path):
    add, inputs, expected = BLOB_CASES[case]
    got = run_layer(add, inputs, tmp_path, exact=False)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


PER_CHANNEL = ["mvn", "instance_batchnorm", "batchnorm", "lrn", "prelu", "depth_to_space", "space_to_depth"]


@pytest.mark.parametrize("case", PER_CHANNEL)
@pytest.mark.parametrize("lead", [(), (2, 1)], ids=["rank3", "rank5"])
def test_leading_axes_of_a_blob_are_batch(case, lead, tmp_path):
    """Exact rank mapping: a rank-3 blob is one (C, H, W) instance, a rank-5 one is a batch of them."""
    add, inputs, expected = BLOB_CASES[case]
    x = inputs["x"]
    batch = np.stack([x, -2 * x]).reshape(*lead, *x.shape) if lead else x
    want = np.stack([expected, run_layer(add, {"x": -2 * x}, tmp_path, exact=True)]) if lead else expected
    got = run_layer(add, {"x": batch}, tmp_path, exact=True)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
