"""`anedoctor fix` on Core AI .aimodel folders: the passes' Core AI implementations, written with coreai-core,
verified with anedoctor's executor and coreai-core's CPU runtime. Models are converted with coreai-torch here."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "coreai_torch",
    reason="coreai-core / coreai-torch are not installed (pip install --pre "
    "'anedoctor[coreai]'; wheels exist for Linux x86_64 and macOS arm64 only)",
)
import torch
import torch.nn.functional as F

import anedoctor
from anedoctor.errors import ModelError
from anedoctor.loaders import coreai_tools
from anedoctor.rewrite import PASSES
from anedoctor.rewrite import coreai as rewrite


class Front(torch.nn.Module):
    """An fp16 front end with the three blockers the Core AI passes cure: a dilation-8 conv (PA-11), a 9x9
    max pool (PA-6) and a softmax computed in fp32 between fp16 ops (DT-1, CAI-3)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 64, 3, padding=1)
        self.context = torch.nn.Conv2d(64, 64, 3, padding=8, dilation=8)
        self.head = torch.nn.Conv2d(64, 64, 1)
        self.gate = torch.nn.Conv2d(64, 64, 1)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        y = torch.relu(self.context(y))
        y = F.max_pool2d(y, 9, stride=1)
        w = F.softmax(y, dim=1, dtype=torch.float32).half()
        return self.gate(torch.relu(self.head(y)) * w)


def rules_of(report) -> set[str]:
    """Rule ids of every finding and advisory note (CAI-3 is a note)."""
    return {f.rule.id for p in report.placements for f in p.findings + p.notes}


def relative_error(a: dict, b: dict) -> float:
    (name,) = a
    x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
    return float(np.abs(x - y).max() / np.abs(x).max())


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("front")
    path, _ = coreai_tools.convert_module(Front().eval().half(), torch.randn(1, 3, 64, 64).half(), folder)
    return path


@pytest.fixture(scope="module")
def fixed(front):
    """`anedoctor fix` through the CLI, the exact passes only."""
    from typer.testing import CliRunner

    from anedoctor.cli import app

    before = (front / "main.mlirb").read_bytes()
    out, page = front.parent / "fixed.aimodel", front.parent / "fix.json"
    result = CliRunner().invoke(app, ["fix", str(front), "-o", str(out), "--select", "PA-11,PA-6", "--json", str(page)])
    assert result.exit_code == 0, result.output
    assert (front / "main.mlirb").read_bytes() == before  # the input is never modified
    return out, json.loads(page.read_text())


def test_passes_share_name_rules_and_docs_with_the_ml_program_passes():
    own = [cls for name, cls in rewrite.PASSES.items() if name not in PASSES]  # no ML Program form
    for name, cls in rewrite.PASSES.items():
        base = PASSES.get(name, cls)
        assert issubclass(cls, base) and (cls.name, cls.rules, cls.exact) == (base.name, base.rules, base.exact)
        assert cls.doc() == base.doc() and "Given:" in cls.doc() and cls.coreai_form
    assert [cls.name for cls in own] == ["max_pool_pad_to_replicate"]
    assert rewrite.passes(Path("m.aimodel")) == [*PASSES.values(), *own]  # tried on .aimodel only
    assert rewrite.passes(Path("m.mlpackage")) == list(PASSES.values())
    without = [cls for name, cls in PASSES.items() if name not in rewrite.PASSES]
    assert without and rewrite.implementation(without[0], Path("m.aimodel")) is None  # the driver skips it, saying so
    assert rewrite.implementation(without[0], Path("m.mlpackage")) is without[0]
    assert "EnumeratedShapes" in rewrite.why_not(PASSES["layer_norm_to_rank4"])


def test_fix_writes_an_aimodel_coreai_core_loads_and_the_rules_are_gone(front, fixed):
    out, page = fixed
    assert page["written"] and [a["pass_name"] for a in page["applied"]] == [
        "dilated_conv_to_space_to_batch",
        "max_pool_cascade",
    ]
    digest = hashlib.sha256((out / "main.mlirb").read_bytes()).digest()
    assert (out / "main.hash").read_bytes() == digest  # written by coreai-core's own save_asset
    assert json.loads((out / "metadata.json").read_text())["producer"].startswith("coreai-core")
    before, after = anedoctor.check(str(front)), anedoctor.check(str(out))
    assert {"PA-11", "PA-6"} <= rules_of(before) and not {"PA-11", "PA-6"} & rules_of(after)
    assert after.summary["ane_fraction"] > before.summary["ane_fraction"]
    convs = [p.op for p in after.placements if p.op.type == "conv"]
    assert len(convs) == 4 and all(list(op.param("dilations")) == [1, 1] for op in convs)
    assert [p.op.type for p in after.placements].count("max_pool") == 2
    undilated = next(op for op in convs if op.input("x").type.shape[0] == 64)  # 8x8 sub-images in the batch
    line = inspect.getsourcelines(Front.forward)[1] + 2  # `self.context(y)`, the third line of forward
    assert (Path(undilated.source.file).name, undilated.source.line) == (Path(__file__).name, line)


def test_fixed_model_computes_the_same_with_both_runtimes(front, fixed):
    out, _ = fixed
    x = {"input_0": np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float16)}
    assert relative_error(coreai_tools.run_coreai(front, x), coreai_tools.run_coreai(out, x)) <= 1e-4
    ours = anedoctor.run(str(front), x).outputs
    assert relative_error(ours, anedoctor.run(str(out), x).outputs) <= 1e-4
    assert relative_error(ours, coreai_tools.run_coreai(out, x)) <= 1e-2  # fp16 end to end: the runtimes round apart


def test_fp32_island_becomes_fp16_without_casts(front, tmp_path):
    report = anedoctor.check(str(front))
    flagged = {p.op.name for p in report.placements if "DT-1" in {f.rule.id for f in p.findings}}
    assert {"CAI-3", "DT-1"} <= rules_of(report) and flagged
    out = tmp_path / "half.aimodel"
    p = rewrite.Fp32IslandsToFp16CoreAI(report.target)
    assert p.transform(front, out, flagged) == sorted(flagged)
    after = anedoctor.check(str(out))
    assert not {"CAI-3", "DT-1"} & rules_of(after)
    assert [op.type for op in after.model.ops].count("cast") == 0  # the island's two casts are gone
    assert len(after.model.ops) == len(report.model.ops) - 2
    x = {"input_0": np.random.default_rng(2).standard_normal((1, 3, 64, 64)).astype(np.float16)}
    error, broken = rewrite.verify_runtime(p, front, out, x)
    assert broken is None and 0 < error <= p.tolerance


def test_fp32_model_keeps_fp32_io_with_casts_at_the_edges(tmp_path):
    torch.manual_seed(3)
    upsample = torch.nn.Upsample(scale_factor=2, mode="bilinear")  # its scale and offset operands must stay f32
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), upsample).eval()
    src, _ = coreai_tools.convert_module(module, torch.randn(1, 3, 8, 8), tmp_path)
    report = anedoctor.check(str(src))
    flagged = {p.op.name for p in report.placements if "DT-1" in {f.rule.id for f in p.findings}}
    out = tmp_path / "half.aimodel"
    assert rewrite.Fp32IslandsToFp16CoreAI(report.target).transform(src, out, flagged)
    model = anedoctor.load(str(out))
    graph = model.graphs[0]
    assert graph.inputs[0].type.dtype == "fp32" and graph.outputs[0].type.dtype == "fp32"
    assert [op.type for op in model.ops][0] == "cast" and [op.type for op in model.ops][-1] == "cast"
    assert all(v.type.dtype == "fp16" for op in model.ops[1:-1] for v in op.outputs)
    resize = next(op for op in model.ops if op.type == "resize_bilinear")
    assert resize.outputs[0].type.dtype == "fp16"
    x = {"input_0": np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    assert relative_error(coreai_tools.run_coreai(src, x), coreai_tools.run_coreai(out, x)) <= 1e-2


def test_bad_outputs_and_invalid_rewrites_fail_with_one_line(front, tmp_path):
    with pytest.raises(ModelError, match=r"\.aimodel"):
        anedoctor.fix(str(front), tmp_path / "x.mlpackage")
    with pytest.raises(ModelError, match="must not be the input"):
        anedoctor.fix(str(front), front / "inner.aimodel")
    program = rewrite.Program(front)
    with program.context, program.b.ir.Location.unknown():
        conv = next(o for o in program.ops.values() if o.name == "coreai.conv2d")
        conv.results[0].set_type(program.b.ir.RankedTensorType.get([1, 1, 1, 1], program.b.ir.F16Type.get()))
    with pytest.raises(ModelError, match="coreai-core refuses the rewritten program") as e:
        program.save(tmp_path / "broken.aimodel")
    assert "\n" not in str(e.value) and not (tmp_path / "broken.aimodel").exists()


def converted(module: torch.nn.Module, shape: tuple[int, ...], folder: Path) -> Path:
    torch.manual_seed(0)
    return coreai_tools.convert_module(module.eval().half(), torch.randn(*shape).half(), folder)[0]


def applied(source: Path, out: Path, name: str, rule: str, chip: str | None = None) -> tuple[list[str], object]:
    """Apply one Core AI pass to the ops its rule flags; returns the rewritten op names and the check before."""
    report = anedoctor.check(str(source), chip=chip)
    flagged = {p.op.name for p in report.placements if rule in {f.rule.id for f in p.findings}}
    assert flagged, f"{rule} does not fire on {source.name}"
    return rewrite.PASSES[name](report.target).transform(source, out, flagged), report


def assert_same_outputs(source: Path, out: Path, shape: tuple[int, ...], tolerance: float = 1e-4) -> None:
    """The rewrite computes what the original computes, in anedoctor's executor and in coreai-core's runtime."""
    x = {"input_0": np.random.default_rng(4).standard_normal(shape).astype(np.float16)}
    assert relative_error(anedoctor.run(str(source), x).outputs, anedoctor.run(str(out), x).outputs) <= tolerance
    assert relative_error(coreai_tools.run_coreai(source, x), coreai_tools.run_coreai(out, x)) <= tolerance


class LmHead(torch.nn.Module):
    """A decoder tail whose vocabulary (20000) exceeds the A15's axis limit of 16384 (SH-1)."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(64)
        self.lm_head = torch.nn.Linear(64, 20000)

    def forward(self, x):
        return self.lm_head(self.norm(x))


def test_split_long_linear_splits_the_lm_head_through_fix(tmp_path):
    src, out = converted(LmHead(), (1, 16, 64), tmp_path), tmp_path / "split.aimodel"
    report = anedoctor.fix(str(src), out, chip="a15", select="SH-1")
    assert [a.pass_name for a in report.applied] == ["split_long_linear"] and report.written
    before, after = anedoctor.check(str(src), chip="a15"), anedoctor.check(str(out), chip="a15")
    assert [p.op.type for p in before.placements] == ["layer_norm", "transpose", "matmul", "add"]
    assert set(report.applied[0].rewritten) == {p.op.name for p in before.placements[1:]}  # the bias add too
    types = [p.op.type for p in after.placements]
    assert types == ["layer_norm", "matmul", "add", "matmul", "add", "concat"]  # two blocks of 10000, then joined
    assert all(p.op.outputs[0].type.shape[-1] == 10000 for p in after.placements if p.op.type in ("matmul", "add"))
    assert {p.op.type for p in after.placements if "SH-1" in {f.rule.id for f in p.findings}} == {"concat"}
    assert [v.name for v in after.model.graphs[0].outputs] == [v.name for v in before.model.graphs[0].outputs]
    assert after.summary["latency_ms"] < before.summary["latency_ms"]
    assert_same_outputs(src, out, (1, 16, 64))


class WindowAttention(torch.nn.Module):
    """Swin-style 8x8 windows over a batch of 2: a rank-6 reshape -> transpose -> relu, add, softmax -> reshape,
    which coreai-torch keeps at rank 6 (SH-4)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(64, 64, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        b, c, h, w = x.shape
        t = x.view(b, c, h // 8, 8, w // 8, 8).permute(0, 2, 4, 1, 3, 5)
        t = torch.softmax(torch.relu(t) + 1, dim=-1)
        return self.conv(t.reshape(-1, c, 8, 8))


WINDOWS_INPUT = (2, 64, 32, 32)


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    return converted(WindowAttention(), WINDOWS_INPUT, tmp_path_factory.mktemp("windows"))


def ranks(report) -> set[int]:
    return {len(v.type.shape) for p in report.placements for v in p.op.outputs}


def test_collapse_high_rank_leaves_no_rank6_tensor(windows, tmp_path):
    out = tmp_path / "rank4.aimodel"
    report = anedoctor.fix(str(windows), out)
    assert [a.pass_name for a in report.applied] == ["collapse_high_rank"] and report.written
    before, after = anedoctor.check(str(windows)), anedoctor.check(str(out))
    sh4 = [p.op for p in before.placements if "SH-4" in {f.rule.id for f in p.findings}]
    assert [op.type for op in sh4] == ["reshape", "transpose", "relu", "add", "softmax", "reshape"]
    assert set(report.applied[0].rewritten) == {op.name for op in sh4[:-1]}  # the last reshape stays, reading rank 4
    assert max(ranks(before)) == 6 and max(ranks(after)) == 4 and "SH-4" not in rules_of(after)
    softmax = next(p.op for p in after.placements if p.op.type == "softmax")
    assert softmax.outputs[0].type.shape == (32, 64, 8, 8) and int(softmax.param("axis")) == 3
    assert before.summary["ane_fraction"] == 0.0 and after.summary["ane_fraction"] > 0.9
    assert_same_outputs(windows, out, WINDOWS_INPUT)


def test_high_rank_transpose_alone_becomes_rank4_steps(windows, tmp_path):
    out = tmp_path / "steps.aimodel"
    rewritten, before = applied(windows, out, "high_rank_transpose_to_rank4", "SH-4")
    assert {op.type for op in before.model.ops if op.name in rewritten} == {"reshape", "transpose"}
    after = anedoctor.check(str(out))
    transposes = [p.op for p in after.placements if p.op.type == "transpose"]
    assert len(transposes) >= 2 and all(len(op.outputs[0].type.shape) == 4 for op in transposes)
    still = {p.op.type for p in after.placements if "SH-4" in {f.rule.id for f in p.findings}}
    assert still == {"reshape", "relu", "add", "softmax"}  # the elementwise ops are collapse_high_rank's
    assert_same_outputs(windows, out, WINDOWS_INPUT)


class SwapInWindows(torch.nn.Module):
    """A rank-6 transpose whose axes fall into three runs (0-3, 5, 4): one rank-3 transpose is enough."""

    def forward(self, x):
        return (x.view(2, 2, 4, 4, 4, 4).transpose(-1, -2) * 2).reshape(2, 32, 16)


def test_high_rank_transpose_of_few_axis_runs_is_one_transpose(tmp_path):
    src, out = converted(SwapInWindows(), (2, 32, 16), tmp_path), tmp_path / "swap.aimodel"
    applied(src, out, "collapse_high_rank", "SH-4")
    after = anedoctor.check(str(out))
    (transpose,) = [p.op for p in after.placements if p.op.type == "transpose"]
    assert transpose.outputs[0].type.shape == (64, 4, 4) and max(ranks(after)) <= 4
    assert_same_outputs(src, out, (2, 32, 16), tolerance=0.0)


class Pools(torch.nn.Module):
    """A padded 3x3 stride-2 max pool (coreai-torch pads with -inf first: PA-12), a 4x4 stride-4 max pool and global
    8x8 max and average pools (strides 4 and 8 > 2: PA-5 on A12/A13)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x):
        y = F.max_pool2d(self.conv(x), 3, stride=2, padding=1)
        y = self.conv(F.max_pool2d(self.conv(y), 4, stride=4))
        return self.conv(y) + F.max_pool2d(y, 8) + F.avg_pool2d(y, 8)


class ContextNet(torch.nn.Module):
    """The fix zoo's torch_context_net, converted with coreai-torch: a dilation-10 conv (PA-11) and a 15x15 stride-1
    max pool with padding 7, which coreai-torch writes as a -inf pad (PA-12) and a 15x15 pool (PA-6)."""

    def __init__(self):
        super().__init__()
        relu = torch.nn.ReLU
        self.stem = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, 2, 1), relu(), torch.nn.Conv2d(32, 32, 3, 1, 1), relu()
        )
        self.context = torch.nn.Conv2d(32, 32, 3, padding=10, dilation=10)
        self.pool = torch.nn.MaxPool2d(15, stride=1, padding=7)
        self.head = torch.nn.Sequential(torch.nn.Conv2d(32, 32, 3, 1, 1), relu(), torch.nn.Conv2d(32, 4, 1))

    def forward(self, x):
        return self.head(self.pool(torch.relu(self.context(self.stem(x)))))


def test_context_net_runs_wholly_on_the_ane_after_fix(tmp_path):
    src, out = converted(ContextNet(), (1, 3, 128, 128), tmp_path), tmp_path / "fixed.aimodel"
    report = anedoctor.fix(str(src), out)
    # without the replicate pad the -inf pad keeps the pools off the ANE: the cascade, tried first, can lose ANE share
    # while the pads are -inf, and is then retried on the result
    assert sorted(a.pass_name for a in report.applied) == [
        "dilated_conv_to_space_to_batch",
        "max_pool_cascade",
        "max_pool_pad_to_replicate",
    ]
    assert not report.dropped
    before, after = anedoctor.check(str(src)), anedoctor.check(str(out))
    assert {"PA-11", "PA-6", "PA-12"} <= rules_of(before) and not {"PA-11", "PA-6", "PA-12"} & rules_of(after)
    assert before.summary["ane_fraction"] < 0.5 and after.summary["ane_fraction"] == 1.0
    assert_same_outputs(src, out, (1, 3, 128, 128))


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    return converted(Pools(), (1, 16, 64, 64), tmp_path_factory.mktemp("pools"))


def test_max_pool_padding_replicates_the_border_instead_of_minus_infinity(pools, tmp_path):
    out = tmp_path / "replicate.aimodel"
    rewritten, before = applied(pools, out, "max_pool_pad_to_replicate", "PA-12")
    pad = next(p.op for p in before.placements if p.op.name in rewritten)
    assert pad.param("mode") == "constant" and float(pad.input("constant_val").data()) == -np.inf
    after = anedoctor.check(str(out))
    assert "PA-12" not in rules_of(after) and len(after.placements) == len(before.placements)
    assert next(p.op for p in after.placements if p.op.name == pad.name).param("mode") == "replicate"
    assert_same_outputs(pools, out, (1, 16, 64, 64), tolerance=0.0)  # the same maxima


def test_replicated_windows_holds_only_where_every_window_reads_the_border():
    from anedoctor.rewrite.coreai_passes import replicated_windows

    assert replicated_windows(64, 1, 1, 3, 2, 1, 32)  # torch's 3x3 stride-2 padding-1 pool
    assert replicated_windows(10, 2, 2, 5, 1, 1, 10)
    assert not replicated_windows(5, 1, 1, 2, 1, 3, 4)  # dilation 3 skips the border next to the padding
    assert not replicated_windows(4, 3, 0, 3, 1, 1, 5)  # a window of padding only
    assert not replicated_windows(64, 1, 1, 3, 2, 1, 31)  # not the output size these pads give


def test_pool_decompose_on_a12(pools, tmp_path):
    out = tmp_path / "decomposed.aimodel"
    rewritten, before = applied(pools, out, "pool_decompose", "PA-5", chip="a12")
    assert sorted(op.type for op in before.model.ops if op.name in rewritten) == ["avg_pool", "max_pool", "max_pool"]
    after = anedoctor.check(str(out), chip="a12")
    assert "PA-5" in rules_of(before) and "PA-5" not in rules_of(after)
    pools_after = [p.op for p in after.placements if p.op.type == "max_pool"]
    windows = sorted(tuple(int(k) for k in op.param("kernel_sizes")) for op in pools_after)
    assert windows == [(2, 2), (2, 2), (3, 3)]  # the 4x4 pool as two 2x2 halvings; the padded 3x3 stays
    types = [p.op.type for p in after.placements]
    assert (types.count("reduce_max"), types.count("reduce_mean"), types.count("avg_pool")) == (1, 1, 0)  # global
    assert_same_outputs(pools, out, (1, 16, 64, 64))  # a mean, not a sum then a division: rounding moves


def test_fix_tries_the_core_ai_passes(pools, tmp_path):
    # an A13: on an A12, without the CPU's matrix unit, the first conv already runs on the ANE and decomposing
    # the pools no longer raises the ANE share of ops, so fix keeps only the padding pass there
    report = anedoctor.fix(str(pools), dry_run=True, chip="a13")
    assert {a.pass_name for a in report.applied} == {"pool_decompose", "max_pool_pad_to_replicate"}
    assert all(a.exact and a.error <= 1e-4 for a in report.applied)  # verified by both runtimes
    assert not report.written and not list(tmp_path.iterdir())


class LongContraction(torch.nn.Module):
    """A linear summing 40000 inputs, over the ANE's 32768 (PA-22)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(40000, 16)

    def forward(self, x):
        return self.proj(x)


def test_split_long_contraction_and_the_fp16_runtime_check(tmp_path):
    src, out = converted(LongContraction(), (1, 4, 40000), tmp_path), tmp_path / "blocks.aimodel"
    report = anedoctor.fix(str(src), out, select="PA-22")
    assert [a.pass_name for a in report.applied] == ["split_long_contraction"] and report.written
    after = anedoctor.check(str(out))
    assert "PA-22" not in rules_of(after)
    assert [p.op.outputs[0].type.shape for p in after.placements if p.op.type == "slice_by_index"] == [
        (1, 4, 20000)
    ] * 2
    x = {"input_0": np.random.default_rng(5).standard_normal((1, 4, 40000)).astype(np.float16)}
    exact = anedoctor.run(str(src), x).outputs  # fp32
    assert relative_error(exact, anedoctor.run(str(out), x).outputs) <= 1e-4
    # coreai-core sums in fp16: the original is itself ~1e-2 off the fp32 result, and the blocks land elsewhere
    p = rewrite.PASSES["split_long_contraction"]
    assert rewrite.verify_runtime(p, src, out, x)[1] is not None
    assert rewrite.verify_runtime(p, src, out, x, exact)[1] is None
    torch.manual_seed(1)
    other = coreai_tools.convert_module(LongContraction().half(), torch.randn(1, 4, 40000).half(), tmp_path / "o")[0]
    broken = rewrite.verify_runtime(p, src, other, x, exact)[1]  # another linear: far from the fp32 result
    assert broken and "from the fp32 result" in broken


class Rank5Mlp(torch.nn.Module):
    """An MLP over the last axis of a rank-5 tensor: each matmul has depth > 1 (PA-23)."""

    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(128, 128), torch.nn.Linear(128, 32, bias=False)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def test_linear_to_conv_runs_rank5_linears_as_1x1_convs(tmp_path):
    src, out = converted(Rank5Mlp(), (1, 4, 8, 64, 128), tmp_path), tmp_path / "conv.aimodel"
    rewritten, before = applied(src, out, "linear_to_conv", "PA-23")
    assert sorted(op.type for op in before.model.ops if op.name in rewritten) == ["matmul"] * 2 + ["transpose"] * 2
    after = anedoctor.check(str(out))
    convs = [p.op for p in after.placements if p.op.type == "conv"]
    assert [op.outputs[0].type.shape for op in convs] == [(32, 128, 1, 64), (32, 32, 1, 64)]  # (B, C, 1, S)
    assert "PA-23" not in rules_of(after) and "matmul" not in {p.op.type for p in after.placements}
    x = {"input_0": np.random.default_rng(6).standard_normal((1, 4, 8, 64, 128)).astype(np.float16)}
    assert relative_error(anedoctor.run(str(src), x).outputs, anedoctor.run(str(out), x).outputs) <= 1e-4
    error, broken = rewrite.verify_runtime(
        rewrite.PASSES["linear_to_conv"], src, out, x, anedoctor.run(str(src), x).outputs
    )
    assert broken is None and error < 1e-2
