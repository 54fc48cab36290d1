"""NeuralNetwork ``.mlmodel`` -> ML Program ``.mlpackage``: the route ``fix`` takes for NeuralNetwork inputs.

The rewrite passes work on ML Programs, and several ANE fixes (space_to_batch for dilated convs, pool
cascades) have no NeuralNetwork layer of the same form, so ``fix`` converts a NeuralNetwork first when
the deployment target allows ML Programs (iOS 15 / macOS 12 and later), and says so. anedoctor's
NeuralNetwork loader already translates every layer into the IR with ML Program op names
(:mod:`anedoctor.loaders.neuralnetwork`); :class:`Emitter` writes that IR back out with coremltools'
MIL builder (``mb``) in the opset of the chosen target. Under the rank-5 mapping of spec <= 3 models
(a ``(C, H, W)`` input is notionally ``[1, 1, C, H, W]``) every runtime tensor is carried at rank 4
(``(1, C, H, W)``; ``(C,)`` as ``(1, C, 1, 1)``) and reshaped back at the outputs, so the model's
interface (names, shapes, image inputs with their preprocessing) is the NeuralNetwork's own. Under the exact
rank mapping (spec 4+) the per-channel layers (batchnorm, MVN, LRN, reorganizeData, PReLU, parametric softplus)
read a blob's trailing ``(C, H, W)``, leading axes a batch, where MIL reads ``[n, C, *D]``: on a blob of rank 1, 3
or 5+ their op runs at rank 4 between two reshapes (:func:`nchw`).

Verification, in :func:`to_mlprogram`: the reference executor runs the NeuralNetwork and the emitted
fp32 program on the same seeded inputs and the outputs must agree within 1e-4 relative; then
coremltools' ``add_fp16_cast`` (what ``ct.convert`` does by default) makes the program fp16 -- Core ML
runs a NeuralNetwork's ANE and GPU parts in fp16 by default anyway (Apple's typed-execution guide,
apple.github.io/coremltools/docs-guides/source/typed-execution.html, A) -- and its outputs (fp16 weights)
must stay within 1e-2 of the NeuralNetwork's. The executor implements each op type once for both formats, so this proves
the emitted program computes what anedoctor's reading of the NeuralNetwork computes; the loader's
translation itself is tested layer by layer in ``tests/test_nn_layers.py``.

Refused with one line: classifiers (coremltools' ``classify`` op would carry the labels, but the reference
executor cannot run it, so neither the conversion nor the passes after it could be verified), pipelines,
updatable models, flexible input shapes, layers with no ML Program form here (``nn.*`` translations such
as channel-last flatten, custom layers, branches and loops, recurrent layers on rank-5 blobs), DOUBLE
inputs/outputs unless interface changes are allowed (coremltools types ML Program arrays FLOAT32, FLOAT16
or INT32), and targets before iOS 15.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from ..api import load, run
from ..errors import ModelError
from ..ir import Graph, Op, Value
from .base import EXACT_TOLERANCE, compare_outputs
from .coreml_io import coremltools, load_program, quiet, run_coremltools_pass, save_program
from .dtypes import FP16_TOLERANCE
from .report import Attempt

FIRST_MLPROGRAM_IOS = 15
SPEC_VERSION = {15: 6, 16: 7, 17: 8, 18: 9}  # ML Program specification version per iOS opset
NN_KINDS = ("neuralNetwork", "neuralNetworkRegressor")


@dataclass
class Conversion:
    """What the NeuralNetwork -> ML Program step did, for the fix report."""

    path: Path  # the fp16 ML Program package
    ios: int  # opset of the emitted program
    layers: int
    ops: int  # ops of the emitted program (constants left out)
    error_fp32: float  # max relative output error of the fp32 program against the NeuralNetwork
    error_fp16: float  # the same for the fp16 program that is kept
    interface_changes: list[str] = field(default_factory=list)

    def attempt(self, layers: list[str]) -> Attempt:
        """The conversion as the first step of the fix report (``layers``: the NeuralNetwork's layer names)."""
        return Attempt(
            "neuralnetwork_to_mlprogram",
            (),
            False,
            FP16_TOLERANCE,
            self.summary(),
            layers,
            self.ops,
            self.error_fp16,
            kept=True,
        )

    def summary(self) -> str:
        changed = f"; interface: {', '.join(self.interface_changes)}" if self.interface_changes else ""
        return (
            f"converted from NeuralNetwork to ML Program (iOS{self.ios}): {self.layers} layers -> {self.ops} ops, "
            f"fp32 program within {self.error_fp32:.2g} of the NeuralNetwork, fp16 program (as Core ML runs "
            f"NeuralNetworks on the ANE) within {self.error_fp16:.2g}{changed}"
        )


def is_neuralnetwork(path: Path) -> bool:
    """Whether ``path`` is a NeuralNetwork-family ``.mlmodel`` file (the ones ``fix`` converts or refuses)."""
    return path.suffix == ".mlmodel" and path.is_file()


def to_mlprogram(
    source: Path,
    work: Path,
    ios: int,
    allow_interface_changes: bool,
    inputs: dict[str, Any] | None,
) -> tuple[Conversion, Any]:
    """Convert the NeuralNetwork ``source`` into an fp16 ML Program package in ``work`` and verify it
    against the NeuralNetwork run by the reference executor. Returns the conversion and the
    NeuralNetwork's reference run (seeded or given ``inputs``)."""
    if ios < FIRST_MLPROGRAM_IOS:
        raise ModelError(
            f"{source}: fix rewrites ML Programs, which need iOS 15 / macOS 12 or later; "
            f"the target (iOS {ios} equivalent) keeps this NeuralNetwork as it is"
        )
    spec = read_spec(source)
    graph = load(str(source)).graphs[0]
    flexible = [s.name for s in graph.input_specs if s.flexibility != "fixed"]
    if flexible:
        raise ModelError(f"{source}: input {flexible[0]!r} has a flexible shape; fix converts fixed-shape models only")
    nn = getattr(spec, spec.WhichOneof("Type"))
    opset = min(ios, max(SPEC_VERSION))
    prog = Emitter(graph, nn.arrayInputShapeMapping == 0, str(source)).program(opset)
    changes = [f"{name} DOUBLE -> FLOAT32" for name in sorted(doubles(spec, "input") | doubles(spec, "output"))]
    spec.description.CopyFrom(interface(source, spec, allow_interface_changes))
    spec.specificationVersion = max(spec.specificationVersion, SPEC_VERSION[opset])
    fp32 = save_program(prog, spec, work / "nn-fp32.mlpackage")
    reference = run(source, inputs=inputs, seed=0)
    error32 = agreement(source, reference, fp32, EXACT_TOLERANCE, "the fp32 ML Program")
    prog16, spec16 = load_program(fp32)
    run_coremltools_pass(prog16, "common::add_fp16_cast")
    fp16 = save_program(prog16, spec16, work / "nn.mlpackage")
    error16 = agreement(source, reference, fp16, FP16_TOLERANCE, "the fp16 ML Program")
    ops = sum(op.op_type != "const" for op in prog16.functions["main"].operations)
    return Conversion(fp16, opset, len(nn.layers), ops, error32, error16, changes), reference


def agreement(source: Path, reference: Any, package: Path, tolerance: float, what: str) -> float:
    """Max relative error of ``package`` against the NeuralNetwork's reference outputs (ModelError beyond
    ``tolerance``)."""
    got = run(str(package), inputs=reference.inputs, precision="fp32").outputs
    error, broken = compare_outputs(reference.outputs, got, tolerance)
    if broken:
        raise ModelError(f"{source}: converting to an ML Program failed verification: {what}'s {broken}")
    return error


def read_spec(source: Path) -> Any:
    """The NeuralNetwork's protobuf spec; ModelError for the model kinds this route refuses."""
    ct = coremltools()
    with quiet():
        try:
            spec = ct.utils.load_spec(str(source))
        except Exception as e:  # coremltools raises bare Exceptions for unreadable files
            raise ModelError(f"{source}: not a readable Core ML model ({str(e).splitlines()[0][:160]})") from e
    kind = spec.WhichOneof("Type")
    if kind == "neuralNetworkClassifier":
        raise ModelError(f"{source}: NeuralNetwork classifiers are not converted to ML Programs yet (fix refuses them)")
    if kind.startswith("pipeline"):
        raise ModelError(f"{source}: pipelines are not converted to ML Programs yet (fix refuses them)")
    if kind not in NN_KINDS:
        raise ModelError(f"{source}: a {kind} model has no neural network for fix to rewrite")
    if spec.isUpdatable:
        raise ModelError(f"{source}: updatable (on-device training) models are not converted by fix")
    return spec


def array_types() -> Any:
    return coremltools().proto.FeatureTypes_pb2.ArrayFeatureType


def doubles(spec: Any, side: str) -> set[str]:
    """Names of the DOUBLE multi-array features on ``side`` ("input" or "output") of the description."""
    double = array_types().DOUBLE
    return {
        f.name
        for f in getattr(spec.description, side)
        if f.type.WhichOneof("Type") == "multiArrayType" and f.type.multiArrayType.dataType == double
    }


def interface(source: Path, spec: Any, allow_interface_changes: bool) -> Any:
    """The ML Program's model description: the NeuralNetwork's own (DOUBLE arrays become FLOAT32 only when
    interface changes are allowed; otherwise ModelError)."""
    desc = type(spec.description)()
    desc.CopyFrom(spec.description)
    wide = doubles(spec, "input") | doubles(spec, "output")
    if wide and not allow_interface_changes:
        raise ModelError(
            f"{source}: {sorted(wide)[0]!r} is a DOUBLE array; coremltools writes ML Program arrays as FLOAT32, "
            "FLOAT16 or INT32, and "
            "converting it to FLOAT32 changes the interface: pass allow_interface_changes (--allow-interface-changes)"
        )
    for f in [*desc.input, *desc.output]:
        if f.name in wide:
            f.type.multiArrayType.dataType = array_types().FLOAT32
    return desc


# ------------------------------------------------------------------ the emitter

# argument -> the dtype MIL requires where a NeuralNetwork passes floats at runtime
CASTS = {"cond": "bool", **dict.fromkeys(("indices", "begin", "end", "stride", "shape", "reps"), "int32")}
DTYPES = {"fp32": "fp32", "fp64": "fp32", "fp16": "fp16", "int32": "int32", "int64": "int32", "bool": "bool"}


def payload(data: Any) -> Any:
    """A constant argument as the MIL builder takes it (64-bit numbers narrowed, lists of numbers as arrays)."""
    if isinstance(data, bool | str):
        return data
    if isinstance(data, float):
        return np.float32(data)
    if isinstance(data, int):
        return np.int32(data)
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int32)
    return arr


def safe(name: str) -> str:
    return re.sub(r"\W", "_", name)


class Emitter:
    """Writes one translated NeuralNetwork graph as a pymil Program with the MIL builder."""

    def __init__(self, graph: Graph, rank5: bool, where: str):
        self.graph, self.rank5, self.where = graph, rank5, where
        self.vars: dict[str, Any] = {}

    def program(self, ios: int) -> Any:
        ct = coremltools()
        from coremltools.converters.mil import Builder as mb
        from coremltools.converters.mil.mil import Function, Program, types

        holders = {}
        for v in self.graph.inputs:
            if not v.type.shape or not v.type.is_static:
                raise ModelError(f"{self.where}: input {v.name!r} has no fixed shape ({v.type})")
            dtype = DTYPES.get(v.type.dtype)
            if dtype is None:
                raise ModelError(f"{self.where}: input {v.name!r} is {v.type.dtype}, which ML Programs do not take")
            holders[v.name] = mb.placeholder(shape=v.type.shape, dtype=types.string_to_builtin(dtype))
        with Function(holders, opset_version=getattr(ct.target, f"iOS{ios}")) as fn:
            for v in self.graph.inputs:
                self.vars[v.name] = self.reshaped(fn.inputs[v.name], self.lift(v, v.type.shape), safe(v.name) + "_r4")
            for op in self.graph.ops:
                self.emit(op)
            fn.set_outputs([self.output(v) for v in self.graph.outputs])
        prog = Program()
        prog.add_function("main", fn)
        return prog

    # ---- shapes ----------------------------------------------------------------------------
    def lift(self, owner: Any, shape: tuple | None) -> tuple | None:
        """The rank the program carries a tensor at: rank-5-mapped ``(C,)`` / ``(C, H, W)`` become rank 4."""
        if not self.rank5 or shape is None or len(shape) == 4:
            return shape
        if len(shape) == 3:
            return (1, *shape)
        if len(shape) == 1:
            return (1, shape[0], 1, 1)
        raise ModelError(f"{self.where}: {owner.name!r} is rank {len(shape)} under the rank-5 mapping; not converted")

    def reshaped(self, var: Any, shape: tuple | None, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        if shape is None or tuple(var.shape) == tuple(shape):
            return var
        return mb.reshape(x=var, shape=np.array(shape, np.int32), name=name)

    def output(self, v: Value) -> Any:
        from coremltools.converters.mil import Builder as mb

        var = self.vars[v.name]
        stated = v.type.shape
        if stated is not None and len(stated) != len(var.shape) and not v.type.is_static:
            raise ModelError(f"{self.where}: output {v.name!r} has no static shape ({v.type}) to restore")
        if v.type.is_static and tuple(var.shape) != tuple(stated):
            return mb.reshape(x=var, shape=np.array(stated, np.int32), name=v.name)
        return var if var.name == v.name else mb.identity(x=var, name=v.name)

    def padded(self, values: Any, rank_from: Value, fill: Any) -> Any:
        """A per-axis list of a rank-5-mapped tensor, extended to the rank the program carries it at."""
        stated = rank_from.type.shape
        lifted = self.lift(rank_from, stated)
        extra = len(lifted) - len(stated) if stated is not None and lifted is not None else 0
        if extra and stated is not None and len(stated) == 1:
            raise ModelError(f"{self.where}: per-axis arguments on rank-1 {rank_from.name!r}; not converted")
        return [fill] * extra + list(np.asarray(values).reshape(-1)) if extra else values

    # ---- ops ---------------------------------------------------------------------------------
    def args(self, op: Op, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """The op's arguments for the builder: runtime Vars and constant payloads. NeuralNetworks carry ids and
        conditions as floats; MIL wants int32 indices and bool conditions, so those get a cast."""
        from coremltools.converters.mil import Builder as mb
        from coremltools.converters.mil.mil import Var

        out = {}
        for arg, v in op.inputs.items():
            if arg in skip:
                continue
            out[arg] = var = [self.value(x) for x in v] if isinstance(v, list) else self.value(v)
            dtype = CASTS.get(arg)
            if dtype and isinstance(var, Var) and var.dtype.__name__.startswith("fp"):
                out[arg] = mb.cast(x=var, dtype=dtype, name=safe(f"{op.name}_{arg}_{dtype}"))
        return out

    def value(self, v: Value) -> Any:
        if v.is_const:
            return payload(v.data())
        if v.name not in self.vars:
            raise ModelError(f"{self.where}: {v.name!r} is read before any layer writes it")
        return self.vars[v.name]

    def emit(self, op: Op) -> None:
        from coremltools.converters.mil import Builder as mb

        special = SPECIAL.get(op.type)
        if special is None and (op.type.startswith("nn.") or op.blocks or not hasattr(mb, op.type)):
            raise ModelError(
                f"{self.where}: layer {op.name!r} ({op.layer_type} -> {op.type}) has no ML Program form here; "
                "fix cannot convert this NeuralNetwork"
            )
        name = safe(op.outputs[0].name if len(op.outputs) == 1 else op.name)
        try:
            result = special(self, op, name) if special else getattr(mb, op.type)(**self.args(op), name=name)
        except ModelError:
            raise
        except Exception as e:  # noqa: BLE001  (the builder's type and shape checks raise many kinds)
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ModelError(
                f"{self.where}: layer {op.name!r} ({op.layer_type} -> {op.type}) not converted: {first}"
            ) from None
        results = list(result) if isinstance(result, (list, tuple)) else [result]
        if len(results) != len(op.outputs):
            raise ModelError(
                f"{self.where}: layer {op.name!r}: {len(results)} outputs where the layer has {len(op.outputs)}"
            )
        for v, var in zip(op.outputs, results):
            want = self.lift(v, v.type.shape)
            if want is not None and v.type.is_static and tuple(var.shape) != tuple(want):
                raise ModelError(
                    f"{self.where}: layer {op.name!r} ({op.layer_type} -> {op.type}): the ML Program op gives "
                    f"shape {tuple(var.shape)} where the NeuralNetwork gives {v.type.shape}; not converted"
                )
            self.vars[v.name] = var


# ---- ops whose NeuralNetwork reading needs more than the builder call of the same name


def preprocessing(e: Emitter, op: Op, name: str) -> Any:
    """Core ML's image scale / bias (``scale * x + bias``) or mean-image subtraction, as ``ct.ImageType`` emits it."""
    from coremltools.converters.mil import Builder as mb

    a = e.args(op)
    if "mean_image" in a:
        return mb.sub(x=a["x"], y=a["mean_image"], name=name)
    scaled = mb.mul(x=a["x"], y=a["scale"], name=name + "_scale")
    return mb.add(x=scaled, y=a["bias"], name=name)


def linear(e: Emitter, op: Op, name: str) -> Any:
    """``linear`` over the last axis; an innerProduct on a ``(…, C, H, W)`` blob contracts C·H·W (Core ML's
    flatten) and gives ``(…, C_out, 1, 1)``; MIL's linear takes rank 1-3, so other ranks go through a reshape."""
    from coremltools.converters.mil import Builder as mb

    a = e.args(op)
    x, w = a.pop("x"), a["weight"]
    shape = tuple(x.shape)
    if op.layer_type == "innerProduct" and len(shape) >= 3 and shape[-1] != w.shape[-1]:
        lead, out = shape[:-3], (*shape[:-3], w.shape[0], 1, 1)
    elif len(shape) > 3:
        lead, out = shape[:-1], (*shape[:-1], w.shape[0])
    else:
        return mb.linear(x=x, **a, name=name)
    flat = mb.reshape(x=x, shape=np.array([max(1, prod(lead)), -1], np.int32), name=name + "_flat")
    y = mb.linear(x=flat, **a, name=name + "_linear")
    return mb.reshape(x=y, shape=np.array(out, np.int32), name=name)


SLICE_FILL = {"begin": 0, "end": 0, "stride": 1, "begin_mask": True, "end_mask": True, "squeeze_mask": False}


def slice_by_index(e: Emitter, op: Op, name: str) -> Any:
    """A slice lists one entry per axis; the axes added under the rank-5 mapping are taken whole."""
    from coremltools.converters.mil import Builder as mb

    a = e.args(op)
    for arg, fill in SLICE_FILL.items():
        if isinstance(a.get(arg), np.ndarray):
            a[arg] = np.asarray(e.padded(a[arg], op.input("x"), fill))
    return mb.slice_by_index(**a, name=name)


def transpose(e: Emitter, op: Op, name: str) -> Any:
    from coremltools.converters.mil import Builder as mb

    a = e.args(op)
    perm = [int(p) for p in np.asarray(a["perm"]).reshape(-1)]
    extra = len(a["x"].shape) - len(perm)
    return mb.transpose(x=a["x"], perm=np.array([*range(extra), *(p + extra for p in perm)], np.int32), name=name)


def reshape(e: Emitter, op: Op, name: str) -> Any:
    from coremltools.converters.mil import Builder as mb

    shape = e.lift(op.outputs[0], op.outputs[0].type.shape)
    if shape is None or not op.outputs[0].type.is_static:
        return mb.reshape(**e.args(op), name=name)
    return mb.reshape(x=e.value(op.input("x")), shape=np.array(shape, np.int32), name=name)


def nary(mil: str) -> Any:
    """A legacy n-input add / multiply / max / min (``average``: the sum divided by n)."""

    def handler(e: Emitter, op: Op, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        xs = e.args(op)["values"]
        acc = xs[0]
        for i, x in enumerate(xs[1:]):
            last = i == len(xs) - 2 and op.type != "nn.average"
            acc = getattr(mb, mil)(x=acc, y=x, name=name if last else f"{name}_{i}")
        return mb.mul(x=acc, y=np.float32(1 / len(xs)), name=name) if op.type == "nn.average" else acc

    return handler


def scale_bias(e: Emitter, op: Op, name: str) -> Any:
    from coremltools.converters.mil import Builder as mb

    a = e.args(op)
    return mb.add(x=mb.mul(x=a["x"], y=a["y"], name=name + "_scale"), y=a["bias"], name=name)


def load_constant(e: Emitter, op: Op, name: str) -> Any:
    from coremltools.converters.mil import Builder as mb

    val = payload(op.param("val"))
    return mb.const(val=val.reshape(e.lift(op.outputs[0], val.shape)), name=name)


def l2_norm(e: Emitter, op: Op, name: str) -> Any:
    """MIL's l2_norm always normalises over the last three axes, which is what the NeuralNetwork layer does."""
    from coremltools.converters.mil import Builder as mb

    return mb.l2_norm(**e.args(op, skip=("axes",)), name=name)


def tile(e: Emitter, op: Op, name: str) -> Any:
    """A NeuralNetwork tile may list fewer repeats than axes (the leading ones repeat once); MIL's lists all."""
    from coremltools.converters.mil import Builder as mb

    a = e.args(op)
    if isinstance(a["reps"], np.ndarray) and a["reps"].size < len(a["x"].shape):
        a["reps"] = np.concatenate([np.ones(len(a["x"].shape) - a["reps"].size, np.int32), a["reps"].reshape(-1)])
    return mb.tile(**a, name=name)


def crop(e: Emitter, op: Op, name: str) -> Any:
    from coremltools.converters.mil import Builder as mb

    return mb.crop(**e.args(op, skip=("ref_tensor",)), name=name)


def gather(e: Emitter, op: Op, name: str) -> Any:
    """An embeddingND reads ids shaped (…, 1) and gives vectors (…, E)."""
    from coremltools.converters.mil import Builder as mb

    a = e.args(op)
    idx = a["indices"]
    if op.layer_type == "embeddingND" and idx.shape[-1] == 1:  # ids (…, 1) give vectors (…, E)
        idx = mb.squeeze(x=idx, axes=[-1], name=name + "_squeeze")
    return mb.gather(**{**a, "indices": idx}, name=name)


# MIL ops whose NeuralNetwork layers (batchnorm, MVN, LRN, reorganizeData, PReLU, parametric softplus) read a blob's
# trailing (C, H, W) with any leading axes a batch, and a (C,) blob as (1, C, 1, 1) (NeuralNetwork.proto,
# github.com/apple/coremltools/blob/main/mlmodel/format/NeuralNetwork.proto, A); MIL reads [n, C, *D], so at rank 3
# (C, H, W) would be (n, C, L). The executor's ``nchw_view`` states the same rule.
NCHW_OPS = (
    "batch_norm",
    "instance_norm",
    "local_response_norm",
    "prelu",
    "softplus_parametric",
    "depth_to_space",
    "space_to_depth",
    "pixel_shuffle",
)


def nchw(e: Emitter, op: Op, name: str) -> Any:
    """A per-channel layer on a blob of rank 1, 3 or 5+: run at rank 4, ``(-1, C, H, W)`` (leading axes folded;
    ``(C,)`` as ``(1, C, 1, 1)``), and reshaped back to the blob's rank."""
    from coremltools.converters.mil import Builder as mb

    a = e.args(op)
    x, builder = a["x"], getattr(mb, op.type)
    rank = len(x.shape)
    if not op.layer_type or rank in (0, 2, 4):
        return builder(**a, name=name)
    shape = (1, x.shape[0], 1, 1) if rank == 1 else (-1, *x.shape[-3:])
    y = builder(**{**a, "x": mb.reshape(x=x, shape=np.array(shape, np.int32), name=name + "_nchw")}, name=name + "_4d")
    back = (-1,) if rank == 1 else (*x.shape[:-3], *y.shape[-3:])
    return mb.reshape(x=y, shape=np.array(back, np.int32), name=name)


SPECIAL = {
    **dict.fromkeys(NCHW_OPS, nchw),
    "nn.preprocessing": preprocessing,
    "linear": linear,
    "transpose": transpose,
    "reshape": reshape,
    "slice_by_index": slice_by_index,
    "nn.add": nary("add"),
    "nn.multiply": nary("mul"),
    "nn.max": nary("maximum"),
    "nn.min": nary("minimum"),
    "nn.average": nary("add"),
    "nn.scale": scale_bias,
    "load_constant": load_constant,
    "l2_norm": l2_norm,
    "crop": crop,
    "tile": tile,
    "gather": gather,
}
