"""Readable terminal rendering of a report dict (the JSON schema), with rich.

Every name that comes from a model (ops, tensors, layers, notes) is untrusted text: it is shown
through :func:`~anedoctor.util.safe_text` inside :class:`rich.text.Text`, never as markup.
Rule documentation (name, confidence, scope) comes from the rule base by id.
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from ..cost.evidence import published_latencies
from ..hardware import DEVICE_LABELS, DISPLAY_ORDER
from ..rules import CONFIDENCE, RULES
from ..util import safe_text

STYLE = {"ane": "bold green", "gpu": "bold yellow", "cpu": "bold red"}
MAX_LISTED_OPS = 6

CALIBRATED = ", calibrated by the measured profile"


def functions_text(functions: list[dict[str, Any]]) -> str:
    """Each function of a multi-function model with its estimated latency and ANE share, on one line."""
    return ", ".join(
        f"{safe_text(f['name'])} ~{f['latency_ms']:.3f} ms ({100 * f['ane_fraction']:.1f}% ANE)" for f in functions
    )


def headline(s: dict[str, Any]) -> str:
    """Ops per device, segments, switches and the ANE share of FLOPs, in one line."""
    flops = (
        f" · ANE share of FLOPs {100 * s['ane_flops_fraction']:.1f}%" if s.get("ane_flops_fraction") is not None else ""
    )
    return (
        f"Neural Engine: {s['ane']} · GPU: {s['gpu']} · CPU: {s['cpu']} · segments {s['segments']} · "
        f"switches {s['switches']}{flops}"
    )


def confidence_label(code: str) -> str:
    return f"{code} ({CONFIDENCE.get(code, 'unknown')})"


def fmt_flops(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def shapes(tensors: list[dict[str, Any]]) -> str:
    def one(t):
        dims = "?" if t["shape"] is None else ",".join("?" if d is None else str(d) for d in t["shape"])
        return f"{t['dtype']}[{dims}]"

    return ", ".join(one(t) for t in tensors if not t.get("const")) or "-"


def to_text(renderables: list[RenderableType], width: int | None = None) -> str:
    """Plain text of rich renderables (no colour), as a terminal of ``width`` columns would show it."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 120, color_system=None, highlight=False, soft_wrap=width is None)
    for r in renderables:
        console.print(r)
    return buffer.getvalue()


def render_report(d: dict[str, Any], verbose: bool = False, width: int | None = None) -> str:
    """The readable report as text."""
    return to_text(report_lines(d, verbose), width)


def render_op(op: dict[str, Any], width: int | None = None) -> str:
    """One op in full, as text."""
    return to_text(op_lines(op), width)


def report_lines(d: dict[str, Any], verbose: bool = False) -> list[RenderableType]:
    """The report as rich renderables: header, summary, causes, switches, optionally every op."""
    m, s = d["model"], d["summary"]
    out: list[RenderableType] = [
        Text.assemble((f"anedoctor · {safe_text(m['name'])}", "bold"), " " + safe_text(" · ".join(header(d)))),
        Text(kind_line(d), style="italic dim"),
        Text(headline(s), style="bold"),
        Text(f"ANE share of ops {100 * s['ane_fraction']:.1f}% of {s['ops']} ops"),
    ]
    if s.get("latency_ms") is not None:
        energy = f" · energy ~{s['energy_mj']:.2f} mJ" if s.get("energy_mj") is not None else ""
        evidence = d.get("latency_evidence")
        checked = (
            f", checked against {published_latencies(evidence['cases'])} on this chip: median error "
            f"{evidence['median_error']:.2f}x"
            if evidence
            else " from this chip's specs: no published latency was measured on it"
        )
        out.append(
            Text(
                f"Estimated latency ~{s['latency_ms']:.3f} ms per inference{energy} "
                f"(anedoctor estimate{checked}{CALIBRATED if d.get('calibrated_by') else ''}; "
                "`anedoctor estimate` breaks it down)"
            )
        )
    if s.get("functions"):
        out.append(
            Text(
                "Functions (a prediction runs one; the latency above is the default's, --function picks another): "
                + functions_text(s["functions"])
            )
        )
    out += [Text(f"note: {safe_text(note)}", style="yellow") for note in d["notes"]]
    ops = d["ops"]
    if d["causes"]:
        out += [Text(""), Text("Not on the Neural Engine, by cause (most FLOPs first):", style="bold underline")]
        for c in d["causes"]:
            out += cause_lines(c, ops, s)
    if d["switches"]:
        out += [Text(""), Text("Device switches:", style="bold underline")]
        out += [
            Text(
                f"  after {safe_text(w['after_name'])!r} ({DEVICE_LABELS[w['from']]}) → "
                f"{safe_text(w['before_name'])!r} ({DEVICE_LABELS[w['to']]})"
            )
            for w in d["switches"]
        ]
    if verbose:
        out += [Text(""), op_table(ops)]
    elif ops:
        out.append(Text("\nRun with -v for every op, or --explain OP_NAME for one.", style="dim"))
    return out


def header(d: dict[str, Any]) -> list[str]:
    """Format, deployment target, chip, OS and compute units, leaving out what the report does not know."""
    m, chip, os_ = d["model"], d["chip"], d["os"]
    assumed = lambda part, flag: f"{part} (assumed)" if flag else part  # noqa: E731
    parts = [
        m.get("format") and f"{m['format']}, deployment target {m.get('deployment_target') or '?'}",
        chip.get("name") and assumed(f"{chip['name']} [{chip.get('ane_arch')}]", chip.get("assumed")),
        os_.get("id") and assumed(os_["id"], os_.get("assumed")),
        d.get("compute_units") and f"compute units {d['compute_units']}",
    ]
    return [p for p in parts if p]


def kind_line(d: dict[str, Any]) -> str:
    """What the numbers are: a prediction, or a measurement and where and how it was taken."""
    if d.get("kind") != "measurement":
        return "PREDICTION — a static estimate of Core ML's placement, not a measurement"
    coreml = ", ".join(f"{k} {v}" for k, v in (d.get("coreml") or {}).items() if v)
    where = " · ".join(x for x in (d["chip"].get("name") or d["chip"].get("id"), d["os"].get("id"), coreml) if x)
    return f"MEASUREMENT — {d.get('measured_with') or 'measured'}" + (f" on {safe_text(where)}" if where else "")


def cause_lines(c: dict[str, Any], ops: list[dict[str, Any]], s: dict[str, Any]) -> list[Text]:
    r = RULES[c["rule"]]
    names = [safe_text(ops[i]["name"]) for i in c["op_indices"]]
    listed = ", ".join(names[:MAX_LISTED_OPS]) + (
        f" … (+{len(names) - MAX_LISTED_OPS})" if len(names) > MAX_LISTED_OPS else ""
    )
    share = 100 * c["flops"] / s["flops"] if s["flops"] else 0.0
    first = next((ops[i] for i in c["op_indices"] if any(f["rule"] == r.id for f in ops[i]["reasons"])), None)
    example = next(f for f in first["reasons"] if f["rule"] == r.id)
    kept = c["ops"] - c["blocked"]
    counts = f"{c['blocked']} op(s) blocked" + (
        f" + {kept} eligible op(s) kept off with them" if kept and c["blocked"] else ""
    )
    counts = counts if c["blocked"] else f"{c['ops']} op(s)"
    lines = [
        Text.assemble(
            (f"  {r.id}", "bold cyan"),
            f" {r.name} ",
            (f"[{r.confidence}]", "dim"),
            f" — {counts}, {share:.1f}% of FLOPs, {c['switches']} switch(es)",
        ),
        Text(f"    {r.summary}"),
        Text(
            f"    e.g. {safe_text(first['name'])}{source_suffix(first)}: {safe_text(example['message'])}", style="dim"
        ),
    ]
    if example["apple_message"]:
        lines.append(Text(f'    Apple\'s message: "{safe_text(example["apple_message"])}"', style="dim"))
    return lines + [Text(f"    ops: {listed}", style="dim"), Text(f"    fix: {c['fix']}", style="green")]


def source_suffix(op: dict[str, Any]) -> str:
    """`` at model.py:42 (encoder.attn)`` for an op with a PyTorch source location, else ``""``."""
    return f" at {safe_text(op['source']['text'])}" if op.get("source") else ""


def op_table(ops: list[dict[str, Any]]) -> Table:
    table = Table(title="Every op (execution order)", show_lines=False)
    for col in ("#", "name", "type", "outputs", "FLOPs", "ANE/GPU/CPU", "device", "why not ANE"):
        table.add_column(col, overflow="fold")
    for op in ops:
        sup = "/".join("yes" if op["supported"][d] else "no" for d in DISPLAY_ORDER)
        why = "; ".join(f["rule"] for f in op["reasons"]) if op["device"] != "ane" else ""
        table.add_row(
            str(op["index"]),
            Text(safe_text(op["name"])),
            Text(safe_text(op["type"])),
            shapes(op["outputs"]),
            fmt_flops(op["flops"]),
            sup,
            Text(DEVICE_LABELS[op["device"]], style=STYLE[op["device"]]),
            why,
        )
    return table


def op_lines(op: dict[str, Any]) -> list[Text]:
    """One op in full: shapes, work, estimated cost per device, devices, every reason and note."""
    kind = op["opset"] + "." + op["type"] if op["opset"] else op["type"]
    layer = f", NN layer {op['layer_type']}" if op["layer_type"] else ""
    lines = [
        Text.assemble((safe_text(op["name"]), "bold"), f" ({safe_text(kind)}{safe_text(layer)})"),
        *([Text(f"  source:  {safe_text(op['source']['text'])}")] if op.get("source") else []),
        *[Text(f"  weight {safe_text(arg)}: {text} (compressed)") for arg, text in op.get("weights", {}).items()],
        Text(f"  inputs:  {safe_text(shapes(op['inputs']))}"),
        Text(f"  outputs: {safe_text(shapes(op['outputs']))}"),
        Text(
            f"  FLOPs {fmt_flops(op['flops'])} · bytes {op['bytes']:,} · estimated ms "
            + " · ".join(f"{d.upper()} {op['cost_ms'][d]:.4f}" for d in DISPLAY_ORDER)
        ),
        Text(
            "  supported: "
            + ", ".join(f"{DEVICE_LABELS[d]} {'yes' if op['supported'][d] else 'no'}" for d in DISPLAY_ORDER)
        ),
        Text.assemble("  predicted device: ", (DEVICE_LABELS[op["device"]], STYLE[op["device"]])),
    ]
    for title, findings in (("reason", op["reasons"]), ("note", op["notes"])):
        for f in findings:
            r = RULES[f["rule"]]
            lines.append(Text.assemble(f"  {title} ", (r.id, "bold cyan"), f" {r.name}: {safe_text(f['message'])}"))
            if f["apple_message"]:
                lines.append(Text(f'    Apple\'s message: "{safe_text(f["apple_message"])}"'))
            lines += [
                Text(f"    why: {r.why or r.summary}"),
                Text(f"    source: {f['source']}"),
                Text(f"    confidence: {confidence_label(r.confidence)} · scope: {r.scope}"),
                Text(f"    fix: {f['fix']}", style="green"),
            ]
    return lines
