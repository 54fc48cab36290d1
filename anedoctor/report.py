"""The report a check produces: per-op placement, segments, switches, causes; JSON and terminal.

The JSON layout is versioned by ``SCHEMA_VERSION`` and documented in README.md ("JSON
report"). Later analyses add per-op numbers under ``ops[].extra`` and whole-model panels
under ``panels`` without changing what is already there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .hardware import Target
from .ir import Model, Op, Value
from .placement import OpPlacement
from .rules import CONFIDENCE, Rule
from .util import gc_paused, json_rows, write_atomic

SCHEMA_VERSION = "1.0"


@dataclass
class Segment:
    index: int
    part: str
    device: str
    start: int  # global op index, inclusive
    end: int
    ops: int
    flops: int


@dataclass
class Cause:
    rule: Rule
    ops: list[int] = field(default_factory=list)
    flops: int = 0
    switches: int = 0


class Report:
    """Result of :func:`anedoctor.check`: a prediction of where every op runs, and why."""

    def __init__(self, model: Model, target: Target, compute_units: str, placements: list[OpPlacement]):
        self.model, self.target, self.compute_units = model, target, compute_units
        self.placements = placements
        self.kind = "prediction"
        self.notes = list(model.notes)
        self.panels: list[dict[str, Any]] = []
        self._by_op = {p.op: p for p in placements}
        self.segments = self._segments()
        self.switches = [(a, b) for a, b in zip(self.segments, self.segments[1:]) if a.part == b.part]
        self.causes = self._causes()

    # ---- queries -------------------------------------------------------------------------
    def device(self, op: Op) -> str | None:
        """Predicted device of an IR op ('ane' | 'gpu' | 'cpu'); None for weight-producing ops."""
        p = self._by_op.get(op)
        return p.device if p else None

    def find(self, name: str) -> OpPlacement:
        """The op with this name or output name; a unique name prefix also matches (converters add
        suffixes such as ``_cast_fp16``)."""
        exact = [p for p in self.placements if p.op.name == name or any(v.name == name for v in p.op.outputs)]
        prefixed = [p for p in self.placements if p.op.name.startswith(name)]
        if exact or len(prefixed) == 1:
            return (exact or prefixed)[0]
        from .errors import ModelError

        close = [p.op.name for p in self.placements if name.lower() in p.op.name.lower()][:5]
        raise ModelError(f"no op named {name!r} in {self.model.path}" + (f"; did you mean {', '.join(close)}?" if close else ""))

    @property
    def summary(self) -> dict[str, Any]:
        counts = {d: sum(p.device == d for p in self.placements) for d in ("ane", "gpu", "cpu")}
        total_flops = sum(p.flops for p in self.placements)
        n = len(self.placements)
        return {"ops": n, **counts, "segments": len(self.segments), "switches": len(self.switches),
                "ane_fraction": counts["ane"] / n if n else 0.0,
                "ane_flops_fraction": (sum(p.flops for p in self.placements if p.device == "ane") / total_flops) if total_flops else 0.0,
                "flops": total_flops}

    def _segments(self) -> list[Segment]:
        segs: list[Segment] = []
        for i, p in enumerate(self.placements):
            if segs and segs[-1].device == p.device and segs[-1].part == p.part:
                s = segs[-1]
                s.end, s.ops, s.flops = i, s.ops + 1, s.flops + p.flops
            else:
                segs.append(Segment(len(segs), p.part, p.device, i, i, 1, p.flops))
        return segs

    def _causes(self) -> list[Cause]:
        causes: dict[str, Cause] = {}
        segment_of = [s.index for s in self.segments for _ in range(s.ops)]  # segments tile the ops in order
        segments_hit: dict[str, set[int]] = {}  # rule id -> off-ANE segments holding its ops
        for i, p in enumerate(self.placements):
            if p.device == "ane":
                continue
            for f in p.findings:
                c = causes.setdefault(f.rule.id, Cause(f.rule))
                if not c.ops or c.ops[-1] != i:
                    c.ops.append(i)
                    c.flops += p.flops
                    segments_hit.setdefault(f.rule.id, set()).add(segment_of[i])
        for a, b in self.switches:  # a switch is the price of the off-ANE segment it enters or leaves
            off = a.index if a.device != "ane" else b.index
            for rule_id, hit in segments_hit.items():
                if off in hit:
                    causes[rule_id].switches += 1
        return sorted(causes.values(), key=lambda c: (-c.flops, -c.switches, -len(c.ops), c.rule.id))

    def add_numerics(self, numerics_report) -> "Report":
        """Show a :func:`anedoctor.numerics` result here: fp16 error per op (``extra`` columns) and
        its findings (a panel). Ops are matched by name, so both may come from separate loads."""
        rows = {row["op"]: row for row in numerics_report.ops}
        for p in self.placements:
            row = rows.get(p.op.name)
            if row is not None:
                p.extra.update({"fp16 rel err": row["rel_err"], "fp16 PSNR dB": row["psnr"], "fp32 |max|": row["ref_absmax"]})
        findings = [{"kind": f.kind, "op": f.op, "type": f.op_type, "device": f.device, "message": f.message, "fix": f.fix}
                    for f in numerics_report.findings]
        self.panels.append({"title": f"fp16 numerics (emulated ANE; placement: {numerics_report.placement})",
                            "rows": findings or [{"result": "no op overflows, goes NaN/inf or drifts past the threshold"}]})
        return self

    # ---- JSON ------------------------------------------------------------------------------
    @gc_paused()
    def to_dict(self) -> dict[str, Any]:
        index = {id(p.op): i for i, p in enumerate(self.placements)}
        total_flops = self.summary["flops"]
        m, t = self.model, self.target
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "tool": {"name": "anedoctor", "version": __version__},
            "model": {"path": m.path, "name": Path(m.path).name, "format": m.format, "deployment_target": m.deployment_target,
                      "spec_version": m.spec_version, "parts": [g.name for g in m.graphs], "notes": self.notes},
            "chip": {"id": t.chip.id, "name": t.chip.name, "ane_arch": t.chip.ane_arch, "assumed": t.chip_assumed},
            "os": {"id": t.os.id, "assumed": t.os_assumed},
            "compute_units": self.compute_units,
            "summary": self.summary,
            "ops": [self._op_dict(i, p, index) for i, p in enumerate(self.placements)],
            "segments": [vars(s).copy() for s in self.segments],
            "switches": [{"part": a.part, "after": a.end, "before": b.start, "from": a.device, "to": b.device,
                          "after_name": self.placements[a.end].op.name, "before_name": self.placements[b.start].op.name}
                         for a, b in self.switches],
            "causes": [{"rule": c.rule.id, "title": c.rule.summary, "fix": c.rule.fix, "ops": len(c.ops), "flops": c.flops,
                        "flops_fraction": c.flops / total_flops if total_flops else 0.0, "switches": c.switches,
                        "op_indices": c.ops} for c in self.causes],
            "notes": self.notes,
            "panels": self.panels,
        }

    @staticmethod
    def _finding_dict(f) -> dict[str, Any]:
        r = f.rule
        return {"rule": r.id, "title": r.summary, "message": f.message, "apple_message": f.apple_message,
                "source": r.source, "confidence": r.confidence, "fix": r.fix}

    def _op_dict(self, i: int, p: OpPlacement, index: dict[int, int]) -> dict[str, Any]:
        def tensor(v: Value, with_producer: bool) -> dict[str, Any]:
            d = {"name": v.name, "dtype": v.type.dtype, "shape": list(v.type.shape) if v.type.shape is not None else None}
            if with_producer:
                d["producer"] = index.get(id(v.producer)) if v.producer is not None else None
                d["const"] = v.is_const
            return d

        return {"index": i, "name": p.op.name, "type": p.op.type, "opset": p.op.opset, "layer_type": p.op.layer_type or None,
                "part": p.part, "device": p.device, "supported": dict(p.supported),
                "reasons": [self._finding_dict(f) for f in p.findings], "notes": [self._finding_dict(f) for f in p.notes],
                "flops": p.flops, "bytes": p.bytes,
                "inputs": [tensor(v, True) for v in p.op.input_values() if not (v.is_const and v.type.nbytes <= 64)],
                "outputs": [tensor(v, False) for v in p.op.outputs],
                "cost_ms": {d: round(c, 6) for d, c in p.cost_ms.items()}, "extra": dict(p.extra)}

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON report: one line per top-level field and per op, segment, switch and cause."""
        text = json_rows(self.to_dict())
        if path is not None:
            write_atomic(path, text)
        return text

    # ---- HTML ------------------------------------------------------------------------------
    @gc_paused()
    def to_html(self, path: str | Path | None = None) -> str:
        from .html import render_html

        html = render_html(self.to_dict())
        if path is not None:
            write_atomic(path, html)
        return html

    def _repr_html_(self) -> str:
        """Notebook view: the page in an iframe, so its styles and ids cannot clash with the notebook."""
        import html

        return f'<iframe srcdoc="{html.escape(self.to_html())}" style="width:100%;height:900px;border:0"></iframe>'

    # ---- terminal ---------------------------------------------------------------------------
    def headline(self) -> str:
        s = self.summary
        return (f"Neural Engine: {s['ane']} · GPU: {s['gpu']} · CPU: {s['cpu']} · segments {s['segments']} · "
                f"switches {s['switches']} · ANE share of FLOPs {100 * s['ane_flops_fraction']:.1f}%")

    def render(self, console=None, verbose: bool = False) -> None:
        """Print the readable report (rich)."""
        from .terminal import render_report

        render_report(self, console, verbose)

    def explain(self, name: str, console=None) -> None:
        from .terminal import render_op

        render_op(self, self.find(name), console)

    def __repr__(self) -> str:
        return f"<anedoctor Report {Path(self.model.path).name}: {self.headline()}>"


def confidence_label(code: str) -> str:
    return f"{code} ({CONFIDENCE.get(code, 'unknown')})"
