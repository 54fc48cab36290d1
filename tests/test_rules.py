"""Per-rule fixtures, in the spirit of ruff's: every rule fires on its documented example and
stays quiet on its near-miss, checked end to end through ``anedoctor.check`` on a chip and OS
where the rule applies. Plus the registry's own contract (unique ids, complete documentation)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from coremltools.proto import Model_pb2
from google.protobuf import text_format

import anedoctor
from anedoctor.hardware import CHIPS, Target, parse_os
from anedoctor.rules import CONFIDENCE, RULES, markdown_table, rule
from anedoctor.rules.base import FORMAT_NAMES

OS_VERSIONS = {
    "ios": ("ios18", "ios17", "ios16", "ios15", "ios14", "ios13", "ios12", "ios26", "ios27"),
    "macos": ("macos15", "macos14", "macos13", "macos12", "macos11", "macos26", "macos27"),
}
COREAI_MISSING = (
    "Core AI example: coreai-core and coreai-torch are not importable (pip install --pre "
    "'anedoctor[coreai]'; wheels for Linux x86_64 and macOS arm64 only)"
)


def targets() -> list[Target]:
    """Every plausible chip/OS pair: chips newest ANE first, OS versions the chip can run."""
    chips = sorted(CHIPS.values(), key=lambda c: (-c.tier, c.platform != "ios"))
    return [
        Target(c, os, False, False)
        for c in chips
        for os in map(parse_os, OS_VERSIONS[c.platform])
        if os.ios >= c.launch_os
    ]


TARGETS = targets()


def target_for(r) -> Target:
    """The first (newest) chip/OS pair on which the rule applies."""
    hits = [t for t in TARGETS if r.applies(t)]
    assert hits, f"{r.id}: its `when` holds on no chip/OS"
    return hits[0]


WEIGHT_SIZES = {  # NeuralNetwork layers whose examples leave the weight values out: layer -> declared size
    "embedding": lambda p: p.inputDim * p.outputChannels,
    "embeddingND": lambda p: p.vocabSize * p.embeddingSize,
    "batchedMatmul": lambda p: p.weightMatrixFirstDimension * p.weightMatrixSecondDimension,
}


def fill_zero_weights(spec) -> None:
    """Give the weights an example leaves out zeros of the declared size."""
    for layer in spec.neuralNetwork.layers:
        kind = layer.WhichOneof("layer")
        p = getattr(layer, kind)
        if kind in WEIGHT_SIZES and not p.weights.floatValue:
            p.weights.floatValue.extend([0.0] * WEIGHT_SIZES[kind](p))


def build_torch(example):
    """Run an Example's PyTorch code and convert its ``module`` the way ``anedoctor.check(..., via=...)`` does."""
    if not all(importlib.util.find_spec(m) for m in ("coreai", "coreai_torch")):
        pytest.skip(COREAI_MISSING)
    import torch

    torch.manual_seed(0)
    scope = {"torch": torch, "nn": torch.nn, "F": torch.nn.functional}
    exec(example.text, scope)  # the rule's own example code
    return anedoctor.load(scope["module"], scope["inputs"], via=example.via)


def build(example, folder):
    """Load an Example (MIL text, protobuf text or PyTorch code) through anedoctor's own loaders."""
    if example.format == "torch":
        return build_torch(example)
    if example.format == "mil":
        unit = folder / "example.mlmodelc"
        unit.mkdir()
        (unit / "model.mil").write_text("program(1.0)\n{\n" + example.text + "\n}\n")
        return anedoctor.load(unit)
    spec = text_format.Parse(example.text, Model_pb2.Model())
    fill_zero_weights(spec)
    path = folder / "example.mlmodel"
    path.write_bytes(spec.SerializeToString())
    return anedoctor.load(path)


def fired(r, example, folder) -> list[str]:
    """Messages of rule ``r`` in the report of ``example``, on a chip where the rule applies."""
    t = target_for(r) if example.chip is None else next(t for t in TARGETS if t.chip.id == example.chip)
    report = anedoctor.check(
        build(example, folder),
        chip=t.chip.id,
        os=t.os.id,
        compute_units=example.compute_units,
        profile=example.profile,
    )
    assert report.placements, f"{r.id}: the example has no ops to check"
    return [f.message for p in report.placements for f in p.findings + p.notes if f.rule.id == r.id]


@pytest.mark.parametrize("r", RULES.values(), ids=list(RULES))
def test_rule_fires_on_its_example_and_not_on_its_near_miss(r, tmp_path):
    (tmp_path / "fires").mkdir()
    (tmp_path / "quiet").mkdir()
    assert fired(r, r.example, tmp_path / "fires"), f"{r.id} did not fire on its example"
    assert not fired(r, r.quiet, tmp_path / "quiet"), f"{r.id} fired on its near-miss"


@pytest.mark.parametrize("r", RULES.values(), ids=list(RULES))
def test_rule_is_documented(r):
    assert r.summary and r.why and r.fix and r.example.text and r.quiet.text, r.id
    assert len(r.confidence) == 1 and r.confidence in CONFIDENCE, r.id
    assert r.references, r.id
    for ref in r.references:
        assert re.match(r"https://\S+\.\S+", ref), f"{r.id}: {ref!r} is not a link"
        assert not re.search(r"ane-rules\.md|apple-messages\.md|shared/knowledge|\bGT-\w+", ref), f"{r.id}: {ref!r}"
    if r.fix_pass is not None:
        assert isinstance(r.fix_exact, bool), r.id
    for model_format, fix in r.fixes:  # a per-format fix names a format the doc can spell, and differs
        assert model_format in FORMAT_NAMES and fix and fix != r.fix, (r.id, model_format)
        assert r.fix_for(model_format) == fix and f"For {FORMAT_NAMES[model_format]} models: {fix}" in r.doc(), r.id
    doc = r.doc()
    for section in (
        "What it checks",
        "Why it matters",
        "Example (fires)",
        "Near miss",
        "Fix",
        "Scope",
        "Confidence",
        "References",
    ):
        assert f"## {section}" in doc, (r.id, section)


def applies_everywhere(r) -> bool:
    """Scope strings that start like the default ("all chips...") claim the rule applies everywhere
    (a limit may still depend on the generation); any other scope names where it applies."""
    return r.scope.startswith("all chips")


@pytest.mark.parametrize("r", RULES.values(), ids=list(RULES))
def test_scope_and_when_agree(r):
    everywhere = all(r.applies(t) for t in TARGETS)
    assert everywhere == applies_everywhere(r), f"{r.id}: scope '{r.scope}' but `when` holds everywhere: {everywhere}"


def test_registry_refuses_a_duplicate_id():
    existing = next(iter(RULES.values()))
    with pytest.raises(KeyError, match=existing.id):
        rule(
            existing.id,
            family="x",
            references=["https://example.org"],
            confidence="C",
            fix="-",
            example="func f() {} -> ();",
            quiet="func f() {} -> ();",
        )(lambda op, ctx: None)
    assert RULES[existing.id] is existing


def test_rewrite_passes_and_rules_name_each_other():
    from anedoctor.rewrite import PASSES

    curing: dict[str, set[str]] = {}
    for name, cls in PASSES.items():
        for rule_id in cls.rules:
            curing.setdefault(rule_id, set()).add(name)
    for rule_id, names in curing.items():  # a rule names one of the passes that cure it (SH-4 has two)
        rule = RULES[rule_id]
        assert rule.fix_pass in names, (rule_id, names)
        assert rule.fix_exact is PASSES[rule.fix_pass].exact, rule_id
    for r in RULES.values():
        if r.fix_pass and "::" not in r.fix_pass:
            assert r.fix_pass in PASSES, r.id


def test_readme_rules_table_is_generated_from_the_registry():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert markdown_table() in readme, (
        "README rules table is stale; paste the output of "
        "python -c 'from anedoctor.rules import markdown_table; print(markdown_table())'"
    )


def test_a_masked_fill_is_a_fill_below_fp16s_lowest():
    """OP-19 and its rewrite read -inf and coremltools 6's -3.4e38 alike; -65504 and mixed fills are not a mask."""
    import numpy as np

    from anedoctor.ir.dtypes import below_fp16

    assert below_fp16(np.full((2, 3), -np.inf, np.float16)) and below_fp16(np.full((4,), -3.4e38, np.float32))
    assert not below_fp16(np.float16(-65504)) and not below_fp16(np.array([-np.inf, 0.0], np.float32))
    assert not below_fp16(np.array([], np.float32)) and not below_fp16(np.array([-(2**40)], np.int64))
