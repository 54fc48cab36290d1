"""The NeuralNetwork layers that translate by table: one row per layer type, giving the MIL op, the runtime
argument names, the parameters (proto field, function of the layer and input shapes, or literal) and
the output-shape function. :mod:`.neuralnetwork` handles the layers that need code."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil
from typing import Any, Callable

from ..ir import Block
from ..ir.shapes import (
    broadcast,
    concat_shape,
    dims_prod,
    dynamic,
    norm_axis,
    reduced,
    reshaped,
    shape_arg,
    sliced,
    times,
    with_dims,
)

AB = {"alpha": "alpha", "beta": "beta"}


@dataclass
class Emit:
    """What a layer handler returns: MIL op type, arguments (Values or constant payloads),
    output shapes, and extras."""

    type: str
    args: dict[str, Any]
    shapes: list = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)


def enum_name(p, name: str) -> str:
    return p.DESCRIPTOR.fields_by_name[name].enum_type.values_by_number[getattr(p, name)].name


# ---- table-driven layers: (MIL op, runtime argument names, {MIL argument: proto field | fn(p, shapes) | literal},
#      fn(p, shapes) -> output shapes). A runtime input overrides the parameter of the same name;
#      a name starting with "*" takes all remaining inputs as a list.


def same(p, s):
    return [s[0] if s else None]


def bcast(p, s):
    return [broadcast(*s)]


def gather_shape(p, s):
    x, idx = s[0], s[1]
    a = None if x is None else norm_axis(p.axis, len(x))
    return [None if a is None or idx is None else (*x[:a], *idx, *x[a + 1 :])]


def gather_nd_shape(p, s):
    x, idx = s[0], s[1]
    return [None if x is None or idx is None or idx[-1] is None else (*idx[:-1], *x[idx[-1] :])]


def expand_shape(p, s):
    x = s[0]
    if x is None:
        return [None]
    n = len(x) + len(p.axes)
    ones = {norm_axis(a, n) for a in p.axes}
    it = iter(x)
    return [tuple(1 if i in ones else next(it) for i in range(n))]


def squeeze_shape(p, s):
    x = s[0]
    if x is None:
        return [None]
    drop = {i for i, d in enumerate(x) if d == 1} if p.squeezeAll else {norm_axis(a, len(x)) for a in p.axes}
    out = tuple(d for i, d in enumerate(x) if i not in drop)
    return [out if out or not x else (1,)]


def transpose_shape(p, s):
    x = s[0]
    return [tuple(x[a] for a in p.axes) if x is not None and len(p.axes) == len(x) else None]


def flatten2d(p, s):
    x = s[0]
    if x is None:
        return None
    a = p.axis + len(x) if p.axis < 0 else p.axis
    return (dims_prod(x[:a]), dims_prod(x[a:]))


def tile_shape(p, s):
    x = s[0]
    if x is None or len(s) > 1:
        return [None if x is None else (None,) * len(x)]
    reps = [1] * (len(x) - len(p.reps)) + list(p.reps)
    return [tuple(times(d, k) for d, k in zip(x, reps))]


def stack_shape(p, s):
    if any(x is None for x in s):
        return [None]
    x = broadcast(*s)
    a = norm_axis(p.axis, len(x) + 1)
    return [(*x[:a], len(s), *x[a:])]


def concat_nd_shape(p, s):
    return [concat_shape(s, lambda x: norm_axis(p.axis, len(x)))]


def split_nd_shape(p, s):
    x = s[0]
    a = None if x is None else norm_axis(p.axis, len(x))
    n = len(p.splitSizes) or p.numSplits or 1
    if a is None:
        return [None] * n
    sizes = list(p.splitSizes) or [x[a] // n if x[a] is not None else None] * n
    return [with_dims(x, {a: k}) for k in sizes]


def slice_static_shape(p, s, dynamic_begin=False, dynamic_end=False):
    x = s[0]
    if x is None:
        return [None]

    def at(name, i, default):
        seq = getattr(p, name, ())  # sliceDynamic has no beginIds
        return seq[i] if i < len(seq) else default

    out = []
    for i, n in enumerate(x):
        if at("squeezeMasks", i, False):
            continue
        bm, em = at("beginMasks", i, False), at("endMasks", i, False)
        known = (bm or not dynamic_begin) and (em or not dynamic_end)
        out.append(sliced(n, at("beginIds", i, 0), at("endIds", i, -1), at("strides", i, 1), bm, em) if known else None)
    return [tuple(out)]


def slice_dynamic_shape(p, s):
    return slice_static_shape(p, s, True, len(s) > 2)


def slice_size(p, s):
    """MIL ``size`` of a sliceBySize: ``size`` along ``axis``, everything (-1) elsewhere."""
    return None if s[0] is None else [p.size if norm_axis(p.axis, len(s[0])) == i else -1 for i in range(len(s[0]))]


def slice_by_size_shape(p, s):
    return [with_dims(s[0], {p.axis: p.size if p.size > 0 else None})]


def sliding_shape(p, s):
    x = s[0]
    a = None if x is None else norm_axis(p.axis, len(x))
    if a is None:
        return [None]
    m = None if x[a] is None else (x[a] - p.windowSize) // (p.step or 1) + 1
    return [(*x[:a], m, p.windowSize, *x[a + 1 :])]


def topk_shape(p, s):
    out = with_dims(s[0], {p.axis: p.K if len(s) == 1 else None})
    return [out, out]


def arg_shape(p, s):
    x = s[0]
    keep = not p.removeDim or (x is not None and len(x) == 1)
    return [reduced(x, [p.axis], keep)]


def one_hot_shape(p, s):
    x = s[0]
    if x is None:
        return [None]
    a = norm_axis(p.axis, len(x) + 1)
    return [(*x[:a], p.oneHotVectorSize if len(s) == 1 else None, *x[a:])]


def nms_shape(p, s):
    boxes, scores = s[0], s[1]
    b, m = boxes[0] if boxes is not None else None, p.maxBoxes or None
    c = scores[-1] if scores is not None else None
    return [(b, m, 4), (b, m, c), (b, m), (b,)]


def range_static_shape(p, s):
    return [(max(0, ceil((p.endValue - p.startValue) / (p.stepSizeValue or 1))),)]


def static_target(name: str) -> Callable:
    return lambda p, s: [tuple(int(d) for d in getattr(p, name))]


def dynamic_from(index: int) -> Callable:
    return lambda p, s: [dynamic(s[index]) if len(s) > index else None]


BINARY = {
    "addBroadcastable": "add",
    "subtractBroadcastable": "sub",
    "multiplyBroadcastable": "mul",
    "divideBroadcastable": "real_div",
    "maxBroadcastable": "maximum",
    "minBroadcastable": "minimum",
    "floorDivBroadcastable": "floor_div",
    "modBroadcastable": "mod",
    "powBroadcastable": "pow",
    "equal": "equal",
    "notEqual": "not_equal",
    "lessThan": "less",
    "lessEqual": "less_equal",
    "greaterThan": "greater",
    "greaterEqual": "greater_equal",
    "logicalAnd": "logical_and",
    "logicalOr": "logical_or",
    "logicalXor": "logical_xor",
}
UNARY_SAME = {
    n: n
    for n in (
        "ceil",
        "floor",
        "sign",
        "round",
        "exp2",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "sinh",
        "cosh",
        "tanh",
        "asinh",
        "acosh",
        "atanh",
        "erf",
    )
}
UNARY_SAME.update(logicalNot="logical_not", copy="identity")


def scatter_mode(p, s):
    return enum_name(p, "mode").removeprefix("SCATTER_").lower()


RESHAPE = (
    "reshape",
    ("x",),
    {"shape": lambda p, s: shape_arg(reshaped(p.targetShape, s[0]))},
    lambda p, s: [reshaped(p.targetShape, s[0])],
)
ARG_REDUCE = {"axis": "axis", "keep_dims": lambda p, s: not p.removeDim}
NORMAL = {"mean": "mean", "stddev": "stdDev", "seed": "seed"}
UNIFORM = {"low": "minVal", "high": "maxVal", "seed": "seed"}
BERNOULLI = {"prob": "prob", "seed": "seed"}
SCATTER = ("data", "indices", "updates")

TABLE: dict[str, tuple] = {
    **{
        k: (
            v,
            ("x", "y"),
            {"y": "alpha"}
            if k in ("equal", "notEqual", "lessThan", "lessEqual", "greaterThan", "greaterEqual")
            else {},
            bcast,
        )
        for k, v in BINARY.items()
    },
    **{k: (v, ("x",), {}, same) for k, v in UNARY_SAME.items()},
    "softmax": ("softmax", ("x",), {"axis": -3}, same),
    "softmaxND": ("softmax", ("x",), {"axis": "axis"}, same),
    "clip": ("clip", ("x",), {"alpha": "minVal", "beta": "maxVal"}, same),
    "clampedReLU": ("clamped_relu", ("x",), AB, same),
    "gelu": ("gelu", ("x",), {"mode": "mode"}, same),
    "l2normalize": ("l2_norm", ("x",), {"axes": [-3, -2, -1], "epsilon": lambda p, s: p.epsilon or 1e-6}, same),
    "lrn": (
        "local_response_norm",
        ("x",),
        {"size": "localSize", "alpha": "alpha", "beta": "beta", "k": lambda p, s: p.k or 1.0},
        same,
    ),
    "cumSum": ("cumsum", ("x", "axis"), {"axis": "axis", "exclusive": "excludeFinalSum", "reverse": "reverse"}, same),
    "reverse": ("reverse", ("x",), {"axes": lambda p, s: [i for i, f in enumerate(p.reverseDim) if f]}, same),
    "reverseSeq": ("reverse_sequence", ("x", "lengths"), {"seq_axis": "sequenceAxis", "batch_axis": "batchAxis"}, same),
    "argSort": ("argsort", ("x",), {"axis": "axis", "ascending": lambda p, s: not p.descending}, same),
    "matrixBandPart": ("band_part", ("x",), {"lower": "numLower", "upper": "numUpper"}, same),
    "whereBroadcastable": ("select", ("cond", "a", "b"), {}, bcast),
    "whereNonZero": ("non_zero", ("x",), {}, lambda p, s: [None if s[0] is None else (None, len(s[0]))]),
    "getShape": ("shape", ("x",), {}, lambda p, s: [None if s[0] is None else (len(s[0]),)]),
    "gather": ("gather", ("x", "indices"), {"axis": "axis"}, gather_shape),
    "gatherND": ("gather_nd", ("x", "indices"), {}, gather_nd_shape),
    "gatherAlongAxis": ("gather_along_axis", ("x", "indices"), {"axis": "axis"}, lambda p, s: [s[1]]),
    "scatter": ("scatter", SCATTER, {"axis": "axis", "mode": scatter_mode}, same),
    "scatterND": ("scatter_nd", SCATTER, {"mode": scatter_mode}, same),
    "scatterAlongAxis": ("scatter_along_axis", SCATTER, {"axis": "axis", "mode": scatter_mode}, same),
    "stack": ("stack", ("*values",), {"axis": "axis"}, stack_shape),
    "concatND": ("concat", ("*values",), {"axis": "axis", "interleave": "interleave"}, concat_nd_shape),
    "splitND": (
        "split",
        ("x",),
        {
            "axis": "axis",
            "num_splits": lambda p, s: None if p.splitSizes else p.numSplits,
            "split_sizes": lambda p, s: list(p.splitSizes) or None,
        },
        split_nd_shape,
    ),
    "transpose": ("transpose", ("x",), {"perm": "axes"}, transpose_shape),
    "expandDims": ("expand_dims", ("x",), {"axes": "axes"}, expand_shape),
    "squeeze": ("squeeze", ("x",), {"axes": lambda p, s: None if p.squeezeAll else list(p.axes)}, squeeze_shape),
    "reshapeStatic": RESHAPE,
    "rankPreservingReshape": RESHAPE,
    "reshapeDynamic": ("reshape", ("x", "shape"), {}, dynamic_from(1)),
    "reshapeLike": ("reshape_like", ("x", "*ref_tensors"), {}, lambda p, s: [s[1] if len(s) > 1 else None]),
    "flattenTo2D": (
        "reshape",
        ("x",),
        {"shape": lambda p, s: shape_arg(flatten2d(p, s))},
        lambda p, s: [flatten2d(p, s)],
    ),
    "tile": ("tile", ("x", "reps"), {"reps": "reps"}, tile_shape),
    "sliceStatic": (
        "slice_by_index",
        ("x",),
        {
            "begin": "beginIds",
            "end": "endIds",
            "stride": "strides",
            "begin_mask": "beginMasks",
            "end_mask": "endMasks",
            "squeeze_mask": "squeezeMasks",
        },
        slice_static_shape,
    ),
    "sliceDynamic": (
        "slice_by_index",
        ("x", "begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"),
        {
            "end": "endIds",
            "stride": "strides",
            "begin_mask": "beginMasks",
            "end_mask": "endMasks",
            "squeeze_mask": "squeezeMasks",
        },
        slice_dynamic_shape,
    ),
    "sliceBySize": ("slice_by_size", ("x", "begin"), {"size": slice_size}, slice_by_size_shape),
    "slidingWindows": (
        "sliding_windows",
        ("x",),
        {"axis": "axis", "size": "windowSize", "stride": "step"},
        sliding_shape,
    ),
    "topK": ("topk", ("x", "k"), {"k": "K", "axis": "axis", "ascending": "useBottomK"}, topk_shape),
    "argMax": ("reduce_argmax", ("x",), ARG_REDUCE, arg_shape),
    "argMin": ("reduce_argmin", ("x",), ARG_REDUCE, arg_shape),
    "oneHot": (
        "one_hot",
        ("indices", "one_hot_vector_size"),
        {"one_hot_vector_size": "oneHotVectorSize", "axis": "axis", "on_value": "onValue", "off_value": "offValue"},
        one_hot_shape,
    ),
    "NonMaximumSuppression": (
        "non_maximum_suppression",
        ("boxes", "scores", "iou_threshold", "score_threshold", "max_boxes"),
        {
            "iou_threshold": "iouThreshold",
            "score_threshold": "scoreThreshold",
            "max_boxes": "maxBoxes",
            "per_class_suppression": "perClassSuppression",
        },
        nms_shape,
    ),
    "fillLike": ("fill_like", ("ref_tensor",), {"value": "value"}, same),
    "fillStatic": ("fill", (), {"shape": "targetShape", "value": "value"}, static_target("targetShape")),
    "fillDynamic": ("fill", ("shape",), {"value": "value"}, dynamic_from(0)),
    "broadcastToLike": ("nn.broadcastToLike", ("x", "ref_tensor"), {}, bcast),
    "broadcastToStatic": (
        "nn.broadcastToStatic",
        ("x",),
        {"shape": "targetShape"},
        lambda p, s: [broadcast(s[0], tuple(p.targetShape))],
    ),
    "broadcastToDynamic": ("nn.broadcastToDynamic", ("x", "shape"), {}, dynamic_from(1)),
    "rangeStatic": (
        "range_1d",
        (),
        {"end": "endValue", "start": "startValue", "step": "stepSizeValue"},
        range_static_shape,
    ),
    "rangeDynamic": (
        "range_1d",
        ("end", "start", "step"),
        {"start": "startValue", "step": "stepSizeValue"},
        lambda p, s: [(None,)],
    ),
    "randomNormalStatic": ("random_normal", (), {"shape": "outputShape", **NORMAL}, static_target("outputShape")),
    "randomNormalDynamic": ("random_normal", ("shape",), NORMAL, dynamic_from(0)),
    "randomNormalLike": ("nn.randomNormalLike", ("x",), NORMAL, same),
    "randomUniformStatic": ("random_uniform", (), {"shape": "outputShape", **UNIFORM}, static_target("outputShape")),
    "randomUniformDynamic": ("random_uniform", ("shape",), UNIFORM, dynamic_from(0)),
    "randomUniformLike": ("nn.randomUniformLike", ("x",), UNIFORM, same),
    "randomBernoulliStatic": (
        "random_bernoulli",
        (),
        {"shape": "outputShape", **BERNOULLI},
        static_target("outputShape"),
    ),
    "randomBernoulliDynamic": ("random_bernoulli", ("shape",), BERNOULLI, dynamic_from(0)),
    "randomBernoulliLike": ("nn.randomBernoulliLike", ("x",), BERNOULLI, same),
    "categoricalDistribution": (
        "random_categorical",
        ("x",),
        {"mode": lambda p, s: "logits" if p.isLogits else "probs", "size": "numSamples", "seed": "seed"},
        lambda p, s: [with_dims(s[0], {-1: p.numSamples})],
    ),
    "loopBreak": ("nn.loopBreak", (), {}, lambda p, s: []),
    "loopContinue": ("nn.loopContinue", (), {}, lambda p, s: []),
}


def table_handler(op_type: str, names: tuple[str, ...], params: dict, shape_fn: Callable) -> Callable:
    def handler(r, p, xs):
        shapes = [r.shape(v) for v in xs]
        args = {arg.lstrip("*"): xs[i:] if arg.startswith("*") else xs[i] for i, arg in enumerate(names[: len(xs)])}
        for arg, src in params.items():
            if arg not in args:
                args[arg] = r.param(p, src) if isinstance(src, str) else src(p, shapes) if callable(src) else src
        return Emit(op_type, args, shape_fn(p, shapes))

    return handler
