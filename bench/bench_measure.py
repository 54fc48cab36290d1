"""Speed of the measurement parsers: an hour of powermetrics samples, and compare() on 10,000 ops.

    python bench/bench_measure.py

The plist stream joins the real M1 sample of tests/data/measure/power 3,600 times (NUL-separated, as
`powermetrics -f plist -i 1000` writes an hour); the text stream joins the real M4 Max sample the same way.
compare() runs on a 10,000-op prediction and measurement built from the same op list.
"""

from __future__ import annotations

import time
from pathlib import Path

from anedoctor.measure.compare import compare
from anedoctor.measure.computeplan import measurement, plan_op
from anedoctor.measure.powermetrics import parse_power

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "measure" / "power"
SAMPLES = 3600
OPS = 10_000


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<48} {seconds:8.3f} s")
    return result, seconds


def main() -> None:
    plist = (DATA / "02_plist_M1_MacBookPro17-1_macOS13.3_22E252_ane0.xml").read_bytes()
    text = (DATA / "01_text_default_M4Max_Mac16-6_macOS15.5_ane0.txt").read_text()
    body = text.split("\n\n\n", 1)[1]
    plist_stream = b"\x00".join([plist] * SAMPLES)
    text_stream = (text + body * (SAMPLES - 1)).encode()
    r, s = timed(
        f"plist stream, {SAMPLES} samples ({len(plist_stream) / 1e6:.0f} MB)",
        lambda: parse_power(plist_stream, "plist"),
    )
    print(f"{'':<48} {1e6 * s / len(r.samples):8.1f} us per sample")
    r, s = timed(
        f"text stream, {SAMPLES} samples ({len(text_stream) / 1e6:.0f} MB)", lambda: parse_power(text_stream, "text")
    )
    print(f"{'':<48} {1e6 * s / len(r.samples):8.1f} us per sample")
    timed("summary of the text stream", lambda: r.summary)
    devices = ("ane", "gpu", "cpu")
    ops = [plan_op(i, f"op_{i}", "ios18.conv", devices[i % 3], list(devices), 1 / OPS) for i in range(OPS)]
    predicted = [
        {**op, "device": devices[(i // 7) % 3], "cost_ms": {d: 0.01 for d in devices}} for i, op in enumerate(ops)
    ]
    prediction = {"kind": "prediction", "ops": predicted}
    c, _ = timed(f"compare, {OPS} ops matched by name", lambda: compare(prediction, measurement(ops)))
    timed("comparison to JSON", c.to_json)
    print(c.headline())


if __name__ == "__main__":
    main()
