"""Op-type rules (OP-*, GPU-1): ops with no ANE (or GPU) implementation, and NeuralNetwork layer forms."""
from __future__ import annotations

from ..ir import Op
from .base import Context, rule

NEVER_ON_ANE = {
    # op type: (rule id, evidence)
    "lstm": "OP-1", "gru": "OP-1", "rnn": "OP-1",
    "scatter": "OP-2", "scatter_along_axis": "OP-2", "scatter_nd": "OP-2",
    "band_part": "OP-3",
    "one_hot": "OP-4", "non_zero": "OP-4", "range_1d": "OP-4", "sliding_windows": "OP-4", "random_normal": "OP-4",
    "reduce_prod": "OP-4", "mod": "OP-4", "argsort": "OP-4",
    "asin": "OP-5", "acos": "OP-5", "tan": "OP-5", "sinh": "OP-5", "cosh": "OP-5", "atanh": "OP-5",
    "cumsum": "OP-6", "crop_resize": "OP-7", "cond": "OP-8", "while_loop": "OP-8",
    "non_maximum_suppression": "OP-13", "custom": "OP-12",
    "reverse_sequence": "OP-18", "random_bernoulli": "OP-18", "random_categorical": "OP-18", "asinh": "OP-18",
    "acosh": "OP-18", "make_list": "OP-18", "list_read": "OP-18", "list_write": "OP-18", "list_gather": "OP-18",
    "list_scatter": "OP-18", "list_length": "OP-18", "constexpr_cast": "OP-18",
}


def never_rule(rule_id: str, title: str, why: str, **meta):
    """Register one 'this op type never runs on the ANE' rule covering the types that map to it."""
    members = sorted(t for t, r in NEVER_ON_ANE.items() if r == rule_id)

    def check(op: Op, ctx: Context):
        return f"{op.type} has no ANE implementation", f'Unsupported MIL operation "{op.type}"'

    check.__name__ = meta.pop("name")
    check.__doc__ = f"{title} ({', '.join(members)}): no ANE implementation.\n\n{why}"
    return rule(rule_id, family="op", apple_message='Unsupported MIL operation "<op>"', ops=tuple(members), **meta)(check)


never_rule("OP-1", "Recurrent cells", "Recurrent cells run on the CPU (BNNS) only; an Apple engineer: 'RNN or LSTM ops are not supported on the neural engine'.",
           name="recurrent-cell", confidence="A",
           source="apple/coremltools#1780 (Apple engineer); 751K plan_iso_cpune.tsv (M4); ane-rules.md OP-1",
           fix="Replace the recurrence with convolutions or attention, or run the RNN part as a separate CPU model.")
never_rule("OP-2", "Scatter ops", "coremltools' own source: 'scatter op falls off ANE, while gather op resides'. CPU-only (GPU-eligible) on M4.",
           name="scatter", confidence="A",
           source="coremltools converters/mil/frontend/torch/ops.py (comments near scatter/index_put); 751K GT-1 (M4); ane-rules.md OP-2, ST-3",
           fix="Replace index updates with masks: torch.where(mask, new, old), or concat-then-slice for KV caches.")
never_rule("OP-3", "Band-part masks", "band_part (triangular masks) was CPU-only on M4 and had 'no path' on M1-M5 in the direct-path guide.",
           name="band-part", confidence="M", source="751K GT-1 (M4 macOS 27); sbryngelson/ane-guide App. A; smpanaro NOTES.md 2023-04-04; ane-rules.md OP-3",
           fix="Pass a precomputed fp16 mask as a constant or input instead of building it with band_part (tril/triu).")
never_rule("OP-4", "Index, random and integer-math ops", "Measured CPU-only on M4 with MLComputePlan: index/shape generators, random normal, products, modulo, argsort.",
           name="cpu-only-op", confidence="M", source="751K plan_iso_cpune.tsv (M4, macOS 27, coremltools 9); ane-rules.md OP-4",
           fix="Precompute the result (one_hot, range, masks) as a constant or model input, or move the op out of the model.")
never_rule("OP-5", "Inverse and hyperbolic trigonometry", "Inverse/hyperbolic trigonometry is CPU-only on M4 (sin, cos and atan are eligible).",
           name="trig", confidence="M", source="751K GT-1 (M4); ane-guide App. A 'Trigonometric'; ane-rules.md OP-5",
           fix="Rewrite with eligible ops (e.g. tanh, exp, atan) or a polynomial approximation.")
never_rule("OP-6", "Cumulative sum", "cumsum is CPU-only through Core ML on M4.",
           name="cumsum", confidence="M", source="751K GT-1 (M4 macOS 27); ane-rules.md OP-6",
           fix="Express the running sum as a matmul with a constant triangular matrix (ANE-eligible).")
never_rule("OP-7", "Crop-and-resize", "crop_resize is CPU-only on M4, not even GPU.",
           name="crop-resize", confidence="M", blocks=("ane", "gpu"), source="751K GT-1/GT-1b (M4 macOS 27); ane-rules.md OP-7",
           fix="Crop on the host (Vision / Core Image) or with static slices and resize.")
never_rule("OP-8", "Control flow", "Control flow has no ANE code generation; 'using cond forces you off the Neural Engine'.",
           name="control-flow", confidence="C", source="smpanaro/more-ane-transformers NOTES.md 2023-04-16; ane-guide App. A; ane-rules.md OP-8",
           fix="Flatten the control flow on the host: export one model per branch, or compute both branches and select.")
never_rule("OP-12", "Custom layers", "Custom layers only have CPU/GPU implementations.",
           name="custom-layer", confidence="A", source="hollance/neural-engine docs/unsupported-layers.md ('Custom layers'); ane-rules.md OP-12",
           fix="Replace the custom layer with built-in layers.")
never_rule("OP-13", "Non-maximum suppression", "non_maximum_suppression offloads to the CPU or GPU (ANE kernel limited to 2048 boxes).",
           name="nms", confidence="R", source="751K notes/coreml_dispatch.md §2.1 (Espresso strings); ane-guide App. A; ane-rules.md OP-13",
           fix="Run NMS after the model (Vision, or a separate pipeline stage).")
never_rule("OP-18", "Ops rejected by the ANE compiler on every generation", "Rejected on every generation by the direct-path compiler matrix (not measured with Core ML).",
           name="direct-path-rejected", confidence="R", source="sbryngelson/ane-guide appendices/a-op-device-matrix.md (GT-D); ane-rules.md §3 GT-D",
           fix="Move the op out of the model or rewrite it with eligible ops.")


@rule("GPU-1", family="op", confidence="M", blocks=("gpu",), ops=("affine", "non_zero", "sliding_windows"),
      source="751K plan_iso_all.tsv (M4, macOS 27, compute units ALL): supported set lacks the GPU; ane-rules.md GT-A",
      fix="Nothing to do for the ANE; under cpu_and_gpu these ops run on the CPU.")
def no_gpu_kernel(op: Op, ctx: Context):
    """An op Core ML has no GPU kernel for (affine, non_zero, sliding_windows).

    Measured with compute units ALL on M4: the supported set was {CPU, ANE} or {CPU}."""
    return f"{op.type} has no Core ML GPU implementation"


@rule("OP-9", family="op", confidence="M",
      source="751K GT-1 slice_dyn (M4 macOS 27); smpanaro NOTES.md 2023-10-25; ane-rules.md OP-9",
      fix="Use static slices; for KV caches use read_state -> slice_update -> write_state, or a precomputed mask.", ops=('slice_by_index', 'slice_by_size', 'dynamic_slice'))
def dynamic_slice(op: Op, ctx: Context):
    """A slice whose begin/end/size is a runtime value, not a constant.

    Dynamic-offset slices (narrow, index_select with a runtime index) were CPU-only on M4 and M1."""
    for arg in ("begin", "end", "size"):
        v = op.input(arg)
        if v is not None and not v.is_const:
            return f"slice {arg} is the runtime value {v.name}"
    return None


@rule("OP-10", family="op", confidence="M", apple_message="Unsupported tensor data type: int32",
      source="751K GT-1 gather_dyn, embedding (M4 macOS 27); pytorch/executorch PR #19252; ane-rules.md OP-10, OP-11, DT-11",
      fix="Do the embedding lookup outside the model and feed embeddings, or use uint16 indices (Anemll, iOS 18, C).", ops=('gather', 'gather_along_axis', 'gather_nd', 'embedding'))
def runtime_index_gather(op: Op, ctx: Context):
    """A gather / embedding lookup whose indices are a runtime integer tensor.

    With runtime int32 indices the gather and its whole index-prep chain (cast, greater_equal,
    add, select) were CPU-only on M4; constant-index gathers stayed eligible."""
    idx = op.input("indices")
    if idx is not None and not idx.is_const and idx.type.dtype not in ("uint16", "fp16"):
        return f"indices {idx.name} are a runtime {idx.type.dtype} tensor"
    return None


@rule("OP-14", family="op", confidence="R", scope="before H14 (A12-A14, M1)", when=lambda t: t.chip.tier < 14,
      source="sbryngelson/ane-guide App. A (top-k/argsort family-gated, from H14); 751K arch_h16g_h18g.tsv; ane-rules.md OP-14, CH-2",
      fix="Do top-k on the host after the model.", ops=('topk',))
def topk_early(op: Op, ctx: Context):
    """top-k before the H14 generation.

    The compiler's HAL gates top-k/argsort code generation to H14 and later."""
    return "top-k needs an H14+ ANE"


@rule("OP-15", family="neuralnetwork", confidence="C",
      source="hollance/neural-engine docs/unsupported-layers.md, docs/model-surgery.md ('Some of these are guesses'); ane-rules.md OP-15",
      fix="Replace with the Core ML 2 layers (Add, Multiply/Scale, Concat, LoadConstant).")
def nn_broadcastable_layer(op: Op, ctx: Context):
    """A NeuralNetwork 'broadcastable' or 'ND' layer (AddBroadcastable, ConcatND, LoadConstantND ...).

    Practitioners report these Core ML 3 layers do not run on the ANE where the Core ML 2
    equivalents do."""
    lt = op.layer_type
    if lt and (lt.endswith("Broadcastable") or lt.endswith("ND")) and lt not in ("embeddingND",):
        return f"NeuralNetwork layer {lt} is reported not to run on the ANE"
    return None


@rule("OP-16", family="neuralnetwork", confidence="C",
      source="apple/coremltools#1103; hollance docs/unsupported-layers.md; ane-rules.md OP-16",
      fix="Move the lookup out of the model or convert to an ML Program (constant-index gathers are eligible there).")
def nn_gather_layer(op: Op, ctx: Context):
    """A NeuralNetwork gather / gatherAlongAxis layer.

    Reported CPU-only in the iOS 14 era."""
    return f"NeuralNetwork {op.layer_type} layer" if op.layer_type in ("gather", "gatherAlongAxis", "gatherND") else None


@rule("OP-17", family="neuralnetwork", confidence="C",
      source="antgroup-skyward/ANETools issue #1 ('to_fallback'); ane-rules.md OP-17",
      fix="Make one operand a constant weight, or convert to an ML Program (matmul with two runtime inputs is eligible there).")
def nn_batched_matmul_two_inputs(op: Op, ctx: Context):
    """A NeuralNetwork batchedMatMul with two runtime inputs.

    The ANE compiler fell back to CPU for it in 2021 reports."""
    if op.layer_type == "batchedMatmul" and len(op.runtime_inputs()) >= 2:
        return "batchedMatMul with two runtime operands"
    return None


@rule("PA-20", family="neuralnetwork", confidence="C",
      apple_message="Inner product (is_lookup = True) requires nB to be bounded by 32768.",
      source="smpanaro/more-ane-transformers NOTES.md 2023-09-30 (M1 Max, kernel validation log); ane-rules.md PA-20",
      fix="Split the embedding table into chunks of at most 32768 rows.")
def embedding_table_too_large(op: Op, ctx: Context):
    """An embedding lookup (NN embedding / inner product with is_lookup) with more than 32768 rows."""
    if op.layer_type in ("embedding", "embeddingND"):
        w = op.input("x") if op.type == "gather" else None
        rows = w.type.shape[0] if w is not None and w.type.is_static and w.type.shape else 0
        if rows > 32768:
            return f"embedding table has {rows} rows > 32768"
    return None
