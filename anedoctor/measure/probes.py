"""One-op probe models and the placement Core ML measured for them.

Each probe rebuilds a case of the public M4 sweep (GT-A: github.com/751K/Apple-Neural-
Engine-Microarchitecture-Study-M6, ``plan_iso_cpune.tsv`` / ``plan_ctx_cpune.tsv``, Mac16,12 M4
``h16g``, macOS 27.0.1, coremltools 9.0, ML Program, iOS 18 opset, fp16, CPU_AND_NE, read with
MLComputePlan) and of the vx-lang size thresholds (GT-B). ``agreement()`` runs the predictor on
every probe and compares it with those measurements; on a Mac the same probes can be compiled
and measured to extend the table.

Expectations: ``ane`` = the op's supported set contained the ANE (iso model); ``ctx`` = placement
with two 3x3 conv(C->C)+ReLU (rank 4) or two linear(D->D)+ReLU (rank 3) before every fp16 input
and after the output: "A" op on the ANE, "C(all)" whole graph on CPU, "C(op)" op on CPU with
ANE neighbours, None when the sweep did not wrap it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..util import quiet_coremltools

X4 = (1, 64, 32, 32)
M3 = (1, 128, 256)
RESAMPLE_OPS = {
    "upsample_nearest_x2": "upsample_nearest_neighbor",
    "upsample_nearest_x3": "upsample_nearest_neighbor",
    "upsample_bilinear_x2": "upsample_bilinear",
    "resize_bilinear_48": "resize_bilinear",
}
SOURCE = (
    "751K/Apple-Neural-Engine-Microarchitecture-Study-M6@5cb462b plan_iso_cpune.tsv, plan_ctx_cpune.tsv "
    "(M4, macOS 27.0.1)"
)


@dataclass(frozen=True)
class Probe:
    name: str
    op_type: str  # the MIL op whose placement is measured
    inputs: tuple  # ((shape, dtype), ...) dtype "fp16" | "int32"
    build: Callable  # (mb, *inputs) -> output var
    ane: bool
    ctx: str | None = None
    source: str = SOURCE
    iso_device: str | None = None  # GT-B: measured device of the single-op model


def w(*shape, scale=0.05):
    return (np.random.default_rng(0).standard_normal(shape) * scale).astype(np.float16)


def _unary(op, **kw):
    return lambda mb, x: getattr(mb, op)(x=x, **kw)


def _binary(op):
    return lambda mb, x, y: getattr(mb, op)(x=x, y=y)


def _probes() -> list[Probe]:
    def f16(shape):
        return shape, "fp16"

    def i32(shape):
        return shape, "int32"

    P = []
    for op in [
        "abs",
        "ceil",
        "floor",
        "round",
        "sign",
        "sqrt",
        "rsqrt",
        "square",
        "exp",
        "exp2",
        "log",
        "erf",
        "sigmoid",
        "tanh",
        "silu",
        "softplus",
        "softsign",
        "relu6",
        "sin",
        "cos",
        "atan",
        "relu",
    ]:
        P.append(Probe(op, op, (f16(X4),), _unary(op), True, "A"))
    for name, op, kw in [
        ("inverse", "inverse", {}),
        ("elu", "elu", {"alpha": np.float16(1)}),
        ("leaky_relu", "leaky_relu", {"alpha": np.float16(0.1)}),
        ("clip", "clip", {"alpha": np.float16(-1), "beta": np.float16(1)}),
        ("thresholded_relu", "thresholded_relu", {"alpha": np.float16(0.5)}),
        ("sigmoid_hard", "sigmoid_hard", {"alpha": np.float16(0.2), "beta": np.float16(0.5)}),
        ("scaled_tanh", "scaled_tanh", {"alpha": np.float16(1), "beta": np.float16(1)}),
        ("linear_activation", "linear_activation", {"alpha": np.float16(2), "beta": np.float16(1)}),
    ]:
        P.append(Probe(name, op, (f16(X4),), _unary(op, **kw), True, "A"))
    P.append(
        Probe("prelu", "prelu", (f16(X4),), lambda mb, x: mb.prelu(x=x, alpha=np.full(64, 0.1, np.float16)), True, "A")
    )
    for mode in ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"):
        P.append(Probe(f"gelu_{mode.lower()}", "gelu", (f16(X4),), _unary("gelu", mode=mode), True, "A"))
    P.append(Probe("pow3", "pow", (f16(X4),), lambda mb, x: mb.pow(x=x, y=np.float16(3.0)), True, "A"))
    for op in ["tan", "asin", "acos", "sinh", "cosh", "atanh"]:
        P.append(Probe(op, op, (f16(X4),), _unary(op), False, "C(all)"))
    for op in ["add", "sub", "mul", "real_div", "maximum", "minimum", "pow", "floor_div"]:
        P.append(Probe(op, op, (f16(X4), f16(X4)), _binary(op), True, "A"))
    P.append(Probe("mod", "mod", (f16(X4), f16(X4)), _binary("mod"), False, "C(op)"))
    for name, other in [("add_bc_ch", (1, 64, 1, 1)), ("add_bc_hw", (1, 1, 32, 32)), ("add_bc_w", (1, 1, 1, 32))]:
        P.append(Probe(name, "add", (f16(X4), f16(other)), _binary("add"), True, "A"))
    P.append(Probe("add_bc_batch", "add", (f16((4, 64, 32, 32)), f16(X4)), _binary("add"), True, "A"))
    P.append(Probe("add_bc_both", "add", (f16((1, 64, 1, 32)), f16((1, 1, 32, 1))), _binary("add"), True, "C(all)"))
    for op in ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]:
        P.append(
            Probe(
                op,
                op,
                (f16(X4), f16(X4)),
                lambda mb, x, y, op=op: mb.cast(x=getattr(mb, op)(x=x, y=y), dtype="fp16"),
                True,
                "A",
            )
        )
    P.append(
        Probe(
            "select",
            "select",
            (f16(X4), f16(X4), f16(X4)),
            lambda mb, m, a, b: mb.select(cond=mb.greater(x=m, y=np.float16(0)), a=a, b=b),
            True,
            "A",
        )
    )
    P.append(
        Probe(
            "logical_and",
            "logical_and",
            (f16(X4), f16(X4)),
            lambda mb, x, y: mb.cast(
                x=mb.logical_and(x=mb.greater(x=x, y=np.float16(0)), y=mb.greater(x=y, y=np.float16(0))), dtype="fp16"
            ),
            True,
            "A",
        )
    )
    for op in ["add", "mul"]:
        P.append(Probe(f"{op}_i32", op, (i32(X4), i32(X4)), _binary(op), False))
    P.append(Probe("matmul_i32", "matmul", (i32((1, 64, 64)), i32((1, 64, 64))), _binary("matmul"), False))
    P.append(Probe("cast_f16_i32", "cast", (f16(X4),), lambda mb, x: mb.cast(x=x, dtype="int32"), False, "C(all)"))
    P.append(Probe("cast_i32_f16", "cast", (i32(X4),), lambda mb, x: mb.cast(x=x, dtype="fp16"), False, "C(all)"))
    for name, shape in [
        ("relu_r1", (65536,)),
        ("relu_r2", (256, 256)),
        ("relu_r3", M3),
        ("relu_r5", (1, 4, 16, 32, 32)),
        ("relu_n64", (64, 64, 8, 8)),
        ("relu_w16384", (1, 1, 1, 16384)),
        ("relu_w65536", (1, 1, 1, 65536)),
        ("relu_h65536", (1, 1, 65536, 1)),
        ("relu_c65536", (1, 65536, 1, 1)),
    ]:
        P.append(
            Probe(name, "relu", (f16(shape),), _unary("relu"), True, "A" if name in ("relu_r3", "relu_n64") else None)
        )
    for name, shape in [
        ("relu_w65537", (1, 1, 1, 65537)),
        ("relu_h65537", (1, 1, 65537, 1)),
        ("relu_c65537", (1, 65537, 1, 1)),
    ]:
        P.append(Probe(name, "relu", (f16(shape),), _unary("relu"), False))

    def conv(k, stride=1, groups=1, dilation=1, pad="same", cout=64):
        kh, kw = (k, k) if isinstance(k, int) else k
        return lambda mb, x: mb.conv(
            x=x,
            weight=w(cout, 64 // groups, kh, kw),
            strides=[stride, stride],
            groups=groups,
            dilations=[dilation, dilation],
            pad_type=pad,
        )

    for name, fn, ane, ctx in [
        ("conv1x1", conv(1), True, "A"),
        ("conv3x3", conv(3), True, "A"),
        ("conv3x3_dw", conv(3, groups=64), True, "A"),
        ("conv7x7_s2", conv(7, stride=2), True, "A"),
        ("conv3x3_d2", conv(3, dilation=2), True, "A"),
        ("conv_k17", conv(17), False, "C(all)"),
        ("conv_k1x31", conv((1, 31)), False, "C(all)"),
        ("conv_s5", conv(5, stride=5, pad="valid"), True, "C(all)"),
    ]:
        P.append(Probe(name, "conv", (f16(X4),), fn, ane, ctx))
    for k in (9, 13, 15):
        P.append(Probe(f"conv_1x{k}", "conv", (f16(X4),), conv((1, k)), True))
    for k in (16, 24, 32):
        P.append(Probe(f"conv_1x{k}", "conv", (f16(X4),), conv((1, k)), False))
    for k in (16, 24, 31):
        P.append(Probe(f"conv_{k}x1", "conv", (f16(X4),), conv((k, 1)), True))
    P.append(Probe("conv_32x1", "conv", (f16(X4),), conv((32, 1)), False))
    for k in (13, 14, 15):
        P.append(Probe(f"conv_k{k}", "conv", (f16(X4),), conv(k), True))
    for s in (2, 3, 4, 6, 8):
        P.append(Probe(f"conv_s{s}", "conv", (f16(X4),), conv(s, stride=s, pad="valid"), True))
    P.append(
        Probe(
            "conv1d",
            "conv",
            (f16((1, 64, 1024)),),
            lambda mb, x: mb.conv(x=x, weight=w(64, 64, 3), pad_type="same"),
            True,
        )
    )
    P.append(
        Probe(
            "conv3d",
            "conv",
            (f16((1, 16, 8, 16, 16)),),
            lambda mb, x: mb.conv(x=x, weight=w(16, 16, 3, 3, 3), pad_type="same"),
            True,
        )
    )
    P.append(
        Probe(
            "conv_transpose",
            "conv_transpose",
            (f16(X4),),
            lambda mb, x: mb.conv_transpose(x=x, weight=w(64, 64, 2, 2), strides=[2, 2]),
            True,
            "A",
        )
    )
    P.append(Probe("linear", "linear", (f16(M3),), lambda mb, x: mb.linear(x=x, weight=w(512, 256)), True, "A"))
    P.append(Probe("matmul_const", "matmul", (f16(M3),), lambda mb, x: mb.matmul(x=x, y=w(256, 512)), True, "A"))
    P.append(Probe("matmul_dyn", "matmul", (f16(M3), f16((1, 256, 128))), _binary("matmul"), True, "A"))
    P.append(
        Probe(
            "matmul_batched4d",
            "matmul",
            (f16((1, 8, 128, 64)), f16((1, 8, 64, 128))),
            _binary("matmul"),
            True,
            "C(all)",
        )
    )
    P.append(
        Probe("matmul_bc", "matmul", (f16((1, 8, 128, 64)), f16((1, 1, 64, 128))), _binary("matmul"), True, "C(all)")
    )
    for k in (16384, 32768):
        P.append(Probe(f"matmul_k{k}", "matmul", (f16((1, 16, k)), f16((1, k, 16))), _binary("matmul"), True))
    for k in (40000, 65536):
        P.append(Probe(f"matmul_k{k}", "matmul", (f16((1, 16, k)), f16((1, k, 16))), _binary("matmul"), False))
    qkv = (1, 8, 128, 64)
    P.append(
        Probe(
            "sdpa",
            "scaled_dot_product_attention",
            (f16(qkv),) * 3,
            lambda mb, q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v),
            True,
            "C(all)",
        )
    )
    for op in ("lstm", "gru", "rnn"):
        P.append(Probe(op, op, (f16((16, 1, 64)),), lambda mb, x, op=op: _recurrent(mb, op, x), False, "C(all)"))
    P.append(
        Probe(
            "avg_pool",
            "avg_pool",
            (f16(X4),),
            lambda mb, x: mb.avg_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
            True,
            "C(all)",
        )
    )
    P.append(
        Probe(
            "l2_pool",
            "l2_pool",
            (f16(X4),),
            lambda mb, x: mb.l2_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
            True,
            "C(all)",
        )
    )
    P.append(
        Probe(
            "max_pool",
            "max_pool",
            (f16(X4),),
            lambda mb, x: mb.max_pool(x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same"),
            True,
            "A",
        )
    )
    for k, ane in [(4, True), (8, True), (9, False), (15, False)]:
        P.append(
            Probe(
                f"max_pool_k{k}",
                "max_pool",
                (f16(X4),),
                lambda mb, x, k=k: mb.max_pool(x=x, kernel_sizes=[k, k], strides=[1, 1], pad_type="same"),
                ane,
                "C(all)" if k == 15 else None,
            )
        )
    P.append(
        Probe(
            "max_pool_9x1",
            "max_pool",
            (f16(X4),),
            lambda mb, x: mb.max_pool(x=x, kernel_sizes=[9, 1], strides=[1, 1], pad_type="same"),
            True,
        )
    )
    P.append(
        Probe(
            "max_pool_1x9",
            "max_pool",
            (f16(X4),),
            lambda mb, x: mb.max_pool(x=x, kernel_sizes=[1, 9], strides=[1, 1], pad_type="same"),
            False,
        )
    )
    for k in (9, 14):
        P.append(
            Probe(
                f"avg_pool_k{k}",
                "avg_pool",
                (f16(X4),),
                lambda mb, x, k=k: mb.avg_pool(x=x, kernel_sizes=[k, k], strides=[1, 1], pad_type="same"),
                True,
            )
        )
    P.append(
        Probe(
            "global_avg",
            "reduce_mean",
            (f16(X4),),
            lambda mb, x: mb.reduce_mean(x=x, axes=[2, 3], keep_dims=True),
            True,
            "C(all)",
        )
    )
    for name, axis in [("softmax_c", 1), ("softmax_h", 2), ("softmax_w", 3)]:
        P.append(Probe(name, "softmax", (f16(X4),), lambda mb, x, a=axis: mb.softmax(x=x, axis=a), True, "A"))
    for name, axes in [("layer_norm_c", [1]), ("layer_norm_hw", [2, 3]), ("layer_norm_chw", [1, 2, 3])]:
        P.append(Probe(name, "layer_norm", (f16(X4),), lambda mb, x, a=axes: mb.layer_norm(x=x, axes=a), True, "A"))
    P.append(Probe("instance_norm", "instance_norm", (f16(X4),), lambda mb, x: mb.instance_norm(x=x), True, "A"))
    P.append(
        Probe(
            "batch_norm",
            "batch_norm",
            (f16(X4),),
            lambda mb, x: mb.batch_norm(x=x, mean=np.zeros(64, np.float16), variance=np.ones(64, np.float16)),
            True,
            "A",
        )
    )
    P.append(Probe("l2_norm", "l2_norm", (f16(X4),), lambda mb, x: mb.l2_norm(x=x), True, "A"))
    P.append(
        Probe("lrn", "local_response_norm", (f16(X4),), lambda mb, x: mb.local_response_norm(x=x, size=5), True, "A")
    )
    for op in [
        "reduce_sum",
        "reduce_mean",
        "reduce_max",
        "reduce_min",
        "reduce_l1_norm",
        "reduce_l2_norm",
        "reduce_sum_square",
        "reduce_log_sum",
        "reduce_log_sum_exp",
    ]:
        P.append(
            Probe(
                f"{op}_c",
                op,
                (f16(X4),),
                lambda mb, x, op=op: getattr(mb, op)(x=x, axes=[1], keep_dims=True),
                True,
                "C(all)",
            )
        )
    P.append(
        Probe(
            "reduce_prod_c",
            "reduce_prod",
            (f16(X4),),
            lambda mb, x: mb.reduce_prod(x=x, axes=[1], keep_dims=True),
            False,
            "C(all)",
        )
    )
    P.append(
        Probe(
            "reduce_argmax_c", "reduce_argmax", (f16(X4),), lambda mb, x: mb.reduce_argmax(x=x, axis=1), False, "C(all)"
        )
    )
    P.append(Probe("cumsum_c", "cumsum", (f16(X4),), lambda mb, x: mb.cumsum(x=x, axis=1), False, "C(all)"))
    P.append(Probe("argsort_w", "argsort", (f16(X4),), lambda mb, x: mb.argsort(x=x, axis=3), False, "C(all)"))
    P.append(Probe("topk_c", "topk", (f16(X4),), lambda mb, x: mb.topk(x=x, k=4, axis=1)[0], True, "C(all)"))
    P.append(Probe("reshape", "reshape", (f16(X4),), lambda mb, x: mb.reshape(x=x, shape=[1, 64, 1024]), True, "A"))
    P.append(
        Probe(
            "reshape_split_c",
            "reshape",
            (f16(X4),),
            lambda mb, x: mb.reshape(x=x, shape=[1, 8, 8, 32, 32]),
            True,
            "C(all)",
        )
    )
    P.append(
        Probe("transpose_hw", "transpose", (f16(X4),), lambda mb, x: mb.transpose(x=x, perm=[0, 1, 3, 2]), True, "A")
    )
    P.append(
        Probe("transpose_cw", "transpose", (f16(X4),), lambda mb, x: mb.transpose(x=x, perm=[0, 3, 2, 1]), True, "A")
    )
    P.append(
        Probe(
            "transpose_r5",
            "transpose",
            (f16((1, 4, 16, 16, 16)),),
            lambda mb, x: mb.transpose(x=x, perm=[0, 2, 1, 3, 4]),
            True,
        )
    )
    for name, axis in [("concat_c", 1), ("concat_w", 3)]:
        P.append(
            Probe(
                name, "concat", (f16(X4), f16(X4)), lambda mb, x, y, a=axis: mb.concat(values=[x, y], axis=a), True, "A"
            )
        )
    P.append(
        Probe("split_c", "split", (f16(X4),), lambda mb, x: mb.split(x=x, num_splits=2, axis=1)[0], True, "C(all)")
    )
    P.append(
        Probe(
            "stack",
            "stack",
            (f16(X4), f16(X4)),
            lambda mb, x, y: mb.reshape(x=mb.stack(values=[x, y], axis=1), shape=[1, 128, 32, 32]),
            True,
            "A",
        )
    )
    P.append(
        Probe(
            "slice_c",
            "slice_by_index",
            (f16(X4),),
            lambda mb, x: mb.slice_by_index(x=x, begin=[0, 8, 0, 0], end=[1, 40, 32, 32]),
            True,
            "C(all)",
        )
    )
    P.append(
        Probe(
            "slice_w_stride2",
            "slice_by_index",
            (f16(X4),),
            lambda mb, x: mb.slice_by_index(x=x, begin=[0, 0, 0, 0], end=[1, 64, 32, 32], stride=[1, 1, 1, 2]),
            True,
            "A",
        )
    )
    P.append(
        Probe(
            "slice_by_size",
            "slice_by_size",
            (f16(X4),),
            lambda mb, x: mb.slice_by_size(x=x, begin=[0, 0, 4, 4], size=[1, 64, 16, 16]),
            True,
            "C(all)",
        )
    )
    P.append(
        Probe(
            "slice_dyn",
            "slice_by_size",
            (f16(X4), i32((4,))),
            lambda mb, x, b: mb.slice_by_size(x=x, begin=b, size=[1, 64, 16, 16]),
            False,
        )
    )
    P.append(Probe("reverse_w", "reverse", (f16(X4),), lambda mb, x: mb.reverse(x=x, axes=[3]), True, "A"))
    P.append(Probe("tile", "tile", (f16(X4),), lambda mb, x: mb.tile(x=x, reps=[1, 2, 1, 2]), True, "A"))
    for name, mode in [("pad_const", "constant"), ("pad_reflect", "reflect"), ("pad_replicate", "replicate")]:
        P.append(
            Probe(
                name,
                "pad",
                (f16(X4),),
                lambda mb, x, m=mode: mb.pad(x=x, pad=[0, 0, 0, 0, 2, 2, 2, 2], mode=m),
                True,
                "A",
            )
        )
    P.append(Probe("pad_c", "pad", (f16(X4),), lambda mb, x: mb.pad(x=x, pad=[0, 0, 0, 4, 0, 0, 0, 0]), True, "A"))
    P.append(
        Probe(
            "space_to_depth",
            "space_to_depth",
            (f16(X4),),
            lambda mb, x: mb.space_to_depth(x=x, block_size=2),
            True,
            "A",
        )
    )
    P.append(
        Probe(
            "pixel_unshuffle",
            "pixel_unshuffle",
            (f16(X4),),
            lambda mb, x: mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2)),
            True,
            "A",
        )
    )
    P.append(
        Probe(
            "depth_to_space",
            "depth_to_space",
            (f16(X4),),
            lambda mb, x: mb.depth_to_space(x=x, block_size=2),
            True,
            "C(all)",
        )
    )
    P.append(
        Probe(
            "pixel_shuffle",
            "pixel_shuffle",
            (f16(X4),),
            lambda mb, x: mb.pixel_shuffle(x=x, upscale_factor=2),
            True,
            "C(all)",
        )
    )
    for name, fn in [
        (
            "upsample_nearest_x2",
            lambda mb, x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=2),
        ),
        (
            "upsample_nearest_x3",
            lambda mb, x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=3, scale_factor_width=3),
        ),
        (
            "upsample_bilinear_x2",
            lambda mb, x: mb.upsample_bilinear(x=x, scale_factor_height=2.0, scale_factor_width=2.0),
        ),
        ("resize_bilinear_48", lambda mb, x: mb.resize_bilinear(x=x, target_size_height=48, target_size_width=48)),
    ]:
        P.append(Probe(name, RESAMPLE_OPS[name], (f16(X4),), fn, True, "A"))
    boxes = np.array([[0.1, 0.1, 0.6, 0.6]] * 4, np.float16)
    P.append(
        Probe(
            "crop_resize",
            "crop_resize",
            (f16(X4),),
            lambda mb, x: mb.crop_resize(
                x=x,
                boxes=boxes,
                box_indices=np.zeros(4, np.int32),
                target_height=8,
                target_width=8,
                normalized_coordinates=True,
            ),
            False,
            "C(all)",
        )
    )
    P.append(
        Probe(
            "gather_c",
            "gather",
            (f16(X4),),
            lambda mb, x: mb.gather(x=x, indices=np.arange(0, 64, 2, dtype=np.int32), axis=1),
            True,
            "C(all)",
        )
    )
    P.append(
        Probe(
            "gather_w",
            "gather",
            (f16(X4),),
            lambda mb, x: mb.gather(x=x, indices=np.arange(31, -1, -1, dtype=np.int32), axis=3),
            True,
            "A",
        )
    )
    P.append(
        Probe(
            "gather_dyn",
            "gather",
            (f16((1000, 256)), i32((1, 64))),
            lambda mb, t, i: mb.gather(x=t, indices=i, axis=0),
            False,
        )
    )
    P.append(
        Probe(
            "embedding", "gather", (i32((1, 64)),), lambda mb, i: mb.gather(x=w(32000, 256), indices=i, axis=0), False
        )
    )
    P.append(
        Probe(
            "scatter",
            "scatter",
            (f16(X4), i32((4,)), f16((1, 4, 32, 32))),
            lambda mb, x, i, u: mb.scatter(data=x, indices=i, updates=u, axis=1),
            False,
        )
    )
    P.append(
        Probe(
            "band_part",
            "band_part",
            (f16((1, 128, 128)),),
            lambda mb, x: mb.band_part(x=x, lower=-1, upper=0),
            False,
            "C(op)",
        )
    )
    P.append(
        Probe(
            "one_hot", "one_hot", (i32((1, 64)),), lambda mb, i: mb.one_hot(indices=i, one_hot_vector_size=128), False
        )
    )
    P.append(Probe("nonzero", "non_zero", (f16((1, 256)),), lambda mb, x: mb.non_zero(x=x), False))
    P.append(
        Probe(
            "fill_like",
            "fill_like",
            (f16(X4),),
            lambda mb, x: mb.add(x=x, y=mb.fill_like(ref_tensor=x, value=np.float16(1))),
            True,
            "A",
        )
    )
    # GT-B (vx-lang/Vx #435-#437, M4): size thresholds of single-op fp16 models with fp32 I/O
    vx = "vx-lang/Vx issues #435, #436, #437 (MLComputePlan, Apple M4)"
    for n, dev in [(256, "cpu"), (384, "cpu"), (512, "ane")]:
        P.append(
            Probe(
                f"gtb_matmul_{n}",
                "matmul",
                (((n, n), "fp32"), ((n, n), "fp32")),
                _binary("matmul"),
                True,
                None,
                vx,
                dev,
            )
        )
    for shape, dev in [
        ((1, 1, 2048, 128), "cpu"),
        ((1, 8, 512, 64), "cpu"),
        ((1, 16, 1024, 64), "cpu"),
        ((1, 16, 2048, 64), "ane"),
        ((1, 32, 1024, 128), "ane"),
    ]:
        P.append(
            Probe(
                f"gtb_sdpa_{'x'.join(map(str, shape))}",
                "scaled_dot_product_attention",
                ((shape, "fp32"),) * 3,
                lambda mb, q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v),
                True,
                None,
                vx,
                dev,
            )
        )
    return P


def _recurrent(mb, op, x):
    h = np.zeros((1, 64), np.float16)
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[op]
    kw = {"x": x, "initial_h": h, "weight_ih": w(gates * 64, 64), "weight_hh": w(gates * 64, 64)}
    if op == "lstm":
        kw["initial_c"] = h
    return getattr(mb, op)(**kw)[0]


PROBES = {p.name: p for p in _probes()}


def build_probe(probe: Probe, context: bool = False, target: str = "iOS18"):
    """Convert a probe to an ML Program (fp16) for deployment target ``target`` (a ``coremltools.target`` name:
    its opset, so it loads on that OS); with ``context`` wrap it as GT-A did."""
    ct = quiet_coremltools()
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program, types

    dtypes = {"fp16": types.fp16, "fp32": types.fp32, "int32": types.int32}
    placeholders = {f"input_{i}": mb.placeholder(shape=s, dtype=dtypes[d]) for i, (s, d) in enumerate(probe.inputs)}

    def wrap(x):
        shape = x.shape
        if not context or x.dtype != types.fp16 or len(shape) not in (3, 4):
            return x
        for _ in range(2):
            if len(shape) == 4:
                c = shape[1]
                groups = c if c > 512 else 1
                x = mb.relu(x=mb.conv(x=x, weight=w(c, c // groups, 3, 3), groups=groups, pad_type="same"))
            elif shape[-1] <= 2048:
                x = mb.relu(x=mb.linear(x=x, weight=w(shape[-1], shape[-1])))
        return x

    opset = getattr(ct.target, target)
    with Function(placeholders, opset_version=opset) as function:
        function.set_outputs([wrap(probe.build(mb, *[wrap(v) for v in function.inputs.values()]))])
    program = Program()
    program.add_function("main", function)
    return ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=opset,
        compute_precision=ct.precision.FLOAT16,
    )


@dataclass
class Agreement:
    probe: Probe
    predicted_ane: bool
    predicted_ctx: str | None
    predicted_iso_device: str | None

    @property
    def eligibility_ok(self) -> bool:
        return self.predicted_ane == self.probe.ane

    @property
    def ctx_ok(self) -> bool | None:
        return None if self.probe.ctx is None else self.predicted_ctx == self.probe.ctx

    @property
    def iso_ok(self) -> bool | None:
        return None if self.probe.iso_device is None else self.predicted_iso_device == self.probe.iso_device


def target_ops(report, probe: Probe):
    return [p for p in report.placements if p.op.type == probe.op_type] or report.placements


def classify_ctx(report, probe: Probe) -> str:
    """'A' | 'C(all)' | 'C(op)' for a wrapped probe, as GT-A's ctx column encodes placement."""
    ops = target_ops(report, probe)
    if all(p.device == "ane" for p in ops):
        return "A"
    return "C(all)" if all(p.device == "cpu" for p in report.placements) else "C(op)"


def agreement(chip: str = "m4", os: str = "macos27", names: list[str] | None = None) -> list[Agreement]:
    """Predict every probe (iso and wrapped) and compare with the measured placement."""
    from ..api import check

    rows = []
    for probe in (PROBES[n] for n in (names or PROBES)):
        iso = check(build_probe(probe), chip=chip, os=os, compute_units="cpu_and_ne")
        ops = target_ops(iso, probe)
        ctx = (
            classify_ctx(check(build_probe(probe, context=True), chip=chip, os=os, compute_units="cpu_and_ne"), probe)
            if probe.ctx
            else None
        )
        rows.append(
            Agreement(probe, all(p.supported["ane"] for p in ops), ctx, ops[0].device if probe.iso_device else None)
        )
    return rows
