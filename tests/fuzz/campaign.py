"""A seeded mutation campaign over every input family: ``python -m tests.fuzz.campaign --cases 5000``.

Case ``i`` of seed ``s`` is always the same mutant (family ``i mod len(families)``, ``random.Random(f"{s}:{i}")``),
so a failure is reproduced with ``--only i``. Cases run in ``--workers`` spawned processes; each case
runs in its own child forked from its worker (see runner.py) with a timeout and an address-space cap. Exit 1
when any case hangs, crashes, ends in the generic error, names no file, modifies an input or
leaves a file behind; the summary is printed (and written with ``--json``)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from .mutate import FAMILIES, Case
from .runner import BAD, GiB, Outcome, run_case, warm_up
from .seeds import build_seeds

FAMILY_NAMES = list(FAMILIES)


def make_case(index: int, seed: int, seeds: dict[str, Path], case_dir: Path, families: list[str]) -> Case:
    rng = random.Random(f"{seed}:{index}")
    case_dir.mkdir(parents=True)
    return FAMILIES[families[index % len(families)]](rng, seeds, case_dir)


def worker(
    indices: list[int],
    seed: int,
    seeds: dict[str, Path],
    root: Path,
    timeout: float,
    mode: str,
    families: list[str],
    keep: bool,
    queue,
) -> None:
    """A fresh interpreter (spawned): torch limited to one thread before it starts any (forking a process whose
    OpenMP pool is running deadlocks the child), everything imported and warmed once, then one fork per case."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    warm_up(seeds["mlpackage"])
    for i in indices:
        case_dir = root / f"case{i:06d}"
        try:
            case = make_case(i, seed, seeds, case_dir, families)
        except Exception as e:  # noqa: BLE001 - a mutator bug is reported, not fatal to the campaign
            queue.put((i, "harness", f"mutator failed: {type(e).__name__}: {e}", None))
            shutil.rmtree(case_dir, ignore_errors=True)
            continue
        outcome = run_case(case.argv, case.outputs, case_dir, timeout, mode)
        queue.put((i, case.family, case.what, (case.argv, outcome)))
        if keep and (outcome.kind in BAD or outcome.modified or outcome.leftovers):
            continue
        shutil.rmtree(case_dir, ignore_errors=True)
        shutil.rmtree(case_dir.parent / (case_dir.name + ".tmp"), ignore_errors=True)


def run_campaign(
    cases: int,
    seed: int = 0,
    workers: int = 2,
    timeout: float = 30.0,
    mode: str = "fork",
    families: list[str] | None = None,
    work: Path | None = None,
    keep: bool = False,
    only: list[int] | None = None,
    progress: bool = False,
    with_aimodel: bool = False,
) -> dict:
    """Run the campaign and return its summary (counts by family and outcome, the bad cases)."""
    families = families or FAMILY_NAMES
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="anedoctor-fuzz-")) if own else work
    seeds = build_seeds(work / "seeds", with_aimodel)

    root = work / f"cases-{seed}"
    root.mkdir(exist_ok=True)
    indices = only if only is not None else list(range(cases))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(indices[w::workers], seed, seeds, root, timeout, mode, families, keep, queue))
        for w in range(workers)
    ]
    start = time.monotonic()
    for p in procs:
        p.start()
    results = []
    for n in range(len(indices)):
        results.append(queue.get())
        if progress and (n + 1) % 100 == 0:
            print(f"  {n + 1}/{len(indices)} cases, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    for p in procs:
        p.join()
    summary = summarize(results, time.monotonic() - start, seed, timeout)
    if own and not keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        summary["work"] = str(work)
    return summary


def summarize(results: list, seconds: float, seed: int, timeout: float) -> dict:
    by_family: dict[str, Counter] = {}
    bad = []
    peak = 0
    slowest = 0.0
    for i, family, what, ran in sorted(results, key=lambda r: r[0]):
        counts = by_family.setdefault(family, Counter())
        if ran is None:
            counts["harness"] += 1
            bad.append({"case": i, "family": family, "outcome": "harness", "what": what})
            continue
        argv, out = ran
        out: Outcome
        counts[out.kind] += 1
        counts["modified"] += bool(out.modified)
        counts["leftovers"] += bool(out.leftovers)
        peak = max(peak, out.peak_rss)
        slowest = max(slowest, out.seconds)
        if out.kind in BAD or out.modified or out.leftovers:
            bad.append(
                {
                    "case": i,
                    "family": family,
                    "outcome": out.kind,
                    "what": what,
                    "argv": argv,
                    "code": out.code,
                    "stderr": out.stderr[-600:],
                    "modified": out.modified,
                    "leftovers": out.leftovers,
                }
            )
    total = Counter()
    for counts in by_family.values():
        total.update(counts)
    return {
        "seed": seed,
        "cases": len(results),
        "seconds": round(seconds, 1),
        "timeout_s": timeout,
        "peak_rss_mb": round(peak / 2**20),
        "slowest_case_s": round(slowest, 2),
        "total": {
            k: total[k]
            for k in ("ok", "clean", "hang", "crash", "generic", "unnamed", "harness", "modified", "leftovers")
        },
        "by_family": {f: dict(c) for f, c in sorted(by_family.items())},
        "bad": bad,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.campaign", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--mode", choices=["fork", "subprocess"], default="fork")
    parser.add_argument("--family", action="append", choices=FAMILY_NAMES, help="only these families (repeatable)")
    parser.add_argument("--only", type=int, action="append", help="only case number N (repeatable)")
    parser.add_argument("--work", type=Path, help="keep seeds and failing cases in this folder")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--aimodel", action="store_true", help="also fix a Core AI .aimodel (needs coreai-torch)")
    args = parser.parse_args(argv)
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    summary = run_campaign(
        args.cases,
        args.seed,
        args.workers,
        args.timeout,
        args.mode,
        args.family,
        args.work,
        keep=args.work is not None,
        only=args.only,
        progress=True,
        with_aimodel=args.aimodel,
    )
    text = json.dumps(summary, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    t = summary["total"]
    ok = not any(t[k] for k in ("hang", "crash", "generic", "unnamed", "harness", "modified", "leftovers"))
    print(
        f"{summary['cases']} cases in {summary['seconds']} s: {t['ok']} ok, {t['clean']} clean errors, "
        f"{t['hang']} hangs, {t['crash']} crashes, {t['generic']} generic, {t['unnamed']} unnamed, "
        f"{t['modified']} inputs modified, {t['leftovers']} with leftovers; peak RSS {summary['peak_rss_mb']} MB "
        f"(cap: address space +{2 * GiB >> 30} GiB)",
        file=sys.stderr,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
