"""Compiled Core ML models (``.mlmodelc`` folders) -> IR.

An ML Program compiles to ``model.mil``, the MIL program as text; it is read with a
linear-time tokenizer (one master regex) and a recursive-descent parser that accepts both
text dialects: ``tensor<string, []>("x")`` / ``tensor<uint64, []>(64)`` (iOS15-17) and
``string("x")`` / ``uint64(64)`` (iOS18+). A compiled NeuralNetwork is read from
``model.espresso.net`` / ``.shape`` when they are JSON. ``metadata.json`` supplies the
spec version and the input flexibility. Weights are never read: blob constants become
:class:`BlobRef` s resolved inside the folder.
"""
from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..ir import Graph, InputSpec, Model, Op, Value
from .espresso import espresso_graph
from .files import read_json
from .mil_text import LFS_POINTER, MilParser


def metadata_entry(folder: Path) -> dict[str, Any]:
    data = read_json(folder / "metadata.json")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    return data if isinstance(data, dict) else {}


def json_list(value: Any) -> list | None:
    """metadata.json stores shapes as strings such as ``"[1, 3, 224, 224]"``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) else None


def input_specs(inputs: list[Value], schema: list[dict], flex: dict[str, Any]) -> list[InputSpec]:
    """InputSpecs from metadata.json's inputSchema, else the MIL function's flexible-shape attribute."""
    by_name = {e.get("name"): e for e in schema if isinstance(e, dict)}
    specs = []
    for v in inputs:
        if v.type.kind == "state":
            continue
        entry = by_name.get(v.name, {})
        ranges = json_list(entry.get("shapeRange")) or flex.get("RangeDims", {}).get(v.name)
        enums = json_list(entry.get("enumeratedShapes")) or flex.get("EnumeratedShapes", {}).get(v.name)
        default = json_list(entry.get("shape")) or flex.get("DefaultShapes", {}).get(v.name)
        spec = InputSpec(v.name, v.type, image=entry.get("type") == "Image")
        if isinstance(enums, list) and len(enums) > 1:
            spec.flexibility, spec.enumerated_shapes = "enumerated", [tuple(int(d) for d in s) for s in enums]
        elif isinstance(ranges, list) and any(isinstance(r, list) and len(r) == 2 and r[0] != r[1] for r in ranges):
            spec.flexibility = "unbounded" if any(r[1] < 0 for r in ranges) else "range"
        elif entry.get("hasSizeFlexibility") == "1" or (not v.type.is_static and not entry):
            spec.flexibility = "range" if entry else "unbounded"
        if default and all(isinstance(d, int) for d in default):
            spec.default_shape = tuple(default)
        elif v.type.is_static:
            spec.default_shape = v.type.shape  # type: ignore[assignment]
        specs.append(spec)
    return specs


def model_units(root: Path) -> list[Path]:
    """The folder itself when it holds a program, else every sub-model folder (pipelines)."""
    if (root / "model.mil").is_file() or (root / "model.espresso.net").is_file():
        return [root]
    units: list[Path] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("weights", "analytics")):
        units += model_units(sub)
    return units


def count_ops(ops: list[Op]) -> int:
    return sum(1 + sum(count_ops(b.ops) for b in op.blocks) for op in ops)


def mil_graphs(folder: Path, prefix: str, meta: dict[str, Any], notes: list[str], where: str) -> list[Graph]:
    """Graphs of ``model.mil``, the default function first (it gets the input specs)."""
    mil_path = folder / "model.mil"
    try:
        text = mil_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{mil_path}: cannot read MIL text ({e.__class__.__name__})") from None
    if text.startswith(LFS_POINTER):
        raise ModelError(f"{mil_path}: a Git LFS pointer, not the MIL text (fetch the file with git lfs pull)")
    parser = MilParser(text, mil_path, folder)
    collecting = gc.isenabled()
    gc.disable()  # the parse allocates many small objects; collecting during it costs ~15%
    try:
        graphs = parser.program()
    finally:
        if collecting:
            gc.enable()
    default = meta.get("defaultFunctionName") or "main"
    graphs.sort(key=lambda g: g.name != default)
    graphs[0].input_specs = input_specs(graphs[0].inputs, meta.get("inputSchema") or [], parser.flex[graphs[0].name])
    for g in graphs:
        g.name = prefix + g.name
    build = parser.attrs.get("buildInfo")
    compiler = f" (coremlc {build['coremlc-version']})" if isinstance(build, dict) and "coremlc-version" in build else ""
    notes.append(f"{where}ops, types and constants from model.mil{compiler}; weights are referenced, not read")
    histogram = meta.get("mlProgramOperationTypeHistogram")
    parsed = sum(count_ops(g.ops) for g in graphs)
    if isinstance(histogram, dict) and sum(histogram.values()) != parsed:
        notes.append(f"{where}metadata.json counts {sum(histogram.values())} ops but model.mil has {parsed}")
    missing = sorted(str(p.relative_to(folder.resolve())) for p in set(parser.weight_files.values())
                     if not p.is_file() or p.stat().st_size < 200 and p.read_bytes().startswith(LFS_POINTER.encode()))
    if missing:
        notes.append(f"{where}weight files missing (or Git LFS pointers), so weights cannot be loaded: {', '.join(missing)}")
    return graphs


def load_mlmodelc(path: Path) -> Model:
    """Read a compiled ``.mlmodelc`` folder (ML Program, NeuralNetwork, or a pipeline of them)."""
    root = Path(path)
    if not root.is_dir():
        raise ModelError(f"{root}: not a folder (a compiled model is a .mlmodelc folder)")
    if not any(root.iterdir()):
        raise ModelError(f"{root}: the folder is empty")
    meta = metadata_entry(root)
    notes: list[str] = []
    graphs: list[Graph] = []
    kinds: list[str] = []
    units = model_units(root)
    for k, unit in enumerate(units):
        rel = unit.relative_to(root).as_posix()
        prefix, where = (f"{rel}:", f"{rel}/") if unit != root else ("", "")
        unit_meta = metadata_entry(unit) if unit != root else meta
        unit_meta = unit_meta or (meta if k == 0 else {})  # pipeline inputs feed the first sub-model
        if (unit / "model.mil").is_file():
            graphs += mil_graphs(unit, prefix, unit_meta, notes, where)
            kinds.append("mlprogram")
            if (unit / "model.espresso.net").is_file():
                notes.append(f"{where}model.espresso.net ignored: model.mil describes the same model")
            continue
        g = espresso_graph(unit, prefix + "main", notes, where)
        if g:
            g.input_specs = input_specs(g.inputs, unit_meta.get("inputSchema") or [], {})
            graphs.append(g)
        kinds.append("neuralnetwork")
    if not units:
        if not (root / "coremldata.bin").is_file():
            raise ModelError(f"{root}: not a compiled Core ML model (no model.mil, model.espresso.net or coremldata.bin)")
        model_type = (meta.get("modelType") or {}).get("name", "model type unknown")
        notes.append(f"coremldata.bin holds the model in a binary format anedoctor cannot read ({model_type}); "
                     "there is no model.mil or model.espresso.net to analyse")
        kinds.append("mlprogram" if "mlProgram" in model_type else "neuralnetwork")
    if len(units) > 1:
        notes.append(f"pipeline of {len(units)} compiled sub-models: " + ", ".join(u.relative_to(root).as_posix() for u in units))
    notes.append("spec version, description and input flexibility from metadata.json" if meta else
                 "no metadata.json: spec version unknown; input flexibility from the model text only")

    ios = (meta.get("availability") or {}).get("iOS")
    target = graphs[0].opset if graphs and graphs[0].opset else f"ios{ios.split('.')[0]}" if isinstance(ios, str) else ""
    weights = sum(f.stat().st_size for f in root.rglob("*")
                  if f.is_file() and (f.parent.name == "weights" or f.name.endswith(".espresso.weights")))
    spec_version = meta.get("specificationVersion")
    return Model(str(root), "mlmodelc-mlprogram" if "mlprogram" in kinds else "mlmodelc-neuralnetwork", graphs,
                 spec_version if isinstance(spec_version, int) else 0, target, str(meta.get("shortDescription", "")),
                 notes, weights, str(meta.get("isUpdatable", "0")) == "1")
