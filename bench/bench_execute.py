"""Executor speed and memory against PyTorch eager on the same modules.

    python bench/bench_execute.py [--threads 2] [--repeats 20] [--models resnet unet vit]

For each model: the fp32 forward time of the executor (a compiled Plan run on the converted
fp32 .mlpackage) and of torch eager (inference mode), median of ``--repeats`` runs taken
alternately in one process with the same thread count, and their ratio (target <= 2x). Memory:
each side runs in a fresh subprocess; ``resource.getrusage`` gives the peak RSS, reported as the
growth over the process after its imports (model weights + a forward pass), and the ratio. The
numerics column is ``anedoctor.numerics`` (an fp32 and an fp16 run compared op by op) measured the
same way: two runs' weights and live tensors plus the comparison's float64 temporaries of one tensor,
not every intermediate of both runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import zoo  # noqa: E402


def bench_models():
    """Benchmark-sized members of the zoo: name -> (module, example inputs)."""
    torch.manual_seed(0)
    return {
        "resnet": lambda: (zoo.resnet()[0], (torch.randn(1, 3, 224, 224),)),
        "unet": lambda: (zoo.randomize_bn(zoo.UNet(32)).eval(), (torch.randn(1, 3, 128, 128),)),
        "vit": lambda: (zoo.ViT(dim=192, depth=6, heads=3, patch=16, size=224).eval(), (torch.randn(1, 3, 224, 224),)),
        "bert": lambda: (
            zoo.Bert(vocab=1000, dim=256, depth=4, heads=4, seq=128).eval(),
            (torch.randint(0, 1000, (1, 128), dtype=torch.int32), torch.ones(1, 128)),
        ),
    }


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process from /proc, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def reset_peak() -> float:
    """Reset the RSS high-water mark (Linux clear_refs) and return the current RSS; where that is not
    possible, fall back to getrusage's lifetime peak (then import peaks can hide small models)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return rss_mb("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb() -> float:
    try:
        return rss_mb("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(side: str, name: str, package: str, threads: int) -> None:
    """Measure one side in a fresh process: peak RSS growth from just before the model is built or
    loaded, through three forward passes; printed as JSON."""
    import gc

    from anedoctor import numerics
    from anedoctor.execute import Plan, check_inputs
    from anedoctor.loaders import load
    from anedoctor.util import quiet_coremltools

    torch.set_num_threads(threads)
    quiet_coremltools()  # imports are not the model's memory
    inputs = bench_models()[name]()[1]
    gc.collect()
    base = reset_peak()
    if side == "eager":
        module = bench_models()[name]()[0]

        def forward():
            with torch.inference_mode():
                return module(*inputs)

    else:
        model = load(package)
        graph = model.graphs[0]
        arrays = check_inputs(graph, dict(zip((v.name for v in graph.inputs), (x.numpy() for x in inputs))))
        if side == "numerics":
            forward = lambda: numerics(model, arrays, devices="ane")  # noqa: E731
        else:
            plan = Plan(graph)
            forward = lambda: plan.run(arrays)  # noqa: E731

    for _ in range(3):
        forward()
    print(json.dumps({"peak_mb": peak_mb() - base}))


def measure_memory(side, name, package, threads) -> float:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            side,
            "--model",
            name,
            "--package",
            str(package),
            "--threads",
            str(threads),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--models", nargs="+", default=["resnet", "unet", "vit"], choices=list(bench_models()))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--package", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.model, args.package, args.threads)

    from anedoctor.execute import Plan, check_inputs
    from anedoctor.loaders import load

    torch.set_num_threads(args.threads)
    print(
        f"fp32 forward, {args.threads} thread(s), median of {args.repeats} alternating runs; memory = peak RSS growth "
        "from before the model is built/loaded (weights + 3 forwards; VmHWM after clear_refs), fresh subprocesses"
    )
    print(
        f"{'model':8} {'executor ms':>12} {'eager ms':>9} {'ratio':>6} {'executor MB':>12} {'eager MB':>9} "
        f"{'ratio':>6} {'max rel err':>12} {'numerics MB':>12} {'/ executor':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            module, inputs = bench_models()[name]()
            package = zoo.convert_module(module, inputs, name, Path(tmp) / f"{name}.mlpackage")
            graph = load(package).graphs[0]
            plan = Plan(graph)
            arrays = check_inputs(graph, dict(zip((v.name for v in graph.inputs), (x.numpy() for x in inputs))))
            with torch.inference_mode():
                want = module(*inputs)
            want = want if isinstance(want, tuple) else (want,)
            got = plan.run(arrays)
            err = max(float(np.abs(g - w.numpy()).max() / np.abs(w.numpy()).max()) for g, w in zip(got.values(), want))
            times = {"executor": [], "eager": []}
            for _ in range(2):  # warm-up
                plan.run(arrays)
                with torch.inference_mode():
                    module(*inputs)
            for _ in range(args.repeats):
                t = time.perf_counter()
                plan.run(arrays)
                times["executor"].append(time.perf_counter() - t)
                t = time.perf_counter()
                with torch.inference_mode():
                    module(*inputs)
                times["eager"].append(time.perf_counter() - t)
            ours, eager = (statistics.median(times[k]) * 1e3 for k in ("executor", "eager"))
            mem_ours, mem_eager, mem_numerics = (
                measure_memory(side, name, package, args.threads) for side in ("executor", "eager", "numerics")
            )
            print(
                f"{name:8} {ours:12.2f} {eager:9.2f} {ours / eager:6.2f} {mem_ours:12.1f} {mem_eager:9.1f} "
                f"{mem_ours / max(mem_eager, 1e-9):6.2f} {err:12.1e} {mem_numerics:12.1f} "
                f"{mem_numerics / max(mem_ours, 1e-9):10.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
