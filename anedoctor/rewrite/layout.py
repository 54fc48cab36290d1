"""Rewrites into the forms the Neural Engine prefers: constant gathers as slices, linears as 1x1 convs in
(B, C, 1, S), batches of small images as one wide image, rank-4 norms, and shape arithmetic folded into constants.

There is no pass for softmax axes, GELU modes or an erf-based GELU: no rule flags them, because Core ML
put every form on the ANE in the M4 one-op probes (softmax over each axis, gelu EXACT / TANH / SIGMOID,
erf; github.com/751K/Apple-Neural-Engine-Microarchitecture-Study-M6
``data/03_compile/opdispatch/plan_iso_cpune.tsv``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Pass, PassResult, const, int_list, main_ops, register, static_shape, window_pads
from .coreml_io import run_coremltools_pass
from .shapes import fits


def index_progression(indices: Any, size: int) -> tuple[int, int, int] | None:
    """(first, count, step) of constant gather indices that form an increasing arithmetic progression
    (a scalar counts as one index; negative indices wrap as MIL's gather wraps them); None otherwise."""
    idx = np.asarray(indices)
    if idx.ndim > 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        return None
    idx = np.where(idx < 0, idx + size, idx).astype(np.int64).reshape(-1)
    if idx.min() < 0 or idx.max() >= size:
        return None
    steps = np.diff(idx)
    if steps.size and (steps[0] < 1 or np.any(steps != steps[0])):
        return None
    return int(idx[0]), int(idx.size), int(steps[0]) if steps.size else 1


@register
class GatherToSlice(Pass):
    """Read constant, evenly spaced gather indices as a strided slice.

    A gather whose indices are constants forming an increasing arithmetic progression (a scalar, a
    contiguous range, every k-th channel) selects exactly what ``slice_by_index`` with that begin,
    end and stride selects; a scalar index drops the axis, as ``squeeze_mask`` does. Where a profile
    measured on the user's chip and OS has gather off the ANE (rule MS-1; a decompiled Core ML
    placement model has no ANE cost entry for gather at all, confidence R, while static-index gathers
    ran on the ANE of an M4 on macOS 27) and slices on it, the rewrite moves the op onto the ANE; the
    contract check drops it where the profile has slices off the ANE too.
    Runtime indices (rule OP-10) and batched gathers are left alone.

    Given:
        %y = gather(x=%x[1, 64, 32, 32], indices=[8, 10, ..., 38], axis=1)
        %z = gather(x=%x, indices=3, axis=2)
    Result:
        %y = slice_by_index(x=%x, begin=[0, 8, 0, 0], end=[1, 39, 32, 32], stride=[1, 2, 1, 1])
        %z = slice_by_index(x=%x, begin=[0, 0, 3, 0], end=[1, 64, 4, 32], squeeze_mask=[F, F, T, F])

    Exact (data movement only). Source: MIL op definitions of ``gather`` and ``slice_by_index``
    (apple/coremltools ``mil/ops/defs/iOS15/scatter_gather.py``, ``tensor_transformation.py``); the
    no-ANE-entry-for-gather observation: sbryngelson/ane-guide ``part-5-practice/18-optimization-cost-model.md``.
    """

    name = "gather_to_slice"
    rules = ("MS-1",)
    op_types = ("gather",)
    source = "apple/coremltools mil/ops/defs/iOS15/scatter_gather.py and tensor_transformation.py"

    def matches(self, op: Any) -> bool:
        indices = const(op.indices)
        if indices is None or not static_shape(op.x) or int(const(op.inputs.get("batch_dims")) or 0) != 0:
            return False
        axis = int(const(op.axis) if op.inputs.get("axis") is not None else 0) % op.x.rank
        return index_progression(indices, op.x.shape[axis]) is not None

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        rank = op.x.rank
        axis = int(const(op.axis) if op.inputs.get("axis") is not None else 0) % rank
        first, count, step = index_progression(const(op.indices), op.x.shape[axis])
        begin, end, stride = [0] * rank, list(op.x.shape), [1] * rank
        begin[axis], end[axis], stride[axis] = first, first + step * (count - 1) + 1, step
        squeeze = [np.asarray(const(op.indices)).ndim == 0 and i == axis for i in range(rank)]
        args = {"squeeze_mask": squeeze} if any(squeeze) else {}
        return mb.slice_by_index(x=op.x, begin=begin, end=end, stride=stride, **args, name=name)


@register
class LinearToConv(Pass):
    """Run a linear as a 1x1 conv over Apple's channels-first (B, C, 1, S) layout.

    The ANE's matmul has no depth axis: a linear whose input has rank 5 (or more) with a depth
    above 1 is rejected ('ANE cannot support Linear with input rank >= 5', rule PA-23). A linear
    applies one matrix to every row of its last axis, and a 1x1 conv applies one matrix to every
    pixel's channel vector, so folding the leading axes into the batch and the rows into the width
    -- the (B, C, 1, S) layout Apple's ml-ane-transformers uses for every projection
    (``linear_to_conv2d_map``) -- computes the same dot products. Applies to linears with a constant
    weight and a static input shape whose (B, C, 1, S) form stays within the ANE's axis limits
    (rule SH-1). Linears the ANE already runs are left alone: in anedoctor's cost model the two
    transposes of a local rewrite cost more than the conv saves (four-linear MLPs of 64-2048 tokens
    x 512-1024 features on A17 Pro, M1 and M4 Max: the conv form was estimated slower in 8 of 9
    cases); that gain needs whole blocks in (B, C, 1, S), a change to the source model.

    Given:
        %y = linear(x=%x[d1, ..., dn, S, K], weight=W[O, K], bias=b[O])
    Result:
        %r = reshape(x=%x, shape=[B, S, 1, K])                  # B = d1 * ... * dn
        %c = transpose(x=%r, perm=[0, 3, 2, 1])                 # (B, K, 1, S)
        %v = conv(x=%c, weight=W[O, K, 1, 1], bias=b)           # (B, O, 1, S)
        %t = transpose(x=%v, perm=[0, 3, 2, 1])                 # (B, S, 1, O)
        %y = reshape(x=%t, shape=[d1, ..., dn, S, O])

    Exact. Source: apple/ml-ane-transformers ``ane_transformers/huggingface/distilbert.py``
    (``linear_to_conv2d_map``) and Apple's article "Deploying Transformers on the Apple Neural
    Engine" (machinelearning.apple.com/research/apple-neural-engine, principle 1: the (B, C, 1, S)
    data format); the PA-23 limit from sbryngelson/ane-guide ``part-5-practice/17-model-design-rules.md``.
    """

    name = "linear_to_conv"
    rules = ("PA-23",)
    op_types = ("linear",)
    source = "apple/ml-ane-transformers ane_transformers/huggingface/distilbert.py (linear_to_conv2d_map)"

    def matches(self, op: Any) -> bool:
        if const(op.weight) is None or not static_shape(op.x) or op.x.rank < 2:
            return False
        batch, rows, inner = self.folded(op.x.shape)
        outer = const(op.weight).shape[0]
        limits = self.limits()
        return fits((batch, inner, 1, rows), limits) and fits((batch, outer, 1, rows), limits)

    @staticmethod
    def folded(shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(B, S, K) of an input (..., S, K): every leading axis folded into the batch."""
        return math.prod(shape[:-2]), shape[-2], shape[-1]

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        batch, rows, inner = self.folded(op.x.shape)
        weight = const(op.weight)
        x = mb.reshape(x=op.x, shape=[batch, rows, 1, inner], name=f"{name}_bs1k")
        x = mb.transpose(x=x, perm=[0, 3, 2, 1], name=f"{name}_bk1s")
        args = {"x": x, "weight": weight[:, :, None, None], "pad_type": "valid", "name": f"{name}_conv1x1"}
        if const(op.inputs.get("bias")) is not None:
            args["bias"] = const(op.bias)
        y = mb.transpose(x=mb.conv(**args), perm=[0, 3, 2, 1], name=f"{name}_bs1o")
        return mb.reshape(x=y, shape=list(op.outputs[0].shape), name=name)


@register
class BatchToWidth(Pass):
    """Run a 1x1 conv over a batch of small images as one image whose width holds them all.

    The ANE fills its work units with the output pixels of one image and runs the images of a batch one after
    another (rule SH-11, inferred), so a 1x1 conv over S images of one pixel keeps about 1/64 of its MAC array busy.
    A 1x1 conv with unit strides and no padding maps every pixel's channel vector on its own, so moving the batch
    next to the pixels, into the width of one image (the (B, C, 1, S) layout), computes the same dot products.
    Applies to convs with a constant 1x1 weight whose folded width stays within the ANE's axis limits (rule SH-1);
    kept only where the estimate gains, as every pass.

    Given:
        %y = conv(x=%x[N, C, H, W], weight=W[O, C/g, 1, 1], bias=b, groups=g)
    Result:
        %t = transpose(x=%x, perm=[1, 0, 2, 3])                 # (C, N, H, W)
        %r = reshape(x=%t, shape=[1, C, 1, N*H*W])
        %v = conv(x=%r, weight=W, bias=b, groups=g)             # (1, O, 1, N*H*W)
        %u = reshape(x=%v, shape=[O, N, H, W])
        %y = transpose(x=%u, perm=[1, 0, 2, 3])                 # (N, O, H, W)

    Exact. Source: Apple's article "Deploying Transformers on the Apple Neural Engine"
    (machinelearning.apple.com/research/neural-engine-transformers, principle 1: the (B, C, 1, S) data format); the
    layout it undoes: smpanaro/more-ane-transformers ``ane_gpt2.py`` at commit 35ac67f (an lm_head over
    ``x.permute(3, 1, 0, 2)``, 512 positions as the batch).
    """

    name = "batch_to_width"
    rules = ("SH-11",)
    op_types = ("conv",)
    gain = "latency"
    source = "machinelearning.apple.com/research/neural-engine-transformers (principle 1: the (B, C, 1, S) layout)"

    def matches(self, op: Any) -> bool:
        weight = const(op.weight)
        if weight is None or weight.ndim != 4 or weight.shape[2:] != (1, 1) or not static_shape(op.x):
            return False
        if op.x.rank != 4 or any(s != 1 for s in int_list(op.inputs.get("strides"), [1, 1])):
            return False
        pads = window_pads(op, [1, 1], [1, 1])
        if pads is None or any(p != (0, 0) for p in pads):
            return False
        n, c, h, w = op.x.shape
        limits = self.limits()
        return fits((1, c, 1, n * h * w), limits) and fits((1, weight.shape[0], 1, n * h * w), limits)

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        n, c, h, w = op.x.shape
        weight = const(op.weight)
        x = mb.transpose(x=op.x, perm=[1, 0, 2, 3], name=f"{name}_cnhw")
        x = mb.reshape(x=x, shape=[1, c, 1, n * h * w], name=f"{name}_1c1s")
        args = {"x": x, "weight": weight, "pad_type": "valid", "groups": int(const(op.inputs.get("groups")) or 1)}
        if op.inputs.get("bias") is not None:
            args["bias"] = op.bias
        y = mb.reshape(x=mb.conv(**args, name=f"{name}_wide"), shape=[weight.shape[0], n, h, w], name=f"{name}_onhw")
        return mb.transpose(x=y, perm=[1, 0, 2, 3], name=name)


@register
class LayerNormToRank4(Pass):
    """Run a rank-1 to rank-3 layer_norm at rank 4, for models with enumerated input shapes.

    In the iOS 16 era a model with ``EnumeratedShapes`` inputs and a rank-3 layer_norm stayed off
    the ANE as a whole, while the same model with a rank-4 layer_norm ran on it (rule DY-4). Adding
    leading axes of size 1 changes neither the normalized axes nor their statistics, so the rewrite
    is exact; it also works when an axis is symbolic (the enumerated one). Applies to layer_norms
    whose normalized axes are the trailing ones (the form coremltools emits for ``nn.LayerNorm``).
    The report that worked used the (B, C, 1, S) layout; this rewrite keeps the normalized axes last
    (no transposes), which the evidence, about rank, does not tell apart.

    Given:
        %y = layer_norm(x=%x[B, S, C], axes=[-1], gamma=g, beta=b)
    Result:
        %x4 = expand_dims(x=%x, axes=[0])                       # (1, B, S, C)
        %y4 = layer_norm(x=%x4, axes=[-1], gamma=g, beta=b)
        %y = squeeze(x=%y4, axes=[0])

    Exact. Source: smpanaro/more-ane-transformers ``NOTES.md`` (2023-10-25: rank-3 layer_norm
    fails with enumerated shapes, rank-4 works); apple/coremltools#1909.
    """

    name = "layer_norm_to_rank4"
    rules = ("DY-4",)
    op_types = ("layer_norm",)
    source = "smpanaro/more-ane-transformers NOTES.md (2023-10-25); apple/coremltools#1909"

    def matches(self, op: Any) -> bool:
        axes = const(op.inputs.get("axes"))
        if axes is None or not 1 <= op.x.rank < 4:
            return False
        rank = op.x.rank
        normalized = sorted(int(a) % rank for a in np.asarray(axes).reshape(-1))
        return normalized == list(range(rank - len(normalized), rank))

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        rank = op.x.rank
        lead = list(range(4 - rank))
        axes = [int(a) % rank - rank for a in np.asarray(const(op.axes)).reshape(-1)]
        args = {key: v for key, v in op.inputs.items() if key not in ("x", "axes")}
        x4 = mb.expand_dims(x=op.x, axes=lead, name=f"{name}_rank4_in")
        y4 = mb.layer_norm(x=x4, axes=axes, **args, name=f"{name}_rank4")
        return mb.squeeze(x=y4, axes=lead, name=name)


def runtime_integers(op: Any) -> bool:
    """Whether ``op`` reads or writes an integer tensor whose value is not known before the model runs."""
    from coremltools.converters.mil.mil import types

    def values(v: Any) -> list[Any]:
        return list(v) if isinstance(v, (list, tuple)) else [v]

    vars_ = [x for v in op.inputs.values() for x in values(v)] + list(op.outputs)
    return any(getattr(v, "dtype", None) is not None and types.is_int(v.dtype) and v.val is None for v in vars_)


@register
class FoldShapeArithmetic(Pass):
    """Fold integer shape arithmetic on static shapes into constants.

    ``shape -> gather -> mul -> concat -> reshape`` chains (the way traced PyTorch code computes a
    view's size) are int32 ops, which the ANE cannot run (rule DT-4): the chain and the reshape it
    feeds split the graph. With static shapes every value of the chain is known when the model is
    compiled, and coremltools' ``const_elimination`` replaces such ops by constants. coremltools'
    default pipeline runs it at conversion; packages saved with a trimmed or empty pipeline (or by
    other exporters) keep the chain. This pass runs ``const_elimination`` (which also folds any
    other constant-valued op, such as weight casts) and rewrites the flagged ops whose integer values
    are all known; integer model inputs and values derived from them are left alone.

    Given:
        %s = shape(x=%x)                                        # x: (1, 64, 32, 32)
        %n = mul(x=gather(x=%s, indices=2), y=32)
        %y = reshape(x=%x, shape=concat(values=([1, 64], expand_dims(x=%n, axes=[0]))))
    Result:
        %y = reshape(x=%x, shape=[1, 64, 1024])

    Exact. Source: apple/coremltools ``mil/passes/defs/cleanup/const_elimination.py``.
    """

    name = "fold_shape_arithmetic"
    rules = ("DT-4",)
    source = "apple/coremltools mil/passes/defs/cleanup/const_elimination.py"

    def requires(self, prog: Any, flagged: set[str]) -> list[Any]:
        return [op for op in main_ops(prog) if op.name in flagged and self.matches(op)]

    def matches(self, op: Any) -> bool:
        return op.op_type != "const" and not runtime_integers(op)

    def call(self, prog: Any, ops: list[Any]) -> PassResult:
        run_coremltools_pass(prog, "common::const_elimination")
        run_coremltools_pass(prog, "common::dead_code_elimination")
        left = {op.name: op for op in main_ops(prog)}
        return PassResult(
            prog, sorted(op.name for op in ops if op.name not in left or not runtime_integers(left[op.name]))
        )
