"""The published-case table of bench/published is well-formed, and one case builds and predicts end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from anedoctor.hardware import COMPUTE_UNITS, resolve_target

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from published import build, cases, evaluate  # noqa: E402


def test_case_names_are_unique():
    names = [c.name for c in cases.CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.name)
def test_case_is_well_formed(case):
    assert case.source.startswith("https://"), "a source a user can follow"
    assert case.conditions and case.confidence in "AMRCD"
    resolve_target(cases.MODELS[case.model].target.lower(), case.chip, case.os)  # ModelError: unknown chip / OS
    assert case.compute_units in COMPUTE_UNITS
    assert case.latency_ms is not None or case.placement is not None or case.ane_figure
    if case.placement:
        assert set(case.placement) == {"ane", "gpu", "cpu"} and sum(case.placement.values()) > 0
    if case.outside:
        assert case.outside.model in cases.MODELS and case.outside.what
        assert case.outside.device in ("gpu", "cpu")


def test_latency_cases_split_in_halves_within_families():
    latency = [c for c in cases.CASES if c.latency_ms is not None]
    fit = [c for c in latency if cases.split(c) == "fit"]
    assert abs(2 * len(fit) - len(latency)) <= 1
    for family in {c.family for c in latency}:
        members = [c for c in latency if c.family == family]
        in_fit = sum(cases.split(c) == "fit" for c in members)
        assert abs(2 * in_fit - len(members)) <= 2, family
    assert cases.select(None, "holdout") and not {c.name for c in cases.select(None, "holdout")} & {c.name for c in fit}


def test_one_case_builds_and_predicts(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "CACHE", tmp_path)
    case = cases.BY_NAME["meridian_tiny_plan"]  # 2 layers x 128, RangeDim input: converts in seconds
    path = build.build(case.model)
    assert path.is_dir() and path.parent == tmp_path and (path / "Manifest.json").exists()
    stamp = path.stat().st_mtime_ns
    assert build.build(case.model) == path and path.stat().st_mtime_ns == stamp  # cached, not rebuilt
    row = evaluate.row(case, {case.model: path})
    assert row["error"] is None and row["predicted_outside_ms"] is None
    assert sum(row["predicted_ops"].values()) > 20  # 2 blocks of convs, norms, softmax ...
    assert 0.0 <= row["predicted_ane_share"] <= 1.0 and row["published_ane_share"] == 0.0


def test_a_toolchain_model_is_converted_by_its_own_interpreter_or_says_why_not(tmp_path, monkeypatch):
    """Models masked with masked_fill are converted by coremltools 6 (build.TOOLCHAINS); a missing interpreter is a
    one-line BuildError, and the converter is part of the cache name."""
    masked = [name for name, spec in cases.MODELS.items() if spec.toolchain]
    assert {"distilbert_hf", "nanogpt"} <= set(masked)
    assert all(cases.MODELS[m].toolchain in build.TOOLCHAINS for m in masked)
    monkeypatch.setattr(build, "CACHE", tmp_path / "published")
    monkeypatch.setitem(build.TOOLCHAINS, "coremltools6", ("9.99", ("coremltools==6.2",)))
    assert build.find_python("9.99") is None
    before = build.package_path("distilbert_hf")
    with pytest.raises(build.BuildError, match="needs Python 9.99"):
        build.build("distilbert_hf")
    assert not before.exists() and not list((tmp_path / "published").glob(".*"))  # no scratch left behind
    monkeypatch.setitem(build.TOOLCHAINS, "coremltools6", ("9.99", ("coremltools==6.3",)))
    assert build.package_path("distilbert_hf") != before  # another converter, another build


def test_a_compressed_model_is_built_by_anedoctors_compress(tmp_path, monkeypatch):
    """Apple's compressed CNN variants are rebuilt by anedoctor.compress on the converted fp16 model (W8A8 calibrated
    on random inputs), and the recipe is part of the cache name."""
    import anedoctor

    monkeypatch.setattr(build, "CACHE", tmp_path)
    small = {"size": 64, "width": 0.5}
    monkeypatch.setitem(cases.MODELS, "tiny_fp16", cases.Model("mobilenet_v2", small, target="iOS17"))
    monkeypatch.setitem(
        cases.MODELS,
        "tiny_w8a8",
        cases.Model(
            "mobilenet_v2", small, target="iOS17", compression={**cases.COMPRESSION_FORMS["w8a8"], "activations": 2}
        ),
    )
    assert build.package_path("tiny_w8a8") != build.package_path("tiny_fp16")
    ops = {op.type for op in anedoctor.load(build.build("tiny_w8a8")).graphs[0].ops}
    assert {"quantize", "dequantize", "constexpr_affine_dequantize"} <= ops


@pytest.mark.parametrize("device", ["gpu", "cpu"])
def test_outside_work_is_estimated_apart_and_added(tmp_path, monkeypatch, device):
    """A published figure that includes work outside the Core ML model (whisper.cpp's cross-attention K/V) is
    compared with the model's estimate plus that work's: anedoctor's GPU estimate, or its FLOPs at Accelerate's
    SGEMM rate."""
    import anedoctor

    monkeypatch.setattr(build, "CACHE", tmp_path)
    monkeypatch.setitem(cases.MODELS, "cross_kv", cases.Model("whisper_cross_kv", {"size": "tiny", "layers": 1}))
    base = cases.BY_NAME["meridian_tiny_plan"]
    outside = cases.Outside("cross_kv", device, "test")
    case = cases.latency("x", "t", base.model, "m4", "macos15", "cpu_and_ne", 1.0, "", "", "D", outside=outside)
    built = build.build_cases([case], log=lambda *_: None)
    assert set(built) == {base.model, "cross_kv"}
    alone = evaluate.row(cases.latency("y", "t", base.model, "m4", "macos15", "cpu_and_ne", 1.0, "", "", "D"), built)
    row = evaluate.row(case, built)
    units = "cpu_and_gpu" if device == "gpu" else "cpu_only"
    work = anedoctor.check(str(built["cross_kv"]), chip="m4", os="macos15", compute_units=units).summary
    m4 = resolve_target("ios18", "m4", "macos15").chip  # 4 P-cores: one cluster's AMX at 0.8 of its peak
    expected = work["latency_ms"] if device == "gpu" else work["flops"] / (0.8 * m4.cpu_matrix_gflops * 1e6)
    assert row["predicted_outside_ms"] == pytest.approx(expected) and expected > 0
    assert row["predicted_latency_ms"] == pytest.approx(alone["predicted_latency_ms"] + expected)


def test_chip_evidence_counts_each_chips_published_latencies():
    """The per-chip evidence (what `anedoctor estimate` tells a user about their chip) counts the latency cases of
    each chip: adding a case means re-running python bench/calibrate.py."""
    from collections import Counter

    from anedoctor.cost.evidence import chip_evidence
    from anedoctor.hardware import CHIPS

    per_chip = {chip.id: e["cases"] for chip in CHIPS.values() if (e := chip_evidence(chip))}
    assert per_chip == dict(Counter(c.chip for c in cases.LATENCY_CASES if c.latency_ms is not None))


def test_published_cases_file_has_each_latency_case_with_its_estimate_and_features():
    """anedoctor/cost/published_cases.json (what reports compare a user's model with) holds every latency case with
    its split, published latency, an estimate and the features of its model: adding a case means re-running
    python bench/calibrate.py."""
    from anedoctor.cost.evidence import FEATURES, published_cases

    table = published_cases()
    latency = {c.name: c for c in cases.LATENCY_CASES if c.latency_ms is not None}
    assert set(table) == set(latency)
    for name, row in table.items():
        assert (row["chip"], row["split"], row["published_ms"]) == (
            latency[name].chip,
            cases.split(latency[name]),
            latency[name].latency_ms,
        )
        assert row["estimated_ms"] > 0 and set(FEATURES) <= set(row) and row["gmac"] > 0


def _tiny_cases(tmp_path, monkeypatch, families: dict[str, str]) -> tuple[str, float]:
    """One built one-layer Whisper cross-K/V model (CPU only, M4) and its estimate; a latency case of it per name,
    in the given family, registered in cases.BY_NAME."""
    monkeypatch.setattr(build, "CACHE", tmp_path)
    monkeypatch.setitem(cases.MODELS, "cross_kv", cases.Model("whisper_cross_kv", {"size": "tiny", "layers": 1}))
    for name, family in families.items():
        latency = cases.latency(name, family, "cross_kv", "m4", "macos15", "cpu_only", 1.0, "", "", "D")
        monkeypatch.setitem(cases.BY_NAME, name, latency)
    built = build.build_cases([latency], log=lambda *_: None)
    return str(built["cross_kv"]), evaluate.row(latency, built)["predicted_latency_ms"]


def _case(name: str, published_ms: float, package: str) -> dict:
    return {
        "name": name,
        "split": "fit",
        "chip": "m4",
        "os": "macos15",
        "compute_units": "cpu_only",
        "published_latency_ms": published_ms,
        "package": package,
    }


def test_bound_brings_a_case_beyond_2x_back(tmp_path, monkeypatch):
    """bench/calibrate.py --bound (every case, the worst weighed first) moves the constants until a case published
    at 0.4 times its estimate (2.5x off) is within 25% of it."""
    import math

    import calibrate
    import numpy as np

    package, estimate = _tiny_cases(tmp_path, monkeypatch, {"bound": "t"})
    placed = calibrate.place([_case("bound", 0.4 * estimate, package)])
    start = np.array([calibrate.constants()[k] for k in calibrate.FREE])
    assert calibrate.residuals(start, placed)[0] == pytest.approx(math.log(2.5), abs=1e-3)
    best = calibrate.fit(placed, calibrate.worst_first, "linear")
    assert abs(calibrate.residuals(np.array(list(best.values())), placed)[0]) < math.log(1.25)


def test_by_family_predicts_each_family_without_its_own_figures(tmp_path, monkeypatch):
    """bench/calibrate.py --by-family: a family's cases are predicted by constants fitted on the other families
    only. Two families of one model, published at its estimate and at twice it: each is predicted as the other's
    figure asks (about 2x and 0.5x off), where a fit on both would put them between."""
    import calibrate

    package, estimate = _tiny_cases(tmp_path, monkeypatch, {"as_estimated": "a", "twice": "b"})
    placed = calibrate.place([_case("as_estimated", estimate, package), _case("twice", 2 * estimate, package)])
    ratios = {c["name"]: x for c, x in calibrate.by_family(placed, workers=1)}
    assert ratios["as_estimated"] == pytest.approx(2.0, rel=0.1)
    assert ratios["twice"] == pytest.approx(0.5, rel=0.1)


def test_calibration_writes_each_case_with_the_features_a_report_compares(tmp_path, monkeypatch):
    """bench/calibrate.py's write puts the constants in fitted.py and each case, with its estimate and its model's
    features, a line each in published_cases.json, which anedoctor.cost.evidence reads."""
    import calibrate

    from anedoctor.cost import evidence

    package, estimate = _tiny_cases(tmp_path, monkeypatch, {"written": "t"})
    placed = calibrate.place([_case("written", 2 * estimate, package)])
    table = calibrate.case_table(placed, [(placed[0][0], estimate)])
    fitted_py, cases_json = tmp_path / "fitted.py", tmp_path / "published_cases.json"
    fitted_py.write_text('"""doc"""\n\nFITTED = {}\n')
    monkeypatch.setattr(calibrate, "FITTED_PY", fitted_py)
    monkeypatch.setattr(calibrate, "CASES_JSON", cases_json)
    calibrate.write({"ane_op_us": 2.0}, {"fit": "n=1"}, table)
    assert '"ane_op_us": 2.0' in fitted_py.read_text() and len(cases_json.read_text().splitlines()) == 3
    row = json.loads(cases_json.read_text())["written"]
    features = evidence.model_features(placed[0][1].prediction_placements())
    assert row == {
        "chip": "m4",
        "compute_units": "cpu_only",
        "split": "fit",
        "published_ms": 2 * estimate,
        "estimated_ms": round(estimate, 4),
        **features,
    }
    assert features["ane_share"] == 0.0 and features["gmac"] > 0  # CPU only
