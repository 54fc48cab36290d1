"""anedoctor.estimate and the `estimate` / `chips` commands: totals, breakdown, compute units, JSON, HTML."""

from __future__ import annotations

import json

import pytest
from mil_models import ct, mb, save, w
from mil_models import two_functions as build_two_functions
from typer.testing import CliRunner

import anedoctor
from anedoctor.cli import app
from anedoctor.hardware import CHIPS


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A conv backbone, a 17x17 conv the ANE cannot run (PA-1/PA-3), more convs: two ANE runs, one switch pair."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 128, 32, 32))], opset_version=ct.target.iOS17)
    def prog(x):
        for i in range(4):
            x = mb.relu(x=mb.conv(x=x, weight=w(128, 128, 3, 3), pad_type="same"), name=f"a{i}")
        x = mb.conv(x=x, weight=w(128, 128, 17, 17), pad_type="same", name="wide")
        for i in range(4):
            x = mb.relu(x=mb.conv(x=x, weight=w(128, 128, 3, 3), pad_type="same"), name=f"b{i}")
        return x

    return save(prog, tmp_path_factory.mktemp("est") / "est.mlpackage")


@pytest.fixture(scope="module")
def compared(model_path):
    return anedoctor.estimate(
        model_path, chip="a17", os="ios17", compute_units="cpu_and_ne", compare_compute_units=True
    )


def test_estimate_totals_add_up(compared):
    d = compared.to_dict()
    ops = sum(p.time_ms for p in compared.report.placements)
    launches = sum(s["launch_ms"] for s in d["segments"])
    switches = sum(s["ms"] for s in d["switches"])
    assert d["latency_ms"] == pytest.approx(ops + launches + switches, abs=1e-3)
    assert d["latency_ms"] == pytest.approx(sum(d["device_ms"].values()), abs=1e-3)
    assert len(d["switches"]) == len(d["segments"]) - 1 >= 2  # the wide conv splits the ANE work
    assert all(s["ms"] > 0 and s["bytes"] > 0 for s in d["switches"])
    assert compared.report.summary["latency_ms"] == pytest.approx(d["latency_ms"], abs=1e-3)


def test_every_op_has_a_time_and_a_bound(compared):
    bounds = {p.bound for p in compared.report.placements}
    assert bounds <= {"compute", "weights", "activations", "overhead", "fused"}
    assert "fused" in bounds and "compute" in bounds  # relus ride on their convs; 128-ch 3x3 convs are compute-bound
    top = compared.to_dict()["top_ops"]
    assert top[0]["name"].startswith("wide") and top[0]["device"] == "cpu"  # the CPU's 17x17 conv dominates
    assert [o["time_ms"] for o in top] == sorted((o["time_ms"] for o in top), reverse=True)


def test_time_per_op_type_adds_up_the_ops(compared):
    """What a user reads first in a big model: which kinds of op take the time, on which device."""
    groups = compared.to_dict()["op_types"]
    placements = compared.report.placements
    assert [g["time_ms"] for g in groups] == sorted((g["time_ms"] for g in groups), reverse=True)
    for g in groups:
        members = [p for p in placements if (p.op.type, p.device) == (g["type"], g["device"])]
        assert g["ops"] == len(members) and g["time_ms"] == pytest.approx(sum(p.time_ms for p in members), abs=1e-3)
        assert g["fused"] == sum(p.bound == "fused" for p in members)
    assert any(g["type"] == "relu" and g["fused"] == g["ops"] > 0 for g in groups)  # relus ride on their convs
    assert ("conv", "cpu") in {(g["type"], g["device"]) for g in groups}  # the wide conv the ANE cannot take
    assert "time by op type:" in compared.render()


def test_compute_units_side_by_side(compared):
    rows = {r["compute_units"]: r for r in compared.to_dict()["compare"]}
    assert set(rows) == {"all", "cpu_and_ne", "cpu_and_gpu", "cpu_only"}
    assert rows["cpu_only"]["ane"] == rows["cpu_only"]["gpu"] == 0
    assert rows["cpu_and_gpu"]["ane"] == 0 and rows["cpu_and_ne"]["gpu"] == 0
    assert rows["cpu_only"]["latency_ms"] > rows["cpu_and_ne"]["latency_ms"]
    assert rows["all"]["latency_ms"] <= min(rows["cpu_and_ne"]["latency_ms"], rows["cpu_and_gpu"]["latency_ms"]) * 1.25


def test_energy_is_labelled_an_estimate_per_device(compared):
    d = compared.to_dict()
    assert d["energy_mj"]["ane"] > 0 and d["energy_mj"]["cpu"] > 0
    assert "estimate" in d["energy_note"]
    assert compared.report.summary["energy_mj"] == pytest.approx(sum(d["energy_mj"].values()), abs=1e-3)


def test_ane_energy_leaves_its_dram_traffic_to_the_memory_rail(compared):
    """powermetrics' ANE power excludes DRAM: the ANE rail is MACs x pJ/MAC, the DRAM rail bytes x pJ/byte (a
    system-level-cache hit at its own, lower rate)."""
    from anedoctor.cost.latency import PJ_PER_DRAM_BYTE, PJ_PER_MAC, PJ_PER_SLC_BYTE

    ane = [p for p in compared.report.placements if p.device == "ane"]
    d = compared.to_dict()["energy_mj"]
    assert d["ane"] == pytest.approx(sum(p.macs for p in ane) * PJ_PER_MAC * 1e-9, rel=1e-3)
    traffic = sum(p.dram_bytes * PJ_PER_DRAM_BYTE + p.slc_bytes * PJ_PER_SLC_BYTE for p in ane)
    assert d["dram"] == pytest.approx(traffic * 1e-9, rel=1e-3)
    assert d["dram"] > 0
    assert "DRAM (ANE traffic)" in compared.render()


def test_faster_chip_is_estimated_faster(model_path):
    slow = anedoctor.estimate(model_path, chip="a14", os="ios17", compute_units="cpu_and_ne")
    fast = anedoctor.estimate(model_path, chip="m4", os="macos15", compute_units="cpu_and_ne")
    compute = {
        e.report.target.chip.id: sum(
            p.time_ms for p in e.report.placements if p.bound == "compute" and p.device == "ane"
        )
        for e in (slow, fast)
    }
    assert compute["a14"] > compute["m4"] * 1.5  # the ANE: 11 vs 19 TFLOP/s fp16


def test_report_json_carries_the_estimate(compared):
    d = compared.report.to_dict()
    assert d["summary"]["latency_ms"] > 0 and d["summary"]["energy_mj"] > 0
    assert all("time_ms" in op and "bound" in op for op in d["ops"])


def test_html_has_the_waterfall(compared, tmp_path):
    out = tmp_path / "e.html"
    compared.to_html(out)
    page = out.read_text()
    assert "latency waterfall" in page and "Latency estimate" in page and "Compute units side by side" in page
    assert "Time by op type and device" in page and "checked on the Apple A17 Pro" in page


def test_a_conv_over_one_pixel_images_is_slow_and_its_top_op_says_why(tmp_path):
    """SH-11: 1x1 convs over 256 images of one pixel fill 1/64 of the work units, so they are estimated slower than the
    same convs over one image of 256 pixels, and the estimate's top op names the rule (only there)."""

    def conv_over(batch, pixels):
        @mb.program(input_specs=[mb.TensorSpec(shape=(batch, 1024, 1, pixels))], opset_version=ct.target.iOS17)
        def prog(x):
            for _ in range(3):
                x = mb.conv(x=x, weight=w(1024, 1024, 1, 1))
            return x

        e = anedoctor.estimate(save(prog, tmp_path / f"b{batch}.mlpackage"), chip="m1max", compute_units="cpu_and_ne")
        return next(o for o in e.to_dict()["top_ops"] if o["type"] == "conv"), e.render()

    (batched, text), (spatial, _) = conv_over(256, 1), conv_over(1, 256)
    assert batched["notes"] == ["SH-11"] and spatial["notes"] == []
    assert batched["bound"] == "compute" and batched["time_ms"] > 10 * spatial["time_ms"]
    assert f"{batched['name']}  [SH-11]" in text


def test_cli_estimate_json_and_text(model_path, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["estimate", str(model_path), "--chip", "m1max", "--compare-compute-units", "--json", str(tmp_path / "e.json")],
    )
    assert result.exit_code == 0, result.output
    assert "ESTIMATE" in result.output and "cpu_and_gpu" in result.output
    d = json.loads((tmp_path / "e.json").read_text())
    assert d["chip"] == "m1max" and d["latency_ms"] > 0 and len(d["compare"]) == 4


def test_cli_estimate_bad_input_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["estimate", str(tmp_path / "missing.mlpackage")])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["estimate", str(tmp_path / "missing.mlpackage"), "--chip", "m9"])
    assert result.exit_code == 2


def test_cli_chips_lists_every_variant():
    result = CliRunner().invoke(app, ["chips", "--json"])
    assert result.exit_code == 0
    ids = {r["id"] for r in json.loads(result.output)}
    assert ids == set(CHIPS) and {"m1max", "m2ultra", "m3pro", "m4max", "m5pro", "a19pro"} <= ids


def test_chip_evidence_is_the_median_and_worst_error_of_the_chips_cases(monkeypatch):
    from anedoctor.cost import evidence

    table = {
        "right": {"chip": "a16", "published_ms": 1.0, "estimated_ms": 1.0},
        "twice": {"chip": "a16", "published_ms": 1.0, "estimated_ms": 2.0},
        "quarter": {"chip": "a16", "published_ms": 4.0, "estimated_ms": 1.0},
        "elsewhere": {"chip": "m4", "published_ms": 1.0, "estimated_ms": 9.0},
    }
    monkeypatch.setattr(evidence, "published_cases", lambda: table)
    assert evidence.chip_evidence(CHIPS["a16"]) == {"cases": 3, "median_error": 2.0, "worst_error": 4.0}
    assert evidence.chip_evidence(CHIPS["a17"]) is None


def test_estimate_says_how_far_it_was_checked_on_the_chip(model_path):
    from anedoctor.cost.evidence import chip_evidence

    checked = anedoctor.estimate(model_path, chip="m1max", os="macos13")
    evidence = chip_evidence(CHIPS["m1max"])
    assert checked.to_dict()["chip_evidence"] == evidence and evidence["cases"] >= 10
    assert f"checked on the Apple M1 Max against {evidence['cases']} published latencies" in checked.render()
    unchecked = anedoctor.estimate(model_path, chip="m5pro")  # no published latency on it
    assert unchecked.to_dict()["chip_evidence"] is None
    assert "no published latency was measured on the Apple M5 Pro" in unchecked.render()
    checked = f"checked against {evidence['cases']} published latencies on this chip"
    for chip, says in (("m1max", checked), ("m5pro", "from this chip's specs")):
        report = anedoctor.check(model_path, chip=chip)  # the check report carries the same evidence
        assert report.to_dict()["latency_evidence"] == (evidence if chip == "m1max" else None)
        assert says in report.render()
    rows = json.loads(CliRunner().invoke(app, ["chips", "--json"]).output)
    table = {r["id"]: r["published_latencies"] for r in rows}
    assert table["m1max"] == evidence["cases"] and table["m5pro"] == 0


def test_model_features_say_what_work_a_model_is(model_path):
    """MACs, stored weight bytes and ops of the fixture, counted from its shapes: eight 3x3 and one 17x17 128->128
    conv over 32x32 with fp16 weights, the 17x17 one (80% of the MACs) off the Neural Engine."""
    from anedoctor.cost.evidence import model_features

    features = model_features(anedoctor.check(model_path, chip="a17", os="ios17").prediction_placements())
    macs = 128 * 128 * 1024 * (8 * 9 + 17 * 17)
    assert features["gmac"] == pytest.approx(macs / 1e9, rel=1e-3)
    assert features["weight_mb"] == pytest.approx(2 * 128 * 128 * (8 * 9 + 17 * 17) / 1e6, abs=1e-3)
    assert features["ops"] == 19  # 9 convs, 8 relus, the input and output casts
    assert features["conv_share"] == 1.0 and features["ane_share"] == pytest.approx(8 * 9 / (8 * 9 + 17 * 17), abs=1e-3)


def test_estimate_names_the_published_models_most_like_it(model_path, monkeypatch):
    """The published cases nearest the model's features are listed with their published and estimated latency (a
    decade of MACs away counts 1, the whole model moved off the ANE 2): the chip's own first when they are within 1,
    else the nearest on any chip, named."""
    from anedoctor.cost import evidence

    own = evidence.model_features(anedoctor.check(model_path, chip="a17", os="ios17").prediction_placements())
    like = {"chip": "a17", "compute_units": "all", "split": "fit", "published_ms": 2.0, "estimated_ms": 3.0, **own}
    table = {
        "on_the_cpu_a17": {**like, "ane_share": 0.0, "published_ms": 9.0},  # 2 x 0.2 = 0.4 away
        "tenfold_a17": {**like, "gmac": 10 * own["gmac"], "published_ms": 20.0},  # 1.0 away
        "twin_a17": like,
        "thousandfold_m4": {**like, "chip": "m4", "gmac": 1000 * own["gmac"]},  # 3.0 away
    }
    monkeypatch.setattr(evidence, "published_cases", lambda: table)
    est = anedoctor.estimate(model_path, chip="a17", os="ios17")
    nearest = est.to_dict()["nearest_published"]
    assert [(n["case"], n["distance"], n["ratio"]) for n in nearest] == [
        ("twin_a17", 0, 1.5),
        ("on_the_cpu_a17", 0.4, 0.33),
    ]
    assert "twin_a17 2 ms published, 3 estimated (1.50x); on_the_cpu_a17 9 ms" in est.render()
    assert "twin_a17 2 ms published" in est.to_html()
    assert anedoctor.check(model_path, chip="a17", os="ios17").to_dict()["nearest_published"] == nearest
    for chip in ("m4", "m5pro"):  # the M4's one case is too unlike it, the M5 Pro has none
        elsewhere = anedoctor.estimate(model_path, chip=chip)
        assert [n["case"] for n in elsewhere.to_dict()["nearest_published"]] == ["twin_a17", "on_the_cpu_a17"]
        assert "twin_a17 (a17) 2 ms published" in elsewhere.render()
    table["twin_m4"] = {**like, "chip": "m4", "gmac": 3 * own["gmac"]}  # 0.48 away: the M4's own comes first
    assert [n["case"] for n in anedoctor.estimate(model_path, chip="m4").to_dict()["nearest_published"]] == [
        "twin_m4",
        "twin_a17",
    ]


@pytest.fixture(scope="module")
def two_functions(tmp_path_factory):
    return build_two_functions(tmp_path_factory.mktemp("multi"))


def test_a_prediction_of_a_multi_function_model_runs_one_function(two_functions):
    whole = anedoctor.check(two_functions, chip="m4")
    each = {f: anedoctor.check(two_functions, chip="m4", function=f).summary for f in ("decode", "prefill")}
    assert whole.model.functions == ["decode", "prefill"]
    assert whole.summary["ops"] == each["decode"]["ops"] + each["prefill"]["ops"] > 16  # both placed
    alone = {f: s["latency_ms"] for f, s in each.items()}
    assert alone["prefill"] > alone["decode"] > 0
    assert whole.summary["latency_ms"] == alone["decode"]  # the default's, not the sum of both
    assert {f["name"]: f["latency_ms"] for f in whole.summary["functions"]} == alone
    assert [f["ops"] for f in whole.summary["functions"]] == [each["decode"]["ops"], each["prefill"]["ops"]]
    assert [f["ane_fraction"] for f in whole.summary["functions"]] == [
        round(each[f]["ane_fraction"], 4) for f in ("decode", "prefill")
    ]
    d = anedoctor.estimate(two_functions, chip="m4").to_dict()
    assert [f["name"] for f in d["functions"]] == ["decode", "prefill"] and d["latency_ms"] == alone["decode"]
    assert sum(t["ops"] for t in d["op_types"]) == each["decode"]["ops"]  # the default function's ops only
    prefill = anedoctor.estimate(two_functions, chip="m4", function="prefill").to_dict()
    assert prefill["latency_ms"] == alone["prefill"] and prefill["functions"] == []


def test_run_and_cli_pick_a_function(two_functions):
    assert anedoctor.run(two_functions, function="prefill").outputs["c3"].shape == (1, 256, 1, 64)
    assert anedoctor.run(two_functions).outputs["c3"].shape == (1, 256, 1, 1)
    shown = CliRunner().invoke(app, ["estimate", str(two_functions), "--chip", "m4"])
    assert shown.exit_code == 0 and "functions (a prediction runs one" in shown.output
    bad = CliRunner().invoke(app, ["check", str(two_functions), "--function", "train"])
    assert bad.exit_code == 2
    assert "no function 'train'; its functions: decode, prefill" in bad.output and bad.output.count("\n") == 1


def test_compress_and_fix_say_how_to_handle_a_multi_function_model(two_functions, tmp_path):
    result = CliRunner().invoke(
        app, ["compress", str(two_functions), "--quantize", "int8", "-o", str(tmp_path / "q.mlpackage")]
    )
    assert result.exit_code == 2 and not (tmp_path / "q.mlpackage").exists()
    assert "has 2 functions (decode, prefill)" in result.output and "save_multifunction" in result.output
    fixed = CliRunner().invoke(app, ["fix", str(two_functions), "-o", str(tmp_path / "f.mlpackage")])
    assert fixed.exit_code == 2 and "fix each function's model" in fixed.output
