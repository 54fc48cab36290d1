"""Core AI ``.aimodel`` folders -> :class:`anedoctor.ir.Model`, read with coreai-core's own MLIR bindings.

An ``.aimodel`` is a folder: ``main.mlirb`` (MLIR bytecode in Apple's ``coreai`` dialect),
``main.hash`` (its sha256) and ``metadata.json``. Every ``coreai`` op is mapped onto the ML Program
(MIL) op vocabulary the rules and the cost model use (``coreai.conv2d`` -> ``conv``,
``decomposable.broadcasting_add`` -> ``add``, the ``layer_norm`` composite -> ``layer_norm`` ...);
composites with no MIL equivalent are inlined from their body, and ops with no mapping keep the
type ``coreai.<name>``. Each op carries its PyTorch source location (file, line, module path) in
``op.source``. Large weights stay in the bytecode file and are read lazily.

Apple documents the bindings as unversioned ("they track the LLVM pin and may change with any
bump": coreai-core's ``coreai/__init__.py``), so only the tested coreai-core range is accepted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import mmap
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import ModelError
from ..ir import Block, Graph, InputSpec, LazyConst, Model, Op, SourceLocation, TensorType, Value
from ..ir.dtypes import NUMPY_DTYPES
from .blob import SUB_BYTE_BITS

SUPPORTED_COREAI = ">=1.0.0b3,<1.1"  # tested: coreai-core 1.0.0b3 (bindings of its LLVM pin)
INSTALL_HINT = "pip install --pre 'anedoctor[coreai]' (wheels: Linux x86_64, macOS arm64; Python 3.11+)"
COREAI_OS = "ios27"  # .aimodel bytecode is written for the OS 27 dialect (AIProgram._save_bytecode(minimum_os=v27))
EAGER_CONST_ELEMENTS = 64  # constants up to this size are decoded at load (axes, shapes); larger ones lazily
TORCH_LIBRARY = re.compile(r"[/\\](site|dist)-packages[/\\]torch[/\\]")

ELEMENT_TYPES = {  # MLIR element type -> IR dtype
    "f16": "fp16",
    "bf16": "bf16",
    "f32": "fp32",
    "f64": "fp64",
    "i1": "bool",
    "si8": "int8",
    "ui8": "uint8",
    "si16": "int16",
    "ui16": "uint16",
    "si32": "int32",
    "ui32": "uint32",
    "si64": "int64",
    "ui64": "uint64",
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "si4": "int4",
    "ui4": "uint4",
    "f8E4M3FN": "fp8e4m3fn",
    "f8E5M2": "fp8e5m2",
}
TERMINATORS = ("output", "yield", "condition")  # of a graph, an if/while body, a while condition
# MLIR constants numpy can read: exactly the dtypes with a numpy type (the bindings abort the process on others)
BUFFER_DTYPES = NUMPY_DTYPES

UNARY = {
    n: n
    for n in (
        "abs",
        "acos",
        "asin",
        "atan",
        "atanh",
        "cos",
        "cosh",
        "erf",
        "exp",
        "sin",
        "sinh",
        "sqrt",
        "tan",
        "tanh",
        "round",
        "relu",
        "sigmoid",
        "silu",
    )
} | {"not": "logical_not"}
BINARY = {n: n for n in ("add", "sub", "mul", "pow", "maximum", "minimum", "equal", "not_equal", "greater")} | {
    "divide": "real_div",
    "floor_divide": "floor_div",
    "modulo": "mod",
    "and": "logical_and",
    "or": "logical_or",
    "xor": "logical_xor",
}
REDUCE = {
    "reduce_mean": "reduce_mean",
    "reduce_sum": "reduce_sum",
    "reduce_max": "reduce_max",
    "reduce_min": "reduce_min",
    "reduce_product": "reduce_prod",
}
# coreai op -> (MIL op, MIL argument name per operand position, constant attributes)
DIRECT: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    **{k: (v, ("x",), {}) for k, v in UNARY.items()},
    **{k: (v, ("x", "y"), {}) for k, v in BINARY.items()},
    **{f"decomposable.broadcasting_{k}": (v, ("x", "y"), {}) for k, v in BINARY.items()},
    **{k: (v, ("x", "axes"), {}) for k, v in REDUCE.items()},
    "rsqrt": ("rsqrt", ("x",), {"epsilon": 0.0}),
    "log": ("log", ("x",), {"epsilon": 0.0}),
    "where": ("select", ("cond", "a", "b"), {}),
    "decomposable.broadcasting_where": ("select", ("cond", "a", "b"), {}),
    "batch_matmul": ("matmul", ("x", "y"), {}),
    "decomposable.broadcasting_batch_matmul": ("matmul", ("x", "y"), {}),
    "conv2d": ("conv", ("x", "weight", "strides", "dilations", "groups"), {"pad_type": "valid"}),
    "conv3d": ("conv", ("x", "weight", "strides", "dilations", "groups"), {"pad_type": "valid"}),
    "softmax": ("softmax", ("x", "axis"), {}),
    "argmax": ("reduce_argmax", ("x", "axis"), {"keep_dims": True}),
    "reshape": ("reshape", ("x", "shape"), {}),
    "transpose": ("transpose", ("x", "perm"), {}),
    "expand_dims": ("expand_dims", ("x", "axes"), {}),
    "shrink_dims": ("squeeze", ("x", "axes"), {}),
    "slice": ("slice_by_index", ("x", "begin", "end", "stride"), {}),
    "slice_update": ("slice_update", ("x", "begin", "end", "stride", "update"), {}),
    "pad": ("pad", ("x", "pad", "constant_val"), {}),
    "tile": ("tile", ("x", "reps"), {}),
    "split": ("split", ("x", "split_sizes", "axis"), {}),
    "reverse": ("reverse", ("x", "axes"), {}),
    "gather_along_axis": ("gather_along_axis", ("x", "indices", "axis"), {}),
    "gather_nd": ("gather_nd", ("x", "indices"), {}),
    "cast": ("cast", ("x",), {}),
    "gelu": ("gelu", ("x",), {}),
    "get_shape": ("shape", ("x",), {}),
    "range": ("range_1d", ("start", "end", "step"), {}),
    "non_zero": ("non_zero", ("x",), {}),
    "max_pool_2d": ("max_pool", ("x", "kernel_sizes", "strides", "dilations", "ceil_mode"), {"pad_type": "valid"}),
    # adaptive_avg_pool2d to a size > 1: a window sum, then a real_div by the window's area; MIL has no sum pool
    "sum_pool_2d": ("coreai.sum_pool_2d", ("x", "kernel_sizes", "strides", "dilations"), {}),
    "concat": ("concat", ("axis",), {"interleave": False}),  # the other operands are the values
}


# ------------------------------------------------------------------ the bindings, version-checked


@functools.cache
def bindings() -> SimpleNamespace:
    """coreai-core's MLIR bindings, or a one-line ModelError when missing or of an untested version."""
    from packaging.specifiers import SpecifierSet

    try:
        version = importlib.metadata.version("coreai-core")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"reading Core AI models needs coreai-core {SUPPORTED_COREAI}: {INSTALL_HINT}") from None
    if not SpecifierSet(SUPPORTED_COREAI, prereleases=True).contains(version):
        raise ModelError(
            f"coreai-core {version} is installed; anedoctor reads .aimodel only with coreai-core "
            f"{SUPPORTED_COREAI} (Apple's MLIR bindings are unversioned and change with each release)"
        )
    try:
        import coreai.authoring  # noqa: F401  (first: the dialect modules import it back)
        from coreai._compiler import ir
        from coreai._compiler._mlir_libs._coreaiIR._bindings import mlir as locations
        from coreai._compiler._mlir_libs._coreaiIR._bindings.compiler import (
            load_module_from_bytecode,
        )
        from coreai.authoring.context import Context
    except ImportError as e:
        raise ModelError(f"coreai-core {version}: its MLIR bindings do not import ({e}); {INSTALL_HINT}") from None
    return SimpleNamespace(version=version, ir=ir, locations=locations, load=load_module_from_bytecode, context=Context)


# ------------------------------------------------------------------ weights kept in the bytecode file


def _varint(buf: mmap.mmap, pos: int) -> tuple[int, int]:
    """MLIR bytecode's prefix varint: the first byte's trailing zeros count the extra bytes."""
    first = buf[pos]
    if first & 1:
        return first >> 1, pos + 1
    if first == 0:
        return int.from_bytes(buf[pos + 1 : pos + 9], "little"), pos + 9
    n = (first & -first).bit_length()
    return int.from_bytes(buf[pos : pos + n], "little") >> n, pos + n


def resource_blobs(path: Path) -> dict[str, tuple[int, int]]:
    """Offset and size of every dialect resource blob (``dense_resource<name>`` weights) in an MLIR
    bytecode file, by name; read from the section layout of llvm-project's BytecodeReader.cpp
    (string section 0, resource section 5, resource offsets 6), since the bindings expose no blob reader."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return _resource_blobs(buf)


def _resource_blobs(buf: mmap.mmap) -> dict[str, tuple[int, int]]:
    _, pos = _varint(buf, 4)  # magic "ML\xefR", then the version
    pos = bytes(buf[pos : pos + 256]).index(b"\0") + pos + 1  # producer string
    sections: dict[int, tuple[int, int]] = {}
    while pos < len(buf):
        code = buf[pos]
        length, pos = _varint(buf, pos + 1)
        if code & 0x80:
            align, pos = _varint(buf, pos)
            pos += -pos % align
        sections[code & 0x7F] = (pos, length)
        pos += length
    if 5 not in sections or 6 not in sections:
        return {}
    strings = _strings(buf, *sections[0])
    p, end = sections[6][0], sum(sections[6])
    _, p = _varint(buf, p)  # number of external groups; each group, external or dialect-owned, starts with its key
    data = sections[5][0]
    blobs = {}
    while p < end:
        _, p = _varint(buf, p)
        count, p = _varint(buf, p)
        for _ in range(count):
            key, p = _varint(buf, p)
            size, p = _varint(buf, p)
            p += 1  # entry kind (0 = blob)
            align, q = _varint(buf, data)
            nbytes, q = _varint(buf, q)
            q += -q % max(align, 1)
            blobs[strings[key]] = (q, nbytes)
            data += size
    return blobs


def _strings(buf: mmap.mmap, start: int, length: int) -> list[str]:
    """The bytecode string table: a count, the sizes in reverse order, then the NUL-ended strings."""
    count, pos = _varint(buf, start)
    sizes = []
    for _ in range(count):
        size, pos = _varint(buf, pos)
        sizes.append(size)
    strings, end = [""] * count, start + length
    for i, size in zip(range(count - 1, -1, -1), sizes):
        strings[i] = bytes(buf[end - size : end - 1]).decode("utf-8", "replace")
        end -= size
    return strings


@dataclass
class ResourceConst(LazyConst):
    """A weight stored as a resource blob in ``main.mlirb``, read on demand."""

    path: Path
    offset: int
    nbytes: int
    dtype: str
    shape: tuple[int, ...]

    def load(self) -> np.ndarray:
        if self.dtype in SUB_BYTE_BITS:  # packed (lowest bits first); the executor unpacks it as coremltools' blobs
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                return np.fromfile(f, np.uint8, self.nbytes)
        np_dtype = BUFFER_DTYPES.get(self.dtype)
        count = int(np.prod(self.shape))
        if np_dtype is None or count * np.dtype(np_dtype).itemsize != self.nbytes:
            raise ModelError(
                f"{self.path}: cannot decode a {self.dtype}{list(self.shape)} weight of {self.nbytes} bytes"
            )
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return np.fromfile(f, np_dtype, count).reshape(self.shape)


@dataclass
class DenseConst(LazyConst):
    """A large inline constant, decoded from the MLIR attribute when first asked for."""

    attr: Any
    dtype: str

    def load(self) -> np.ndarray:
        if self.dtype not in BUFFER_DTYPES:
            raise ModelError(f"cannot decode a {self.dtype} constant from the Core AI program")
        return np.array(bindings().ir.DenseElementsAttr(self.attr))


# ------------------------------------------------------------------ loading


def load_aimodel(path: str | Path, module_paths: dict[str, str] | None = None) -> Model:
    """Read a ``.aimodel`` folder. ``module_paths`` maps Core AI's module names (``Conv2d$2``) to the
    torch attribute paths (``encoder.conv``) when the converting module is known."""
    path = Path(path)
    bytecode = path / "main.mlirb"
    if not path.is_dir():
        raise ModelError(f"{path}: a Core AI model is a folder (.aimodel) holding main.mlirb")
    if not bytecode.is_file():
        raise ModelError(f"{path}: not a Core AI model (no main.mlirb in the folder)")
    with open(bytecode, "rb") as f:
        magic = f.read(4)
    if magic != b"ML\xefR":
        raise ModelError(f"{bytecode}: not MLIR bytecode (the file does not start with the magic 'ML\\xefR')")
    b = bindings()
    notes = _check_hash(path, bytecode)
    try:
        metadata = json.loads((path / "metadata.json").read_text()) if (path / "metadata.json").exists() else {}
    except (OSError, ValueError) as e:
        raise ModelError(f"{path / 'metadata.json'}: malformed ({e.__class__.__name__}: {e})") from None
    target = _readable(path, bytecode)
    context = b.context()._mlir_context
    try:
        module = b.load(context=context, path=bytecode)
    except Exception as e:  # noqa: BLE001  (the bindings raise several types, with multi-line diagnostics)
        raise ModelError(f"{bytecode}: coreai-core {b.version} cannot read it: {_first_line(e)}") from None
    reader = ProgramReader(b, bytecode, module, module_paths or {})
    try:
        graphs = [reader.graph(g) for g in reader.public_graphs()]
    except (AttributeError, TypeError, KeyError, IndexError) as e:  # the bindings' surface changed under us
        raise ModelError(
            f"{bytecode}: coreai-core {b.version}'s bindings do not read as expected "
            f"({e.__class__.__name__}: {e}); anedoctor supports coreai-core {SUPPORTED_COREAI}"
        ) from None
    notes.append(
        "Core AI: placement is predicted with the Core ML evidence (rules, segment costs); Core AI's own "
        "partitioner may differ, and each Neural Engine region is a separate submission (rule CAI-3). "
        "Apple's placement is read on macOS 27 with coreai_torch.debugging.ComputePlan"
    )
    unknown = sorted({op.type for g in graphs for op in g.ops if op.type.startswith("coreai.")})
    if unknown:
        notes.append(f"Core AI ops with no ML Program equivalent (no rules or costs): {', '.join(unknown)}")
    model = Model(str(path), "coreai", graphs, 0, target, metadata.get("producer", ""), notes)
    model.weights_bytes = bytecode.stat().st_size
    return model


def _readable(path: Path, bytecode: Path) -> str:
    """Parse-check the program with coreai-core's asset reader, which reports a bad file by returning
    no functions; the MLIR bindings instead abort the whole process (std::bad_cast) on a corrupt file.
    Returns the OS the program is written for (its compatibility version, e.g. "ios27")."""
    from coreai.authoring.asset import AIModelAsset

    with _stderr_captured() as diagnostics:
        try:
            summary = AIModelAsset.load(path).summary(include_statistics=False)
        except RuntimeError as e:
            raise ModelError(f"{path}: coreai-core cannot open the asset: {_first_line(e)}") from None
        errors = [line.split("error:", 1)[1].strip() for line in diagnostics() if "error:" in line]
    if summary is None or not summary.function_names:
        raise ModelError(f"{bytecode}: not a readable Core AI program ({(errors or ['no function in it'])[0][:160]})")
    major = (getattr(summary, "_compatibility_version", None) or "").split(".")[0]
    return f"ios{major}" if major.isdigit() else COREAI_OS


@contextlib.contextmanager
def _stderr_captured():
    """Collect what native code writes to file descriptor 2 (MLIR diagnostics) instead of showing it."""
    with tempfile.TemporaryFile("w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: sink.seek(0) or sink.read().decode("utf-8", "replace").splitlines()
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _check_hash(path: Path, bytecode: Path) -> list[str]:
    digest = path / "main.hash"
    if not digest.exists():
        return []
    with open(bytecode, "rb") as f:
        actual = hashlib.file_digest(f, "sha256").digest()
    if digest.read_bytes() != actual:
        return [f"{digest.name} does not match main.mlirb (edited after saving?); Core AI may refuse to load it"]
    return []


class ProgramReader:
    """Walks a loaded Core AI module and builds IR graphs."""

    def __init__(self, b: SimpleNamespace, bytecode: Path, module: Any, module_paths: dict[str, str]):
        self.b, self.ir, self.bytecode, self.module_paths = b, b.ir, bytecode, module_paths
        self.graph_ops = {
            str(self.ir.StringAttr(op.operation.attributes["sym_name"]).value): op.operation
            for op in module.body.operations
            if op.operation.name == "coreai.graph"
        }
        self.blobs: dict[str, tuple[int, int]] | None = None
        self.origin: dict[str, Any] = {}  # IR op name -> the MLIR op it was read from (for rewrites)

    def public_graphs(self) -> list[Any]:
        return [g for g in self.graph_ops.values() if "priv" not in g.attributes]

    def graph(self, graph_op: Any) -> Graph:
        name = str(self.ir.StringAttr(graph_op.attributes["sym_name"]).value)
        block = graph_op.regions[0].blocks[0]
        self.values: dict[Any, Value] = {}
        self.names: dict[str, int] = {}
        self.const_count = 0
        arg_names = _names(graph_op, "arg_attrs") or [f"input_{i}" for i in range(len(block.arguments))]
        inputs = [Value(n, self.tensor_type(a.type)) for n, a in zip(arg_names, block.arguments)]
        self.values.update(zip(block.arguments, inputs))
        ops: list[Op] = []
        outputs = self.walk(block, ops, "")
        for out_name, v in zip(_names(graph_op, "res_attrs"), outputs):
            if out_name and v.producer is not None and out_name not in self.names:
                v.name = out_name
                self.names[out_name] = 1
        specs = [InputSpec(v.name, v.type, "fixed" if v.type.is_static else "unbounded") for v in inputs]
        return Graph(name, ops, inputs, outputs, specs, COREAI_OS)

    def walk(self, block: Any, ops: list[Op], prefix: str, source: SourceLocation | None = None) -> list[Value]:
        """Append the block's ops to ``ops``; return the values its terminator yields."""
        for mlir_op in block.operations:
            o = mlir_op.operation
            short = o.name.removeprefix("coreai.")
            if short in TERMINATORS:
                return [self.value(x) for x in o.operands]
            if short == "constant":
                self.values[o.results[0]] = self.constant(o)
                continue
            loc = source or self.source(o.location)
            if short == "invoke" and self.invoke(o, ops, prefix, loc):
                continue
            op = self.op(o, short, self.base_name(o, short, prefix), loc)
            ops.append(op)
        raise ModelError(f"{self.bytecode}: a coreai block has no terminator (output, yield or condition)")

    def op(self, o: Any, short: str, name: str, source: SourceLocation | None) -> Op:
        operands = [self.value(x) for x in o.operands]
        outputs = [Value(name if i == 0 else f"{name}_{i}", self.tensor_type(r.type)) for i, r in enumerate(o.results)]
        mil, arg_names, attrs = DIRECT.get(short, (f"coreai.{short}", (), {}))
        if short == "max_pool_2d" and not (operands[3].is_const and np.all(np.asarray(operands[3].data()) == 1)):
            mil, arg_names, attrs = f"coreai.{short}", (), {}  # MIL's max_pool has no dilation
        attrs = dict(attrs)
        resize = short == "interpolate" and resize_op(str(o.attributes["interpolation_mode"]), operands, outputs[0])
        compressed = short in ("dequantize", "lut_to_dense") and constexpr_op(short, name, operands)
        if compressed:
            mil, inputs = compressed
        elif resize:
            mil, inputs, attrs = resize[0], {"x": operands[0]}, resize[1]
        elif short == "concat":
            inputs: dict[str, Any] = {"axis": operands[0], "values": operands[1:]}
        else:
            inputs = {arg_names[i] if i < len(arg_names) else f"operand_{i}": v for i, v in enumerate(operands)}
        self.extra_attrs(short, o, inputs, outputs, attrs)
        blocks = [self.block(region.blocks[0], f"{name}.{i}") for i, region in enumerate(o.regions)]
        if short == "if" and len(blocks) == 2:
            mil, inputs = "cond", {"pred": operands[0]}
        elif short == "while" and len(blocks) == 2 and blocks[0].outputs[1:] == blocks[0].inputs:
            mil, inputs = "while_loop", {"loop_vars": operands}  # the condition forwards the loop state unchanged
            blocks[0].outputs = blocks[0].outputs[:1]
        op = Op(name, mil, inputs, outputs, "", attrs, blocks=blocks, source=source)
        return self.bind(o, op)

    def block(self, mlir_block: Any, name: str) -> Block:
        """A control-flow region (coreai.if / coreai.while) as a nested block whose ops keep their own names and
        source lines; it reads outer values directly. Its arguments are named ``<op>.<region>.arg<i>``."""
        inputs = [Value(f"{name}.arg{i}", self.tensor_type(a.type)) for i, a in enumerate(mlir_block.arguments)]
        self.values.update(zip(mlir_block.arguments, inputs))
        ops: list[Op] = []
        outputs = self.walk(mlir_block, ops, "")
        return Block(inputs, ops, outputs)

    def bind(self, o: Any, op: Op) -> Op:
        """Make ``op``'s outputs the IR values of the MLIR op ``o``'s results."""
        for r, v in zip(o.results, op.outputs):
            v.producer = op
            self.values[r] = v
        self.origin[op.name] = o
        return op

    def extra_attrs(self, short: str, o: Any, inputs: dict[str, Any], outputs: list[Value], attrs: dict) -> None:
        """The MIL parameters that Core AI states in types or attributes rather than operands."""
        if short == "cast":
            attrs["dtype"] = outputs[0].type.dtype
        elif short == "gelu":
            approx = str(o.attributes["approximate"]) if "approximate" in o.attributes else ""
            attrs["mode"] = "TANH_APPROXIMATION" if "tanh" in approx else "EXACT"
        elif short == "pad":
            mode = str(o.attributes["padding_mode"]) if "padding_mode" in o.attributes else "constant"
            attrs["mode"] = next((m for m in ("reflect", "replicate") if m in mode), "constant")
        elif short in REDUCE:
            x = inputs["x"]
            attrs["keep_dims"] = x.type.rank == outputs[0].type.rank

    def invoke(self, o: Any, ops: list[Op], prefix: str, source: SourceLocation | None) -> bool:
        """A composite call: one MIL op when the composite has an equivalent, else its body inlined."""
        callee = re.search(r"@([\w.$-]+)", str(o.attributes["callee"]))  # #param.constant<@name> : !param.symbol
        graph_op = callee and self.graph_ops.get(callee.group(1))
        if graph_op is None:
            return False
        decl = _composite(graph_op)
        args = [self.value(x) for x in o.operands]
        name = self.base_name(o, decl[0] if decl else callee.group(1), prefix)
        mapped = decl and composite_op(decl[0], dict(zip(decl[1], args)), decl[2])
        if mapped:
            outputs = [Value(name, self.tensor_type(r.type)) for r in o.results]
            ops.append(self.bind(o, Op(name, mapped[0], mapped[1], outputs, "", mapped[2], source=source)))
            return True
        block = graph_op.regions[0].blocks[0]
        self.values.update(zip(block.arguments, args))
        for r, v in zip(o.results, self.walk(block, ops, name + ".", source)):
            self.values[r] = v
        return True

    def value(self, mlir_value: Any) -> Value:
        v = self.values.get(mlir_value)
        if v is None:
            raise ModelError(
                f"{self.bytecode}: an op reads a value defined neither in its graph nor in an enclosing block"
            )
        return v

    def base_name(self, o: Any, short: str, prefix: str = "") -> str:
        """A unique op name: the torch node it came from and the Core AI op, e.g. ``convolution_1.conv2d``;
        inside an inlined composite, the composite's name and the op (``native_group_norm.group_norm.rsqrt``)."""
        short = short.rsplit(".", 1)[-1]
        if prefix:
            base = prefix + short
        else:
            sources = self.b.locations.get_source_info(o.location)
            torch_node = next((i for s in sources if s.name == "torch" for i in s.identifiers), "")
            base = f"{torch_node}.{short}" if torch_node else short
        n = self.names.get(base, 0)
        self.names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def source(self, location: Any) -> SourceLocation | None:
        """The innermost frame outside torch itself, and the module path (None: the op has no location)."""
        frames = tuple(
            (f.filename, int(f.line))
            for f in self.b.locations.get_file_line_col_locations(location)
            if f.filename not in ("", "-")
        )
        stack = list(self.b.locations.get_stack_trace(location) or [])
        names = [self.module_paths.get(s, s) for s in stack[1:]]  # the first is the converted module itself
        module_path = names[-1] if self.module_paths and names else ".".join(names)
        if not frames:
            return None
        user = next((f for f in frames if not TORCH_LIBRARY.search(f[0]) and not f[0].startswith("<")), frames[0])
        return SourceLocation(user[0], user[1], module_path, frames or ((user[0], user[1]),))

    def tensor_type(self, mlir_type: Any) -> TensorType:
        t = self.ir.RankedTensorType(mlir_type) if self.ir.RankedTensorType.isinstance(mlir_type) else None
        if t is None:
            kind = str(mlir_type)
            return TensorType(kind, None, "tensor" if kind.startswith("tensor") else "token")
        dtype = ELEMENT_TYPES.get(str(t.element_type), str(t.element_type))
        return TensorType(dtype, tuple(None if t.is_dynamic_dim(i) else d for i, d in enumerate(t.shape)))

    def constant(self, o: Any) -> Value:
        self.const_count += 1
        ttype = self.tensor_type(o.results[0].type)
        attr = o.attributes["value"]
        if self.ir.DenseResourceElementsAttr.isinstance(attr):
            if self.blobs is None:
                self.blobs = resource_blobs(self.bytecode)
            handle = re.search(r"dense_resource<([^>]+)>", str(attr))
            blob = self.blobs.get(handle.group(1)) if handle else None
            if blob is None:
                raise ModelError(f"{self.bytecode}: weight {handle and handle.group(1)} is not in the file's resources")
            data: Any = ResourceConst(self.bytecode, blob[0], blob[1], ttype.dtype, tuple(ttype.shape or ()))
        elif self.ir.DenseElementsAttr.isinstance(attr) and ttype.dtype in BUFFER_DTYPES:
            small = ttype.numel is not None and ttype.numel <= EAGER_CONST_ELEMENTS
            data = np.array(self.ir.DenseElementsAttr(attr)) if small else DenseConst(attr, ttype.dtype)
        else:
            data = DenseConst(attr, ttype.dtype)  # fails with a clear error only if something reads it
        return Value(f"const_{self.const_count}", ttype, data)


def composite_op(name: str, args: dict[str, Value], attrs: dict[str, str]) -> tuple[str, dict, dict] | None:
    """(MIL op, inputs, attributes) for a Core AI composite with an ML Program equivalent, else None."""
    if name == "layer_norm":
        inputs = {"x": args["input"]} | {k: args[k] for k in ("gamma", "beta") if k in args}
        return (
            "layer_norm",
            inputs,
            {
                "axes": np.array(_ints(attrs.get("axes", "[-1]")), np.int32),
                "epsilon": float(attrs.get("eps", "1e-5").split(":")[0]),
            },
        )
    if (
        name == "scaled_dot_product_attention"
        and set(attrs) <= {"is_causal", "version", "window_size"}
        and attrs.get("is_causal", "false") == "false"
        and _ints(attrs.get("window_size", "0")) == [0]
    ):
        mask = [v for k, v in args.items() if "mask" in k]
        return name, {k: args[k] for k in ("query", "key", "value")} | ({"attn_mask": mask[0]} if mask else {}), {}
    pool_args = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
    rest = [args.get(k) for k in pool_args]
    if name == "avg_pool_2d" and all(v is not None and v.is_const for v in rest) and not np.any(rest[5].data()):
        pad = np.repeat(np.asarray(rest[2].data()).reshape(-1), 2).astype(np.int32)  # (ph, pw) -> [ph, ph, pw, pw]
        return (
            "avg_pool",
            {"x": args["input"], "kernel_sizes": rest[0], "strides": rest[1]},
            {
                "pad_type": "custom",
                "pad": pad,
                "ceil_mode": bool(rest[3].data()),
                "exclude_padding_from_average": not bool(rest[4].data()),
            },
        )
    return None


def constexpr_op(short: str, name: str, operands: list[Value]) -> tuple[str, dict] | None:
    """The ML Program weight decompression (iOS 18 ``constexpr_*``) equal to a Core AI ``dequantize`` or
    ``lut_to_dense`` of constants, so the weight's format is reported (None when an operand is computed).
    ``lut_to_dense`` has the operands of ``constexpr_lut_to_dense``. ``dequantize`` computes
    ``(input - offset1) * scale + offset2`` (coreai-core's DequantizeOp): with ``offset2`` zero that is
    ``constexpr_blockwise_shift_scale`` with ``offset1`` as its offset, a per-axis scale reshaped to the data's
    rank."""
    if not all(v.is_const for v in operands):
        return None
    if short == "lut_to_dense":
        return "constexpr_lut_to_dense", dict(zip(("indices", "lut", "vector_axis"), operands))
    if len(operands) != 5:
        return None
    data, scale, offset1, offset2, axis = operands
    axes = np.asarray(axis.data()).reshape(-1)
    per_axis = bool(scale.type.numel and scale.type.numel > 1)
    if np.any(np.asarray(offset2.data())) or data.type.rank is None or (per_axis and axes.size != 1):
        return None
    shape = [1] * data.type.rank
    if per_axis:
        shape[int(axes[0]) % data.type.rank] = scale.type.numel

    def expanded(v: Value, label: str) -> Value:
        return Value(f"{name}.{label}", TensorType(v.type.dtype, tuple(shape)), np.reshape(v.data(), shape))

    return "constexpr_blockwise_shift_scale", {
        "data": data,
        "scale": expanded(scale, "scale"),
        "offset": expanded(offset1, "offset"),
    }


def resize_op(mode: str, operands: list[Value], out: Value) -> tuple[str, dict] | None:
    """MIL resize for a 2-D ``coreai.interpolate`` whose size, scale and offset are constants: nearest
    (offset 0, torch's floor rule) or bilinear with half-pixel (offset 0) or aligned corners (scale (o-1)/(i-1))."""
    x, _, scale, offset = operands  # the output size is the result type's
    if x.type.rank != 4 or not (x.type.is_static and out.type.is_static and scale.is_const and offset.is_const):
        return None
    (h, w), (oh, ow) = x.type.shape[2:], out.type.shape[2:]
    scale, offset = np.asarray(scale.data(), np.float64)[2:], np.asarray(offset.data(), np.float64).reshape(-1)
    sizes = {"target_size_height": oh, "target_size_width": ow}
    if "nearest" in mode and not offset.any():
        return "resize_nearest_neighbor", sizes
    if "linear" not in mode:
        return None
    if not offset.any() and np.allclose(scale, [oh / h, ow / w]):
        return "resize_bilinear", sizes | {"sampling_mode": "UNALIGN_CORNERS"}
    if min(h, w) > 1 and np.allclose(scale, [(oh - 1) / (h - 1), (ow - 1) / (w - 1)]):
        return "resize_bilinear", sizes | {"sampling_mode": "ALIGN_CORNERS"}
    return None


def _first_line(e: BaseException) -> str:
    """An exception's first message line (MLIR and the converters raise multi-line diagnostics)."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:160]


def _names(graph_op: Any, key: str) -> list[str]:
    """``coreai.name`` of each argument or result of a graph."""
    if key not in graph_op.attributes:
        return []
    found = (re.search(r'coreai\.name = "([^"]*)"', str(a)) for a in graph_op.attributes[key])
    return [m.group(1) if m else "" for m in found]


def _composite(graph_op: Any) -> tuple[str, list[str], dict[str, str]] | None:
    """(name, input names, op attributes as text) of a composite graph's declaration."""
    if "composite_decl" not in graph_op.attributes:
        return None
    text = str(graph_op.attributes["composite_decl"])
    m = re.search(r'<"([\w.]+)" = \{input_names = \[([^\]]*)\], op_attrs = \{(.*?)\}, output_names', text)
    if not m:
        return None
    names = re.findall(r'"([^"]*)"', m.group(2))
    attrs = dict(re.findall(r"(\w+) = (\[[^\]]*\]|[^,]+)", m.group(3)))
    return m.group(1), names, {k: v.strip() for k, v in attrs.items()}


def _ints(text: str) -> list[int]:
    """The integers of an MLIR array attribute such as ``[1 : si64, -1 : si64]``."""
    return [int(x) for x in re.findall(r"-?\d+", re.sub(r":\s*\w+", "", text))]
