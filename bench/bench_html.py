"""Bench the HTML report: generation time and file size for a 10,000-op report, and how long
headless Chromium takes to make the page interactive.

    python bench/bench_html.py [--ops 10000] [--model path.mlpackage] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from html_browser import chromium_path, launch, make_report  # noqa: E402

from anedoctor.report.html import render_html  # noqa: E402


def browser_times(path: Path, repeat: int) -> dict[str, float] | None:
    """Median ms to interactive (script done) and to a row click updating table, strip, graph and detail."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium_path() is None:
        return None
    ready, click = [], []
    with sync_playwright() as p:
        browser = launch(p)
        for _ in range(repeat):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(path.as_uri())
            page.wait_for_function("window.anedoctor !== undefined")
            ready.append(page.evaluate("performance.now()"))
            click.append(
                page.evaluate("""() => {
                const t = performance.now(); document.querySelector('#ops-table tr.row:nth-child(4)').click();
                return performance.now() - t; }""")
            )
            page.close()
        browser.close()
    return {"interactive_ms": statistics.median(ready), "select_ms": statistics.median(click)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=10_000, help="ops in the synthetic report")
    ap.add_argument("--model", help="bench the report of this model instead (anedoctor.check)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.model:
        import anedoctor

        report = anedoctor.check(args.model).to_dict()
    else:
        report = make_report(args.ops, parts=("encoder", "decoder"))
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        html = render_html(report)
        times.append(time.perf_counter() - t)
    size = len(html.encode())
    print(f"ops: {len(report['ops']):,}  switches: {len(report['switches']):,}")
    print(f"generation: {1000 * statistics.median(times):.0f} ms (median of {args.repeat})")
    print(f"size: {size / 2**20:.2f} MiB ({size / max(len(report['ops']), 1):.0f} B/op)")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "report.html"
        path.write_text(html, encoding="utf-8")
        b = browser_times(path, args.repeat)
    if b is None:
        print("browser: skipped (no Chromium or playwright)")
    else:
        print(f"headless Chromium: interactive after {b['interactive_ms']:.0f} ms, row select {b['select_ms']:.1f} ms")


if __name__ == "__main__":
    main()
