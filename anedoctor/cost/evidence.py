"""What the latency estimate was checked against: the published latencies ``bench/calibrate.py`` fitted and tested
the model on, per chip (:func:`chip_evidence`) and per case (:func:`nearest_published`: the published models most
like a given one, with how far the estimate was from each).

A case's features (:func:`model_features`) are read from its placed ops: multiply-accumulates, weight bytes, op
count, the share of the MACs in convs and the share placed on the Neural Engine. They say what kind of work a model
is, not how fast it runs, so a user's model can be set beside the published ones it resembles.
"""

from __future__ import annotations

import json
import math
import statistics
from functools import cache
from pathlib import Path
from typing import Any

from ..hardware import Chip
from .latency import mac_kind, weight_bytes

NEAREST = 2  # published cases listed beside an estimate
NEAR = 1.0  # a case on the user's chip this close (a decade of MACs) is listed before nearer ones on other chips
# feature -> (scale, value): on a log scale with that floor (MACs, weights and ops span decades), or a share in 0..1
# weighted by that value (the ANE share counts twice: a model on the CPU runs nothing like one on the Neural Engine)
FEATURES = {
    "gmac": ("log", 1e-3),
    "weight_mb": ("log", 1e-2),
    "ops": ("log", 1.0),
    "conv_share": ("share", 1.0),
    "ane_share": ("share", 2.0),
}


def factor(ratio: float) -> float:
    """How far off an estimate is, as a factor >= 1 (0.5x and 2x are both 2)."""
    return math.exp(abs(math.log(ratio)))


def chip_evidence(chip: Chip) -> dict[str, Any] | None:
    """How the fitted model does on the chip's published latencies (:func:`published_cases`, fit and holdout alike):
    case count, median and worst error; None when no published latency was measured on it."""
    errors = [factor(c["estimated_ms"] / c["published_ms"]) for c in published_cases().values() if c["chip"] == chip.id]
    if not errors:
        return None
    return {
        "cases": len(errors),
        "median_error": round(statistics.median(errors), 2),
        "worst_error": round(max(errors), 2),
    }


def published_latencies(count: int) -> str:
    """'1 published latency', '15 published latencies': the size of a chip's evidence, as every report words it."""
    return f"{count} published {'latency' if count == 1 else 'latencies'}"


def evidence_line(chip_name: str, evidence: dict[str, Any] | None) -> str:
    """One line on how far the estimate has been checked on this chip."""
    if not evidence:
        return (
            f"no published latency was measured on the {chip_name}: its estimate rests on the chip's specs and on "
            "constants fitted on other chips"
        )
    return (
        f"checked on the {chip_name} against {published_latencies(evidence['cases'])}: median error "
        f"{evidence['median_error']:.2f}x, worst {evidence['worst_error']:.2f}x (bench/bench_latency.py)"
    )


def model_features(placements) -> dict[str, float]:
    """What kind of work a placed model is (the features :func:`nearest_published` compares): GMACs, MB of weights
    (as stored), ops, the share of its MACs in convs and the share of its MACs (of its ops, without MACs) placed on
    the Neural Engine."""
    macs = sum(p.flops for p in placements) / 2
    conv = sum(p.flops for p in placements if mac_kind(p.op) == "conv") / 2
    on_ane = (
        sum(p.flops for p in placements if p.device == "ane") / 2 / macs
        if macs
        else sum(p.device == "ane" for p in placements) / max(len(placements), 1)
    )
    return {
        "gmac": round(macs / 1e9, 4),
        "weight_mb": round(sum(weight_bytes(p.op) for p in placements) / 1e6, 3),
        "ops": len(placements),
        "conv_share": round(conv / macs, 3) if macs else 0.0,
        "ane_share": round(on_ane, 3),
    }


def feature_distance(a: dict[str, float], b: dict[str, float]) -> float:
    """How unlike two models' features are: decades apart on the log scales plus share differences."""
    total = 0.0
    for name, (scale, value) in FEATURES.items():
        if scale == "log":
            total += (math.log10(max(a[name], value)) - math.log10(max(b[name], value))) ** 2
        else:
            total += (value * (a[name] - b[name])) ** 2
    return math.sqrt(total)


@cache
def published_cases() -> dict[str, dict[str, Any]]:
    """Each published latency case (bench/calibrate.py writes published_cases.json beside fitted.py): chip, compute
    units, split, published and estimated ms and its model's features; {} when the file is missing."""
    path = Path(__file__).with_name("published_cases.json")
    return json.loads(path.read_text()) if path.exists() else {}


def nearest_published(features: dict[str, float], chip: Chip, count: int = NEAREST) -> list[dict[str, Any]]:
    """The published cases most like a model with these features, each with its published and estimated latency and
    their ratio: those measured on ``chip`` first when they are within :data:`NEAR` of it, then the nearest on any
    chip; [] before the first calibration."""
    ranked = sorted(published_cases().items(), key=lambda nc: feature_distance(features, nc[1]))
    here = [(n, c) for n, c in ranked if c["chip"] == chip.id and feature_distance(features, c) <= NEAR]
    return [
        {
            "case": name,
            "chip": c["chip"],
            "compute_units": c["compute_units"],
            "published_ms": c["published_ms"],
            "estimated_ms": c["estimated_ms"],
            "ratio": round(c["estimated_ms"] / c["published_ms"], 2),
            "distance": round(feature_distance(features, c), 3),
        }
        for name, c in (here + [nc for nc in ranked if nc not in here])[:count]
    ]


def nearest_line(chip: Chip, nearest: list[dict[str, Any]]) -> str:
    """One line naming the published cases most like the model (with their chip when it is not ``chip``) and how far
    the estimate was from each."""
    if not nearest:
        return ""
    cases = "; ".join(
        f"{n['case']}{'' if n['chip'] == chip.id else ' (' + n['chip'] + ')'} {n['published_ms']:g} ms published, "
        f"{n['estimated_ms']:.3g} estimated ({n['ratio']:.2f}x)"
        for n in nearest
    )
    return f"published models most like this one, by MACs, weights, ops and device mix: {cases}"
