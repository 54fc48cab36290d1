"""Convert the models of the published cases to .mlpackage files, cached on disk.

The cache is bench/.cache/published (or $ANEDOCTOR_BENCH_CACHE); a package's name carries a hash of
its recipe and the coremltools version, so a changed recipe is rebuilt. Builds run one at a time
(big models hold several GB while converting). Packages are written to a temporary name and renamed.

A model whose recipe names a toolchain (cases.Model.toolchain) is converted by that toolchain's interpreter
in a virtual environment of its own (bench/.cache/toolchain-NAME, made on first use from the package
registry), as the source converted it: see TOOLCHAINS.

Run: python -m bench.published.build [--cases NAME,..] [--force]   (from the repository root)
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import hashlib
import inspect
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from . import models, models_diffusion, models_mil, models_outside, models_seq
from .cases import MODELS, Model, select

CACHE = Path(os.environ.get("ANEDOCTOR_BENCH_CACHE") or Path(__file__).resolve().parent.parent / ".cache" / "published")
RANGE = (32, 256)  # RangeDim bounds of the sequence axis (the meridian encoder's SEQ_MIN..SEQ_MAX)
ROOT = Path(__file__).resolve().parent.parent.parent
# name -> (Python version, packages): converters of the time, for published figures whose graphs depend on them.
# coremltools 6 (2022-23) kept masked_fill(-inf) as an fp32 select between two casts (its fill became -3.4e38, beyond
# fp16's range), where coremltools 9 converts it to fp16: converted by both, transformers' DistilBERT has 13 casts
# (6.0 with torch 1.12.1, and 6.2 with torch 1.13.1) against 1. coremltools 6.2 is the last 6.x before torch 2;
# numpy < 1.24 is what it imports with.
TOOLCHAINS = {"coremltools6": ("3.10", ("numpy<1.24", "coremltools==6.2", "torch==1.13.1"))}


class BuildError(Exception):
    """A model could not be built or converted; the message is one line."""


def coremltools():
    """Import coremltools without its start-up noise (sklearn / torch version / missing libcoremlpython)."""
    warnings.filterwarnings("ignore")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        import coremltools as ct
    import logging

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return ct


def package_path(name: str) -> Path:
    """Where model ``name`` is cached: the name carries a hash of its recipe, its builder's module (as
    syntax, so reformatting or comments do not rebuild) and its converter (the installed coremltools version, or
    the toolchain's packages), so editing a builder rebuilds the models it makes."""
    spec = MODELS[name]
    converter = TOOLCHAINS[spec.toolchain] if spec.toolchain else coremltools().__version__
    code = ast.dump(ast.parse(inspect.getsource(sys.modules[builder(spec).__module__])))
    compression = f" {spec.compression}" if spec.compression else ""
    digest = hashlib.sha1(f"{spec!r} {converter} {code}{compression}".encode()).hexdigest()[:8]
    return CACHE / f"{name}-{digest}.mlpackage"


def builder(spec: Model):
    for module in (models, models_seq, models_diffusion, models_mil, models_outside):
        if hasattr(module, spec.builder):
            return getattr(module, spec.builder)
    raise BuildError(f"no builder {spec.builder!r}")


def input_types(spec: Model, examples: tuple):
    """Core ML inputs for the traced example tensors, as the sources declared them."""
    import numpy as np
    import torch

    ct = coremltools()
    types = []
    for i, x in enumerate(examples):
        name = f"input_{i}"
        if spec.inputs == "image" and i == 0:
            types.append(
                ct.ImageType(name="image", shape=tuple(x.shape), scale=1 / 255, color_layout=ct.colorlayout.RGB)
            )
        elif spec.inputs == "range" and i == 0:
            dims = (*x.shape[:-1], ct.RangeDim(lower_bound=RANGE[0], upper_bound=RANGE[1], default=x.shape[-1]))
            types.append(ct.TensorType(name="x", shape=dims, dtype=np.float16))
        elif x.dtype in (torch.int64, torch.int32):
            types.append(ct.TensorType(name=name, shape=tuple(x.shape), dtype=np.int32))
        else:
            types.append(ct.TensorType(name=name, shape=tuple(x.shape)))
    return types


def convert(spec: Model):
    """Build the torch module (or MIL program) and convert it to an fp16 ML Program."""
    import torch

    ct = coremltools()
    target = getattr(ct.target, spec.target)
    options = {
        "convert_to": "mlprogram",
        "minimum_deployment_target": target,
        "compute_precision": ct.precision.FLOAT16,
    }
    torch.manual_seed(0)
    made = builder(spec)(**spec.config)
    if not isinstance(made, tuple):  # a MIL program
        return ct.convert(made, **options)
    module, examples = made
    if "activations" in spec.compression:
        calibratable(module, examples)
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), examples)
    return ct.convert(traced, inputs=input_types(spec, examples), **options)


def calibratable(module, examples: tuple) -> None:
    """BatchNorm statistics re-estimated on random inputs, as training sets them: with random weights and unit
    running statistics each MobileNetV2 block shrinks its activations ~10x, they reach 1e-7 and underflow fp16,
    and W8A8 calibration gets a zero scale."""
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    module.train()
    with torch.no_grad():
        for _ in range(4):
            module(*(torch.rand_like(x) if x.is_floating_point() else x for x in examples))
    module.eval()


def convert_and_save(name: str, path: Path) -> None:
    """Convert model ``name`` with this interpreter's coremltools and write it at ``path`` (compressed by
    anedoctor's compress when its recipe says so)."""
    spec = MODELS[name]
    with contextlib.redirect_stderr(io.StringIO()):
        model = convert(spec)
        if not spec.compression:
            model.save(str(path))
            return
        with tempfile.TemporaryDirectory() as scratch:
            fp16 = Path(scratch) / "fp16.mlpackage"
            model.save(str(fp16))
            del model  # the converted program (GBs for a UNet) is not needed while compressing
            compress_package(fp16, path, spec.compression)


def compress_package(source: Path, output: Path, options: dict) -> None:
    """Compress as ``anedoctor compress`` does (coremltools.optimize.coreml) with ``options``: ``activations: N``
    calibrates W8A8 on N random inputs (seed 0), run by anedoctor's executor, through anedoctor.compress.compress;
    weight-only recipes apply the same coremltools calls without its report, whose placement and accuracy runs a
    benchmark model does not need (minutes and GBs for a Stable Diffusion UNet)."""
    import numpy as np

    import anedoctor
    from anedoctor.compress import compress
    from anedoctor.compress.core import save_atomic
    from anedoctor.compress.recipe import apply, make_recipe, open_mlmodel

    options = dict(options)
    if "activations" not in options:
        save_atomic(apply(make_recipe(**options), open_mlmodel(source), None), output)
        return
    rng = np.random.default_rng(0)
    inputs = anedoctor.load(source).graphs[0].inputs
    options["activations"] = {
        v.name: rng.standard_normal((options["activations"], *v.type.shape)).astype(np.float32) for v in inputs
    }
    compress(source, output, **options)


def find_python(version: str) -> str | None:
    """An interpreter of this version that runs: python3.X on PATH, then pyenv's installed versions."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found = [shutil.which(f"python{version}"), *sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))]
    for python in filter(None, found):
        if subprocess.run([python, "--version"], capture_output=True).returncode == 0:
            return python
    return None


def toolchain_python(name: str) -> Path:
    """The interpreter of toolchain ``name``, its virtual environment made and filled on first use."""
    version, packages = TOOLCHAINS[name]
    venv = CACHE.parent / f"toolchain-{name}"
    python, ready = venv / "bin" / "python", venv / "ready"
    if ready.exists() and ready.read_text() == " ".join(packages):
        return python
    base = find_python(version)
    if base is None:
        raise BuildError(f"toolchain {name} needs Python {version} (python{version} on PATH or under pyenv)")
    shutil.rmtree(venv, ignore_errors=True)
    for step in ([base, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", *packages]):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or [""])[-1][:200]
            raise BuildError(f"toolchain {name}: {' '.join(step[2:4])} failed: {last}")
    ready.write_text(" ".join(packages))
    return python


def convert_elsewhere(name: str, scratch: Path) -> None:
    """Convert model ``name`` with its toolchain's interpreter (this module, run there with --convert-to)."""
    python = toolchain_python(MODELS[name].toolchain)
    command = [str(python), "-m", "bench.published.build", "--model", name, "--convert-to", str(scratch)]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    if done.returncode or not scratch.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise BuildError(f"{name} ({MODELS[name].toolchain}): {last}")


def build(name: str, force: bool = False) -> Path:
    """The cached .mlpackage of model ``name``, converted first if missing (or ``force``)."""
    path = package_path(name)
    if path.exists() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.stem}-{os.getpid()}.mlpackage")
    try:
        if MODELS[name].toolchain:
            convert_elsewhere(name, scratch)
        else:
            convert_and_save(name, scratch)
    except BuildError:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    except Exception as e:  # the tracer and converter raise many types; keep the first line
        shutil.rmtree(scratch, ignore_errors=True)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise BuildError(f"{name}: {type(e).__name__}: {first}") from None
    if path.exists():
        shutil.rmtree(path)
    os.replace(scratch, path)
    prune(name, keep=path)
    return path


def prune(name: str, keep: Path) -> None:
    """Remove older builds of model ``name`` (other recipe hashes) and scratch folders left by killed
    builds (a scratch folder of a process still running is left alone)."""
    pattern = re.compile(rf"^(\.?){re.escape(name)}-[0-9a-f]{{8}}(?:-(\d+))?\.mlpackage$")
    for old in keep.parent.iterdir():
        match = pattern.match(old.name)
        if old == keep or not match or (match.group(2) and alive(int(match.group(2)))):
            continue
        shutil.rmtree(old, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return True


def build_cases(cases, force: bool = False, log=print, cached_only: bool = False) -> dict[str, Path | BuildError]:
    """Build every model the cases need (their outside work too), sequentially; failures are returned, not raised.
    ``cached_only``: build nothing, report the models not built yet as failures."""
    results: dict[str, Path | BuildError] = {}
    for name in (name for case in cases for name in case.models):
        if name in results:
            continue
        start, cached = time.perf_counter(), package_path(name).exists() and not force
        if cached_only and not cached:
            results[name] = BuildError(f"{name}: not built yet (run without --cached)")
            continue
        try:
            results[name] = build(name, force)
            if not cached:
                log(f"  built {name:<22} {time.perf_counter() - start:6.1f} s")
        except BuildError as e:
            results[name] = e
            log(f"  FAILED {e}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--model", help=argparse.SUPPRESS)  # with --convert-to: inside a toolchain's environment
    parser.add_argument("--convert-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.convert_to:
        convert_and_save(args.model, args.convert_to)
        return 0
    results = build_cases(select(args.cases), args.force)
    failed = [k for k, v in results.items() if isinstance(v, BuildError)]
    print(
        f"{len(results) - len(failed)} of {len(results)} models built in {CACHE}"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
