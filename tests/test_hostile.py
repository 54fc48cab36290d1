"""Hostile input: FIFOs, devices, links out of the model and loops, size and shape limits, malformed
fields with one specific error each, hostile .npz inputs, calibration files (profiles, measurements, probe
manifests) with wrong types, the two NeuralNetwork executor fixes, and a bounded mutation campaign over every
input family (tests/fuzz) that must end with zero hangs, crashes, generic errors, unnamed errors, modified
inputs and leftover files."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from anedoctor import load
from anedoctor.errors import ModelError
from anedoctor.execute import generate_inputs, load_inputs, run
from anedoctor.loaders.blob import BlobRef, read_blob
from tests.fuzz import mutate
from tests.fuzz.seeds import build_seeds

DATA = Path(__file__).parent / "data" / "mlmodelc"
ARGMAX, CHIRON = DATA / "fluidaudio_argmax_ios16.mlmodelc", DATA / "chiron_parkinson_wave_nn.mlmodelc"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def seeds(work) -> dict[str, Path]:
    return build_seeds(work / "seeds")


def copy(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return dst


def load_error(path) -> str:
    """The ModelError of loading ``path``, within 60 s (a FIFO read would block forever)."""
    result: dict = {}

    def target():
        try:
            load(path)
            result["error"] = None
        except ModelError as e:
            result["error"] = str(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), f"loading {path} hung"
    assert result["error"] is not None, f"{path} loaded"
    assert "\n" not in result["error"]
    return result["error"]


# ------------------------------------------------------------------ files the loaders open


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_model_file_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    model = tmp_path / "m.mlmodel"
    os.mkfifo(model) if kind == "fifo" else os.symlink("/dev/zero", model)
    message = load_error(model)
    assert str(model) in message and ("FIFO" if kind == "fifo" else "character device") in message


@pytest.mark.parametrize("name", ["Manifest.json", "model.mlmodel", "weight.bin"])
def test_fifo_inside_a_package_is_refused(tmp_path, seeds, name):
    package = copy(seeds["mlpackage"], tmp_path / "p.mlpackage")
    target = next(p for p in package.rglob(name))
    target.unlink()
    os.mkfifo(target)
    if name != "weight.bin":
        assert "FIFO" in load_error(package)
    else:  # weights are read when the model runs
        with pytest.raises(ModelError, match="weight.bin: the weight file is not a regular file"):
            run(package)


@pytest.mark.parametrize("name", ["model.mil", "metadata.json"])
def test_compiled_file_linked_outside_the_model_is_not_read(tmp_path, name):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET words\n")
    model = copy(ARGMAX, tmp_path / "m.mlmodelc")
    (model / name).unlink()
    os.symlink(secret, model / name)
    message = load_error(model)
    assert "outside the model" in message and name in message and "TOP-SECRET" not in message


def test_weights_folder_linked_outside_the_package_is_refused(tmp_path, seeds):
    package = copy(seeds["mlpackage"], tmp_path / "p.mlpackage")
    weights = next(package.rglob("weights"))
    shutil.move(weights, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", weights)
    assert "the weights folder is a link outside the package" in load_error(package)


def test_metadata_fifo_is_refused(tmp_path):
    model = copy(ARGMAX, tmp_path / "m.mlmodelc")
    (model / "metadata.json").unlink()
    os.mkfifo(model / "metadata.json")
    assert "metadata.json: the metadata file is not a regular file (a FIFO)" in load_error(model)


def test_folder_walk_survives_symlink_loops(tmp_path):
    model = copy(ARGMAX, tmp_path / "m.mlmodelc")
    for name in ("a", "b"):
        os.symlink(".", model / name)
    os.symlink("/", model / "root")
    assert len(load(model).graphs[0].ops) == 2
    (model / "model.mil").unlink()  # now the walk looks for sub-models through the links, and finds none
    assert load(model).graphs == []


def test_nul_byte_and_self_loop_paths(tmp_path):
    assert "NUL" in load_error(str(tmp_path / "a\0b.mlmodel"))
    os.symlink("loop.mlmodel", tmp_path / "loop.mlmodel")
    assert "symlink loop" in load_error(tmp_path / "loop.mlmodel")


def test_size_limit_names_the_limit_and_the_size(tmp_path, monkeypatch):
    model = copy(ARGMAX, tmp_path / "m.mlmodelc")
    monkeypatch.setenv("ANEDOCTOR_MAX_MIL_BYTES", "100")
    size = (model / "model.mil").stat().st_size
    message = load_error(model)
    assert f"{size:,} bytes, over the 100-byte limit" in message and "ANEDOCTOR_MAX_MIL_BYTES" in message


def test_deeply_nested_json_is_one_error(tmp_path):
    model = copy(ARGMAX, tmp_path / "m.mlmodelc")
    (model / "metadata.json").write_text("[" * 100000 + "]" * 100000)
    assert "metadata.json: the metadata file nests deeper than" in load_error(model)


# ------------------------------------------------------------------ malformed fields: one specific line each


def edit_spec(package: Path, change) -> Path:
    from coremltools.proto import Model_pb2

    spec_file = next(package.rglob("model.mlmodel"))
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    change(spec)
    spec_file.write_bytes(spec.SerializeToString())
    return package


def first_op(spec, op_type: str):
    block = spec.mlProgram.functions["main"].block_specializations[spec.mlProgram.functions["main"].opset]
    return next(op for op in block.operations if op.type == op_type)


def test_op_without_outputs_and_name_without_string(tmp_path, seeds):
    def anonymous(spec):
        op = first_op(spec, "relu")
        op.ClearField("outputs")
        del op.attributes["name"]

    package = edit_spec(copy(seeds["mlpackage"], tmp_path / "a.mlpackage"), anonymous)
    message = load_error(package)
    assert "op '#" in message and "(relu): the op has no name and declares no outputs" in message
    package = edit_spec(
        copy(seeds["mlpackage"], tmp_path / "b.mlpackage"),
        lambda s: first_op(s, "relu").attributes["name"].immediateValue.tensor.strings.ClearField("values"),
    )
    assert "(relu): its name attribute holds 0 strings, not one" in load_error(package)


def test_huge_dimension_in_a_protobuf_type(tmp_path, seeds):
    def huge(spec):
        first_op(spec, "relu").outputs[0].type.tensorType.dimensions[1].constant.size = 2**63

    message = load_error(edit_spec(copy(seeds["mlpackage"], tmp_path / "a.mlpackage"), huge))
    assert "a.mlpackage" in message and "(relu)" in message and f"dimension {2**63} is outside 0..{2**40}" in message


def test_weight_shape_larger_than_its_blob_names_the_const(seeds):
    model = load(seeds["mlpackage"])
    value = next(
        v for op in model.graphs[0].ops for v in op.inputs.values() if isinstance(getattr(v, "const", None), BlobRef)
    )
    ref = value.const
    assert read_blob(ref).shape == ref.shape
    bigger = dataclasses.replace(ref, shape=(ref.shape[0] * 1000, *ref.shape[1:]))
    expected = rf"const {ref.name!r}: shape .* needs [\d,]+ bytes of fp32 but its blob at offset"
    with pytest.raises(ModelError, match=expected):
        read_blob(bigger)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("tensor<fp16, [1025]> logits", "tensor<fp16, [99999999999999999999999]> logits", "model.mil:4:"),
        ("tensor<int32, []>(-1)", "tensor<int32, []>(nan)", "model.mil:5:"),
        ("tensor<int32, [1]>([-1])", "tensor<int32, [1]>([99999999999999999999])", "model.mil:8:"),
        ("val = tensor<bool, []>(true)", "val = " + "[" * 5000 + "1" + "]" * 5000, "nested too deeply"),
    ],
)
def test_malformed_mil_numbers_and_nesting_name_the_line(tmp_path, old, new, expected):
    model = copy(ARGMAX, tmp_path / "m.mlmodelc")
    text = (model / "model.mil").read_text()
    assert old in text
    (model / "model.mil").write_text(text.replace(old, new, 1))
    message = load_error(model)
    assert "model.mil" in message and expected in message


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("C", "abc", "field 'C' must be an integer"),
        ("name", ["x"], "field 'name' is list, expected a string"),
        ("K", 2**70, "field 'K' must be an integer up to"),
    ],
)
def test_espresso_layer_with_wrong_types(tmp_path, field, value, expected):
    model = copy(CHIRON, tmp_path / "m.mlmodelc")
    net = json.loads((model / "model.espresso.net").read_text())
    layer_index, layer = next((i, la) for i, la in enumerate(net["layers"]) if la["type"] == "convolution")
    layer[field] = value
    (model / "model.espresso.net").write_text(json.dumps(net))
    message = load_error(model)
    assert f"model.espresso.net: layer {layer_index}" in message and expected in message


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda m: m.update(availability=["iOS 16"]), "field 'availability' is list, expected dict"),
        (lambda m: m.update(defaultFunctionName=3), "field 'defaultFunctionName' is int, expected str"),
        (
            lambda m: m["inputSchema"][0].update(enumeratedShapes='[[1, 2], [3, "x"]]'),
            "enumerated shapes must be lists of integers",
        ),
        (lambda m: m["inputSchema"][0].update(shape=f"[{2**50}]"), f"default shape: dimension {2**50} is outside"),
    ],
)
def test_metadata_with_wrong_types(tmp_path, change, expected):
    model = copy(ARGMAX, tmp_path / "m.mlmodelc")
    meta = json.loads((model / "metadata.json").read_text())
    meta[0].setdefault("inputSchema", [{"name": "logits", "shape": "[1025]"}])
    change(meta[0])
    (model / "metadata.json").write_text(json.dumps(meta))
    message = load_error(model)
    assert "metadata.json" in message and expected in message


# ------------------------------------------------------------------ inputs for run


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("truncated", "truncated|not a .npy|cannot read inputs"),
        ("not_zip", "not a .npy or .npz file"),
        ("object", "holds Python objects"),
        ("huge_header", "over the .*-byte limit|truncated"),
        ("bomb", "over the .*-byte limit"),
    ],
)
def test_hostile_npz_inputs(tmp_path, seeds, kind, expected):
    mutate.npz_mutant(kind, random.Random(0), seeds, tmp_path / "in.npz")
    with pytest.raises(ModelError, match=expected) as info:
        load_inputs(tmp_path / "in.npz")
    assert "in.npz" in str(info.value)


def test_generated_input_is_bounded_before_allocation(seeds):
    model = load(seeds["mlpackage"])
    model.graphs[0].input_specs[0].default_shape = (1, 64, 2048, 2048)
    with pytest.raises(
        ModelError,
        match=r"generated input 'x' of shape \(1, 64, 2048, 2048\) would take "
        r"2,147,483,648 bytes, over the 1,073,741,824-byte limit",
    ):
        generate_inputs(model)


# ------------------------------------------------------------------ NeuralNetwork executor fixes


def test_flatten_then_inner_product_runs(tmp_path):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder
    from coremltools.models.utils import save_spec

    w, b = np.arange(24, dtype=np.float32).reshape(3, 8) / 10, np.array([1, 2, 3], np.float32)
    builder = NeuralNetworkBuilder([("x", datatypes.Array(2, 2, 2))], [("y", None)])
    builder.add_flatten("flat", mode=0, input_name="x", output_name="f")
    builder.add_inner_product(
        "fc", W=w, b=b, input_channels=8, output_channels=3, has_bias=True, input_name="f", output_name="y"
    )
    save_spec(builder.spec, str(tmp_path / "fc.mlmodel"))
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    y = run(tmp_path / "fc.mlmodel", {"x": x}).outputs["y"]
    np.testing.assert_allclose(np.asarray(y).reshape(-1), w @ x.reshape(-1) + b, rtol=1e-6)


@pytest.mark.parametrize("rank5", [True, False])
def test_embedding_then_squeeze_runs(tmp_path, rank5):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder
    from coremltools.models.utils import save_spec

    table = np.arange(80, dtype=np.float32).reshape(8, 10)  # (C_out, vocab)
    builder = NeuralNetworkBuilder(
        [("ids", datatypes.Array(1))], [("out", None)], disable_rank5_shape_mapping=not rank5
    )
    builder.add_embedding(
        "embed", W=table, b=None, input_dim=10, output_channels=8, has_bias=False, input_name="ids", output_name="e"
    )
    builder.add_squeeze("sq", "e", "out", squeeze_all=True)
    save_spec(builder.spec, str(tmp_path / "emb.mlmodel"))
    out = run(tmp_path / "emb.mlmodel", {"ids": np.array([3.0])}).outputs["out"]
    np.testing.assert_array_equal(np.asarray(out).reshape(-1), table[:, 3])


# ------------------------------------------------------------------ calibration: profiles, measurements, manifests


def error_of(fn, *args) -> str:
    with pytest.raises(ModelError) as e:
        fn(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("name", ["profile.json", "manifest.json", "measured.json"])
def test_calibration_file_that_is_a_fifo_is_refused(tmp_path, name):
    from anedoctor.measure.profile import ingest, load_profile
    from anedoctor.measure.suite import load_manifest

    path = tmp_path / name
    os.mkfifo(path)
    reader = {"profile.json": load_profile, "manifest.json": load_manifest, "measured.json": lambda p: ingest([p])}
    assert f"{path}: the" in (message := error_of(reader[name], path)) and "not a regular file (a FIFO)" in message


def measured(seeds, name: str = "conv3x3") -> dict:
    return json.loads((seeds["measured"] / f"{name}.json").read_text())


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d["ops"][0].update(supported="../x"), "ops[0].supported: expected an object, got str"),
        (lambda d: d.update(runs="/etc/passwd"), "runs: expected an object, got str"),
        (lambda d: d["runs"].update(cpu_only=[1]), "runs['cpu_only']: expected an object, got list"),
        (lambda d: d["ops"][0].update(type=3.5), "ops[0].type: expected text, got float"),
        (lambda d: d.update(ops={"a": 1}), "not an anedoctor report (no 'ops' list)"),
        (lambda d: d.update(chip="m4"), "chip: expected an object, got str"),
    ],
)
def test_measurement_with_wrong_types_names_the_file_and_field(tmp_path, seeds, change, expected):
    from anedoctor.measure.profile import ingest

    d = measured(seeds)
    change(d)
    (tmp_path / "conv3x3.json").write_text(json.dumps(d))
    assert error_of(ingest, [tmp_path]) == f"{tmp_path / 'conv3x3.json'}: {expected}"


def test_manifest_entry_with_wrong_types_names_the_probe(tmp_path, seeds):
    from anedoctor.measure.suite import load_manifest

    manifest = json.loads((seeds["probes"] / "manifest.json").read_text())
    manifest["probes"]["conv3x3"]["predicted_ms"] = [1, 2]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    message = error_of(load_manifest, tmp_path / "manifest.json")
    assert message == f"{tmp_path / 'manifest.json'}: probes['conv3x3']: predicted_ms: expected an object, got list"


def test_ingest_skips_a_ratio_that_overflows(seeds):
    """A measured median of 1e308 ms over an estimate of 1e-300 ms is no scale (it would be inf in the profile)."""
    from anedoctor.measure.profile import as_profile, ingest
    from anedoctor.measure.suite import load_manifest

    manifest = load_manifest(seeds["probes"] / "manifest.json")
    manifest["conv3x3"]["predicted_ms"] = {"cpu": 1e-300}
    manifest["conv3x3"]["predicted_latency_ms"] = {"cpu_and_ne": 1e-300, "cpu_only": 1e-300}
    d = measured(seeds)
    for timed in d["runs"].values():
        timed["predict_ms"]["median"] = 1e308
    profile = ingest([d, measured(seeds, "gtb_matmul_512")], manifest)
    assert "cpu" not in profile["cost_scale"] and profile["latency_scale"] == {"ane": 0.8, "cpu": 0.8}
    assert as_profile(profile).cost_factor("conv", "cpu") == 1.0  # the profile ingest wrote loads


@pytest.mark.parametrize("provenance", [-1, "abc", {"a": 1}])
def test_profile_provenance_that_is_not_a_list(tmp_path, seeds, provenance):
    from anedoctor.measure.profile import load_profile

    d = json.loads(seeds["profile"].read_text())
    d["provenance"] = provenance
    (tmp_path / "p.json").write_text(json.dumps(d))
    assert "p.json: provenance: expected a list of measurements" in error_of(load_profile, tmp_path / "p.json")


def test_fix_output_name_too_long_is_one_error(tmp_path, seeds):
    from anedoctor.rewrite import fix

    out = tmp_path / ("x" * 300 + ".mlpackage")
    assert error_of(fix, seeds["fixable"], out).endswith(".mlpackage: unusable output path (File name too long)")


# Findings of the campaign on this round's inputs, fixed: each stays as a regression test.


def cli(*argv: str):
    from typer.testing import CliRunner

    from anedoctor.cli import app

    return CliRunner().invoke(app, [str(a) for a in argv])


def test_check_with_a_bad_measurement_leaves_no_staged_output(tmp_path, seeds):
    model = copy(seeds["mlpackage"], tmp_path / "m.mlpackage")
    (tmp_path / "bad.json").write_text('{"kind": "measurement", "ops": [{"supported": "x"}]}')
    result = cli("check", model, "--measured", tmp_path / "bad.json", "--json", tmp_path / "r.json")
    assert result.exit_code == 2 and "ops[0].supported: expected an object" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "m.mlpackage"]


def test_fix_report_on_the_output_path_is_refused(tmp_path, seeds):
    model = copy(seeds["fixable"], tmp_path / "m.mlmodel")
    result = cli("fix", model, "-o", tmp_path / "out.mlpackage", "--json", tmp_path / "out.mlpackage")
    assert result.exit_code == 2 and "unexpected" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mlmodel"]


def test_report_path_too_long_is_one_error(tmp_path, seeds):
    result = cli("check", seeds["mlpackage"], "--json", tmp_path / ("x" * 300 + ".json"))
    assert result.exit_code == 2 and "unexpected" not in result.output and "x" * 300 in result.output


# ------------------------------------------------------------------ the bounded campaign


def test_mutation_campaign_finds_nothing(work, seeds):
    """10 mutants per family through the real CLI (forked per case, 20 s timeout, address-space cap)."""
    from tests.fuzz.campaign import FAMILY_NAMES, run_campaign

    core_ai = importlib.util.find_spec("coreai_torch") is not None  # fix_out then also rewrites an .aimodel
    summary = run_campaign(
        cases=10 * len(FAMILY_NAMES), seed=11, workers=2, timeout=20, work=work, with_aimodel=core_ai
    )
    bad = [(b["case"], b["family"], b["outcome"], b["what"][:80], b.get("stderr", "")[-200:]) for b in summary["bad"]]
    assert not bad, bad
    total = summary["total"]
    assert total["clean"] > 50 and total["ok"] > 20  # the mutants reach both the errors and the analyses
    assert summary["peak_rss_mb"] < 2048
    for family in ("profile", "ingest", "measured", "fix_out"):  # calibration inputs, measurements, fix's outputs
        counts = summary["by_family"][family]
        assert sum(n for k, n in counts.items() if k not in ("modified", "leftovers")) == 10 and counts.get("ok")


def test_names_with_escapes_and_markup_are_shown_not_obeyed(tmp_path, seeds):
    """A name edited into the spec with terminal escapes and rich markup: ``estimate`` printed it raw."""
    evil = "evil\x1b]0;pwned\x07\x1b[31m[/bold]"

    def rename(spec):
        first_op(spec, "conv").attributes["name"].immediateValue.tensor.strings.values[0] = evil

    package = edit_spec(copy(seeds["mlpackage"], tmp_path / "e.mlpackage"), rename)
    for argv in (["estimate", package], ["check", package, "-v", "--compute-units", "cpu_only"]):
        result = cli(*argv)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\x07" not in result.output
        assert "evil\\x1b]0;pwned\\x07\\x1b[31m[/bold]" in result.output


def test_plain_lines_shown_through_rich_are_not_markup(capsys):
    from anedoctor.cli.common import show

    show(["op a[/bold] on the CPU\nnext [red]line\x1b[2J"])
    assert capsys.readouterr().out == "op a[/bold] on the CPU\nnext [red]line\\x1b[2J\n"
