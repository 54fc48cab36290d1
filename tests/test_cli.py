"""The command line as a user runs it: exit codes, one-line errors, files written, inputs untouched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mil_models import mb, sandwich, single

CLI = [sys.executable, "-m", "anedoctor.cli"]


def run(*args, cwd=None):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    return {
        "split": sandwich(tmp / "split.mlpackage", lambda x: mb.cumsum(x=x, axis=1, name="running_total")),
        "clean": sandwich(tmp / "clean.mlpackage", lambda x: mb.relu(x=x)),
        "tmp": tmp,
    }


def tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if f.is_file():
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def test_demo_runs_and_explains():
    r = run("demo")
    assert r.returncode == 0, r.stderr
    assert "Neural Engine:" in r.stdout and "PA-11" in r.stdout and "DT-4" in r.stdout and "fix:" in r.stdout
    # the README's tour quotes this report: every line of it must still be what the demo prints
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    tour = readme.split("`anedoctor demo` builds", 1)[1].split("```", 2)[1]
    printed = " ".join(r.stdout.split())  # as words: the terminal may wrap a long line
    assert [line for line in tour.splitlines()[1:] if " ".join(line.split()) not in printed] == []


def test_check_writes_json_and_gates(models, tmp_path):
    before = tree_digest(models["split"])
    out = tmp_path / "report.json"
    r = run("check", models["split"], "--compute-units", "cpu_and_ne", "--json", out)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["summary"]["cpu"] >= 1 and "OP-6" in r.stdout and "running_total" in r.stdout
    share = d["summary"]["ane_fraction"]
    gate = run("check", models["split"], "--compute-units", "cpu_and_ne", "--min-ane", min(1.0, share + 0.01))
    assert (
        gate.returncode == 1
        and "gate failed: ANE share of ops" in gate.stderr
        and len(gate.stderr.strip().splitlines()) == 1
    )
    assert run("check", models["split"], "--compute-units", "cpu_and_ne", "--min-ane", share - 0.01).returncode == 0
    assert tree_digest(models["split"]) == before  # input never modified


def test_html_report_is_written(models, tmp_path):
    out = tmp_path / "report.html"
    r = run("check", models["split"], "--html", out)
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    assert (
        page.startswith("<!DOCTYPE html>")
        and "split.mlpackage" in page
        and "http" not in page.split("<script")[0].lower().replace("http-equiv", "")
    )
    assert not list(tmp_path.glob(".report.html.*"))  # atomic write leaves no temp file


def test_json_to_stdout_and_explain(models):
    r = run("check", models["split"], "--json", "-")
    assert r.returncode == 0 and json.loads(r.stdout)["schema_version"] == "1.0"
    r = run("check", models["split"], "--compute-units", "cpu_and_ne", "--explain", "running_total")
    assert r.returncode == 0 and "OP-6" in r.stdout and "source:" in r.stdout and "confidence:" in r.stdout
    r = run("check", models["split"], "--explain", "no_such_op")
    assert r.returncode == 2 and "no op named" in r.stderr


def test_verbose_lists_every_op(models):
    r = run("check", models["clean"], "-v", "--chip", "m4", "--os", "macos15")
    assert r.returncode == 0 and "Every op" in r.stdout and "Apple M4" in r.stdout and "(assumed)" not in r.stdout


def test_rules_list_and_explain():
    r = run("rules")
    assert r.returncode == 0 and "DT-4" in r.stdout and "SEG-1" in r.stdout
    r = run("rules", "pa-6")
    assert r.returncode == 0 and "max pool" in r.stdout.lower() and "751K" in r.stdout
    assert run("rules", "XX-9").returncode == 2


def bad_inputs(root: Path, good: Path) -> dict[str, Path]:
    cases = {}
    cases["missing"] = root / "nope.mlpackage"
    (root / "notes.txt").write_text("hello, not a model\n")
    cases["text"] = root / "notes.txt"
    spec = good / "Data" / "com.apple.CoreML" / "model.mlmodel"
    data = spec.read_bytes()
    (root / "truncated.mlmodel").write_bytes(data[: len(data) // 2])
    cases["truncated"] = root / "truncated.mlmodel"
    (root / "garbage.mlmodel").write_bytes(bytes(range(256)) * 8)
    cases["garbage"] = root / "garbage.mlmodel"
    evil = root / "evil.mlpackage"
    shutil.copytree(good, evil)
    manifest = json.loads((evil / "Manifest.json").read_text())
    root_id = manifest["rootModelIdentifier"]
    manifest["itemInfoEntries"][root_id]["path"] = "../../../../etc/passwd"
    (evil / "Manifest.json").write_text(json.dumps(manifest))
    cases["manifest-escape"] = evil
    (root / "empty.mlpackage").mkdir()
    cases["empty"] = root / "empty.mlpackage"
    broken = root / "broken.mlpackage"
    shutil.copytree(good, broken)
    (broken / "Manifest.json").write_text("{not json")
    cases["bad-manifest"] = broken
    return cases


@pytest.fixture(scope="module")
def bad(models):
    root = models["tmp"] / "bad"
    root.mkdir()
    return bad_inputs(root, models["clean"])


@pytest.mark.parametrize(
    "case", ["missing", "text", "truncated", "garbage", "manifest-escape", "empty", "bad-manifest"]
)
def test_bad_input_is_a_one_line_error(bad, case):
    path = bad[case]
    before = tree_digest(path) if path.exists() else None
    r = run("check", path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anedoctor: error:") and "Traceback" not in r.stderr
    assert path.name in lines[0]
    if before is not None:
        assert tree_digest(path) == before


def test_bad_options_are_one_line_errors(models):
    for args in (["--chip", "z80"], ["--os", "windows11"], ["--min-ane", "7"]):
        r = run("check", models["clean"], *args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_run_and_numerics_commands(models, tmp_path):
    import numpy as np

    big = np.full((8, 8, 3, 3), 400.0, np.float32)  # 72 taps x 3.0 x 400 = 86400 > 65504 (fp16 max)
    hot = single(
        tmp_path / "hot.mlpackage",
        (1, 8, 16, 16),
        lambda x: mb.relu(x=mb.conv(x=x, weight=big, name="hot_conv"), name="after"),
    )
    np.savez(tmp_path / "in.npz", x=np.full((1, 8, 16, 16), 3.0, np.float32))
    r = run("run", hot, "--input", tmp_path / "in.npz", "--out", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    out = np.load(tmp_path / "out.npz")
    assert list(out) == ["after"] and np.isfinite(out["after"]).all() and out["after"].max() > 65504
    r = run(
        "numerics",
        hot,
        "--input",
        tmp_path / "in.npz",
        "--devices",
        "ane",
        "--json",
        tmp_path / "n.json",
        "--html",
        tmp_path / "n.html",
    )
    assert r.returncode == 1 and "hot_conv" in r.stdout and "overflow" in r.stdout
    report = json.loads((tmp_path / "n.json").read_text())
    assert report["first"]["op"].startswith("hot_conv") and report["first"]["kind"] == "overflow"
    page = (tmp_path / "n.html").read_text()
    assert "fp16 numerics" in page and "fp16 rel err" in page and "hot_conv" in page
    np.savez(tmp_path / "bad.npz", y=np.zeros((1, 8, 16, 16), np.float32))
    r = run("run", hot, "--input", tmp_path / "bad.npz")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
