"""Fit the latency model's free constants on the fit split of the published latencies; report the holdout.

Inputs: the latency cases of bench/published/cases.py (chip, OS, compute units, published ms, split),
their models as built by bench/published/build.py (those in the cache; --build builds the rest), or the rows that
``bench/bench_latency.py --json rows.json`` wrote (``--rows``). Every model is loaded and placed once
(placement does not depend on these constants); then the constants listed in FREE are fitted by
least squares on log(predicted / published) over the fit split only, within physical bounds (a prediction
includes the case's outside work, cases.Outside, as bench/bench_latency.py adds it). Chip
figures (peaks, bandwidths, clocks) are never fitted. The result is written to
anedoctor/cost/fitted.py (the one place fitted constants live) with what the fit achieved (on the fit and
holdout splits), each case's published and estimated latency with the features of its model to
anedoctor/cost/published_cases.json (reports read from it how far the estimate was checked on a chip and which
published cases are most like a user's model), and the error on the fit and holdout splits is printed.
With --bound it fits every case instead, weighing the worst first, and only prints: not a calibration (the holdout
is in it) but a test of the model's form, how close any setting of the constants can bring the worst case.
With --by-family it only prints too: each family's cases (cases.Case.family) predicted by constants fitted on every
other family's cases, fit and holdout alike, so that no figure of a model's family enters its prediction: the error
to expect on a model unlike any in the data (the split above keeps every family on both sides).

Run: python bench/calibrate.py [--rows rows.json] [--build] [--dry-run] [--bound | --by-family]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import pprint
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from published.build import package_path  # noqa: E402
from published.cases import BY_NAME  # noqa: E402
from published.evaluate import factor, outside_ms, outside_units  # noqa: E402

import anedoctor  # noqa: E402
from anedoctor.cost.evidence import model_features  # noqa: E402
from anedoctor.cost.latency import breakdown, constants  # noqa: E402
from anedoctor.placement import time_ops  # noqa: E402

FITTED_PY = Path(__file__).resolve().parent.parent / "anedoctor" / "cost" / "fitted.py"
CASES_JSON = FITTED_PY.with_name("published_cases.json")  # anedoctor.cost.evidence reads it
# name -> (lower, upper) physical bounds
FREE = {
    "ane_conv_efficiency": (0.1, 1.0),
    "ane_linear_efficiency": (0.1, 1.0),
    "ane_matmul_efficiency": (0.05, 1.0),
    "ane_pe_scale": (0.1, 4.0),
    "ane_activation_gbps": (5.0, 100.0),
    "ane_slc_speedup": (1.0, 20.0),
    "ane_dispatch_ms_ios": (0.01, 0.3),
    "cpu_mac_efficiency": (0.05, 1.0),
    "cpu_linear_efficiency": (0.02, 1.0),
    "gpu_mac_efficiency": (0.05, 1.0),
    "switch_ms": (0.01, 0.5),
    "cpu_select_ns": (0.0, 20.0),
    "ane_int8_speedup_before_a17": (1.0, 2.0),
    "ane_op_us": (0.0, 5.0),
}


def cases_from_rows(path: Path) -> list[dict]:
    rows = json.loads(path.read_text())
    return [r for r in rows if r.get("package") and r.get("published_latency_ms")]


def cases_from_cache(build: bool) -> list[dict]:
    """Cases whose model is in the build cache (or built now, with ``build``)."""
    from published.build import BuildError, build_cases
    from published.cases import LATENCY_CASES, split

    cases = [c for c in LATENCY_CASES if build or package_path(c.model).exists()]
    built = build_cases(cases)
    return [
        {
            "name": c.name,
            "split": split(c),
            "chip": c.chip,
            "os": c.os,
            "compute_units": c.compute_units,
            "published_latency_ms": c.latency_ms,
            "package": str(built[c.model]),
        }
        for c in cases
        if not any(isinstance(built[m], BuildError) for m in c.models)
    ]


def place(cases: list[dict]) -> list[tuple[dict, object]]:
    """Load each model once and place it for each of its cases; a case's outside work (cases.Outside) is placed
    too, under the compute units it ran on, and kept in the case as ``outside_report``."""
    loaded, placed = {}, []

    def placed_report(package: str, case: dict, units: str):
        loaded[package] = loaded.get(package) or anedoctor.load(package)
        return anedoctor.check(loaded[package], chip=case["chip"], os=case["os"], compute_units=units)

    for case in cases:
        outside = BY_NAME[case["name"]].outside
        try:
            report = placed_report(case["package"], case, case["compute_units"])
            if outside:
                case = {
                    **case,
                    "outside_report": placed_report(str(package_path(outside.model)), case, outside_units(outside)),
                }
        except Exception as e:  # one bad case must not stop the fit; say which
            print(f"  skipped {case['name']}: {type(e).__name__}: {str(e)[:120]}")
            continue
        placed.append((case, report))
    return placed


def timed(report, overrides: dict) -> float:
    """Whole-model latency of a placed report under the given constants."""
    parts: dict[str, list] = {}
    for p in report.placements:
        parts.setdefault(p.part, []).append(p)
    for placements in parts.values():
        time_ops(placements, report.target, overrides=overrides)
    return breakdown(report.placements, report.target, overrides).latency_ms


def predict(case: dict, report, overrides: dict) -> float:
    """The case's predicted latency under the given constants: its model's, plus its outside work's."""
    total = timed(report, overrides)
    work = case.get("outside_report")
    if work is not None:
        outside = BY_NAME[case["name"]].outside
        total += outside_ms(outside, work.target.chip, work.summary["flops"], timed(work, overrides))
    return total


def residuals(theta: np.ndarray, placed: list) -> np.ndarray:
    overrides = dict(zip(FREE, theta))
    return np.array([math.log(predict(c, r, overrides) / c["published_latency_ms"]) for c, r in placed])


def summary(ratios: list[float]) -> str:
    if not ratios:
        return "n=0"
    within = sum(abs(r - 1) <= 0.25 for r in ratios)
    return (
        f"n={len(ratios)}  median error {statistics.median(factor(r) for r in ratios):.2f}x  "
        f"within ±25%: {within}/{len(ratios)}  max error {max(factor(r) for r in ratios):.2f}x"
    )


def case_table(placed: list, predicted: list[tuple[dict, float]]) -> dict:
    """Each case's chip, compute units, split, published and estimated latency and the features of its model
    (anedoctor.cost.evidence.model_features), which reports use to name the published cases most like a model."""
    estimated = {c["name"]: ms for c, ms in predicted}
    return {
        c["name"]: {
            "chip": c["chip"],
            "compute_units": c["compute_units"],
            "split": c["split"],
            "published_ms": c["published_latency_ms"],
            "estimated_ms": round(estimated[c["name"]], 4),
            **model_features(r.prediction_placements()),
        }
        for c, r in placed
    }


def worst_first(theta: np.ndarray, placed: list) -> np.ndarray:
    """Residuals that grow with the cube of a case's error in units of 2x, so the cases beyond 2x dominate."""
    r = residuals(theta, placed)
    return r * (1 + (r / math.log(2)) ** 2)


def fit(placed: list, objective=residuals, loss: str = "soft_l1") -> dict:
    from scipy.optimize import least_squares

    start = constants()
    x0 = np.array([start[k] for k in FREE])
    lo, hi = np.array([b[0] for b in FREE.values()]), np.array([b[1] for b in FREE.values()])
    # the constants are written to 4 decimals: stop when a step moves them by less than that (scipy's default 1e-8
    # can take hours of 1 s evaluations on a flat stretch)
    result = least_squares(
        objective,
        np.clip(x0, lo, hi),
        bounds=(lo, hi),
        args=(placed,),
        loss=loss,
        f_scale=0.3,
        x_scale="jac",
        xtol=1e-4,
        ftol=1e-6,
    )
    print(f"least_squares: {result.nfev} evaluations, {result.message}")
    return {k: round(float(v), 4) for k, v in zip(FREE, result.x)}


def family(case: dict) -> str:
    return BY_NAME[case["name"]].family


_PLACED: list = []  # what a forked by_family worker fits on (inherited, not pickled)


def _fit_without(name: str) -> dict:
    return fit([(c, r) for c, r in _PLACED if family(c) != name])


def by_family(placed: list, workers: int = 2) -> list[tuple[dict, float]]:
    """Each case with its predicted / published latency under constants fitted on the other families' cases only
    (one fit per family, ``workers`` at a time in forked processes)."""
    names = sorted({family(c) for c, _ in placed})
    _PLACED[:] = placed
    try:
        if workers > 1:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                fitted = dict(zip(names, pool.map(_fit_without, names)))
        else:
            fitted = {name: _fit_without(name) for name in names}
    finally:
        _PLACED.clear()
    return [(c, predict(c, r, fitted[family(c)]) / c["published_latency_ms"]) for c, r in placed]


def write(fitted: dict, report: dict, table: dict) -> None:
    """The constants and the fit's summary to fitted.py, the case table to published_cases.json (a case a line)."""
    lines = ",\n".join(f" {json.dumps(name)}: {json.dumps(row)}" for name, row in table.items())
    scratch = CASES_JSON.with_name(".published_cases.json.tmp")
    scratch.write_text("{\n" + lines + "\n}\n")
    scratch.replace(CASES_JSON)
    text = FITTED_PY.read_text()
    head = text[: text.index("FITTED = ")]
    values = {**constants(), **fitted}
    body = f"FITTED = {pprint.pformat({'constants': values, 'fit': report}, width=110, sort_dicts=False)}\n"
    scratch = FITTED_PY.with_name(".fitted.py.tmp")
    scratch.write_text(head + body)
    scratch.replace(FITTED_PY)
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(FITTED_PY)], check=False)
    print(f"constants written to {FITTED_PY}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, help="rows written by bench/bench_latency.py --json")
    parser.add_argument("--dry-run", action="store_true", help="fit and print, but do not write fitted.py")
    parser.add_argument("--build", action="store_true", help="build missing models first (slow); default: cached only")
    diagnostic = parser.add_mutually_exclusive_group()
    diagnostic.add_argument(
        "--bound",
        action="store_true",
        help="a diagnostic: the constants that bring the worst case closest, fitted on every case (fit and holdout "
        "alike, so never written): whether the model's form can reach a target at all",
    )
    diagnostic.add_argument(
        "--by-family",
        action="store_true",
        help="a diagnostic: each family predicted by constants fitted on the others (one fit per family; 30-45 "
        "minutes on two cores), never written",
    )
    args = parser.parse_args(argv)
    cases = cases_from_rows(args.rows) if args.rows else cases_from_cache(args.build)
    placed = place(cases)
    if args.by_family:
        ratios = by_family(placed)
        fitted_here = [(c, predict(c, r, {}) / c["published_latency_ms"]) for c, r in placed]
        print("each family predicted by constants fitted without it (the written constants' error beside it):")
        for name in sorted({family(c) for c, _ in placed}):
            out = [x for c, x in ratios if family(c) == name]
            written = [x for c, x in fitted_here if family(c) == name]
            print(f"  {name:<22} {summary(out)}   written: {summary(written)}")
        print(f"every case, out of its family: {summary([x for _, x in ratios])}")
        print(f"every case, written constants: {summary([x for _, x in fitted_here])}")
        for c, x in sorted(ratios, key=lambda cx: -factor(cx[1]))[:10]:
            print(f"  {c['name']:<36} {x:.2f}x")
        return 0
    if args.bound:
        best = fit(placed, worst_first, "linear")
        ratios = [(c, predict(c, r, best) / c["published_latency_ms"]) for c, r in placed]
        print(f"every case, fitted on all of them: {summary([x for _, x in ratios])}")
        for c, x in sorted(ratios, key=lambda cx: -factor(cx[1]))[:10]:
            print(f"  {c['name']:<36} {c['split']:<8} {x:.2f}x")
        print("constants:", best)
        return 0
    fit_set = [(c, r) for c, r in placed if c["split"] == "fit"]
    hold_set = [(c, r) for c, r in placed if c["split"] == "holdout"]
    before = {
        which: summary([math.exp(x) for x in residuals(np.array([constants()[k] for k in FREE]), s)])
        for which, s in (("fit", fit_set), ("holdout", hold_set))
    }
    fitted = fit(fit_set)
    predicted = [(c, predict(c, r, fitted)) for c, r in placed]  # once: the summaries and the case table
    ratios = [(c, ms / c["published_latency_ms"]) for c, ms in predicted]
    after = {}
    for which in ("fit", "holdout"):
        after[which] = summary([x for c, x in ratios if c["split"] == which])
        print(f"{which:<8} before: {before[which]}\n{'':<8} after:  {after[which]}")
    for c, ms in predicted:
        print(f"  {c['name']:<28} {c['split']:<8} published {c['published_latency_ms']:8.2f}  predicted {ms:8.2f}")
    print("fitted:", fitted)
    if not args.dry_run:
        write(fitted, after, case_table(placed, predicted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
