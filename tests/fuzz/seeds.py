"""Seed models the mutation campaign starts from, built here (no downloads): an ML Program
``.mlpackage`` with weights in ``weight.bin`` (coremltools MIL builder), a NeuralNetwork
``.mlmodel`` (NeuralNetworkBuilder), copies of the compiled samples in ``tests/data/mlmodelc``,
``.npz`` inputs (a good one and a zip bomb), and the calibration inputs: a probe suite written by ``probes build``
(its ``manifest.json``), measurements of it in the measurement schema (synthetic plans and timings) and the profile
``probes ingest`` makes of them."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TQDM_DISABLE", "1")

DATA = Path(__file__).resolve().parents[1] / "data" / "mlmodelc"
RNG = np.random.default_rng(0)


def weights(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.1).astype(np.float32)


def mlprogram(path: Path) -> Path:
    """conv -> relu -> mean -> linear -> softmax, two inputs, weights big enough to live in weight.bin."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8)), mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS17
    )
    def prog(x, y):
        h = mb.conv(x=x, weight=weights(4, 3, 3, 3), bias=weights(4), pad_type="same", name="conv")
        h = mb.relu(x=h, name="relu")
        h = mb.reduce_mean(x=h, axes=[2, 3], keep_dims=False, name="pool")
        h = mb.add(x=h, y=y, name="add")
        h = mb.linear(x=h, weight=weights(5, 4), bias=weights(5), name="fc")
        return mb.softmax(x=h, axis=-1, name="probs")

    model = ct.convert(
        prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, compute_precision=ct.precision.FLOAT32
    )
    model.save(str(path))
    return path


def neuralnetwork(path: Path) -> Path:
    """Rank-5 NeuralNetwork: conv, flatten, inner product, embedding, softmax (two inputs)."""
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder
    from coremltools.models.utils import save_spec

    from tests.nn_models import add_conv3x3

    b = NeuralNetworkBuilder(
        [("image", datatypes.Array(3, 4, 4)), ("ids", datatypes.Array(1))], [("probs", None), ("vec", None)]
    )
    add_conv3x3(b, "conv", 3, 2, "image", "c", scale=0.1)
    b.add_activation("relu", "RELU", "c", "r")
    b.add_flatten("flat", mode=0, input_name="r", output_name="f")
    b.add_inner_product(
        "fc",
        W=weights(4, 32),
        b=weights(4),
        input_channels=32,
        output_channels=4,
        has_bias=True,
        input_name="f",
        output_name="logits",
    )
    b.add_softmax("softmax", "logits", "probs")
    b.add_embedding(
        "embed",
        W=weights(6, 10),
        b=None,
        input_dim=10,
        output_channels=6,
        has_bias=False,
        input_name="ids",
        output_name="vec",
    )
    save_spec(b.spec, str(path))
    return path


def fixable_nn(path: Path) -> Path:
    """A spec-4 NeuralNetwork (fp32 in and out) that ``fix`` converts, rewrites and writes: conv + relu blocks
    around a conv with dilation 8 (extent 17 > 15: PA-11), big enough for the ANE."""
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder
    from coremltools.models.utils import save_spec
    from coremltools.proto.FeatureTypes_pb2 import ArrayFeatureType

    from tests.nn_models import add_conv3x3

    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 32, 64, 64))], [("y", None)], disable_rank5_shape_mapping=True)
    dilations = (1, 1, 8, 1, 1)
    for i, dilation in enumerate(dilations):
        add_conv3x3(b, f"conv{i}", 32, 32, "x" if i == 0 else f"r{i - 1}", f"c{i}", dilation)
        b.add_activation(f"relu{i}", "RELU", f"c{i}", "y" if i == len(dilations) - 1 else f"r{i}")
    for f in [*b.spec.description.input, *b.spec.description.output]:
        f.type.multiArrayType.dataType = ArrayFeatureType.FLOAT32
    save_spec(b.spec, str(path))
    return path


def aimodel(path: Path) -> Path:
    """A Core AI ``.aimodel`` (coreai-torch) that ``fix`` rewrites: conv -> relu -> a conv with dilation 8 (PA-11)
    -> relu -> 1x1 conv, fp16."""
    import torch

    from anedoctor.loaders import coreai_tools

    class Dilated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 32, 3, padding=1)
            self.context = torch.nn.Conv2d(32, 32, 3, padding=8, dilation=8)
            self.head = torch.nn.Conv2d(32, 32, 1)

        def forward(self, x):
            return self.head(torch.relu(self.context(torch.relu(self.stem(x)))))

    torch.manual_seed(0)
    made, _ = coreai_tools.convert_module(Dilated().eval().half(), torch.randn(1, 3, 64, 64).half(), path.parent)
    made.rename(path)
    return path


def inputs_npz(path: Path) -> Path:
    np.savez(
        path, x=RNG.standard_normal((1, 3, 8, 8)).astype(np.float32), y=RNG.standard_normal((1, 4)).astype(np.float32)
    )
    return path


def zip_bomb(path: Path, nbytes: int = (1 << 30) + (1 << 24)) -> Path:
    """An .npz whose one member inflates to ``nbytes`` of zeros (just over the 1 GiB input limit; ~5 MB on disk)."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (nbytes // 4,)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(1 << 24)
            for _ in range(nbytes >> 24):
                f.write(chunk)
    return path


PROBES = ("conv3x3", "gtb_matmul_512")  # one predicted on the CPU, one on the ANE (cpu_and_ne)
CHIP, OS = (
    {"id": "m4", "name": "Apple M4", "machine": "Mac16,10"},
    {"id": "macos15", "version": "15.5", "build": "24F74"},
)


def probe_measurement(suite: Path, name: str, entry: dict, device: str, factor: float) -> dict:
    """A measurement of a built probe as `anedoctor measure` writes it: the whole plan on ``device`` under
    cpu_and_ne and on the CPU under cpu_only, medians ``factor`` x the manifest's latency estimate (synthetic)."""
    import anedoctor
    from anedoctor.measure.computeplan import measurement, plan_op

    placed = anedoctor.check(suite / f"{name}.mlpackage", chip=CHIP["id"], os=OS["id"]).placements

    def plan(dev: str) -> list[dict]:
        return [plan_op(i, p.op.name, p.op.type, dev, ["ane", "gpu", "cpu"]) for i, p in enumerate(placed)]

    estimate = entry["predicted_latency_ms"]
    runs = {
        cu: {"predict_ms": {"median": factor * estimate[cu]}, "summary": measurement(plan(dev))["summary"]}
        for cu, dev in (("cpu_and_ne", device), ("cpu_only", "cpu"))
    }
    model = {"path": f"{name}.mlpackage", "name": f"{name}.mlpackage"}
    return measurement(
        plan(device), model=model, compute_units="cpu_and_ne", chip=CHIP, os=OS, coreml={"version": "8.3"}, runs=runs
    )


def model_measurement(model: Path, path: Path) -> Path:
    """A measurement of ``model`` in the schema `anedoctor measure` writes (synthetic: ops alternately on the ANE
    and the CPU, costs and a Core ML reason made up), and its prediction (``check --json``) as prediction.json."""
    import anedoctor
    from anedoctor.measure.computeplan import measurement, plan_op

    report = anedoctor.check(model, chip=CHIP["id"], os=OS["id"])
    ops = [
        plan_op(i, p.op.name, p.op.type, "cpu" if i % 2 else "ane", ["cpu"] if i % 2 else ["ane", "cpu"], 0.1 * i)
        for i, p in enumerate(report.placements)
    ]
    ops[1]["reasons"] = [{"message": "Unsupported (synthetic)"}]
    d = measurement(ops, model={"path": model.name, "name": model.name}, compute_units="all", chip=CHIP, os=OS)
    path.write_text(json.dumps(dict(d), indent=1))
    (path.parent / "prediction.json").write_text(json.dumps(report.to_dict()))
    return path


def calibration(folder: Path) -> None:
    """``probes build`` -> synthetic measurements in ``measured/`` -> ``probes ingest`` -> ``profile.json``."""
    from anedoctor.measure.profile import ingest, write_profile
    from anedoctor.measure.suite import build_suite, load_manifest

    suite = folder / "probes"
    manifest = load_manifest(build_suite(suite, chip=CHIP["id"], os=OS["id"], names=list(PROBES)))
    measured = folder / "measured"
    measured.mkdir()
    for name, factor in zip(PROBES, (1.5, 0.8)):
        d = probe_measurement(
            suite, name, manifest[name], manifest[name]["predicted_latency_device"]["cpu_and_ne"] or "cpu", factor
        )
        (measured / f"{name}.json").write_text(json.dumps(dict(d), indent=1))
    write_profile(ingest([measured], manifest), folder / "profile.json")
    for name in PROBES:  # the probe models themselves are not inputs of ingest
        shutil.rmtree(suite / f"{name}.mlpackage")


def build_seeds(folder: Path, with_aimodel: bool = False) -> dict[str, Path]:
    """Every seed, by name, built into ``folder`` (reused when already there); the Core AI one (a torch export,
    ~20 s) only when asked."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {
        "mlpackage": folder / "prog.mlpackage",
        "mlmodel": folder / "nn.mlmodel",
        "fixable": folder / "fixable.mlmodel",
        "inputs": folder / "inputs.npz",
        "bomb": folder / "bomb.npz",
    }
    makers = {
        "mlpackage": mlprogram,
        "mlmodel": neuralnetwork,
        "fixable": fixable_nn,
        "inputs": inputs_npz,
        "bomb": zip_bomb,
    }
    for name, maker in makers.items():
        if not seeds[name].exists():
            maker(seeds[name])
    seeds["measurement"] = folder / "measured.json"
    if not seeds["measurement"].exists():
        model_measurement(seeds["mlpackage"], seeds["measurement"])
    seeds["prediction"] = folder / "prediction.json"
    calib = folder / "calibration"
    if not (calib / "profile.json").exists():
        shutil.rmtree(calib, ignore_errors=True)
        calibration(calib)
    seeds |= {"profile": calib / "profile.json", "measured": calib / "measured", "probes": calib / "probes"}
    if with_aimodel:
        seeds["aimodel"] = folder / "dilated.aimodel"
        if not seeds["aimodel"].exists():
            aimodel(seeds["aimodel"])
    for sample in sorted(DATA.glob("*.mlmodelc")):
        target = folder / sample.name
        if not target.exists():
            shutil.copytree(sample, target)
        seeds["mlmodelc:" + sample.name.removesuffix(".mlmodelc")] = target
    return seeds
