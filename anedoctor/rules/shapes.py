"""Shape rules (SH-*, DY-0): rank, per-axis length and unknown shapes."""
from __future__ import annotations

from ..ir import Op
from .base import Context, rule, runtime_tensors


def axis_limits(tier: int) -> dict[str, int]:
    """Apple's validator vector N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384]; H16+ raise H/W to 65536."""
    hw = 65536 if tier >= 16 else 16384
    return {"N": 65536, "D": 16384, "C": 65536, "H": hw, "W": hw}


def ndchw(shape: tuple[int, ...]) -> dict[str, int]:
    """Map a shape onto the ANE's N, D, C, H, W axes from the right (rank <= 5)."""
    names = "NDCHW"[-len(shape):] if len(shape) == 5 else "NCHW"[-len(shape):]
    return dict(zip(names, shape))


@rule("SH-1", family="shape", confidence="M",
      scope="W/H <= 16384 on H13-H15 (M1-M3, A14-A16), 65536 on H16+ (M4 measured); C, N <= 65536",
      apple_message="Tensor dimensions <N..W> are not within supported range, N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384]",
      source="751K GT-1 relu_{w,h,c}6553{6,7} (M4/M6); FluidInference/mobius parakeet notes (A15 validator message); ane-guide App. A; ane-rules.md SH-1, SH-2, SH-3, SH-14",
      fix="Reshape so no axis exceeds the limit (e.g. fold a long width into height x width), or split the tensor; for lm heads select the last token first and split the vocabulary below 16384.")
def axis_too_long(op: Op, ctx: Context):
    """A runtime tensor axis longer than the ANE's per-axis limit for this generation."""
    limits = axis_limits(ctx.tier)
    for v in runtime_tensors(op):
        if not v.type.is_static or not v.type.shape or len(v.type.shape) > 5 or max(v.type.shape) <= 16384:
            continue
        axes = ndchw(v.type.shape)
        for axis, size in axes.items():
            if size > limits[axis]:
                dims = "".join(f"{a}{axes.get(a, 1)}" for a in "NDCHW")
                bounds = " ".join(f"{a}[1-{limits[a]}]" for a in "NDCHW")
                return (f"{v.name} {v.type}: axis {axis} = {size} > {limits[axis]} on {ctx.target.chip.ane_arch}",
                        f"Tensor dimensions {dims} are not within supported range, {bounds}")
    return None


@rule("SH-4", family="shape", confidence="A", apple_message="tensor rank 6 exceeds the ANE maximum of 5",
      source="apple/coreai-models neural_engine_rules.md ('Rank-6+ intermediates are rejected'); ane-guide ch. 4; ane-rules.md SH-4",
      fix="Reshape away singleton dimensions so every tensor is rank <= 5 (e.g. window partitions).")
def rank_above_five(op: Op, ctx: Context):
    """A runtime tensor of rank 6 or more."""
    for v in runtime_tensors(op):
        if v.type.rank is not None and v.type.rank > 5:
            return f"{v.name} has rank {v.type.rank} > 5", f"tensor rank {v.type.rank} exceeds the ANE maximum of 5"
    return None


@rule("SH-6", family="shape", confidence="R", source="sbryngelson/ane-guide ch. 4 compile-legal table; ane-rules.md SH-6",
      fix="Remove the empty tensor from the graph.")
def zero_size_dim(op: Op, ctx: Context):
    """A runtime tensor with a zero-size dimension."""
    for v in runtime_tensors(op):
        if v.type.shape and 0 in v.type.shape:
            return f"{v.name} has a zero-size dimension"
    return None


@rule("SH-10", family="shape", confidence="A", blocks=(),
      source="apple/coreai-models neural_engine_rules.md ('Tensor memory alignment'); Apple research 'Deploying Transformers on the Apple Neural Engine' (Principle 1); ane-rules.md SH-10, SH-13",
      fix="Keep the last axis of model inputs/outputs >= 32 fp16 elements (64 bytes), ideally a power of 2; avoid a singleton last axis.")
def narrow_last_axis_io(op: Op, ctx: Context):
    """A model input/output whose last axis is narrower than 64 bytes: padded on the ANE.

    ANE buffers align the last axis to 64 bytes, so a singleton last axis costs 32x memory at fp16."""
    for v in op.outputs:
        if v in ctx.graph.outputs and v.type.is_static and v.type.shape and v.type.shape[-1] * 2 < 64:
            return f"model output {v.name} has last axis {v.type.shape[-1]} (< 32 fp16 elements): padded to 64 bytes"
    return None


@rule("DY-0", family="dynamic", confidence="R", apple_message="Impossible to retrieve non-constant tensor shape at index #0",
      source="Apple MLComputePlan message catalogue (apple-messages.md §2.2, state 300); apple/coreai-models neural_engine_rules.md ('Fully static shapes'); ane-rules.md DY-7",
      fix="Give the model fixed input shapes (one model or function per shape), or EnumeratedShapes.")
def dynamic_tensor_shape(op: Op, ctx: Context):
    """An op whose input or output shape is not known when the model is compiled.

    Only for models whose inputs are fixed: with range inputs DY-1 decides, and enumerated
    inputs are compiled per shape (DY-2)."""
    if ctx.flexible:
        return None
    for v in runtime_tensors(op):
        if not v.type.is_static:
            return f"{v.name} has a shape that is not static ({v.type})"
    return None
