"""Model inputs for the executor: generated from the input description, checked, loaded from .npz/.npy; outputs
saved."""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from ..ir import Graph, Model, Value
from ..ir.dtypes import NUMPY_DTYPES
from ..loaders.files import MAX_ALLOC_BYTES, allocatable, checked_file, plain

# ------------------------------------------------------------------ inputs


def load_model(model: Any, example_inputs: Any = None) -> Model:
    """A path, MLModel, torch module (with example inputs) or an already loaded ir.Model -> ir.Model."""
    if isinstance(model, Model):
        return model
    from ..loaders import load

    return load(model, example_inputs)


def input_specs(graph: Graph) -> dict[str, tuple[Value, Any]]:
    specs = {s.name: s for s in graph.input_specs}
    return {v.name: (v, specs.get(v.name)) for v in graph.inputs}


def generate_inputs(
    model: Any, seed: int = 0, graph: Graph | None = None, shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, np.ndarray]:
    """Random inputs from the model's input description (at its default shapes, or ``shapes`` where given):
    normal floats, images uniform in 0..255, integer inputs in the range of the gather they index (token ids),
    else 0/1."""
    graph = graph or load_model(model).graphs[0]
    rng = np.random.default_rng(seed)
    out = {}
    for name, (v, spec) in input_specs(graph).items():
        if v.type.kind == "state":
            continue
        shape = tuple(
            (shapes or {}).get(name)
            or (spec.default_shape if spec and spec.default_shape else None)
            or tuple(d or 1 for d in (v.type.shape or ()))
        )
        dtype = NUMPY_DTYPES.get(v.type.dtype, np.float32)
        source = f"{model.path}: " if isinstance(model, Model) else ""
        allocatable(shape, 8, f"{source}generated input {name!r}")  # 8: the float64/int64 draw before the cast
        if spec is not None and spec.image:
            out[name] = rng.integers(0, 256, shape).astype(dtype)
        elif v.type.dtype.startswith(("int", "uint")):
            out[name] = rng.integers(0, index_bound(graph, v), shape).astype(dtype)
        elif v.type.dtype == "bool":
            out[name] = rng.integers(0, 2, shape).astype(bool)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out


def default_inputs(model: Model, graph: Graph, example_inputs: Any, seed: int) -> dict[str, Any]:
    """A torch module's example inputs (by position), else generated ones."""
    if example_inputs is None:
        return generate_inputs(model, seed, graph)
    examples = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    return dict(zip((v.name for v in graph.inputs), examples))


def index_bound(graph: Graph, v: Value, depth: int = 4) -> int:
    """Upper bound for a generated integer input: the size of the axis a downstream gather indexes."""
    consumers = graph.consumers()
    bounds, frontier = [], [v]
    for _ in range(depth):
        nxt = []
        for val in frontier:
            for o in consumers.get(val.name, []):
                if o.type in ("gather", "gather_along_axis") and o.input("indices") is val:
                    x = o.input("x")
                    axis = int(o.param("axis", 0))
                    if x is not None and x.type.shape and x.type.shape[axis] is not None:
                        bounds.append(x.type.shape[axis])
                elif o.type in ("cast", "select", "add", "greater_equal", "less", "squeeze", "expand_dims", "reshape"):
                    nxt.extend(out for out in o.outputs if out.type.dtype.startswith(("int", "uint")))
        frontier = nxt
    return min(bounds) if bounds else 2


def check_inputs(graph: Graph, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Validate names, shapes and dtypes against the graph inputs; ModelError names the problem."""
    specs = input_specs(graph)
    described = ", ".join(f"{n} ({v.type})" for n, (v, _) in specs.items())
    out = {}
    for name, value in inputs.items():
        if name not in specs:
            raise ModelError(f"unknown input {name!r}; the model's inputs are: {described}")
        v, spec = specs[name]
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        want = v.type.dtype
        kind_ok = arr.dtype.kind in (
            "fiub" if want.startswith("fp") else "iub" if want.startswith(("int", "uint", "bool")) else ""
        )
        if not kind_ok:
            raise ModelError(f"input {name!r}: dtype {arr.dtype} does not fit the model's {want} input")
        shape = v.type.shape
        fits = shape is None or len(shape) == arr.ndim and all(d is None or d == n for d, n in zip(shape, arr.shape))
        if v.type.kind != "state" and not fits:
            raise ModelError(f"input {name!r}: shape {tuple(arr.shape)} does not match the model's {v.type}")
        if (
            spec is not None
            and spec.enumerated_shapes
            and tuple(arr.shape) not in [tuple(s) for s in spec.enumerated_shapes]
        ):
            raise ModelError(
                f"input {name!r}: shape {tuple(arr.shape)} is not one of the enumerated shapes {spec.enumerated_shapes}"
            )
        out[name] = arr
    missing = [n for n, (v, _) in specs.items() if n not in out and v.type.kind != "state"]
    if missing:
        raise ModelError(
            f"missing input{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
            f"the model's inputs are: {described}"
        )
    return out


def load_inputs(*sources: str | os.PathLike) -> dict[str, np.ndarray]:
    """Inputs from ``.npz`` files (every array, by its name) and ``name=file.npy`` / ``name=file.npz`` pairs."""
    out: dict[str, np.ndarray] = {}
    for src in map(str, sources):
        name, _, path = src.rpartition("=") if "=" in src and not os.path.lexists(plain(src)) else ("", "", src)
        data = read_arrays(Path(path))
        if isinstance(data, np.ndarray):
            if not name:
                raise ModelError(f"{path}: a .npy file holds one array; name it as NAME={path}")
            out[name] = data
        elif name:
            if name not in data and len(data) != 1:
                raise ModelError(f"{path}: no array named {name!r} (it has {', '.join(data)})")
            out[name] = data[name] if name in data else next(iter(data.values()))
        else:
            out.update(data)
    return out


ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    NotImplementedError,
    RuntimeError,
)  # RuntimeError: an encrypted member


def read_arrays(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """A ``.npy`` array or the arrays of an ``.npz``, read without trusting the file: a regular file within
    the size limit, each array's shape and dtype read from its header and bounded before any data is read
    (a zip bomb or a huge declared shape is refused), no Python objects (pickles) ever loaded."""
    real = checked_file(path, None, "inputs", "input file")
    try:
        with open(real, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                f.seek(0)
                return read_npy(f, str(path))
        with zipfile.ZipFile(real) as archive:
            arrays = {}
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                where = f"{path}: array {name!r}"
                if info.file_size > MAX_ALLOC_BYTES + 65536:
                    raise ModelError(
                        f"{where} inflates to {info.file_size:,} bytes, over the {MAX_ALLOC_BYTES:,}-byte "
                        "limit (ANEDOCTOR_MAX_ALLOC_BYTES)"
                    )
                with archive.open(info) as member:
                    arrays[name] = read_npy(member, where)
            return arrays
    except zipfile.BadZipFile:
        raise ModelError(f"{path}: not a .npy or .npz file") from None
    except ZIP_ERRORS as e:
        raise ModelError(
            f"{path}: cannot read inputs ({type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''})"
        ) from None


def read_npy(f, where: str) -> np.ndarray:
    """One array from an open .npy stream; header checked (no objects, bounded size) before the data is read."""
    try:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(f)
    except (ValueError, EOFError, OSError) as e:
        raise ModelError(
            f"{where}: not a valid .npy array ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__})"
        ) from None
    if dtype.hasobject:
        raise ModelError(f"{where}: holds Python objects (dtype {dtype}); inputs must be numeric arrays")
    allocatable(shape, dtype.itemsize, where)
    nbytes = math.prod(shape) * dtype.itemsize
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise ModelError(f"{where}: truncated (holds {len(data):,} of the {nbytes:,} bytes its shape {shape} needs)")
    arr = np.frombuffer(data, dtype=dtype)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive of named arrays. Any name works: ``np.savez(**arrays)`` breaks on names such as
    ``file`` or ``allow_pickle``, which a model's outputs may well have."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def save_outputs(path: str | os.PathLike, outputs: dict[str, np.ndarray]) -> Path:
    """Write arrays to ``path`` as .npz, atomically."""
    from ..util import write_atomic

    return write_atomic(path, npz_bytes(outputs))
