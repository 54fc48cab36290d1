"""Parameter rules (PA-*): kernel, window, stride, dilation, padding and compression limits."""
from __future__ import annotations

import math

from ..ir import Op
from .base import Context, ints, kernel, producer_type, rule


def conv_kernel_limits(tier: int) -> tuple[int, int, int]:
    """(max width, max height, max square side) of a conv kernel on an ANE generation."""
    return (15, 31, 16) if tier >= 14 else (13, 29, 13)


@rule("PA-1", family="parameter", confidence="M", scope="M4/M6 measured (width <=15, height <=31, square <=16); H13 and older: width <=13 (R)",
      apple_message="kernel width and height should be multiple of <n> for large kernel but are <w and h>",
      source="751K notes/coreml_dispatch.md §3.3, arch_h16g_h18g.tsv (M4/M6 macOS 27); ane-guide App. A 'Per-chip numeric limits'; ane-rules.md PA-1..PA-4",
      fix="Decompose the large kernel into a stack of smaller convs (k = k1 + k2 - 1), or separable 1xK / Kx1 pairs within the limits.", ops=('conv', 'conv_transpose'))
def conv_kernel_too_large(op: Op, ctx: Context):
    """A convolution kernel wider/taller than the ANE accepts.

    On M4 (and M6) a 1x16 kernel and a 17x17 kernel are CPU-only; heights up to 31 pass. The
    direct-path compiler limits fp16 kernel width to 13 on H13 (M1)."""
    k = kernel(op)
    if len(k) < 2:
        k = (1,) + k if k else ()
    if not k:
        return None
    max_w, max_h, max_sq = conv_kernel_limits(ctx.tier)
    h, w = k[-2], k[-1]
    if w > max_w or h > max_h or (h > max_sq and w > max_sq):
        return f"kernel {h}x{w} exceeds the {ctx.target.chip.ane_arch} limits (width <= {max_w}, height <= {max_h}, square <= {max_sq})"
    return None


@rule("PA-11", family="parameter", confidence="C",
      apple_message="Unsupported: (dilated)kernel width = <n> > 13",
      source="hollance/neural-engine issue #2 (kernel validation log) and docs/unsupported-layers.md; 751K GT-2 conv3x3_d2 on ANE (M4); apple/coreai-models neural_engine_rules.md ('Dilated convolution factorization'); ane-rules.md PA-11, PA-5",
      fix="Factor a large dilation into a stack of dilation-2/3 convs, or use space_to_batch style rewrites.", ops=('conv',))
def dilated_kernel_too_wide(op: Op, ctx: Context):
    """A dilated convolution whose dilated extent (k-1)*d+1 exceeds the kernel width limit.

    The compiler checks the dilated kernel width ('(dilated)kernel width = 28 > 13'). Dilation 2 on
    a 3x3 kernel is eligible on M4; large dilations are not."""
    d, k = ints(op, "dilations"), kernel(op)
    if not k or max(d, default=1) <= 1:
        return None
    max_w, max_h, _ = conv_kernel_limits(ctx.tier)
    ext = [(kk - 1) * dd + 1 for kk, dd in zip(k, d)]
    if ext[-1] > max_w or (len(ext) > 1 and ext[-2] > max_h):
        return f"dilation {tuple(d)} makes the {'x'.join(map(str, k))} kernel {'x'.join(map(str, ext))} wide", f"Unsupported: (dilated)kernel width = {ext[-1]} > {max_w}"
    return None


@rule("PA-5", family="parameter", confidence="C", scope="A12/A13 era (H11-H12)", when=lambda t: t.chip.tier <= 12,
      apple_message="Unsupported: stride_x = <s> > 2",
      source="hollance/neural-engine issue #2 (log lines quoted), docs/unsupported-layers.md; ane-rules.md PA-5",
      fix="Use pooling windows <= 13 and strides <= 2, or a strided conv.", ops=('max_pool', 'avg_pool', 'l2_pool'))
def pooling_limits_early(op: Op, ctx: Context):
    """Pooling with a window wider than 13 or a stride over 2 on A12/A13-era ANEs."""
    k = kernel(op)
    s = ints(op, "strides")
    if k and max(k) > 13:
        return f"pool window {max(k)} > 13", f"Unsupported: (dilated)kernel width = {max(k)} > 13"
    if s and max(s) > 2:
        return f"pool stride {max(s)} > 2", f"Unsupported: stride_x = {max(s)} > 2"
    return None


@rule("PA-6", family="parameter", confidence="M", scope="M4/M6 measured (macOS 27)", when=lambda t: t.chip.tier >= 13,
      apple_message="Invalid Pool kernel width (<k>), must be <range>",
      source="751K notes/coreml_dispatch.md §3.3, arch_h16g_h18g.tsv, GT-1 max_pool_k15 (M4/M6); ane-rules.md PA-6, PA-7",
      fix="Stack smaller max pools (two 5x5 stride-1 pools equal one 9x9), or use windows <= 8.", ops=('max_pool',))
def max_pool_window_too_large(op: Op, ctx: Context):
    """A max pool window wider than 8 (9x9 fails; 9x1 passes, 1x9 fails).

    Measured boundary on M4: 8x8 eligible, 9x9 CPU-only; avg_pool up to 14x14 is fine."""
    k = kernel(op)
    if k and k[-1] > 8:
        return f"max pool window {'x'.join(map(str, k))}: width {k[-1]} > 8", f"Invalid Pool kernel width ({k[-1]})"
    return None


@rule("PA-9", family="parameter", confidence="A", blocks=(),
      source="apple/coreai-models neural_engine_rules.md ('Convolution stride optimization'); ane-guide App. A HAL stride list [2,3,4,8]; ane-rules.md PA-9",
      fix="Use strides that factor into 2s and 3s (or split the stride across layers).", ops=('conv',))
def awkward_conv_stride(op: Op, ctx: Context):
    """A conv stride that does not factor into 2s and 3s (5, 7, 11 ...): runs, but slowly.

    Apple's authoring rules: strides factorable into 2 and 3 are efficient; others 'introduce overhead'."""
    for s in ints(op, "strides"):
        n = s
        for p in (2, 3):
            while n % p == 0 and n > 1:
                n //= p
        if n != 1:
            return f"stride {s} is not a product of 2s and 3s (slower on the ANE)"
    return None


@rule("PA-12", family="parameter", confidence="R",
      apple_message="Constnt Pad fill mode with non-zero values is not supported on ANE",
      source="751K notes/coreml_dispatch.md §2.1 (Espresso string, M4); ane-rules.md PA-12",
      fix="Pad with zeros and add the offset afterwards, or fold the constant into the next op.", ops=('pad',))
def nonzero_constant_pad(op: Op, ctx: Context):
    """A constant pad with a non-zero fill value."""
    if str(op.param("mode", "constant")) == "constant":
        value = op.param("constant_val", 0.0)
        try:
            if float(value) != 0.0:
                return f"constant pad fills with {float(value)}, not 0"
        except (TypeError, ValueError):
            return None
    return None


@rule("PA-15", family="parameter", confidence="C", scope="A12/A13 era (H11-H12)", when=lambda t: t.chip.tier <= 12,
      apple_message="only scaling factor of 2 is supported",
      source="hollance/neural-engine issue #2 (log); 751K GT-2 (M4: x3, x1.5 on ANE); ane-rules.md PA-15",
      fix="Upsample by 2 repeatedly, or resize on the host.", ops=('upsample_nearest_neighbor', 'upsample_bilinear'))
def upsample_factor_early(op: Op, ctx: Context):
    """Upsampling by a factor other than 2 on A12/A13-era ANEs."""
    factors = [op.param("scale_factor_height", 2), op.param("scale_factor_width", 2)]
    if any(float(f) != 2.0 for f in factors if f is not None):
        return f"upsample factor {tuple(float(f) for f in factors)} is not 2"
    return None


@rule("PA-17", family="parameter", confidence="C", scope="A12/A13 era (H11-H12)", when=lambda t: t.chip.tier <= 12,
      apple_message="elementwise with channel broadcast supported only with constant vector or transplant input",
      source="hollance/neural-engine issue #2 (log); 751K GT-1 add_bc_ch on ANE (M4); ane-rules.md PA-17, PA-18",
      fix="Make the per-channel vector a constant, or broadcast it explicitly before the op.", ops=('add', 'mul', 'sub', 'real_div'))
def runtime_channel_broadcast_early(op: Op, ctx: Context):
    """An elementwise op broadcasting a runtime C x 1 x 1 tensor over C x H x W on A12/A13-era ANEs."""
    xs = [v for v in op.runtime_inputs() if v.type.is_static and len(v.type.shape) >= 3]
    if len(xs) == 2 and {math.prod(xs[0].type.shape[-2:]), math.prod(xs[1].type.shape[-2:])} - {1} and \
            any(math.prod(v.type.shape[-2:]) == 1 for v in xs):
        return "runtime channel-vector broadcast"
    return None


@rule("PA-22", family="parameter", confidence="M",
      source="751K notes/coreml_dispatch.md §3.3, arch_h16g_h18g.tsv (M4/M6: K=32768 ok, 40000 fails); ane-rules.md PA-22",
      fix="Split the contraction into chunks of <= 32768 and add the partial products.", ops=('matmul', 'linear'))
def matmul_contraction_too_long(op: Op, ctx: Context):
    """A matmul/linear whose contraction (inner) dimension exceeds 32768."""
    x = op.input("x")
    if x is None or not x.type.is_static or not x.type.shape:
        return None
    k = x.type.shape[-2] if bool(op.param("transpose_x", False)) and x.type.rank > 1 else x.type.shape[-1]
    return f"contraction length {k} > 32768" if k > 32768 else None


@rule("PA-23", family="parameter", confidence="R", apple_message="depth > 1 is not supported for MatMult",
      source="sbryngelson/ane-guide ch. 4, ch. 17 validator table (M1 direct compile); ane-rules.md PA-23",
      fix="Fold the extra batch dimension into the batch axis (reshape to rank 4) before the matmul.", ops=('matmul', 'linear'))
def rank5_matmul(op: Op, ctx: Context):
    """A batched matmul or linear with a rank-5 operand ('depth > 1')."""
    for v in op.runtime_inputs():
        if v.type.rank is not None and v.type.rank >= 5 and v.type.is_static and math.prod(v.type.shape[:-4] or (1,)) * v.type.shape[-4] > 1:
            return f"{v.name} is rank {v.type.rank} with depth > 1"
    return None


@rule("PA-25", family="parameter", confidence="R", apple_message="3d space_to_batch is not supported on ANE",
      source="751K notes/coreml_dispatch.md §2.1 (Espresso string, M4); ane-rules.md PA-25",
      fix="Use the 2-D (rank-4) form.", ops=('space_to_batch', 'batch_to_space'))
def space_to_batch_3d(op: Op, ctx: Context):
    """A 3-D (rank-5) space_to_batch / batch_to_space."""
    x = op.input("x")
    if x is not None and (x.type.rank or 0) >= 5:
        return "3-D space_to_batch"
    return None


@rule("PA-27", family="state", confidence="C", apple_message="Cannot support standalone slice_update",
      source="Anemll/anemll-profile README; argus1/Anemll tests/dev/MB_GRAPH_ISSUES.md; ane-rules.md PA-27",
      fix="Keep the chain read_state -> slice_update -> write_state -> read_state; don't use the slice_update result elsewhere.", ops=('slice_update',))
def standalone_slice_update(op: Op, ctx: Context):
    """A slice_update whose result feeds anything other than write_state."""
    users = [u.type for v in op.outputs for u in ctx.consumers.get(v.name, [])]
    if not users or any(u not in ("write_state", "coreml_update_state") for u in users):
        return "slice_update result is used outside a read_state -> slice_update -> write_state chain"
    return None


@rule("PA-28", family="compression", confidence="A",
      source="coremltools converters/mil/mil/passes/defs/optimize_quantization.py (reorder_lut_per_channel_scale); ane-rules.md PA-28",
      fix="Run coremltools' reorder_lut_per_channel_scale pass (default in ct.optimize), which moves the scale after the conv/linear.", ops=('conv', 'linear', 'matmul'))
def lut_scale_before_linear(op: Op, ctx: Context):
    """A conv/linear/matmul whose weight is a LUT-palettized tensor scaled per channel before it.

    For the ANE 'it requires the scale to be after the linear/matmul/conv'."""
    w = op.input("weight") or op.input("y")
    if producer_type(w) == "constexpr_blockwise_shift_scale" and producer_type(w.producer.input("data")) == "constexpr_lut_to_dense":
        return "LUT weight is scaled per channel before the op"
    return None


@rule("PA-29", family="compression", confidence="M", apple_message="ANE only support per-cout/per-tensor quantization",
      source="cadamcat/llms-on-apple-neural-engine findings/coreml-grouped-scale-cpu (M5 Pro macOS 27); coremltools docs opt-quantization-perf.md; ane-rules.md PA-29",
      fix="Quantize with per-channel (granularity='per_channel') or per-tensor scales for the ANE; per-block int4 is meant for the GPU.", ops=('conv', 'linear', 'matmul'))
def blockwise_scale_along_input(op: Op, ctx: Context):
    """A conv/linear weight quantized with scales that vary along the input-channel axis (per-block)."""
    w = op.input("weight") or op.input("y")
    if producer_type(w) != "constexpr_blockwise_shift_scale":
        return None
    scale = w.producer.input("scale")
    if scale is not None and scale.type.is_static and scale.type.rank and scale.type.rank > 1 and scale.type.shape[1] > 1:
        return f"weight scale {scale.type} varies along the input-channel axis (per-block quantization)"
    return None


@rule("PA-31", family="parameter", confidence="A", blocks=(),
      source="apple/coreai-models neural_engine_rules.md ('Softmax placement'); ane-rules.md PA-31",
      fix="Lay the tensor out so softmax runs over the channel axis (B, C, 1, S).", ops=('softmax',))
def spatial_softmax(op: Op, ctx: Context):
    """A softmax over the last (width) axis of a large rank-4 tensor: slower on the ANE."""
    x = op.input("x")
    if x is not None and x.type.rank == 4 and x.type.is_static and int(op.param("axis", -1)) in (-1, 3) and x.type.numel > 1 << 20:
        return "softmax over the width axis of a large tensor limits the compiler's spatial tiling"
    return None
