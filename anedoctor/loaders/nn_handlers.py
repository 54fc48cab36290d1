"""NeuralNetwork layer handlers: each turns one layer (its parameters and input Values, through the reader
``r``) into an :class:`~anedoctor.loaders.nn_layers.Emit` of the MIL op that computes the same thing."""

from __future__ import annotations

from typing import Callable

from ..ir.shapes import (
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
from .nn_layers import AB, Emit


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
    args = dict(
        x=xs[0],
        weight=weight,
        bias=r.weight(p.bias, (p.outputChannels,)) if p.hasBias else None,
        strides=s,
        pad_type=pad_type,
        pad=pad if pad_type == "custom" else None,
        dilations=d,
        groups=groups,
    )
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
    pad = [
        p.customPaddingFront,
        p.customPaddingBack,
        p.customPaddingTop,
        p.customPaddingBottom,
        p.customPaddingLeft,
        p.customPaddingRight,
    ]
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
    return Emit(
        GLOBAL_POOLS[kind],
        dict(x=xs[0], axes=list(axes), keep_dims=True),
        [with_dims(r.shape(xs[0]), dict.fromkeys(axes, 1))],
    )


def pool_args(r, xs, kind, k, s, pad_type, pad, exclude):
    args = dict(
        x=xs[0],
        kernel_sizes=k,
        strides=s,
        pad_type="custom" if pad_type == "ceil" else pad_type,
        pad=pad if pad_type in ("custom", "ceil") else None,
        ceil_mode=pad_type == "ceil",
    )
    if kind == "AVERAGE":
        args["exclude_padding_from_average"] = exclude
    op_type = {"MAX": "max_pool", "AVERAGE": "avg_pool", "L2": "l2_pool"}[kind]
    return Emit(op_type, args, [conv_shape(r.shape(xs[0]), None, k, s, [1] * len(k), pad_type, pad)])


def pooling(r, p, xs):
    kind = r.param(p, "type")
    if p.globalPooling:
        return global_pool(r, xs, kind, (-2, -1))
    pad_type, pad = pad_of(p, 2)
    return pool_args(
        r, xs, kind, list(p.kernelSize) or [3, 3], list(p.stride) or [1, 1], pad_type, pad, p.avgPoolExcludePadding
    )


def pooling3d(r, p, xs):
    pad_type, pad = pad3d(p)
    return pool_args(
        r,
        xs,
        r.param(p, "type"),
        [p.kernelDepth, p.kernelHeight, p.kernelWidth],
        [p.strideDepth or 1, p.strideHeight or 1, p.strideWidth or 1],
        pad_type,
        pad,
        p.countExcludePadding,
    )


# ActivationParams oneof -> (MIL op, {MIL argument: proto field})
ACTIVATIONS = {
    "ReLU": ("relu", {}),
    "leakyReLU": ("leaky_relu", {"alpha": "alpha"}),
    "tanh": ("tanh", {}),
    "thresholdedReLU": ("thresholded_relu", {"alpha": "alpha"}),
    "scaledTanh": ("scaled_tanh", AB),
    "sigmoid": ("sigmoid", {}),
    "sigmoidHard": ("sigmoid_hard", AB),
    "ELU": ("elu", {"alpha": "alpha"}),
    "softsign": ("softsign", {}),
    "softplus": ("softplus", {}),
    "linear": ("linear_activation", AB),
    "PReLU": ("prelu", {"alpha": "alpha"}),
    "parametricSoftplus": ("softplus_parametric", AB),
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
    args = dict(
        x=xs[0],
        weight=r.weight(p.weights, (cout, p.inputChannels)),
        bias=r.weight(p.bias, (cout,)) if p.hasBias else None,
    )
    return Emit("linear", args, [out], {"int8_dynamic_quantize": True} if p.int8DynamicQuantize else {})


def lookup(r, p, xs, vocab, size, out):
    """An embedding: rows of the (vocab, size) table picked by the input ids."""
    args = dict(
        x=r.weight(p.weights, (size, vocab), transpose=True),
        indices=xs[0],
        axis=0,
        bias=r.weight(p.bias, (size,)) if p.hasBias else None,
    )
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
    args = dict(
        x=xs[0],
        axes=list(range(-len(shape), 0)),
        gamma=r.weight(p.gamma, shape),
        beta=r.weight(p.beta, shape),
        epsilon=p.eps or 1e-5,
    )
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


SAMPLING_MODES = {
    "STRICT_ALIGN_ENDPOINTS_MODE": "STRICT_ALIGN_CORNERS",
    "ALIGN_ENDPOINTS_MODE": "ALIGN_CORNERS",
    "UPSAMPLE_MODE": "DEFAULT",
    "ROI_ALIGN_MODE": "OFFSET_CORNERS",
}


def resize_bilinear(r, p, xs):
    h, w = list(p.targetSize) or [1, 1]
    args = dict(
        x=xs[0],
        target_size_height=h,
        target_size_width=w,
        sampling_mode=SAMPLING_MODES[r.param(p.mode, "samplingMethod")],
    )
    return Emit("resize_bilinear", args, [with_dims(r.shape(xs[0]), {-2: h, -1: w})])


def crop_resize(r, p, xs):
    h, w = list(p.targetSize) or [1, 1]
    x, roi = r.shape(xs[0]), r.shape(xs[1])
    out = None
    if x is not None and roi is not None and len(x) >= 3 and len(roi) >= 3:
        out = (roi[0], x[-4] if roi[-3] == 4 and len(x) >= 4 else 1, x[-3], h, w)
    args = dict(
        x=xs[0],
        roi=xs[1],
        target_height=h,
        target_width=w,
        normalized_coordinates=p.normalizedCoordinates,
        spatial_scale=p.spatialScale or 1.0,
        box_coordinate_mode=r.param(p.boxIndicesMode, "boxMode"),
        sampling_mode=SAMPLING_MODES[r.param(p.mode, "samplingMethod")],
    )
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
    args = dict(
        x=xs[0],
        y=r.weight(p.scale, chw(tuple(p.shapeScale) or (1,))),
        bias=r.weight(p.bias, chw(tuple(p.shapeBias) or (1,))) if p.hasBias else None,
    )
    return Emit("nn.scale" if p.hasBias else "mul", args, [r.shape(xs[0])])


def bias(r, p, xs):
    return Emit("add", dict(x=xs[0], y=r.weight(p.bias, chw(tuple(p.shape) or (1,)))), [r.shape(xs[0])])


def dot(r, p, xs):
    x = r.shape(xs[0])
    out = None if x is None else (*x[:-3], 1, 1, 1) if len(x) >= 3 else (1,)
    return Emit("nn.dot", dict(x=xs[0], y=xs[1]), [out], {"cosine_similarity": p.cosineSimilarity})


REDUCE_MODES = (
    "reduce_sum",
    "reduce_mean",
    "reduce_prod",
    "reduce_log_sum",
    "reduce_sum_square",
    "reduce_l1_norm",
    "reduce_l2_norm",
    "reduce_max",
    "reduce_min",
    "reduce_argmax",
)
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
        out = (
            (*x[:-3], times(c, 1, b * b), times(h, b), times(w, b))
            if grow
            else (*x[:-3], times(c, b * b), times(h, 1, b), times(w, 1, b))
        )
    return Emit(mode.lower(), {"x": xs[0], "upscale_factor" if mode == "PIXEL_SHUFFLE" else "block_size": b}, [out])


def slice_legacy(r, p, xs):
    x, axis = r.shape(xs[0]), (-3, -2, -1)[p.axis]
    a = r.lax(x, axis)
    stride = p.stride or 1
    if a is None and x is not None and len(range(1)[p.startIndex : p.endIndex]):
        return Emit("identity", dict(x=xs[0]), [x])  # H or W of a (C,) vector: a size-1 axis, kept whole
    if a is None:
        return Emit("slice_by_index", dict(x=xs[0]), [x], {"axis": axis, "begin": p.startIndex, "end": p.endIndex})
    n = len(x)
    args = dict(
        x=xs[0],
        begin=[p.startIndex if i == a else 0 for i in range(n)],
        end=[p.endIndex if i == a else 0 for i in range(n)],
        stride=[stride if i == a else 1 for i in range(n)],
        begin_mask=[i != a for i in range(n)],
        end_mask=[i != a for i in range(n)],
    )
    return Emit("slice_by_index", args, [with_dims(x, {a: sliced(x[a], p.startIndex, p.endIndex, stride)})])


def sequence_repeat(r, p, xs):
    x = r.shape(xs[0])
    out = with_dims(x, {0: times(x[0], p.nRepetitions or 1)}) if x is not None and len(x) == 5 else None
    return Emit("nn.sequenceRepeat", dict(x=xs[0], reps=p.nRepetitions or 1), [out])
