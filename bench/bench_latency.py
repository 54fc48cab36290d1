"""Benchmark: anedoctor's whole-model latency estimate against published latencies.

Rebuilds every latency case of bench/published/cases.py (random weights, cached in bench/.cache),
runs anedoctor.check for the chip, OS and compute units the source measured, and prints per case the
published and predicted latency and their ratio (a prediction includes an estimate of the work the published
figure covers outside the Core ML model, cases.Outside, and says so in the note); then the median error (as a
factor), the share within ±25% and the worst error, for the fit and holdout splits separately, and per chip whether the
predicted order of the models matches the published order (over all pairs, and over the pairs whose published
figures are at least 10% apart, beyond the spread of one model's published figures).
Run: python bench/bench_latency.py [--cases NAME,..] [--split fit|holdout|all] [--json out.json] [--force] [--cached]
"""

from __future__ import annotations

import sys
from collections import defaultdict
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from published.evaluate import chosen, dump, latency_summary, parser, rows  # noqa: E402


def fmt(value: float | None, spec: str = "8.2f") -> str:
    return "n/a".rjust(int(spec.split(".")[0])) if value is None else format(value, spec)


def print_table(data: list[dict]) -> None:
    print(
        f"{'case':<28} {'chip':<8} {'units':<10} {'split':<7} {'published':>9} {'predicted':>9} {'ratio':>6}  "
        f"ANE share  note"
    )
    for r in data:
        outside = r.get("predicted_outside_ms")
        note = r["error"] or (f"incl. {outside:.1f} ms outside Core ML" if outside else "")
        ane = r.get("predicted_ane_share")
        print(
            f"{r['name']:<28} {r['chip']:<8} {r['compute_units']:<10} {r['split']:<7} "
            f"{fmt(r['published_latency_ms'], '9.2f')} {fmt(r.get('predicted_latency_ms'), '9.2f')} "
            f"{fmt(r.get('ratio'), '6.2f')}  {'     n/a' if ane is None else f'{100 * ane:7.1f}%'}  {note}"
        )


# Published figures of one model on one chip differ by up to ~18% between runs and OS builds (ResNet-50 on the same
# iPhone 15 Pro: 1.38 ms on iOS 17, 1.63 ms on the iOS 18 seed; Apple: "sensitive to the device state ... and
# build versions"), so pairs closer than this are also counted apart.
DISTINCT = 1.10


def ranking(data: list[dict]) -> None:
    """Per chip: pairs of different models whose predicted order differs from the published order, over all pairs
    and over the pairs whose published figures are at least DISTINCT apart."""
    by_chip = defaultdict(list)
    for r in data:
        if r.get("predicted_latency_ms") and r["published_latency_ms"]:
            by_chip[r["chip"]].append(r)
    if not by_chip:
        print("ranking: no predicted latencies")
        return
    totals = [0, 0, 0, 0]
    for chip, group in sorted(by_chip.items()):
        pairs = [
            (a, b)
            for a, b in combinations(group, 2)
            if a["model"] != b["model"] and a["published_latency_ms"] != b["published_latency_ms"]
        ]
        apart = [(a, b) for a, b in pairs if ratio(a, b) >= DISTINCT]
        wrong = [
            (a, b)
            for a, b in pairs
            if (a["published_latency_ms"] < b["published_latency_ms"])
            != (a["predicted_latency_ms"] < b["predicted_latency_ms"])
        ]
        wrong_apart = [(a, b) for a, b in wrong if ratio(a, b) >= DISTINCT]
        for i, n in enumerate((len(pairs) - len(wrong), len(pairs), len(apart) - len(wrong_apart), len(apart))):
            totals[i] += n
        shown = "; ".join(f"{a['name']} vs {b['name']}" for a, b in wrong_apart[:4]) + (
            " ..." if len(wrong_apart) > 4 else ""
        )
        print(
            f"  {chip:<8} {len(pairs) - len(wrong):3d}/{len(pairs):<3d} pairs in published order, "
            f"{len(apart) - len(wrong_apart):3d}/{len(apart):<3d} of those {DISTINCT - 1:.0%}+ apart"
            + (f"   out of order: {shown}" if wrong_apart else "")
        )
    print(
        f"  all      {totals[0]}/{totals[1]} pairs in published order, {totals[2]}/{totals[3]} of those "
        f"{DISTINCT - 1:.0%}+ apart"
    )


def ratio(a: dict, b: dict) -> float:
    """How far apart two published latencies are, as a factor >= 1."""
    x, y = a["published_latency_ms"], b["published_latency_ms"]
    return max(x, y) / min(x, y)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    cases = chosen(args, lambda c: c.latency_ms is not None)
    print(f"building {len(cases)} latency cases (cached in bench/.cache/published)")
    data = rows(cases, args.force, args.cached)
    print()
    print_table(data)
    print()
    for which in ("fit", "holdout"):
        ratios = [r["ratio"] for r in data if r["split"] == which and r.get("ratio")]
        if any(r["split"] == which for r in data):
            print(f"{which:<8} {latency_summary(ratios)}")
    print(f"{'all':<8} {latency_summary([r['ratio'] for r in data if r.get('ratio')])}")
    failed = [r["name"] for r in data if r["error"]]
    if failed:
        print(f"not predicted ({len(failed)}): {', '.join(failed)}")
    print("\nranking per chip (published order vs predicted order):")
    ranking(data)
    dump(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
