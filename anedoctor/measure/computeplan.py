"""Measurements in anedoctor's report schema: built from MLComputePlan results, or parsed from dumps.

A measurement is a report dict with ``kind: "measurement"``: per op the device Core ML prefers, the
devices it supports and (ML Programs) its estimated cost weight, read with MLComputePlan (coremltools'
``compute_plan`` API, macOS 14.4+), plus where and how it was measured (chip, OS build, Core ML version).

Dump layouts parsed (as printed in public issues; copies with sources in tests/data/measure/):

* ``[002] ios18.mul outputs=[var_20_cast_fp16] preferred=MLNeuralEngineComputeDevice supported=[MLCPU...,...]``
  (0seba/VoxCPMANE #15); ``const`` ops print ``preferred=unreported`` and are weights, not ops.
* ``op=matmul  preferred=MLCPUComputeDevice  supported=[MLCPU, MLGPU, MLNeuralEngine]`` (vx-lang/Vx #436): no names.
* ``0.68% G|C  x_1_cast_fp16 = ios16.gather(...)``: cost %, preferred|other supported devices
  (smpanaro/CoreMLInspect README: ``G|CN`` = GPU preferred, CPU and Neural Engine also supported).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ModelError
from ..hardware import DISPLAY_ORDER
from ..util import Exportable

BRACKETED = re.compile(
    r"^\[(?P<index>\d+)\]\s+(?P<type>\S+)\s+outputs=\[(?P<outputs>[^\]]*)\]\s+"
    r"preferred=(?P<preferred>\S+)\s+supported=\[(?P<supported>[^\]]*)\](?:\s+cost=(?P<cost>[\d.eE+-]+))?"
)
OP_EQUALS = re.compile(r"^op=(?P<type>\S+)\s+preferred=(?P<preferred>\S+)(?:\s+supported=\[(?P<supported>[^\]]*)\])?")
INSPECT = re.compile(
    r"^(?P<cost>[\d.]+)%\s+(?P<preferred>[NGC])\|(?P<supported>[NGC]+)\s+"
    r"(?P<name>\S+)\s*=\s*(?P<type>[\w.]+)\("
)
LETTERS = {"N": "ane", "G": "gpu", "C": "cpu"}


def device_of(token: str) -> str | None:
    """'MLNeuralEngineComputeDevice' / 'MLNeuralEngine' / 'N' -> 'ane'; None for 'unreported' and unknown text."""
    t = token.strip().strip("'\"")
    if t in LETTERS:
        return LETTERS[t]
    low = t.lower()
    if "neural" in low or low in ("ane", "ne"):
        return "ane"
    if "gpu" in low:
        return "gpu"
    if "cpu" in low:
        return "cpu"
    return None


def split_type(operator: str) -> tuple[str, str | None]:
    """'ios18.conv' -> ('conv', 'ios18'); 'const' -> ('const', None)."""
    opset, dot, op = operator.rpartition(".")
    return (op, opset) if dot and opset.startswith(("ios", "macos", "CoreML")) else (operator, None)


def plan_op(
    index: int,
    name: str | None,
    operator: str,
    preferred: str | None,
    supported: list[str] | None,
    cost: float | None = None,
) -> dict[str, Any]:
    """One measured op row (same keys as a prediction's ops where they mean the same thing)."""
    op_type, opset = split_type(operator)
    return {
        "index": index,
        "name": name,
        "type": op_type,
        "opset": opset,
        "layer_type": None,
        "part": None,
        "device": preferred,
        "supported": None if supported is None else {d: d in supported for d in DISPLAY_ORDER},
        "cost": cost,
        "reasons": [],
        "notes": [],
        "flops": None,
        "bytes": None,
        "inputs": [],
        "outputs": [] if name is None else [{"name": name, "dtype": None, "shape": None}],
        "extra": {},
    }


def parse_compute_plan(text: str, name: str) -> list[dict[str, Any]]:
    """Per-op rows from an MLComputePlan dump in any of the layouts above; const/unreported ops are skipped."""
    ops: list[dict[str, Any]] = []
    layouts = set()
    for raw in text.splitlines():
        line = raw.strip()
        if m := BRACKETED.match(line):
            preferred = device_of(m["preferred"])
            if preferred is None:  # const ops: no device usage
                continue
            outputs = [o.strip() for o in m["outputs"].split(",") if o.strip()]
            supported = [d for d in map(device_of, m["supported"].split(",")) if d]
            ops.append(
                plan_op(
                    len(ops),
                    outputs[0] if outputs else None,
                    m["type"],
                    preferred,
                    supported,
                    float(m["cost"]) if m["cost"] else None,
                )
            )
            layouts.add("bracketed")
        elif m := OP_EQUALS.match(line):
            supported = None if m["supported"] is None else [d for d in map(device_of, m["supported"].split(",")) if d]
            ops.append(plan_op(len(ops), None, m["type"], device_of(m["preferred"]), supported))
            layouts.add("op=")
        elif m := INSPECT.match(line):
            # CoreMLInspect prints the preferred device, then the *other* supported ones ('G|CN')
            supported = [LETTERS[c] for c in m["preferred"] + m["supported"]]
            ops.append(
                plan_op(len(ops), m["name"], m["type"], LETTERS[m["preferred"]], supported, float(m["cost"]) / 100.0)
            )
            layouts.add("CoreMLInspect")
    if not ops:
        raise ModelError(
            f"{name}: no MLComputePlan op line found (expected '[N] ios18.op outputs=[..] preferred=.. "
            "supported=[..]', 'op=TYPE preferred=..' or CoreMLInspect's '0.68% G|C name = ios16.op(')"
        )
    if len(layouts) > 1:
        raise ModelError(f"{name}: mixes MLComputePlan dump layouts ({', '.join(sorted(layouts))}); one dump per file")
    return ops


def segments_of(ops: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Runs of consecutive ops on one device, and the switches between them (ops without a device are skipped)."""
    segments: list[dict] = []
    for i, op in enumerate(ops):
        if op.get("device") is None:
            continue
        part = op.get("part")
        if segments and segments[-1]["device"] == op["device"] and segments[-1]["part"] == part:
            segments[-1].update(end=i, ops=segments[-1]["ops"] + 1)
        else:
            segments.append(
                {
                    "index": len(segments),
                    "part": part,
                    "device": op["device"],
                    "start": i,
                    "end": i,
                    "ops": 1,
                    "flops": 0,
                }
            )
    switches = [
        {
            "part": a["part"],
            "after": a["end"],
            "before": b["start"],
            "from": a["device"],
            "to": b["device"],
            "after_name": ops[a["end"]].get("name"),
            "before_name": ops[b["start"]].get("name"),
        }
        for a, b in itertools.pairwise(segments)
        if a["part"] == b["part"]
    ]
    return segments, switches


class Measurement(Exportable, dict):
    """A measurement report: the JSON dict itself, with the Report methods ``to_dict``, ``to_json``, ``to_html``
    (the same HTML page as a prediction, marked as a measurement)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self)

    def html(self) -> str:
        from ..report.html import render_html

        return render_html(self)


def measurement(
    ops: list[dict[str, Any]],
    *,
    model: dict[str, Any] | None = None,
    compute_units: str | None = None,
    chip: dict[str, Any] | None = None,
    os: dict[str, Any] | None = None,
    coreml: dict[str, Any] | None = None,
    measured_with: str = "MLComputePlan",
    notes: list[str] | None = None,
    **sections: Any,
) -> Measurement:
    """A measurement report (schema 1.0, ``kind: "measurement"``) around per-op rows."""
    placed = [op for op in ops if op.get("device") in DISPLAY_ORDER]
    counts = {d: sum(op["device"] == d for op in placed) for d in DISPLAY_ORDER}
    costs = [op for op in placed if op.get("cost") is not None]
    total_cost = sum(op["cost"] for op in costs)
    segments, switches = segments_of(ops)
    summary = {
        "ops": len(placed),
        **counts,
        "segments": len(segments),
        "switches": len(switches),
        "ane_fraction": counts["ane"] / len(placed) if placed else 0.0,
        "ane_cost_fraction": (
            sum(op["cost"] for op in costs if op["device"] == "ane") / total_cost if total_cost else None
        ),
    }
    return Measurement(
        {
            "schema_version": "1.0",
            "kind": "measurement",
            "tool": {"name": "anedoctor", "version": __version__},
            "measured_with": measured_with,
            "model": {
                "path": None,
                "name": None,
                "format": None,
                "deployment_target": None,
                "spec_version": None,
                "parts": [],
                "notes": [],
                **(model or {}),
            },
            "chip": {"id": None, "name": None, "ane_arch": None, "assumed": False, **(chip or {})},
            "os": {"id": None, "assumed": False, **(os or {})},
            "coreml": coreml or {},
            "compute_units": compute_units,
            "summary": summary,
            "ops": ops,
            "segments": segments,
            "switches": switches,
            "causes": [],
            "notes": list(notes or []),
            "panels": [],
            **sections,
        }
    )


def measurement_from_dump(path: str | Path, compute_units: str | None = None, **meta: Any) -> Measurement:
    """Read an MLComputePlan dump (text, as printed in issues) into a measurement dict."""
    try:
        text = Path(path).read_text("utf-8", errors="replace")
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror or e})") from None
    ops = parse_compute_plan(text, str(path))
    note = (
        f"parsed from an MLComputePlan dump ({Path(path).name}); where and how it was measured is only what "
        "the dump says"
    )
    return measurement(
        ops, model={"path": str(path), "name": Path(path).name}, compute_units=compute_units, notes=[note], **meta
    )


def load_report(source: Any, role: str) -> dict[str, Any]:
    """A report dict from a dict, a Report-like object, a JSON file or (measurements) an MLComputePlan dump."""
    if isinstance(source, dict):
        return source
    if hasattr(source, "to_dict"):
        return source.to_dict()
    path = Path(source)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: cannot read the {role} ({getattr(e, 'strerror', None) or e})") from None
    if not text.lstrip().startswith("{"):
        if role == "measurement":
            return measurement_from_dump(path)
        raise ModelError(f"{path}: not a JSON report; write one with `anedoctor check MODEL --json {path.name}`")
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(d, dict) or not isinstance(d.get("ops"), list):
        raise ModelError(f"{path}: not an anedoctor report (no 'ops' list)")
    return d
