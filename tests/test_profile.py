"""`check --profile`: a measured per-chip profile overrides eligibility (MS-1 / MS-2), rescales op costs and the
latency estimate.

The models are built here with the MIL builder; the profiles are constructed in the layout `anedoctor probes
ingest` writes (synthetic verdicts and factors, labelled so), except the ingest tests: one starts from the real
MLComputePlan dumps of vx-lang/Vx #435/#436 (timings added by hand: synthetic), the latency ones from probes
`probes build` writes, "measured" in the measurement schema with synthetic plans and timings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import anedoctor
from anedoctor.cli import app
from anedoctor.errors import ModelError
from anedoctor.estimate import estimate
from anedoctor.measure import ingest, measurement_from_dump
from anedoctor.measure.profile import as_profile, load_profile

PLANS = Path(__file__).parent / "data" / "measure" / "computeplan"
M4 = {"id": "m4", "name": "Apple M4", "machine": "Mac16,10"}
MACOS15 = {"id": "macos15", "version": "15.5", "build": "24F74"}


def profile(entries=(), **extra) -> dict:
    """A profile dict: ``entries`` are (probe, op type, ANE supported) verdicts, synthetic, on M4 / macOS 15.5."""
    return {
        "kind": "profile",
        "chip": M4,
        "os": MACOS15,
        "eligibility": [
            {"probe": probe, "op_type": op_type, "ane": ane, "device": "ane" if ane else "cpu"}
            for probe, op_type, ane in entries
        ],
        **extra,
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """conv 3x3 -> relu -> tan -> dilated conv (d=8: PA-11) -> conv -> relu, as an ML Program package."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    w = (np.random.default_rng(0).standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 32, 32))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.relu(x=mb.conv(x=x, weight=w, pad_type="same", name="conv_a"), name="relu_a")
        y = mb.tan(x=y, name="trig")
        y = mb.conv(x=y, weight=w, pad_type="same", dilations=[8, 8], name="dilated")
        return mb.relu(x=mb.conv(x=y, weight=w, pad_type="same", name="conv_b"), name="relu_b")

    path = tmp_path_factory.mktemp("profile") / "m.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17).save(str(path))
    return anedoctor.load(path)


@pytest.fixture(scope="module")
def conv_stack(tmp_path_factory):
    """Four 3x3 convs with ReLUs (64 channels, 64 x 64): wholly on the ANE as modelled."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    w = (np.random.default_rng(1).standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 64, 64))], opset_version=ct.target.iOS17)
    def prog(x):
        for _ in range(4):
            x = mb.relu(x=mb.conv(x=x, weight=w, pad_type="same"))
        return x

    return anedoctor.load(ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17))


def by_name(report) -> dict:
    return {p.op.name.removesuffix("_cast_fp16"): p for p in report.placements}


def rule_ids(p) -> set[str]:
    return {f.rule.id for f in p.findings + p.notes}


def test_measured_off_ane_blocks_with_the_profiles_provenance(model):
    plain = by_name(anedoctor.check(model, chip="m4", os="macos15", compute_units="cpu_and_ne"))
    assert plain["relu_a"].supported["ane"] and "MS-1" not in rule_ids(plain["relu_a"])
    report = anedoctor.check(model, compute_units="cpu_and_ne", profile=profile([("relu_x4", "relu", False)]))
    ops = by_name(report)
    for name in ("relu_a", "relu_b"):
        assert not ops[name].supported["ane"] and ops[name].device != "ane"
        (finding,) = [f for f in ops[name].findings if f.rule.id == "MS-1"]
        assert "Apple M4 (Mac16,10), macOS 15.5 (24F74)" in finding.message and "relu_x4" in finding.message
        assert finding.rule.confidence == "M"
    assert ops["conv_a"].supported["ane"], "a profile says nothing of op types it did not probe"
    assert (report.target.chip.id, report.target.os.id) == ("m4", "macos15")  # the profile's own chip and OS
    assert any("calibrated by the measured profile" in n for n in report.notes)


def test_measured_on_ane_overrides_the_op_type_rule_only(model):
    plain = by_name(anedoctor.check(model, chip="m4", os="macos15"))
    assert "OP-5" in rule_ids(plain["trig"]) and not plain["trig"].supported["ane"]
    assert "PA-11" in rule_ids(plain["dilated"])
    measured = profile([("tan_x4", "tan", True), ("conv3x3", "conv", True)])  # synthetic verdicts
    ops = by_name(anedoctor.check(model, profile=measured))
    trig = ops["trig"]
    assert trig.supported["ane"] and "OP-5" not in rule_ids(trig) and "MS-2" in {n.rule.id for n in trig.notes}
    # conv measured on the ANE, but only with its probe's parameters: the dilation limit (PA-11) still holds
    assert not ops["dilated"].supported["ane"] and "PA-11" in rule_ids(ops["dilated"])
    assert not any("MS-2" in rule_ids(p) for p in ops.values() if p.op.type == "conv")


def test_profile_disagreeing_probes_leave_the_rules_in_charge(model):
    mixed = profile([("relu_x4", "relu", True), ("relu_w65537", "relu", False)])
    ops = by_name(anedoctor.check(model, profile=mixed))
    assert ops["relu_a"].supported["ane"] and not {"MS-1", "MS-2"} & rule_ids(ops["relu_a"])


def test_cost_scales_per_class_and_device(model):
    base = by_name(anedoctor.check(model, chip="m4", os="macos15", compute_units="cpu_and_ne"))
    scales = {"cost_scale": {"ane": 2.0, "cpu": 3.0}, "class_cost_scale": {"conv": {"ane": 0.5}}}  # synthetic
    scaled = by_name(anedoctor.check(model, compute_units="cpu_and_ne", profile=profile(**scales)))
    assert scaled["conv_a"].cost_ms["ane"] == pytest.approx(0.5 * base["conv_a"].cost_ms["ane"])  # the class's own
    assert scaled["conv_a"].cost_ms["cpu"] == pytest.approx(3.0 * base["conv_a"].cost_ms["cpu"])  # the device's
    assert scaled["relu_a"].cost_ms["ane"] == pytest.approx(2.0 * base["relu_a"].cost_ms["ane"])
    assert scaled["relu_a"].cost_ms["gpu"] == pytest.approx(base["relu_a"].cost_ms["gpu"])  # no factor: unchanged


def test_a_slow_measured_ane_moves_the_placement(conv_stack):
    """The factors feed the segmenter: an ANE measured 1000x slower than modelled loses every segment."""
    base = anedoctor.check(conv_stack, chip="m4", os="macos15", compute_units="cpu_and_ne")
    assert base.summary["ane"] == base.summary["ops"]
    slow = anedoctor.check(conv_stack, compute_units="cpu_and_ne", profile=profile(cost_scale={"ane": 1000.0}))
    assert slow.summary["ane"] == 0


def test_chip_and_os_against_the_profile(model):
    with pytest.raises(ModelError, match=r"measured on Apple M4 .* but the prediction is for Apple A17 Pro"):
        anedoctor.check(model, chip="a17", profile=profile())
    other_os = anedoctor.check(model, chip="m4", os="macos26", profile=profile())
    assert other_os.target.os.id == "macos26"
    assert any("not macos26: its eligibility and timings may differ" in n for n in other_os.notes)
    unknown = {**profile(), "chip": {"name": "Apple M9 Hyper"}}
    with pytest.raises(ModelError, match="which anedoctor has no entry for; give --chip"):
        anedoctor.check(model, profile=unknown)
    assert anedoctor.check(model, chip="m4", profile=unknown).target.chip.id == "m4"
    by_name_only = {**profile(), "chip": {"name": "Apple M4"}, "os": {"version": "15.5"}}  # as older ingests wrote
    report = anedoctor.check(model, profile=by_name_only)
    assert (report.target.chip.id, report.target.os.id) == ("m4", "macos15")


def test_report_carries_the_provenance(model):
    measured = profile([("relu_x4", "relu", False)], cost_scale={"ane": 1.5}, provenance=[{"source": "a.json"}])
    d = anedoctor.check(model, profile=measured).to_dict()
    (panel,) = [p for p in d["panels"] if p["title"].startswith("Calibration profile")]
    assert panel["profile"]["chip"] == M4 and panel["profile"]["os"] == MACOS15
    assert panel["profile"]["cost_scale"] == {"ane": 1.5} and panel["profile"]["measurements"] == 1
    assert panel["rows"] == [{"op type": "relu", "measured on the ANE": False, "probes": "relu_x4"}]
    ms1 = [f for op in d["ops"] for f in op["reasons"] if f["rule"] == "MS-1"]
    assert ms1 and all(f["confidence"] == "M" and "profile" in f["message"] for f in ms1)


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", r"line 1: invalid JSON"),
        ('{"kind": "profile", "chip": "m4"}', r"chip: expected an object"),
        ('{"kind": "profile", "eligibility": {"relu": true}}', r"eligibility: expected a list"),
        ('{"kind": "profile", "class_cost_scale": {"conv": {"ane": 0}}}', r"class_cost_scale\['conv'\]\['ane'\]"),
        ('{"kind": "profile", "class_cost_scale": [1]}', r"class_cost_scale: expected an object"),
        ('{"kind": "profile", "cost_scale": {"ane": true}}', r"cost_scale\['ane'\]"),
        ('{"kind": "measurement"}', r"not an anedoctor profile"),
    ],
)
def test_malformed_profiles_are_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ModelError, match=message) as e:
        load_profile(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_ingest_writes_per_class_cost_scales():
    """Real vx-lang dumps (M4: matmul 4x4 on the CPU, 512x512 on the ANE); timings synthetic."""
    measured = []
    for dump, name, ms in [
        ("vx436_matmul_4x4_fp32_m4.txt", "gtb_matmul_4", 0.02),
        ("vx435_matmul_512_f16_m4.txt", "gtb_matmul_512", 0.5),
    ]:
        d = measurement_from_dump(
            PLANS / dump, compute_units="cpu_and_ne", chip={"name": "Apple M4"}, os={"build": "25A"}
        )
        d["model"]["name"] = f"{name}.mlpackage"
        d["runs"] = {"cpu_and_ne": {"predict_ms": {"median": ms}}}
        measured.append(d)
    manifest = {
        "gtb_matmul_4": {"op_type": "matmul", "predicted_ms": {"cpu": 0.01}},
        "gtb_matmul_512": {"op_type": "matmul", "predicted_ms": {"ane": 1.0}},
    }
    d = ingest(measured, manifest)
    assert d["class_cost_scale"] == {"matmul": {"ane": 0.5, "cpu": 2.0}}
    p = as_profile(d)
    assert p.cost_factor("matmul", "ane") == 0.5 and p.cost_factor("conv", "cpu") == 2.0
    assert p.cost_factor("conv", "gpu") == 1.0


def test_cli_check_and_estimate_with_a_profile(model, tmp_path):
    runner = CliRunner()
    path = tmp_path / "m4.json"
    path.write_text(json.dumps(profile([("relu_x4", "relu", False)])))
    out = runner.invoke(app, ["check", model.path, "--profile", str(path), "--compute-units", "cpu_and_ne"])
    assert out.exit_code == 0, out.output
    assert "MS-1" in out.output and "Apple M4" in out.output and "calibrated by the measured profile" in out.output
    wrong_chip = runner.invoke(app, ["check", model.path, "--profile", str(path), "--chip", "a17"])
    assert wrong_chip.exit_code == 2 and wrong_chip.output.count("\n") == 1 and "m4.json" in wrong_chip.output
    over_input = runner.invoke(app, ["check", model.path, "--profile", str(path), "--json", str(path)])
    assert over_input.exit_code == 2 and json.loads(path.read_text())["kind"] == "profile"
    broken = tmp_path / "broken.json"
    broken.write_text('{"kind": "profile", "cost_scale": {"npu": 2}}')
    bad = runner.invoke(app, ["check", model.path, "--profile", str(broken)])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "broken.json: cost_scale['npu']" in bad.output
    est = runner.invoke(app, ["estimate", model.path, "--profile", str(path), "--json", "-"])
    assert est.exit_code == 0, est.output
    assert json.loads(est.stdout)["chip"] == "m4" and "ESTIMATE" in est.stderr  # the text goes to stderr
    bad_est = runner.invoke(app, ["estimate", model.path, "--profile", str(broken)])
    assert bad_est.exit_code == 2 and bad_est.output.count("\n") == 1


def test_estimate_follows_the_profile(conv_stack):
    plain = estimate(conv_stack, chip="m4", os="macos15", compute_units="cpu_and_ne")
    slow = estimate(conv_stack, compute_units="cpu_and_ne", profile=profile(cost_scale={"ane": 1000.0}))
    assert plain.report.summary["ane"] > 0 and slow.report.summary["ane"] == 0
    assert slow.report.target.chip.id == "m4"


# ---- the latency estimate (summary.latency_ms, per-op time_ms) follows the profile ------------------------------


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """`probes build` for M4 / macOS 15: a 512x512 matmul and a 13x13 conv probe (predicted wholly on the ANE
    under cpu_and_ne) and a 3x3 conv probe (predicted on the CPU: one small op is not worth an ANE segment)."""
    from anedoctor.measure.suite import build_suite

    folder = tmp_path_factory.mktemp("probes") / "suite"
    build_suite(folder, chip="m4", os="macos15", names=["gtb_matmul_512", "conv_k13", "conv3x3"])
    return folder


def probe_measurement(suite: Path, name: str, runs: dict[str, tuple[str, float]]) -> dict:
    """A measurement of a built probe in the schema `anedoctor measure` writes. ``runs`` maps each compute-unit
    setting to (the device its whole plan used, measured median / the manifest's latency estimate): synthetic."""
    from anedoctor.measure.computeplan import measurement, plan_op
    from anedoctor.measure.suite import load_manifest

    estimate_ms = load_manifest(suite / "manifest.json")[name]["predicted_latency_ms"]
    placed = anedoctor.check(suite / f"{name}.mlpackage", chip="m4", os="macos15").placements

    def plan(device: str) -> list[dict]:
        return [plan_op(i, p.op.name, p.op.type, device, ["ane", "gpu", "cpu"]) for i, p in enumerate(placed)]

    timed = {
        cu: {"predict_ms": {"median": factor * estimate_ms[cu]}, "summary": measurement(plan(device))["summary"]}
        for cu, (device, factor) in runs.items()
    }
    first = next(iter(runs))
    return measurement(
        plan(runs[first][0]),
        model={"path": f"{name}.mlpackage", "name": f"{name}.mlpackage"},
        compute_units=first,
        chip=M4,
        os=MACOS15,
        coreml={"version": "8.3"},
        runs=timed,
    )


def ingested(suite: Path, tmp_path: Path, measurements: dict[str, dict]) -> tuple[Path, str]:
    """Measurement files -> `anedoctor probes ingest DIR --manifest manifest.json -o profile.json`: the profile's
    path and what the command said."""
    folder = tmp_path / "measured"
    folder.mkdir()
    for name, d in measurements.items():
        (folder / f"{name}.json").write_text(json.dumps(d))
    out = CliRunner().invoke(
        app,
        ["probes", "ingest", str(folder), "--manifest", str(suite / "manifest.json"), "-o", str(tmp_path / "p.json")],
    )
    assert out.exit_code == 0, out.output
    return tmp_path / "p.json", " ".join(out.output.split())  # rich wraps the line off a terminal


def test_manifest_records_the_latency_estimate_per_compute_units(suite):
    from anedoctor.measure.suite import load_manifest

    entries = load_manifest(suite / "manifest.json")
    entry = entries["conv_k13"]
    model = anedoctor.load(suite / "conv_k13.mlpackage")
    for cu in ("all", "cpu_and_ne", "cpu_and_gpu", "cpu_only"):
        report = anedoctor.check(model, chip="m4", os="macos15", compute_units=cu)
        assert entry["predicted_latency_ms"][cu] == pytest.approx(report.summary["latency_ms"], abs=1e-4)
    assert entry["predicted_latency_device"]["cpu_and_ne"] == "ane"
    assert (
        entry["predicted_latency_device"]["cpu_only"]
        == "cpu"
        == entries["conv3x3"]["predicted_latency_device"]["cpu_and_ne"]
    )
    assert entry["predicted_for"] == {"chip": "m4", "os": "macos15"}


def test_ingest_derives_latency_scales_per_class_and_device(suite, tmp_path):
    measured = {
        "gtb_matmul_512": probe_measurement(
            suite,
            "gtb_matmul_512",
            # 'all' measured on the GPU where the model predicts the ANE: no like-for-like ratio, left out
            {"cpu_and_ne": ("ane", 2.0), "cpu_only": ("cpu", 3.0), "all": ("gpu", 10.0)},
        ),
        "conv_k13": probe_measurement(suite, "conv_k13", {"cpu_and_ne": ("ane", 4.0)}),
        # measured on the ANE where the model predicts the CPU: left out too
        "conv3x3": probe_measurement(suite, "conv3x3", {"cpu_and_ne": ("ane", 50.0)}),
    }
    path, said = ingested(suite, tmp_path, measured)
    d = json.loads(path.read_text())
    assert "ANE pass cost not measured (needs pass_chain_1 and pass_chain_33" in said
    assert d["latency_scale"] == {"ane": 3.0, "cpu": 3.0}  # device medians: ANE of 2 and 4
    assert d["class_latency_scale"] == {"conv": {"ane": 4.0}, "matmul": {"ane": 2.0, "cpu": 3.0}}
    used = {(p["model"], r["compute_units"]): r for p in d["provenance"] for r in p["latency_runs"]}
    assert sorted(used) == [
        ("conv_k13.mlpackage", "cpu_and_ne"),
        *(("gtb_matmul_512.mlpackage", cu) for cu in ("cpu_and_ne", "cpu_only")),
    ]
    run = used["gtb_matmul_512.mlpackage", "cpu_and_ne"]
    assert run["device"] == "ane" and run["measured_ms"] == pytest.approx(2 * run["predicted_ms"])
    p = load_profile(tmp_path / "p.json")
    assert p.latency_factor("conv", "ane") == 4.0 and p.latency_factor("norm", "ane") == 3.0  # class, else device
    assert p.latency_factor(None, "ane") == 3.0 and p.latency_factor("conv", "gpu") == 1.0


def test_an_ane_latency_scale_of_2_doubles_the_ane_ops(suite, tmp_path, conv_stack):
    path, _ = ingested(
        suite, tmp_path, {"gtb_matmul_512": probe_measurement(suite, "gtb_matmul_512", {"cpu_and_ne": ("ane", 2.0)})}
    )
    assert json.loads(path.read_text())["latency_scale"] == {"ane": 2.0}
    calibrated = anedoctor.check(conv_stack, compute_units="cpu_and_ne", profile=path)
    # the same profile without its latency scales: the same eligibility and cost scales, so the same placement
    old = {k: v for k, v in json.loads(path.read_text()).items() if "latency" not in k}
    base = anedoctor.check(conv_stack, compute_units="cpu_and_ne", profile=old)
    assert [p.device for p in calibrated.placements] == [p.device for p in base.placements]
    on_ane = [(c, b) for c, b in zip(calibrated.placements, base.placements) if c.device == "ane"]
    assert len(on_ane) >= 8 and any(b.time_ms > 0 for _, b in on_ane)
    for c, b in zip(calibrated.placements, base.placements):
        assert c.time_ms == pytest.approx((2.0 if c.device == "ane" else 1.0) * b.time_ms)
    ane_ms = base.latency.device_ms["ane"]  # ANE op times and ANE segment launches
    assert calibrated.latency.device_ms["ane"] == pytest.approx(2 * ane_ms)
    assert calibrated.summary["latency_ms"] == pytest.approx(base.summary["latency_ms"] + ane_ms, abs=2e-4)
    assert any("latency estimate is rescaled" in n and "ane x2" in n for n in calibrated.notes)
    result = estimate(conv_stack, compute_units="cpu_and_ne", profile=path)
    d = result.to_dict()
    assert d["latency_ms"] == pytest.approx(calibrated.latency.latency_ms, abs=1e-4)
    assert d["calibrated_by"]["latency_scale"] == {"ane": 2.0} and d["calibrated_by"]["confidence"] == "M"
    assert "CALIBRATED by the measured profile p.json (Apple M4 (Mac16,10), macOS 15.5 (24F74))" in result.render()
    assert "calibrated by the profile p.json" in result.to_html()
    assert len(result.report.panels) == 1  # the page adds its latency panels to a copy: only the profile's panel
    assert result.report.panels[0]["profile"]["latency_scale"] == {"ane": 2.0}


def test_without_a_profile_the_latency_is_the_models_own(conv_stack):
    from anedoctor.cost.latency import breakdown, op_times

    report = anedoctor.check(conv_stack, chip="m4", os="macos15", compute_units="cpu_and_ne")
    model_times = op_times(report.placements, report.target)
    assert [p.time_ms for p in report.placements] == [t.ms for t in model_times]
    assert report.latency.latency_ms == breakdown(report.placements, report.target).latency_ms
    unscaled = anedoctor.check(conv_stack, compute_units="cpu_and_ne", profile=profile())  # no latency scale
    assert [p.time_ms for p in unscaled.placements] == [p.time_ms for p in report.placements]
    assert unscaled.summary["latency_ms"] == report.summary["latency_ms"]
    assert estimate(conv_stack, chip="m4", os="macos15").to_dict()["calibrated_by"] is None


def test_an_old_profile_without_latency_scales_loads(conv_stack, tmp_path):
    """The layout ingest wrote before latency scales (cost scales only; factors synthetic)."""
    path = tmp_path / "old.json"
    old = profile(
        [("relu_x4", "relu", True)],
        cost_scale={"ane": 1.5},
        class_cost_scale={"conv": {"ane": 1.2}},
        provenance=[{"source": "relu_x4.json", "model": "relu_x4.mlpackage", "compute_units": "cpu_and_ne"}],
    )
    path.write_text(json.dumps(old))
    p = load_profile(path)
    assert p.latency_scale == {} and p.class_latency_scale == {} and not p.calibrates_latency
    assert p.latency_factor("conv", "ane") == 1.0 and p.cost_factor("conv", "ane") == 1.2
    result = estimate(conv_stack, compute_units="cpu_and_ne", profile=path)
    assert result.to_dict()["calibrated_by"] is None
    assert "old.json calibrates placement only: it has no latency scale" in result.render()
    assert any("no latency scale" in n for n in result.report.notes)


def test_malformed_latency_scales_are_one_line_errors(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"kind": "profile", "class_latency_scale": {"conv": {"ane": -1}}}')
    with pytest.raises(ModelError, match=r"p.json: class_latency_scale\['conv'\]\['ane'\]: expected a positive"):
        load_profile(path)
    path.write_text('{"kind": "profile", "latency_scale": [2]}')
    with pytest.raises(ModelError, match=r"p.json: latency_scale: expected an object"):
        load_profile(path)


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    """`probes build` of the two pass chains for M4 / macOS 15."""
    from anedoctor.measure.suite import build_suite

    folder = tmp_path_factory.mktemp("chains") / "suite"
    build_suite(folder, chip="m4", os="macos15", names=["pass_chain_1", "pass_chain_33"])
    return folder


def test_the_pass_chains_measure_what_an_ane_pass_costs(chains, tmp_path):
    from anedoctor.cost.fitted import FITTED
    from anedoctor.measure.suite import load_manifest

    entries = load_manifest(chains / "manifest.json")
    assert {e["predicted_latency_device"]["cpu_and_ne"] for e in entries.values()} == {"ane"}
    short, long = (entries[n]["predicted_latency_ms"]["cpu_and_ne"] for n in ("pass_chain_1", "pass_chain_33"))
    measured = {  # synthetic timings: the short chain as estimated, the long one 0.2 ms slower
        "pass_chain_1": probe_measurement(chains, "pass_chain_1", {"cpu_and_ne": ("ane", 1.0)}),
        "pass_chain_33": probe_measurement(chains, "pass_chain_33", {"cpu_and_ne": ("ane", (long + 0.2) / long)}),
    }
    path, said = ingested(chains, tmp_path, measured)
    d = json.loads(path.read_text())
    pass_us = 1000 * (long + 0.2 - short) / 32
    assert d["ane_pass_us"] == pytest.approx(pass_us, abs=1e-3)
    assert f"ANE pass cost {d['ane_pass_us']:g} us" in said
    assert d["latency_scale"] == {} and d["class_latency_scale"] == {}  # the chains set no scale
    timed = {p["model"]: [r["measured_ms"] for r in p["latency_runs"]] for p in d["provenance"]}
    assert timed == {
        "pass_chain_1.mlpackage": [pytest.approx(short)],
        "pass_chain_33.mlpackage": [pytest.approx(long + 0.2)],
    }
    package = chains / "pass_chain_33.mlpackage"
    base = anedoctor.check(package, chip="m4", os="macos15", compute_units="cpu_and_ne")
    calibrated = anedoctor.check(package, chip="m4", os="macos15", compute_units="cpu_and_ne", profile=path)
    # every op is a pass of its own on the ANE (the conv, the pooling, the 33 adds): each costs the measured pass
    assert {p.device for p in base.placements} == {"ane"} and len(base.placements) == 35
    delta = (d["ane_pass_us"] - FITTED["constants"]["ane_op_us"]) / 1000
    added = [c.time_ms - b.time_ms for c, b in zip(calibrated.placements, base.placements)]
    assert added == pytest.approx([delta] * 35)
    assert calibrated.summary["latency_ms"] == pytest.approx(base.summary["latency_ms"] + 35 * delta, abs=1e-4)
    assert any(f"an ANE pass costs its measured {d['ane_pass_us']:g} us" in n for n in calibrated.notes)
    text = estimate(package, chip="m4", os="macos15", compute_units="cpu_and_ne", profile=path).render()
    assert (
        "CALIBRATED by the measured profile p.json (Apple M4 (Mac16,10), macOS 15.5 (24F74)): an ANE pass costs" in text
    )


def test_a_pass_cost_that_is_not_a_number_of_microseconds_is_one_line_error(tmp_path):
    path = tmp_path / "p.json"
    for value in ("-1", '"fast"', "true"):
        path.write_text(f'{{"kind": "profile", "ane_pass_us": {value}}}')
        with pytest.raises(ModelError, match=r"p.json: ane_pass_us: expected a number of microseconds >= 0"):
            load_profile(path)


def test_question_probes_carry_the_assumptions_a_mac_can_refute(tmp_path):
    """The weight-stream and layout probes run wholly on the ANE (M4, CPUAndNeuralEngine), and their estimates state
    what a measurement would test: each 2 MiB conv of the long chain streams its weights at the M4's rate whatever
    the chain's total (no cache residency), and the channels-last linear grows with C no faster than C squared.
    Ingested, measurements that refute both (the short chain at 0.4x its estimate, the linear growing as C cubed)
    are reported as such."""
    import math

    from anedoctor.cost.fitted import FITTED
    from anedoctor.hardware import resolve_target
    from anedoctor.measure.profile import ASSUMPTIONS, LAYOUT_CHANNELS, WEIGHT_STREAM
    from anedoctor.measure.suite import build_suite, load_manifest

    suite = tmp_path / "s"
    build_suite(suite, chip="m4", os="macos15", names=[name for pair in ASSUMPTIONS.values() for name in pair])
    entries = load_manifest(suite / "manifest.json")
    assert {e["predicted_latency_device"]["cpu_and_ne"] for e in entries.values()} == {"ane"}
    estimated = {name: e["predicted_latency_ms"]["cpu_and_ne"] for name, e in entries.items()}
    (short, few), (long, many) = sorted(WEIGHT_STREAM.items(), key=lambda kv: kv[1])
    per_conv = (estimated[long] - estimated[short]) / (many - few)
    stream_ms = (2 << 20) / (resolve_target("ios18", "m4", "macos15").chip.ane_weight_gbps * 1e6)
    assert per_conv == pytest.approx(stream_ms + FITTED["constants"]["ane_op_us"] / 1000, rel=0.02)
    small, large = (estimated[f"linear_bsc_{c}"] for c in LAYOUT_CHANNELS)
    growth = LAYOUT_CHANNELS[1] / LAYOUT_CHANNELS[0]
    assert 1.5 < large / small <= growth**2

    factors = {name: 1.0 for name in entries} | {short: 0.4, "linear_bsc_1280": growth**3 * small / large}
    measured = {name: probe_measurement(suite, name, {"cpu_and_ne": ("ane", f)}) for name, f in factors.items()}
    path, said = ingested(suite, tmp_path, measured)
    answers = json.loads(path.read_text())["assumptions"]
    assert answers.keys() == ASSUMPTIONS.keys()
    assert answers["weights_streamed_from_dram"][short] == {
        "measured_ms": pytest.approx(0.4 * estimated[short]),
        "estimated_ms": pytest.approx(estimated[short]),
    }
    assert f"measured / estimated: {short} 0.40x, {long} 1.00x" in said
    assert "linear_bsc from C=768 to 1280: measured time grew as C^3.00, estimated as " in said
    conv = math.log(estimated["conv_bc1s_1280"] / estimated["conv_bc1s_768"]) / math.log(growth)
    assert f"conv_bc1s from C=768 to 1280: measured time grew as C^{conv:.2f}, estimated as C^{conv:.2f}" in said


def test_ingest_refuses_a_manifest_built_for_another_chip(suite, tmp_path):
    d = probe_measurement(suite, "conv3x3", {"cpu_and_ne": ("ane", 2.0)})
    d["chip"] = {"name": "Apple M1"}
    from anedoctor.measure.suite import load_manifest

    with pytest.raises(ModelError, match=r"measured on m1, but the manifest's estimates are for m4"):
        ingest([d], load_manifest(suite / "manifest.json"))
    assert ingest([d])["eligibility"][0]["op_type"] == "conv"  # without the manifest: eligibility only


def test_estimate_writes_through_the_checked_outputs(model, tmp_path):
    runner = CliRunner()
    package = Path(model.path)
    before = sorted((p.relative_to(package), p.stat().st_size, p.stat().st_mtime_ns) for p in package.rglob("*"))
    over_model = runner.invoke(app, ["estimate", model.path, "--json", model.path])
    assert over_model.exit_code == 2 and "this is an input" in over_model.stderr
    assert over_model.stderr.count("\n") == 1
    inside = runner.invoke(app, ["estimate", model.path, "--html", str(package / "Manifest.json")])
    assert inside.exit_code == 2 and "inside the input" in inside.stderr
    kept = tmp_path / "ok.json"
    both = runner.invoke(app, ["estimate", model.path, "--json", str(kept), "--html", model.path])
    assert both.exit_code == 2 and not kept.exists()  # all or nothing: refused before any work
    assert (
        sorted((p.relative_to(package), p.stat().st_size, p.stat().st_mtime_ns) for p in package.rglob("*")) == before
    )
    path = tmp_path / "m4.json"
    path.write_text(json.dumps(profile()))
    over_profile = runner.invoke(app, ["estimate", model.path, "--profile", str(path), "--html", str(path)])
    assert over_profile.exit_code == 2 and json.loads(path.read_text())["kind"] == "profile"
    ok = runner.invoke(app, ["estimate", model.path, "--json", str(kept), "--html", str(tmp_path / "e.html")])
    assert ok.exit_code == 0, ok.output
    assert (
        json.loads(kept.read_text())["kind"] == "estimate" and "latency waterfall" in (tmp_path / "e.html").read_text()
    )
    assert "ESTIMATE" in ok.stdout and not list(tmp_path.glob(".*"))  # no staged file left behind
