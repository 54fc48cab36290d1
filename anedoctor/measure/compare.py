"""Hold a prediction against a measurement: per-op agreement, confusion matrix, what the rules got wrong.

Ops are matched by name (an op's name or one of its output names: MLComputePlan names ops by their
first output), then by a unique name prefix of the same type (converters append suffixes); ops a dump does
not name are matched by type, in execution order.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..hardware import DEVICE_LABELS, DISPLAY_ORDER
from ..loaders.files import checked_file, plain
from ..util import Exportable
from . import page
from .computeplan import load_report

LABELS = {**DEVICE_LABELS, None: "not reported"}


class Comparison(Exportable):
    """Result of :func:`compare`. ``rows`` has one entry per matched op; ``to_dict()`` is the JSON."""

    def __init__(self, prediction: dict[str, Any], measurement: dict[str, Any]):
        self.prediction, self.measurement = prediction, measurement
        self.rows, self.unmatched_predicted, self.unmatched_measured, self.matched_by = _match(
            prediction["ops"], measurement["ops"]
        )

    @property
    def confusion(self) -> dict[str, dict[str, int]]:
        """confusion[predicted][measured] = ops (devices ane/gpu/cpu)."""
        m = {p: {d: 0 for d in DISPLAY_ORDER} for p in DISPLAY_ORDER}
        for r in self.rows:
            if r["predicted"] in DISPLAY_ORDER and r["measured"] in DISPLAY_ORDER:
                m[r["predicted"]][r["measured"]] += 1
        return m

    @property
    def summary(self) -> dict[str, Any]:
        compared = [r for r in self.rows if r["measured"] in DISPLAY_ORDER]
        agree = sum(r["agree"] for r in compared)
        eligible = [r for r in self.rows if r["ane_supported_measured"] is not None]
        pred_s, meas_s = self.prediction.get("summary") or {}, self.measurement.get("summary") or {}
        return {
            "matched": len(self.rows),
            "compared": len(compared),
            "agree": agree,
            "agreement": agree / len(compared) if compared else None,
            "ane_eligibility_compared": len(eligible),
            "ane_eligibility_agree": sum(r["ane_supported_predicted"] == r["ane_supported_measured"] for r in eligible),
            "unmatched_predicted": len(self.unmatched_predicted),
            "unmatched_measured": len(self.unmatched_measured),
            "matched_by": dict(self.matched_by),
            "ane_fraction_predicted": _share(compared, "predicted"),
            "ane_fraction_measured": _share(compared, "measured"),
            "ane_cost_fraction_measured": meas_s.get("ane_cost_fraction"),
            "cost_rank_correlation": _spearman(
                [
                    (r["cost_share_predicted"], r["cost_measured"])
                    for r in self.rows
                    if r["cost_share_predicted"] is not None and r["cost_measured"] is not None
                ]
            ),
            "ane_flops_fraction_predicted": pred_s.get("ane_flops_fraction"),
        }

    @property
    def wrong(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["measured"] in DISPLAY_ORDER and not r["agree"]]

    def headline(self) -> str:
        """The whole-model line, as the README's agreement table states it."""
        s = self.summary
        if not s["compared"]:
            return "no op could be compared (no matched op has a measured device)"
        line = (
            f"device agreement {s['agree']} / {s['compared']} ops ({100 * s['agreement']:.1f}%) · ANE share of "
            f"ops predicted {100 * s['ane_fraction_predicted']:.1f}% vs measured "
            f"{100 * s['ane_fraction_measured']:.1f}%"
        )
        if s["ane_eligibility_compared"]:
            line += f" · ANE eligibility {s['ane_eligibility_agree']} / {s['ane_eligibility_compared']}"
        if s["cost_rank_correlation"] is not None:
            line += f" · per-op cost rank correlation {s['cost_rank_correlation']:.2f}"
        return line

    def to_dict(self) -> dict[str, Any]:
        def where(d: dict[str, Any]) -> dict[str, Any]:
            return {
                "kind": d.get("kind"),
                "model": (d.get("model") or {}).get("name"),
                "chip": d.get("chip"),
                "os": d.get("os"),
                "compute_units": d.get("compute_units"),
            }

        notes = []
        pcu, mcu = self.prediction.get("compute_units"), self.measurement.get("compute_units")
        if pcu and mcu and pcu != mcu:
            notes.append(f"compute units differ: predicted for {pcu}, measured with {mcu}")
        pchip, mchip = (self.prediction.get("chip") or {}).get("id"), (self.measurement.get("chip") or {}).get("id")
        if pchip and mchip and pchip != mchip:
            notes.append(f"chips differ: predicted for {pchip}, measured on {mchip} (predict with --chip {mchip})")
        if self.unmatched_predicted or self.unmatched_measured:
            notes.append(
                f"{len(self.unmatched_predicted)} predicted and {len(self.unmatched_measured)} measured op(s) "
                "had no counterpart (renamed, fused or split by the compiler)"
            )
        return {
            "schema_version": "1.0",
            "kind": "comparison",
            "prediction": where(self.prediction),
            "measurement": where(self.measurement),
            "headline": self.headline(),
            "summary": self.summary,
            "confusion": self.confusion,
            "ops": self.rows,
            "wrong": [r["index"] for r in self.wrong],
            "unmatched_predicted": self.unmatched_predicted,
            "unmatched_measured": self.unmatched_measured,
            "notes": notes,
        }

    def render(self) -> str:
        """Terminal text: the headline, the confusion matrix and every op the prediction got wrong."""
        lines = [
            self.headline(),
            "",
            "confusion (rows predicted, columns measured):",
            "            " + "".join(f"{LABELS[d]:>15}" for d in DISPLAY_ORDER),
        ]
        for p, row in self.confusion.items():
            lines.append(f"{LABELS[p]:>12}" + "".join(f"{row[d]:>15}" for d in DISPLAY_ORDER))
        if self.wrong:
            lines += ["", "wrong predictions:"]
            lines += [
                f"  {r['name']} ({r['type']}): predicted {LABELS[r['predicted']]}, measured "
                f"{LABELS[r['measured']]} — {r['why']}"
                for r in self.wrong
            ]
        lines += self.to_dict()["notes"]
        return "\n".join(lines)

    def html(self) -> str:
        d = self.to_dict()
        conf = [[LABELS[p]] + [row[m] for m in DISPLAY_ORDER] for p, row in d["confusion"].items()]
        wrong = [
            [
                r["name"],
                r["type"],
                LABELS[r["predicted"]],
                LABELS[r["measured"]],
                ", ".join(r["rules"]) or "none",
                r["why"],
            ]
            for r in self.wrong
        ]
        every = [
            [
                r["index"],
                r["name"],
                r["type"],
                LABELS[r["predicted"]],
                LABELS[r["measured"]],
                "yes" if r["agree"] else "no",
                _percent(r["cost_share_predicted"]),
                _percent(r["cost_measured"]),
            ]
            for r in self.rows
        ]
        body = (
            f"<p><strong>{page.escape(d['headline'])}</strong></p>"
            + page.table(["predicted \\ measured"] + [LABELS[m] for m in DISPLAY_ORDER], conf, "Confusion matrix")
            + (
                page.table(
                    ["op", "type", "predicted", "measured", "rules applied", "why"],
                    wrong,
                    "Where the prediction was wrong",
                )
                if wrong
                else "<p>Every compared op agrees.</p>"
            )
            + page.table(
                ["#", "op", "type", "predicted", "measured", "agree", "predicted cost share", "measured cost weight"],
                every,
                "Every matched op",
            )
            + "".join(f'<p class="note">{page.escape(n)}</p>' for n in d["notes"])
        )
        return page.page(f"Prediction vs measurement: {d['measurement']['model'] or ''}", body)

    def __repr__(self) -> str:
        return f"<anedoctor Comparison: {self.headline()}>"


def compare(prediction: Any, measurement: Any) -> Comparison:
    """Compare a prediction (report dict, Report, or JSON path) with a measurement (dict, JSON path, or an
    MLComputePlan dump)."""
    pred, meas = load_report(prediction, "prediction"), read_measurement(measurement)[0]
    if pred.get("kind") == "measurement":
        raise ModelError(
            f"{_label(prediction)}: is a measurement; compare needs a prediction first "
            "(anedoctor check MODEL --json pred.json)"
        )
    return Comparison(pred, meas)


MEASUREMENT_OBJECTS = ("model", "chip", "os", "coreml", "runs", "summary")  # top-level objects (each may be null)
OP_FIELDS = {
    "name": str,
    "type": str,
    "device": str,
    "supported": dict,
    "cost": float,
    "reasons": list,
    "outputs": list,
}
KINDS = {dict: (dict, "an object"), list: (list, "a list"), str: (str, "text"), float: ((int, float), "a number")}


def read_measurement(source: Any) -> tuple[dict[str, Any], str]:
    """A measurement (dict, JSON file or MLComputePlan dump) and the label its errors carry, its structure checked
    (compare and ingest read these fields): a file must be a regular one (a FIFO or device would block the read)."""
    if isinstance(source, (str, Path)):
        checked_file(Path(plain(source)), None, "json", "measurement")
    try:
        d = load_report(source, "measurement")
    except RecursionError:
        raise ModelError(f"{source}: the measurement nests deeper than Python can read") from None
    model = d.get("model")
    label = _label(source) if isinstance(source, (str, Path)) else str((model or {}).get("name", "the measurement"))
    if d.get("kind") != "measurement":
        raise ModelError(
            f"{label}: kind is {d.get('kind')!r}, expected 'measurement' (from anedoctor measure, or an "
            "MLComputePlan dump)"
        )
    for key in MEASUREMENT_OBJECTS:
        expect(d.get(key), dict, label, key)
    expect((model or {}).get("name"), str, label, "model.name")
    expect(d.get("compute_units"), str, label, "compute_units")
    ops = d.get("ops")
    if not isinstance(ops, list):
        raise ModelError(f"{label}: ops: expected the list of measured ops")
    for i, op in enumerate(ops):
        expect(op, dict, label, f"ops[{i}]")
        for key, kind in OP_FIELDS.items():
            expect(op.get(key), kind, label, f"ops[{i}].{key}")
        for key in ("reasons", "outputs"):
            for j, item in enumerate(op.get(key) or ()):
                expect(item, dict, label, f"ops[{i}].{key}[{j}]")
                expect(item.get("name" if key == "outputs" else "message"), str, label, f"ops[{i}].{key}[{j}]")
    for units, run in (d.get("runs") or {}).items():
        expect(run, dict, label, f"runs[{units!r}]")
        for key in ("predict_ms", "summary"):
            expect((run or {}).get(key), dict, label, f"runs[{units!r}].{key}")
    return d, label


def expect(value: Any, kind: type, label: str, where: str) -> None:
    """A one-line error naming the file and field when ``value`` is neither null nor a ``kind``."""
    types, words = KINDS[kind]
    if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
        raise ModelError(f"{label}: {where}: expected {words}, got {type(value).__name__}")


def _spearman(pairs: list[tuple[float, float]]) -> float | None:
    """Rank correlation of predicted and measured per-op cost, ties ranked by their mean (None below 3 ops
    or when one side is constant)."""
    import numpy as np

    if len(pairs) < 3:
        return None
    sides = [np.asarray(side, dtype=float) for side in zip(*pairs)]
    if any(np.ptp(side) == 0 for side in sides):
        return None

    def ranks(v):
        order = np.empty(len(v))
        order[np.argsort(v, kind="stable")] = np.arange(len(v))
        _, groups, counts = np.unique(v, return_inverse=True, return_counts=True)
        return (np.bincount(groups, weights=order) / counts)[groups]

    return round(float(np.corrcoef(ranks(sides[0]), ranks(sides[1]))[0, 1]), 4)


def _percent(fraction: float | None) -> str:
    return "not reported" if fraction is None else f"{fraction:.2%}"


def _label(source: Any) -> str:
    return str(source) if isinstance(source, (str, Path)) else "the report"


def _share(rows: list[dict[str, Any]], side: str) -> float:
    return sum(r[side] == "ane" for r in rows) / len(rows) if rows else 0.0


def _names(op: dict[str, Any]) -> list[str]:
    return [n for n in [op.get("name"), *(o.get("name") for o in op.get("outputs") or ())] if n]


def _match(pred_ops: list[dict], meas_ops: list[dict]):
    """Pairs (prediction op, measured op): by name first, then remaining ones by type in order."""
    by_name = {}
    for p in pred_ops:
        for n in _names(p):
            by_name.setdefault(n, p)
    pairs, used_pred, used_meas = [], set(), set()
    matched_by: dict[str, int] = defaultdict(int)
    for j, m in enumerate(meas_ops):
        p = by_name.get(m.get("name")) if m.get("name") else None
        if p is not None and id(p) not in used_pred:
            pairs.append((p, m))
            used_pred.add(id(p))
            used_meas.add(j)
            matched_by["name"] += 1
    for j, m in enumerate(meas_ops):  # converters append suffixes ('x_1_cast_fp16' -> 'x_1_cast_fp16_cast_uint16')
        if j in used_meas or not m.get("name"):
            continue
        found = [
            p
            for p in pred_ops
            if id(p) not in used_pred
            and p.get("type") == m.get("type")
            and any(n.startswith(m["name"] + "_") for n in _names(p))
        ]
        if len(found) == 1:
            pairs.append((found[0], m))
            used_pred.add(id(found[0]))
            used_meas.add(j)
            matched_by["name prefix"] += 1
    queues: dict[str, list[dict]] = defaultdict(list)
    for p in pred_ops:
        if id(p) not in used_pred:
            queues[p.get("type")].append(p)
    for j, m in enumerate(meas_ops):
        if j not in used_meas and not m.get("name") and queues.get(m.get("type")):
            pairs.append((queues[m["type"]].pop(0), m))
            used_pred.add(id(pairs[-1][0]))
            used_meas.add(j)
            matched_by["type and order"] += 1
    pairs.sort(key=lambda pm: pm[0].get("index", 0))
    total_cost = sum(_predicted_cost(p) or 0.0 for p, _ in pairs)
    rows = [_row(p, m, total_cost) for p, m in pairs]
    unmatched_p = [p.get("name") for p in pred_ops if id(p) not in used_pred]
    unmatched_m = [m.get("name") or m.get("type") for j, m in enumerate(meas_ops) if j not in used_meas]
    return rows, unmatched_p, unmatched_m, matched_by


def _predicted_cost(op: dict[str, Any]) -> float | None:
    return (op.get("cost_ms") or {}).get(op.get("device"))


def _row(p: dict[str, Any], m: dict[str, Any], total_cost: float) -> dict[str, Any]:
    rules = [r["rule"] for r in p.get("reasons") or ()]
    advisory = [r["rule"] for r in p.get("notes") or ()]
    pred_ane = (p.get("supported") or {}).get("ane")
    meas_ane = (m.get("supported") or {}).get("ane") if m.get("supported") else None
    cost = _predicted_cost(p)
    row = {
        "index": p.get("index"),
        "name": p.get("name"),
        "measured_name": m.get("name"),
        "type": p.get("type"),
        "predicted": p.get("device"),
        "measured": m.get("device"),
        "agree": p.get("device") == m.get("device"),
        "ane_supported_predicted": pred_ane,
        "ane_supported_measured": meas_ane,
        "rules": rules + advisory,
        "cost_share_predicted": None if cost is None or not total_cost else round(cost / total_cost, 6),
        "cost_measured": m.get("cost"),
        "coreml_reasons": [r.get("message") for r in m.get("reasons") or () if r.get("message")],
    }
    row["why"] = _why(row, rules) if m.get("device") in DISPLAY_ORDER and not row["agree"] else ""
    return row


def _why(row: dict[str, Any], rules: list[str]) -> str:
    """Which rule was (or was not) applied, in one sentence."""
    pred, meas = row["predicted"], row["measured"]
    said = f" Core ML said: {row['coreml_reasons'][0]!r}." if row["coreml_reasons"] else ""
    blocking = [r for r in rules if not r.startswith(("SEG-", "CU-"))]
    placement = [r for r in rules if r.startswith(("SEG-", "CU-"))]
    if meas == "ane" and blocking:
        return (
            f"rule(s) {', '.join(blocking)} kept it off the ANE, but Core ML ran it there: wrong or out of "
            "scope here." + said
        )
    if meas == "ane":
        return (
            "the segmenter kept it off the ANE"
            + (f" ({', '.join(placement)})" if placement else "")
            + " but Core ML's cost model put it there."
            + said
        )
    if pred == "ane" and row["ane_supported_measured"] is False:
        return "Core ML cannot run it on the ANE and no anedoctor rule fired: a missing rule." + said
    if pred == "ane":
        return (
            "ANE-eligible on both sides; Core ML's cost model preferred "
            f"{LABELS[meas]}: a placement (segmenter) miss, not an eligibility miss." + said
        )
    return (
        f"predicted {LABELS[pred]} ({', '.join(rules) or 'no rule'}), Core ML chose {LABELS[meas]}: "
        "the GPU/CPU split of the off-ANE ops." + said
    )
