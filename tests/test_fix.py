"""anedoctor.fix: each pass cures its rule exactly (or within its stated tolerance), the result is a
valid package that reloads, the input is never touched, and nothing is written when nothing helps."""

from __future__ import annotations

import json
from pathlib import Path

import fix_zoo as zoo
import numpy as np
import pytest

import anedoctor
from anedoctor.errors import ModelError
from anedoctor.rewrite import PASSES, Pass, driver, fix, register
from anedoctor.rewrite.coreml_io import (
    coremltools,
    load_program,
    op_types,
    save_program,
)
from anedoctor.rewrite.spatial import split_pads, split_window
from anedoctor.rules import RULES

ct = coremltools()
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.proto.FeatureTypes_pb2 import ArrayFeatureType  # noqa: E402

RNG = np.random.default_rng(1)


def w(*shape):
    return (RNG.standard_normal(shape) * 0.05).astype(np.float32)


def convnet(folder: Path, middle) -> Path:
    """Convs around one op under test, big enough that the ANE pays for a segment."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 32, 64, 64))], opset_version=ct.target.iOS17)
    def prog(x):
        for i in range(3):
            x = mb.relu(x=mb.conv(x=x, weight=w(32, 32, 3, 3), pad_type="same", name=f"pre{i}"))
        x = middle(x)
        for i in range(3):
            x = mb.relu(x=mb.conv(x=x, weight=w(32, 32, 3, 3), pad_type="same", name=f"post{i}"))
        return x

    return zoo.save(prog, folder / "convnet.mlpackage")


def audio_net(folder: Path) -> Path:
    """1-D convs around a kernel-3 conv with dilation 12 (extent 25)."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 2048))], opset_version=ct.target.iOS17)
    def prog(x):
        for _ in range(3):
            x = mb.relu(x=mb.conv(x=x, weight=w(64, 64, 3), pad_type="same"))
        x = mb.conv(x=x, weight=w(64, 64, 3), bias=w(64), dilations=[12], pad_type="same", name="dilated")
        for _ in range(3):
            x = mb.relu(x=mb.conv(x=x, weight=w(64, 64, 3), pad_type="same"))
        return x

    return zoo.save(prog, folder / "audio.mlpackage")


def wide_mlp(folder: Path) -> Path:
    """An MLP over 40000 flattened features: the first linear sums over more than 32768 inputs (PA-22)."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 40000))], opset_version=ct.target.iOS17)
    def prog(x):
        x = mb.relu(x=mb.linear(x=x, weight=w(256, 40000), bias=w(256), name="wide"))
        for _ in range(3):
            x = mb.relu(x=mb.linear(x=x, weight=w(256, 256)))
        return x

    return zoo.save(prog, folder / "wide_mlp.mlpackage")


def rule_ops(report, rule_id: str) -> list[str]:
    return [p.op.name for p in report.placements if any(f.rule.id == rule_id for f in p.findings)]


def max_rel_err(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max() / np.abs(b[k]).max()) for k in b)


# ---- each pass on a model that needs it --------------------------------------------------

CASES = {
    "dilated_conv_2d": (
        "PA-11",
        "dilated_conv_to_space_to_batch",
        lambda d: convnet(
            d,
            lambda x: mb.conv(
                x=mb.conv(x=x, weight=w(32, 32, 3, 3), bias=w(32), dilations=[8, 8], pad_type="same", name="dilated"),
                weight=w(32, 32, 3, 3),
                dilations=[6, 10],
                pad_type="custom",
                pad=[3, 17, 10, 10],
                name="dilated_pad",
            ),
        ),
    ),
    "dilated_conv_1d": ("PA-11", "dilated_conv_to_space_to_batch", lambda d: audio_net(d), "cpu_and_ne"),
    "max_pool": (
        "PA-6",
        "max_pool_cascade",
        lambda d: convnet(
            d,
            lambda x: mb.max_pool(
                x=mb.max_pool(x=x, kernel_sizes=[13, 13], strides=[1, 1], pad_type="same", name="pool"),
                kernel_sizes=[11, 10],
                strides=[3, 2],
                pad_type="valid",
                name="pool_strided",
            ),
        ),
    ),
    "lm_head": ("SH-1", "split_long_linear", lambda d: zoo.lm_head(d, vocab=70000, hidden=64), "cpu_and_ne"),
    "long_contraction": ("PA-22", "split_long_contraction", lambda d: wide_mlp(d), "cpu_and_ne"),
    "rank6": ("SH-4", "collapse_high_rank", zoo.window_rank6, "cpu_and_ne"),
    "fp32_islands": ("DT-1", "fp32_islands_to_fp16", zoo.fp32_islands),
}


def units(case: str) -> str:
    """Compute units of a case: 'all' unless the cost model prefers the GPU for that model's shapes."""
    return CASES[case][3] if len(CASES[case]) > 3 else "all"


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """Build each case once, fix it once; tests look at the results."""
    return zoo.fix_once(tmp_path_factory, lambda case: (CASES[case][2], {"compute_units": units(case)}))


@pytest.mark.parametrize("case", list(CASES))
def test_pass_cures_its_rule_and_keeps_outputs(fixed, case):
    rule_id, pass_name = CASES[case][:2]
    src, out, report, digest = fixed(case)
    assert report.written and out.is_dir(), str(report)
    assert [a.pass_name for a in report.applied if rule_id in a.rules] == [pass_name], str(report)
    before, after = anedoctor.check(src, compute_units=units(case)), anedoctor.check(out, compute_units=units(case))
    flagged = rule_ops(before, rule_id)
    rewritten = {n for a in report.applied for n in a.rewritten}
    assert flagged and rewritten <= set(flagged)
    # the rule is gone from every rewritten op and its replacements; what is left was flagged and not rewritten
    # before (e.g. the cast of an over-long model output), or is a residual op of the pass (the concat of chunks)
    left = [n for n in rule_ops(after, rule_id) if after.find(n).op.type not in PASSES[pass_name].residual]
    assert set(left) <= set(flagged) - rewritten
    assert after.summary["ane_fraction"] > before.summary["ane_fraction"]
    assert after.summary["ane_flops_fraction"] >= before.summary["ane_flops_fraction"]
    # outputs, recomputed here rather than trusted from the report
    ref = anedoctor.run(src, seed=3)
    exact = PASSES[pass_name].exact
    got = anedoctor.run(out, inputs=ref.inputs, precision="fp32" if exact else "fp16")
    assert max_rel_err(got.outputs, ref.outputs) <= (1e-4 if exact else 2e-2)
    # the saved package reloads with coremltools and anedoctor; the input is untouched
    load_program(out)
    assert [i.name for i in ct.models.MLModel(str(out), skip_model_load=True).get_spec().description.input] == [
        i.name for i in ct.models.MLModel(str(src), skip_model_load=True).get_spec().description.input
    ]
    assert zoo.tree_hash(src) == digest


def test_reports_render(fixed):
    _, out, report, _ = fixed("max_pool")
    data = json.loads(report.to_json())
    assert data["written"] and data["applied"][0]["pass_name"] == "max_pool_cascade"
    assert data["after"]["ane_fraction"] > data["before"]["ane_fraction"]
    assert len(data["strips"]["after"]) == data["after"]["ops"]
    page = report.to_html()
    assert page.count('class="strip"') == 2 and page.index("Before") < page.index("After")
    text = str(report)
    assert "max_pool_cascade [PA-6]: 2 op(s) -> 4 (exact" in text and f"wrote {out}" in text


def test_demo_reports_what_needs_the_source(fixed, tmp_path):
    src = zoo.demo(tmp_path)
    report = fix(src, tmp_path / "demo.fixed.mlpackage")
    assert {a.pass_name for a in report.applied} == {"dilated_conv_to_space_to_batch", "max_pool_cascade"}
    assert [u.rule for u in report.unfixed] == ["DT-4"] and "argmax" in report.unfixed[0].fix
    assert report.after["ane_flops_fraction"] > 0.99 > report.before["ane_flops_fraction"]


# ---- models on which a pass must not fire --------------------------------------------------


def test_no_improvement_writes_nothing(tmp_path):
    """A dilation-2 conv, an 8x8 max pool and a 13x13 avg pool are all within the ANE's limits."""
    src = convnet(
        tmp_path,
        lambda x: mb.avg_pool(
            x=mb.max_pool(
                x=mb.conv(x=x, weight=w(32, 32, 3, 3), dilations=[2, 2], pad_type="same"),
                kernel_sizes=[8, 8],
                strides=[1, 1],
                pad_type="same",
            ),
            kernel_sizes=[13, 13],
            strides=[1, 1],
            pad_type="same",
        ),
    )
    out = tmp_path / "out.mlpackage"
    report = fix(src, out)
    assert not report.applied and not report.dropped and not report.written and not out.exists()
    assert "nothing was written" in report.verdict and report.before == report.after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["convnet.mlpackage"]  # no temp folder left behind


def test_strided_dilated_conv_is_not_rewritten(tmp_path):
    src = convnet(
        tmp_path, lambda x: mb.conv(x=x, weight=w(32, 32, 3, 3), dilations=[8, 8], strides=[2, 2], pad_type="same")
    )
    report = fix(src, tmp_path / "out.mlpackage")
    assert not report.written
    assert [a.reason for a in report.dropped] == ["no flagged op has a form this pass rewrites"]
    assert [u.rule for u in report.unfixed] == ["PA-11"]


# ---- the driver's guarantees ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pool_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pool")
    return convnet(
        folder, lambda x: mb.max_pool(x=x, kernel_sizes=[9, 9], strides=[1, 1], pad_type="same", name="pool")
    )


def test_refuses_output_over_or_inside_input(pool_model):
    for out in (pool_model, pool_model / "inner.mlpackage", pool_model.parent):
        with pytest.raises(ModelError, match="output"):
            fix(pool_model, out)


def test_refuses_neural_network_and_missing_inputs(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        fix(tmp_path / "missing.mlpackage", tmp_path / "out.mlpackage")
    nn = tmp_path / "nn.mlmodel"
    nn.write_bytes(b"\x00")
    with pytest.raises(ModelError, match="not a Core ML model"):
        fix(nn, tmp_path / "out.mlpackage")
    text = tmp_path / "model.txt"
    text.write_text("not a model")
    with pytest.raises(ModelError, match="mlpackage"):
        fix(text, tmp_path / "out.mlpackage")


def test_dry_run_and_ignore(pool_model, tmp_path):
    out = tmp_path / "out.mlpackage"
    report = fix(pool_model, out, dry_run=True)
    assert report.applied and not report.written and not out.exists()
    report = fix(pool_model, out, ignore="PA-6")
    assert not report.applied and not out.exists() and [u.rule for u in report.unfixed] == ["PA-6"]


def test_replaces_an_existing_output(pool_model, tmp_path):
    out = tmp_path / "out.mlpackage"
    out.mkdir()
    (out / "stale").write_text("old")
    assert fix(pool_model, out).written
    assert not (out / "stale").exists() and "max_pool" in op_types(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mlpackage"]


def test_a_pass_that_changes_the_outputs_is_dropped(pool_model, tmp_path, monkeypatch):
    class WrongPool(Pass):
        """Replace the pool by a relu (wrong on purpose).

        Given: %y = max_pool(%x)
        Result: %y = relu(%x)
        """

        name, rules, op_types, source = "wrong_pool", ("PA-6",), ("max_pool",), "test"

        def matches(self, op):
            return True

        def rewrite(self, op, name):
            return mb.relu(x=op.x, name=name)

    monkeypatch.setattr(driver, "PASSES", {"wrong_pool": WrongPool})
    out = tmp_path / "out.mlpackage"
    report = fix(pool_model, out)
    assert not report.written and not out.exists()
    assert report.dropped[0].pass_name == "wrong_pool" and "outputs differ" in report.dropped[0].reason


def test_registry_refuses_duplicates_and_undocumented_passes():
    with pytest.raises(KeyError):
        register(PASSES["max_pool_cascade"])

    class Undocumented(Pass):
        """No before/after."""

        name, rules, source = "undocumented", ("PA-6",), "test"

    with pytest.raises(TypeError, match="Given"):
        register(Undocumented)
    for cls in PASSES.values():
        assert set(cls.rules) <= set(RULES) and cls.source, cls.name


def test_rules_point_at_registered_passes():
    """A rule's ``fix_pass`` (shown in ``anedoctor rules``) names a pass that cures it, exact as the rule says."""
    named = {r.id: r.fix_pass for r in RULES.values() if r.fix_pass and "::" not in r.fix_pass}
    assert len(named) >= 5
    for rule_id, name in named.items():
        assert name in PASSES and rule_id in PASSES[name].rules, rule_id
        assert RULES[rule_id].fix_exact in (None, PASSES[name].exact), rule_id


def test_fp16_io_only_with_interface_changes(tmp_path):
    """On M1 the fp32 input/output casts keep the model's ends off the ANE (DT-12); making the I/O fp16
    cures that but changes the interface, so it needs allow_interface_changes."""
    src = convnet(tmp_path, lambda x: x)
    out = tmp_path / "out.mlpackage"
    report = fix(src, out, chip="m1")
    assert not report.written and [n for n, _ in report.skipped] == ["fp16_model_io"]
    report = fix(src, out, chip="m1", allow_interface_changes=True)
    assert report.written and [a.pass_name for a in report.applied] == ["fp16_model_io"], str(report)
    assert report.after["ane_fraction"] == 1.0 > report.before["ane_fraction"]
    desc = ct.models.MLModel(str(out), skip_model_load=True).get_spec().description
    was = ct.models.MLModel(str(src), skip_model_load=True).get_spec().description
    assert [f.name for f in desc.output] == [f.name for f in was.output]  # names kept, types fp16
    assert {f.type.multiArrayType.dataType for f in list(desc.input) + list(desc.output)} == {ArrayFeatureType.FLOAT16}
    assert "cast" not in op_types(out)


# ---- the private coremltools hook ------------------------------------------------------------


def test_save_keeps_space_to_batch_where_the_default_pipeline_refuses_it(fixed, tmp_path):
    _, out, _, _ = fixed("dilated_conv_2d")
    assert op_types(out).count("space_to_batch") == 2
    prog, spec = load_program(out)
    save_program(prog, spec, tmp_path / "default.mlpackage", pipeline=ct.PassPipeline.DEFAULT)
    # coremltools' fuse_dilated_conv folds the 'same'-padded one back into a dilated conv
    assert op_types(tmp_path / "default.mlpackage").count("space_to_batch") == 1


# ---- the pool cascade identity, checked directly against torch ----------------------------------


@pytest.mark.parametrize("k", range(9, 32))
def test_pool_cascade_identity(k):
    import torch
    import torch.nn.functional as F

    windows = split_window(k, 8)
    assert max(windows) <= 8 and sum(x - 1 for x in windows) == k - 1
    x = torch.randn(1, 2, 1, 40)
    for stride in (1, 2, 3):
        for before, after in ((0, 0), ((k - 1) // 2, k - 1 - (k - 1) // 2), (k - 1, 0)):
            want = F.max_pool2d(F.pad(x, (before, after), value=-float("inf")), (1, k), (1, stride))
            got = x
            for i, (kk, b, a) in enumerate(zip(windows, split_pads(before, windows), split_pads(after, windows))):
                assert b < kk and a < kk
                s = stride if i == len(windows) - 1 else 1
                got = F.max_pool2d(F.pad(got, (b, a), value=-float("inf")), (1, kk), (1, s))
            assert torch.equal(got, want), (k, stride, before, after)


# ---- the command line ----------------------------------------------------------------------


def test_cli_fix(pool_model, tmp_path):
    from typer.testing import CliRunner

    from anedoctor.cli import app

    runner = CliRunner()
    out, js, page = tmp_path / "out.mlpackage", tmp_path / "fix.json", tmp_path / "fix.html"
    res = runner.invoke(
        app, ["fix", str(pool_model), "-o", str(out), "--select", "PA", "--json", str(js), "--html", str(page)]
    )
    assert res.exit_code == 0, res.output
    assert "max_pool_cascade [PA-6]" in res.output and out.is_dir()
    assert json.loads(js.read_text())["written"] and "<html" in page.read_text()
    res = runner.invoke(app, ["fix", str(pool_model), "-o", str(tmp_path / "none.mlpackage"), "--ignore", "PA-6"])
    assert res.exit_code == 0 and "nothing was written" in res.output and not (tmp_path / "none.mlpackage").exists()
    res = runner.invoke(app, ["fix", str(pool_model), "-o", str(pool_model)])
    assert res.exit_code == 2 and "must not be the input" in res.output and "Traceback" not in res.output


def test_check_points_at_the_pass_that_cures_a_cause(fixed):
    src, _, _, _ = fixed("dilated_conv_2d")
    causes = anedoctor.check(src).to_dict()["causes"]
    (dilated,) = [c for c in causes if c["rule"] == "PA-11"]
    assert "`anedoctor fix` applies it (pass dilated_conv_to_space_to_batch, exact)" in dilated["fix"]
    assert all("anedoctor fix` applies" not in c["fix"] for c in causes if not RULES[c["rule"]].fix_pass)


def test_ops_saved_without_names_are_rewritten(tmp_path):
    """coremltools 6 saved many ops without a name attribute: anedoctor's IR names them by their output, pymil's
    loader by a counter of its own. fix must still find the ops check flagged (before, every pass missed them)."""
    import shutil

    src = zoo.fp32_islands(tmp_path)
    unnamed = tmp_path / "unnamed.mlpackage"
    shutil.copytree(src, unnamed)
    spec_path = next(unnamed.rglob("model.mlmodel"))
    spec = ct.proto.Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    stripped = 0
    for block in spec.mlProgram.functions["main"].block_specializations.values():
        for op in block.operations:
            if op.type != "const" and "name" in op.attributes:
                del op.attributes["name"]
                stripped += 1
    spec_path.write_bytes(spec.SerializeToString())
    assert stripped > 10
    before = anedoctor.check(unnamed)
    assert any(f.rule.id == "DT-1" for p in before.placements for f in p.findings)
    report = fix(unnamed, tmp_path / "fixed.mlpackage")
    assert [a.pass_name for a in report.applied] == ["fp32_islands_to_fp16"] and report.written, str(report)
    assert set(report.applied[0].rewritten) <= {p.op.name for p in before.placements}  # the IR's names
    assert anedoctor.check(tmp_path / "fixed.mlpackage").summary["ane_fraction"] == 1.0
