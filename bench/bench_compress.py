"""The compression sweep on a few zoo models: size, latency estimate, ANE share and PSNR per recipe.

    python bench/bench_compress.py [--models unet vit bert] [--chip m4] [--html-dir DIR]

Each model (zoo architectures at benchmark size, built in code with seeded weights, no downloads)
is converted to an fp16 iOS 18 .mlpackage, then `anedoctor.compress.sweep` runs palettize 8/6/4,
int8 per-channel, int4 per-block, 50% pruning and pruning + 4-bit palettization with
coremltools.optimize and measures each result against the original with the reference executor.
Prints the sweep tables, the wall time per model, and checks the quality bar: palettize-4 at
<= 30% of the fp16 weight bytes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
warnings.filterwarnings("ignore")

import torch  # noqa: E402
import zoo  # noqa: E402

from anedoctor.compress import sweep  # noqa: E402
from anedoctor.util import quiet_coremltools  # noqa: E402

MODELS = {  # name -> (module, example inputs), the sizes bench_execute.py uses
    "unet": lambda: (zoo.randomize_bn(zoo.UNet(32)).eval(), (torch.randn(1, 3, 128, 128),)),
    "vit": lambda: (zoo.ViT(dim=192, depth=6, heads=3, patch=16, size=224).eval(), (torch.randn(1, 3, 224, 224),)),
    "bert": lambda: (
        zoo.Bert(vocab=1000, dim=256, depth=4, heads=4, seq=128).eval(),
        (torch.randint(0, 1000, (1, 128), dtype=torch.int32), torch.ones(1, 128)),
    ),
}


def convert(name: str, folder: Path) -> Path:
    """Trace and convert one model to an fp16 ML Program (iOS 18)."""
    quiet_coremltools()
    torch.manual_seed(0)
    module, inputs = MODELS[name]()
    return zoo.convert_module(module, inputs, name, folder / f"{name}.mlpackage", fp16=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--chip", default="m4")
    parser.add_argument("--html-dir", type=Path, help="write <model>-sweep.html pages here")
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path = convert(name, Path(tmp))
            start = time.perf_counter()
            report = sweep(path, chip=args.chip)
            seconds = time.perf_counter() - start
            print(report.render())
            print(f"{name}: {len(report.rows)} recipes in {seconds:.1f} s\n")
            p4 = next((r for r in report.rows if r.recipe == "palettize 4-bit" and not r.skipped), None)
            if p4 is None or p4.weight_ratio > 0.30:
                failures.append(
                    f"{name}: palettize-4 weights at {p4.weight_ratio:.1%} of fp16"
                    if p4
                    else f"{name}: palettize-4 did not run"
                )
            if args.html_dir:
                args.html_dir.mkdir(parents=True, exist_ok=True)
                report.to_html(args.html_dir / f"{name}-sweep.html")
    print("quality bar (palettize-4 <= 30% of fp16 weight bytes):", "; ".join(failures) or "met on every model")


if __name__ == "__main__":
    main()
