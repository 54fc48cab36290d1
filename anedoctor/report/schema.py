"""The JSON report (schema 1.0): the one data form the terminal, JSON and HTML renderings share.

The layout is versioned by ``SCHEMA_VERSION`` and documented in README.md ("JSON report"). Later
analyses add per-op numbers under ``ops[].extra`` and whole-model panels under ``panels``
without changing what is already there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..cost.evidence import chip_evidence, model_features, nearest_published
from ..ir import Value
from ..ir.compression import op_weight_formats
from ..placement import Finding, OpPlacement
from ..util import gc_paused

if TYPE_CHECKING:
    from . import Report

SCHEMA_VERSION = "1.0"


@gc_paused()
def report_dict(report: Report) -> dict[str, Any]:
    """The JSON schema's dict of a report (documented in README.md, \"JSON report\")."""
    index = {id(p.op): i for i, p in enumerate(report.placements)}
    total_flops = report.summary["flops"]
    m, t = report.model, report.target
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": report.kind,
        "tool": {"name": "anedoctor", "version": __version__},
        "model": {
            "path": m.path,
            "name": Path(m.path).name,
            "format": m.format,
            "deployment_target": m.deployment_target,
            "spec_version": m.spec_version,
            "parts": [g.name for g in m.graphs],
            "notes": report.notes,
        },
        "chip": {"id": t.chip.id, "name": t.chip.name, "ane_arch": t.chip.ane_arch, "assumed": t.chip_assumed},
        "os": {"id": t.os.id, "assumed": t.os_assumed},
        "compute_units": report.compute_units,
        "summary": report.summary,
        "ops": [op_dict(i, p, index, m.format) for i, p in enumerate(report.placements)],
        "segments": [vars(s).copy() for s in report.segments],
        "switches": [
            {
                "part": a.part,
                "after": a.end,
                "before": b.start,
                "from": a.device,
                "to": b.device,
                "after_name": report.placements[a.end].op.name,
                "before_name": report.placements[b.start].op.name,
            }
            for a, b in report.switches
        ],
        "causes": [
            {
                "rule": c.rule.id,
                "title": c.rule.summary,
                "fix": report.fix_advice(c.rule),
                "ops": len(c.ops),
                "blocked": c.blocked,
                "flops": c.flops,
                "flops_fraction": c.flops / total_flops if total_flops else 0.0,
                "switches": c.switches,
                "op_indices": c.ops,
            }
            for c in report.causes
        ],
        "notes": report.notes,
        "panels": report.panels,
        "calibrated_by": report.calibrated_by(),
        "latency_evidence": chip_evidence(report.target.chip),
        "nearest_published": nearest_published(model_features(report.prediction_placements()), report.target.chip),
    }


def finding_dict(f: Finding, model_format: str) -> dict[str, Any]:
    r = f.rule
    return {
        "rule": r.id,
        "title": r.summary,
        "message": f.message,
        "apple_message": f.apple_message,
        "source": r.source,
        "confidence": r.confidence,
        "fix": r.fix_for(model_format),
    }


def op_dict(i: int, p: OpPlacement, index: dict[int, int], model_format: str) -> dict[str, Any]:
    def tensor(v: Value, with_producer: bool) -> dict[str, Any]:
        d = {"name": v.name, "dtype": v.type.dtype, "shape": list(v.type.shape) if v.type.shape is not None else None}
        if with_producer:
            d["producer"] = index.get(id(v.producer)) if v.producer is not None else None
            d["const"] = v.is_const
        return d

    return (
        {
            "index": i,
            "name": p.op.name,
            "type": p.op.type,
            "opset": p.op.opset,
            "layer_type": p.op.layer_type or None,
            "part": p.part,
            "device": p.device,
            "supported": dict(p.supported),
            "reasons": [finding_dict(f, model_format) for f in p.findings],
            "notes": [finding_dict(f, model_format) for f in p.notes],
            "flops": p.flops,
            "bytes": p.bytes,
            "inputs": [tensor(v, True) for v in p.op.input_values() if not (v.is_const and v.type.nbytes <= 64)],
            "outputs": [tensor(v, False) for v in p.op.outputs],
            "cost_ms": {d: round(c, 6) for d, c in p.cost_ms.items()},
            "time_ms": round(p.time_ms, 6),
            "bound": p.bound,
            "extra": dict(p.extra),
        }
        | source_dict(p.op)
        | weights_dict(p.op)
    )


def source_dict(op: Any) -> dict[str, Any]:
    """``{"source": {file, line, module_path, text}}`` for an op that knows its PyTorch source line
    (Core AI models), else nothing (the key is absent)."""
    loc = op.source
    if loc is None:
        return {}
    return {"source": {"file": loc.file, "line": loc.line, "module_path": loc.module_path, "text": str(loc)}}


def weights_dict(op: Any) -> dict[str, Any]:
    """``{"weights": {argument: "4-bit LUT per-tensor", ...}}`` for an op reading compressed weights, else nothing."""
    formats = op_weight_formats(op)
    return {"weights": formats} if formats else {}
