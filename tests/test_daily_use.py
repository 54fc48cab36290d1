"""Daily use (issue 12): outputs never over inputs, file modes, pipes, stdout, inputs in other formats,
several models, settings from pyproject, rule selection, CI formats, root causes, the Python API."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import torch
from mil_models import chain, mb, sandwich
from test_cli import CLI, run, tree_digest

import anedoctor
from anedoctor.demo import build_demo_model

DATA = Path(__file__).parent / "data" / "mlmodelc"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return sandwich(
        tmp_path_factory.mktemp("split") / "split.mlpackage", lambda x: mb.cumsum(x=x, axis=1, name="running_total")
    )


# ---------------------------------------------------------------- outputs


@pytest.mark.parametrize("where", ["the model", "inside the model"])
def test_an_output_over_an_input_is_refused(split, tmp_path, where):
    target = split if where == "the model" else split / "report.json"
    before = tree_digest(split)
    r = run("check", split, "--json", target)
    assert r.returncode == 2 and "refusing" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert tree_digest(split) == before


def test_an_mlmodel_is_not_overwritten_by_its_own_report(tmp_path):
    from nn_models import legacy_ops

    path = tmp_path / "m.mlmodel"
    path.write_bytes(legacy_ops().SerializeToString())
    before = path.read_bytes()
    r = run("check", path, "--json", path)
    assert r.returncode == 2 and "refusing" in r.stderr and path.read_bytes() == before


def test_outputs_honour_the_umask_and_keep_an_existing_mode(split, tmp_path):
    fresh, kept = tmp_path / "fresh.json", tmp_path / "kept.json"
    kept.write_text("{}")
    kept.chmod(0o640)
    old = os.umask(0o022)
    try:
        assert run("check", split, "--json", fresh).returncode == 0
        assert run("check", split, "--json", kept).returncode == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and json.loads(kept.read_text())["summary"]


def test_a_closed_pipe_does_not_stop_the_other_outputs(split, tmp_path):
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    p = subprocess.Popen(
        CLI + ["check", str(split), "-v", "--json", str(out), "--html", str(html)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.read(20)
    p.stdout.close()  # what `| head -c 20` does
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert json.loads(out.read_text())["summary"]["ops"] > 0 and html.read_text().startswith("<!DOCTYPE html>")


def test_dash_is_stdout_for_every_output_and_only_one_may_claim_it(split, tmp_path):
    r = run("check", split, "--json", "-", "--explain", "running_total")
    assert r.returncode == 0 and json.loads(r.stdout)["summary"]["ops"] > 0  # the explanation went to stderr
    assert "running_total" in r.stderr
    sarif = run("check", split, "--sarif", "-")
    assert json.loads(sarif.stdout)["version"] == "2.1.0"
    both = run("check", split, "--json", "-", "--junit", "-")
    assert both.returncode == 2 and "only one output" in both.stderr
    npz = subprocess.run(CLI + ["run", str(split), "--out", "-"], capture_output=True, timeout=300)
    assert npz.returncode == 0 and npz.stdout[:2] == b"PK" and b"running_total" not in npz.stdout[-200:].split(b"PK")[0]


def test_a_failing_second_output_leaves_no_first_output(split, tmp_path):
    r = run("check", split, "--json", tmp_path / "r.json", "--html", tmp_path / "missing" / "r.html")
    assert r.returncode == 2 and str(tmp_path / "missing" / "r.html") in r.stderr and ".tmp" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_npz_outputs_may_have_any_name(tmp_path):
    from anedoctor.execute import npz_bytes

    data = npz_bytes({"file": np.arange(3), "allow_pickle": np.ones(2)})
    (tmp_path / "o.npz").write_bytes(data)
    loaded = np.load(tmp_path / "o.npz")
    assert sorted(loaded.files) == ["allow_pickle", "file"] and loaded["file"].tolist() == [0, 1, 2]


# ---------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch")
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, dilation=8), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.jit.save(torch.jit.trace(module, x), folder / "m.pt")
    torch.export.save(torch.export.export(module, (x,)), folder / "m.pt2")
    torch.save(module.state_dict(), folder / "weights.pt")
    (folder / "m.onnx").write_bytes(b"\x08\x07")
    return folder


def test_pt2_and_torchscript_files_are_converted_and_checked(torch_files):
    r = run("check", torch_files / "m.pt2")
    assert r.returncode == 0 and "PA-11" in r.stdout, r.stderr
    r = run("check", torch_files / "m.pt", "--input-shape", "x=1x3x32x32")
    assert r.returncode == 0 and "PA-11" in r.stdout, r.stderr
    r = run("check", torch_files / "m.pt")
    assert r.returncode == 2 and "--input-shape" in r.stderr


@pytest.mark.parametrize("name, says", [("m.onnx", "ONNX"), ("weights.pt", "not a TorchScript file")])
def test_foreign_files_get_one_line_that_says_what_to_do(torch_files, name, says):
    r = run("check", torch_files / name, "--input-shape", "x=1x3x32x32")
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_folder_holding_one_model_suggests_it(split):
    r = run("check", split.parent)
    assert r.returncode == 2 and f"did you mean {split}" in r.stderr


# ---------------------------------------------------------------- the command line


def test_several_models_get_a_summary_table(demo, split, tmp_path):
    r = run("check", demo, split, "--json", tmp_path / "{name}.json", "--min-ane", "0.99")
    assert r.returncode == 1, r.stderr
    assert "Summary" in r.stdout and "demo.mlpackage" in r.stdout and "split.mlpackage" in r.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"demo.json", "split.json"}
    assert run("check", demo, split, "--json", tmp_path / "one.json").returncode == 2  # needs {name}


def test_version_and_short_help():
    assert run("--version").stdout.strip() == f"anedoctor {anedoctor.__version__}"
    assert "check" in run("-h").stdout and "--min-ane-flops" in run("check", "-h").stdout


def test_rule_selection_changes_the_prediction(demo):
    assert "PA-11" in run("check", demo).stdout
    r = run("check", demo, "--ignore", "PA-11")
    assert r.returncode == 0 and "PA-11" not in r.stdout
    only = anedoctor.check(demo, select=["DT"])
    assert {f.rule.id for p in only.placements for f in p.findings} <= {"DT-4", "SEG-1", "SEG-2"}
    assert run("check", demo, "--select", "nonsense").returncode == 2


def test_project_settings_come_from_pyproject(split, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.anedoctor]\ncompute_units = "cpu_and_ne"\nchip = "m1"\nmin_ane = 0.999\n'
    )
    r = run("check", split, "--json", "r.json", cwd=tmp_path)
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["compute_units"] == "cpu_and_ne" and d["chip"]["id"] == "m1" and r.returncode == 1
    assert run("check", split, "--min-ane", "0", cwd=tmp_path).returncode == 0  # the option wins
    (tmp_path / "pyproject.toml").write_text("[tool.anedoctor]\nminimum_ane = 1\n")
    bad = run("check", split, cwd=tmp_path)
    assert bad.returncode == 2 and "minimum_ane" in bad.stderr


def test_compute_units_in_coremltools_spelling(split):
    r = run("check", split, "--compute-units", "CPU_AND_NE", "--json", "-")
    assert json.loads(r.stdout)["compute_units"] == "cpu_and_ne"
    assert run("check", split, "--compute-units", "NPU").returncode == 2


def test_ci_formats(demo, tmp_path):
    r = run("check", demo, "--sarif", tmp_path / "r.sarif", "--junit", tmp_path / "r.xml", "--min-ane-flops", "0.99")
    assert r.returncode == 1
    sarif = json.loads((tmp_path / "r.sarif").read_text())
    run_ = sarif["runs"][0]
    assert sarif["version"] == "2.1.0" and run_["tool"]["driver"]["name"] == "anedoctor"
    ids = {rule["id"] for rule in run_["tool"]["driver"]["rules"]}
    assert {"PA-11", "PA-6", "gate"} <= ids and all(res["ruleId"] in ids for res in run_["results"])
    assert any(res["level"] == "error" for res in run_["results"])
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1" and "FLOPs" in suite.find("testcase/failure").get("message")
    gh = run("check", demo, "--output-format", "github")
    lines = gh.stdout.strip().splitlines()
    assert lines[0].startswith("::notice file=") and any(
        line.startswith("::warning") and "PA-11" in line for line in lines
    )
    env_default = subprocess.run(
        CLI + ["check", str(demo)],
        capture_output=True,
        text=True,
        env={**os.environ, "GITHUB_ACTIONS": "true"},
        timeout=300,
    )
    assert env_default.stdout.startswith("::notice")


# ---------------------------------------------------------------- what to fix first


def test_root_causes_come_before_their_consequences(demo):
    report = anedoctor.check(demo)
    top = [c.rule.id for c in report.causes]
    assert top[0] == "PA-11" and "SEG-2" not in top  # the dilated conv is why the GPU takes the backbone
    d = report.to_dict()
    assert sum(c["flops_fraction"] for c in d["causes"]) <= 1.0 + 1e-9
    assert sum(c["ops"] for c in d["causes"]) == d["summary"]["ops"] - d["summary"]["ane"]


def test_shares_never_exceed_the_whole_on_a_real_compiled_model():
    d = anedoctor.check(DATA / "silero_vad_palette4_ios16.mlmodelc").to_dict()
    assert d["causes"] and sum(c["flops_fraction"] for c in d["causes"]) <= 1.0 + 1e-9


def test_advice_fits_the_compute_units(split):
    fixes = {
        u: " ".join(c["fix"] for c in anedoctor.check(split, compute_units=u).to_dict()["causes"])
        for u in ("all", "cpu_and_ne")
    }
    assert "cpu_and_ne" not in fixes["cpu_and_ne"]


# ---------------------------------------------------------------- the Python API


def test_api_returns_text_and_raises_key_error(split):
    report = anedoctor.check(split)
    assert isinstance(report.render(), str) and "Neural Engine:" in report.render()
    assert "running_total" in report.explain("running_total")
    with pytest.raises(KeyError):
        report.device("no_such_op")
    assert report.device("running_total") == "cpu"
    rows = report.ops_table()
    assert len(rows) == len(report.placements) and {"name", "device", "flops", "ane_ms", "reasons"} <= set(rows[0])


def test_an_mlmodels_compute_units_are_honoured(split):
    import coremltools as ct

    ml = ct.models.MLModel(str(split), compute_units=ct.ComputeUnit.CPU_AND_NE, skip_model_load=True)
    assert anedoctor.check(ml).compute_units == "cpu_and_ne"
    assert anedoctor.check(ml, compute_units="cpu_only").compute_units == "cpu_only"


def test_every_public_function_and_method_is_documented_with_an_example():
    from anedoctor.report import Report

    public = [
        anedoctor.check,
        anedoctor.gate,
        anedoctor.run,
        anedoctor.numerics,
        Report.render,
        Report.explain,
        Report.device,
        Report.ops_table,
    ]
    assert [f.__qualname__ for f in public if ">>>" not in (f.__doc__ or "")] == []
    assert sys.modules["anedoctor"].__doc__


@pytest.mark.parametrize(
    "chip, os, says",
    [
        ("a17", "ios15", "never ran ios15"),
        ("m4", "macos13", "never ran macos13"),
        ("a17", "ios19", "there is no ios19"),
    ],
)
def test_impossible_targets_are_refused(split, chip, os, says):
    with pytest.raises(anedoctor.ModelError, match=says):
        anedoctor.check(split, chip=chip, os=os)
    assert anedoctor.check(split, chip="a14", os="ios27").target.os.id == "ios27"


def test_check_holds_the_prediction_against_a_measurement(split):
    dump = Path(__file__).parent / "data" / "measure" / "computeplan" / "vx436_matmul_4x4_fp32_m4.txt"
    r = run("check", split, "--measured", dump)
    assert r.returncode == 0 and "Against the measurement" in r.stdout and "device agreement" in r.stdout


def test_progress_shows_on_a_terminal_only(split):
    """A spinner on stderr while loading and predicting when stderr is a terminal; nothing when it is not."""
    import pty

    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        CLI + ["check", str(split), "--json", os.devnull],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        stdin=subprocess.DEVNULL,
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=300)
    os.close(main)
    assert proc.returncode == 0 and b"split.mlpackage" in seen and (b"loading" in seen or b"predicting" in seen)
    quiet = run("check", split, "--json", os.devnull)
    assert quiet.returncode == 0 and "loading" not in quiet.stderr and "predicting" not in quiet.stderr


def test_chips_lists_chips_their_first_os_and_the_os_versions():
    r = run("chips")
    assert r.returncode == 0 and "m2ultra" in r.stdout and "a19" in r.stdout and "first OS" in r.stdout
    assert "ios26" in r.stdout and "macos15" in r.stdout and "ios19" not in r.stdout
    narrow = subprocess.run(CLI + ["chips"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"})
    assert "m2ultra" in narrow.stdout and "…" not in narrow.stdout  # wider than the terminal, never squeezed


HELD_MEMORY = """
import resource, sys
import anedoctor
from anedoctor.compress.analysis import accuracy
from anedoctor.execute import generate_inputs
model = anedoctor.load(sys.argv[1])
feeds = generate_inputs(model)
anedoctor.run(model, feeds)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
anedoctor.numerics(model, feeds, devices="ane")
numerics = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
accuracy(model, model, feeds, "generated")
print((numerics - peak) / 1024, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - numerics) / 1024)
"""


def test_numerics_and_compress_accuracy_hold_two_runs_not_every_intermediate(tmp_path):
    """A 450-op chain makes about 0.45 GB of fp32 intermediates per run. Comparing two runs op by op (numerics: fp32
    against fp16; compress: the original against the compressed) holds only the values not yet compared, so the
    peak grows by little more than a second run's weights and live tensors, not by both runs' intermediates."""
    path = chain(tmp_path / "chain.mlpackage", 450)
    out = subprocess.run([sys.executable, "-c", HELD_MEMORY, str(path)], capture_output=True, text=True, check=True)
    numerics_mb, accuracy_mb = map(float, out.stdout.split())
    assert numerics_mb < 200 and accuracy_mb < 200, out.stdout
