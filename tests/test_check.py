"""anedoctor check: loaders, rules per family, placement, segments, reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mil_models import ct, mb, sandwich, save, single, types, w

import anedoctor
from anedoctor.errors import ModelError
from anedoctor.loaders.blob import BlobRef


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("check")


def op_named(report, fragment):
    return next(p for p in report.placements if fragment in p.op.name)


def rule_ids(p):
    return {f.rule.id for f in p.findings}


# ---- loading ---------------------------------------------------------------------------------


def test_mlpackage_loads_ops_shapes_and_lazy_weights(tmp):
    path = single(
        tmp / "conv.mlpackage", (1, 8, 16, 16), lambda x: mb.relu(x=mb.conv(x=x, weight=w(4, 8, 3, 3), name="c"))
    )
    model = anedoctor.load(path)
    ops = model.graphs[0].ops
    assert [o.type for o in ops] == ["cast", "conv", "relu", "cast"]  # constants are not ops
    conv = ops[1]
    assert conv.outputs[0].type.shape == (1, 4, 14, 14) and conv.outputs[0].type.dtype == "fp16"
    weight = conv.input("weight")
    assert isinstance(weight.const, BlobRef)  # not read until asked
    assert weight.data().shape == (4, 8, 3, 3) and weight.data().dtype == np.float16
    assert model.deployment_target == "ios17" and model.format == "mlprogram"
    # inputs keep MIL's declared order, not the proto map's per-process hash order
    assert list(conv.inputs) == ["x", "weight", "strides", "pad_type", "pad", "dilations", "groups"]


def test_torch_module_is_converted_and_checked():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1)
    )
    report = anedoctor.check(net, example_inputs=torch.randn(1, 3, 32, 32))
    assert report.model.format == "torch"
    assert [p.op.type for p in report.placements if p.op.type == "conv"] == ["conv", "conv"]


def test_lstm_in_torch_module_runs_on_cpu_with_a_reason():
    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(32, 32)
            self.head = torch.nn.Linear(32, 8)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    report = anedoctor.check(Tagger().eval(), example_inputs=torch.randn(10, 1, 32))
    lstm = next(p for p in report.placements if p.op.type == "lstm")
    assert lstm.device == "cpu" and not lstm.supported["ane"] and "OP-1" in rule_ids(lstm)


def test_mlmodel_object_and_pipeline(tmp):
    a = single(tmp / "a.mlpackage", (1, 8, 16, 16), lambda x: mb.relu(x=x, name="a_out"))
    b = single(tmp / "b.mlpackage", (1, 8, 16, 16), lambda x: mb.sigmoid(x=x, name="b_out"))
    m_a, m_b = ct.models.MLModel(str(a), skip_model_load=True), ct.models.MLModel(str(b), skip_model_load=True)
    assert anedoctor.check(m_a).summary["ops"] == 3
    spec_b = m_b.get_spec()
    ct.utils.rename_feature(spec_b, spec_b.description.input[0].name, m_a.get_spec().description.output[0].name)
    m_b2 = ct.models.MLModel(spec_b, weights_dir=m_b.weights_dir, skip_model_load=True)
    pipe = ct.utils.make_pipeline(m_a, m_b2)
    pipe.save(str(tmp / "pipe.mlpackage"))
    report = anedoctor.check(tmp / "pipe.mlpackage")
    assert report.model.format == "pipeline" and len(report.model.graphs) == 2
    assert {p.op.type for p in report.placements} >= {"relu", "sigmoid"}
    assert report.model.functions == [] and report.summary["latency_ms"] > anedoctor.check(m_a).summary["latency_ms"]
    stages = [g.name for g in report.model.graphs]  # a prediction runs both stages; the estimate names them
    assert {s.part for s in report.latency.segments} == set(stages)
    text = anedoctor.estimate(tmp / "pipe.mlpackage").render()
    assert all(f"{stage}: " in text for stage in stages)


# ---- rule families -------------------------------------------------------------------------


def test_dtype_fp32_model_is_barred_from_ane(tmp):
    path = single(tmp / "fp32.mlpackage", (1, 64, 32, 32), lambda x: mb.relu(x=x), precision=ct.precision.FLOAT32)
    relu = op_named(anedoctor.check(path), "relu")
    assert not relu.supported["ane"] and relu.supported["gpu"] and "DT-1" in rule_ids(relu)


def test_dtype_int32_and_fp32_io_on_m1(tmp):
    path = single(
        tmp / "argmax.mlpackage", (1, 64, 32, 32), lambda x: mb.reduce_argmax(x=mb.relu(x=x), axis=1, name="am")
    )
    report = anedoctor.check(path)
    assert "DT-4" in rule_ids(op_named(report, "am"))
    cast_in = report.placements[0]
    assert cast_in.op.type == "cast" and cast_in.supported["ane"]  # fp32 input cast is eligible on H16 (DT-2)
    m1 = anedoctor.check(path, chip="m1")
    assert (
        "DT-12" in rule_ids(m1.placements[0])
        and m1.placements[0].findings[0].apple_message == "Invalid input tensor format: fp32"
    )


@pytest.mark.parametrize(
    "build, rule",
    [
        (lambda x: mb.cumsum(x=x, axis=1), "OP-6"),
        (
            lambda x: mb.reshape(
                x=mb.band_part(x=mb.reshape(x=x, shape=[64, 64, 64]), lower=-1, upper=0), shape=[1, 64, 64, 64]
            ),
            "OP-3",
        ),
        (lambda x: mb.conv(x=x, weight=w(64, 64, 17, 17), pad_type="same"), "PA-1"),
        (lambda x: mb.conv(x=x, weight=w(64, 64, 3, 3), dilations=[8, 8], pad_type="same"), "PA-11"),
        (lambda x: mb.max_pool(x=x, kernel_sizes=[9, 9], strides=[1, 1], pad_type="same"), "PA-6"),
        (lambda x: mb.pad(x=x, pad=[0, 0, 0, 0, 1, 1, 1, 1], constant_val=1.0), "PA-12"),
        (lambda x: mb.asin(x=x), "OP-5"),
    ],
)
def test_op_and_parameter_rules_split_the_graph(tmp, build, rule):
    path = sandwich(tmp / f"sandwich_{rule}.mlpackage", lambda x: build(x))
    report = anedoctor.check(path, compute_units="cpu_and_ne")
    culprit = next(p for p in report.placements if rule in rule_ids(p))
    assert culprit.device == "cpu" and not culprit.supported["ane"]
    convs = [p for p in report.placements if p.op.type == "conv" and p is not culprit]
    assert len(convs) >= 2 and all(p.device == "ane" for p in convs)  # both sides of the culprit still pay for the ANE
    s = report.summary
    assert s["segments"] >= 3 and s["switches"] == s["segments"] - 1
    assert any(a.end == b.start - 1 for a, b in report.switches)


def test_eligible_ops_stay_on_ane_in_a_big_graph(tmp):
    path = sandwich(
        tmp / "clean.mlpackage", lambda x: mb.max_pool(x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same")
    )
    report = anedoctor.check(path, compute_units="cpu_and_ne")
    devices = [p.device for p in report.placements]
    # the trailing relu/cast tie between a switch and the output-on-ANE cost: Core ML (and we) pick the CPU
    assert devices[:-2] == ["ane"] * (len(devices) - 2), report.headline()
    assert report.summary["switches"] <= 1


def test_tiny_graph_stays_on_cpu_with_segment_reason(tmp):
    path = single(tmp / "tiny.mlpackage", (1, 64, 32, 32), lambda x: mb.relu(x=x))
    p = op_named(anedoctor.check(path, compute_units="cpu_and_ne"), "relu")
    assert p.supported["ane"] and p.device == "cpu" and "SEG-1" in rule_ids(p)


def test_shape_limits_depend_on_generation(tmp):
    path = single(tmp / "wide.mlpackage", (1, 1, 1, 20000), lambda x: mb.relu(x=x, name="r"), dtype=types.fp16)
    assert op_named(anedoctor.check(path, chip="m4"), "r").supported["ane"]
    m1 = op_named(anedoctor.check(path, chip="m1"), "r")
    assert "SH-1" in rule_ids(m1)
    assert m1.findings[0].apple_message.startswith("Tensor dimensions N1D1C1H1W20000 are not within supported range")


def flexible_conv(path, shape):
    """A 3 -> 8 3x3 conv traced at 32x32, converted with input ``x`` of ``shape`` (RangeDim or EnumeratedShapes)."""
    traced = torch.jit.trace(torch.nn.Conv2d(3, 8, 3).eval(), torch.randn(1, 3, 32, 32))
    ct.convert(traced, inputs=[ct.TensorType(name="x", shape=shape)], convert_to="mlprogram").save(str(path))
    return path


TWO_SIZES = ct.EnumeratedShapes(shapes=[(1, 3, 32, 32), (1, 3, 64, 64)], default=(1, 3, 32, 32))


def test_range_shape_input_keeps_whole_model_off_ane(tmp):
    path = flexible_conv(tmp / "flex.mlpackage", (1, 3, ct.RangeDim(16, 64, 32), ct.RangeDim(16, 64, 32)))
    report = anedoctor.check(path)
    assert report.model.graphs[0].input_specs[0].flexibility == "range"
    assert report.placements and all("DY-1" in rule_ids(p) and not p.supported["ane"] for p in report.placements)


def test_blockwise_quantized_conv_along_input_channels(tmp):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 32, 32), dtype=types.fp16)], opset_version=ct.target.iOS18)
    def prog(x):
        q = RNG_INT8((64, 64, 3, 3))
        weight = mb.constexpr_blockwise_shift_scale(data=q, scale=np.full((64, 2, 1, 1), 0.01, np.float16))
        return mb.conv(x=x, weight=weight, pad_type="same", name="qconv")

    path = save(prog, tmp / "blockwise.mlpackage", target=ct.target.iOS18)
    report = anedoctor.check(path)
    qconv = op_named(report, "qconv")
    assert "PA-29" in rule_ids(qconv)
    assert report.placements and all(not p.op.type.startswith("constexpr_") for p in report.placements)  # not ops


def RNG_INT8(shape):
    return np.random.default_rng(1).integers(-8, 8, shape).astype(np.int8)


def test_graph_rules_size_chip_and_os(tmp):
    path = single(tmp / "small.mlpackage", (1, 64, 32, 32), lambda x: mb.relu(x=x))
    model = anedoctor.load(path)
    model.weights_bytes = 2 << 30
    assert "SZ-1" in rule_ids(anedoctor.check(model, chip="a17").placements[0])
    assert "SZ-1" not in rule_ids(anedoctor.check(model, chip="m4").placements[0])
    a11 = anedoctor.check(path, chip="a11")
    assert a11.placements and all("CH-0" in rule_ids(p) for p in a11.placements)
    old_os = anedoctor.check(path, chip="a15", os="ios16")
    assert any("ios17" in n for n in old_os.notes)


def test_default_target_is_assumed_and_explicit_is_not(tmp):
    path = single(tmp / "t.mlpackage", (1, 8, 8, 8), lambda x: mb.relu(x=x))
    r = anedoctor.check(path)
    assert r.target.chip.id == "a17" and r.target.chip_assumed and r.target.os.id == "ios17" and r.target.os_assumed
    r = anedoctor.check(path, chip="m2", os="macos14")
    assert not r.target.chip_assumed and not r.target.os_assumed and r.target.os.ios == 17
    with pytest.raises(ModelError, match="unknown chip"):
        anedoctor.check(path, chip="z9")


# ---- report ------------------------------------------------------------------------------------


def test_json_report_is_consistent(tmp):
    path = sandwich(tmp / "json.mlpackage", lambda x: mb.cumsum(x=x, axis=1))
    report = anedoctor.check(path, compute_units="cpu_and_ne")
    d = json.loads(report.to_json(tmp / "r.json"))
    assert d == json.loads((tmp / "r.json").read_text())
    assert d["schema_version"] == "1.0" and d["kind"] == "prediction"
    s = d["summary"]
    assert s["ops"] == len(d["ops"]) == s["ane"] + s["gpu"] + s["cpu"]
    assert s["segments"] == len(d["segments"]) and s["switches"] == len(d["switches"])
    assert 0 < s["ane_flops_fraction"] < 1
    cumsum = next(o for o in d["ops"] if o["type"] == "cumsum")
    assert cumsum["device"] == "cpu" and cumsum["reasons"][0]["rule"] == "OP-6"
    assert {"rule", "message", "source", "confidence", "apple_message", "fix"} <= set(cumsum["reasons"][0])
    assert cumsum["inputs"][0]["producer"] == cumsum["index"] - 1
    assert d["causes"][0]["rule"] == "OP-6" and d["causes"][0]["switches"] == 2
    assert d["segments"]
    for seg in d["segments"]:
        assert all(d["ops"][i]["device"] == seg["device"] for i in range(seg["start"], seg["end"] + 1))


def test_readme_lists_every_rule():
    from pathlib import Path

    from anedoctor.rules import RULES

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert [r for r in RULES if f"| {r} |" not in readme] == []


def test_non_uniform_states_on_m1_only(tmp):
    @mb.program(
        input_specs=[
            mb.TensorSpec((1, 64, 8, 8), dtype=types.fp16),
            mb.StateTensorSpec((1, 64, 8, 8), dtype=types.fp16),
            mb.StateTensorSpec((1, 64, 16, 8), dtype=types.fp16),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, k, v):
        a = mb.read_state(input=k)
        mb.coreml_update_state(state=k, value=mb.add(x=a, y=x))
        mb.coreml_update_state(state=v, value=mb.mul(x=mb.read_state(input=v), y=np.float16(0.5)))
        return mb.add(x=a, y=x)

    path = save(prog, tmp / "state.mlpackage", target=ct.target.iOS18)
    m1 = anedoctor.check(path, chip="m1").placements
    assert m1 and all("ST-2" in rule_ids(p) for p in m1)
    assert not any("ST-2" in rule_ids(p) for p in anedoctor.check(path, chip="m4").placements)


def test_enumerated_shapes_are_noted_not_blocked(tmp):
    report = anedoctor.check(flexible_conv(tmp / "enum.mlpackage", TWO_SIZES))
    conv = next(p for p in report.placements if p.op.type == "conv")
    assert conv.supported["ane"] and "DY-0" not in rule_ids(conv)
    assert any(f.rule.id == "DY-2" and "2 enumerated shapes" in f.message for f in conv.notes)
    assert (
        conv.op.outputs[0].type.shape == (1, 8, 30, 30) and conv.flops == 2 * 8 * 27 * 30 * 30
    )  # sized at the default
    assert any("sized at the default shape" in n for n in report.notes)


def test_a_flexible_input_is_sized_at_a_chosen_shape(tmp):
    flexible_conv(tmp / "enum.mlpackage", TWO_SIZES)
    default = anedoctor.check(tmp / "enum.mlpackage")
    chosen = anedoctor.check(tmp / "enum.mlpackage", input_shapes={"x": (1, 3, 64, 64)})
    conv = next(p for p in chosen.placements if p.op.type == "conv")
    assert conv.op.outputs[0].type.shape == (1, 8, 62, 62) and conv.flops == 2 * 8 * 27 * 62 * 62
    assert chosen.summary["latency_ms"] > default.summary["latency_ms"]
    assert any("sized at the chosen shape (x (1, 3, 64, 64))" in n for n in chosen.notes)
    with pytest.raises(ModelError, match=r"x=1x3x48x48: 'x' takes one of 1x3x32x32, 1x3x64x64"):
        anedoctor.check(tmp / "enum.mlpackage", input_shapes={"x": (1, 3, 48, 48)})
    with pytest.raises(ModelError, match="'y' is not an input; its flexible inputs: x"):
        anedoctor.check(tmp / "enum.mlpackage", input_shapes={"y": (1,)})
    flexible_conv(tmp / "range.mlpackage", (1, 3, ct.RangeDim(16, 64, 32), 32))
    with pytest.raises(ModelError, match=r"x=1x3x80x32: 'x' takes 1x3x16..64x32"):
        anedoctor.check(tmp / "range.mlpackage", input_shapes={"x": (1, 3, 80, 32)})
    ranged = anedoctor.estimate(tmp / "range.mlpackage", input_shapes={"x": (1, 3, 48, 32)}, compare_compute_units=True)
    conv = next(p for p in ranged.report.placements if p.op.type == "conv")
    assert conv.op.outputs[0].type.shape == (1, 8, 46, 30)
    assert sum("sized at the chosen shape" in n for n in ranged.report.notes) == 1  # sized once for the 4 settings
    from typer.testing import CliRunner

    from anedoctor.cli import app

    ran = CliRunner().invoke(app, ["run", str(tmp / "enum.mlpackage"), "--input-shape", "x=1x3x64x64"])
    assert ran.exit_code == 0 and "float32[1, 8, 62, 62]" in ran.output
    np.savez(tmp / "x.npz", x=np.zeros((1, 3, 64, 64), np.float32))
    both = ["run", str(tmp / "enum.mlpackage"), "--input", str(tmp / "x.npz"), "--input-shape", "x=1x3x64x64"]
    assert CliRunner().invoke(app, both).exit_code == 2
    shown = CliRunner().invoke(app, ["estimate", str(tmp / "range.mlpackage"), "--input-shape", "x=1x3x48x32"])
    assert shown.exit_code == 0 and "note: main: flexible shapes sized at the chosen shape" in shown.output


def test_estimate_times_each_enumerated_shape(tmp):
    e = anedoctor.estimate(flexible_conv(tmp / "enum.mlpackage", TWO_SIZES), each_shape=True)
    assert [r["shape"] for r in e.shapes] == ["1x3x32x32", "1x3x64x64"] and [r["default"] for r in e.shapes] == [
        True,
        False,
    ]
    assert (
        e.shapes[0]["latency_ms"] == pytest.approx(e.latency_ms, abs=1e-4) and e.shapes[1]["latency_ms"] > e.latency_ms
    )
    conv = next(p for p in e.report.placements if p.op.type == "conv")
    assert conv.op.outputs[0].type.shape == (1, 8, 30, 30)  # each shape sized on a fresh load, not this report's model
    assert "at each enumerated shape of x: 1x3x32x32" in e.render()
    ranged = flexible_conv(tmp / "range.mlpackage", (1, 3, ct.RangeDim(16, 64, 32), 32))
    with pytest.raises(ModelError, match="this model has no inputs with enumerated shapes"):
        anedoctor.estimate(ranged, each_shape=True)


def test_compute_units_without_ane(tmp):
    path = sandwich(tmp / "cu.mlpackage", lambda x: mb.relu(x=x))
    report = anedoctor.check(path, compute_units="cpu_and_gpu")
    assert report.summary["ane"] == 0 and report.summary["gpu"] > 0
    eligible = [p for p in report.placements if p.supported["ane"]]
    assert eligible and all("CU-1" in rule_ids(p) for p in eligible)
    assert anedoctor.check(path, compute_units="cpu_only").summary["cpu"] == report.summary["ops"]


def test_compiled_neuralnetwork_layers_get_rules():
    from pathlib import Path

    path = Path(__file__).parent / "data" / "mlmodelc" / "chiron_parkinson_wave_nn.mlmodelc"
    report = anedoctor.check(path, chip="m4")
    pool = op_named(report, "max_pool_0")
    assert pool.op.layer_type == "pool" and "PA-6" in rule_ids(pool) and not pool.supported["ane"]
    conv = op_named(report, "conv1")
    assert conv.flops == 2 * 128 * 25 * 128 * 128  # from the layer's C, K, Nx, Ny and the output shape
