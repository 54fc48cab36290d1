"""Benchmark ``anedoctor.fix`` over a zoo of models with real Neural Engine blockers.

For each model (``tests/fix_zoo.py``): the ANE share of ops and FLOPs, segments, switches and
the estimated latency (when the check report has one) before and after ``fix``, the largest output
error of the rewrites against the original (fp32 reference executor for exact rewrites, ANE fp16
emulation for approximate ones), the rewrites applied, what is left, and the time ``fix`` took.
Target (issue 10): >= 95% of ops on the ANE after ``fix`` on every model whose blockers are all
graph-fixable, with exact rewrites within 1e-4.

    python bench/bench_fix.py [--chip m4] [--compute-units all,cpu_and_ne] [--json out.json] [MODEL ...]

Each model is fixed once per compute-unit setting: under ``all`` the predicted segmenter often keeps
memory-bound models on the GPU even when every op is ANE-eligible, so ``cpu_and_ne`` (the ANE as
the only accelerator) shows what the rewrites make possible.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fix_zoo import ZOO  # noqa: E402

from anedoctor.rewrite import fix  # noqa: E402


def pct(x: float) -> str:
    return f"{x:6.1%}"


def row_text(name: str, units: str, fixable: bool, r, seconds: float) -> str:
    b, a = r.before, r.after
    errors = [x.error for x in r.applied if x.error is not None]
    lat = f"{b['latency_ms']:7.3f}->{a['latency_ms']:7.3f}" if "latency_ms" in b and "latency_ms" in a else "n/a"
    applied = ", ".join(x.pass_name for x in r.applied) or "none"
    left = ", ".join(u.rule for u in r.unfixed) or "-"
    return (
        f"{name:<18} {units:<10} {'yes' if fixable else 'no':>7} "
        f"{pct(b['ane_fraction'])}->{pct(a['ane_fraction'])} "
        f"{pct(b['ane_flops_fraction'])}->{pct(a['ane_flops_fraction'])} {b['segments']:>3}->{a['segments']:<3} "
        f"{b['switches']:>3}->{a['switches']:<3} {lat:>17} {max(errors, default=0.0):9.2g} {seconds:6.1f}  "
        f"{applied} / left: {left}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help=f"subset of {', '.join(ZOO)}")
    ap.add_argument("--chip")
    ap.add_argument("--os")
    ap.add_argument("--compute-units", default="all,cpu_and_ne", help="comma-separated settings to fix under")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()
    names = args.models or list(ZOO)
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}")
    rows = []
    settings = [u.strip() for u in args.compute_units.split(",") if u.strip()]
    head = (
        f"{'model':<18} {'units':<10} {'fixable':>7} {'ANE ops':>15} {'ANE FLOPs':>15} {'seg':>7} {'sw':>7} "
        f"{'latency ms':>17} {'max err':>9} {'fix s':>6}  rewrites / left"
    )
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            build, fixable = ZOO[name]
            folder = Path(tmp) / name
            folder.mkdir()
            src = build(folder)
            for units in settings:
                start = time.perf_counter()
                r = fix(src, folder / f"fixed-{units}.mlpackage", chip=args.chip, os=args.os, compute_units=units)
                seconds = time.perf_counter() - start
                print(row_text(name, units, fixable, r, seconds))
                for x in r.dropped:
                    print(f"{'':<18} dropped {x.pass_name}: {x.reason}")
                rows.append(
                    {
                        "model": name,
                        "compute_units": units,
                        "graph_fixable": fixable,
                        "seconds": round(seconds, 2),
                        **r.to_dict(),
                    }
                )
    exact_ok = all(x["error"] is not None and x["error"] <= 1e-4 for row in rows for x in row["applied"] if x["exact"])
    for units in settings:
        met = [row for row in rows if row["compute_units"] == units and row["graph_fixable"]]
        hit = [row["model"] for row in met if row["after"]["ane_fraction"] >= 0.95]
        print(
            f"compute units {units}: >= 95% of ops on the ANE after fix on {len(hit)} of {len(met)} graph-fixable "
            f"models ({', '.join(hit) or 'none'})"
        )
    print(f"exact rewrites within 1e-4 relative: {'yes' if exact_ok else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
