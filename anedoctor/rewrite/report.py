"""What ``fix`` did: rewrites kept and dropped, placement before -> after, what is left to fix."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..hardware import DEVICE_LABELS
from ..util import Exportable

SUMMARY_KEYS = ("ops", "ane", "gpu", "cpu", "segments", "switches", "ane_fraction", "ane_flops_fraction", "latency_ms")


@dataclass
class Attempt:
    """One pass tried on the model."""

    pass_name: str
    rules: tuple[str, ...]
    exact: bool
    tolerance: float
    summary: str
    rewritten: list[str] = field(default_factory=list)  # ops replaced
    ops_after: int = 0  # ops that replaced them
    error: float | None = None  # max relative output error measured against the original
    kept: bool = False
    reason: str | None = None  # why it was dropped

    def line(self) -> str:
        if not self.rules:  # a step that is not a rule's pass (the NeuralNetwork -> ML Program conversion)
            return self.summary
        kind = "exact" if self.exact else f"approximate, tol {self.tolerance:g}"
        err = "" if self.error is None else f", max error {self.error:.2g}"
        ops = f"{len(self.rewritten)} op(s) -> {self.ops_after}" if self.rewritten else "no op"
        return f"{self.pass_name} [{', '.join(self.rules)}]: {ops} ({kind}{err})"


@dataclass
class Unfixed:
    """A rule still keeping ops off the Neural Engine after ``fix``, and the change to make in the source."""

    rule: str
    title: str
    ops: int
    example: str
    fix: str


def summary_of(report: Any) -> dict[str, Any]:
    s = report.summary
    return {k: s[k] for k in SUMMARY_KEYS if k in s}


def strip_of(report: Any) -> list[dict[str, Any]]:
    """Per-op device and blocking rules, for the before/after strips."""
    return [
        {"name": p.op.name, "type": p.op.type, "device": p.device, "rules": sorted({f.rule.id for f in p.findings})}
        for p in report.placements
    ]


def unfixed_causes(report: Any, placement_prefixes: tuple[str, ...]) -> list[Unfixed]:
    out = []
    for c in report.causes:
        if c.rule.id.startswith(placement_prefixes):
            continue
        hits = [
            f"{report.placements[i].op.name}: {f.message}"
            for i in c.ops
            for f in report.placements[i].findings
            if f.rule.id == c.rule.id
        ]
        out.append(
            Unfixed(
                c.rule.id, c.rule.name, len(c.ops), hits[0] if hits else report.placements[c.ops[0]].op.name, c.rule.fix
            )
        )
    return out


class FixReport(Exportable):
    """Result of :func:`anedoctor.fix`. ``written`` says whether ``output`` holds a fixed model."""

    def __init__(self, source: Path, output: Path | None, dry_run: bool, before_report: Any, before: dict[str, Any]):
        self.source, self.output, self.dry_run = source, output, dry_run
        self.target = f"{before_report.target.chip.name} · {before_report.target.os.id}"
        self.compute_units = before_report.compute_units
        self.before, self.after = before, before
        self.strips = {"before": strip_of(before_report), "after": strip_of(before_report)}
        self.applied: list[Attempt] = []
        self.dropped: list[Attempt] = []
        self.skipped: list[tuple[str, str]] = []
        self.unfixed: list[Unfixed] = []
        self.written = False
        self.no_gain: str | None = None  # why the kept rewrites are predicted not to help

    def finish(self, after_report: Any, after: dict[str, Any], unfixed: list[Unfixed]) -> None:
        self.after, self.unfixed = after, unfixed
        self.strips["after"] = strip_of(after_report)

    @property
    def improved(self) -> bool:
        return bool(self.applied) and self.no_gain is None

    @property
    def model(self) -> Any:
        """The fixed model: a coremltools MLModel, or the ``.aimodel`` path of a Core AI model (None when
        nothing was written)."""
        if not self.written:
            return None
        if Path(self.output).suffix == ".aimodel":
            return Path(self.output)
        from .coreml_io import coremltools, quiet

        with quiet():
            return coremltools().models.MLModel(str(self.output), skip_model_load=True)

    @property
    def verdict(self) -> str:
        if not self.applied:
            return "no rewrite improved this model; nothing was written"
        if self.no_gain:
            return f"{self.no_gain}; nothing was written"
        if self.written:
            return f"wrote {self.output}"
        return "dry run: nothing written" if self.dry_run else "nothing written"

    # ---- renderings ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fix report as JSON-ready data (numpy numbers become floats)."""
        return json.loads(json.dumps(self.summary_dict(), default=float))

    def summary_dict(self) -> dict[str, Any]:
        return {
            "kind": "fix",
            "source": str(self.source),
            "output": str(self.output) if self.output else None,
            "written": self.written,
            "dry_run": self.dry_run,
            "target": self.target,
            "compute_units": self.compute_units,
            "verdict": self.verdict,
            "improved": self.improved,
            "before": self.before,
            "after": self.after,
            "applied": [asdict(a) for a in self.applied],
            "dropped": [asdict(a) for a in self.dropped],
            "skipped": [{"pass": n, "reason": r} for n, r in self.skipped],
            "unfixed": [asdict(u) for u in self.unfixed],
            "strips": self.strips,
        }

    def __str__(self) -> str:
        b, a = self.before, self.after
        lines = [
            f"anedoctor fix · {self.source} · {self.target} · compute units {self.compute_units}",
            "PREDICTION — placement and latency are estimates; outputs were compared with the reference executor",
        ]
        for label, key in (("ANE share of ops", "ane_fraction"), ("ANE share of FLOPs", "ane_flops_fraction")):
            lines.append(f"  {label:<20} {b[key]:7.1%} -> {a[key]:7.1%}")
        for key in ("ops", "segments", "switches"):
            lines.append(f"  {key:<20} {b[key]:>7} -> {a[key]:>7}")
        if "latency_ms" in b and "latency_ms" in a:
            lines.append(f"  {'latency (est.)':<20} {b['latency_ms']:6.3f} ms -> {a['latency_ms']:.3f} ms")
        if self.applied:
            lines.append("Rewrites applied:")
            lines += [f"  {x.line()}" for x in self.applied]
        if self.dropped:
            lines.append("Rewrites dropped (failed verification or did not apply):")
            lines += [f"  {x.pass_name} [{', '.join(x.rules)}]: {x.reason}" for x in self.dropped]
        if self.skipped:
            lines.append("Not tried:")
            lines += [f"  {n}: {r}" for n, r in self.skipped]
        if self.unfixed:
            lines.append("Still off the Neural Engine (needs a change in the source model):")
            for u in self.unfixed:
                lines.append(f"  {u.rule} {u.title} — {u.ops} op(s), e.g. {u.example}")
                lines.append(f"      fix: {u.fix}")
        lines.append(self.verdict)
        return "\n".join(lines)

    def html(self) -> str:
        """The before/after page: the two device strips one above the other."""
        return render_html(self)

    def _repr_html_(self) -> str:
        return render_html(self)


COLOURS = {
    "ane": ("#0072B2", "none"),
    "gpu": ("#E69F00", "repeating-linear-gradient(45deg,#0003 0 3px,#0000 3px 7px)"),
    "cpu": ("#8c8c8c", "repeating-linear-gradient(-45deg,#0004 0 2px,#0000 2px 5px)"),
}


def strip_html(title: str, ops: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    cells = "".join(
        f'<span class="op {o["device"]}" title="{html.escape(o["name"])} ({html.escape(o["type"])}) on '
        f'{DEVICE_LABELS.get(o["device"], o["device"])}{" · " + ", ".join(o["rules"]) if o["rules"] else ""}"></span>'
        for o in ops
    )
    head = (
        f"{title}: {summary['ops']} ops · ANE {summary['ane_fraction']:.1%} of ops, "
        f"{summary['ane_flops_fraction']:.1%} of FLOPs · {summary['segments']} segments · "
        f"{summary['switches']} switches"
    )
    if "latency_ms" in summary:
        head += f" · ~{summary['latency_ms']:.3f} ms (est.)"
    label = html.escape(head)
    return f'<section><h2>{label}</h2><div class="strip" role="img" aria-label="{label}">{cells}</div></section>'


def render_html(r: FixReport) -> str:
    css = "".join(f".{d}{{background-color:{c};background-image:{p}}}" for d, (c, p) in COLOURS.items())
    legend = " ".join(f'<span class="key"><span class="op {d}"></span>{DEVICE_LABELS[d]}</span>' for d in COLOURS)
    rows = "".join(
        f"<tr><td>{html.escape(a.pass_name)}</td><td>{', '.join(a.rules)}</td>"
        f"<td>{len(a.rewritten)} → {a.ops_after}</td><td>{'exact' if a.exact else 'approximate'}</td>"
        f"<td>{'' if a.error is None else f'{a.error:.2g}'}</td></tr>"
        for a in r.applied
    )
    dropped = "".join(f"<li>{html.escape(a.pass_name)}: {html.escape(a.reason or '')}</li>" for a in r.dropped)
    unfixed = "".join(
        f"<li><b>{u.rule}</b> {html.escape(u.title)} — {u.ops} op(s), e.g. {html.escape(u.example)}"
        f"<br>fix: {html.escape(u.fix)}</li>"
        for u in r.unfixed
    )
    title = html.escape(r.source.name)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>anedoctor fix · {title}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222;background:#fff}}h1{{font-size:1.3em}}
h2{{font-size:1em;font-weight:600}}.strip{{display:flex;height:36px;border:1px solid #444}}
.strip .op{{flex:1 1 0;min-width:1px;border-right:1px solid #fff4}}
.key{{margin-right:1.5em}}.key .op{{display:inline-block;width:14px;height:14px;vertical-align:middle;margin-right:4px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}{css}
@media (prefers-color-scheme:dark){{body{{background:#111;color:#ddd}}}}</style></head><body>
<h1>anedoctor fix · {html.escape(str(r.source))}</h1><p>{html.escape(r.target)} · compute units {r.compute_units} ·
a prediction, not a measurement · {html.escape(r.verdict)}</p><p>{legend}</p>
{strip_html("Before", r.strips["before"], r.before)}{strip_html("After", r.strips["after"], r.after)}
<h2>Rewrites applied</h2><table><tr><th>pass</th><th>rules</th><th>ops</th><th>kind</th><th>max output error</th></tr>
{rows}</table>{f"<h2>Dropped</h2><ul>{dropped}</ul>" if dropped else ""}
{f"<h2>Still off the Neural Engine</h2><ul>{unfixed}</ul>" if unfixed else ""}
</body></html>
"""
