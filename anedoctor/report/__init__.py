"""The report a check produces: per-op placement, segments, switches, causes; JSON and terminal.

The data lives here; :mod:`.schema` turns it into the JSON dict that :mod:`.terminal` and
:mod:`.html` render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cost.latency import breakdown
from ..errors import UnknownName
from ..hardware import Target
from ..ir import Model, Op
from ..placement import OpPlacement
from ..rules import Rule
from ..util import Exportable, gc_paused
from .schema import op_dict, report_dict


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
    """A root cause of work off the Neural Engine: the ops a rule blocks, and the ANE-eligible ops the
    segmenter keeps off the ANE with them (they share an off-ANE segment). Every off-ANE op belongs
    to exactly one cause, so the causes' shares add up to at most 100%."""

    rule: Rule
    ops: list[int] = field(default_factory=list)  # every op attributed to the cause (global indices)
    blocked: int = 0  # of which the rule itself rules out the ANE
    flops: int = 0
    switches: int = 0


REWRITABLE_FORMATS = ("mlprogram", "neuralnetwork")  # what `anedoctor fix` rewrites with every pass


class Report(Exportable):
    """Result of :func:`anedoctor.check`: a prediction of where every op runs, and why."""

    def __init__(self, model: Model, target: Target, compute_units: str, placements: list[OpPlacement], profile=None):
        self.model, self.target, self.compute_units = model, target, compute_units
        self.profile = profile  # the measured profile (anedoctor.measure.profile.Profile) that calibrated it, if any
        self.placements = placements
        self.kind = "prediction"
        self.notes = list(model.notes)
        self.panels: list[dict[str, Any]] = []
        self._by_op = {p.op: p for p in placements}
        self.segments = self._segments()
        self.switches = [(a, b) for a, b in zip(self.segments, self.segments[1:]) if a.part == b.part]
        self.causes = self._causes()
        scale = profile.latency_factor if profile is not None else None
        measured = profile.latency_overrides() if profile is not None else None
        self.latency = breakdown(self.prediction_placements(), target, measured, scale)  # anedoctor.cost.latency
        self.function_latency = {  # a multi-function model's (the default's is the one above): one runs per prediction
            f: self.latency if i == 0 else breakdown(self.prediction_placements(f), target, measured, scale)
            for i, f in enumerate(model.functions)
        }

    def function_summaries(self) -> list[dict[str, Any]]:
        """Per function of a multi-function model (the default first): its ops, ANE share of ops, latency and energy
        per prediction; [] for any other model."""
        rows = []
        for f, b in self.function_latency.items():
            placed = self.prediction_placements(f)
            ane = sum(p.device == "ane" for p in placed) / len(placed) if placed else 0.0
            rows.append(
                {
                    "name": f,
                    "ops": len(placed),
                    "ane_fraction": round(ane, 4),
                    "latency_ms": round(b.latency_ms, 4),
                    "energy_mj": round(b.energy_total_mj, 4),
                }
            )
        return rows

    def prediction_placements(self, function: str | None = None) -> list[OpPlacement]:
        """The placed ops of one prediction (:meth:`anedoctor.ir.Model.prediction_graphs`), or of the named function
        of a multi-function model."""
        parts = {function} if function else {g.name for g in self.model.prediction_graphs()}
        return [p for p in self.placements if p.part in parts]

    # ---- queries -------------------------------------------------------------------------
    def device(self, op: Op | str) -> str | None:
        """Predicted device ('ane' | 'gpu' | 'cpu') of an IR op, or of the op with this name (see :meth:`find`);
        None for an IR op that is not placed (a weight decompression). An unknown name raises KeyError.

            >>> report.device("conv_3")
            'ane'"""
        if isinstance(op, str):
            return self.find(op).device
        p = self._by_op.get(op)
        return p.device if p else None

    def find(self, name: str) -> OpPlacement:
        """The op with this name or output name; a unique name prefix also matches (converters add
        suffixes such as ``_cast_fp16``). Raises :class:`~anedoctor.errors.UnknownName` (a KeyError)."""
        exact = [p for p in self.placements if p.op.name == name or any(v.name == name for v in p.op.outputs)]
        prefixed = [p for p in self.placements if p.op.name.startswith(name)]
        if exact or len(prefixed) == 1:
            return (exact or prefixed)[0]
        close = [p.op.name for p in self.placements if name.lower() in p.op.name.lower()][:5]
        raise UnknownName(
            f"no op named {name!r} in {self.model.path}" + (f"; did you mean {', '.join(close)}?" if close else "")
        )

    def ops_table(self) -> list[dict[str, Any]]:
        """One flat row per op, ready for ``pandas.DataFrame(report.ops_table())``: name, type, device,
        supported devices, the rules that keep it off the ANE, FLOPs, bytes and estimated cost per device.

            >>> import pandas as pd
            >>> pd.DataFrame(report.ops_table()).groupby("device").flops.sum()"""
        rows = []
        for i, p in enumerate(self.placements):
            row = {
                "index": i,
                "name": p.op.name,
                "type": p.op.type,
                "part": p.part,
                "device": p.device,
                **{f"{d}_supported": p.supported[d] for d in ("ane", "gpu", "cpu")},
                "reasons": ",".join(f.rule.id for f in p.findings),
                "flops": p.flops,
                "bytes": p.bytes,
                **{f"{d}_ms": p.cost_ms.get(d) for d in ("ane", "gpu", "cpu")},
            }
            rows.append({**row, **p.extra})
        return rows

    @property
    def summary(self) -> dict[str, Any]:
        counts = {d: sum(p.device == d for p in self.placements) for d in ("ane", "gpu", "cpu")}
        total_flops = sum(p.flops for p in self.placements)
        n = len(self.placements)
        return {
            "ops": n,
            **counts,
            "segments": len(self.segments),
            "switches": len(self.switches),
            "ane_fraction": counts["ane"] / n if n else 0.0,
            "ane_flops_fraction": (sum(p.flops for p in self.placements if p.device == "ane") / total_flops)
            if total_flops
            else 0.0,
            "flops": total_flops,
            "latency_ms": round(self.latency.latency_ms, 4),
            "energy_mj": round(self.latency.energy_total_mj, 4),
            **({"functions": self.function_summaries()} if self.function_latency else {}),
        }

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
        """Root causes, most FLOPs first. An op the ANE cannot run counts under its first blocking rule; an
        eligible op kept off the ANE counts under the blocker with the most FLOPs in its segment (the
        reason that segment exists), and under its own placement rule (SEG-*, CU-1) only when the
        segment holds no blocked op."""
        segment_of = [s.index for s in self.segments for _ in range(s.ops)]  # segments tile the ops in order
        primary: dict[int, Rule] = {}
        heaviest: dict[int, tuple[int, Rule]] = {}  # off-ANE segment -> (FLOPs, rule) of its biggest blocked op
        for i, p in enumerate(self.placements):
            if p.device == "ane" or not p.findings:
                continue
            if not p.supported["ane"]:
                rule = next(f.rule for f in p.findings if f.rule.blocking)
                primary[i] = rule
                seg = segment_of[i]
                if seg not in heaviest or p.flops > heaviest[seg][0]:
                    heaviest[seg] = (p.flops, rule)
        causes: dict[str, Cause] = {}
        segments_hit: dict[str, set[int]] = {}  # rule id -> off-ANE segments holding its ops
        for i, p in enumerate(self.placements):
            if p.device == "ane" or not p.findings:
                continue
            blocked = i in primary
            rule = primary[i] if blocked else heaviest.get(segment_of[i], (0, p.findings[0].rule))[1]
            c = causes.setdefault(rule.id, Cause(rule))
            c.ops.append(i)
            c.blocked += blocked
            c.flops += p.flops
            segments_hit.setdefault(rule.id, set()).add(segment_of[i])
        for a, b in self.switches:  # a switch is the price of the off-ANE segment it enters or leaves
            off = a.index if a.device != "ane" else b.index
            for rule_id, hit in segments_hit.items():
                if off in hit:
                    causes[rule_id].switches += 1
        return sorted(causes.values(), key=lambda c: (-c.flops, -c.switches, -len(c.ops), c.rule.id))

    def fix_advice(self, rule: Rule) -> str:
        """The rule's fix, with the compute-units advice only where it fits the setting in use, and the
        ``anedoctor fix`` pass that applies it where this model's format can be rewritten."""
        fix = rule.fix_for(self.model.format)
        if rule.id == "SEG-1" and self.compute_units == "all":
            return f"{fix} Or load with compute_units=cpu_and_ne if the ANE should win, and measure."
        own_pass = rule.fix_pass and not rule.fix_pass.startswith("common::")
        if own_pass and self.model.format in REWRITABLE_FORMATS and "anedoctor fix" not in fix:
            kind = "exact" if rule.fix_exact else "verified against the original"
            fix = f"{fix} `anedoctor fix` applies it (pass {rule.fix_pass}, {kind})."
        return fix

    def add_numerics(self, numerics_report) -> "Report":
        """Show a :func:`anedoctor.numerics` result here: fp16 error per op (``extra`` columns) and
        its findings (a panel). Ops are matched by name, so both may come from separate loads."""
        rows = {row["op"]: row for row in numerics_report.ops}
        for p in self.placements:
            row = rows.get(p.op.name)
            if row is not None:
                p.extra.update(
                    {"fp16 rel err": row["rel_err"], "fp16 PSNR dB": row["psnr"], "fp32 |max|": row["ref_absmax"]}
                )
        findings = [
            {"kind": f.kind, "op": f.op, "type": f.op_type, "device": f.device, "message": f.message, "fix": f.fix}
            for f in numerics_report.findings
        ]
        self.panels.append(
            {
                "title": f"fp16 numerics (emulated ANE; placement: {numerics_report.placement})",
                "rows": findings or [{"result": "no op overflows, goes NaN/inf or drifts past the threshold"}],
            }
        )
        return self

    # ---- JSON ------------------------------------------------------------------------------
    def calibrated_by(self) -> dict[str, Any] | None:
        """The measured profile that rescaled this estimate (None: the model's own figures)."""
        profile = self.profile
        if profile is None or not profile.calibrates_latency:
            return None
        return {
            "profile": profile.path,
            "measured_on": profile.where,
            "latency_scale": profile.latency_scale,
            "class_latency_scale": profile.class_latency_scale,
            "ane_pass_us": profile.ane_pass_us,
            "confidence": "M",
            "note": "op times and segment launches multiplied by the profile's measured / predicted latency of "
            "its one-op probes (per cost class and device; the device's median where a class was not probed); "
            "each ANE pass at the cost its pass-chain probes measured, when they were",
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as the JSON schema's dict (the data every rendering uses)."""
        return report_dict(self)

    # ---- HTML ------------------------------------------------------------------------------
    @gc_paused()
    def html(self) -> str:
        """The self-contained HTML page (``to_html(path)`` also writes it)."""
        from .html import render_html

        return render_html(self.to_dict())

    def _repr_html_(self) -> str:
        """Notebook view: the page in an iframe, so its styles and ids cannot clash with the notebook."""
        import html

        return f'<iframe srcdoc="{html.escape(self.to_html())}" style="width:100%;height:900px;border:0"></iframe>'

    # ---- terminal ---------------------------------------------------------------------------
    def headline(self) -> str:
        """One line: ops per device, segments, switches and the ANE share of FLOPs."""
        from .terminal import headline

        return headline(self.summary)

    def render(self, verbose: bool = False, width: int | None = None) -> str:
        """The readable report as text, as ``anedoctor check`` prints it; ``verbose`` lists every op.

        >>> print(anedoctor.check("model.mlpackage").render())"""
        from .terminal import render_report

        return render_report(self.to_dict(), verbose, width)

    def explain(self, name: str, width: int | None = None) -> str:
        """Everything about one op as text: shapes, FLOPs, costs, devices, every reason with its source.

        >>> print(report.explain("conv_3"))"""
        from .terminal import render_op

        p = self.find(name)
        index = {id(q.op): i for i, q in enumerate(self.placements)}
        return render_op(op_dict(index[id(p.op)], p, index, self.model.format), width)

    def __repr__(self) -> str:
        return f"<anedoctor Report {Path(self.model.path).name}: {self.headline()}>"
