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
import os
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..ir import Graph, InputSpec, Model, Op, Value
from .espresso import espresso_graph
from .files import (
    bounded_shape,
    is_dir,
    is_file,
    read_bytes,
    read_json,
    read_text,
    walk_dirs,
    walk_files,
)
from .mil_text import LFS_POINTER, MilParser


def metadata_entry(folder: Path, root: Path) -> dict[str, Any]:
    data = read_json(folder / "metadata.json", root, "metadata file")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    return data if isinstance(data, dict) else {}


def meta_field(meta: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path, default: Any = None) -> Any:
    """``meta[key]`` when it has the expected JSON type; ModelError naming metadata.json and the field otherwise."""
    value = meta.get(key, default)
    if value is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value if value is not None else default
    names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
    raise ModelError(f"{where / 'metadata.json'}: field {key!r} is {type(value).__name__}, expected {names}")


def json_list(value: Any) -> list | None:
    """metadata.json stores shapes as strings such as ``"[1, 3, 224, 224]"``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, list) else None


def is_dims(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(d, int) and not isinstance(d, bool) for d in value)


def input_specs(inputs: list[Value], schema: Any, flex: dict[str, Any], folder: Path) -> list[InputSpec]:
    """InputSpecs from metadata.json's inputSchema, else the MIL function's flexible-shape attribute."""
    entries = schema if isinstance(schema, list) else []
    by_name = {e["name"]: e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)}
    specs = []
    for v in inputs:
        if v.type.kind == "state":
            continue
        entry = by_name.get(v.name, {})
        ranges = json_list(entry.get("shapeRange")) or flex_entry(flex, "RangeDims", v.name)
        enums = json_list(entry.get("enumeratedShapes")) or flex_entry(flex, "EnumeratedShapes", v.name)
        default = json_list(entry.get("shape")) or flex_entry(flex, "DefaultShapes", v.name)
        spec = InputSpec(v.name, v.type, image=entry.get("type") == "Image")
        place = f"{folder / ('metadata.json' if entry else 'model.mil')}: input {v.name!r}"
        if isinstance(enums, list) and len(enums) > 1:
            if not all(is_dims(s) for s in enums):
                raise ModelError(f"{place}: enumerated shapes must be lists of integers, got {str(enums)[:80]}")
            spec.flexibility = "enumerated"
            spec.enumerated_shapes = [bounded_shape(tuple(s), f"{place}: enumerated shape") for s in enums]
        elif isinstance(ranges, list) and any(isinstance(r, list) and len(r) == 2 and r[0] != r[1] for r in ranges):
            if not all(is_dims(r) for r in ranges):
                raise ModelError(f"{place}: shape ranges must be [lower, upper] integer pairs, got {str(ranges)[:80]}")
            spec.flexibility = "unbounded" if any(r[1] < 0 for r in ranges if len(r) == 2) else "range"
            spec.ranges = [(r[0], r[1]) for r in ranges] if all(len(r) == 2 for r in ranges) else []
        elif entry.get("hasSizeFlexibility") == "1" or (not v.type.is_static and not entry):
            spec.flexibility = "range" if entry else "unbounded"
        if default and is_dims(default):
            spec.default_shape = bounded_shape(tuple(default), f"{place}: default shape")
        elif v.type.is_static:
            spec.default_shape = v.type.shape  # type: ignore[assignment]
        specs.append(spec)
    return specs


def flex_entry(flex: dict[str, Any], kind: str, name: str) -> Any:
    table = flex.get(kind)
    return table.get(name) if isinstance(table, dict) else None


def holds_program(folder: Path) -> bool:
    return any(os.path.lexists(folder / f) for f in ("model.mil", "model.espresso.net"))


def model_units(root: Path) -> list[Path]:
    """The folder itself when it holds a program, else every sub-model folder (pipelines); the walk
    never leaves the model nor goes round a symlink loop."""
    if holds_program(root):
        return [root]
    units: list[Path] = []
    for folder in walk_dirs(root, skip=("weights", "analytics")):
        if folder != root and holds_program(folder) and not any(u in folder.parents for u in units):
            units.append(folder)
    return units


def count_ops(ops: list[Op]) -> int:
    return sum(1 + sum(count_ops(b.ops) for b in op.blocks) for op in ops)


def mil_graphs(
    folder: Path, root: Path, prefix: str, meta: dict[str, Any], notes: list[str], where: str
) -> list[Graph]:
    """Graphs of ``model.mil``, the default function first (it gets the input specs)."""
    mil_path = folder / "model.mil"
    text = read_text(mil_path, root, "mil", "MIL text")
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
    default = meta_field(meta, "defaultFunctionName", str, folder) or "main"
    graphs.sort(key=lambda g: g.name != default)
    graphs[0].input_specs = input_specs(graphs[0].inputs, meta.get("inputSchema"), parser.flex[graphs[0].name], folder)
    for g in graphs:
        g.name = prefix + g.name
    build = parser.attrs.get("buildInfo")
    compiler = (
        f" (coremlc {build['coremlc-version']})" if isinstance(build, dict) and "coremlc-version" in build else ""
    )
    notes.append(f"{where}ops, types and constants from model.mil{compiler}; weights are referenced, not read")
    histogram = meta_field(meta, "mlProgramOperationTypeHistogram", dict, folder)
    parsed = sum(count_ops(g.ops) for g in graphs)
    counted = sum(n for n in histogram.values() if isinstance(n, int)) if histogram else None
    if counted is not None and counted != parsed:
        notes.append(f"{where}metadata.json counts {counted} ops but model.mil has {parsed}")
    missing = sorted(
        str(p.relative_to(folder.resolve()))
        for p in set(parser.weight_files.values())
        if not is_file(p) or p.stat().st_size < 200 and is_lfs_pointer(p, root)
    )
    if missing:
        notes.append(
            f"{where}weight files missing (or Git LFS pointers), so weights cannot be loaded: {', '.join(missing)}"
        )
    return graphs


def is_lfs_pointer(path: Path, root: Path) -> bool:
    try:
        return read_bytes(path, root, "weights", "weight file").startswith(LFS_POINTER.encode())
    except ModelError:
        return False


def load_mlmodelc(path: Path) -> Model:
    """Read a compiled ``.mlmodelc`` folder (ML Program, NeuralNetwork, or a pipeline of them)."""
    root = Path(path)
    if not is_dir(root):
        raise ModelError(f"{root}: not a folder (a compiled model is a .mlmodelc folder)")
    if not any(root.iterdir()):
        raise ModelError(f"{root}: the folder is empty")
    meta = metadata_entry(root, root)
    notes: list[str] = []
    graphs: list[Graph] = []
    kinds: list[str] = []
    units = model_units(root)
    for k, unit in enumerate(units):
        rel = unit.relative_to(root).as_posix()
        prefix, where = (f"{rel}:", f"{rel}/") if unit != root else ("", "")
        unit_meta = metadata_entry(unit, root) if unit != root else meta
        unit_meta = unit_meta or (meta if k == 0 else {})  # pipeline inputs feed the first sub-model
        if os.path.lexists(unit / "model.mil"):
            graphs += mil_graphs(unit, root, prefix, unit_meta, notes, where)
            kinds.append("mlprogram")
            if os.path.lexists(unit / "model.espresso.net"):
                notes.append(f"{where}model.espresso.net ignored: model.mil describes the same model")
            continue
        g = espresso_graph(unit, root, prefix + "main", notes, where)
        if g:
            g.input_specs = input_specs(g.inputs, unit_meta.get("inputSchema"), {}, unit)
            graphs.append(g)
        kinds.append("neuralnetwork")
    if not units:
        if not is_file(root / "coremldata.bin"):
            raise ModelError(
                f"{root}: not a compiled Core ML model (no model.mil, model.espresso.net or coremldata.bin)"
            )
        model_type = meta_field(meta_field(meta, "modelType", dict, root, {}), "name", str, root, "model type unknown")
        notes.append(
            f"coremldata.bin holds the model in a binary format anedoctor cannot read ({model_type}); "
            "there is no model.mil or model.espresso.net to analyse"
        )
        kinds.append("mlprogram" if "mlProgram" in model_type else "neuralnetwork")
    if len(units) > 1:
        notes.append(
            f"pipeline of {len(units)} compiled sub-models: " + ", ".join(u.relative_to(root).as_posix() for u in units)
        )
    notes.append(
        "spec version, description and input flexibility from metadata.json"
        if meta
        else "no metadata.json: spec version unknown; input flexibility from the model text only"
    )

    ios = meta_field(meta_field(meta, "availability", dict, root, {}), "iOS", str, root)
    target = (
        graphs[0].opset if graphs and graphs[0].opset else f"ios{ios.split('.')[0]}" if isinstance(ios, str) else ""
    )
    weights = sum(
        f.stat().st_size for f in walk_files(root) if f.parent.name == "weights" or f.name.endswith(".espresso.weights")
    )
    spec_version = meta.get("specificationVersion")
    return Model(
        str(root),
        "mlmodelc-mlprogram" if "mlprogram" in kinds else "mlmodelc-neuralnetwork",
        graphs,
        spec_version if isinstance(spec_version, int) else 0,
        target,
        str(meta.get("shortDescription", "")),
        notes,
        weights,
        str(meta.get("isUpdatable", "0")) == "1",
        pipeline=len(units) > 1,
    )
