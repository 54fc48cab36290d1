"""A small self-contained HTML page (no network) for measurement outputs: tables and an inline SVG plot."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

# Okabe-Ito colours (colour-blind safe) plus a dash pattern per series, so lines differ without colour too.
SERIES_STYLE = {
    "ane": ("#0072B2", ""),
    "gpu": ("#E69F00", "6 3"),
    "cpu": ("#009E73", "2 3"),
    "combined": ("#555555", "10 3 2 3"),
}
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;max-width:70em;color:#111;background:#fff}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}
th{background:#eee}td:first-child,th:first-child,td.text{text-align:left}.na{color:#888;font-style:italic}
.note{color:#444}svg text{font:12px system-ui,sans-serif;fill:currentColor}
@media (prefers-color-scheme:dark){body{background:#111;color:#eee}th{background:#333}td,th{border-color:#555}
.note{color:#bbb}}
"""


def cell(value: Any, digits: int = 1) -> str:
    """One table cell; None is shown as 'not measured', never as 0."""
    if value is None:
        return '<td class="na">not measured</td>'
    if isinstance(value, float):
        return f"<td>{value:,.{digits}f}</td>"
    if isinstance(value, str):
        return f'<td class="text">{escape(value)}</td>'
    return f"<td>{escape(str(value))}</td>"


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]], caption: str = "") -> str:
    head = "".join(f"<th scope=col>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def line_plot(
    xs: list[float],
    series: dict[str, list[float | None]],
    x_label: str,
    y_label: str,
    width: int = 720,
    height: int = 260,
) -> str:
    """Inline SVG line plot; a None value breaks the line (a gap, not a drop to zero)."""
    left, bottom, top, right = 60, 40, 15, 110
    values = [v for ys in series.values() for v in ys if v is not None]
    if not xs or not values:
        return '<p class="na">nothing to plot: no sample reported a power value</p>'
    x0, x1 = min(xs), max(xs)
    y1 = max(values) or 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right) if x1 > x0 else left

    def sy(y: float) -> float:
        return height - bottom - y / y1 * (height - bottom - top)

    mid_y = (height - bottom + top) / 2
    parts = [
        (
            f'<svg role="img" aria-label="{escape(y_label)} over {escape(x_label)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" stroke-linejoin="round">'
        ),
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{y1:,.0f}</text>',
        f'<text x="{left - 6}" y="{height - bottom + 4}" text-anchor="end">0</text>',
        f'<text x="{left}" y="{height - 12}">{x0:,.0f}</text>',
        f'<text x="{width - right}" y="{height - 12}" text-anchor="end">{x1:,.0f} {escape(x_label)}</text>',
        (f'<text x="12" y="{mid_y}" transform="rotate(-90 12 {mid_y})" text-anchor="middle">{escape(y_label)}</text>'),
    ]
    for i, (name, ys) in enumerate(series.items()):
        colour, dash = SERIES_STYLE.get(name, ("#CC79A7", "1 2"))
        runs, run = [], []
        for x, y in zip(xs, ys):
            if y is None:
                runs, run = runs + [run] if run else runs, []
            else:
                run.append(f"{sx(x):.1f},{sy(y):.1f}")
        runs += [run] if run else []
        for pts in runs:
            if len(pts) == 1:
                cx, cy = pts[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
            else:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" '
                    f'points="{" ".join(pts)}"/>'
                )
        ly = top + 10 + 18 * i
        parts.append(
            f'<line x1="{width - right + 10}" y1="{ly}" x2="{width - right + 40}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="{dash}"/><text x="{width - right + 45}" y="{ly + 4}">'
            f"{escape(name.upper())}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
        f"<body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )
