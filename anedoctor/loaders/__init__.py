"""Loaders: every supported input -> :class:`anedoctor.ir.Model`.

``load`` accepts a path (``.mlpackage``, ``.mlmodel``, ``.mlmodelc``), a coremltools
``MLModel``, or a ``torch.nn.Module`` (converted with coremltools first). Any input that
cannot be read raises :class:`ModelError` with a one-line message naming the file.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..ir import Graph, Model

SPEC_VERSION_TARGETS = {1: "ios11", 2: "ios11.2", 3: "ios12", 4: "ios13", 5: "ios14", 6: "ios15", 7: "ios16",
                        8: "ios17", 9: "ios18", 10: "ios26"}
NN_KINDS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")
PIPELINE_KINDS = ("pipeline", "pipelineClassifier", "pipelineRegressor")


def quiet_coremltools():
    """Import coremltools without its Linux-only warnings (no native runtime here)."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import coremltools

    return coremltools


def load(source: Any, example_inputs: Any = None, deployment_target: str = "ios18") -> Model:
    """Load a model from a path, an ``MLModel`` or a ``torch.nn.Module``."""
    if isinstance(source, (str, os.PathLike)):
        return load_path(Path(source))
    if type(source).__module__.startswith("coremltools") and hasattr(source, "get_spec"):
        weights = getattr(source, "weights_dir", None)
        return model_from_spec(source.get_spec(), "<MLModel>", Path(weights) if weights else None)
    if hasattr(source, "forward") and hasattr(source, "parameters"):
        from .torch import convert_module

        return model_from_spec(*convert_module(source, example_inputs, deployment_target), fmt="torch")
    raise ModelError(f"cannot analyse an object of type {type(source).__name__}; pass a model path, MLModel or torch.nn.Module")


def load_path(path: Path) -> Model:
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "Manifest.json").exists():
            return load_mlpackage(path)
        if any((path / f).exists() for f in ("model.mil", "coremldata.bin", "model.espresso.net")):
            from .mlmodelc import load_mlmodelc

            return load_mlmodelc(path)
        contents = "it is empty" if not any(path.iterdir()) else "no Manifest.json, model.mil or coremldata.bin in it"
        raise ModelError(f"{path}: not a Core ML model folder ({contents})")
    spec = parse_spec(path)
    return model_from_spec(spec, str(path), None)


def parse_spec(path: Path):
    """Read and parse a Core ML protobuf spec file."""
    ct = quiet_coremltools()
    from google.protobuf.message import DecodeError

    data = path.read_bytes()
    if not data:
        raise ModelError(f"{path}: the file is empty")
    spec = ct.proto.Model_pb2.Model()
    try:
        spec.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelError(f"{path}: not a Core ML model (protobuf does not parse: {str(e).splitlines()[0][:80]})") from None
    if spec.specificationVersion == 0 or spec.WhichOneof("Type") is None:
        raise ModelError(f"{path}: not a Core ML model (no specification version or model type)")
    return spec


def load_mlpackage(path: Path) -> Model:
    """Resolve the root model through Manifest.json, refusing entries outside the package."""
    manifest_path = path / "Manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{manifest_path}: malformed package manifest ({e.__class__.__name__}: {e})") from None
    data_dir = (path / "Data").resolve()
    spec_path = (data_dir / root).resolve()
    if data_dir not in spec_path.parents:
        raise ModelError(f"{manifest_path}: the root model entry {root!r} points outside the package")
    if not spec_path.is_file():
        raise ModelError(f"{path}: the manifest names {root!r} but the package has no such file")
    weights = spec_path.parent / "weights"
    model = model_from_spec(parse_spec(spec_path), str(path), weights if weights.is_dir() else spec_path.parent)
    model.weights_bytes = sum(f.stat().st_size for f in weights.glob("*")) if weights.is_dir() else 0
    return model


def model_from_spec(spec, source: str, weights_dir: Path | None, fmt: str | None = None) -> Model:
    """Turn a parsed spec (any supported kind) into a Model."""
    notes: list[str] = []
    graphs = graphs_from_spec(spec, weights_dir, "", notes)
    kind = spec.WhichOneof("Type")
    fmt = fmt or ("mlprogram" if kind == "mlProgram" else "pipeline" if kind in PIPELINE_KINDS else "neuralnetwork" if kind in NN_KINDS else kind)
    target = graphs[0].opset if graphs and graphs[0].opset else SPEC_VERSION_TARGETS.get(spec.specificationVersion, "")
    return Model(source, fmt, graphs, spec.specificationVersion, target, spec.description.metadata.shortDescription,
                 notes, is_updatable=spec.isUpdatable)


def graphs_from_spec(spec, weights_dir: Path | None, prefix: str, notes: list[str]) -> list[Graph]:
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        from .mlprogram import graphs_from_mlprogram

        return graphs_from_mlprogram(spec, weights_dir, prefix)
    if kind in NN_KINDS:
        from .neuralnetwork import graph_from_neuralnetwork

        return [graph_from_neuralnetwork(getattr(spec, kind), spec.description, prefix + "main", notes)]
    if kind in PIPELINE_KINDS:
        graphs = []
        for i, sub in enumerate(getattr(spec, kind).models):
            graphs += graphs_from_spec(sub, weights_dir, f"{prefix}{i}.{sub.WhichOneof('Type')}:", notes)
        return graphs
    notes.append(f"{prefix or 'model'}: a {kind} model is not a neural network; Core ML runs it on the CPU, so it has no ops to place")
    return []
