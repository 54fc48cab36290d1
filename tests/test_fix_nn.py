"""anedoctor.fix on NeuralNetwork .mlmodel files: converted to a verified ML Program with the same interface,
then fixed by the normal passes; what the conversion cannot do is a one-line error (exit 2 from the CLI)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nn_models
import numpy as np
import pytest
from nn_models import add_conv3x3
from test_nn_layers import BETA, BLOB_CASES, GAMMA, VEC

import anedoctor
from anedoctor.errors import ModelError
from anedoctor.rewrite import fix
from anedoctor.rewrite.coreml_io import coremltools, op_types
from anedoctor.rewrite.from_nn import to_mlprogram

ct = coremltools()
from coremltools.models import datatypes  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402
from coremltools.proto.FeatureTypes_pb2 import ArrayFeatureType, ImageFeatureType  # noqa: E402

RNG = np.random.default_rng(3)


def blocked_net(b, x: str, cin: int, c: int) -> None:
    """Convs around a conv with dilation 8 (extent 17 > 15: PA-11) and a 9x9 max pool (PA-6), ending in 'y'."""
    src = x
    for i in range(3):
        add_conv3x3(b, f"pre{i}", c if i else cin, c, src, f"p{i}")
        b.add_activation(f"pre_relu{i}", "RELU", f"p{i}", f"pr{i}")
        src = f"pr{i}"
    add_conv3x3(b, "dilated", c, c, src, "d", dilation=8)
    b.add_pooling("pool", 9, 9, 1, 1, layer_type="MAX", padding_type="SAME", input_name="d", output_name="q")
    src = "q"
    for i in range(3):
        add_conv3x3(b, f"post{i}", c, c, src, f"o{i}")
        b.add_activation(f"post_relu{i}", "RELU", f"o{i}", "y" if i == 2 else f"or{i}")
        src = f"or{i}"


def float32_io(spec) -> None:
    for f in [*spec.description.input, *spec.description.output]:
        if f.type.WhichOneof("Type") == "multiArrayType":
            f.type.multiArrayType.dataType = ArrayFeatureType.FLOAT32


def pipeline_of(first, second):
    """Two NeuralNetworks chained: the first's output feeds the second."""
    from coremltools.models.pipeline import Pipeline

    second.description.input[0].name = second.neuralNetwork.layers[0].input[0] = "t"
    first.description.output[0].name = first.neuralNetwork.layers[-1].output[0] = "t"
    for spec in (first, second):
        float32_io(spec)
        spec.description.output[0].type.multiArrayType.shape[:] = [1, 8, 32, 32]
    pipe = Pipeline([("x", datatypes.Array(1, 8, 32, 32))], [("y", datatypes.Array(1, 8, 32, 32))])
    pipe.add_model(first)
    pipe.add_model(second)
    return pipe.spec


def save(spec, path: Path) -> Path:
    ct.models.utils.save_spec(spec, str(path))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def nd_model(tmp_path_factory) -> Path:
    """A spec-4 NeuralNetwork (exact rank mapping), fp32 in and out."""
    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 32, 64, 64))], [("y", None)], disable_rank5_shape_mapping=True)
    blocked_net(b, "x", 32, 32)
    float32_io(b.spec)
    return save(b.spec, tmp_path_factory.mktemp("nn") / "blocked.mlmodel")


def test_dilated_conv_and_big_pool_are_fixed(nd_model, tmp_path):
    before = digest(nd_model)
    out = tmp_path / "fixed.mlpackage"
    report = fix(nd_model, out)
    assert report.written and out.is_dir() and digest(nd_model) == before
    first, *passes = report.applied
    assert first.pass_name == "neuralnetwork_to_mlprogram"
    assert first.summary.startswith("converted from NeuralNetwork to ML Program (iOS17)")
    assert {p.pass_name for p in passes} == {"dilated_conv_to_space_to_batch", "max_pool_cascade"}
    assert report.after["ane_fraction"] > report.before["ane_fraction"]

    nn_check, fixed_check = anedoctor.check(str(nd_model)), anedoctor.check(str(out))
    rules = lambda r: {f.rule.id for p in r.placements for f in p.findings}  # noqa: E731
    assert {"PA-11", "PA-6"} <= rules(nn_check) and not {"PA-11", "PA-6"} & rules(fixed_check)
    assert "space_to_batch" in op_types(out) and "max_pool" in op_types(out)

    # the saved package reloads as an ML Program with the NeuralNetwork's interface
    spec = ct.models.MLModel(str(out), skip_model_load=True).get_spec()
    original = ct.utils.load_spec(str(nd_model))
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.description.input == original.description.input
    assert [o.name for o in spec.description.output] == ["y"]

    # the same outputs: fp16 weights, as Core ML runs the NeuralNetwork on the ANE anyway
    feeds = {"x": RNG.standard_normal((1, 32, 64, 64)).astype(np.float32)}
    want = anedoctor.run(str(nd_model), inputs=feeds).outputs["y"]
    got = anedoctor.run(str(out), inputs=feeds).outputs["y"]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()


def test_rank5_image_model_keeps_image_input_and_preprocessing(tmp_path):
    """A spec-1 image model: (3, H, W) image with scale/bias preprocessing, carried at rank 4 inside."""
    b = NeuralNetworkBuilder([("image", datatypes.Array(3, 32, 32))], [("y", None)])
    b.set_pre_processing_parameters(
        image_input_names=["image"], is_bgr=True, image_scale=1 / 255.0, red_bias=-0.5, green_bias=-0.4, blue_bias=-0.3
    )
    blocked_net(b, "image", 3, 8)
    float32_io(b.spec)
    src = save(b.spec, tmp_path / "legacy.mlmodel")
    conversion, reference = to_mlprogram(src, tmp_path, 16, False, None)
    assert "(iOS16)" in conversion.summary() and conversion.error_fp32 <= 1e-4
    spec = ct.models.MLModel(str(conversion.path), skip_model_load=True).get_spec()
    assert spec.specificationVersion == 7 and spec.description.input == b.spec.description.input
    image = spec.description.input[0].type.imageType
    assert (image.width, image.height, image.colorSpace) == (32, 32, ImageFeatureType.BGR)
    types = op_types(conversion.path)
    assert types.count("conv") == 7 and "mul" in types and "add" in types  # preprocessing kept in the program
    got = anedoctor.run(str(conversion.path), inputs=reference.inputs).outputs["y"]
    assert got.shape == reference.outputs["y"].shape == (1, 8, 32, 32)


def test_double_arrays_are_an_interface_change(tmp_path):
    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 8, 16, 16))], [("y", None)], disable_rank5_shape_mapping=True)
    add_conv3x3(b, "c", 8, 8, "x", "y", dilation=8)
    src = save(b.spec, tmp_path / "double.mlmodel")
    with pytest.raises(ModelError, match="DOUBLE.*allow_interface_changes"):
        to_mlprogram(src, tmp_path, 17, False, None)
    conversion, _ = to_mlprogram(src, tmp_path, 17, True, None)
    assert conversion.interface_changes == ["x DOUBLE -> FLOAT32", "y DOUBLE -> FLOAT32"]
    spec = ct.models.MLModel(str(conversion.path), skip_model_load=True).get_spec()
    assert spec.description.input[0].type.multiArrayType.dataType == ArrayFeatureType.FLOAT32


def every_blob_an_output(spec):
    """Make every layer's output a model output (FLOAT32)."""
    layers = spec.neuralNetwork.layers
    have = {o.name for o in spec.description.output}
    for name in (o for layer in layers for o in layer.output if o not in have):
        have.add(name)
        spec.description.output.add(name=name).type.multiArrayType.dataType = ArrayFeatureType.FLOAT32
    return spec


@pytest.mark.parametrize("build", [nn_models.legacy_ops, lambda: nn_models.nd_ops()[0]], ids=["rank5", "nd"])
def test_every_layer_of_the_loader_models_converts_and_agrees(tmp_path, build):
    """Elementwise, concat/split, slices, reshapes, permutes, pads, upsample, crop, unary, reduce, norms,
    scale/bias, inner product (rank-5 era); batched matmul, broadcasting, ND shape ops, embedding, gather,
    top-k, argmax, layer norm, where, one-hot, dynamic slice (ND): each one's output is compared."""
    spec = every_blob_an_output(build())
    src = save(spec, tmp_path / "layers.mlmodel")
    conversion, reference = to_mlprogram(src, tmp_path, 17, True, None)
    assert conversion.error_fp32 <= 1e-4 and len(reference.outputs) == len(spec.description.output) > 15
    spec_out = ct.models.MLModel(str(conversion.path), skip_model_load=True).get_spec()
    assert [o.name for o in spec_out.description.output] == [o.name for o in spec.description.output]


def layer_model(add, shape: tuple[int, ...], path: Path) -> Path:
    """A spec-4 NeuralNetwork (exact rank mapping) of one layer reading "x" of ``shape`` and writing "out"."""
    b = NeuralNetworkBuilder([("x", datatypes.Array(*shape))], [("out", None)], disable_rank5_shape_mapping=True)
    add(b)
    float32_io(b.spec)
    return save(b.spec, path)


def fp32_program_run(src: Path, work: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``src`` (verified against the NeuralNetwork inside ``to_mlprogram``) and run its fp32 program on ``x``;
    returns the program's output and the NeuralNetwork's."""
    conversion, reference = to_mlprogram(src, work, 17, False, {"x": x})
    assert conversion.error_fp32 <= 1e-4
    got = anedoctor.run(str(work / "nn-fp32.mlpackage"), inputs={"x": x}, precision="fp32").outputs["out"]
    return got, reference.outputs["out"]


PER_CHANNEL = [
    "mvn",
    "instance_batchnorm",
    "batchnorm",
    "lrn",
    "prelu",
    "parametric_softplus",
    "depth_to_space",
    "space_to_depth",
    "pixel_shuffle",
]


@pytest.mark.parametrize("case", PER_CHANNEL)
@pytest.mark.parametrize("lead", [(), (2, 1)], ids=["rank3", "rank5"])
def test_per_channel_layers_on_rank3_and_rank5_blobs_convert(case, lead, tmp_path):
    """MIL reads a rank-3 tensor as (n, C, L); the NeuralNetwork layer reads (C, H, W), leading axes a batch. The
    emitted program runs the op at rank 4 and gives what NeuralNetwork.proto says (the numpy statement of
    tests/test_nn_layers.py) for every instance of the batch."""
    add, inputs, expected = BLOB_CASES[case]
    x = inputs["x"]
    batch = np.stack([x, -2 * x]).reshape(*lead, *x.shape) if lead else x
    got, nn = fp32_program_run(layer_model(add, batch.shape, tmp_path / "layer.mlmodel"), tmp_path, batch)
    assert got.shape == nn.shape == (*lead, *expected.shape)
    np.testing.assert_allclose(got.reshape(-1, *expected.shape)[0], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, nn, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("batchnorm", (VEC - 0.5) / np.sqrt(2 + 1e-5) * GAMMA + BETA),
        ("prelu", np.where(VEC > 0, VEC, GAMMA / 8 * VEC)),
    ],
)
def test_per_channel_layers_on_a_vector_read_it_as_channels(case, expected, tmp_path):
    """A (C,) blob is (1, C, 1, 1) to these layers: one parameter per element."""
    got, nn = fp32_program_run(layer_model(BLOB_CASES[case][0], VEC.shape, tmp_path / "vec.mlmodel"), tmp_path, VEC)
    assert got.shape == nn.shape == VEC.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def prelu_on_rows():
    """PReLU on a rank-2 blob (exact rank mapping): MIL's prelu takes rank 3 to 5, and the executor reads the
    layer at rank 2 as MIL does, so there is no per-channel layout to restore; the conversion refuses it."""
    b = NeuralNetworkBuilder([("x", datatypes.Array(3, 4))], [("out", None)], disable_rank5_shape_mapping=True)
    BLOB_CASES["prelu"][0](b)
    return b.spec


@pytest.mark.parametrize(
    ("build", "os", "message"),
    [
        (nn_models.custom_layer, None, "layer 'fancy' .*has no ML Program form"),
        (lambda: nn_models.legacy_classifier()[0], None, "classifiers are not converted"),
        (lambda: nn_models.conv_chain(4), "ios14", "need iOS 15"),
        (nn_models.flexible, None, "input 'r' has a flexible shape"),
        (prelu_on_rows, None, "layer 'layer' \\(activation -> prelu\\) not converted: prelu op: x must be rank 3"),
        (lambda: pipeline_of(nn_models.conv_chain(2), nn_models.conv_chain(3)), None, "pipelines are not converted"),
    ],
)
def test_unconvertible_models_are_one_line_errors(tmp_path, build, os, message):
    spec = build()
    float32_io(spec)
    src = save(spec, tmp_path / "model.mlmodel")
    with pytest.raises(ModelError, match=message) as err:
        fix(src, tmp_path / "out.mlpackage", chip="a13" if os else None, os=os)
    assert "\n" not in str(err.value) and str(src) in str(err.value)
    assert not (tmp_path / "out.mlpackage").exists()


def test_cli_exit_codes(nd_model, tmp_path):
    from typer.testing import CliRunner

    from anedoctor.cli import app

    runner = CliRunner()
    bad = save(nn_models.custom_layer(), tmp_path / "custom.mlmodel")
    res = runner.invoke(app, ["fix", str(bad), "-o", str(tmp_path / "out.mlpackage")])
    assert res.exit_code == 2 and "no ML Program form" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["fix", str(nd_model), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "converted from NeuralNetwork to ML Program" in res.output and "max_pool_cascade [PA-6]" in res.output
