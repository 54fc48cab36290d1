"""``anedoctor.estimate``: how long one inference takes on a chip, where the time goes, what it costs in energy.

An :class:`Estimate` wraps the placement :func:`anedoctor.check` predicts and the latency breakdown of
:mod:`anedoctor.cost.latency`: whole-model latency (like the "Prediction" median of Xcode's performance
report), per op (time and bound), per segment (ops + launch) and per device switch, energy per device,
and optionally the same for the four compute-unit settings side by side. It is an estimate from a
model of the hardware, calibrated on published latencies (bench/calibrate.py), not a measurement; with a
measured profile (``profile=``, ``--profile``) its op times and launches are rescaled by the profile's measured
latency scales, and the report says so (``calibrated_by``).
"""

from __future__ import annotations

import copy
import html
import json
from pathlib import Path
from typing import Any, Callable

from .api import check, load
from .cost.evidence import chip_evidence, evidence_line, model_features, nearest_line, nearest_published
from .cost.fitted import FITTED
from .cost.latency import dispatch_ms
from .errors import ModelError
from .hardware import CHIPS, COMPUTE_UNITS, DEVICE_LABELS, ENERGY_LABELS, IOS_TO_MACOS, Chip
from .ir import Model
from .report import Report
from .report.terminal import functions_text
from .util import write_atomic

DEVICE_COLOURS = {"ane": "#0072b2", "gpu": "#e69f00", "cpu": "#999999", "switch": "#d55e00"}
TOP_OPS = 10
FUNCTIONS_NOTE = "a prediction runs one; the figures here are the default's, --function picks another"


class Estimate:
    """The latency estimate of one model for one chip, OS and compute-unit setting."""

    def __init__(
        self, report: Report, compare: dict[str, Report] | None = None, shapes: list[dict[str, Any]] | None = None
    ):
        self.report = report
        self.breakdown = report.latency
        self.compare = compare or {}
        self.shapes = shapes or []  # with each_shape: latency at each enumerated shape (estimate_each_shape)

    @property
    def latency_ms(self) -> float:
        return self.breakdown.latency_ms

    @property
    def energy_mj(self) -> dict[str, float]:
        return dict(self.breakdown.energy_mj)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: totals, segments, switches, top ops, time per op type and device, time per bound,
        compute-unit comparison, each function of a multi-function model, the report's notes."""
        r, b = self.report, self.breakdown
        ops = r.prediction_placements()
        total = b.latency_ms or 1.0
        bounds: dict[str, float] = {}
        by_type: dict[tuple[str, str], list] = {}  # (op type, device) -> [ops, ms, fused ops]
        for p in ops:
            bounds[p.bound] = bounds.get(p.bound, 0.0) + p.time_ms
            group = by_type.setdefault((p.op.type, p.device), [0, 0.0, 0])
            group[0] += 1
            group[1] += p.time_ms
            group[2] += p.bound == "fused"
        top = sorted(range(len(ops)), key=lambda i: -ops[i].time_ms)[:TOP_OPS]
        return {
            "kind": "estimate",
            "model": r.model.path,
            "chip": r.target.chip.id,
            "chip_name": r.target.chip.name,
            "os": r.target.os.id,
            "compute_units": r.compute_units,
            "notes": list(r.notes),
            "latency_ms": round(b.latency_ms, 4),
            "functions": r.function_summaries(),
            "shapes": self.shapes,
            "device_ms": {d: round(v, 4) for d, v in b.device_ms.items()},
            "energy_mj": {d: round(v, 4) for d, v in b.energy_mj.items()},
            "energy_note": ENERGY_NOTE,
            "bounds_ms": {k: round(v, 4) for k, v in sorted(bounds.items(), key=lambda kv: -kv[1])},
            "segments": [
                {
                    "index": i,
                    "part": s.part,
                    "device": s.device,
                    "start": s.start,
                    "end": s.end,
                    "ops": s.end - s.start + 1,
                    "ops_ms": round(s.ops_ms, 4),
                    "launch_ms": round(s.launch_ms, 4),
                    "first": ops[s.start].op.name,
                    "last": ops[s.end].op.name,
                }
                for i, s in enumerate(b.segments)
            ],
            "switches": [
                {
                    "after": s.after,
                    "before": s.before,
                    "from": s.src,
                    "to": s.dst,
                    "ms": round(s.ms, 4),
                    "bytes": s.bytes,
                }
                for s in b.switches
            ],
            "top_ops": [
                {
                    "index": i,
                    "name": ops[i].op.name,
                    "type": ops[i].op.type,
                    "device": ops[i].device,
                    "time_ms": round(ops[i].time_ms, 4),
                    "bound": ops[i].bound,
                    "share": round(ops[i].time_ms / total, 4),
                    "notes": [f.rule.id for f in ops[i].notes if f.rule.level == "op"],
                }
                for i in top
            ],
            "op_types": [
                {
                    "type": t,
                    "device": dev,
                    "ops": n,
                    "fused": fused,
                    "time_ms": round(ms, 4),
                    "share": round(ms / total, 4),
                }
                for (t, dev), (n, ms, fused) in sorted(by_type.items(), key=lambda kv: -kv[1][1])[:TOP_OPS]
            ],
            "compare": [
                {
                    "compute_units": cu,
                    "latency_ms": round(rep.latency.latency_ms, 4),
                    "energy_mj": round(rep.latency.energy_total_mj, 4),
                    **{d: rep.summary[d] for d in ("ane", "gpu", "cpu")},
                    "segments": len(rep.latency.segments),
                }
                for cu, rep in self.compare.items()
            ],
            "assumptions": chip_assumptions(r.target.chip),
            "chip_evidence": chip_evidence(r.target.chip),
            "nearest_published": nearest_published(model_features(ops), r.target.chip),
            "calibration": FITTED.get("fit"),
            "calibrated_by": self.report.calibrated_by(),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        if path is not None and str(path) != "-":
            write_atomic(Path(path), text)
        return text

    def render(self, width: int | None = None) -> str:
        """Plain-text rendering: totals, the compute-unit table, segments with switch costs, time per op type, top
        ops."""
        d = self.to_dict()
        lines = [
            f"anedoctor estimate · {Path(d['model']).name} · {d['chip_name']} · {d['os']} · "
            f"compute units {d['compute_units']}",
            "ESTIMATE — from a model of the hardware calibrated on published latencies, not a measurement",
            evidence_line(d["chip_name"], d["chip_evidence"]),
            *filter(None, [nearest_line(self.report.target.chip, d["nearest_published"])]),
            *self._profile_lines(d["calibrated_by"]),
            *(f"note: {note}" for note in d["notes"]),
            f"latency {d['latency_ms']:.3f} ms per inference  ("
            + ", ".join(f"{DEVICE_LABELS[k]} {v:.3f} ms" for k, v in d["device_ms"].items() if v)
            + ")",
            "energy ~"
            + f"{sum(d['energy_mj'].values()):.3f} mJ  ("
            + ", ".join(f"{ENERGY_LABELS[k]} {v:.3f}" for k, v in d["energy_mj"].items())
            + f")  {ENERGY_NOTE}",
            "time by bound: " + ", ".join(f"{k} {v:.3f} ms" for k, v in d["bounds_ms"].items() if v),
        ]
        if d["shapes"]:
            lines.append(
                f"at each enumerated shape of {d['shapes'][0]['input']}: "
                + ", ".join(
                    f"{x['shape']} {x['latency_ms']:.3f} ms ({100 * x['ane_fraction']:.0f}% ANE)"
                    + (" (default)" if x["default"] else "")
                    for x in d["shapes"]
                )
            )
        if d["functions"]:
            lines.append(f"functions ({FUNCTIONS_NOTE}): {functions_text(d['functions'])}")
        if d["compare"]:
            lines += [
                "",
                f"{'compute units':<14}{'latency ms':>11}{'energy mJ':>11}{'ANE':>6}{'GPU':>6}{'CPU':>6}"
                f"{'segments':>10}",
            ]
            lines += [
                f"{c['compute_units']:<14}{c['latency_ms']:>11.3f}{c['energy_mj']:>11.3f}{c['ane']:>6}"
                f"{c['gpu']:>6}{c['cpu']:>6}{c['segments']:>10}"
                for c in d["compare"]
            ]
        lines += ["", "segments (ops time + launch) and switches:"]
        switch_after = {s["after"]: s for s in d["switches"]}
        staged = len({s["part"] for s in d["segments"]}) > 1  # a pipeline: say which stage each segment is in
        for s in d["segments"][:40]:
            lines.append(
                f"  {s['index']:>3} {s['part'] + ': ' if staged else ''}{DEVICE_LABELS[s['device']]:<13} "
                f"ops {s['start']}-{s['end']} ({s['ops']})"
                f"  {s['ops_ms']:.3f} + {s['launch_ms']:.3f} ms   {s['first']} .. {s['last']}"
            )
            sw = switch_after.get(s["end"])
            if sw:
                lines.append(
                    f"      switch {sw['from']}->{sw['to']}  {sw['ms']:.3f} ms ({sw['bytes'] / 1e6:.2f} MB copied)"
                )
        if len(d["segments"]) > 40:
            lines.append(f"  ... {len(d['segments']) - 40} more segments")
        lines += ["", "time by op type:"]
        lines += [
            f"  {o['time_ms']:10.4f} ms {100 * o['share']:5.1f}%  {o['device']:<4} {o['type']:<14} {o['ops']} ops"
            + (f" ({o['fused']} fused into the op before)" if o["fused"] else "")
            for o in d["op_types"]
        ]
        lines += ["", f"top {len(d['top_ops'])} ops by time:"]
        lines += [
            f"  {o['time_ms']:8.4f} ms {100 * o['share']:5.1f}%  {o['device']:<4} {o['bound']:<12} "
            f"{o['type']:<14} {o['name']}" + (f"  [{', '.join(o['notes'])}]" if o["notes"] else "")
            for o in d["top_ops"]
        ]
        return "\n".join(line[:width] if width else line for line in lines)

    def _profile_lines(self, calibrated: dict[str, Any] | None) -> list[str]:
        if calibrated is not None:
            parts = []
            if calibrated["latency_scale"] or calibrated["class_latency_scale"]:
                factors = ", ".join(f"{DEVICE_LABELS[k]} x{v:g}" for k, v in calibrated["latency_scale"].items())
                classes = " (and per cost class where probed)" if calibrated["class_latency_scale"] else ""
                parts.append(
                    f"op times and launches x its measured latency scale, {factors or 'per cost class'}{classes}"
                )
            if calibrated["ane_pass_us"] is not None:
                parts.append(f"an ANE pass costs its measured {calibrated['ane_pass_us']:g} us")
            return [
                f"CALIBRATED by the measured profile {Path(calibrated['profile']).name} ({calibrated['measured_on']}): "
                + "; ".join(parts)
            ]
        if self.report.profile is not None:
            return [
                f"profile {Path(self.report.profile.path).name} calibrates placement only: it has no latency scale "
                "(re-ingest its measurements with the manifest of `anedoctor probes build`)"
            ]
        return []

    def timeline_svg(self) -> str:
        """A waterfall of segments (launch hatched) and switches, to scale, as inline SVG."""
        d, x, bars = self.to_dict(), 0.0, []
        total = d["latency_ms"] or 1.0
        switch_after = {s["after"]: s for s in d["switches"]}
        for s in d["segments"]:
            bars.append(
                (
                    s["device"],
                    s["launch_ms"] + s["ops_ms"],
                    f"{DEVICE_LABELS[s['device']]} ops {s['start']}-"
                    f"{s['end']}: {s['ops_ms']:.3f} ms + launch {s['launch_ms']:.3f} ms",
                )
            )
            sw = switch_after.get(s["end"])
            if sw:
                bars.append(("switch", sw["ms"], f"switch {sw['from']}->{sw['to']}: {sw['ms']:.3f} ms"))
        rows, width = [], 900
        for i, (kind, ms, label) in enumerate(bars[:200]):
            w = max(ms / total * width, 0.5)
            rows.append(
                f'<rect x="{x / total * width:.1f}" y="{4 + 14 * i}" width="{w:.1f}" height="12" '
                f'fill="{DEVICE_COLOURS[kind]}"><title>{html.escape(label)}</title></rect>'
            )
            x += ms
        height = 8 + 14 * min(len(bars), 200)
        return (
            f'<svg role="img" aria-label="latency waterfall" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">' + "".join(rows) + "</svg>"
        )

    def to_html(self, path: str | Path | None = None) -> str:
        """The check report's HTML page with latency panels (waterfall and segment table, time per op type) added;
        written atomically to ``path`` when given."""
        d = self.to_dict()
        calibrated = (
            f"; calibrated by the profile {Path(d['calibrated_by']['profile']).name}" if d["calibrated_by"] else ""
        )
        panels = []
        if d["compare"]:
            panels.append({"title": "Compute units side by side (estimate)", "rows": d["compare"]})
        if d["functions"]:
            panels.append({"title": f"Functions ({FUNCTIONS_NOTE})", "rows": d["functions"]})
        if d["shapes"]:
            panels.append({"title": "Each enumerated shape (estimate)", "rows": d["shapes"]})
        panels.append(
            {
                "title": f"Latency estimate: {d['latency_ms']:.3f} ms per inference ({d['chip_name']}, "
                f"{d['compute_units']}{calibrated}); energy ~{sum(d['energy_mj'].values()):.3f} mJ (estimate)",
                "html": "".join(
                    f"<p>{html.escape(line)}</p>"
                    for line in (
                        evidence_line(d["chip_name"], d["chip_evidence"]),
                        nearest_line(self.report.target.chip, d["nearest_published"]),
                    )
                    if line
                )
                + self.timeline_svg(),
                "rows": [
                    {
                        "segment": s["index"],
                        "device": DEVICE_LABELS[s["device"]],
                        "ops": s["ops"],
                        "ops ms": s["ops_ms"],
                        "launch ms": s["launch_ms"],
                    }
                    for s in d["segments"]
                ],
            }
        )
        panels.append(
            {
                "title": "Time by op type and device (estimate)",
                "rows": [
                    {
                        "op type": o["type"],
                        "device": DEVICE_LABELS[o["device"]],
                        "ops": o["ops"],
                        "fused": o["fused"],
                        "ms": o["time_ms"],
                        "share %": round(100 * o["share"], 1),
                    }
                    for o in d["op_types"]
                ],
            }
        )
        page = copy.copy(self.report)  # the report itself keeps its panels
        page.panels = [*self.report.panels, *panels]
        return page.to_html(path)

    def __repr__(self) -> str:
        return f"<Estimate {self.latency_ms:.3f} ms on {self.report.target.chip.id} ({self.report.compute_units})>"


ENERGY_NOTE = (
    "(estimate: ANE from pJ/MAC, its DRAM traffic from pJ/byte; CPU/GPU from an assumed active power, not a "
    "published per-inference figure)"
)


def chip_assumptions(chip: Chip) -> dict[str, Any]:
    """What the estimate assumes for a chip (the figures `anedoctor chips` lists)."""
    k = FITTED["constants"]
    return {
        "id": chip.id,
        "name": chip.name,
        "ane_arch": chip.ane_arch,
        "ane_cores": chip.ane_cores,
        "ane_fp16_tflops": chip.fp16_tflops,
        "ane_ghz": round(chip.ane_ghz, 3),
        "ane_weight_gbps": chip.ane_weight_gbps,
        "ane_weight_gbps_source": "measured" if chip.weight_bw_measured else "derived",
        "soc_gbps": chip.dram_gbps,
        "cpu_cores": f"{chip.cpu_p_cores}P+{chip.cpu_e_cores}E",
        "cpu_gflops": round(chip.cpu_gflops, 1),
        "cpu_matrix_gflops": round(chip.cpu_matrix_gflops, 1),
        "gpu_cores": chip.gpu_cores,
        "gpu_tflops": chip.gpu_tflops,
        "ane_dispatch_ms": round(dispatch_ms(chip, k), 4),
        "first_os": first_os(chip),
        "published_latencies": (chip_evidence(chip) or {}).get("cases", 0),
    }


def first_os(chip: Chip) -> str:
    """The OS the chip shipped with: the oldest ``--os`` anedoctor accepts for it."""
    return (
        f"macos{IOS_TO_MACOS.get(chip.launch_os, chip.launch_os)}"
        if chip.platform == "macos"
        else f"ios{chip.launch_os}"
    )


def chips_table() -> list[dict[str, Any]]:
    return [chip_assumptions(c) for c in CHIPS.values()]


def estimate(
    source: Any,
    chip: str | None = None,
    os: str | None = None,
    compute_units: str = "all",
    compare_compute_units: bool = False,
    example_inputs: Any = None,
    profile: Any = None,
    function: str | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    each_shape: bool = False,
) -> Estimate:
    """Estimate the latency (and energy) of one inference of a model on a chip.

    ``source`` is anything :func:`anedoctor.check` takes. With ``compare_compute_units`` the four
    settings (all, cpu_and_ne, cpu_and_gpu, cpu_only) are estimated too (``Estimate.compare``).
    ``profile`` is a measured profile, ``function`` one function of a multi-function program and ``input_shapes``
    the shapes of flexible inputs to time at, as for :func:`anedoctor.check`. With ``each_shape`` a model path
    whose input has enumerated shapes is also timed at every one of them (``Estimate.shapes``)."""
    if profile is not None:
        from .measure.profile import as_profile  # read once for every compute-unit setting

        profile = as_profile(profile)
    if each_shape and isinstance(source, Model):
        raise ModelError("each_shape needs the model as a path: each shape is sized on a fresh load")

    def fresh() -> Model:
        return load(source, example_inputs).only(function)

    model = fresh()
    settings = {"chip": chip, "os": os, "profile": profile, "input_shapes": input_shapes}
    report = check(model, compute_units=compute_units, **settings)
    compare = {}
    if compare_compute_units:
        for cu in COMPUTE_UNITS:
            compare[cu] = report if cu == compute_units else check(model, compute_units=cu, **settings)
    shapes = estimate_each_shape(report, fresh, settings) if each_shape else []
    return Estimate(report, compare, shapes)


def estimate_each_shape(report: Report, reload: Callable[[], Model], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Latency and ANE share at each enumerated shape of the model's one enumerated input: ``report`` at the shape it
    was sized at, the others each on a fresh load from ``reload()`` (sizing a model re-types its values in place)."""
    model = report.model
    graph = model.graphs[0] if model.graphs else None
    enumerated = [s for s in graph.input_specs if s.flexibility == "enumerated"] if graph is not None else []
    if len(enumerated) != 1:
        raise ModelError(
            f"{model.path}: --each-shape times the enumerated shapes of one input; this model has "
            f"{len(enumerated) or 'no'} input{'s' if len(enumerated) != 1 else ''} with enumerated shapes"
        )
    spec, rows = enumerated[0], []
    sized_at = tuple((settings["input_shapes"] or {}).get(spec.name, spec.default_shape))
    for shape in spec.enumerated_shapes:
        r = report
        if tuple(shape) != sized_at:
            r = check(reload(), compute_units=report.compute_units, **{**settings, "input_shapes": {spec.name: shape}})
        rows.append(
            {
                "input": spec.name,
                "shape": "x".join(map(str, shape)),
                "default": tuple(shape) == spec.default_shape,
                "ane_fraction": round(r.summary["ane_fraction"], 4),
                "latency_ms": round(r.latency.latency_ms, 4),
                "energy_mj": round(r.latency.energy_total_mj, 4),
            }
        )
    return rows
