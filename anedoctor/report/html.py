"""Render a report dict as one self-contained interactive HTML page (no network, no CDN)."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib.resources import files

import jinja2

from ..cost.evidence import published_latencies
from ..hardware import DEVICE_LABELS, DISPLAY_ORDER
from ..rules import CONFIDENCE

_PLAIN = {str, int, bool, type(None)}


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
    tdir = files("anedoctor.report") / "templates"
    env.globals.update(css=(tdir / "report.css").read_text("utf-8"), js=(tdir / "report.js").read_text("utf-8"))
    return env.from_string((tdir / "report.html.j2").read_text("utf-8"))


def _pack(x):
    """JSON-ready copy: lists of same-keyed dicts become {"$k": keys, "$v": rows} (a 10k-op page
    shrinks by a third); NaN and infinities become strings."""
    if isinstance(x, dict):
        return {k: _pack(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        if len(x) > 1 and isinstance(x[0], dict) and all(isinstance(d, dict) and d.keys() == x[0].keys() for d in x):
            keys = list(x[0])
            return {
                "$k": keys,
                "$v": [[v if type(v) in _PLAIN else _pack(v) for v in map(d.__getitem__, keys)] for d in x],
            }
        return [_pack(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def _payload(report: dict) -> str:
    """JSON for the page: reasons/notes pooled (ops repeat the same few), safe inside <script>."""
    pool: dict[str, int] = {}

    def ref(items):
        return [pool.setdefault(json.dumps(r, sort_keys=True), len(pool)) for r in items or ()]

    ops = [{**op, "reasons": ref(op.get("reasons")), "notes": ref(op.get("notes"))} for op in report.get("ops", ())]
    data = {**report, "ops": ops, "_pool": [json.loads(k) for k in pool], "_conf": CONFIDENCE}
    text = json.dumps(
        _pack(data),
        separators=(",", ":"),
        allow_nan=False,
        default=lambda o: o.item() if hasattr(o, "item") else str(o),
    )
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _bars(report: dict) -> list[dict]:
    """Ops and FLOPs share per device, for the server-rendered mapping bars."""
    ops = report.get("ops") or []
    summary = report.get("summary") or {}
    n = {d: summary.get(d, sum(o.get("device") == d for o in ops)) for d in DISPLAY_ORDER}
    f = {d: sum(o.get("flops") or 0 for o in ops if o.get("device") == d) for d in DISPLAY_ORDER}
    bars = []
    for label, vals, fmt in (("Ops", n, "{:,}"), ("FLOPs", f, None)):
        total = sum(vals.values())
        if total:
            bars.append(
                {
                    "label": label,
                    "parts": [
                        {
                            "device": d,
                            "value": vals[d],
                            "pct": 100 * vals[d] / total,
                            "text": fmt.format(vals[d]) if fmt else human(vals[d]),
                        }
                        for d in DISPLAY_ORDER
                        if vals[d]
                    ],
                }
            )
    return bars


def human(n: float | int | None) -> str:
    """1234567 -> '1.23 M'."""
    if n is None:
        return "–"
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:g}"


def render_html(report: dict) -> str:
    """Turn a JSON report dict (schema 1.x) into one self-contained HTML page."""
    ops = report.get("ops") or []
    summary = {
        "ops": len(ops),
        **{d: sum(o.get("device") == d for o in ops) for d in DISPLAY_ORDER},
        "segments": len(report.get("segments") or []),
        "switches": len(report.get("switches") or []),
        **(report.get("summary") or {}),
    }
    causes = sorted(report.get("causes") or [], key=lambda c: (-(c.get("flops") or 0), -(c.get("switches") or 0)))
    return _template().render(
        r=report,
        model=report.get("model") or {},
        summary=summary,
        causes=causes,
        bars=_bars(report),
        devices=DISPLAY_ORDER,
        labels=DEVICE_LABELS,
        confidence=CONFIDENCE,
        human=human,
        published_latencies=published_latencies,
        payload=_payload(report),
    )
