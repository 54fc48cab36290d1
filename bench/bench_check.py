"""Benchmark: `anedoctor.check` on big ML Programs against coremltools loading the same spec.

Builds chains of conv/relu/add ops (2,500 / 5,000 / 10,000 ops), then times, in one run:
  spec   - coremltools.utils.load_spec (protobuf parse; upb parses lazily, so this touches little)
  mil    - coremltools' own spec -> MIL Program load (milproto.load, once: it is slow)
  load   - anedoctor.load (spec -> IR)
  check  - anedoctor.check (load + rules + placement + report)
and prints check/spec, check/mil and the time per op (linear scaling shows as a flat column).
Run: python bench/bench_check.py [--sizes 2500 5000 10000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import anedoctor  # noqa: E402
from anedoctor.loaders import quiet_coremltools  # noqa: E402
from mil_models import chain  # noqa: E402


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ct = quiet_coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    print(f"{'ops':>7} {'spec s':>8} {'mil s':>8} {'load s':>8} {'check s':>8} {'check/spec':>10} {'check/mil':>9} {'us/op':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = chain(Path(tmp) / f"chain{size}.mlpackage", size)
            spec = median_time(lambda: ct.utils.load_spec(str(path)), args.repeat)
            parsed = ct.utils.load_spec(str(path))
            mil = median_time(lambda: milproto_load(parsed, specification_version=parsed.specificationVersion,
                                                    file_weights_dir=str(path / "Data" / "com.apple.CoreML" / "weights")), 1)
            load = median_time(lambda: anedoctor.load(path), args.repeat)
            report = None

            def run_check():
                nonlocal report
                report = anedoctor.check(path)
            check = median_time(run_check, args.repeat)
            ops = report.summary["ops"]
            print(f"{ops:>7} {spec:>8.3f} {mil:>8.3f} {load:>8.3f} {check:>8.3f} {check / spec:>10.1f} {check / mil:>9.2f} "
                  f"{1e6 * check / ops:>7.1f}")


if __name__ == "__main__":
    main()
