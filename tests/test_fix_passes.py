"""The layout, pooling, folding and masking passes of ``anedoctor fix``: constant gathers -> slices (MS-1, with a
measured profile), linear -> 1x1 conv (PA-23), rank-4 layer_norm (DY-4), average pool decompositions (PA-5), shape
arithmetic folded to constants (DT-4), -inf masked_fill -> additive masks (OP-19) and a batch of one-pixel images ->
one wide image (SH-11, a latency gain). Each cures its rule on a model
that needs it, keeps the outputs, raises the ANE share and writes a package that reloads; each leaves alone the models
it must not touch."""

from __future__ import annotations

from pathlib import Path

import fix_zoo as zoo
import numpy as np
import pytest

import anedoctor
from anedoctor.rewrite import PASSES, fix
from anedoctor.rewrite.coreml_io import coremltools, load_program, op_types

ct = coremltools()
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

RNG = np.random.default_rng(2)


def rule_ops(report, rule_id: str) -> list[str]:
    return [p.op.name for p in report.placements if any(f.rule.id == rule_id for f in p.findings)]


def max_rel_err(got: dict, ref: dict) -> float:
    return max(float(np.abs(got[k].astype(np.float64) - ref[k]).max() / np.abs(ref[k]).max()) for k in ref)


IOS16 = {"chip": "a15", "os": "ios16", "compute_units": "cpu_and_ne"}
# case: (rule, pass, builder, check options)
CASES = {
    "rank5_linear": ("PA-23", "linear_to_conv", zoo.rank5_mlp, {}),
    "enumerated_layer_norm": ("DY-4", "layer_norm_to_rank4", zoo.enumerated_encoder, {"chip": "a15", "os": "ios16"}),
    "avg_pool_a12": ("PA-5", "pool_decompose", zoo.avg_pool_net, {"chip": "a12"}),
    "shape_arithmetic": ("DT-4", "fold_shape_arithmetic", zoo.shape_arithmetic_net, {}),
    "gather_off_ane": ("MS-1", "gather_to_slice", zoo.gather_net, {"profile": zoo.gather_profile()}),
    "masked_fill_runtime": ("OP-19", "select_to_additive_mask", zoo.masked_attention, IOS16),
    "masked_fill_causal": ("OP-19", "select_to_additive_mask", lambda d: zoo.masked_attention(d, causal=True), IOS16),
}


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """Build each case once, fix it once; tests look at the results."""
    return zoo.fix_once(tmp_path_factory, lambda case: (CASES[case][2], CASES[case][3]))


@pytest.mark.parametrize("case", list(CASES))
def test_pass_cures_its_rule_and_keeps_outputs(fixed, case):
    rule_id, pass_name, _, options = CASES[case]
    src, out, report, digest = fixed(case)
    assert report.written and out.is_dir(), str(report)
    assert [a.pass_name for a in report.applied] == [pass_name], str(report)
    assert report.applied[0].error <= PASSES[pass_name].tolerance <= (1e-4 if PASSES[pass_name].exact else 1e-2)
    before, after = anedoctor.check(src, **options), anedoctor.check(out, **options)
    rewritten = set(report.applied[0].rewritten)
    assert rewritten and rewritten <= set(rule_ops(before, rule_id))
    assert rule_ops(after, rule_id) == []
    assert after.summary["ane_fraction"] > before.summary["ane_fraction"]
    assert after.summary["ane_flops_fraction"] >= before.summary["ane_flops_fraction"]
    ref = anedoctor.run(src, seed=3)  # recomputed here rather than trusted from the report
    assert max_rel_err(anedoctor.run(out, inputs=ref.inputs, precision="fp32").outputs, ref.outputs) <= 1e-4
    load_program(out)
    spec_in = ct.models.MLModel(str(src), skip_model_load=True).get_spec().description
    spec_out = ct.models.MLModel(str(out), skip_model_load=True).get_spec().description
    assert spec_out.input == spec_in.input and [o.name for o in spec_out.output] == [o.name for o in spec_in.output]
    assert zoo.tree_hash(src) == digest


def test_linear_becomes_a_1x1_conv_in_bc1s(fixed):
    _, out, report, _ = fixed("rank5_linear")
    kinds = op_types(out)
    assert "linear" not in kinds and kinds.count("conv") == 4
    prog, _ = load_program(out)
    convs = [op for op in prog.functions["main"].operations if op.op_type == "conv"]
    assert all(op.x.shape[2] == 1 and op.weight.shape[2:] == (1, 1) for op in convs)  # (B, C, 1, S), 1x1 kernels


def test_layer_norms_run_at_rank4_and_keep_the_enumerated_shapes(fixed):
    src, out, report, _ = fixed("enumerated_layer_norm")
    prog, _ = load_program(out)
    norms = [op for op in prog.functions["main"].operations if op.op_type == "layer_norm"]
    assert len(norms) == 3 and all(op.x.rank == 4 for op in norms)
    shapes = ct.models.MLModel(str(out), skip_model_load=True).get_spec().description.input[0]
    assert sorted(list(s.shape) for s in shapes.type.multiArrayType.enumeratedShapes.shapes) == [
        [1, n, 256] for n in (64, 128, 256)
    ]
    x = {"x": RNG.standard_normal((1, 64, 256)).astype(np.float32)}  # a shape other than the default one
    ref = anedoctor.run(src, inputs=x, precision="fp32").outputs
    assert max_rel_err(anedoctor.run(out, inputs=x, precision="fp32").outputs, ref) <= 1e-4


def test_avg_pools_become_reduce_mean_and_halvings(fixed):
    _, out, _, _ = fixed("avg_pool_a12")
    kinds = op_types(out)
    assert kinds.count("reduce_mean") == 1 and kinds.count("avg_pool") == 2  # global 16x16; 4x4 s4 = 2 x (2x2 s2)


# ---- models the passes must leave alone -----------------------------------------------------


@pytest.mark.parametrize(
    "builder, options, pass_name",
    [
        (lambda d: zoo.rank5_mlp(d, shape=(8, 64, 128)), {}, "linear_to_conv"),  # rank 3: PA-23 silent
        (zoo.enumerated_encoder, {"chip": "a15", "os": "ios17"}, "layer_norm_to_rank4"),  # DY-4 out of scope
        (zoo.avg_pool_net, {"chip": "a17"}, "pool_decompose"),  # the pools are fine from H13 on
        (zoo.gather_net, {}, "gather_to_slice"),  # no profile: constant-index gathers are eligible (M4 evidence)
        (zoo.masked_attention, {**IOS16, "os": "ios17"}, "select_to_additive_mask"),  # OP-19 out of scope
    ],
    ids=["rank3_linear", "enumerated_ios17", "avg_pool_a17", "gather_without_profile", "masked_fill_ios17"],
)
def test_pass_not_attempted_where_its_rule_is_silent(tmp_path, builder, options, pass_name):
    (tmp_path / "in").mkdir()
    report = fix(builder(tmp_path / "in"), tmp_path / "out.mlpackage", **options)
    assert pass_name not in [a.pass_name for a in report.applied + report.dropped]
    assert not (tmp_path / "out.mlpackage").exists()


def test_avg_pool_without_an_exact_form_is_left_alone(tmp_path):
    """A12: a 3x3 stride-3 pool and a 14x14 stride-1 box filter both break PA-5, and neither decomposes exactly."""
    (tmp_path / "in").mkdir()
    src = zoo.avg_pool_net(tmp_path / "in", pools=((3, 3), (14, 1)))
    report = fix(src, tmp_path / "out.mlpackage", chip="a12")
    assert len(rule_ops(anedoctor.check(src, chip="a12"), "PA-5")) == 2
    assert [a.pass_name for a in report.applied] == []
    assert [(a.pass_name, a.reason) for a in report.dropped] == [
        ("pool_decompose", "no flagged op has a form this pass rewrites")
    ]
    assert not report.written and not (tmp_path / "out.mlpackage").exists()


def test_gather_to_slice_skips_irregular_indices(tmp_path):
    """The evenly spaced row crop becomes a slice; the irregular channel pick stays a gather (still MS-1), which keeps
    the graph off the ANE, so nothing is written."""
    (tmp_path / "in").mkdir()
    src = zoo.gather_net(tmp_path / "in", channels=np.array([0, 3, 4, 9]))
    report = fix(src, tmp_path / "out.mlpackage", profile=zoo.gather_profile())
    assert [a.rewritten for a in report.applied] == [["crop_rows_cast_fp16_cast_uint16"]]
    assert report.no_gain and not report.written and not (tmp_path / "out.mlpackage").exists()


def test_gather_to_slice_is_dropped_where_the_profile_has_slices_off_the_ane_too(tmp_path):
    (tmp_path / "in").mkdir()
    report = fix(zoo.gather_net(tmp_path / "in"), tmp_path / "out.mlpackage", profile=zoo.gather_profile(False))
    assert [a.pass_name for a in report.dropped] == ["gather_to_slice"]
    assert report.dropped[0].reason.startswith("MS-1 fires on pick_channels") and not report.applied
    assert not report.written and not (tmp_path / "out.mlpackage").exists()


# ---- the passes on their own: shapes the models above do not cover --------------------------


def apply(pass_name: str, src: Path, out: Path, options: dict | None = None) -> list[str]:
    """Run one pass on every op of ``src`` it matches; the names of the ops it rewrote, sorted."""
    target = anedoctor.check(src, **(options or {})).target
    names = {op.name for op in load_program(src)[0].functions["main"].operations}
    return sorted(n.split("_cast")[0] for n in PASSES[pass_name](target).transform(src, out, names))


def same_outputs(src: Path, out: Path) -> float:
    ref = anedoctor.run(src, seed=5)
    return max_rel_err(anedoctor.run(out, inputs=ref.inputs, precision="fp32").outputs, ref.outputs)


@pytest.mark.parametrize(
    "kind, reduction", [("avg_pool", "reduce_mean"), ("max_pool", "reduce_max"), ("l2_pool", "reduce_l2_norm")]
)
def test_pool_halvings_use_the_same_rows_when_sizes_do_not_divide(tmp_path, kind, reduction):
    pool = getattr(mb, kind)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 19, 22))], opset_version=ct.target.iOS17)
    def prog(x):
        a = pool(x=x, kernel_sizes=[8, 4], strides=[8, 4], pad_type="valid", name="blocks")
        b = pool(x=x, kernel_sizes=[19, 22], strides=[1, 1], pad_type="valid", name="global")
        c = pool(x=x, kernel_sizes=[4, 4], strides=[4, 4], pad_type="same", name="padded")  # left alone
        return a, b, c

    src = zoo.save(prog, tmp_path / "pools.mlpackage")
    assert apply("pool_decompose", src, tmp_path / "out.mlpackage", {"chip": "a12"}) == ["blocks", "global"]
    kinds = op_types(tmp_path / "out.mlpackage")
    assert kinds.count(kind) == 3 + 1 and kinds.count(reduction) == 1
    assert same_outputs(src, tmp_path / "out.mlpackage") <= 1e-4


def test_linear_to_conv_keeps_rank2_and_unbiased_linears(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3, 5, 7, 16)), mb.TensorSpec(shape=(6, 16))])
    def prog(x, v):
        w = (RNG.standard_normal((24, 16)) * 0.1).astype(np.float32)
        a = mb.linear(x=x, weight=w, bias=(RNG.standard_normal(24) * 0.1).astype(np.float32), name="biased")
        return a, mb.linear(x=v, weight=w, name="plain")

    src = zoo.save(prog, tmp_path / "linears.mlpackage")
    assert apply("linear_to_conv", src, tmp_path / "out.mlpackage") == ["biased", "plain"]
    assert "linear" not in op_types(tmp_path / "out.mlpackage")
    assert same_outputs(src, tmp_path / "out.mlpackage") <= 1e-4


def test_layer_norm_over_leading_axes_is_left_alone(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 16, 32))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.layer_norm(x=x, axes=[1], name="channels"), mb.layer_norm(x=x, axes=[1, 2], name="both")

    src = zoo.save(prog, tmp_path / "norms.mlpackage")
    assert apply("layer_norm_to_rank4", src, tmp_path / "out.mlpackage") == ["both"]
    assert same_outputs(src, tmp_path / "out.mlpackage") <= 1e-4


# ---- int32 shape arithmetic ----------------------------------------------------------------------


def test_coremltools_default_pipeline_already_folds_shape_arithmetic(tmp_path):
    """The fold pass only matters for packages saved without constant folding: the default pipeline folds the chain."""
    path = zoo.shape_arithmetic_net(tmp_path, trimmed=False)
    assert not {"shape", "gather", "mul", "concat"} & set(op_types(path))
    assert rule_ops(anedoctor.check(path), "DT-4") == []


def test_runtime_integers_are_not_folded(tmp_path):
    """An int32 model input (token ids, an index) is real runtime integer work: DT-4 fires, the fold pass has
    nothing to fold, and nothing is written."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 32, 64, 64), dtype=types.int32)], opset_version=ct.target.iOS17)
    def prog(ids):
        x = mb.cast(x=mb.add(x=ids, y=np.int32(1)), dtype="fp32")
        for _ in range(3):
            x = mb.relu(x=mb.conv(x=x, weight=(RNG.standard_normal((32, 32, 3, 3)) * 0.05).astype(np.float32)))
        return x

    src = zoo.save(prog, tmp_path / "ids.mlpackage")
    assert rule_ops(anedoctor.check(src), "DT-4")
    report = fix(src, tmp_path / "out.mlpackage")
    assert [(a.pass_name, a.reason) for a in report.dropped] == [
        ("fold_shape_arithmetic", "no flagged op has a form this pass rewrites")
    ]
    assert not report.applied and not (tmp_path / "out.mlpackage").exists()


def test_gather_to_slice_scalar_negative_and_strided_indices(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 12, 5))], opset_version=ct.target.iOS17)
    def prog(x):
        last = mb.gather(x=x, indices=np.int32(-1), axis=1, name="last")  # drops the axis
        every3 = mb.gather(x=x, indices=np.array([-11, -8, -5], np.int32), axis=-2, name="every3")
        odd = mb.gather(x=x, indices=np.array([4, 1], np.int32), axis=2, name="backwards")  # left alone
        return last, every3, odd

    src = zoo.save(prog, tmp_path / "gathers.mlpackage")
    assert apply("gather_to_slice", src, tmp_path / "out.mlpackage") == ["every3", "last"]
    assert op_types(tmp_path / "out.mlpackage").count("slice_by_index") == 2
    assert same_outputs(src, tmp_path / "out.mlpackage") == 0.0


def test_masks_become_one_add(fixed):
    """A constant causal mask is one constant added to the scores; a runtime mask is cast, scaled (once for the
    layers sharing it: the save deduplicates) and added."""
    for case, extra in (("masked_fill_causal", []), ("masked_fill_runtime", ["cast", "mul"])):
        _, out, _, _ = fixed(case)
        before, after = op_types(fixed(case)[0]), op_types(out)
        assert "select" not in after and after.count("add") == before.count("add") + before.count("select")
        assert all(0 < after.count(t) - before.count(t) <= before.count("select") for t in extra)


def test_masked_scores_returned_as_an_output_are_left_alone(tmp_path):
    """Without a softmax after it, -65504 + score is not -inf: verification drops the rewrite and writes nothing."""

    @mb.program(
        input_specs=[mb.TensorSpec((1, 64), dtype=types.fp16), mb.TensorSpec((1, 64), dtype=types.fp16)],
        opset_version=ct.target.iOS16,
    )
    def prog(x, m):
        w = RNG.normal(size=(64, 64)).astype(np.float16) * np.float16(0.1)
        h = mb.linear(x=mb.linear(x=x, weight=w), weight=w)
        return mb.select(cond=mb.greater(x=m, y=np.float16(0)), a=np.float16(-np.inf), b=h, name="scores")

    src = zoo.save(prog, tmp_path / "scores.mlpackage")
    report = fix(src, tmp_path / "out.mlpackage", **IOS16)
    assert [a.pass_name for a in report.dropped if a.pass_name == "select_to_additive_mask"] == [
        "select_to_additive_mask"
    ]
    assert not (tmp_path / "out.mlpackage").exists()


def test_a_batch_of_one_pixel_images_becomes_one_wide_image(tmp_path):
    """batch_to_width (SH-11, a note): the head conv over 256 one-pixel images runs over one 1x256 image, exactly; the
    note is gone and the estimate falls, though the transposes it adds may leave the ANE share of ops lower."""
    (tmp_path / "in").mkdir()
    src = zoo.pixel_batch_head(tmp_path / "in")
    digest = zoo.tree_hash(src)
    report = fix(src, tmp_path / "out.mlpackage", chip="a17")
    assert report.written and [a.pass_name for a in report.applied] == ["batch_to_width"], str(report)
    before, after = anedoctor.check(src, chip="a17"), anedoctor.check(tmp_path / "out.mlpackage", chip="a17")
    noted = [[p.op.name for p in r.placements if any(f.rule.id == "SH-11" for f in p.notes)] for r in (before, after)]
    assert len(noted[0]) == 1 and noted[1] == []
    assert after.summary["latency_ms"] < 0.5 * before.summary["latency_ms"]
    prog, _ = load_program(tmp_path / "out.mlpackage")
    convs = [op for op in prog.functions["main"].operations if op.op_type == "conv"]
    assert [tuple(op.x.shape) for op in convs] == [(1, 512, 1, 256)] * 4
    ref = anedoctor.run(src, seed=3)
    got = anedoctor.run(tmp_path / "out.mlpackage", inputs=ref.inputs, precision="fp32").outputs
    assert max_rel_err(got, ref.outputs) <= 1e-4 and zoo.tree_hash(src) == digest


def test_a_3x3_conv_over_small_images_is_not_folded(tmp_path):
    """SH-11 notes a padded 3x3 head too, but its pixels mix neighbours: batch_to_width finds no form to rewrite."""
    (tmp_path / "in").mkdir()
    src = zoo.pixel_batch_head(tmp_path / "in", kernel=3)
    assert any(f.rule.id == "SH-11" for p in anedoctor.check(src, chip="a17").placements for f in p.notes)
    report = fix(src, tmp_path / "out.mlpackage", chip="a17")
    dropped = {a.pass_name: a.reason for a in report.dropped}
    assert dropped.get("batch_to_width") == "no flagged op has a form this pass rewrites", str(report)
    assert not report.written and not (tmp_path / "out.mlpackage").exists()
