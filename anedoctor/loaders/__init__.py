"""Loaders: every supported input -> :class:`anedoctor.ir.Model`.

``load`` accepts a path (``.mlpackage``, ``.mlmodel``, ``.mlmodelc``, Core AI ``.aimodel``), a coremltools
``MLModel``, or a ``torch.nn.Module`` (converted with coremltools first). Any input that
cannot be read raises :class:`ModelError` with a one-line message naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..ir import Graph, Model
from ..util import quiet_coremltools
from .files import (
    is_dir,
    is_file,
    plain,
    read_bytes,
    read_json,
    resolve_inside,
    resolved,
    walk_files,
)

SPEC_VERSION_TARGETS = {
    1: "ios11",
    2: "ios11.2",
    3: "ios12",
    4: "ios13",
    5: "ios14",
    6: "ios15",
    7: "ios16",
    8: "ios17",
    9: "ios18",
    10: "ios26",
}
NN_KINDS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")
PIPELINE_KINDS = ("pipeline", "pipelineClassifier", "pipelineRegressor")
MODEL_SUFFIXES = (".mlpackage", ".mlmodel", ".mlmodelc", ".aimodel", ".pt2")
TORCH_SUFFIXES = (".pt", ".pth", ".pt2")
FOREIGN_FORMATS = {
    ".onnx": "an ONNX model; Core ML has no ONNX importer any more: convert the PyTorch source with coremltools "
    "(ct.convert) or, from ONNX, with onnx2torch then ct.convert, and check the .mlpackage",
    ".tflite": "a TensorFlow Lite model; convert the TensorFlow source with coremltools (ct.convert) and check "
    "the .mlpackage",
    ".safetensors": "weights only (safetensors), not a model graph; build the module in PyTorch and pass it, or "
    "save it with torch.export.save as .pt2",
    ".gguf": "a llama.cpp GGUF file, not a Core ML model; convert the original PyTorch model with coremltools",
}


def load(source: Any, example_inputs: Any = None, deployment_target: str = "ios18", via: str = "coreml") -> Model:
    """Load a model from a path, an ``MLModel`` or a ``torch.nn.Module`` (converted with coremltools,
    or with coreai-torch to a Core AI ``.aimodel`` when ``via="coreai"``)."""
    if via not in ("coreml", "coreai"):
        raise ModelError(f"unknown converter {via!r}; use via='coreml' (coremltools) or via='coreai' (coreai-torch)")
    if isinstance(source, (str, os.PathLike)):
        return load_path(Path(source), example_inputs, deployment_target)
    if type(source).__module__.startswith("coremltools") and hasattr(source, "get_spec"):
        weights = getattr(source, "weights_dir", None)
        return model_from_spec(source.get_spec(), "<MLModel>", Path(weights) if weights else None)
    if hasattr(source, "forward") and hasattr(source, "parameters") and via == "coreai":
        from .coreai_tools import load_module

        return load_module(source, example_inputs)
    if hasattr(source, "forward") and hasattr(source, "parameters"):
        from .torch import convert_module

        model = load_mlpackage(convert_module(source, example_inputs, deployment_target))
        model.path, model.format = f"<torch {type(source).__name__}>", "torch"
        return model
    raise ModelError(
        f"cannot analyse an object of type {type(source).__name__}; pass a model path, MLModel or torch.nn.Module"
    )


def load_path(path: Path, example_inputs: Any = None, deployment_target: str = "ios18") -> Model:
    """Load a model file or folder; every ModelError names the model path."""
    try:
        return with_known_target(load_path_unnamed(path, example_inputs, deployment_target))
    except ModelError as e:
        message = str(e)
        if message.startswith(str(path)):
            raise
        raise ModelError(f"{path}: {message}") from None
    except RecursionError:
        raise ModelError(f"{path}: the model nests deeper than Python can follow") from None


def with_known_target(model: Model) -> Model:
    """``model`` when its deployment target (from its opset or metadata) names an OS Core ML has."""
    target = model.deployment_target
    if target.startswith(("ios", "macos")):
        from ..hardware import parse_os

        try:
            parse_os(target)
        except ModelError as e:
            raise ModelError(f"the model's deployment target {target!r} (from its opset or metadata): {e}") from None
    return model


def load_path_unnamed(path: Path, example_inputs: Any = None, deployment_target: str = "ios18") -> Model:
    plain(path)
    try:
        exists = os.path.lexists(path)
    except OSError as e:
        raise ModelError(f"{path}: cannot use this path ({e.strerror or type(e).__name__})") from None
    if not exists:
        raise ModelError(f"{path}: no such file or directory")
    if resolved(path) is None:
        raise ModelError(f"{path}: a symlink loop")
    if is_dir(path):
        if os.path.lexists(path / "Manifest.json"):
            return load_mlpackage(path)
        if path.suffix == ".aimodel" or os.path.lexists(path / "main.mlirb"):
            from .coreai import load_aimodel

            return load_aimodel(path)
        if any(os.path.lexists(path / f) for f in ("model.mil", "coremldata.bin", "model.espresso.net")):
            from .mlmodelc import load_mlmodelc

            return load_mlmodelc(path)
        contents = "it is empty" if not any(path.iterdir()) else "no Manifest.json, model.mil or coremldata.bin in it"
        inside = sorted(c.name for c in path.iterdir() if c.suffix in MODEL_SUFFIXES)
        hint = (
            f"; did you mean {path / inside[0]}?"
            if len(inside) == 1
            else (f"; it holds {len(inside)} models: {', '.join(inside[:5])}" if inside else "")
        )
        raise ModelError(f"{path}: not a Core ML model folder ({contents}){hint}")
    if path.suffix in FOREIGN_FORMATS:
        raise ModelError(f"{path}: {FOREIGN_FORMATS[path.suffix]}")
    if path.suffix in TORCH_SUFFIXES:
        from .torch import convert_file

        model = load_mlpackage(convert_file(path, example_inputs, deployment_target))
        model.path, model.format = str(path), "torch"
        return model
    spec = parse_spec(path, None)
    return model_from_spec(spec, str(path), None)


def parse_spec(path: Path, root: Path | None):
    """Read and parse a Core ML protobuf spec file (inside ``root`` when given)."""
    data = read_bytes(path, root, "spec", "model spec")
    if not data:
        raise ModelError(f"{path}: the file is empty")
    ct = quiet_coremltools()
    from google.protobuf.message import DecodeError

    spec = ct.proto.Model_pb2.Model()
    try:
        spec.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError, RecursionError) as e:
        raise ModelError(
            f"{path}: not a Core ML model (protobuf does not parse: {str(e).splitlines()[0][:80]})"
        ) from None
    if spec.specificationVersion == 0 or spec.WhichOneof("Type") is None:
        raise ModelError(f"{path}: not a Core ML model (no specification version or model type)")
    return spec


def load_mlpackage(path: Path) -> Model:
    """Resolve the root model through Manifest.json, refusing entries outside the package."""
    manifest_path = path / "Manifest.json"
    manifest = read_json(manifest_path, path, "package manifest")
    if not isinstance(manifest, dict):
        raise ModelError(f"{manifest_path}: malformed package manifest (not a JSON object)")
    try:
        root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    except (KeyError, TypeError, IndexError) as e:
        raise ModelError(
            f"{manifest_path}: malformed package manifest (no root model entry: {e.__class__.__name__} {str(e)[:80]})"
        ) from None
    if not isinstance(root, str):
        raise ModelError(f"{manifest_path}: the root model entry's path is {type(root).__name__}, not a string")
    data_dir = path / "Data"
    spec_path = resolve_inside(data_dir, root)
    if (
        spec_path is None
        or not spec_path.is_relative_to(resolved(data_dir) or data_dir)
        or spec_path == resolved(data_dir)
    ):
        raise ModelError(f"{manifest_path}: the root model entry {root!r} points outside the package")
    if not is_file(spec_path) and not os.path.lexists(spec_path):
        raise ModelError(f"{path}: the manifest names {root!r} but the package has no such file")
    weights = spec_path.parent / "weights"
    if is_dir(weights) and resolve_inside(path, str(weights.relative_to(resolved(path) or path))) is None:
        raise ModelError(f"{weights}: the weights folder is a link outside the package; refusing to read it")
    model = model_from_spec(
        parse_spec(data_dir / root, path), str(path), weights if is_dir(weights) else spec_path.parent
    )
    model.weights_bytes = sum(f.stat().st_size for f in walk_files(weights)) if is_dir(weights) else 0
    return model


def model_from_spec(spec, source: str, weights_dir: Path | None, fmt: str | None = None) -> Model:
    """Turn a parsed spec (any supported kind) into a Model."""
    notes: list[str] = []
    graphs = graphs_from_spec(spec, weights_dir, "", notes)
    kind = spec.WhichOneof("Type")
    fmt = fmt or (
        "mlprogram"
        if kind == "mlProgram"
        else "pipeline"
        if kind in PIPELINE_KINDS
        else "neuralnetwork"
        if kind in NN_KINDS
        else kind
    )
    target = graphs[0].opset if graphs and graphs[0].opset else SPEC_VERSION_TARGETS.get(spec.specificationVersion, "")
    return Model(
        source,
        fmt,
        graphs,
        spec.specificationVersion,
        target,
        spec.description.metadata.shortDescription,
        notes,
        is_updatable=spec.isUpdatable,
    )


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
    notes.append(
        f"{prefix or 'model'}: a {kind} model is not a neural network; Core ML runs it on the CPU, so it has no ops "
        "to place"
    )
    return []
