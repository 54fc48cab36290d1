"""anedoctor.compress: coremltools.optimize on small conv and transformer models, with size, placement and
accuracy figures checked against what the formats and the rules predict."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import anedoctor
from anedoctor.compress import SWEEP, Recipe, compress, sweep
from anedoctor.compress.analysis import placement_changes, rescaled_values
from anedoctor.errors import ModelError
from anedoctor.util import quiet_coremltools

ct = quiet_coremltools()
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types as mil_types  # noqa: E402

RNG = np.random.default_rng(0)


def conv_net(path: Path, target=None, channels: int = 64, size: int = 32) -> Path:
    """Three 3x3 convs; at 64x32x32 large enough that the predicted placement is the Neural Engine."""
    target = target or ct.target.iOS18

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, channels, size, size))], opset_version=target)
    def prog(x):
        for i in range(3):
            w = (RNG.standard_normal((channels, channels, 3, 3)) * 0.05).astype(np.float32)
            x = mb.relu(x=mb.conv(x=x, weight=w, bias=np.zeros(channels, np.float32), pad_type="same", name=f"conv{i}"))
        return x

    ct.convert(
        prog, convert_to="mlprogram", minimum_deployment_target=target, compute_precision=ct.precision.FLOAT16
    ).save(str(path))
    return path


class Block(nn.Module):
    """A pre-norm transformer block (multi-head attention + MLP)."""

    def __init__(self, dim=128, heads=4):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(self.norm1(x)).chunk(3, -1))
        x = x + self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))
        return x + self.mlp(self.norm2(x))


def transformer(path: Path) -> Path:
    torch.manual_seed(0)
    module, example = Block().eval(), torch.randn(1, 32, 128)
    traced = torch.jit.trace(module, example)
    ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=example.shape)],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT16,
    ).save(str(path))
    return path


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compress")
    return {
        "conv": conv_net(folder / "conv.mlpackage"),
        "conv17": conv_net(folder / "conv17.mlpackage", ct.target.iOS17, size=8),
        "conv48": conv_net(folder / "conv48.mlpackage", channels=48, size=8),
        "block": transformer(folder / "block.mlpackage"),
    }


@pytest.fixture(scope="module")
def conv_sweep(models, tmp_path_factory):
    """The default sweep on the conv model for an M4, keeping every compressed package."""
    return sweep(models["conv"], tmp_path_factory.mktemp("sweep"), chip="m4")


def by_label(s, label: str):
    return next(r for r in s.reports if r.recipe == label)


def test_palettize_4_shrinks_conv_weights_and_runs(models, tmp_path):
    before = digest(models["conv"])
    out = tmp_path / "p4.mlpackage"
    r = compress(models["conv"], out, palettize=4, chip="m4")
    assert digest(models["conv"]) == before  # the input is never modified
    assert r.weight_ratio <= 0.30 and r.size_after.package < r.size_before.package
    convs = [f for f in r.formats if f.type == "conv"]
    assert len(convs) == 3 and all(f.bits == 4 and f.format == "4-bit LUT per-tensor" for f in convs)
    result = anedoctor.run(out)  # the reference executor decompresses the LUT weights
    assert np.isfinite(result.outputs[next(iter(result.outputs))]).all()
    psnr = r.accuracy.outputs[0].psnr
    assert 10 < psnr < 60 and 0 < r.accuracy.outputs[0].rel_err < 1
    first = r.accuracy.first_drift  # the first conv reads a 4-bit weight: error starts there, from exact inputs
    assert first["op"].startswith("conv0") and first["psnr"] < 35 and math.isinf(first["input_psnr"])
    assert r.summary_after["ane"] == r.summary_before["ane"] > 0 and not r.changes
    before_ms, after_ms = r.latency
    assert (f"{before_ms:.3f} ms → {after_ms:.3f} ms" if after_ms is not None else "no estimate") in r.render()


def test_check_shows_weight_formats_it_did_not_make(conv_sweep):
    """A compressed package read by `check`: the format of every compressed weight is in the op's JSON and --explain."""
    compressed = by_label(conv_sweep, "int4 per-block 32")
    report = anedoctor.check(compressed.output, chip="m4")
    ops = {o["name"]: o for o in report.to_dict()["ops"]}
    convs = [o for o in ops.values() if o["type"] == "conv"]
    assert convs and all(o["weights"]["weight"].startswith("int4 per-block 32") for o in convs)
    assert "(compressed)" in report.explain(convs[0]["name"]) and "PA-29" in report.explain(convs[0]["name"])
    plain = anedoctor.check(compressed.source, chip="m4").to_dict()["ops"]
    assert not any("weights" in o for o in plain)


def test_more_bits_less_error(conv_sweep):
    psnr = {r.recipe: r.accuracy.outputs[0].psnr for r in conv_sweep.reports}
    assert psnr["palettize 8-bit"] > psnr["palettize 6-bit"] > psnr["palettize 4-bit"] + 5  # ~6 dB per bit


def test_transformer_each_way(models):
    recipes = (Recipe(palettize=4), Recipe(quantize="int8"), Recipe(quantize="int4", block_size=32), Recipe(prune=0.5))
    s = sweep(models["block"], recipes=recipes, chip="m4")
    p4, q8, q4, pruned = s.reports
    linears = {r.recipe: [f for f in r.formats if f.type == "linear"] for r in s.reports}
    assert all(len(v) == 4 for v in linears.values())  # qkv, out, two MLP layers
    assert all(f.granularity == "per-channel (axis 0)" and f.bits == 8 for f in linears["int8 per-channel"])
    assert all(f.format == "int4 per-block 32 (axis 1)" for f in linears["int4 per-block 32"])
    assert p4.weight_ratio <= 0.30 and 0.45 < q8.weight_ratio < 0.6  # int8 halves fp16 weights; scales and norms stay
    assert q8.accuracy.outputs[0].psnr > 35 and q8.accuracy.outputs[0].rel_err < 0.05
    assert q8.accuracy.min_psnr > q4.accuracy.min_psnr > 0 and q8.accuracy.min_psnr > p4.accuracy.min_psnr
    assert all(0 < r.accuracy.outputs[0].rel_err < 1 for r in (p4, q4, pruned))


def test_per_grouped_channel_palettization(models, tmp_path):
    r = compress(models["conv"], tmp_path / "g.mlpackage", palettize=4, per_grouped_channel=32)
    assert [f.format for f in r.formats] == ["4-bit LUT per-grouped-channel 32 (axis 0)"] * 3
    assert r.weight_ratio <= 0.30 and r.accuracy.outputs[0].psnr > 15


def test_int4_per_block_leaves_the_neural_engine(conv_sweep):
    """PA-29: the ANE takes only per-output-channel / per-tensor scales; per-block int4 convs move off it."""
    r = by_label(conv_sweep, "int4 per-block 32")
    assert r.formats and all(
        f.format == "int4 per-block 32 (axis 1)" and any(x.startswith("PA-29") for x in f.rules) for f in r.formats
    )
    assert r.summary_before["ane"] > 0 and r.summary_after["ane"] < r.summary_before["ane"]
    convs = [c for c in r.changes if c.type == "conv"]
    assert len(convs) == 3 and all(c.before == "ane" and c.after != "ane" for c in convs)
    assert all(any(why.startswith("PA-29") for why in c.why) for c in convs)
    assert not by_label(conv_sweep, "int8 per-channel").changes  # per-channel int8 stays where it was
    assert "  3 ops ane → " in r.render()  # one line per kind of change, not one per op
    page = replace(r, changes=convs * 2).html()  # the page too: a row per kind, its ops folded past the third
    assert page.count("<td class=n>6</td><td>ane</td>") == 1 and "and 3 more</summary>" in page


def test_a_renamed_op_after_a_placement_change_is_not_new():
    """coremltools renames ops when it compresses: an op of the same type on the same device under a new name is
    the old one, also after an op whose device changed."""

    def placed(name, kind, device, *rules):
        findings = [SimpleNamespace(rule=SimpleNamespace(id=r), message="why") for r in rules]
        return SimpleNamespace(op=SimpleNamespace(name=name, type=kind), device=device, findings=findings, notes=[])

    before = SimpleNamespace(placements=[placed("conv", "conv", "ane"), placed("relu", "relu", "cpu")])
    after = SimpleNamespace(placements=[placed("conv", "conv", "cpu", "PA-29"), placed("relu_2", "relu", "cpu")])
    assert [(c.op, c.before, c.after) for c in placement_changes(before, after)] == [("conv", "ane", "cpu")]


def test_pruning_and_joint_pruning(models, conv_sweep, tmp_path):
    pruned, joint = by_label(conv_sweep, "prune 50%"), by_label(conv_sweep, "prune 50% + palettize 4-bit")
    assert pruned.formats and all(f.format == "sparse, 50% zeros" for f in pruned.formats)
    assert 0.5 < pruned.weight_ratio < 0.65  # half the fp16 values plus a 1-bit mask
    assert joint.formats and all(f.format == "sparse, 50% zeros + 4-bit LUT per-tensor" for f in joint.formats)
    assert joint.weight_ratio < pruned.weight_ratio
    assert joint.accuracy.outputs[0].psnr < pruned.accuracy.outputs[0].psnr + 1
    nm = compress(models["conv17"], tmp_path / "nm.mlpackage", n_m="2:4")
    assert [f.format for f in nm.formats] == ["sparse, 50% zeros"] * 3


def test_w8a8_with_calibration_on_a_chip_without_fast_int8(models, tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=RNG.standard_normal((4, 1, 64, 32, 32)).astype(np.float32))  # 4 samples, stacked
    out = tmp_path / "w8a8.mlpackage"
    r = compress(models["conv"], out, quantize="int8", activations=calib, chip="m2")
    assert any(op.type == "quantize" for op in anedoctor.load(out).graphs[0].ops)
    assert any(x.startswith("Q-2") for f in r.formats for x in f.rules)  # int8-int8 doubles only from A17 Pro / M4
    assert r.accuracy.outputs[0].psnr > 20


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"quantize": "int8"}, "int8 per-channel (axis 0)"),
        ({"palettize": 4}, "4-bit LUT per-tensor"),
        ({"prune": 0.75}, "sparse, 75% zeros"),
    ],
)
def test_ios17_constexpr_forms(models, tmp_path, kwargs, expected):
    """An iOS 17 target gets coremltools' iOS 16 constexpr ops; the executor decompresses them too."""
    r = compress(models["conv17"], tmp_path / "c.mlpackage", **kwargs)
    assert [f.format for f in r.formats] == [expected] * 3
    assert 0 < r.accuracy.outputs[0].rel_err < 1 and math.isfinite(r.accuracy.outputs[0].psnr)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"quantize": "int4"}, "int4 weights needs an iOS 18"),
        ({"quantize": "int8", "block_size": 32}, "per-block quantization needs an iOS 18"),
        ({"palettize": 4, "per_grouped_channel": 8}, "per-grouped-channel palettization needs an iOS 18"),
    ],
)
def test_formats_the_deployment_target_lacks(models, tmp_path, kwargs, message):
    out = tmp_path / "x.mlpackage"
    with pytest.raises(ModelError, match=message):
        compress(models["conv17"], out, **kwargs)
    assert not out.exists()


def test_os_without_int4(models, tmp_path):
    with pytest.raises(ModelError, match="--os ios17: int4 weights needs iOS 18"):
        compress(models["conv"], tmp_path / "x.mlpackage", quantize="int4", os="ios17")


def test_block_size_must_divide_channels(models, tmp_path):
    with pytest.raises(ModelError, match=r"--block-size 32 does not divide axis 1 \(48\)"):
        compress(models["conv48"], tmp_path / "x.mlpackage", quantize="int4", block_size=32)
    with pytest.raises(ModelError, match=r"--per-grouped-channel 32 does not divide axis 0 \(48\)"):
        compress(models["conv48"], tmp_path / "x.mlpackage", palettize=4, per_grouped_channel=32)
    assert not (tmp_path / "x.mlpackage").exists()


def test_a_model_compressed_already_is_refused_not_copied(conv_sweep, models, tmp_path):
    """coremltools.optimize leaves compressed weights as they are: compressing the 4-bit variant again would write
    the same model under a new name, so it is a one-line error before any work; a dense model is not refused."""
    palettized = Path(by_label(conv_sweep, "palettize 4-bit").output)
    for call in (
        lambda: compress(palettized, tmp_path / "x.mlpackage", quantize="int8"),
        lambda: sweep(palettized, tmp_path / "sweep"),
    ):
        with pytest.raises(ModelError, match=r"no weight to compress: .* already \(3 weights: 4-bit LUT per-tensor\)"):
            call()
    assert not (tmp_path / "x.mlpackage").exists() and not (tmp_path / "sweep").exists()
    assert compress(models["conv"], tmp_path / "y.mlpackage", quantize="int8").weight_ratio < 0.6


def residual_net(path: Path, channels: int = 64, size: int = 16) -> Path:
    """Three residual blocks x + conv(relu(conv(x))), each followed by a relu (weights of a seed of their own); an fp16
    input, so the first quantize reads the model's input."""
    rng = np.random.default_rng(1)
    spec = mb.TensorSpec(shape=(1, channels, size, size), dtype=mil_types.fp16)

    @mb.program(input_specs=[spec], opset_version=ct.target.iOS18)
    def prog(x):
        for i in range(3):
            w1 = (rng.standard_normal((channels, channels, 3, 3)) * 0.05).astype(np.float32)
            w2 = (rng.standard_normal((channels, channels, 3, 3)) * 0.5).astype(np.float32)
            y = mb.relu(x=mb.conv(x=x, weight=w1, pad_type="same"))
            x = mb.relu(x=mb.add(x=x, y=mb.conv(x=y, weight=w2, pad_type="same"), name=f"res{i}"))
        return x

    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18).save(str(path))
    return path


def test_w8a8_residual_adds_are_compared_at_their_scale(tmp_path):
    """coremltools normalises a W8A8 add's input scales (one becomes 1), so the compressed add makes the sum divided
    by the other: compared by name, it read as PSNR 4.8 dB (and its dequantized inputs as identical) while the output
    is at 45 dB. The add is compared at its scale, and each dequantize with the value it is the int8 copy of."""
    source = residual_net(tmp_path / "res.mlpackage")
    samples = np.random.default_rng(2).standard_normal((4, 1, 64, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=samples)
    r = compress(source, tmp_path / "w8a8.mlpackage", quantize="int8", activations=tmp_path / "calib.npz", chip="a17")
    rows = [row for row in (r.accuracy.first_drift, r.accuracy.largest_growth) if row]
    assert rows and all(row["psnr"] > 30 for row in rows), rows
    compressed = anedoctor.load(tmp_path / "w8a8.mlpackage")
    factors = rescaled_values(compressed)
    adds = [op for op in compressed.graphs[0].ops if op.type == "add"]
    assert adds and all(abs(factors[op.outputs[0].name] - 1) > 0.1 for op in adds)  # rescaled by the pass


def test_w8a8_error_of_a_quantized_input_is_placed_at_its_int8_copy(tmp_path):
    """Calibrated on samples with an outlier, the int8 copy of the model's input is coarse: the error grows most
    there (the dequantize of the input, compared with the input itself), not at the conv that reads it."""
    source = residual_net(tmp_path / "res.mlpackage")
    samples = np.random.default_rng(2).standard_normal((4, 1, 64, 16, 16)).astype(np.float32)
    samples[:, 0, 0, 0, 0] = 300.0  # in every sample: the calibration averages their ranges
    np.savez(tmp_path / "calib.npz", x=samples)
    r = compress(source, tmp_path / "w8a8.mlpackage", quantize="int8", activations=tmp_path / "calib.npz", chip="a17")
    growth = r.accuracy.largest_growth
    assert growth["type"] == "dequantize" and growth["of"] == "x" and math.isinf(growth["input_psnr"]), growth
    assert "(dequantize, int8 copy of x)" in r.render()


def test_error_grows_where_compressed_weights_are_read(tmp_path):
    """The mean of a zero-mean conv output is near zero, so its relative error is large though the mean adds none:
    the op where the error grows is the conv that reads the palettized weights."""
    rng = np.random.default_rng(3)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 16, 16))], opset_version=ct.target.iOS18)
    def prog(x):
        w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
        return mb.reduce_mean(x=mb.conv(x=x, weight=w, pad_type="same", name="conv"), axes=[2, 3], name="mean")

    source = tmp_path / "mean.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18).save(str(source))
    r = compress(source, tmp_path / "p2.mlpackage", palettize=2)
    assert r.accuracy.largest_growth["type"] == "conv", r.accuracy.largest_growth


def test_calibration_data_is_checked(models, tmp_path):
    wrong_name, wrong_shape = tmp_path / "n.npz", tmp_path / "s.npz"
    np.savez(wrong_name, y=np.zeros((1, 64, 32, 32), np.float32))
    np.savez(wrong_shape, x=np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ModelError, match=r"n.npz: unknown input 'y'"):
        compress(models["conv"], tmp_path / "x.mlpackage", quantize="int8", activations=wrong_name)
    with pytest.raises(ModelError, match=r"s.npz: input 'x': shape \(1, 3, 32, 32\) does not match"):
        compress(models["conv"], tmp_path / "x.mlpackage", quantize="int8", activations=wrong_shape)
    with pytest.raises(ModelError, match="use it with --quantize int8"):
        compress(models["conv"], tmp_path / "x.mlpackage", palettize=4, activations=wrong_shape)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "nothing to do"),
        ({"palettize": 4, "quantize": "int8"}, "either --palettize or --quantize"),
        ({"palettize": 5}, "palettizes to 1, 2, 3, 4, 6, 8 bits"),
        ({"prune": 1.5}, "between 0 and 1"),
        ({"n_m": "4:2"}, "need 0 < N < M"),
        ({"prune": 0.7, "n_m": "2:4"}, "contradicts"),
        ({"block_size": 32}, "--block-size B needs --quantize"),
        ({"quantize": "int2"}, "choose int8 or int4"),
        ({"palettize": 4, "chip": "z9"}, "unknown chip"),
    ],
)
def test_bad_options(models, tmp_path, kwargs, message):
    with pytest.raises(ModelError, match=message):
        compress(models["conv"], tmp_path / "x.mlpackage", **kwargs)


def test_output_never_over_the_input(models, tmp_path):
    src = models["conv"]
    before = digest(src)
    for out in (src, src / "Data" / "x.mlpackage", src.parent):
        with pytest.raises(ModelError, match="input"):
            compress(src, out, palettize=4)
    (tmp_path / "notes.mlpackage").write_text("not a package")
    with pytest.raises(ModelError, match="not overwriting"):
        compress(src, tmp_path / "notes.mlpackage", palettize=4)
    assert digest(src) == before


def test_output_replaced_atomically(models, tmp_path):
    from anedoctor.compress.analysis import op_formats

    out = tmp_path / "o.mlpackage"
    compress(models["conv17"], out, quantize="int8")
    compress(models["conv17"], out, palettize=2)
    assert {f.format for f in op_formats(anedoctor.check(out))} == {"2-bit LUT per-tensor"}
    assert [p.name for p in tmp_path.iterdir()] == ["o.mlpackage"]  # no staging folder left behind


def test_sweep_marks_the_pareto_front(conv_sweep, tmp_path):
    s = conv_sweep
    assert [r.recipe for r in s.rows] == [r.label for r in SWEEP]
    done = [r for r in s.rows if not r.skipped]
    assert len(done) == 7
    assert max(done, key=lambda r: r.psnr).pareto and min(done, key=lambda r: r.weights).pareto
    timed = all(r.latency_ms is not None for r in done)  # latency joins the front when every recipe has it

    def costs(r):
        return (r.weights, -r.psnr) + ((r.latency_ms,) if timed else ())

    for r in done:
        dominated = any(all(a <= b for a, b in zip(costs(o), costs(r))) and costs(o) != costs(r) for o in done)
        assert dominated != r.pareto, r
    assert next(r for r in done if r.recipe == "int4 per-block 32").ane_fraction < s.original.ane_fraction
    kept = [Path(r.output) for r in s.reports]
    assert all(p.is_dir() for p in kept)
    assert all(np.isfinite(next(iter(anedoctor.run(p).outputs.values()))).all() for p in kept)  # the executor runs each
    text = s.render()
    assert "*" in text and "palettize 4-bit" in text
    page = s.to_html(tmp_path / "sweep.html")
    assert "<svg" in page and "<polyline" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


def test_sweep_skips_what_the_model_cannot_take(models):
    s = sweep(models["conv17"], recipes=(Recipe(palettize=4), Recipe(quantize="int4", block_size=32)))
    assert not s.rows[0].skipped and "needs an iOS 18" in s.rows[1].skipped
    assert math.isfinite(s.rows[0].psnr)


def test_reports_serialise(conv_sweep, tmp_path):
    r = by_label(conv_sweep, "palettize 6-bit")
    d = r.to_dict()
    assert d["recipe"] == "palettize 6-bit" and d["latency_ms"]["after"] == r.latency[1]
    assert d["formats"][0]["format"] == "6-bit LUT per-tensor" and d["accuracy"]["outputs"][0]["psnr"] > 0
    r.to_json(tmp_path / "r.json")
    html = r.to_html(tmp_path / "r.html")
    assert "6-bit LUT per-tensor" in html and (tmp_path / "r.json").read_text().startswith("{")


def test_cli(models, tmp_path):
    from typer.testing import CliRunner

    from anedoctor.cli import app

    runner = CliRunner()
    out, page = tmp_path / "c.mlpackage", tmp_path / "c.html"
    ok = runner.invoke(
        app,
        [
            "compress",
            str(models["conv17"]),
            "-o",
            str(out),
            "--quantize",
            "int8",
            "--chip",
            "m2",
            "--json",
            str(tmp_path / "c.json"),
            "--html",
            str(page),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "recipe: int8 per-channel · Apple M2" in ok.output and "int8 per-channel (axis 0)" in ok.output
    assert out.is_dir() and page.read_text().startswith("<!doctype html>")
    bad = runner.invoke(
        app, ["compress", str(models["conv17"]), "-o", str(tmp_path / "d.mlpackage"), "--quantize", "int4"]
    )
    assert bad.exit_code == 2 and "int4 weights needs an iOS 18" in bad.output and len(bad.output.splitlines()) == 1
    assert not (tmp_path / "d.mlpackage").exists()


def test_a_note_says_compressed_weights_gain_little_latency_before_ios_18(models, tmp_path):
    """Apple's palettized CNNs ran about as fast as fp16 on iOS 17: the report says why the latency barely moves."""
    for os, expected in (("ios17", True), ("ios18", False)):
        r = compress(models["conv17"], tmp_path / f"{os}.mlpackage", palettize=4, chip="a17", os=os)
        assert any("at their fp16 size" in n for n in r.notes) is expected
        assert r.summary_after["latency_ms"] <= r.summary_before["latency_ms"]
