"""Readable terminal rendering of a :class:`~anedoctor.report.Report` (rich)."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .hardware import DEVICE_LABELS
from .placement import OpPlacement
from .report import Report, confidence_label

STYLE = {"ane": "bold green", "gpu": "bold yellow", "cpu": "bold red"}
MAX_LISTED_OPS = 6


def shapes(values) -> str:
    return ", ".join(str(v.type) for v in values if not v.is_const) or "-"


def fmt_flops(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def render_report(report: Report, console: Console | None = None, verbose: bool = False) -> None:
    console = console or Console()
    m, t = report.model, report.target
    assumed = lambda flag: " (assumed)" if flag else ""  # noqa: E731
    console.print(Text(f"anedoctor · {Path(m.path).name}", style="bold"), Text(
        f"{m.format}, deployment target {m.deployment_target or '?'} · {t.chip.name} [{t.chip.ane_arch}]{assumed(t.chip_assumed)} · "
        f"{t.os.id}{assumed(t.os_assumed)} · compute units {report.compute_units}"))
    console.print(Text("PREDICTION — a static estimate of Core ML's placement, not a measurement", style="italic dim"))
    console.print(Text(report.headline(), style="bold"))
    s = report.summary
    console.print(f"ANE share of ops {100 * s['ane_fraction']:.1f}% of {s['ops']} ops")
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    if report.causes:
        console.print()
        console.print(Text("Not on the Neural Engine, by cause (most FLOPs first):", style="bold underline"))
        for c in report.causes:
            r = c.rule
            names = [report.placements[i].op.name for i in c.ops]
            listed = ", ".join(names[:MAX_LISTED_OPS]) + (f" … (+{len(names) - MAX_LISTED_OPS})" if len(names) > MAX_LISTED_OPS else "")
            share = 100 * c.flops / s["flops"] if s["flops"] else 0.0
            console.print(Text.assemble((f"  {r.id}", "bold cyan"), f" {r.name} ", (f"[{r.confidence}]", "dim"),
                                        f" — {len(c.ops)} op(s), {share:.1f}% of FLOPs, {c.switches} switch(es)"))
            console.print(f"    {r.summary}")
            example = next(f for f in report.placements[c.ops[0]].findings if f.rule is r)
            console.print(Text(f"    e.g. {report.placements[c.ops[0]].op.name}: {example.message}", style="dim"))
            if example.apple_message:
                console.print(Text(f'    Apple\'s message: "{example.apple_message}"', style="dim"))
            console.print(Text(f"    ops: {listed}", style="dim"))
            console.print(Text(f"    fix: {r.fix}", style="green"))
    if report.switches:
        console.print()
        console.print(Text("Device switches:", style="bold underline"))
        for a, b in report.switches:
            console.print(f"  after {report.placements[a.end].op.name!r} ({DEVICE_LABELS[a.device]}) → "
                          f"{report.placements[b.start].op.name!r} ({DEVICE_LABELS[b.device]})")
    if verbose:
        console.print()
        render_op_table(report, console)
    elif report.placements:
        console.print(Text("\nRun with -v for every op, or --explain OP_NAME for one.", style="dim"))


def render_op_table(report: Report, console: Console) -> None:
    table = Table(title="Every op (execution order)", show_lines=False)
    for col in ("#", "name", "type", "outputs", "FLOPs", "ANE/GPU/CPU", "device", "why not ANE"):
        table.add_column(col, overflow="fold")
    for i, p in enumerate(report.placements):
        sup = "/".join("yes" if p.supported[d] else "no" for d in ("ane", "gpu", "cpu"))
        why = "; ".join(f"{f.rule.id}" for f in p.findings) if p.device != "ane" else ""
        table.add_row(str(i), p.op.name, p.op.type, shapes(p.op.outputs), fmt_flops(p.flops), sup,
                      Text(DEVICE_LABELS[p.device], style=STYLE[p.device]), why)
    console.print(table)


def render_op(report: Report, p: OpPlacement, console: Console | None = None) -> None:
    console = console or Console()
    op = p.op
    console.print(Text(f"{op.name}", style="bold"), f"({op.qualified_type}{', NN layer ' + op.layer_type if op.layer_type else ''})")
    console.print(f"  inputs:  {shapes(op.input_values())}")
    console.print(f"  outputs: {shapes(op.outputs)}")
    console.print(f"  FLOPs {fmt_flops(p.flops)} · bytes {p.bytes:,} · estimated ms " +
                  " · ".join(f"{d.upper()} {p.cost_ms[d]:.4f}" for d in ("ane", "gpu", "cpu")))
    console.print("  supported: " + ", ".join(f"{DEVICE_LABELS[d]} {'yes' if p.supported[d] else 'no'}" for d in ("ane", "gpu", "cpu")))
    console.print(Text.assemble("  predicted device: ", (DEVICE_LABELS[p.device], STYLE[p.device])))
    for title, findings in (("reasons", p.findings), ("notes", p.notes)):
        for f in findings:
            r = f.rule
            console.print(Text.assemble(f"  {title[:-1]} ", (r.id, "bold cyan"), f" {r.name}: {f.message}"))
            if f.apple_message:
                console.print(f'    Apple\'s message: "{f.apple_message}"')
            console.print(f"    why: {r.why or r.summary}")
            console.print(f"    source: {r.source}")
            console.print(f"    confidence: {confidence_label(r.confidence)} · scope: {r.scope}")
            console.print(Text(f"    fix: {r.fix}", style="green"))
