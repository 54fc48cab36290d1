"""Rewrites of convolutions and pools whose window is wider than the Neural Engine accepts."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Pass, const, int_list, register, static_shape, window_pads

POOL_MAX_WINDOW = 8  # widest max pool window the ANE takes (rule PA-6: 8x8 eligible, 9x9 not, measured on M4)


@register
class DilatedConvToSpaceToBatch(Pass):
    """Run a dilated convolution as space_to_batch -> undilated conv -> batch_to_space.

    A conv with dilation d reads every d-th pixel, so it is an undilated conv applied to each of
    the d x d interleaved sub-images ("atrous convolution" as TensorFlow implements it): the
    dilated extent (k-1)*d+1 that the ANE rejects (rule PA-11) becomes k. Conv padding becomes the
    space_to_batch padding (zeros, as before), extended so each size divides by d; the extension
    is cropped by batch_to_space. Exact: every output is the same sum of the same products. A 1-D
    conv runs as a 2-D conv with a height-1 block. Applies to 1-D/2-D convs with stride 1 and
    static spatial sizes (3-D space_to_batch is itself rejected, rule PA-25).

    Given:
        %y = conv(x=%x, weight=%w, bias=%b, dilations=[dh, dw], pad_type=..., strides=[1, 1])
    Result:
        %s = space_to_batch(x=%x, block_shape=[dh, dw], paddings=[[top, bottom + eh], [left, right + ew]])
        %c = conv(x=%s, weight=%w, bias=%b, dilations=[1, 1], pad_type="valid")
        %y = batch_to_space(x=%c, block_shape=[dh, dw], crops=[[0, eh], [0, ew]])

    Exact. Source: TensorFlow ``tf.nn.atrous_conv2d`` / ``space_to_batch_nd`` docs; the PA-11 fix in
    apple/coreai-models ``neural_engine_rules.md`` ("Dilated convolution factorization"). coremltools'
    ``common::fuse_dilated_conv`` is the inverse of this pass, so it must not run after it.
    """

    name = "dilated_conv_to_space_to_batch"
    rules = ("PA-11",)
    op_types = ("conv",)
    source = "tf.nn.atrous_conv2d / space_to_batch_nd; apple/coreai-models neural_engine_rules.md"

    def matches(self, op: Any) -> bool:
        nd = op.x.rank - 2
        dil = int_list(op.inputs.get("dilations"), [1] * nd)
        return (
            nd in (1, 2)
            and max(dil) > 1
            and int_list(op.inputs.get("strides"), [1] * nd) == [1] * nd
            and static_shape(op.x)
            and static_shape(op.weight)
            and window_pads(op, list(op.weight.shape[2:]), dil) is not None
        )

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        nd = op.x.rank - 2
        dil = int_list(op.inputs.get("dilations"), [1] * nd)
        pads = window_pads(op, list(op.weight.shape[2:]), dil)
        x, weight = op.x, op.weight
        if nd == 1:  # (N, C, L) -> (N, C, 1, L)
            x = mb.expand_dims(x=x, axes=[-2], name=f"{name}_as_2d")
            w = const(weight)
            weight = w[:, :, None, :] if w is not None else mb.expand_dims(x=weight, axes=[-2], name=f"{name}_w_2d")
            dil, pads = [1] + dil, [(0, 0)] + pads
        sizes = x.shape[2:]
        extra = [(-(size + b + a)) % d for size, (b, a), d in zip(sizes, pads, dil)]
        block = np.array(dil, np.int32)
        s2b = mb.space_to_batch(
            x=x,
            block_shape=block,
            paddings=np.array([[b, a + e] for (b, a), e in zip(pads, extra)], np.int32),
            name=f"{name}_space_to_batch",
        )
        args = {
            "x": s2b,
            "weight": weight,
            "strides": [1, 1],
            "pad_type": "valid",
            "dilations": [1, 1],
            "groups": int(const(op.inputs.get("groups")) or 1),
            "name": f"{name}_undilated",
        }
        if op.inputs.get("bias") is not None:
            args["bias"] = op.bias
        y = mb.conv(**args)
        crops = np.array([[0, e] for e in extra], np.int32)
        if nd == 1:
            y = mb.batch_to_space(x=y, block_shape=block, crops=crops, name=f"{name}_batch_to_space")
            return mb.squeeze(x=y, axes=[-2], name=name)
        return mb.batch_to_space(x=y, block_shape=block, crops=crops, name=name)


def split_window(k: int, limit: int) -> list[int]:
    """Windows <= limit whose stride-1 cascade covers a window of k: sum(k_i - 1) == k - 1, as few
    and as even as possible (odd windows where k is odd, so 'same' padding stays symmetric)."""
    n = max(1, -(-(k - 1) // (limit - 1)))
    if (k - 1) % 2 == 0 and 2 * -(-(k - 1) // (2 * n)) <= limit - 1:
        parts = [2 * p for p in even_split((k - 1) // 2, n)]
    else:
        parts = even_split(k - 1, n)
    return [p + 1 for p in parts]


def even_split(total: int, n: int) -> list[int]:
    return [total // n + (i < total % n) for i in range(n)]


def split_pads(total: int, windows: list[int]) -> list[int]:
    """Share ``total`` padding among the cascade's stages: first up to half of each window, then up
    to the window less one (a stage's padding must stay smaller than its window)."""
    out, left = [0] * len(windows), total
    for cap in ((lambda k: (k - 1) // 2), (lambda k: k - 1)):
        for i, k in enumerate(windows):
            add = min(left, cap(k) - out[i])
            out[i] += add
            left -= add
    return out


@register
class MaxPoolCascade(Pass):
    """Replace a max pool window wider than 8 by a cascade of max pools of at most 8.

    max over a k-window equals the max over a k1-window of maxima over k2-windows when
    k1 + k2 - 1 = k: the union of the inner windows is exactly the outer window. So a 9x9 stride-1
    max pool is two 5x5 pools, a 15x15 two 8x8. Padding is shared out between the stages (max pool
    padding never wins a max, so it is -inf in effect) and the stride goes to the last stage; the
    union argument also holds at the borders, so the result is exact for every stride and padding.
    ``ceil_mode`` pools are left alone.

    Given:
        %y = max_pool(x=%x, kernel_sizes=[9, 9], strides=[s, s], pad=...)
    Result:
        %t = max_pool(x=%x, kernel_sizes=[5, 5], strides=[1, 1], pad=<first share>)
        %y = max_pool(x=%t, kernel_sizes=[5, 5], strides=[s, s], pad=<the rest>)

    Exact. Source: the PA-6 fix (anedoctor rule base; measured window limit 8 on M4, 751K
    Apple-Neural-Engine-Microarchitecture-Study-M6 GT-1 max_pool_k15); the cascade identity of
    morphological dilation by a box (van Herk / Gil-Werman max filters).
    """

    name = "max_pool_cascade"
    rules = ("PA-6",)
    op_types = ("max_pool",)
    source = "anedoctor PA-6 fix; van Herk (1992) / Gil & Werman (1993) box max filter decomposition"

    def matches(self, op: Any) -> bool:
        k = int_list(op.inputs.get("kernel_sizes"), [])
        return (
            bool(k)
            and max(k) > POOL_MAX_WINDOW
            and not bool(const(op.inputs.get("ceil_mode")))
            and window_pads(op, k, [1] * len(k)) is not None
        )

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        kernel = int_list(op.kernel_sizes, [])
        strides = int_list(op.inputs.get("strides"), [1] * len(kernel))
        pads = window_pads(op, kernel, [1] * len(kernel))
        per_dim = [split_window(k, POOL_MAX_WINDOW) for k in kernel]
        stages = max(len(w) for w in per_dim)
        per_dim = [w + [1] * (stages - len(w)) for w in per_dim]
        before = [split_pads(b, w) for (b, _), w in zip(pads, per_dim)]
        after = [split_pads(a, w) for (_, a), w in zip(pads, per_dim)]
        x = op.x
        for i in range(stages):
            last = i == stages - 1
            pad = [p for d in range(len(kernel)) for p in (before[d][i], after[d][i])]
            x = mb.max_pool(
                x=x,
                kernel_sizes=[w[i] for w in per_dim],
                strides=strides if last else [1] * len(kernel),
                pad_type="custom",
                pad=pad,
                name=name if last else f"{name}_stage{i}",
            )
        return x


GLOBAL_REDUCTION = {"avg_pool": "reduce_mean", "max_pool": "reduce_max", "l2_pool": "reduce_l2_norm"}


@register
class PoolDecompose(Pass):
    """Replace a pool that A12/A13-era ANEs reject by an exact equivalent they accept.

    Those ANEs reject pools wider than 13 or with a stride above 2 (rule PA-5: 'Unsupported:
    stride_x = 4 > 2'). Two exact forms, for average, max and L2 pools without padding (so
    ``exclude_padding_from_average`` changes nothing) and without ``ceil_mode``:

    * a global pool (the window is the whole input) is a reduction over the spatial axes
      (``reduce_mean`` / ``reduce_max`` / ``reduce_l2_norm``);
    * a pool whose stride equals its window, a power of two, pools disjoint blocks: the mean (max,
      root sum of squares) of a 2^n block is the mean (max, root sum of squares) of those of its
      four 2^(n-1) sub-blocks, so n pools of window 2, stride 2 compute it (floor-sized outputs use
      the same rows at every stage).

    Other windows (a stride-1 box filter wider than 13, a stride-3 pool) are left alone: a cascade
    of box filters is not a box filter.

    Given:
        %y = avg_pool(x=%x[N, C, 7, 7], kernel_sizes=[7, 7], strides=[7, 7], pad_type="valid")
        %z = max_pool(x=%x, kernel_sizes=[4, 4], strides=[4, 4], pad_type="valid")
    Result:
        %y = reduce_mean(x=%x, axes=[2, 3], keep_dims=True)
        %t = max_pool(x=%x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid")
        %z = max_pool(x=%t, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid")

    Exact (up to summation order). Source: the PA-5 limits in hollance/neural-engine
    ``docs/unsupported-layers.md`` and issue #2 (kernel-validation log); the cascade is the
    mean-of-means (max-of-maxes) identity for equal disjoint blocks.
    """

    name = "pool_decompose"
    rules = ("PA-5",)
    op_types = tuple(GLOBAL_REDUCTION)
    source = "hollance/neural-engine docs/unsupported-layers.md and issue #2 (A12/A13 pooling limits)"

    def matches(self, op: Any) -> bool:
        kernel = int_list(op.inputs.get("kernel_sizes"), [])
        if not kernel or bool(const(op.inputs.get("ceil_mode"))) or not static_shape(op.x):
            return False
        if window_pads(op, kernel, [1] * len(kernel)) != [(0, 0)] * len(kernel):
            return False
        return self.is_global(op, kernel) or self.halvings(op, kernel) is not None

    @staticmethod
    def is_global(op: Any, kernel: list[int]) -> bool:
        return list(op.x.shape[2:]) == kernel

    @staticmethod
    def halvings(op: Any, kernel: list[int]) -> list[int] | None:
        """Per spatial axis, how many window-2 stride-2 pools make the pool (None when it has another form)."""
        strides = int_list(op.inputs.get("strides"), [1] * len(kernel))
        if strides != kernel or max(kernel) < 2 or any(k & (k - 1) for k in kernel):
            return None
        return [k.bit_length() - 1 for k in kernel]

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb

        kernel = int_list(op.kernel_sizes, [])
        if self.is_global(op, kernel):
            reduce = getattr(mb, GLOBAL_REDUCTION[op.op_type])
            return reduce(x=op.x, axes=list(range(2, op.x.rank)), keep_dims=True, name=name)
        halvings = self.halvings(op, kernel)
        x, stages, pool = op.x, max(halvings), getattr(mb, op.op_type)
        for i in range(stages):
            window = [2 if i < n else 1 for n in halvings]
            x = pool(
                x=x,
                kernel_sizes=window,
                strides=window,
                pad_type="valid",
                name=name if i == stages - 1 else f"{name}_stage{i}",
            )
        return x
