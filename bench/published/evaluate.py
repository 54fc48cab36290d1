"""Predict each published case with anedoctor and lay the prediction beside the published figure.

Shared by bench/bench_latency.py and bench/bench_truth.py; ``rows`` returns plain dicts (one per
case) that the calibration script can read back from ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from anedoctor.cost.evidence import factor
from anedoctor.hardware import Chip

from .build import BuildError, build_cases
from .cases import Case, Outside, select, split


def share(counts: dict, device: str) -> float | None:
    total = sum(counts.get(d, 0) for d in ("ane", "gpu", "cpu"))
    return counts.get(device, 0) / total if total else None


def outside_units(outside: Outside) -> str:
    """The compute units anedoctor estimates the outside work under."""
    return "cpu_and_gpu" if outside.device == "gpu" else "cpu_only"


# Accelerate's SGEMM reached 2,626 GFLOP/s on an M1 Max's two P-clusters, 0.8 of their matrix coprocessors' fp32 peak
# (https://github.com/philipturner/amx-benchmarks README, R; anedoctor.hardware.AMX_FP32_FLOPS_PER_CYCLE), four
# P-cores to a cluster on the M1 and M2 families.
SGEMM_SHARE_OF_AMX_PEAK = 0.8
P_CORES_PER_CLUSTER = 4


def outside_ms(outside: Outside, chip: Chip, flops: float, estimate_ms: float) -> float:
    """ms of the work a published figure includes outside the Core ML model (cases.Outside): anedoctor's estimate
    ``estimate_ms`` on the GPU; on the CPU its ``flops`` at Accelerate's SGEMM rate on ``chip``."""
    if outside.device == "gpu":
        return estimate_ms
    clusters = max(1, chip.cpu_p_cores // P_CORES_PER_CLUSTER)
    return flops / (SGEMM_SHARE_OF_AMX_PEAK * chip.cpu_matrix_gflops * clusters * 1e6)


def predict(case: Case, path: Path, outside_path: Path | None = None) -> dict:
    """anedoctor's answer for the case's chip, OS and compute units, plus the case's outside work if any."""
    import anedoctor

    summary = anedoctor.check(str(path), chip=case.chip, os=case.os, compute_units=case.compute_units).summary
    counts = {d: summary.get(d, 0) for d in ("ane", "gpu", "cpu")}
    latency, extra = summary.get("latency_ms"), None
    if case.outside and latency:
        units = outside_units(case.outside)
        work = anedoctor.check(str(outside_path), chip=case.chip, os=case.os, compute_units=units)
        extra = outside_ms(case.outside, work.target.chip, work.summary["flops"], work.summary["latency_ms"])
        latency += extra
    return {
        "predicted_latency_ms": latency,
        "predicted_outside_ms": extra,
        "predicted_ops": counts,
        "predicted_ane_share": share(counts, "ane"),
        "predicted_gpu_share": share(counts, "gpu"),
    }


def row(case: Case, built: dict[str, Path | BuildError]) -> dict:
    """One case as a flat dict: what was published, under which conditions, and what anedoctor predicts."""
    result = {
        "name": case.name,
        "family": case.family,
        "model": case.model,
        "split": split(case),
        "chip": case.chip,
        "os": case.os,
        "compute_units": case.compute_units,
        "published_latency_ms": case.latency_ms,
        "published_ops": case.placement,
        "published_ops_are_shares": case.placement_is_share,
        "published_ane_share": share(case.placement, "ane") if case.placement else None,
        "published_gpu_share": share(case.placement, "gpu") if case.placement else None,
        "ane_figure": case.ane_figure,
        "source": case.source,
        "conditions": case.conditions,
        "confidence": case.confidence,
        "outside": case.outside.what if case.outside else None,
        "package": None,
        "error": None,
    }
    needed = [built[m] for m in case.models]
    failed = next((b for b in needed if isinstance(b, BuildError)), None)
    if failed is not None:
        result["error"] = f"build: {failed}"
        return result
    result["package"] = str(needed[0])
    try:
        result.update(predict(case, *needed))
    except Exception as e:  # one bad case must not stop the benchmark; say what happened
        result["error"] = f"check: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    ratio = None
    if result.get("predicted_latency_ms") and case.latency_ms:
        ratio = result["predicted_latency_ms"] / case.latency_ms
    result["ratio"] = ratio
    return result


def rows(cases: list[Case], force: bool = False, cached_only: bool = False, log=print) -> list[dict]:
    built = build_cases(cases, force, log, cached_only)
    return [row(c, built) for c in cases]


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--cases", help="comma-separated case names (default: every case of this benchmark)")
    p.add_argument(
        "--split",
        choices=("fit", "holdout", "all"),
        default="all",
        help="latency cases used to calibrate (fit) or to report the error (holdout)",
    )
    p.add_argument("--json", type=Path, help="write the rows to this JSON file")
    p.add_argument("--force", action="store_true", help="rebuild the models even if cached")
    p.add_argument("--cached", action="store_true", help="build nothing: skip the cases whose model is not built")
    return p


def chosen(args, keep) -> list[Case]:
    try:
        cases = select(args.cases, args.split)
    except KeyError as e:
        raise SystemExit(f"unknown case {e}; see bench/published/cases.py") from None
    return [c for c in cases if keep(c)]


def dump(path: Path | None, data: list[dict]) -> None:
    """Write the rows atomically (temporary file, then rename)."""
    if path is None:
        return
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(json.dumps(data, indent=1) + "\n")
    scratch.replace(path)
    print(f"rows written to {path}")


def latency_summary(ratios: list[float]) -> str:
    if not ratios:
        return "no predicted latencies (summary.latency_ms missing)"
    within = sum(abs(r - 1) <= 0.25 for r in ratios)
    return (
        f"n={len(ratios)}  median error {statistics.median(factor(r) for r in ratios):.2f}x  "
        f"median ratio {statistics.median(ratios):.2f}  within ±25%: {within}/{len(ratios)} "
        f"({100 * within / len(ratios):.0f}%)  max error {max(factor(r) for r in ratios):.2f}x"
    )
