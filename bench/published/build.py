"""Convert the models of the published cases to .mlpackage files, cached on disk.

The cache is bench/.cache/published (or $ANEDOCTOR_BENCH_CACHE); a package's name carries a hash of
its recipe and the coremltools version, so a changed recipe is rebuilt. Builds run one at a time
(big models hold several GB while converting). Packages are written to a temporary name and renamed.

Run: python -m bench.published.build [--cases NAME,..] [--force]   (from the repository root)
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import inspect
import io
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

from . import models, models_mil, models_seq
from .cases import MODELS, Model, select

CACHE = Path(os.environ.get("ANEDOCTOR_BENCH_CACHE") or Path(__file__).resolve().parent.parent / ".cache" / "published")
RANGE = (32, 256)  # RangeDim bounds of the sequence axis (the meridian encoder's SEQ_MIN..SEQ_MAX)


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
    syntax, so reformatting or comments do not rebuild) and the coremltools version, so editing a
    builder rebuilds the models it makes."""
    ct = coremltools()
    spec = MODELS[name]
    code = ast.dump(ast.parse(inspect.getsource(sys.modules[builder(spec).__module__])))
    digest = hashlib.sha1(f"{spec!r} {ct.__version__} {code}".encode()).hexdigest()[:8]
    return CACHE / f"{name}-{digest}.mlpackage"


def builder(spec: Model):
    for module in (models, models_seq, models_mil):
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
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), examples)
    return ct.convert(traced, inputs=input_types(spec, examples), **options)


def build(name: str, force: bool = False) -> Path:
    """The cached .mlpackage of model ``name``, converted first if missing (or ``force``)."""
    path = package_path(name)
    if path.exists() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.stem}-{os.getpid()}.mlpackage")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            mlmodel = convert(MODELS[name])
            mlmodel.save(str(scratch))
    except BuildError:
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
    """Build every model the cases need, sequentially; failures are returned, not raised.
    ``cached_only``: build nothing, report the models not built yet as failures."""
    results: dict[str, Path | BuildError] = {}
    for case in cases:
        if case.model in results:
            continue
        start, cached = time.perf_counter(), package_path(case.model).exists() and not force
        if cached_only and not cached:
            results[case.model] = BuildError(f"{case.model}: not built yet (run without --cached)")
            continue
        try:
            results[case.model] = build(case.model, force)
            if not cached:
                log(f"  built {case.model:<22} {time.perf_counter() - start:6.1f} s")
        except BuildError as e:
            results[case.model] = e
            log(f"  FAILED {e}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    results = build_cases(select(args.cases), args.force)
    failed = [k for k, v in results.items() if isinstance(v, BuildError)]
    print(
        f"{len(results) - len(failed)} of {len(results)} models built in {CACHE}"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
