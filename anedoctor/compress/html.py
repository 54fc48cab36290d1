"""Self-contained HTML pages for compress reports and sweeps (inline CSS and SVG, no scripts, no network)."""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Any

from .analysis import first_ops, op_kind

if TYPE_CHECKING:
    from .core import CompressReport
    from .sweep import SweepReport

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.front td{font-weight:600}
.muted{color:#777}svg text{font:12px system-ui,sans-serif}"""


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def table(headers: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    """An HTML table; numbers are right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers) if any(headers) else ""
    body = []
    for i, row in enumerate(rows):
        cls = f" class={classes[i]}" if classes and classes[i] else ""
        cells = "".join(f"<td{' class=n' if isinstance(c, (int, float)) else ''}>{cell(c)}</td>" for c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{''.join(body)}</table>"


def cell(value: Any) -> str:
    """A table cell's HTML: a list of placement changes folds into its first ops, opening to all of them."""
    if not isinstance(value, list):
        return escape(str(value))
    if len(value) <= 3:
        return escape(first_ops(value))
    every = first_ops(value, shown=len(value))
    return f"<details><summary>{escape(first_ops(value))}</summary>{escape(every)}</details>"


def db(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.1f} dB"


def compress_page(r: "CompressReport") -> str:
    lat_b, lat_a = r.latency
    facts = [
        ("recipe", r.recipe),
        ("target", r.target),
        ("source", r.source),
        ("output", r.output),
        ("weights", f"{r.size_before.weights:,} → {r.size_after.weights:,} bytes ({r.weight_ratio:.1%})"),
        ("package", f"{r.size_before.package:,} → {r.size_after.package:,} bytes"),
        (
            "Neural Engine share of ops",
            f"{r.summary_before.get('ane_fraction', 0):.0%} → {r.summary_after.get('ane_fraction', 0):.0%}",
        ),
        (
            "latency (estimate)",
            f"{lat_b:.3f} → {lat_a:.3f} ms" if lat_b is not None and lat_a is not None else "no estimate",
        ),
    ]
    body = [
        table([], [list(f) for f in facts]),
        f"<h2>Accuracy</h2><p class=muted>{escape(r.accuracy.inputs)}, "
        "reference executor, compressed against original</p>",
        table(
            ["output", "PSNR", "relative error"], [[o.name, db(o.psnr), f"{o.rel_err:.3g}"] for o in r.accuracy.outputs]
        ),
    ]
    for key, title in (("first_drift", "Error first exceeds 5% / 35 dB at"), ("largest_growth", "Error grows most at")):
        row = getattr(r.accuracy, key)
        if row:
            body.append(
                f"<p>{title} <b>{escape(row['op'])}</b> ({escape(op_kind(row))}): PSNR {db(row['psnr'])}, "
                f"its inputs {db(row['input_psnr'])}</p>"
            )
    body.append(
        "<h2>Compressed weights</h2>"
        + table(
            ["op", "type", "input", "format", "bits", "granularity", "compression rules"],
            [[f.op, f.type, f.input, f.format, f.bits, f.granularity, "; ".join(f.rules)] for f in r.formats],
        )
    )
    body.append(f"<h2>Placement changes</h2><p>{len(r.changes) or 'none'}{' ops, by kind' if r.changes else ''}</p>")
    if r.changes:
        body.append(
            table(
                ["ops", "before", "after", "why", "which"],
                [
                    [len(changed), before, after, "; ".join(why), changed]
                    for before, after, why, changed in r.change_groups()
                ],
            )
        )
    body += [f"<p class=muted>note: {escape(n)}</p>" for n in r.notes]
    return page(f"anedoctor compress · {r.recipe}", "\n".join(body))


def ticks(lo: float, hi: float) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    raw = (hi - lo) / 5 or 1
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    return [i * step for i in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def scatter(
    points: list[tuple[str, float, float, bool]], x_label: str, y_label: str, w: int = 720, h: int = 420
) -> str:
    """An inline SVG scatter plot; points are (label, x, y, on_front); the front is joined by a line."""
    left, right, top, bottom = 60, 20, 20, 50
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    x0, x1 = 0.0, max(xs + [1.0]) * 1.05
    y0, y1 = min(ys + [0.0]), max(ys + [1.0]) * 1.08

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def sy(y: float) -> float:
        return h - bottom - (y - y0) / ((y1 - y0) or 1) * (h - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#444"/>',
    ]
    for xv in ticks(x0, x1):
        parts.append(f'<text x="{sx(xv):.1f}" y="{h - bottom + 16}" text-anchor="middle">{xv:g}</text>')
    for yv in ticks(y0, y1):
        parts.append(f'<text x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:g}</text>')
    parts.append(f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(
        f'<text transform="translate(16 {(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">'
        f"{escape(y_label)}</text>"
    )
    front = sorted((p for p in points if p[3]), key=lambda p: p[1])
    if len(front) > 1:
        path = " ".join(f"{sx(p[1]):.1f},{sy(p[2]):.1f}" for p in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#d35400" stroke-dasharray="4 3"/>')
    for label, x, y, on_front in points:
        fill = "#d35400" if on_front else "#fff"
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{fill}" stroke="#d35400">'
            f"<title>{escape(label)}</title></circle>"
        )
        right_half = sx(x) > (left + w - right) / 2  # labels there go to the left of their point
        parts.append(
            f'<text x="{sx(x) + (-8 if right_half else 8):.1f}" y="{sy(y) + (-6 if on_front else 16):.1f}" '
            f'text-anchor="{"end" if right_half else "start"}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def sweep_page(s: "SweepReport") -> str:
    done = [r for r in s.rows if not r.skipped]
    cap = max([r.psnr for r in done if math.isfinite(r.psnr)] + [40.0]) + 10  # identical outputs drawn at the top
    points = [(r.recipe, 100 * r.weight_ratio, min(r.psnr, cap), r.pareto) for r in done]
    points.append(("original (identical outputs)", 100.0, cap, False))
    rows = [
        [
            r.recipe,
            r.weights,
            f"{r.weight_ratio:.0%}",
            f"{r.latency_ms:.3f} ms" if r.latency_ms is not None else "—",
            f"{r.ane_fraction:.0%}",
            db(r.psnr),
            f"{r.rel_err:.3g}",
            "*" if r.pareto else (r.skipped or ""),
        ]
        for r in [s.original] + s.rows
    ]
    classes = [""] + ["front" if r.pareto else "" for r in s.rows]
    body = (
        f"<p>{escape(s.source)} · {escape(s.target)}</p>"
        + scatter(points, "weight size, % of the original", "PSNR of the worst output (dB)")
        + "<p class=muted>Filled points: the Pareto front (no other recipe is smaller and more accurate"
        + (" and faster" if done and all(r.latency_ms is not None for r in done) else "; no latency estimate")
        + ").</p>"
        + table(
            ["recipe", "weight bytes", "size", "latency", "ANE share", "PSNR", "rel err", "front / skipped"],
            rows,
            classes,
        )
    )
    return page("anedoctor compress --sweep", body)
