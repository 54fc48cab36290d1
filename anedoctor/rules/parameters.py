"""Parameter rules (PA-*): kernel, window, stride, dilation, padding and compression limits."""

from __future__ import annotations

import math

from ..ir import Op
from .base import Context, ints, kernel, producer_type, rule
from .refs import COREMLTOOLS, WEIGHT, docs, file, guide, hollance, issue, m6, ne_rules

EARLY_LOG = issue("hollance/neural-engine", 2, "(os_log kernel-validation lines, A12/A13 era)")
M4_LIMITS = m6("notes/coreml_dispatch.md", "(§3.3 boundary sweeps, M4 macOS 27)")
M4_M6_ARCH = m6("arch_h16g_h18g.tsv", "(the same cases on h16g (M4) and h18g (M6))")


def conv_kernel_limits(tier: int) -> tuple[int, int, int]:
    """(max width, max height, max square side) of a conv kernel on an ANE generation."""
    return (15, 31, 16) if tier >= 14 else (13, 29, 13)


def conv(kh: int, kw: int, dilation: int = 1, stride: int = 1) -> str:
    """A one-conv model (8 -> 8 channels, 64 x 64, valid padding) with a kh x kw kernel."""
    eh, ew = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    oh, ow = (64 - eh) // stride + 1, (64 - ew) // stride + 1
    return f"""
        func main<ios17>(tensor<fp16, [1, 8, 64, 64]> x) {{
            tensor<fp16, [8, 8, {kh}, {kw}]> w = const()[val = tensor<fp16, [8, 8, {kh}, {kw}]>({WEIGHT})];
            tensor<fp16, [1, 8, {oh}, {ow}]> y = conv(x = x, weight = w, strides = [{stride}, {stride}],
                pad_type = "valid", dilations = [{dilation}, {dilation}], groups = 1);
        }} -> (y);"""


def pool(op_type: str, k: int, stride: int = 1) -> str:
    """A one-pool model over (1, 8, 32, 32) with a k x k window."""
    o = (32 - k) // stride + 1
    return f"""
        func main<ios17>(tensor<fp16, [1, 8, 32, 32]> x) {{
            tensor<fp16, [1, 8, {o}, {o}]> y = {op_type}(x = x, kernel_sizes = [{k}, {k}],
                strides = [{stride}, {stride}], pad_type = "valid");
        }} -> (y);"""


@rule(
    "PA-1",
    family="parameter",
    confidence="M",
    scope=("all chips; H14+: width <= 15, height <= 31, square <= 16 (M on M4/M6); H13 and older: width <= 13 (R)"),
    apple_message="kernel width and height should be multiple of <n> for large kernel but are <w and h>",
    references=[
        M4_LIMITS,
        M4_M6_ARCH,
        m6("plan_iso_all.tsv", "(row conv_k17: preferred GPU under ALL)"),
        guide("appendices/a-op-device-matrix.md", "('Per-chip numeric limits': fp16 kernel width 13 on H13)"),
    ],
    fix="Decompose the large kernel into a stack of smaller convs (k = k1 + k2 - 1), or separable 1xK / Kx1 pairs "
    "within the limits.",
    ops=("conv", "conv_transpose"),
    example=conv(1, 16),
    quiet=conv(1, 15),
)
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
        return (
            f"kernel {h}x{w} exceeds the {ctx.target.chip.ane_arch} limits (width <= {max_w}, height <= {max_h}, "
            f"square <= {max_sq})"
        )
    return None


@rule(
    "PA-11",
    family="parameter",
    confidence="C",
    apple_message="Unsupported: (dilated)kernel width = <n> > 13",
    references=[
        EARLY_LOG,
        hollance("docs/unsupported-layers.md", "(dilated convolutions)"),
        m6("plan_ctx_cpune.tsv", "(row conv3x3_d2: dilation 2 placed on the ANE, M4)"),
        ne_rules("('Dilated convolution factorization')"),
    ],
    fix="Factor a large dilation into a stack of dilation-2/3 convs, or use space_to_batch style rewrites.",
    ops=("conv",),
    fix_pass="dilated_conv_to_space_to_batch",
    fix_exact=True,
    example=conv(3, 3, dilation=8),
    quiet=conv(3, 3, dilation=2),
)
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
        return (
            f"dilation {tuple(d)} makes the {'x'.join(map(str, k))} kernel {'x'.join(map(str, ext))} wide",
            f"Unsupported: (dilated)kernel width = {ext[-1]} > {max_w}",
        )
    return None


@rule(
    "PA-5",
    family="parameter",
    confidence="C",
    scope="A12/A13 era (H11-H12)",
    when=lambda t: t.chip.tier <= 12,
    apple_message="Unsupported: stride_x = <s> > 2",
    references=[EARLY_LOG, hollance("docs/unsupported-layers.md")],
    fix="Use pooling windows <= 13 and strides <= 2, or a strided conv; a global pool is a reduction (reduce_mean, "
    "reduce_max), and a pool with stride = window = 2^n is n window-2 stride-2 pools (`anedoctor fix` applies both).",
    ops=("max_pool", "avg_pool", "l2_pool"),
    fix_pass="pool_decompose",
    fix_exact=True,
    example=pool("avg_pool", 14),
    quiet=pool("avg_pool", 13, stride=2),
)
def pooling_limits_early(op: Op, ctx: Context):
    """Pooling with a window wider than 13 or a stride over 2 on A12/A13-era ANEs.

    Kernel-validation logs of that era reject such pools ('Unsupported: (dilated)kernel width =
    28 > 13', 'Unsupported: stride_x = 4 > 2'), so the pool and its neighbours fall back to the
    CPU. Later generations accept larger windows (see PA-6 for max pools)."""
    k = kernel(op)
    s = ints(op, "strides")
    if k and max(k) > 13:
        return f"pool window {max(k)} > 13", f"Unsupported: (dilated)kernel width = {max(k)} > 13"
    if s and max(s) > 2:
        return f"pool stride {max(s)} > 2", f"Unsupported: stride_x = {max(s)} > 2"
    return None


@rule(
    "PA-6",
    family="parameter",
    confidence="M",
    scope="H13+ (A14/M1 and newer); limit measured on M4/M6 (macOS 27)",
    when=lambda t: t.chip.tier >= 13,
    apple_message="Invalid Pool kernel width (<k>), must be <range>",
    references=[M4_LIMITS, M4_M6_ARCH, m6("plan_iso_cpune.tsv", "(row max_pool_k15: CPU only)")],
    fix="Stack smaller max pools (two 5x5 stride-1 pools equal one 9x9), or use windows <= 8.",
    ops=("max_pool",),
    fix_pass="max_pool_cascade",
    fix_exact=True,
    example=pool("max_pool", 9),
    quiet=pool("max_pool", 8),
)
def max_pool_window_too_large(op: Op, ctx: Context):
    """A max pool window wider than 8 (9x9 fails; 9x1 passes, 1x9 fails).

    Measured boundary on M4: 8x8 eligible, 9x9 CPU-only; avg_pool up to 14x14 is fine."""
    k = kernel(op)
    if k and k[-1] > 8:
        return f"max pool window {'x'.join(map(str, k))}: width {k[-1]} > 8", f"Invalid Pool kernel width ({k[-1]})"
    return None


@rule(
    "PA-9",
    family="parameter",
    confidence="A",
    blocks=(),
    references=[
        ne_rules("('Convolution stride optimization')"),
        guide("appendices/a-op-device-matrix.md", "(HAL stride factor list [2, 3, 4, 8])"),
    ],
    fix="Use strides that factor into 2s and 3s (or split the stride across layers).",
    ops=("conv",),
    example=conv(5, 5, stride=5),
    quiet=conv(5, 5, stride=4),
)
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


def pad(value: float) -> str:
    return f"""
        func main<ios17>(tensor<fp16, [1, 8, 32, 32]> x) {{
            tensor<fp16, [1, 8, 34, 34]> y = pad(x = x, pad = [0, 0, 0, 0, 1, 1, 1, 1], mode = "constant",
                constant_val = {value});
        }} -> (y);"""


@rule(
    "PA-12",
    family="parameter",
    confidence="R",
    apple_message="Constnt Pad fill mode with non-zero values is not supported on ANE",
    references=[m6("notes/coreml_dispatch.md", "(§2.1: Espresso's ANE reject strings, M4)")],
    fix="Pad with zeros and add the offset afterwards, or fold the constant into the next op.",
    fixes={
        "coreai": "A -inf pad before a max pool (how coreai-torch lowers a padded MaxPool2d) is exact as a replicate "
        "pad: `anedoctor fix` rewrites it (pass max_pool_pad_to_replicate, Core AI only, exact). Other fill "
        "values: pad with zeros and add the offset afterwards, or fold the constant into the next op."
    },
    ops=("pad",),
    example=pad(1.0),
    quiet=pad(0.0),
)
def nonzero_constant_pad(op: Op, ctx: Context):
    """A constant pad with a non-zero fill value.

    Espresso (Core ML's runtime) carries the reject string 'Constnt Pad fill mode with non-zero
    values is not supported on ANE': the ANE's padding fills zeros only, so a pad with another
    constant runs on the CPU or GPU."""
    if str(op.param("mode", "constant")) == "constant":
        value = op.param("constant_val", 0.0)
        try:
            if float(value) != 0.0:
                return f"constant pad fills with {float(value)}, not 0"
        except (TypeError, ValueError):
            return None
    return None


def upsample(scale: int) -> str:
    return f"""
        func main<ios17>(tensor<fp16, [1, 8, 16, 16]> x) {{
            tensor<fp16, [1, 8, {16 * scale}, {16 * scale}]> y = upsample_nearest_neighbor(
                x = x, scale_factor_height = {scale}, scale_factor_width = {scale});
        }} -> (y);"""


@rule(
    "PA-15",
    family="parameter",
    confidence="C",
    scope="A12/A13 era (H11-H12)",
    when=lambda t: t.chip.tier <= 12,
    apple_message="only scaling factor of 2 is supported",
    references=[EARLY_LOG, m6("plan_ctx_cpune.tsv", "(contrast: nearest x3 and x1.5 on the ANE, M4)")],
    fix="Upsample by 2 repeatedly, or resize on the host.",
    ops=("upsample_nearest_neighbor", "upsample_bilinear"),
    example=upsample(3),
    quiet=upsample(2),
)
def upsample_factor_early(op: Op, ctx: Context):
    """Upsampling by a factor other than 2 on A12/A13-era ANEs.

    Kernel-validation logs of that era reject other factors ('only scaling factor of 2 is
    supported, getting (28, 28)'). On M4 factors 3 and 1.5 run on the ANE, so the rule is
    scoped to the early generations."""
    factors = [op.param("scale_factor_height", 2), op.param("scale_factor_width", 2)]
    if any(float(f) != 2.0 for f in factors if f is not None):
        return f"upsample factor {tuple(float(f) for f in factors)} is not 2"
    return None


CHANNEL_BROADCAST = """
    func main<ios17>(tensor<fp16, [1, 64, 32, 32]> x{arg}) {{{const}
        tensor<fp16, [1, 64, 32, 32]> y = mul(x = x, y = v);
    }} -> (y);"""


@rule(
    "PA-17",
    family="parameter",
    confidence="C",
    scope="A12/A13 era (H11-H12)",
    when=lambda t: t.chip.tier <= 12,
    apple_message="elementwise with channel broadcast supported only with constant vector or transplant input",
    references=[EARLY_LOG, m6("plan_ctx_cpune.tsv", "(contrast: row add_bc_ch on the ANE, M4)")],
    fix="Make the per-channel vector a constant, or broadcast it explicitly before the op.",
    ops=("add", "mul", "sub", "real_div"),
    example=CHANNEL_BROADCAST.format(arg=", tensor<fp16, [1, 64, 1, 1]> v", const=""),
    quiet=CHANNEL_BROADCAST.format(
        arg="", const=f"\n        tensor<fp16, [1, 64, 1, 1]> v = const()[val = tensor<fp16, [1, 64, 1, 1]>({WEIGHT})];"
    ),
)
def runtime_channel_broadcast_early(op: Op, ctx: Context):
    """An elementwise op broadcasting a runtime C x 1 x 1 tensor over C x H x W on A12/A13-era ANEs.

    Kernel-validation logs of that era: 'elementwise with channel broadcast supported only with
    constant vector or transplant input'. On M4 the same broadcast runs on the ANE."""
    xs = [v for v in op.runtime_inputs() if v.type.is_static and len(v.type.shape) >= 3]
    if (
        len(xs) == 2
        and {math.prod(xs[0].type.shape[-2:]), math.prod(xs[1].type.shape[-2:])} - {1}
        and any(math.prod(v.type.shape[-2:]) == 1 for v in xs)
    ):
        return "runtime channel-vector broadcast"
    return None


def matmul(k: int) -> str:
    return f"""
        func main<ios17>(tensor<fp16, [1, {k}]> x) {{
            tensor<fp16, [{k}, 8]> w = const()[val = tensor<fp16, [{k}, 8]>({WEIGHT})];
            tensor<fp16, [1, 8]> y = matmul(x = x, y = w);
        }} -> (y);"""


@rule(
    "PA-22",
    family="parameter",
    confidence="M",
    references=[M4_LIMITS, M4_M6_ARCH],
    fix="Split the contraction into chunks of <= 32768 and add the partial products.",
    ops=("matmul", "linear"),
    fix_pass="split_long_contraction",
    fix_exact=True,
    example=matmul(40000),
    quiet=matmul(32768),
)
def matmul_contraction_too_long(op: Op, ctx: Context):
    """A matmul/linear whose contraction (inner) dimension exceeds 32768.

    Measured on M4 and M6 with MLComputePlan: a contraction of 32768 is ANE-eligible, 40000,
    49152 and 65536 are CPU-only."""
    x = op.input("x")
    if x is None or not x.type.is_static or not x.type.shape:
        return None
    k = x.type.shape[-2] if bool(op.param("transpose_x", False)) and x.type.rank > 1 else x.type.shape[-1]
    return f"contraction length {k} > 32768" if k > 32768 else None


def batched_matmul(shape: str) -> str:
    return f"""
        func main<ios17>(tensor<fp16, [{shape}]> a, tensor<fp16, [{shape}]> b) {{
            tensor<fp16, [{shape}]> y = matmul(x = a, y = b);
        }} -> (y);"""


@rule(
    "PA-23",
    family="parameter",
    confidence="R",
    apple_message="depth > 1 is not supported for MatMult",
    references=[
        guide("part-1-machine/04-capability-surface.md", "(compile-legal table)"),
        guide("part-5-practice/17-model-design-rules.md", "(validator table, M1 direct compile)"),
    ],
    fix="Fold the extra batch dimension into the batch axis (reshape to rank 4) before the matmul; `anedoctor fix` "
    "runs such a linear as a 1x1 conv over the (B, C, 1, S) layout.",
    ops=("matmul", "linear"),
    fix_pass="linear_to_conv",
    fix_exact=True,
    example=batched_matmul("1, 2, 4, 8, 8"),
    quiet=batched_matmul("2, 4, 8, 8"),
)
def rank5_matmul(op: Op, ctx: Context):
    """A batched matmul or linear with a rank-5 operand ('depth > 1').

    The ANE's matmul has no depth axis: its validator rejects it ('depth > 1 is not supported
    for MatMult', 'ANE cannot support Linear with input rank >= 5'), measured by compiling
    directly on M1."""
    for v in op.runtime_inputs():
        if (
            v.type.rank is not None
            and v.type.rank >= 5
            and v.type.is_static
            and math.prod(v.type.shape[:-4] or (1,)) * v.type.shape[-4] > 1
        ):
            return f"{v.name} is rank {v.type.rank} with depth > 1"
    return None


def space_to_batch(shape: str, out: str, block: str) -> str:
    return f"""
        func main<ios17>(tensor<fp16, [{shape}]> x) {{
            tensor<fp16, [{out}]> y = space_to_batch(x = x, block_shape = [{block}],
                paddings = [{block.replace("2", "[0, 0]")}]);
        }} -> (y);"""


@rule(
    "PA-25",
    family="parameter",
    confidence="R",
    apple_message="3d space_to_batch is not supported on ANE",
    references=[m6("notes/coreml_dispatch.md", "(§2.1: Espresso's ANE reject strings, M4)")],
    fix="Use the 2-D (rank-4) form.",
    ops=("space_to_batch", "batch_to_space"),
    example=space_to_batch("1, 8, 8, 16, 16", "8, 8, 4, 8, 8", "2, 2, 2"),
    quiet=space_to_batch("1, 8, 16, 16", "4, 8, 8, 8", "2, 2"),
)
def space_to_batch_3d(op: Op, ctx: Context):
    """A 3-D (rank-5) space_to_batch / batch_to_space.

    Espresso carries the reject string '3d space_to_batch is not supported on ANE': only the
    2-D (rank-4) form has an ANE kernel."""
    x = op.input("x")
    if x is not None and (x.type.rank or 0) >= 5:
        return "3-D space_to_batch"
    return None


WRITE_BACK = """
        write_state(data = u, input = cache);
        tensor<fp16, [1, 8, 16]> y = read_state(input = cache);"""
STATE_UPDATE = """
    func main<ios18>(state<tensor<fp16, [1, 8, 16]>> cache, tensor<fp16, [1, 1, 16]> x) {
        tensor<fp16, [1, 8, 16]> c = read_state(input = cache);
        tensor<fp16, [1, 8, 16]> u = slice_update(x = c, update = x, begin = [0, 2, 0], end = [1, 3, 16]);%s
    } -> (%s);"""


@rule(
    "PA-27",
    family="state",
    confidence="C",
    apple_message="Cannot support standalone slice_update",
    references=[
        file("Anemll/anemll-profile", "README.md", "(reason 'Cannot support standalone slice_update')"),
        file("argus1/Anemll", "tests/dev/MB_GRAPH_ISSUES.md"),
    ],
    fix="Keep the chain read_state -> slice_update -> write_state -> read_state; don't use the slice_update result "
    "elsewhere.",
    ops=("slice_update",),
    example=STATE_UPDATE % ("", "u"),
    quiet=STATE_UPDATE % (WRITE_BACK, "y"),
)
def standalone_slice_update(op: Op, ctx: Context):
    """A slice_update whose result feeds anything other than write_state.

    The ANE runs slice_update only as an in-place state update. Compiler logs of stateful
    models report 'Cannot support standalone slice_update' when its result is used any other
    way, and the op falls back to BNNS (CPU)."""
    users = [u.type for v in op.outputs for u in ctx.consumers.get(v.name, [])]
    if not users or any(u not in ("write_state", "coreml_update_state") for u in users):
        return "slice_update result is used outside a read_state -> slice_update -> write_state chain"
    return None


def compressed_linear(scale: str | None, lut_scale: bool = False) -> str:
    """A linear layer whose (8, 16) weight is LUT-palettized or int8 with a blockwise scale."""
    if lut_scale:
        weight = f"""
            tensor<uint8, [8, 16]> idx = const()[val = tensor<uint8, [8, 16]>({WEIGHT})];
            tensor<fp16, [1, 1, 16, 1]> lut = const()[val = tensor<fp16, [1, 1, 16, 1]>({WEIGHT})];
            tensor<fp16, [8, 16]> {"wl" if scale else "w"} = constexpr_lut_to_dense(indices = idx, lut = lut);"""
        if scale:
            weight += f"""
            tensor<fp16, [{scale}]> s = const()[val = tensor<fp16, [{scale}]>({WEIGHT})];
            tensor<fp16, [8, 16]> w = constexpr_blockwise_shift_scale(data = wl, scale = s);"""
    else:
        weight = f"""
            tensor<int8, [8, 16]> q = const()[val = tensor<int8, [8, 16]>({WEIGHT})];
            tensor<fp16, [{scale}]> s = const()[val = tensor<fp16, [{scale}]>({WEIGHT})];
            tensor<fp16, [8, 16]> w = constexpr_blockwise_shift_scale(data = q, scale = s);"""
    return f"""
        func main<ios18>(tensor<fp16, [1, 16]> x) {{{weight}
            tensor<fp16, [1, 8]> y = linear(x = x, weight = w);
        }} -> (y);"""


@rule(
    "PA-28",
    family="compression",
    confidence="A",
    references=[
        file(
            COREMLTOOLS,
            "coremltools/converters/mil/mil/passes/defs/optimize_quantization.py",
            "(reorder_lut_per_channel_scale: 'for ANE, it requires the scale to be after the linear/matmul/conv')",
        )
    ],
    fix="Run coremltools' reorder_lut_per_channel_scale pass (default in ct.optimize), which moves the scale after "
    "the conv/linear.",
    ops=("conv", "linear", "matmul"),
    fix_pass="common::reorder_lut_per_channel_scale",
    fix_exact=True,
    example=compressed_linear("8, 1", lut_scale=True),
    quiet=compressed_linear(None, lut_scale=True),
)
def lut_scale_before_linear(op: Op, ctx: Context):
    """A conv/linear/matmul whose weight is a LUT-palettized tensor scaled per channel before it.

    For the ANE 'it requires the scale to be after the linear/matmul/conv'."""
    w = op.input("weight") or op.input("y")
    if (
        producer_type(w) == "constexpr_blockwise_shift_scale"
        and producer_type(w.producer.input("data")) == "constexpr_lut_to_dense"
    ):
        return "LUT weight is scaled per channel before the op"
    return None


@rule(
    "PA-29",
    family="compression",
    confidence="M",
    apple_message="ANE only support per-cout/per-tensor quantization",
    references=[
        file(
            "cadamcat/llms-on-apple-neural-engine",
            "findings/coreml-grouped-scale-cpu/README.md",
            "(K-grouped int4 conv CPU only, M5 Pro macOS 27)",
        ),
        docs("opt-quantization-perf", "(per-block for the GPU, per-channel for the Neural Engine)"),
    ],
    fix="Quantize with per-channel (granularity='per_channel') or per-tensor scales for the ANE; per-block int4 is "
    "meant for the GPU.",
    ops=("conv", "linear", "matmul"),
    example=compressed_linear("8, 4"),
    quiet=compressed_linear("8, 1"),
)
def blockwise_scale_along_input(op: Op, ctx: Context):
    """A conv/linear weight quantized with scales that vary along the input-channel axis (per-block).

    The ANE dequantizes weights with one scale per output channel (or per tensor). A scale that
    changes along the reduction axis was rejected with 'ANE only support per-cout/per-tensor
    quantization' on M5 Pro, and Apple's docs recommend per-block scales for the GPU only."""
    w = op.input("weight") or op.input("y")
    if producer_type(w) != "constexpr_blockwise_shift_scale":
        return None
    scale = w.producer.input("scale")
    if (
        scale is not None
        and scale.type.is_static
        and scale.type.rank
        and scale.type.rank > 1
        and scale.type.shape[1] > 1
    ):
        return f"weight scale {scale.type} varies along the input-channel axis (per-block quantization)"
    return None


def softmax(axis: int) -> str:
    return f"""
        func main<ios17>(tensor<fp16, [1, 16, 256, 512]> x) {{
            tensor<fp16, [1, 16, 256, 512]> y = softmax(x = x, axis = {axis});
        }} -> (y);"""


@rule(
    "PA-31",
    family="parameter",
    confidence="A",
    blocks=(),
    references=[ne_rules("('Softmax placement')")],
    fix="Lay the tensor out so softmax runs over the channel axis (B, C, 1, S).",
    ops=("softmax",),
    example=softmax(-1),
    quiet=softmax(1),
)
def spatial_softmax(op: Op, ctx: Context):
    """A softmax over the last (width) axis of a large rank-4 tensor: slower on the ANE.

    Apple's authoring rules: a softmax on a spatial axis of a large input limits how the
    compiler splits the work spatially; over the channel axis it tiles freely. This affects
    speed, not placement, so the rule is advisory."""
    x = op.input("x")
    if (
        x is not None
        and x.type.rank == 4
        and x.type.is_static
        and int(op.param("axis", -1)) in (-1, 3)
        and x.type.numel > 1 << 20
    ):
        return "softmax over the width axis of a large tensor limits the compiler's spatial tiling"
    return None
