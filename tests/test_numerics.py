"""numerics: the first op where fp16 breaks a model, found in the zoo; metrics; reports; bad input."""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest
import torch
from test_execute import mb, program_model
from zoo import ZOO, input_names, zoo_models  # noqa: F401  (zoo_models is a fixture)

from anedoctor import numerics
from anedoctor.drift import compare, psnr, rel_err
from anedoctor.errors import ModelError
from anedoctor.loaders import load

warnings.filterwarnings("ignore")
HEALTHY = [n for n in ZOO if n not in ("vae_decoder", "energy_head")]


def feeds(name):
    module, inputs = ZOO[name]()
    return module, dict(zip(input_names(name, len(inputs)), (x.numpy() for x in inputs)))


def test_metrics():
    b = np.array([0.0, 1.0, -2.0, 4.0])
    assert rel_err(b, b) == 0 and psnr(b, b) > 200
    a = b + np.array([0, 0, 0.04, 0])
    assert rel_err(a, b) == pytest.approx(0.01)
    assert psnr(a, b) == pytest.approx(20 * np.log10((4 + 1e-5) / (0.02 + 1e-10)))  # rms of (0, 0, 0.04, 0) is 0.02
    assert rel_err(np.array([np.inf, 1.0]), np.array([1.0, 2.0])) == pytest.approx(0.5)  # non-finite positions skipped
    huge = np.array([3e38, -3e38], np.float32)  # differences beyond float32's range, squares far beyond it
    assert rel_err(-huge, huge) == pytest.approx(2.0) and psnr(-huge, huge) == pytest.approx(20 * np.log10(0.5))
    tiny = np.array([1e-30, 0.0], np.float32)  # squares below float32's smallest value
    assert psnr(tiny * 2, tiny) == pytest.approx(20 * np.log10((1e-30 + 1e-5) / (np.sqrt(0.5) * 1e-30 + 1e-10)))


def test_vae_overflow_is_pinpointed_to_the_big_gain_conv(zoo_models):
    """The real overflow in the zoo: up_conv (weights x10000) exceeds 65504; its GroupNorm would hide it in fp32."""
    module, inputs = feeds("vae_decoder")
    path = zoo_models("vae_decoder", fp16=True)
    report = numerics(path, inputs, reference=module, devices="ane")
    first = report.first
    assert first.kind == "overflow" and first.op_type == "conv" and first.device == "ane"
    model = load(path)
    op = next(o for o in model.ops if o.name == first.op)
    assert np.abs(op.input("weight").data()).max() > 500  # the scaled layer, not one of the other three convs
    assert first.output_range.absmax > 65504 and first.inputs["x"].absmax < 100
    assert first.inputs["weight"].dtype == "const fp16"
    assert "divide this layer's weights and bias by 8" in first.fix and "FP16ComputePrecision" in first.fix
    assert not report.ok and report.outputs[0].nonfinite > 0
    assert all(r.ok for r in report.reference)  # the conversion itself is faithful in fp32
    text = report.render()
    assert f"FIRST PROBLEM: overflow at op {first.op!r} (conv" in text
    json.dumps(report.to_dict())


def test_naive_logsumexp_overflow_points_at_exp_and_suggests_the_stable_form(zoo_models):
    _, inputs = feeds("energy_head")
    report = numerics(zoo_models("energy_head", fp16=True), inputs, devices="ane")
    assert [(f.kind, f.op_type) for f in report.findings] == [("overflow", "exp")]
    assert "log-sum-exp" in report.first.fix
    ok = {o.name: o.ok for o in report.outputs}
    assert list(ok.values()).count(False) == 1  # torch.logsumexp (stable) and the RMS output survive


def test_accumulator_setting_is_reported_and_still_finds_the_overflow(zoo_models):
    _, inputs = feeds("vae_decoder")
    report = numerics(zoo_models("vae_decoder", fp16=True), inputs, devices="ane", accumulator="fp16")
    assert report.accumulator == "fp16" and report.first.op_type == "conv"


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_zoo_models_have_no_findings(name, zoo_models):
    _, inputs = feeds(name)
    report = numerics(zoo_models(name, fp16=True), inputs, devices="ane")
    assert report.findings == [] and report.ok, report.render()


def test_gpu_placement_also_overflows_but_cpu_only_warns(zoo_models):
    _, inputs = feeds("vae_decoder")
    path = zoo_models("vae_decoder", fp16=True)
    assert numerics(path, inputs, devices="gpu").first.op_type == "conv"
    cpu = numerics(path, inputs, devices="cpu")
    assert cpu.findings == [] and any("would overflow on the ANE or GPU" in w for w in cpu.warnings)


def test_only_the_mapped_op_on_the_ane(zoo_models):
    _, inputs = feeds("vae_decoder")
    model = load(zoo_models("vae_decoder", fp16=True))
    culprit = numerics(model, inputs, devices="ane").first.op
    op = next(o for o in model.ops if o.name == culprit)
    report = numerics(model, inputs, devices={op: "ane"})
    assert report.first.op == culprit and "unlisted ops on cpu" in report.placement


def test_minus_inf_mask_into_ane_softmax_warns(zoo_models):
    _, inputs = feeds("gpt")
    report = numerics(zoo_models("gpt", fp16=True), inputs, devices="ane")
    assert report.ok and any("NU-2" in w for w in report.warnings)


def test_drift_and_underflow_findings(zoo_models, tmp_path):
    tmp = tmp_path
    _, inputs = feeds("mlp_mixer")
    strict = numerics(zoo_models("mlp_mixer", fp16=True), inputs, devices="ane", threshold=1e-6, min_psnr=200)
    assert strict.first.kind in ("drift", "underflow") and "rel err" in strict.first.message
    assert len({f.op for f in strict.findings}) == len(strict.findings)  # sources only, not their descendants
    path = program_model(tmp / "tiny.mlpackage", lambda x: mb.mul(x=mb.mul(x=x, y=1e-7), y=1e4), [(64,)])
    report = numerics(path, {"x": np.linspace(-1, 1, 64, dtype=np.float32)}, devices="ane")
    assert report.first.kind == "underflow" and report.first.op_type == "mul" and "smallest normal" in report.first.fix


def test_torch_module_is_converted_and_used_as_reference():
    module, inputs = ZOO["mlp_mixer"]()
    report = numerics(module, example_inputs=inputs, devices="ane")
    assert report.reference and all(r.ok for r in report.reference)

    class Other(torch.nn.Module):
        def forward(self, x):
            return module(x) * 2

    wrong = numerics(module, example_inputs=inputs, reference=Other(), devices="ane")
    assert not wrong.ok and not wrong.reference[0].ok


def test_default_placement_comes_from_check(zoo_models):
    _, inputs = feeds("resnet")
    report = numerics(zoo_models("resnet", fp16=True), inputs)
    assert "anedoctor.check" in report.placement or "no placement predictor" in report.placement


def test_bad_arguments(zoo_models):
    path = zoo_models("resnet")
    with pytest.raises(ModelError, match="unknown reference"):
        numerics(path, reference="fp64")
    with pytest.raises(ModelError, match="unknown input 'nope'"):
        numerics(path, {"nope": np.zeros(3)})
    with pytest.raises(ModelError, match="no such file"):
        with contextlib.redirect_stderr(io.StringIO()):
            numerics("/nonexistent/model.mlpackage")


def test_numerics_results_join_the_check_report(tmp_path):
    """The check report carries numerics as per-op columns and a findings panel (JSON and HTML)."""
    from mil_models import mb, single

    import anedoctor

    big = np.full((8, 8, 3, 3), 400.0, np.float32)
    path = single(tmp_path / "hot.mlpackage", (1, 8, 16, 16), lambda x: mb.conv(x=x, weight=big, name="hot_conv"))
    model = anedoctor.load(path)
    report = anedoctor.check(model)
    rep = anedoctor.numerics(model, {"x": np.full((1, 8, 16, 16), 3.0, np.float32)}, devices="ane")
    d = json.loads(report.add_numerics(rep).to_json())
    conv = next(o for o in d["ops"] if o["type"] == "conv")
    assert conv["extra"]["fp32 |max|"] > 65504 and "fp16 rel err" in conv["extra"]
    assert d["panels"][0]["rows"][0]["kind"] == "overflow" and d["panels"][0]["rows"][0]["op"].startswith("hot_conv")


def test_each_pipeline_stage_is_compared_with_its_own_values(tmp_path):
    """Both stages of this pipeline name their ops conv0, l1, ...: each op's fp16 error is its own stage's, not the
    last value of that name."""
    import nn_models
    from test_fix_nn import pipeline_of, save

    path = save(pipeline_of(nn_models.conv_chain(2), nn_models.conv_chain(3)), tmp_path / "pipe.mlmodel")
    first, second = (row for row in numerics(path, devices="ane").ops if row["op"] == "conv0")
    assert first["psnr"] != second["psnr"]


def test_each_output_of_a_split_is_compared(tmp_path):
    """A split's outputs are compared one by one: the metrics are its worst output's (not its last's), and every
    output's are kept, so a reader of the first is not taken to read an identical tensor."""
    path = program_model(tmp_path / "split.mlpackage", lambda x: mb.split(x=x, num_splits=2, axis=0), [(2, 8)])
    op = next(o for o in load(path).graphs[0].ops if o.type == "split")
    first, last = (v.name for v in op.outputs)
    ref = {first: np.ones(8, np.float32), last: np.ones(8, np.float32)}
    new = {first: np.full(8, 1.5, np.float32), last: np.ones(8, np.float32)}
    _, worst, each = compare(op, ref, new, set(), set(), 0.05, 35.0)
    assert worst["output"] == first and set(each) == {first, last}
    assert each[first]["rel_err"] > 0.4 and each[last]["rel_err"] == 0
