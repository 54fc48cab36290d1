"""anedoctor.measure: MLComputePlan dumps, compare, Espresso/lldb logs, profiles (Linux) and measure (macOS only).

Dumps are real MLComputePlan output from public issues (tests/data/measure/README.md names each source)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import anedoctor
from anedoctor.errors import ModelError
from anedoctor.measure import (
    compare,
    ingest,
    load_profile,
    measure,
    measurement_from_dump,
)
from anedoctor.measure.computeplan import measurement, parse_compute_plan
from anedoctor.measure.logs import (
    attach_log,
    attach_reasons,
    lldb_commands,
    parse_espresso_log,
    parse_lldb_log,
)
from anedoctor.measure.macos import plan_rows
from anedoctor.measure.profile import write_profile
from anedoctor.report.html import render_html

PLANS = Path(__file__).parent / "data" / "measure" / "computeplan"
VOX = PLANS / "voxcpmane15_m5max_rmsnorm.txt"
MATMUL4 = PLANS / "vx436_matmul_4x4_fp32_m4.txt"
MATMUL512 = PLANS / "vx435_matmul_512_f16_m4.txt"
INSPECT = PLANS / "coremlinspect_readme_gpt2.txt"
on_mac = pytest.mark.skipif(sys.platform != "darwin", reason="needs macOS (Core ML, MLComputePlan)")


def mil_model(build, specs):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    prog = mb.program(input_specs=[mb.TensorSpec(s, dtype=d) for s, d in specs], opset_version=ct.target.iOS18)(build)
    return ct.convert(
        prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18, compute_precision=ct.precision.FLOAT16
    )


def matmul_model(n):
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    return mil_model(lambda a, b: mb.matmul(x=a, y=b), [((n, n), types.fp32)] * 2)


def rmsnorm_model():
    """The ops of the VoxCPMANE #15 dump, with the same output names."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    def build(x):
        sq = mb.mul(x=x, y=x, name="var_20_cast_fp16")
        ms = mb.reduce_mean(x=sq, axes=[1], keep_dims=True, name="_inversed_mean_square_1_cast_fp16")
        inv = mb.rsqrt(x=mb.add(x=ms, y=np.float16(1e-6), name="var_26_cast_fp16"), name="var_27_cast_fp16")
        y = mb.mul(x=x, y=inv, name="normalized_1_cast_fp16")
        return mb.conv(x=y, weight=np.full((256, 256, 1, 1), 0.01, np.float16), name="var_46_cast_fp16")

    return mil_model(build, [((1, 256, 1, 64), types.fp16)])


# ---- MLComputePlan dumps ----------------------------------------------------------------------------
def test_bracketed_dump_skips_const_ops():
    ops = parse_compute_plan(VOX.read_text(), "vox")
    assert [(o["name"], o["type"], o["opset"]) for o in ops] == [
        ("var_20_cast_fp16", "mul", "ios18"),
        ("_inversed_mean_square_1_cast_fp16", "reduce_mean", "ios16"),
        ("var_26_cast_fp16", "add", "ios18"),
        ("var_27_cast_fp16", "rsqrt", "ios18"),
        ("normalized_1_cast_fp16", "mul", "ios18"),
    ]
    assert all(o["device"] == "ane" and o["supported"] == {"ane": True, "gpu": False, "cpu": True} for o in ops)


def test_op_equals_dumps_with_and_without_supported_list():
    small = parse_compute_plan(MATMUL4.read_text(), "vx436")
    assert [o["type"] for o in small] == ["cast", "cast", "matmul", "cast"]  # the 'ComputeUnit.ALL ->' lines are prose
    assert all(o["device"] == "cpu" and o["supported"]["ane"] and o["name"] is None for o in small)
    big = parse_compute_plan(MATMUL512.read_text(), "vx435")
    assert [o["device"] for o in big] == ["ane"] * 4 and all(o["supported"] is None for o in big)


def test_coremlinspect_lines():
    gather, mul = parse_compute_plan(INSPECT.read_text(), "inspect")
    assert (gather["type"], gather["device"]) == ("gather", "gpu")
    assert gather["supported"] == {"ane": False, "gpu": True, "cpu": True}
    assert (mul["name"], mul["device"], mul["supported"]["ane"]) == ("var_145_cast_fp16", "gpu", True)
    assert gather["cost"] == pytest.approx(0.0068)


def test_bad_dumps():
    with pytest.raises(ModelError, match="^x: no MLComputePlan op line found"):
        parse_compute_plan("hello\n", "x")
    with pytest.raises(ModelError, match="mixes MLComputePlan dump layouts"):
        parse_compute_plan(VOX.read_text() + MATMUL4.read_text(), "mixed")


def test_measurement_renders_with_the_existing_html_report():
    d = measurement_from_dump(VOX, compute_units="cpu_and_ne")
    assert d["kind"] == "measurement" and d["summary"]["ane"] == 5 and d["summary"]["segments"] == 1
    html = render_html(d)
    assert "Measurement" in html and "var_27_cast_fp16" in html


def test_segments_and_switches_of_a_measurement():
    ops = parse_compute_plan(INSPECT.read_text() + "\n0.10% N|C y = ios16.add(x)\n", "x")
    d = measurement(ops)
    assert [(s["device"], s["ops"]) for s in d["segments"]] == [("gpu", 2), ("ane", 1)]
    assert d["switches"] == [
        {
            "part": None,
            "after": 1,
            "before": 2,
            "from": "gpu",
            "to": "ane",
            "after_name": "var_145_cast_fp16",
            "before_name": "y",
        }
    ]


# ---- compare -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, dump, device", [(4, MATMUL4, "cpu"), (512, MATMUL512, "ane")])
def test_compare_gt_b_matmul_dumps_agree(n, dump, device):
    """vx-lang/Vx #435/#436 on M4: the README's GT-B rows, compared through the dump parser."""
    pred = anedoctor.check(matmul_model(n), chip="m4", os="macos27", compute_units="cpu_and_ne")
    c = compare(pred, dump)
    s = c.summary
    assert s["matched_by"] == {"type and order": 4} and s["compared"] == 4
    assert c.confusion[device][device] == 4 and s["agree"] == 4 and c.wrong == []
    assert c.headline().startswith("device agreement 4 / 4 ops (100.0%)")


def test_compare_by_name_and_the_explanation_of_each_miss(tmp_path):
    pred = anedoctor.check(rmsnorm_model(), chip="m5", compute_units="cpu_and_ne")
    pred_path = tmp_path / "pred.json"
    pred.to_json(pred_path)
    c = compare(pred_path, VOX)
    s = c.summary
    assert s["matched_by"] == {"name": 5} and c.unmatched_predicted == ["var_46_cast_fp16"]
    # both sides say all five ops can run on the ANE
    assert s["ane_eligibility_compared"] == 5 and s["ane_eligibility_agree"] == 5
    assert sum(map(sum, (r.values() for r in c.confusion.values()))) == s["compared"] == 5
    assert s["agree"] == sum(c.confusion[d][d] for d in ("ane", "gpu", "cpu"))
    for row in c.wrong:  # this excerpt is from a large model: the segmenter may keep a lone RMSNorm off the ANE
        assert row["measured"] == "ane" and "cost model put it there" in row["why"]
        assert any(r.startswith("SEG-") for r in row["rules"]) == ("(SEG-" in row["why"])
    d = json.loads(c.to_json(tmp_path / "cmp.json"))
    assert d["kind"] == "comparison" and d["headline"] == c.headline() and len(d["ops"]) == 5
    assert d["notes"][0].startswith("1 predicted and 0 measured op(s) had no counterpart")
    on_m4 = compare(pred_path, measurement_from_dump(VOX, compute_units="cpu_and_ne", chip={"id": "m4"}))
    assert "chips differ: predicted for m5, measured on m4 (predict with --chip m4)" in on_m4.to_dict()["notes"]
    html = c.to_html(tmp_path / "cmp.html")
    assert "Confusion matrix" in html and c.headline().split(" · ")[0] in html


def test_compare_names_a_missing_rule():
    """Measured: the ANE cannot run the embedding gather (CoreMLInspect README); predicted: compare explains."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    table = np.full((1000, 64), 0.1, np.float16)

    def build(ids):
        x = mb.gather(x=table, indices=ids, axis=0, name="x_1_cast_fp16")
        return mb.mul(x=x, y=x, name="var_145_cast_fp16")

    pred = anedoctor.check(mil_model(build, [((1, 16), types.int32)]), chip="m1", compute_units="all")
    c = compare(pred, INSPECT)
    gather = next(r for r in c.rows if r["measured_name"] == "x_1_cast_fp16")
    assert gather["type"] == "gather" and gather["name"].startswith("x_1_cast_fp16_")
    assert gather["ane_supported_measured"] is False
    assert gather["ane_supported_predicted"] is False, "OP-10 (runtime-index gather) should block the ANE"
    assert "OP-10" in gather["rules"] and c.summary["matched_by"] == {"name": 1, "name prefix": 1}


def test_compare_refuses_wrong_kinds(tmp_path):
    meas = measurement_from_dump(VOX)
    with pytest.raises(ModelError, match="is a measurement; compare needs a prediction first"):
        compare(meas, meas)
    bad = tmp_path / "bad.json"
    bad.write_text('{"ops": [\n}')
    with pytest.raises(ModelError, match=r"bad.json: line 2: invalid JSON"):
        compare(bad, VOX)
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"kind": "prediction", "ops": []}))
    with pytest.raises(ModelError, match="kind is 'prediction', expected 'measurement'"):
        compare(pred, pred)


# ---- Espresso log and lldb -------------------------------------------------------------------------
# Constructed lines (synthetic) in the layout Anemll/anemll-profile parses; see tests/data/measure/README.md.
ESPRESSO = (
    Path(__file__).parent / "data" / "measure" / "espresso" / "constructed_anemll_profile_layout.log"
).read_text()


def test_espresso_log_rejections_and_cost_records():
    log = parse_espresso_log(ESPRESSO)
    assert log["rejections"] == [
        {"index": 7, "type": "ios18.slice_update", "reason": "Cannot support standalone slice_update"},
        {"index": 9, "type": "ios18.gather", "reason": "Unsupported tensor data type: int32"},
    ]
    (conv,) = log["cost_features"]  # the first record of an op counts
    assert conv == {
        "name": "conv_0",
        "type": "ios18.conv",
        "gFlopCnt": 0.5,
        "totalMB": 1.25,
        "bound": "Compute",
        "Runtime": 0.031,
        "kernelX": 3.0,
    }


def test_rejections_attach_to_the_ops_they_name():
    ops = parse_compute_plan(INSPECT.read_text(), "x")
    ops[0]["plan_index"] = 9
    assert attach_reasons(ops, parse_espresso_log(ESPRESSO)) == 1
    assert ops[0]["reasons"][0]["message"] == "Unsupported tensor data type: int32" and ops[1]["reasons"] == []
    html = render_html(measurement(ops))
    assert "Unsupported tensor data type: int32" in html


def test_attach_log_adds_cost_records_and_says_what_was_captured():
    ops = parse_compute_plan(INSPECT.read_text(), "x")
    ops[1]["name"] = "conv_0"
    note = attach_log(ops, parse_espresso_log(ESPRESSO))
    assert ops[1]["extra"] == {"E5 gFlopCnt": 0.5, "E5 bound": "Compute", "E5 Runtime": 0.031}
    assert note == "Core ML's log: 2 rejection(s), 1 attached to ops; cost-model records for 1 op(s)"
    assert "no Espresso line captured" in attach_log(ops, parse_espresso_log("unrelated\n"))


def test_lldb_command_file_and_log_counts():
    commands = lldb_commands()
    assert "-[_ANEModel program]" in commands and "Espresso::MPSEngine::context::__launch_kernel" in commands
    assert commands.count("-G true") == 5
    # lldb echoes sourced commands: the echo must not count as a hit
    log = commands + "ANEDOCTOR_HIT ANE_PROGRAM\n" + "ANEDOCTOR_HIT BNNS_ENGINE\n" * 3 + "ANEDOCTOR_HIT NOPE\n"
    counts = parse_lldb_log(log)
    assert counts["hits"] == {"ANE_PROGRAM": 1, "BNNS_ENGINE": 3}
    assert counts["devices"] == {"ane": 1, "gpu": 0, "cpu": 3} and counts["engines_seen"] == ["ane", "cpu"]


# ---- profiles ----------------------------------------------------------------------------------------
def probe_measurement(dump, name, predict_ms=None):
    d = measurement_from_dump(dump, compute_units="cpu_and_ne", chip={"name": "Apple M4"}, os={"build": "25A"})
    d["model"]["name"] = name
    if predict_ms is not None:  # timing added by hand (synthetic): the dumps carry none
        d["runs"] = {"cpu_and_ne": {"predict_ms": {"median": predict_ms}}}
    return d


def test_ingest_probes_into_a_profile_and_load_it(tmp_path):
    measured = [
        probe_measurement(MATMUL4, "gtb_matmul_4.mlpackage", 0.02),
        probe_measurement(MATMUL512, "gtb_matmul_512.mlpackage", 0.5),
    ]
    manifest = {
        "gtb_matmul_4": {"op_type": "matmul", "predicted_ms": {"cpu": 0.01}},
        "gtb_matmul_512": {"op_type": "matmul", "predicted_ms": {"ane": 1.0}},
    }
    profile = ingest(measured, manifest)
    assert [(e["probe"], e["op_type"], e["ane"], e["device"]) for e in profile["eligibility"]] == [
        ("gtb_matmul_4", "matmul", True, "cpu"),
        ("gtb_matmul_512", "matmul", True, "ane"),
    ]
    assert profile["cost_scale"] == {"cpu": 2.0, "ane": 0.5}
    assert profile["chip"]["name"] == "Apple M4" and len(profile["provenance"]) == 2
    write_profile(profile, tmp_path / "m4.json")
    loaded = load_profile(tmp_path / "m4.json")
    assert loaded.ane_eligible("matmul") is True and loaded.ane_eligible("conv") is None
    assert "gtb_matmul_4, gtb_matmul_512" in loaded.source_of("matmul") and loaded.cost_scale["ane"] == 0.5


def test_ingest_reads_a_directory_and_refuses_two_chips(tmp_path):
    a = probe_measurement(MATMUL4, "gather_probe.mlpackage")
    (tmp_path / "a.json").write_text(json.dumps(a))
    profile = ingest([tmp_path])
    assert profile["eligibility"][0]["op_type"] == "matmul" and profile["cost_scale"] == {}
    b = {**a, "chip": {"name": "Apple M1"}}
    with pytest.raises(ModelError, match="one chip and OS build per profile"):
        ingest([a, b])
    with pytest.raises(ModelError, match="no probe measurements"):
        ingest([tmp_path / "empty_dir_does_not_exist.json"][:0])


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"kind": "prediction"}', "not an anedoctor profile"),
        ('{"kind": "profile", "eligibility": [{"op_type": "conv"}]}', r"eligibility\[0\]"),
        ('{"kind": "profile", "cost_scale": {"npu": 2}}', r"cost_scale\['npu'\]"),
        ("{", "line 1: invalid JSON"),
    ],
)
def test_load_profile_errors(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ModelError, match=message):
        load_profile(path)


# ---- measure (the macOS boundary) -------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "darwin", reason="the non-macOS message")
def test_measure_elsewhere_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelError, match="needs macOS 14.4\\+") as e:
        measure(tmp_path / "m.mlpackage")
    assert "\n" not in str(e.value)


@on_mac
def test_measure_on_a_mac(tmp_path):
    path = tmp_path / "mm.mlpackage"
    matmul_model(512).save(str(path))
    d = measure(path, compute_units=["cpu_and_ne", "cpu_only"], iterations=5)
    assert d["kind"] == "measurement" and d["os"]["build"] and d["coreml"]["coremltools"]
    assert [o["type"] for o in d["ops"]] == ["cast", "cast", "matmul", "cast"]
    assert {o["device"] for o in d["ops"]} <= {"ane", "cpu"}
    assert all(o["device"] == "cpu" for o in d["ops"]) or d["summary"]["ane"] > 0
    runs = d["runs"]
    assert set(runs) == {"cpu_and_ne", "cpu_only"} and runs["cpu_only"]["summary"]["ane"] == 0
    t = runs["cpu_and_ne"]["predict_ms"]
    assert 0 < t["min"] <= t["median"] <= t["max"]
    c = compare(anedoctor.check(path, compute_units="cpu_and_ne"), d)
    assert c.summary["compared"] == 4


@on_mac
def test_power_on_a_mac_degrades_without_sudo(tmp_path):
    from anedoctor.measure.macos import powermetrics_available

    path = tmp_path / "mm.mlpackage"
    matmul_model(512).save(str(path))
    d = measure(path, compute_units=["cpu_and_ne"], iterations=50, power=True)
    p = d["runs"]["cpu_and_ne"]["power"]
    if powermetrics_available() is None:
        assert p["measured"] and p["per_inference"]["inferences"] == 50
    else:
        assert p == {"measured": False, "reason": powermetrics_available()}


class ReplayProxy:
    """Stands in for coremltools' native MLComputePlan proxy: answers with the VoxCPMANE #15 dump's devices."""

    def __init__(self, structure, usages):
        self.model_structure, self.usages = structure, usages

    def get_compute_device_usage_for_mlprogram_operation(self, op):
        return self.usages.get(op.outputs[0].name)

    def get_estimated_cost_for_mlprogram_operation(self, op):
        from coremltools.models.compute_plan import MLComputePlanCost

        return MLComputePlanCost(weight=0.1) if op.outputs[0].name in self.usages else None


def test_plan_rows_walk_coremltools_plan_objects():
    """The boundary's traversal on coremltools' own dataclasses (nested blocks, const ops without usage)."""
    from coremltools.models import compute_device as cd
    from coremltools.models import compute_plan as cp

    dump = parse_compute_plan(VOX.read_text(), "vox")
    ane, cpu = (object.__new__(c) for c in (cd.MLNeuralEngineComputeDevice, cd.MLCPUComputeDevice))  # no native proxy
    usage = cp.MLComputePlanDeviceUsage(preferred_compute_device=ane, supported_compute_devices=[cpu, ane])

    def op(operator, name, blocks=()):
        return cp.MLModelStructureProgramOperation(
            inputs={},
            operator_name=operator,
            blocks=list(blocks),
            outputs=[cp.MLModelStructureProgramNamedValueType(name, None)],
            __proxy__=None,
        )

    inner = cp.MLModelStructureProgramBlock(
        inputs=[], output_names=[], operations=[op(f"{o['opset']}.{o['type']}", o["name"]) for o in dump[2:]]
    )
    ops = [
        op("const", "axes"),
        op(f"{dump[0]['opset']}.mul", dump[0]["name"]),
        op("ios16.reduce_mean", dump[1]["name"], [inner]),
    ]
    structure = cp.MLModelStructure(
        neuralnetwork=None,
        pipeline=None,
        program=cp.MLModelStructureProgram(
            functions={
                "main": cp.MLModelStructureProgramFunction(
                    inputs=[], block=cp.MLModelStructureProgramBlock(inputs=[], output_names=[], operations=ops)
                )
            }
        ),
    )
    plan = object.__new__(cp.MLComputePlan)  # coremltools' class, its native proxy replaced by the replay
    plan.__proxy__ = ReplayProxy(structure, {o["name"]: usage for o in dump})
    rows = plan_rows(plan, "replay")
    assert [(r["name"], r["type"], r["device"], r["part"]) for r in rows] == [
        (o["name"], o["type"], "ane", "main") for o in dump
    ]
    assert [r["plan_index"] for r in rows] == [1, 2, 0, 1, 2] and all(r["cost"] == 0.1 for r in rows)
    assert all(r["supported"] == {"ane": True, "gpu": False, "cpu": True} for r in rows)
    pipeline = cp.MLModelStructure(
        neuralnetwork=None, program=None, pipeline=cp.MLModelStructurePipeline(sub_models=[structure, structure])
    )
    staged = plan_rows(plan, "replay", pipeline)
    assert [r["index"] for r in staged] == list(range(10))
    assert [r["part"] for r in staged] == ["stage0/main"] * 5 + ["stage1/main"] * 5


def test_plan_rows_of_one_function_of_a_multi_function_plan():
    """`measure --function`: the plan of the function asked for, its ops' part naming it."""
    from coremltools.models import compute_device as cd
    from coremltools.models import compute_plan as cp

    ane = object.__new__(cd.MLNeuralEngineComputeDevice)
    usage = cp.MLComputePlanDeviceUsage(preferred_compute_device=ane, supported_compute_devices=[ane])

    def function(*names):
        ops = [
            cp.MLModelStructureProgramOperation(
                inputs={},
                operator_name="ios18.relu",
                blocks=[],
                outputs=[cp.MLModelStructureProgramNamedValueType(n, None)],
                __proxy__=None,
            )
            for n in names
        ]
        block = cp.MLModelStructureProgramBlock(inputs=[], output_names=[], operations=ops)
        return cp.MLModelStructureProgramFunction(inputs=[], block=block)

    program = cp.MLModelStructureProgram(functions={"decode": function("d0"), "prefill": function("p0", "p1")})
    structure = cp.MLModelStructure(neuralnetwork=None, pipeline=None, program=program)
    plan = object.__new__(cp.MLComputePlan)
    plan.__proxy__ = ReplayProxy(structure, {n: usage for n in ("d0", "p0", "p1")})
    assert [(r["name"], r["part"]) for r in plan_rows(plan, "replay")] == [
        ("d0", "decode"),
        ("p0", "prefill"),
        ("p1", "prefill"),
    ]
    rows = plan_rows(plan, "replay", function="prefill")
    assert [(r["index"], r["name"], r["part"]) for r in rows] == [(0, "p0", "prefill"), (1, "p1", "prefill")]


def test_measure_times_the_function_asked_for_with_its_own_inputs(tmp_path):
    """Up to the Core ML boundary: the inputs a `measure --function` prediction is fed, and the unknown name."""
    from mil_models import two_functions

    from anedoctor.measure.macos import _inputs

    package = two_functions(tmp_path)
    assert _inputs(package, None)["x"].shape == (1, 256, 1, 1)  # the default function, decode
    assert _inputs(package, "prefill")["x"].shape == (1, 256, 1, 64)
    with pytest.raises(ModelError, match=r"both.mlpackage: no function 'encode'; its functions: decode, prefill"):
        _inputs(package, "encode")


def test_compare_and_measure_commands(tmp_path):
    from typer.testing import CliRunner

    from anedoctor.cli import app

    runner = CliRunner()
    pred = tmp_path / "pred.json"
    anedoctor.check(matmul_model(4), chip="m4", os="macos27", compute_units="cpu_and_ne").to_json(pred)
    out = runner.invoke(
        app,
        ["compare", str(pred), str(MATMUL4), "--json", str(tmp_path / "c.json"), "--html", str(tmp_path / "c.html")],
    )
    assert out.exit_code == 0, out.output
    assert out.output.startswith("device agreement 4 / 4 ops (100.0%)")
    assert json.loads((tmp_path / "c.json").read_text())["summary"]["agree"] == 4
    assert "Confusion matrix" in (tmp_path / "c.html").read_text()
    swapped = runner.invoke(app, ["compare", str(MATMUL4), str(pred)])
    assert swapped.exit_code == 2 and swapped.output.count("\n") == 1
    lldb = runner.invoke(app, ["measure", "m.mlpackage", "--lldb", str(tmp_path / "ane.lldb")])
    assert lldb.exit_code == 0 and "-[_ANEModel program]" in (tmp_path / "ane.lldb").read_text()
    if sys.platform != "darwin":
        off_mac = runner.invoke(app, ["measure", "m.mlpackage", "--compute-units", "all,CPU_AND_NE"])
        assert off_mac.exit_code == 2 and "needs macOS 14.4+" in off_mac.output and off_mac.output.count("\n") == 1


def test_probes_build_then_ingest_end_to_end(tmp_path):
    """`probes build` writes packages + manifest; a measurement of one (the real vx-lang #435 dump for this
    very probe, timing added by hand: synthetic) becomes a profile through `probes ingest`."""
    from typer.testing import CliRunner

    from anedoctor.cli import app
    from anedoctor.measure.suite import load_manifest

    runner = CliRunner()
    suite = tmp_path / "probes"
    out = runner.invoke(
        app, ["probes", "build", str(suite), "--chip", "m4", "--os", "macos27", "--only", "gtb_matmul_512"]
    )
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in suite.iterdir()) == ["gtb_matmul_512.mlpackage", "manifest.json"]
    entry = load_manifest(suite / "manifest.json")["gtb_matmul_512"]
    assert entry["op_type"] == "matmul" and entry["expected_ane"] is True and entry["predicted_device"] == "ane"
    again = runner.invoke(app, ["probes", "build", str(suite)])
    assert again.exit_code == 2 and "not empty" in again.output
    measured = tmp_path / "measured"
    measured.mkdir()
    m = probe_measurement(MATMUL512, "gtb_matmul_512.mlpackage", predict_ms=3 * entry["predicted_ms"]["ane"])
    (measured / "gtb_matmul_512.json").write_text(json.dumps(m))
    out = runner.invoke(
        app,
        [
            "probes",
            "ingest",
            str(measured),
            "-o",
            str(tmp_path / "m4.json"),
            "--manifest",
            str(suite / "manifest.json"),
        ],
    )
    assert out.exit_code == 0, out.output
    profile = load_profile(tmp_path / "m4.json")
    assert profile.ane_eligible("matmul") is True and profile.cost_scale == {"ane": pytest.approx(3.0)}


def test_probes_build_for_an_older_os_uses_its_opset(tmp_path):
    """Probes for macOS 13 are built in the iOS 16 opset so they load there; a probe with no form in it (SDPA is
    iOS 18) is listed as skipped with the reason, not written; the CLI says how many."""
    from typer.testing import CliRunner

    from anedoctor.cli import app

    suite = tmp_path / "probes"
    names = "relu,elu,sdpa"
    out = CliRunner().invoke(
        app, ["probes", "build", str(suite), "--chip", "m1max", "--os", "macos13", "--only", names]
    )
    assert out.exit_code == 0, out.output
    manifest = json.loads((suite / "manifest.json").read_text())
    assert manifest["deployment_target"] == "iOS16" and sorted(manifest["probes"]) == ["elu", "relu"]
    assert list(manifest["skipped"]) == ["sdpa"] and "iOS16" in manifest["skipped"]["sdpa"]
    assert not (suite / "sdpa.mlpackage").exists() and "1 probe(s) skipped" in " ".join(out.output.split())
    import coremltools as ct

    spec = ct.models.MLModel(str(suite / "relu.mlpackage"), skip_model_load=True).get_spec()
    assert spec.specificationVersion == 7  # iOS 16 / macOS 13


def test_cost_rank_correlation():
    from anedoctor.measure.compare import _spearman

    assert _spearman([(1, 1), (1, 2), (2, 3), (3, 3)]) == pytest.approx(0.8889, abs=1e-4)  # scipy.stats.spearmanr
    assert _spearman([(1, 3), (2, 2), (3, 1)]) == -1.0
    assert _spearman([(1, 1), (2, 1), (3, 1)]) is None and _spearman([(1, 1), (2, 2)]) is None
    ops = parse_compute_plan(VOX.read_text(), "vox")
    for i, op in enumerate(ops):
        op["cost"] = (i + 1) / 15
    prediction = {"kind": "prediction", "ops": [{**op, "cost_ms": {"ane": 0.1 * (5 - i)}} for i, op in enumerate(ops)]}
    assert compare(prediction, measurement(ops)).summary["cost_rank_correlation"] == -1.0
