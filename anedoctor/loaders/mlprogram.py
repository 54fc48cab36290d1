"""ML Program (``.mlpackage`` / ``mlProgram`` spec) -> IR.

Walks the protobuf once. ``const`` ops become constant Values, not ops; weights in the
blob file stay :class:`BlobRef` s and large inline tensors stay undecoded until asked for.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..ir import Block, Graph, InputSpec, LazyConst, Op, TensorType, Value
from ..ir.dtypes import NUMPY_DTYPES
from .blob import BlobRef
from .files import allocatable, bounded_shape, resolve_inside

# MIL proto DataType enum -> IR dtype name
PROTO_DTYPES = {
    0: "unused",
    1: "bool",
    2: "string",
    10: "fp16",
    11: "fp32",
    12: "fp64",
    13: "bf16",
    21: "int8",
    22: "int16",
    23: "int32",
    24: "int64",
    25: "int4",
    31: "uint8",
    32: "uint16",
    33: "uint32",
    34: "uint64",
    35: "uint4",
    36: "uint2",
    37: "uint1",
    38: "uint6",
    39: "uint3",
    40: "fp8e4m3fn",
    41: "fp8e5m2",
}
# FeatureTypes ArrayDataType enum -> IR dtype
ARRAY_DTYPES = {65568: "fp32", 65600: "fp64", 131104: "int32", 65552: "fp16", 131080: "int8"}
EAGER_LIMIT = 64  # inline tensors up to this many elements are decoded while loading
SHARED_CONSTANT_BYTES = 512  # serialised constants up to this size are decoded once and shared


def opset_to_target(opset: str) -> str:
    """'CoreML7' -> 'ios17' (the opset names the minimum OS of an ML Program function)."""
    digits = "".join(ch for ch in opset if ch.isdigit())
    version = {"5": 15, "6": 16, "7": 17, "8": 18, "9": 26}.get(digits)
    return f"ios{version}" if version else opset.lower()


def tensor_type(vt) -> TensorType:
    """Proto ValueType -> TensorType (memoised on the serialised type: big programs repeat a few types)."""
    key = vt.SerializeToString()
    cached = TYPE_CACHE.get(key)
    if cached is None:
        if len(TYPE_CACHE) > 65536:
            TYPE_CACHE.clear()
        cached = TYPE_CACHE[key] = decode_type(vt)
    return cached


TYPE_CACHE: dict[bytes, TensorType] = {}


def decode_type(vt) -> TensorType:
    kind = vt.WhichOneof("type")
    if kind == "stateType":
        inner = tensor_type(vt.stateType.wrappedType)
        return TensorType(inner.dtype, inner.shape, "state")
    if kind != "tensorType":
        return TensorType(
            "", None, {"listType": "list", "dictionaryType": "dict", "tupleType": "tuple"}.get(kind, "tensor")
        )
    t = vt.tensorType
    dtype = PROTO_DTYPES.get(t.dataType, "unused")
    if t.rank < 0:
        return TensorType(dtype, None)
    dims = tuple(d.constant.size for d in t.dimensions)
    if 0 in dims:  # an unknown dim reads as size 0; tell it apart from a real zero-size dim
        dims = tuple(d.constant.size if d.WhichOneof("dimension") == "constant" else None for d in t.dimensions)
    return TensorType(dtype, bounded_shape(dims, "tensor type"))


class InlineTensor(LazyConst):
    """An immediate tensor too large to decode eagerly."""

    def __init__(self, proto, ttype: TensorType):
        self.proto, self.ttype = proto, ttype

    def load(self) -> Any:
        return decode_tensor(self.proto, self.ttype)


def decode_tensor(tv, ttype: TensorType) -> Any:
    """Proto TensorValue -> numpy array (or python scalar / str for rank 0)."""
    which = tv.WhichOneof("value")
    if which is None:
        dtype = np.dtype(NUMPY_DTYPES.get(ttype.dtype, np.float32))
        return np.zeros(
            allocatable(tuple(d or 0 for d in ttype.shape or ()), dtype.itemsize, "an empty constant"), dtype
        )
    if which == "bytes":
        np_dtype = NUMPY_DTYPES.get(ttype.dtype, np.uint8)
        arr = (
            np.frombuffer(tv.bytes.values, dtype=np_dtype)
            if ttype.dtype in NUMPY_DTYPES
            else np.frombuffer(tv.bytes.values, np.uint8)
        )
    else:
        values = list(getattr(tv, which).values)
        if which == "strings":
            return values[0] if ttype.shape == () and values else values
        arr = np.asarray(values, dtype=NUMPY_DTYPES.get(ttype.dtype, np.float32))
    if ttype.is_static and arr.size == (ttype.numel or 0):
        arr = arr.reshape(ttype.shape)
    return arr[()] if ttype.shape == () and arr.size == 1 else arr


def decode_value(value, weights_dir: Path | None, ttype: TensorType) -> Any:
    """Proto Value (immediate or blob) -> constant payload."""
    which = value.WhichOneof("value")
    if which == "blobFileValue":
        return blob_ref(value.blobFileValue.fileName, value.blobFileValue.offset, weights_dir, ttype)
    imm = value.immediateValue
    kind = imm.WhichOneof("value")
    if kind == "tensor":
        n = ttype.numel
        if n is not None and n > EAGER_LIMIT:
            return InlineTensor(imm.tensor, ttype)
        return decode_tensor(imm.tensor, ttype)
    if kind == "list":
        return [decode_value(v, weights_dir, tensor_type(v.type)) for v in imm.list.values]
    if kind == "tuple":
        return tuple(decode_value(v, weights_dir, tensor_type(v.type)) for v in imm.tuple.values)
    return None


def blob_ref(file_name: str, offset: int, weights_dir: Path | None, ttype: TensorType) -> BlobRef:
    """Resolve ``@model_path/weights/x.bin`` inside the model; refuse paths that escape it."""
    if weights_dir is None:
        raise ModelError(f"weight file {file_name} is referenced but the model has no weights folder")
    return BlobRef(
        resolve_weight_file(file_name, weights_dir),
        int(offset),
        ttype.dtype,
        tuple(d or 0 for d in (ttype.shape or ())),
    )


@functools.lru_cache(maxsize=64)
def resolve_weight_file(file_name: str, weights_dir: Path) -> Path:
    path = resolve_inside(weights_dir, file_name.removeprefix("@model_path/").removeprefix("weights/"))
    if path is None:
        raise ModelError(f"{weights_dir}: weight path {file_name!r} points outside the model")
    return path


class ProgramReader:
    """Builds IR graphs from the functions of one ``mlProgram`` message."""

    def __init__(self, weights_dir: Path | None):
        self.weights_dir = weights_dir
        self.constants: dict[bytes, tuple[TensorType, Any]] = {}  # serialised small Value -> (type, payload)

    def graph(self, name: str, function, input_specs: list[InputSpec]) -> Graph:
        opset = function.opset
        if opset not in function.block_specializations:
            raise ModelError(f"function {name!r} has no block for its opset {opset!r}")
        block = function.block_specializations[opset]
        values: dict[str, Value] = {}
        inputs = []
        for nvt in function.inputs:
            try:
                v = Value(nvt.name, tensor_type(nvt.type))
            except ModelError as e:
                raise ModelError(f"function {name!r}, input {nvt.name!r}: {e}") from None
            values[nvt.name] = inputs.append(v) or v
        ops = self.block_ops(block, values, opset_to_target(opset))
        outputs = [self.lookup(values, n) for n in block.outputs]
        states = [v for v in inputs if v.type.kind == "state"]
        return Graph(name, ops, inputs, outputs, input_specs, opset_to_target(opset), states)

    def block_ops(self, block, values: dict[str, Value], opset: str) -> list[Op]:
        """The ops of a block; a ModelError names the op it comes from."""
        ops: list[Op] = []
        for k, p in enumerate(block.operations):
            try:
                op = self.operation(p, values, opset)
            except ModelError as e:
                out = p.outputs[0].name if p.outputs else f"#{k}"
                raise ModelError(f"op {out!r} ({p.type}): {e}") from None
            if op is not None:
                ops.append(op)
        return ops

    def operation(self, p, values: dict[str, Value], opset: str) -> Op | None:
        """One operation proto -> an Op, or None for a const (which becomes a constant Value).
        The hottest path of `check` on big models: proto maps are iterated by key (their
        items() is a slow Python mixin) and identical small constants are decoded once."""
        op_type = p.type
        attributes = p.attributes
        if op_type == "const":
            if len(p.outputs) != 1:
                raise ModelError(f"a const must have exactly one output, has {len(p.outputs)}")
            out = p.outputs[0]
            if "val" in attributes:  # (indexing a proto map with a missing key would insert it)
                ttype, payload = self.constant(attributes["val"])
                if isinstance(payload, BlobRef):
                    payload = dataclasses.replace(payload, name=out.name)
            else:
                ttype, payload = tensor_type(out.type), None
            values[out.name] = Value(out.name, ttype, payload if payload is not None else np.zeros(0))
            return None
        inputs: dict[str, Value | list[Value]] = {}
        proto_inputs = p.inputs
        for arg in declared_order(op_type, proto_inputs):
            bound = [self.binding(b, values) for b in proto_inputs[arg].arguments]
            inputs[arg] = bound[0] if len(bound) == 1 and arg not in VARIADIC_ARGS else bound
        attrs = {}
        name = None
        for key in sorted(attributes):
            if key == "name":
                name = op_name(p)
            else:
                v = attributes[key]
                attrs[key] = decode_value(v, self.weights_dir, tensor_type(v.type))
        outputs = p.outputs
        if not outputs and not name:  # write_state has no outputs; an op with neither cannot be named
            raise ModelError("the op has no name and declares no outputs")
        prefix, _, bare = op_type.rpartition(".")
        op = Op(name or outputs[0].name, bare, inputs, [], prefix or opset, attrs)
        for nvt in outputs:
            v = values[nvt.name] = Value(nvt.name, tensor_type(nvt.type), producer=op)
            op.outputs.append(v)
        for b in p.blocks:
            inner = dict(values)
            b_inputs = [Value(i.name, tensor_type(i.type)) for i in b.inputs]
            inner.update((v.name, v) for v in b_inputs)
            b_ops = self.block_ops(b, inner, opset)
            op.blocks.append(Block(b_inputs, b_ops, [self.lookup(inner, n) for n in b.outputs]))
        return op

    def constant(self, value) -> tuple[TensorType, Any]:
        """A const op's type and payload. Small values (strides, pads, flags, blob references)
        are decoded once per distinct content and shared read-only: big programs repeat them
        thousands of times."""
        key = value.SerializeToString()
        known = self.constants.get(key)
        if known is None:
            ttype = tensor_type(value.type)
            payload = decode_value(value, self.weights_dir, ttype)
            if isinstance(payload, np.ndarray):
                payload.flags.writeable = False
            known = (ttype, payload)
            if len(key) <= SHARED_CONSTANT_BYTES:
                self.constants[key] = known
        return known

    def binding(self, b, values: dict[str, Value]) -> Value:
        name = b.name
        if name:
            return self.lookup(values, name)
        ttype = tensor_type(b.value.type)
        return Value("<immediate>", ttype, decode_value(b.value, self.weights_dir, ttype))

    @staticmethod
    def lookup(values: dict[str, Value], name: str) -> Value:
        try:
            return values[name]
        except KeyError:
            raise ModelError(f"the program uses value {name!r} before defining it") from None


def op_name(p) -> str | None:
    """The ``name`` attribute of an operation proto; ModelError when it is there but holds no string."""
    if "name" not in p.attributes:
        return None
    strings = p.attributes["name"].immediateValue.tensor.strings.values
    if len(strings) != 1:
        raise ModelError(f"its name attribute holds {len(strings)} strings, not one")
    return strings[0]


def declared_order(op_type: str, args) -> list[str]:
    """An op's argument names in the order its MIL definition declares them (x, weight, bias ...).

    Proto maps do not keep order (upb iterates them in a per-process hash order), so reports
    would list inputs differently from run to run; unknown names follow, sorted."""
    rank = argument_ranks(op_type)
    return sorted(args, key=lambda a: (rank.get(a, len(rank)), a))


@functools.lru_cache(maxsize=None)
def argument_ranks(op_type: str) -> dict[str, int]:
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    versions = SSAOpRegistry.core_ops.get(op_type.rpartition(".")[2]) or {}
    op_class = versions[max(versions)] if versions else None
    return {name: i for i, name in enumerate(op_class.input_spec.input_types)} if op_class else {}


VARIADIC_ARGS = frozenset({"values", "inputs", "_values", "cond_var", "loop_vars"})


def input_specs(description) -> list[InputSpec]:
    """Model description inputs -> InputSpecs with their flexibility (range / enumerated)."""
    specs = []
    for f in description.input:
        kind = f.type.WhichOneof("Type")
        if kind == "multiArrayType":
            t = f.type.multiArrayType
            shape = bounded_shape(tuple(int(d) for d in t.shape), f"model description, input {f.name!r}")
            flex, enum, ranges = "fixed", [], []
            which = t.WhichOneof("ShapeFlexibility")
            if which == "shapeRange" and any(r.lowerBound != r.upperBound for r in t.shapeRange.sizeRanges):
                flex, ranges = "range", [(int(r.lowerBound), int(r.upperBound)) for r in t.shapeRange.sizeRanges]
            elif which == "enumeratedShapes" and len(t.enumeratedShapes.shapes) > 1:
                flex, enum = (
                    "enumerated",
                    [
                        bounded_shape(tuple(s.shape), f"model description, input {f.name!r}")
                        for s in t.enumeratedShapes.shapes
                    ],
                )
            dtype = ARRAY_DTYPES.get(t.dataType, "fp32")
            specs.append(InputSpec(f.name, TensorType(dtype, shape), flex, enum, shape, ranges=ranges))
        elif kind == "imageType":
            t = f.type.imageType
            channels = 1 if t.colorSpace in (10, 40) else 3  # GRAYSCALE = 10, GRAYSCALE_FLOAT16 = 40
            shape = bounded_shape(
                (1, channels, int(t.height), int(t.width)), f"model description, image input {f.name!r}"
            )
            flex, enum, ranges = "fixed", [], []
            which = t.WhichOneof("SizeFlexibility")
            if which == "imageSizeRange":
                r = t.imageSizeRange
                if (
                    r.widthRange.lowerBound != r.widthRange.upperBound
                    or r.heightRange.lowerBound != r.heightRange.upperBound
                ):
                    flex = "range"
                    ranges = [(1, 1), (channels, channels)] + [
                        (int(b.lowerBound), int(b.upperBound)) for b in (r.heightRange, r.widthRange)
                    ]
            elif which == "enumeratedSizes" and len(t.enumeratedSizes.sizes) > 1:
                flex = "enumerated"
                enum = [
                    bounded_shape(
                        (1, channels, int(s.height), int(s.width)), f"model description, image input {f.name!r}"
                    )
                    for s in t.enumeratedSizes.sizes
                ]
            specs.append(
                InputSpec(
                    f.name,
                    TensorType("fp16" if t.colorSpace == 40 else "fp32", shape),
                    flex,
                    enum,
                    shape,
                    image=True,
                    ranges=ranges,
                )
            )
        else:
            specs.append(InputSpec(f.name, TensorType(kind or "", None)))
    return specs


def graphs_from_mlprogram(spec, weights_dir: Path | None, prefix: str = "") -> list[Graph]:
    """All functions of an ML Program spec; the default function first."""
    program = spec.mlProgram
    reader = ProgramReader(weights_dir)
    specs = input_specs(spec.description)
    default = spec.description.defaultFunctionName or "main"
    names = sorted(program.functions, key=lambda n: (n != default, n))
    if not names:
        raise ModelError("the ML Program has no functions")
    return [reader.graph(prefix + n, program.functions[n], specs if n == default else []) for n in names]
