"""Rewrites of tensors whose shape the Neural Engine rejects: axes too long, ranks above five."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..cost.work import BINARY_ELEMENTWISE
from ..rules.shapes import ndchw
from .base import Pass, PassResult, const, main_ops, register, static_shape
from .coreml_io import run_coremltools_pass
from .spatial import even_split


def fits(shape: tuple[int, ...], limits: dict[str, int]) -> bool:
    """Whether every axis of a (rank <= 5) shape is within the ANE's per-axis limits (rule SH-1)."""
    return all(size <= limits[axis] for axis, size in ndchw(tuple(shape)).items())


@register
class SplitLongLinear(Pass):
    """Split a linear whose output axis is longer than the ANE allows into chunks, then concat.

    An lm_head 4096 -> 128256 writes a tensor whose last axis exceeds the per-axis limit (16384 on
    H13-H15, 65536 on H16+; rule SH-1), so the whole projection -- most of a language model's last
    FLOPs -- leaves the ANE. Rows of the weight are independent outputs, so projecting onto row
    blocks and concatenating the results along the last axis is the same linear. The concat still
    writes the long tensor (and stays off the ANE); only cutting the logits in the source (take the
    last token, or return the vocabulary in pieces) removes it.

    Given:
        %y = linear(x=%x, weight=W[O, I], bias=b[O])            # O > axis limit
    Result:
        %y_0 = linear(x=%x, weight=W[0:o1], bias=b[0:o1])
        ...
        %y_n = linear(x=%x, weight=W[on:O], bias=b[on:O])
        %y = concat(values=(%y_0, ..., %y_n), axis=-1)

    Exact. Source: smpanaro/more-ane-transformers NOTES (vocabulary split below 16384); the Orion
    paper's LM head (151936 > 65536); rule SH-1's measured limits (751K GT-1 relu_w65537, M4).
    """

    name = "split_long_linear"
    rules = ("SH-1",)
    op_types = ("linear",)
    residual = frozenset({"concat"})
    source = "smpanaro/more-ane-transformers NOTES; 751K Apple-Neural-Engine-Microarchitecture-Study-M6 GT-1"

    def matches(self, op: Any) -> bool:
        w, y = const(op.weight), op.outputs[0]
        if w is None or not static_shape(op.x) or not static_shape(y) or not 1 <= op.x.rank <= 5:
            return False
        limits = self.limits()
        return fits(op.x.shape, limits) and not fits(y.shape, limits) and fits(y.shape[:-1] + (1,), limits)

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        w, b = const(op.weight), const(op.inputs.get("bias"))
        n = math.ceil(w.shape[0] / self.limits()["W"])
        bounds = np.cumsum([0] + even_split(w.shape[0], n))
        chunks = [
            mb.linear(x=op.x, weight=w[lo:hi], **({"bias": b[lo:hi]} if b is not None else {}), name=f"{name}_chunk{i}")
            for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
        ]
        return mb.concat(values=chunks, axis=-1, name=name)


MAX_CONTRACTION = 32768  # longest matmul/linear contraction the ANE takes (rule PA-22: 32768 ok, 40000 not, M4/M6)


@register
class SplitLongContraction(Pass):
    """Split a linear whose contraction axis is longer than 32768 into partial products and add them.

    The ANE rejects a matmul/linear that sums over more than 32768 inputs (rule PA-22, measured on
    M4/M6). A linear is a sum over its input features, so slicing the input features and the
    weight's columns into blocks and adding the block products computes the same thing; only the
    order of the floating-point additions changes (well within 1e-4 in fp32).

    Given:
        %y = linear(x=%x[..., K], weight=W[O, K], bias=b)         # K > 32768
    Result:
        %x_0 = slice_by_index(x=%x, begin=[..., 0], end=[..., k1])
        %p_0 = linear(x=%x_0, weight=W[:, 0:k1])
        ...
        %p_n = linear(x=%x_n, weight=W[:, kn:K], bias=b)
        %y = add(add(%p_0, %p_1), ... %p_n)

    Exact up to summation order. Source: the PA-22 fix (751K
    Apple-Neural-Engine-Microarchitecture-Study-M6 notes/coreml_dispatch.md §3.3, K=32768 ok, 40000 fails).
    """

    name = "split_long_contraction"
    rules = ("PA-22",)
    op_types = ("linear",)
    source = "751K/Apple-Neural-Engine-Microarchitecture-Study-M6 notes/coreml_dispatch.md (PA-22)"

    def matches(self, op: Any) -> bool:
        return const(op.weight) is not None and static_shape(op.x) and op.x.shape[-1] > MAX_CONTRACTION

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        w, b, rank = const(op.weight), const(op.inputs.get("bias")), op.x.rank
        n = math.ceil(w.shape[1] / MAX_CONTRACTION)
        bounds = np.cumsum([0] + even_split(w.shape[1], n))
        total = None
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            part = mb.slice_by_index(
                x=op.x, begin=[0] * (rank - 1) + [int(lo)], end=list(op.x.shape[:-1]) + [int(hi)], name=f"{name}_x{i}"
            )
            last = i == n - 1
            extra = {"bias": b} if last and b is not None else {}
            part = mb.linear(x=part, weight=w[:, lo:hi], **extra, name=f"{name}_part{i}")
            total = part if total is None else mb.add(x=total, y=part, name=name if last else f"{name}_sum{i}")
        return total


ELEMENTWISE = {
    "relu",
    "sigmoid",
    "tanh",
    "exp",
    "sqrt",
    "rsqrt",
    "abs",
    "square",
    "erf",
    "gelu",
    "silu",
    "clip",
    "leaky_relu",
    "elu",
    "softplus",
    "sin",
    "cos",
    "log",
    "inverse",
    "floor",
    "ceil",
    "round",
    "sign",
    "pow",
    "softmax",
} | BINARY_ELEMENTWISE


@register
class CollapseHighRank(Pass):
    """Run elementwise ops and softmax on rank-6+ tensors at rank 4.

    The ANE takes tensors of rank <= 5 (rule SH-4). An elementwise op does not care how its
    operands are shaped, and a softmax only about its own axis, so the leading axes can be merged
    into one while the op runs: reshape to rank 4, apply, reshape back. Where the rank-6 tensor
    came from a reshape and goes on to a reshape (window partitions), coremltools'
    ``merge_consecutive_reshapes`` then folds the inserted reshapes into their neighbours and no
    rank-6 tensor is left around the op; if one is left (say a rank-6 transpose feeds it), the
    contract check drops the pass. Constant operands must broadcast within the merged layout
    (scalars, or leading axes of size 1).

    Given:
        %a = reshape(x=%x, shape=[2, 3, 4, 5, 6, 7])
        %b = relu(x=%a)
        %c = reshape(x=%b, shape=[24, 5, 42])
    Result:
        %a = reshape(x=%x, shape=[24, 5, 6, 7])
        %b = relu(x=%a)
        %c = reshape(x=%b, shape=[24, 5, 42])

    Exact (only shapes change). Source: apple/coreai-models ``neural_engine_rules.md`` ("Rank-6+
    intermediates are rejected").
    """

    name = "collapse_high_rank"
    rules = ("SH-4",)
    op_types = tuple(sorted(ELEMENTWISE))
    source = "apple/coreai-models neural_engine_rules.md ('Rank-6+ intermediates are rejected')"

    def matches(self, op: Any) -> bool:
        y = op.outputs[0]
        if not static_shape(y) or y.rank <= 5:
            return False
        runtime = [v for v in op.inputs.values() if hasattr(v, "shape") and v.val is None]
        if any(tuple(v.shape) != tuple(y.shape) for v in runtime):
            return False
        consts = [v for k, v in op.inputs.items() if hasattr(v, "shape") and v.val is not None and k in ("x", "y")]
        if any(v.rank > 3 and any(s != 1 for s in v.shape[:-3]) for v in consts):
            return False
        return op.op_type != "softmax" or int(const(op.axis)) % y.rank >= y.rank - 3

    def call(self, prog: Any, ops: list[Any]) -> PassResult:
        result = super().call(prog, ops)
        if result.rewritten:
            run_coremltools_pass(prog, "common::merge_consecutive_reshapes")
        return result

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        shape = tuple(op.outputs[0].shape)
        merged = [math.prod(shape[:-3]), *shape[-3:]]
        args = {}
        for key, v in op.inputs.items():
            if hasattr(v, "shape") and v.val is None and tuple(v.shape) == shape:
                args[key] = mb.reshape(x=v, shape=merged, name=f"{name}_{key}_rank4")
            elif key in ("x", "y") and hasattr(v, "shape") and v.val is not None and v.rank > 3:
                args[key] = np.asarray(v.val).reshape(v.shape[-3:])
            else:
                args[key] = v
        if op.op_type == "softmax":
            args["axis"] = int(const(op.axis)) % len(shape) - len(shape)
        y = getattr(mb, op.op_type)(**args, name=f"{name}_rank4")
        return mb.reshape(x=y, shape=list(shape), name=name)


@register
class HighRankTransposeToRank4(Pass):
    """Expand a rank-6+ reshape -> transpose -> reshape chain into rank-4 reshapes and transposes.

    Window partitions (Swin, ViTDet) reshape to rank 6, permute, and reshape back; the ANE rejects
    the rank-6 tensors (rule SH-4). coremltools' ``expand_high_rank_reshape_and_transpose`` rewrites
    the chain as a sequence of rank-4 reshape/transpose pairs. It is in coremltools' default
    pipeline, so only models saved without it (older converters, other exporters) still have the
    chain. The decomposition can create very long axes (rule SH-1); the contract check then drops it.

    Given:
        %1 = reshape(%x, shape=(d1, ..., d6))
        %2 = transpose(%1, perm=(p1, ..., p6))
        %3 = reshape(%2, shape=(o1, ..., o4))
    Result:
        %3 = reshape(transpose(reshape(... transpose(reshape(%x, rank 4), perm=[0, 2, 1, 3]) ...)), (o1, ..., o4))

    Exact (data movement only). Source: apple/coremltools ``mil/passes/defs/optimize_tensor_operation.py``.
    """

    name = "high_rank_transpose_to_rank4"
    rules = ("SH-4",)
    op_types = ("reshape", "transpose")
    source = "apple/coremltools mil/passes/defs/optimize_tensor_operation.py (expand_high_rank_reshape_and_transpose)"

    def matches(self, op: Any) -> bool:
        return op.outputs[0].rank > 5

    def call(self, prog: Any, ops: list[Any]) -> PassResult:
        names = {op.name for op in ops}
        run_coremltools_pass(prog, "common::expand_high_rank_reshape_and_transpose")
        return PassResult(prog, sorted(names - {op.name for op in main_ops(prog)}))
