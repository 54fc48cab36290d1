"""Shape rules (SH-*, DY-0): rank, per-axis length and unknown shapes."""

from __future__ import annotations

from ..cost.latency import work_unit_fill
from ..ir import Op
from .base import Context, rule, runtime_tensors
from .refs import SMPANARO, file, guide, m6, ne_rules, notes


def relu(shape: str) -> str:
    return f"""
        func main<ios17>(tensor<fp16, [{shape}]> x) {{
            tensor<fp16, [{shape}]> y = relu(x = x);
        }} -> (y);"""


def axis_limits(tier: int) -> dict[str, int]:
    """Apple's validator vector N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384]; H16+ raise H/W to 65536."""
    hw = 65536 if tier >= 16 else 16384
    return {"N": 65536, "D": 16384, "C": 65536, "H": hw, "W": hw}


def ndchw(shape: tuple[int, ...]) -> dict[str, int]:
    """Map a shape onto the ANE's N, D, C, H, W axes from the right (rank <= 5)."""
    names = "NDCHW"[-len(shape) :] if len(shape) == 5 else "NCHW"[-len(shape) :]
    return dict(zip(names, shape))


@rule(
    "SH-1",
    family="shape",
    confidence="M",
    scope="all chips; W/H <= 16384 up to H15 (M1-M3, A14-A16), 65536 on H16+ (M4 measured); C, N <= 65536",
    apple_message="Tensor dimensions <N..W> are not within supported range, N[1-65536] D[1-16384] C[1-65536] "
    "H[1-16384] W[1-16384]",
    references=[
        m6("plan_iso_cpune.tsv", "(rows relu_w65536/65537, relu_h*, relu_c*: 65536 eligible, 65537 CPU only, M4)"),
        m6("arch_h16g_h18g.tsv", "(the same limits on M6)"),
        file(
            "FluidInference/mobius",
            "models/stt/parakeet-tdt-v2-0.6b/coreml/context/mel_encoder_ane_behavior.md",
            "(Apple validator limit vector, iPhone 13 / A15)",
        ),
        guide("appendices/a-op-device-matrix.md", "('Per-chip numeric limits': 16384 on H13-H15, 65536 from H16)"),
        file("Anemll/Anemll", "anemll/models/llama_model.py", "(16384 dimension limit comment)"),
    ],
    fix="Reshape so no axis exceeds the limit (e.g. fold a long width into height x width), or split the tensor; for "
    "lm heads select the last token first and split the vocabulary below 16384.",
    fix_pass="split_long_linear",
    fix_exact=True,
    example=relu("1, 1, 1, 65537"),
    quiet=relu("1, 1, 1, 65536"),
)
def axis_too_long(op: Op, ctx: Context):
    """A runtime tensor axis longer than the ANE's per-axis limit for this generation.

    Apple's validator prints its limit vector 'N[1-65536] D[1-16384] C[1-65536] H[1-16384]
    W[1-16384]' when a tensor is too long; H16+ (A17 Pro, M4) raise H and W to 65536 (65536
    eligible, 65537 CPU-only on M4). A too-long axis sends the op, and often its partition, to
    the CPU or GPU."""
    limits = axis_limits(ctx.tier)
    for v in runtime_tensors(op):
        if not v.type.is_static or not v.type.shape or len(v.type.shape) > 5 or max(v.type.shape) <= 16384:
            continue
        axes = ndchw(v.type.shape)
        for axis, size in axes.items():
            if size > limits[axis]:
                dims = "".join(f"{a}{axes.get(a, 1)}" for a in "NDCHW")
                bounds = " ".join(f"{a}[1-{limits[a]}]" for a in "NDCHW")
                return (
                    f"{v.name} {v.type}: axis {axis} = {size} > {limits[axis]} on {ctx.target.chip.ane_arch}",
                    f"Tensor dimensions {dims} are not within supported range, {bounds}",
                )
    return None


@rule(
    "SH-4",
    family="shape",
    confidence="A",
    apple_message="tensor rank 6 exceeds the ANE maximum of 5",
    references=[
        ne_rules("(top: 'Rank-6+ intermediates are rejected')"),
        guide("part-1-machine/04-capability-surface.md", "('tensor rank 6 exceeds the ANE maximum of 5')"),
    ],
    fix="Reshape away singleton dimensions so every tensor is rank <= 5 (e.g. window partitions).",
    fix_pass="collapse_high_rank",
    fix_exact=True,
    example=relu("1, 2, 2, 2, 2, 2"),
    quiet=relu("2, 2, 2, 2, 2"),
)
def rank_above_five(op: Op, ctx: Context):
    """A runtime tensor of rank 6 or more.

    The ANE's tensors have at most five axes (N, D, C, H, W); Apple's authoring rules say rank-6
    intermediates are rejected, as is common in window-attention partitions."""
    for v in runtime_tensors(op):
        if v.type.rank is not None and v.type.rank > 5:
            return f"{v.name} has rank {v.type.rank} > 5", f"tensor rank {v.type.rank} exceeds the ANE maximum of 5"
    return None


@rule(
    "SH-6",
    family="shape",
    confidence="R",
    references=[guide("part-1-machine/04-capability-surface.md", "(compile-legal table: zero-size dims rejected)")],
    fix="Remove the empty tensor from the graph.",
    example=relu("1, 0, 8"),
    quiet=relu("1, 1, 8"),
)
def zero_size_dim(op: Op, ctx: Context):
    """A runtime tensor with a zero-size dimension.

    Every ANE axis has a lower bound of 1 (the validator's N[1-...] ... W[1-...] ranges); the
    on-device validator rejects an empty tensor, measured by compiling directly on M1."""
    for v in runtime_tensors(op):
        if v.type.shape and 0 in v.type.shape:
            return f"{v.name} has a zero-size dimension"
    return None


@rule(
    "SH-10",
    family="shape",
    confidence="A",
    blocks=(),
    references=[
        ne_rules("('Tensor memory alignment')"),
        "https://machinelearning.apple.com/research/neural-engine-transformers (Principle 1)",
        "https://github.com/Desert-Ant-Labs/desert-ant-core/pull/187 (a 6-class output padded to 64 bytes)",
    ],
    fix="Keep the last axis of model inputs/outputs >= 32 fp16 elements (64 bytes), ideally a power of 2; avoid a "
    "singleton last axis.",
    example=relu("1, 10"),
    quiet=relu("1, 32"),
)
def narrow_last_axis_io(op: Op, ctx: Context):
    """A model input/output whose last axis is narrower than 64 bytes: padded on the ANE.

    ANE buffers align the last axis to 64 bytes, so a singleton last axis costs 32x memory at fp16."""
    for v in op.outputs:
        if v in ctx.graph.outputs and v.type.is_static and v.type.shape and v.type.shape[-1] * 2 < 64:
            return f"model output {v.name} has last axis {v.type.shape[-1]} (< 32 fp16 elements): padded to 64 bytes"
    return None


def pixel_conv(batch: int, pixels: int) -> str:
    """A 1x1 conv (64 -> 64 channels) over ``batch`` images of 1 x ``pixels``."""
    return f"""
        func main<ios17>(tensor<fp16, [{batch}, 64, 1, {pixels}]> x) {{
            tensor<fp16, [64, 64, 1, 1]> w = const()[val = tensor<fp16, [64, 64, 1, 1]>(0x0p+0)];
            tensor<fp16, [{batch}, 64, 1, {pixels}]> y = conv(x = x, weight = w, strides = [1, 1], pad_type = "valid",
                dilations = [1, 1], groups = 1);
        }} -> (y);"""


@rule(
    "SH-11",
    family="shape",
    confidence="I",
    blocks=(),
    ops=("conv",),
    references=[
        "https://machinelearning.apple.com/research/neural-engine-transformers (Principle 1: the (B, C, 1, S) layout, "
        "the sequence on the last axis)",
        m6("notes/compute_array.md", "(output pixels fill the work units, 128-256 per NE)"),
        file(SMPANARO, "ane_gpt2.py", "(lm_head over x.permute(3, 1, 0, 2), 512 positions as the batch)", "35ac67f"),
        notes("(March 25, 2023: that GPT-2 ran 534 ms under CPUAndNeuralEngine on an M1 Max)"),
    ],
    fix="Keep the positions on the last axis: run the conv on (1, C, 1, S) rather than (S, C, 1, 1) (the (B, C, 1, S) "
    "layout throughout, or a transpose before and after); for an lm head, select the tokens you need first.",
    fix_pass="batch_to_width",
    fix_exact=True,
    example=pixel_conv(64, 1),
    quiet=pixel_conv(1, 64),
)
def batch_of_tiny_images(op: Op, ctx: Context):
    """A conv over a batch of images of a few pixels each: the ANE fills its work units from one image at a time.

    Output pixels fill the MAC array's work units and the images of a batch follow one another (the latency model's
    reading, inferred), so a 1x1 conv over S images of one pixel keeps about 1/64 of the array busy where the same
    conv over one image of S pixels fills it. GPT-2 with its lm_head run so over 512 positions took 534 ms under
    CPUAndNeuralEngine on an M1 Max; `anedoctor estimate` puts 265 of its 286 ms in that conv, and ~25 ms for the
    model with the positions on the last axis."""
    out = op.outputs[0].type.shape if op.outputs and op.outputs[0].type.is_static else ()
    if len(out) != 4 or out[0] < 2:
        return None
    pixels = out[2] * out[3]
    each, folded = work_unit_fill(pixels), work_unit_fill(out[0] * pixels)
    if folded < 4 * each:
        return None
    return (
        f"conv over {out[0]} images of {out[2]}x{out[3]}: each fills {each:.0%} of the ANE's work units, one image of "
        f"{out[0] * pixels} pixels would fill {folded:.0%} (predicted)"
    )


@rule(
    "DY-0",
    family="dynamic",
    confidence="R",
    apple_message=("Impossible to retrieve non-constant tensor shape at index #0"),
    references=[ne_rules("('Fully static shapes': export one function per static shape)")],
    fix="Give the model fixed input shapes (one model or function per shape), or EnumeratedShapes.",
    example="""
        func main<ios17>(tensor<fp16, [1, 64]> x, tensor<int32, [2]> shape) {
            tensor<fp16, [?, ?]> y = reshape(x = x, shape = shape);
        } -> (y);""",
    quiet="""
        func main<ios17>(tensor<fp16, [1, 64]> x) {
            tensor<fp16, [8, 8]> y = reshape(x = x, shape = [8, 8]);
        } -> (y);""",
)
def dynamic_tensor_shape(op: Op, ctx: Context):
    """An op whose input or output shape is not known when the model is compiled.

    The ANE compiler lays every tensor out at compile time; an op whose shape depends on runtime
    data cannot be compiled for it (Apple's MLComputePlan message for this case: 'Impossible to
    retrieve non-constant tensor shape at index #0'). Only for models whose inputs are fixed:
    with range inputs DY-1 decides, and enumerated inputs are compiled per shape (DY-2)."""
    if ctx.flexible:
        return None
    for v in runtime_tensors(op):
        if not v.type.is_static:
            return f"{v.name} has a shape that is not static ({v.type})"
    return None
