"""Core ML NeuralNetwork spec (plain, classifier or regressor) -> IR.

Each layer becomes one :class:`~anedoctor.ir.Op` in spec order: ``type`` is the ML Program
(MIL) op that computes what the layer computes, with MIL argument names and layer parameters
as constant inputs, and ``layer_type`` keeps the layer's own name. Where no MIL op does (or
not with these parameters: a scale layer with a bias, an n-ary add, a channel-last flatten)
the type is ``"nn.<layerType>"``. Operands MIL lacks keep descriptive names (the
``ref_tensor`` of a two-input crop, a bidirectional LSTM's ``initial_h_back``).

Layers do not record output shapes, so shapes are propagated from the model inputs
(``layer.outputTensor`` wins where set). Shapes stay as the model description states them:
under the legacy rank-5 mapping (spec <= 3) a ``(C,)`` or ``(C, H, W)`` input keeps that
rank and layers defined on the notional ``[Seq, Batch, C, H, W]`` axes act on trailing dims.
Activations are ``fp32``. Weights stay protobuf fields until an analysis asks for them
(:class:`NNWeights`); quantized weights keep their storage dtype and load dequantized.
"""
from __future__ import annotations

from math import prod
from typing import Any, Callable

import numpy as np

from ..ir import Block, Graph, Op, TensorType, Value
from ..ir.dtypes import NUMPY_DTYPES
from ..ir.shapes import (
    broadcast,
    concat_shape,
    conv_shape,
    dims_prod,
    norm_axis,
    plus,
    reduced,
    reshaped,
    shape_arg,
    sliced,
    times,
    with_dims,
)
from .files import bounded_shape
from .mlprogram import input_specs
from .nn_layers import AB, TABLE, Emit, enum_name, table_handler
from .nn_weights import NNWeights, storage_dtype, stored_count

IR_DTYPES = {np.dtype(v): k for k, v in NUMPY_DTYPES.items()}


# ---------------------------------------------------------------------------- translation

def const_value(name: str, payload: Any) -> Value:
    """A layer parameter as a constant Value (64-bit numbers narrowed to fp32 / int32)."""
    if isinstance(payload, NNWeights):
        return Value(name, TensorType(payload.dtype, payload.out_shape), payload)
    if isinstance(payload, (bool, int, float, str)):
        dtype = {bool: "bool", int: "int32", float: "fp32", str: "string"}[type(payload)]
        return Value(name, TensorType(dtype, ()), payload)
    arr = np.asarray(payload)
    if (arr.dtype.kind in "fiu" and arr.dtype.itemsize == 8) or arr.size == 0:
        arr = arr.astype(np.float32 if arr.dtype.kind == "f" and arr.size else np.int32)
    return Value(name, TensorType(IR_DTYPES.get(arr.dtype, "string"), arr.shape), arr)


class Reader:
    """Turns the layers of one NeuralNetwork (and its nested branch / loop bodies) into Ops."""

    def __init__(self, graph_name: str, rank5: bool, notes: list[str]):
        self.graph_name, self.rank5, self.notes = graph_name, rank5, notes
        self.values: dict[str, Value] = {}
        self.layer_name = ""

    def note(self, text: str) -> None:
        self.notes.append(f"{self.graph_name}: layer {self.layer_name!r}: {text}")

    def value(self, name: str) -> Value:
        if name not in self.values:
            self.values[name] = Value(name, TensorType("fp32", None))
        return self.values[name]

    @staticmethod
    def shape(v: Value):
        return v.type.shape

    def lax(self, shape, axis: int) -> int | None:
        """Index of the notional C (-3), H (-2) or W (-1) axis; None where it is implicit
        (a rank-1 ``(C,)`` tensor under the rank-5 mapping)."""
        if shape is None:
            return None
        if self.rank5 and len(shape) == 1:
            return 0 if axis == -3 else None
        return norm_axis(axis, len(shape))

    def legacy_broadcast(self, shapes):
        """Broadcast for layers of the rank-5 era, where a ``(C,)`` blob means ``(C, 1, 1)``."""
        if self.rank5 and any(s is not None and len(s) >= 3 for s in shapes):
            shapes = [s + (1, 1) if s is not None and len(s) == 1 else s for s in shapes]
        return broadcast(*shapes)

    def weight(self, wps, shape, transpose=False, qaxis=0) -> NNWeights | None:
        """WeightParams (or a list of gate parts) as a lazy constant; None when absent or malformed."""
        parts = wps if isinstance(wps, list) else [wps]
        if not any(stored_count(w) for w in parts):
            return None
        shape = tuple(int(d) for d in shape) if shape is not None else (sum(map(stored_count, parts)),)
        part = (shape[0] // len(parts), *shape[1:]) if len(parts) > 1 else shape
        n = prod(part)
        # sub-byte packing pads the last byte, so packed weights may hold a few more values
        if any(stored_count(w) < n if storage_dtype(w).startswith("uint") else stored_count(w) != n for w in parts):
            counts = [stored_count(w) for w in parts]
            self.note(f"weights hold {counts} values where shape {shape} needs {n} per part; left out")
            return None
        return NNWeights([(w, part) for w in parts], shape, transpose, qaxis)

    def param(self, p, name: str) -> Any:
        """A proto field as a constant payload: enum -> its name, repeated -> list (None when
        empty: the MIL default), weights -> NNWeights."""
        fd = p.DESCRIPTOR.fields_by_name[name]
        v = getattr(p, name)
        if fd.is_repeated:
            return list(v) or None
        if fd.enum_type is not None:
            return enum_name(p, name)
        if fd.message_type is not None:
            return self.weight(v, None) if fd.message_type.name == "WeightParams" else None
        return v

    def ops(self, layers) -> list[Op]:
        return [self.layer(layer) for layer in layers]

    def layer(self, layer) -> Op:
        lt = layer.WhichOneof("layer") or "unknown"
        self.layer_name = layer.name
        xs = [self.value(n) for n in layer.input]
        handler = HANDLERS.get(lt)
        t = None
        if handler is None:
            self.note(f"layer type {lt!r} has no MIL equivalent here; its output shapes are unknown")
        else:
            try:
                t = handler(self, getattr(layer, lt), xs)
            except Exception as e:  # a malformed layer must not stop the analysis of the others
                self.note(f"{lt} could not be translated ({type(e).__name__}: {e}); its output shapes are unknown")
        if t is None:
            t = Emit("nn." + lt, {"x": xs[0]} if len(xs) == 1 else {"inputs": xs} if xs else {})
        inputs: dict[str, Value | list[Value]] = {}
        for arg, v in t.args.items():
            runtime = isinstance(v, Value) or isinstance(v, list) and any(isinstance(e, Value) for e in v)
            if v is not None:
                inputs[arg] = v if runtime else const_value(f"{layer.name}.{arg}", v)
        op = Op(layer.name, t.type, inputs, [], "", t.attrs, t.blocks, lt)
        for i, name in enumerate(layer.output):
            shape = t.shapes[i] if i < len(t.shapes) else None
            if i < len(layer.outputTensor) and layer.outputTensor[i].rank:
                ot = layer.outputTensor[i]
                dims = tuple(int(d) if d > 0 else None for d in ot.dimValue)
                if len(dims) == ot.rank and all(dims) or shape is None or len(shape) != ot.rank:
                    shape = dims if len(dims) == ot.rank else (None,) * ot.rank
            shape = bounded_shape(None if shape is None else tuple(shape), f"layer {layer.name!r} ({lt}), output {name!r}")
            v = Value(name, TensorType("fp32", shape), producer=op)
            self.values[name] = v
            op.outputs.append(v)
        return op


# ---------------------------------------------------------------------------- layer handlers

def borders(b) -> list[int]:
    return [int(a) for e in b.borderAmounts for a in (e.startEdgeSize, e.endEdgeSize)] or [0, 0, 0, 0]


def pad_of(p, k: int) -> tuple[str, list[int]]:
    """(pad_type, pad [begin, end per spatial dim]) of a 2-D conv / pool; pad_type is a MIL
    name, or "ceil" for pooling's includeLastPixel (custom padding with ceil_mode)."""
    if p.HasField("same"):
        return ("same_lower" if p.same.asymmetryMode == 1 else "same"), [0] * 2 * k
    if "includeLastPixel" in p.DESCRIPTOR.fields_by_name and p.HasField("includeLastPixel"):
        amounts = list(p.includeLastPixel.paddingAmounts) or [0] * k
        return "ceil", [int(a) for a in amounts for _ in range(2)]
    pad = borders(p.valid.paddingAmounts)
    return ("custom" if any(pad) else "valid"), pad


def conv_args(r, p, xs, k, s, d, pad_type, pad, groups, wshape, deconv, output_shape=()):
    x = r.shape(xs[0])
    out = conv_shape(x, p.outputChannels, k, s, [1] * len(k) if deconv else d, pad_type, pad, deconv)
    if deconv and output_shape and out is not None:
        out = (*out[: -len(k)], *map(int, output_shape))
    weight = xs[1] if len(xs) > 1 else r.weight(p.weights, wshape, qaxis=1 if deconv else 0)
    args = dict(x=xs[0], weight=weight, bias=r.weight(p.bias, (p.outputChannels,)) if p.hasBias else None,
                strides=s, pad_type=pad_type, pad=pad if pad_type == "custom" else None, dilations=d, groups=groups)
    if deconv and output_shape:
        args["output_shape"] = list(out) if out is not None and None not in out else list(output_shape)
    return Emit("conv_transpose" if deconv else "conv", args, [out])


def convolution(r, p, xs):
    k, s, d = list(p.kernelSize) or [3, 3], list(p.stride) or [1, 1], list(p.dilationFactor) or [1, 1]
    groups, deconv = p.nGroups or 1, p.isDeconvolution
    pad_type, pad = pad_of(p, 2)
    wshape = (p.kernelChannels, p.outputChannels // groups, *k) if deconv else (p.outputChannels, p.kernelChannels, *k)
    return conv_args(r, p, xs, k, s, d, pad_type, pad, groups, wshape, deconv, p.outputShape)


def pad3d(p) -> tuple[str, list[int]]:
    pad = [p.customPaddingFront, p.customPaddingBack, p.customPaddingTop, p.customPaddingBottom,
           p.customPaddingLeft, p.customPaddingRight]
    return ("custom", "valid", "same")[p.paddingType], [int(a) for a in pad]


def convolution3d(r, p, xs):
    k = [p.kernelDepth, p.kernelHeight, p.kernelWidth]
    s = [p.strideDepth or 1, p.strideHeight or 1, p.strideWidth or 1]
    d = [p.dilationDepth or 1, p.dilationHeight or 1, p.dilationWidth or 1]
    groups, deconv = p.nGroups or 1, p.isDeconvolution
    pad_type, pad = pad3d(p)
    cin, cout = p.inputChannels, p.outputChannels
    wshape = (cin, cout // groups, *k) if deconv else (cout, cin // groups, *k)
    return conv_args(r, p, xs, k, s, d, pad_type, pad, groups, wshape, deconv, p.outputShape)


GLOBAL_POOLS = {"MAX": "reduce_max", "AVERAGE": "reduce_mean", "L2": "reduce_l2_norm"}


def global_pool(r, xs, kind, axes):
    return Emit(GLOBAL_POOLS[kind], dict(x=xs[0], axes=list(axes), keep_dims=True),
                [with_dims(r.shape(xs[0]), dict.fromkeys(axes, 1))])


def pool_args(r, xs, kind, k, s, pad_type, pad, exclude):
    args = dict(x=xs[0], kernel_sizes=k, strides=s, pad_type="custom" if pad_type == "ceil" else pad_type,
                pad=pad if pad_type in ("custom", "ceil") else None, ceil_mode=pad_type == "ceil")
    if kind == "AVERAGE":
        args["exclude_padding_from_average"] = exclude
    op_type = {"MAX": "max_pool", "AVERAGE": "avg_pool", "L2": "l2_pool"}[kind]
    return Emit(op_type, args, [conv_shape(r.shape(xs[0]), None, k, s, [1] * len(k), pad_type, pad)])


def pooling(r, p, xs):
    kind = r.param(p, "type")
    if p.globalPooling:
        return global_pool(r, xs, kind, (-2, -1))
    pad_type, pad = pad_of(p, 2)
    return pool_args(r, xs, kind, list(p.kernelSize) or [3, 3], list(p.stride) or [1, 1], pad_type, pad,
                     p.avgPoolExcludePadding)


def pooling3d(r, p, xs):
    pad_type, pad = pad3d(p)
    return pool_args(r, xs, r.param(p, "type"), [p.kernelDepth, p.kernelHeight, p.kernelWidth],
                     [p.strideDepth or 1, p.strideHeight or 1, p.strideWidth or 1], pad_type, pad,
                     p.countExcludePadding)


# ActivationParams oneof -> (MIL op, {MIL argument: proto field})
ACTIVATIONS = {
    "ReLU": ("relu", {}), "leakyReLU": ("leaky_relu", {"alpha": "alpha"}), "tanh": ("tanh", {}),
    "thresholdedReLU": ("thresholded_relu", {"alpha": "alpha"}), "scaledTanh": ("scaled_tanh", AB),
    "sigmoid": ("sigmoid", {}), "sigmoidHard": ("sigmoid_hard", AB), "ELU": ("elu", {"alpha": "alpha"}),
    "softsign": ("softsign", {}), "softplus": ("softplus", {}), "linear": ("linear_activation", AB),
    "PReLU": ("prelu", {"alpha": "alpha"}), "parametricSoftplus": ("softplus_parametric", AB),
}


def activation(r, p, xs):
    kind = p.WhichOneof("NonlinearityType")
    op_type, fields = ACTIVATIONS[kind]
    sub = getattr(p, kind)
    return Emit(op_type, {"x": xs[0], **{arg: r.param(sub, f) for arg, f in fields.items()}}, [r.shape(xs[0])])


def rnn_activation(a) -> str:
    return ACTIVATIONS[a.WhichOneof("NonlinearityType")][0].removesuffix("_activation")


def inner_product(r, p, xs):
    x, cout = r.shape(xs[0]), p.outputChannels
    out = None
    if x is not None:
        n = len(x)
        out = (cout,) if n == 1 else (*x[:-1], cout) if n == 2 or (n == 3 and not r.rank5) else (*x[:-3], cout, 1, 1)
    args = dict(x=xs[0], weight=r.weight(p.weights, (cout, p.inputChannels)),
                bias=r.weight(p.bias, (cout,)) if p.hasBias else None)
    return Emit("linear", args, [out], {"int8_dynamic_quantize": True} if p.int8DynamicQuantize else {})


def lookup(r, p, xs, vocab, size, out):
    """An embedding: rows of the (vocab, size) table picked by the input ids."""
    args = dict(x=r.weight(p.weights, (size, vocab), transpose=True), indices=xs[0], axis=0,
                bias=r.weight(p.bias, (size,)) if p.hasBias else None)
    return Emit("nn.embedding" if p.hasBias else "gather", args, [out], {"is_lookup": True})


def embedding(r, p, xs):
    """Ids on the C axis become C_out vectors there: (..., 1, H, W) -> (..., C_out, H, W); below rank 3
    (rank-5 mapping off) the C axis is the last one, as in a rank-1 ``(C,)`` blob."""
    x = r.shape(xs[0])
    c = r.lax(x, -3)
    axis = c if c is not None else -1 if x else None
    out = with_dims(x, {axis: p.outputChannels}) if axis is not None else x
    return lookup(r, p, xs, p.inputDim, p.outputChannels, out)


def embedding_nd(r, p, xs):
    return lookup(r, p, xs, p.vocabSize, p.embeddingSize, with_dims(r.shape(xs[0]), {-1: p.embeddingSize}))


def batchnorm(r, p, xs):
    w = {k: r.weight(getattr(p, k), (p.channels,)) for k in ("gamma", "beta", "mean", "variance")}
    eps, same = p.epsilon or 1e-5, [r.shape(xs[0])]
    if p.computeMeanVar and p.instanceNormalization:
        return Emit("instance_norm", dict(x=xs[0], gamma=w["gamma"], beta=w["beta"], epsilon=eps), same)
    return Emit("nn.batchnorm" if p.computeMeanVar else "batch_norm", dict(x=xs[0], **w, epsilon=eps), same)


def mvn(r, p, xs):
    eps, same = p.epsilon or 1e-6, [r.shape(xs[0])]
    if not p.normalizeVariance:
        return Emit("nn.mvn", dict(x=xs[0], epsilon=eps), same, {"across_channels": p.acrossChannels})
    if p.acrossChannels:
        return Emit("layer_norm", dict(x=xs[0], axes=[-3, -2, -1], epsilon=eps), same)
    return Emit("instance_norm", dict(x=xs[0], epsilon=eps), same)


def layer_normalization(r, p, xs):
    shape = tuple(p.normalizedShape)
    args = dict(x=xs[0], axes=list(range(-len(shape), 0)), gamma=r.weight(p.gamma, shape),
                beta=r.weight(p.beta, shape), epsilon=p.eps or 1e-5)
    return Emit("layer_norm", args, [r.shape(xs[0])])


def crop(r, p, xs):
    x = r.shape(xs[0])
    if len(xs) == 1:
        t, b, left, right = borders(p.cropAmounts)
        out = None if x is None else with_dims(x, {-2: plus(x[-2], -t - b), -1: plus(x[-1], -left - right)})
        return Emit("crop", dict(x=xs[0], crop_height=[t, b], crop_width=[left, right]), [out])
    ref, off = r.shape(xs[1]), list(p.offset) or [0, 0]
    out = None if x is None or ref is None else (*x[:-2], *ref[-2:])
    args = dict(x=xs[0], ref_tensor=xs[1])
    if out is None or None in (*x[-2:], *out[-2:]):
        return Emit("nn.crop", args, [out], {"offset": off})
    args.update(crop_height=[off[0], x[-2] - off[0] - out[-2]], crop_width=[off[1], x[-1] - off[1] - out[-1]])
    return Emit("crop", args, [out])


PAD_MODES = {"constant": "constant", "reflection": "reflect", "replication": "replicate"}


def padding(r, p, xs):
    pad = borders(p.paddingAmounts)
    kind = p.WhichOneof("PaddingType") or "constant"
    x = r.shape(xs[0])
    out = None if x is None else with_dims(x, {-2: plus(x[-2], pad[0] + pad[1]), -1: plus(x[-1], pad[2] + pad[3])})
    return Emit("pad", dict(x=xs[0], pad=pad, mode=PAD_MODES[kind], constant_val=p.constant.value), [out])


def constant_pad(r, p, xs):
    pad, x = [int(a) for a in p.padAmounts], r.shape(xs[0])
    out = None
    if x is not None and len(pad) == 2 * len(x):
        if p.padToGivenOutputSizeMode:
            out = tuple(d and max(d, pad[2 * i] + pad[2 * i + 1]) for i, d in enumerate(x))
        else:
            out = tuple(plus(d, pad[2 * i] + pad[2 * i + 1]) for i, d in enumerate(x))
    elif x is not None:
        out = (None,) * len(x)
    args = dict(x=xs[0], pad=xs[1] if len(xs) > 1 else pad, mode="constant", constant_val=p.value)
    return Emit("nn.constantPad" if p.padToGivenOutputSizeMode else "pad", args, [out])


def upsample(r, p, xs):
    sf = list(p.fractionalScalingFactor) or [int(f) for f in p.scalingFactor] or [1, 1]
    x = r.shape(xs[0])
    out = None if x is None else with_dims(x, {-2: times(x[-2], sf[0]), -1: times(x[-1], sf[1])})
    args = dict(x=xs[0], scale_factor_height=sf[0], scale_factor_width=sf[1])
    if p.mode == 1:  # BILINEAR
        args["align_corners"] = p.linearUpsampleMode == 1  # ALIGN_CORNERS_TRUE
        return Emit("upsample_bilinear", args, [out])
    return Emit("upsample_nearest_neighbor", args, [out])


SAMPLING_MODES = {"STRICT_ALIGN_ENDPOINTS_MODE": "STRICT_ALIGN_CORNERS", "ALIGN_ENDPOINTS_MODE": "ALIGN_CORNERS",
                  "UPSAMPLE_MODE": "DEFAULT", "ROI_ALIGN_MODE": "OFFSET_CORNERS"}


def resize_bilinear(r, p, xs):
    h, w = list(p.targetSize) or [1, 1]
    args = dict(x=xs[0], target_size_height=h, target_size_width=w,
                sampling_mode=SAMPLING_MODES[r.param(p.mode, "samplingMethod")])
    return Emit("resize_bilinear", args, [with_dims(r.shape(xs[0]), {-2: h, -1: w})])


def crop_resize(r, p, xs):
    h, w = list(p.targetSize) or [1, 1]
    x, roi = r.shape(xs[0]), r.shape(xs[1])
    out = None
    if x is not None and roi is not None and len(x) >= 3 and len(roi) >= 3:
        out = (roi[0], x[-4] if roi[-3] == 4 and len(x) >= 4 else 1, x[-3], h, w)
    args = dict(x=xs[0], roi=xs[1], target_height=h, target_width=w, normalized_coordinates=p.normalizedCoordinates,
                spatial_scale=p.spatialScale or 1.0, box_coordinate_mode=r.param(p.boxIndicesMode, "boxMode"),
                sampling_mode=SAMPLING_MODES[r.param(p.mode, "samplingMethod")])
    return Emit("crop_resize", args, [out])


UNARY = ("sqrt", "rsqrt", "inverse", "pow", "exp", "log", "abs", "threshold")


def unary(r, p, xs):
    op_type = UNARY[p.type]
    args = {"x": xs[0]}
    if op_type in ("rsqrt", "inverse"):
        args["epsilon"] = p.epsilon or 1e-6
    elif op_type in ("pow", "threshold"):
        args["y" if op_type == "pow" else "alpha"] = p.alpha
    if p.scale not in (0, 1) or p.shift:  # f(scale * x + shift)
        return Emit("nn.unary", args, [r.shape(xs[0])], {"function": op_type, "scale": p.scale, "shift": p.shift})
    return Emit(op_type, args, [r.shape(xs[0])])


def elementwise(layer_type: str, op_type: str | None) -> Callable:
    """Legacy add / multiply / max / min / average: binary MIL op for two inputs (or one and
    ``alpha``), ``nn.<layer>`` over ``values`` otherwise."""

    def handler(r, p, xs):
        out = [r.legacy_broadcast([r.shape(v) for v in xs])]
        if op_type and len(xs) == 1 and hasattr(p, "alpha"):
            return Emit(op_type, {"x": xs[0], "y": float(p.alpha)}, out)
        if op_type and len(xs) == 2:
            return Emit(op_type, {"x": xs[0], "y": xs[1]}, out)
        return Emit("nn." + layer_type, {"values": xs}, out)

    return handler


def chw(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A per-channel ``[C]`` parameter of a rank-5-era layer broadcasts as ``(C, 1, 1)``."""
    return (shape[0], 1, 1) if len(shape) == 1 and shape[0] != 1 else shape


def scale(r, p, xs):
    args = dict(x=xs[0], y=r.weight(p.scale, chw(tuple(p.shapeScale) or (1,))),
                bias=r.weight(p.bias, chw(tuple(p.shapeBias) or (1,))) if p.hasBias else None)
    return Emit("nn.scale" if p.hasBias else "mul", args, [r.shape(xs[0])])


def bias(r, p, xs):
    return Emit("add", dict(x=xs[0], y=r.weight(p.bias, chw(tuple(p.shape) or (1,)))), [r.shape(xs[0])])


def dot(r, p, xs):
    x = r.shape(xs[0])
    out = None if x is None else (*x[:-3], 1, 1, 1) if len(x) >= 3 else (1,)
    return Emit("nn.dot", dict(x=xs[0], y=xs[1]), [out], {"cosine_similarity": p.cosineSimilarity})


REDUCE_MODES = ("reduce_sum", "reduce_mean", "reduce_prod", "reduce_log_sum", "reduce_sum_square", "reduce_l1_norm",
                "reduce_l2_norm", "reduce_max", "reduce_min", "reduce_argmax")
REDUCE_AXES = ((-3, -2, -1), (-2, -1), (-3,), (-2,), (-1,))  # CHW, HW, C, H, W


def reduce(r, p, xs):
    op_type, axes, x = REDUCE_MODES[p.mode], REDUCE_AXES[p.axis], r.shape(xs[0])
    idx = [a for a in (r.lax(x, a) for a in axes) if a is not None]
    args = {"x": xs[0], "keep_dims": True}
    args.update({"axis": axes[0]} if op_type == "reduce_argmax" else {"axes": list(axes)})
    return Emit(op_type, args, [reduced(x, idx, True)])


def reduce_nd(op_type: str) -> Callable:
    def handler(r, p, xs):
        axes = None if p.reduceAll else list(p.axes)
        out = reduced(r.shape(xs[0]), axes, p.keepDims)
        return Emit(op_type, dict(x=xs[0], axes=axes, keep_dims=p.keepDims), [out])

    return handler


def load_constant(r, p, xs):
    shape = tuple(int(d) for d in p.shape)
    return Emit("load_constant", {"val": r.weight(p.data, shape)}, [shape])


def reshape(r, p, xs):
    target, x = tuple(p.targetShape), r.shape(xs[0])
    if len(target) == 4:  # [Seq, C, H, W]
        out = (target[0], x[1], *target[1:]) if x is not None and len(x) == 5 else target
    else:
        out = target if x is None else (*x[:-3], *target)
    out = reshaped(out, x)
    return Emit("nn.reshape" if p.mode else "reshape", dict(x=xs[0], shape=shape_arg(out)), [out])


def flatten(r, p, xs):
    x = r.shape(xs[0])
    out = x if x is None or len(x) < 3 else (*x[:-3], dims_prod(x[-3:]), 1, 1)
    return Emit("nn.flatten" if p.mode else "reshape", dict(x=xs[0], shape=shape_arg(out)), [out])


def permute(r, p, xs):
    axis, x = list(p.axis) or [0, 1, 2, 3], r.shape(xs[0])
    if x is None or len(x) < 3:
        return Emit("nn.permute", dict(x=xs[0]), [None], {"axis": axis})
    notional = (x[0] if len(x) == 5 else 1, *x[-3:])  # [Seq, C, H, W]; batch never moves
    moved = [notional[a] for a in axis]
    if len(x) == 5:
        out, perm = (moved[0], x[1], *moved[1:]), [(0, 2, 3, 4)[a] for a in axis]
        perm.insert(1, 1)
    elif axis[0] == 0:
        lead = len(x) - 3
        out, perm = (*x[:-3], *moved[1:]), [*range(lead), *(lead + a - 1 for a in axis[1:])]
    else:  # the sequence axis moves into a tensor stated below rank 5
        return Emit("nn.permute", dict(x=xs[0]), [(moved[0], 1, *moved[1:])], {"axis": axis})
    return Emit("transpose", dict(x=xs[0], perm=perm), [out])


def concat(r, p, xs):
    axis = -5 if p.sequenceConcat else -3
    shapes = [r.shape(v) for v in xs]
    out = concat_shape(shapes, lambda s: norm_axis(-5, len(s)) if p.sequenceConcat else r.lax(s, -3))
    return Emit("concat", dict(values=xs, axis=axis, interleave=False), [out])


def split(r, p, xs):
    x, n = r.shape(xs[0]), p.nOutputs or 1
    c = r.lax(x, -3)
    part = with_dims(x, {c: x[c] // n if x[c] is not None else None}) if c is not None else None
    return Emit("split", dict(x=xs[0], num_splits=n, axis=-3), [part] * n)


def reorganize(r, p, xs):
    mode, b, x = r.param(p, "mode"), p.blockSize, r.shape(xs[0])
    grow = mode != "SPACE_TO_DEPTH"
    out = None
    if x is not None and len(x) >= 3:
        c, h, w = x[-3:]
        out = (*x[:-3], times(c, 1, b * b), times(h, b), times(w, b)) if grow else \
            (*x[:-3], times(c, b * b), times(h, 1, b), times(w, 1, b))
    return Emit(mode.lower(), {"x": xs[0], "upscale_factor" if mode == "PIXEL_SHUFFLE" else "block_size": b}, [out])


def slice_legacy(r, p, xs):
    x, axis = r.shape(xs[0]), (-3, -2, -1)[p.axis]
    a = r.lax(x, axis)
    stride = p.stride or 1
    if a is None:
        return Emit("slice_by_index", dict(x=xs[0]), [x], {"axis": axis, "begin": p.startIndex, "end": p.endIndex})
    n = len(x)
    args = dict(x=xs[0], begin=[p.startIndex if i == a else 0 for i in range(n)],
                end=[p.endIndex if i == a else 0 for i in range(n)], stride=[stride if i == a else 1 for i in range(n)],
                begin_mask=[i != a for i in range(n)], end_mask=[i != a for i in range(n)])
    return Emit("slice_by_index", args, [with_dims(x, {a: sliced(x[a], p.startIndex, p.endIndex, stride)})])


def sequence_repeat(r, p, xs):
    x = r.shape(xs[0])
    out = with_dims(x, {0: times(x[0], p.nRepetitions or 1)}) if x is not None and len(x) == 5 else None
    return Emit("nn.sequenceRepeat", dict(x=xs[0], reps=p.nRepetitions or 1), [out])


def rnn_shapes(r, x, out_size: int, state_size: int, sequence: bool):
    """Shapes of a recurrent layer's output and state(s) for input ``[Seq, Batch, I, 1, 1]``."""
    c = r.lax(x, -3)
    if c is None:
        return None, None

    def shaped(size, keep_seq):
        s = list(x)
        s[c] = size
        if len(s) == 5 and not keep_seq:
            s[0] = 1
        return tuple(s)

    return shaped(out_size, sequence), shaped(state_size, False)


LSTM_GATES = ("inputGate", "forgetGate", "outputGate", "blockInput")  # MIL order i, f, o, z
GRU_GATES = ("resetGate", "outputGate", "updateGate")  # MIL order r, o, z


def gate_args(r, w, gates, h, i, has_bias, suffix=""):
    n = len(gates)
    args = {"weight_ih" + suffix: r.weight([getattr(w, g + "WeightMatrix") for g in gates], (n * h, i)),
            "weight_hh" + suffix: r.weight([getattr(w, g + "RecursionMatrix") for g in gates], (n * h, h))}
    if has_bias:
        args["bias" + suffix] = r.weight([getattr(w, g + "BiasVector") for g in gates], (n * h,))
    return args


def lstm(r, p, xs):
    h, i, lp = p.outputVectorSize, p.inputVectorSize, p.params
    bi = p.DESCRIPTOR.name == "BiDirectionalLSTMLayerParams"
    directions = list(p.weightParams) if bi else [p.weightParams]
    args = dict(x=xs[0], initial_h=xs[1] if len(xs) > 1 else None, initial_c=xs[2] if len(xs) > 2 else None)
    if bi:
        args.update(initial_h_back=xs[3] if len(xs) > 3 else None, initial_c_back=xs[4] if len(xs) > 4 else None)
    for w, suffix in zip(directions, ("", "_back")):
        args.update(gate_args(r, w, LSTM_GATES, h, i, lp.hasBiasVectors, suffix))
        if lp.hasPeepholeVectors:
            args["peephole" + suffix] = r.weight([getattr(w, g + "PeepholeVector") for g in LSTM_GATES[:3]], (3 * h,))
    acts = [rnn_activation(a) for a in (p.activationsForwardLSTM if bi else p.activations)]
    acts = acts or ["sigmoid", "tanh", "tanh"]
    args.update(direction="bidirectional" if bi else "reverse" if p.reverseInput else "forward",
                output_sequence=lp.sequenceOutput, recurrent_activation=acts[0], cell_activation=acts[1],
                activation=acts[2], clip=lp.cellClipThreshold or 50.0)
    y, state = rnn_shapes(r, r.shape(xs[0]), h * (2 if bi else 1), h, lp.sequenceOutput)
    attrs = {k: True for k in ("forgetBias", "coupledInputAndForgetGate") if getattr(lp, k)}
    return Emit("lstm", args, [y] + [state] * (4 if bi else 2), attrs)


def gru(r, p, xs):
    h = p.outputVectorSize
    acts = [rnn_activation(a) for a in p.activations] or ["sigmoid", "tanh"]
    args = dict(x=xs[0], initial_h=xs[1] if len(xs) > 1 else None,
                **gate_args(r, p, GRU_GATES, h, p.inputVectorSize, p.hasBiasVectors),
                direction="reverse" if p.reverseInput else "forward", output_sequence=p.sequenceOutput,
                recurrent_activation=acts[0], activation=acts[-1])
    return Emit("gru", args, list(rnn_shapes(r, r.shape(xs[0]), h, h, p.sequenceOutput)))


def simple_recurrent(r, p, xs):
    h, i = p.outputVectorSize, p.inputVectorSize
    args = dict(x=xs[0], initial_h=xs[1] if len(xs) > 1 else None, weight_ih=r.weight(p.weightMatrix, (h, i)),
                weight_hh=r.weight(p.recursionMatrix, (h, h)),
                bias=r.weight(p.biasVector, (h,)) if p.hasBiasVector else None,
                direction="reverse" if p.reverseInput else "forward", output_sequence=p.sequenceOutput,
                activation=rnn_activation(p.activation) if p.HasField("activation") else "tanh")
    return Emit("rnn", args, list(rnn_shapes(r, r.shape(xs[0]), h, h, p.sequenceOutput)))


def batched_matmul(r, p, xs):
    if len(xs) > 1:
        a, b = r.shape(xs[0]), r.shape(xs[1])
        out = None
        if a is not None and b is not None:
            a = (1, *a) if len(a) == 1 else a
            b = (*b, 1) if len(b) == 1 else b
            rows, cols = a[-1] if p.transposeA else a[-2], b[-2] if p.transposeB else b[-1]
            lead = broadcast(a[:-2], b[:-2])
            out = None if lead is None else (*lead, rows, cols)
        return Emit("matmul", dict(x=xs[0], y=xs[1], transpose_x=p.transposeA, transpose_y=p.transposeB), [out])
    x1, x2 = p.weightMatrixFirstDimension, p.weightMatrixSecondDimension  # stored column-major: (X2, X1)
    args = dict(x=xs[0], weight=r.weight(p.weights, (x2, x1)), bias=r.weight(p.bias, (x2,)) if p.hasBias else None)
    return Emit("linear", args, [with_dims(r.shape(xs[0]), {-1: x2})],
                {"int8_dynamic_quantize": True} if p.int8DynamicQuantize else {})


def triangular(upper: bool) -> Callable:
    """lower/upperTriangular -> band_part where it can say the same (k >= 0 / k <= 0)."""

    def handler(r, p, xs):
        same = [r.shape(xs[0])]
        if (p.k <= 0) if upper else (p.k >= 0):
            return Emit("band_part", dict(x=xs[0], lower=-p.k if upper else -1, upper=-1 if upper else p.k), same)
        return Emit("nn.upperTriangular" if upper else "nn.lowerTriangular", dict(x=xs[0], k=p.k), same)

    return handler


def custom(r, p, xs):
    params = {k: getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None for k, v in p.parameters.items()}
    args = {"inputs": xs, **{f"weight{i}": r.weight(w, None) for i, w in enumerate(p.weights)}}
    r.note(f"custom layer class {p.className!r}: its output shapes are unknown")
    return Emit("custom", args, [], {"class_name": p.className, "parameters": params, "description": p.description})


def branch(r, p, xs):
    blocks = [Block([], r.ops(n.layers), []) for n in (p.ifBranch, p.elseBranch)]
    return Emit("cond", {"pred": xs[0] if xs else None}, [], blocks=blocks)


def loop(r, p, xs):
    blocks = [Block([], r.ops(n.layers), []) for n in (p.conditionNetwork, p.bodyNetwork)]
    attrs = {"max_iterations": p.maxLoopIterations, "condition_var": p.conditionVar}
    return Emit("while_loop", {"loop_vars": xs} if xs else {}, [], attrs, blocks)


HANDLERS: dict[str, Callable] = {
    **{k: table_handler(*v) for k, v in TABLE.items()},
    **{k: reduce_nd(v) for k, v in {
        "reduceL1": "reduce_l1_norm", "reduceL2": "reduce_l2_norm", "reduceMax": "reduce_max",
        "reduceMin": "reduce_min",
        "reduceSum": "reduce_sum", "reduceProd": "reduce_prod", "reduceMean": "reduce_mean",
        "reduceLogSum": "reduce_log_sum", "reduceSumSquare": "reduce_sum_square",
        "reduceLogSumExp": "reduce_log_sum_exp"}.items()},
    **{k: elementwise(k, v) for k, v in {"add": "add", "multiply": "mul", "max": "maximum", "min": "minimum",
                                         "average": None}.items()},
    "convolution": convolution, "convolution3d": convolution3d, "pooling": pooling, "pooling3d": pooling3d,
    "globalPooling3d": lambda r, p, xs: global_pool(r, xs, r.param(p, "type"), (-3, -2, -1)),
    "activation": activation, "innerProduct": inner_product, "embedding": embedding, "embeddingND": embedding_nd,
    "batchnorm": batchnorm, "mvn": mvn, "layerNormalization": layer_normalization, "crop": crop, "padding": padding,
    "constantPad": constant_pad, "upsample": upsample, "resizeBilinear": resize_bilinear, "cropResize": crop_resize,
    "unary": unary, "scale": scale, "bias": bias, "dot": dot, "reduce": reduce, "loadConstant": load_constant,
    "loadConstantND": load_constant, "reshape": reshape, "flatten": flatten, "permute": permute, "concat": concat,
    "split": split, "reorganizeData": reorganize, "slice": slice_legacy, "sequenceRepeat": sequence_repeat,
    "uniDirectionalLSTM": lstm, "biDirectionalLSTM": lstm, "gru": gru, "simpleRecurrent": simple_recurrent,
    "batchedMatmul": batched_matmul, "lowerTriangular": triangular(False), "upperTriangular": triangular(True),
    "custom": custom, "branch": branch, "loop": loop,
}


# ---------------------------------------------------------------------------- graph

COLOR_BIASES = {10: ("grayBias",), 40: ("grayBias",), 20: ("redBias", "greenBias", "blueBias"),
                30: ("blueBias", "greenBias", "redBias")}


def flexible_dims(feature) -> set[int]:
    """Indices of the dims a model input may vary in (shape range / enumerated shapes / image sizes)."""
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        t = feature.type.multiArrayType
        which = t.WhichOneof("ShapeFlexibility")
        if which == "shapeRange":
            return {i for i, rg in enumerate(t.shapeRange.sizeRanges) if rg.lowerBound != rg.upperBound}
        if which == "enumeratedShapes":
            shapes = [tuple(s.shape) for s in t.enumeratedShapes.shapes]
            return {i for i, dims in enumerate(zip(*shapes)) if len(set(dims)) > 1}
    elif kind == "imageType":
        t = feature.type.imageType
        which = t.WhichOneof("SizeFlexibility")
        if which == "imageSizeRange":
            rg = t.imageSizeRange
            return {i for i, b in ((2, rg.heightRange), (3, rg.widthRange)) if b.lowerBound != b.upperBound}
        if which == "enumeratedSizes":
            sizes = t.enumeratedSizes.sizes
            return {i for i, vals in ((2, {s.height for s in sizes}), (3, {s.width for s in sizes})) if len(vals) > 1}
    return set()


def preprocessing_op(pre, x: Value, color_space: int) -> Op:
    """The image scale / bias (or mean-image) step Core ML runs before the first layer."""
    kind = pre.WhichOneof("preprocessor")
    c = x.type.shape[1] if x.type.shape and len(x.type.shape) == 4 else 3
    name = f"preprocessing:{x.name}"
    if kind == "scaler":
        s = pre.scaler
        fields = COLOR_BIASES.get(color_space, COLOR_BIASES[20])[:c]
        biases = np.array([getattr(s, f) for f in fields], np.float32).reshape(-1, 1, 1)
        payloads = {"scale": s.channelScale, "bias": biases}
    else:
        mean = np.array(pre.meanImage.meanImage, np.float32)
        chw_shape = (c, *x.type.shape[2:]) if x.type.is_static and len(x.type.shape) == 4 else ()
        payloads = {"mean_image": mean.reshape(chw_shape) if chw_shape and mean.size == prod(chw_shape) else mean}
    inputs = {"x": x, **{k: const_value(f"{name}.{k}", v) for k, v in payloads.items()}}
    op = Op(name, "nn.preprocessing", inputs, [], "", {"kind": kind}, [], "preprocessing")
    op.outputs.append(Value(name, x.type, producer=op))
    return op


def graph_from_neuralnetwork(nn, description, name: str, weights_note: list[str] | None = None) -> Graph:
    """Translate a ``NeuralNetwork`` / ``NeuralNetworkClassifier`` / ``NeuralNetworkRegressor``
    message with its ``ModelDescription`` into one :class:`Graph`; problems go to ``weights_note``."""
    notes = weights_note if weights_note is not None else []
    reader = Reader(name, nn.arrayInputShapeMapping == 0, notes)
    specs = input_specs(description)
    inputs = []
    for spec, feature in zip(specs, description.input):
        flex = flexible_dims(feature)
        stated = spec.type.shape
        shape = None if stated is None else tuple(None if i in flex else d for i, d in enumerate(stated))
        v = Value(spec.name, TensorType(spec.type.dtype, shape))
        reader.values[v.name] = v
        inputs.append(v)
    ops = []
    colors = {f.name: f.type.imageType.colorSpace for f in description.input}
    for pre in nn.preprocessing:
        target = pre.featureName or (inputs[0].name if len(inputs) == 1 else "")
        if target in reader.values:
            ops.append(preprocessing_op(pre, reader.values[target], colors.get(target, 0)))
            reader.values[target] = ops[-1].outputs[0]
    ops += reader.ops(nn.layers)
    labels = nn.WhichOneof("ClassLabels") if hasattr(nn, "labelProbabilityLayerName") else None
    blob_of = {}  # a classifier's probabilities output may name the blob differently
    if labels:
        blob_of[description.predictedProbabilitiesName] = nn.labelProbabilityLayerName
        notes.append(f"{name}: classifier with {len(getattr(nn, labels).vector)} class labels; Core ML picks the label "
                     f"({description.predictedFeatureName or 'classLabel'!r}) on the CPU after the network")
    blobs = [blob_of.get(o.name) or o.name for o in description.output]
    outputs = [reader.values[b] for b in blobs if b in reader.values]
    missing = [b for b in blobs if b not in reader.values and b != description.predictedFeatureName]
    if missing:
        notes.append(f"{name}: no layer produces the model output(s) {', '.join(map(repr, missing))}")
    return Graph(name, ops, inputs, outputs, specs, "")
