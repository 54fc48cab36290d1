"""Benchmark: `anedoctor.check` on big ML Programs against coremltools loading the same spec.

Builds chains of conv/relu/add ops (2,500 / 5,000 / 10,000 ops), then times, in one run:
  spec   - coremltools.utils.load_spec (the protobuf parse, in C; Python objects are made lazily)
  walk   - load_spec, then the least any Python code must do to see the ops: read every op's
           type, input names and output names and types (no decoding, no analysis)
  mil    - coremltools' own spec -> MIL Program load (milproto.load, once: it is slow)
  load   - anedoctor.load (spec -> IR)
  check  - anedoctor.check (load + rules + placement + report), for compute units cpu_and_ne, where
           every 50th block's dilated conv splits the ANE work (~130 segments on 10k ops)
and prints check/spec, check/walk, check/mil and the time per op (linear scaling shows as a flat
column). Medians of --repeat rounds; each round times every phase in turn, so machine noise
hits them alike.

Then the same comparison as a user meets it, each in a fresh Python process (--cold rounds):
  spec cold  - python -c "import coremltools as ct; ct.utils.load_spec(path)"
  check cold - anedoctor check path --compute-units cpu_and_ne --json out.json (the CLI, report written)
Importing coremltools (which imports torch) is part of both.
Run: python bench/bench_check.py [--sizes 2500 5000 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mil_models import chain  # noqa: E402

import anedoctor  # noqa: E402
from anedoctor.util import quiet_coremltools  # noqa: E402

UNITS = "cpu_and_ne"


def interleaved_medians(phases: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each phase, running the phases in turn ``repeat`` times. The garbage of
    earlier phases is collected before each one starts, so no phase pays for another's."""
    times: dict[str, list[float]] = {name: [] for name in phases}
    for _ in range(repeat):
        for name, fn in phases.items():
            gc.collect()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def walk_ops(ct, path: Path) -> int:
    """Parse the spec and touch what every op declares; returns the number of ops seen."""
    spec = ct.utils.load_spec(str(path))
    seen = 0
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                op.type  # noqa: B018 - the reads are the point
                for arg in op.inputs:
                    for binding in op.inputs[arg].arguments:
                        binding.name  # noqa: B018
                for out in op.outputs:
                    out.name, out.type  # noqa: B018
                seen += 1
    return seen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold", type=int, default=3, help="fresh-process rounds (0: skip)")
    args = ap.parse_args()
    ct = quiet_coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    print(
        f"{'ops':>7} {'spec s':>8} {'walk s':>8} {'mil s':>8} {'load s':>8} {'check s':>8} {'check/spec':>10} "
        f"{'check/walk':>10} {'check/mil':>9} {'us/op':>7} {'segments':>8}"
    )
    paths: list[tuple[int, Path]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = chain(Path(tmp) / f"chain{size}.mlpackage", size)
            parsed = ct.utils.load_spec(str(path))
            weights = str(path / "Data" / "com.apple.CoreML" / "weights")
            mil = interleaved_medians(
                {
                    "mil": lambda: milproto_load(
                        parsed, specification_version=parsed.specificationVersion, file_weights_dir=weights
                    )
                },
                1,
            )["mil"]
            t = interleaved_medians(
                {
                    "spec": lambda: ct.utils.load_spec(str(path)),
                    "walk": lambda: walk_ops(ct, path),
                    "load": lambda: anedoctor.load(path),
                    "check": lambda: anedoctor.check(path, compute_units=UNITS),
                },
                args.repeat,
            )
            spec, walk, load, check = t["spec"], t["walk"], t["load"], t["check"]
            summary = anedoctor.check(path, compute_units=UNITS).summary
            ops = summary["ops"]
            print(
                f"{ops:>7} {spec:>8.3f} {walk:>8.3f} {mil:>8.3f} {load:>8.3f} {check:>8.3f} {check / spec:>10.1f} "
                f"{check / walk:>10.1f} {check / mil:>9.2f} {1e6 * check / ops:>7.1f} {summary['segments']:>8}"
            )
            paths.append((ops, path))
        if args.cold:
            print(f"\nfresh processes\n{'ops':>7} {'spec cold s':>12} {'check cold s':>13} {'check/spec':>10}")
        for ops, path in paths if args.cold else []:
            out = Path(tmp) / "report.json"
            t = interleaved_medians(
                {
                    "spec": lambda: subprocess.run(
                        [sys.executable, "-c", f"import coremltools as ct; ct.utils.load_spec({str(path)!r})"],
                        check=True,
                        capture_output=True,
                    ),
                    "check": lambda: subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "anedoctor.cli",
                            "check",
                            str(path),
                            "--compute-units",
                            UNITS,
                            "--json",
                            str(out),
                        ],
                        check=True,
                        capture_output=True,
                    ),
                },
                args.cold,
            )
            print(f"{ops:>7} {t['spec']:>12.2f} {t['check']:>13.2f} {t['check'] / t['spec']:>10.2f}")


if __name__ == "__main__":
    main()
