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
    for name, cls in rewrite.PASSES.items():
        base = PASSES[name]
        assert issubclass(cls, base) and (cls.name, cls.rules, cls.exact) == (base.name, base.rules, base.exact)
        assert cls.doc() == base.doc() and "Given:" in cls.doc() and cls.coreai_form
    without = [cls for name, cls in PASSES.items() if name not in rewrite.PASSES]
    assert without and rewrite.implementation(without[0], Path("m.aimodel")) is None  # the driver skips it, saying so
    assert rewrite.implementation(without[0], Path("m.mlpackage")) is without[0]


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
