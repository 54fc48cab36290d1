"""The ANE knowledge base: one small, documented function per rule.

Each rule has an id (the row id in ``../shared/knowledge/ane-rules.md``), a docstring whose
first line says what it checks and whose rest says why, the source, a confidence code
(A Apple-authored, M measured with Core ML's own read-out, R reverse-engineered or private
path, C community anecdote), its chip/OS scope, and the fix to try. A rule returns None when
it does not fire, else a message (or ``(message, apple_message)``). ``blocks`` names the
devices the finding rules out; a rule that blocks nothing is an advisory note.
``level="graph"`` rules look at a whole graph and rule the ANE out for all its ops.
"""
from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Callable

from .chips import Target
from .ir import Graph, Model, Op, Value

CONFIDENCE = {"A": "Apple-authored", "M": "measured with MLComputePlan / Core ML read-outs",
              "R": "reverse-engineered or private-path", "C": "community anecdote"}


@dataclass
class Context:
    """What a rule may look at besides the op."""

    target: Target
    model: Model
    graph: Graph
    typed: bool  # ML Program typed execution: an fp32 tensor means fp32 compute

    @functools.cached_property
    def flexible(self) -> bool:
        """Whether any model input has a range or enumerated shape."""
        return any(s.flexibility != "fixed" for s in self.graph.input_specs)

    @functools.cached_property
    def consumers(self) -> dict[str, list[Op]]:
        return self.graph.consumers()

    @property
    def tier(self) -> int:
        return self.target.chip.tier


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    family: str
    summary: str
    why: str
    source: str
    confidence: str
    fix: str
    scope: str
    blocks: tuple[str, ...]
    level: str
    ops: frozenset[str] | None  # op types the rule looks at; None = every op
    apple_message: str | None
    applies: Callable[[Target], bool]
    check: Callable

    @property
    def blocking(self) -> bool:
        return bool(self.blocks)


RULES: dict[str, Rule] = {}


def rule(id: str, *, family: str, source: str, confidence: str, fix: str, scope: str = "all chips and OS versions",
         blocks: tuple[str, ...] = ("ane",), level: str = "op", apple_message: str | None = None,
         when: Callable[[Target], bool] = lambda t: True, ops: tuple[str, ...] | None = None):
    """Register a rule; the decorated function's docstring documents it."""
    def register(fn):
        doc = inspect.getdoc(fn) or ""
        summary, _, why = doc.partition("\n")
        RULES[id] = Rule(id, fn.__name__.replace("_", "-"), family, summary.strip(), " ".join(why.split()), source,
                         confidence, fix, scope, blocks, level, ops and frozenset(ops), apple_message, when, fn)
        return fn
    return register


# ---------------------------------------------------------------------------------------------
# helpers

def runtime_tensors(op: Op) -> list[Value]:
    """Runtime (non-constant) tensor inputs and outputs of an op (cached on the op)."""
    cached = op.__dict__.get("_runtime_tensors")
    if cached is None:
        cached = op.__dict__["_runtime_tensors"] = [v for v in op.runtime_inputs() + op.outputs if v.type.kind == "tensor"]
    return cached


def kernel(op: Op) -> tuple[int, ...]:
    w = op.input("weight")
    if op.type in ("conv", "conv_transpose") and w is not None and w.type.is_static:
        return tuple(w.type.shape[2:])
    return tuple(ints(op, "kernel_sizes"))


def ints(op: Op, arg: str) -> list[int]:
    """A constant integer argument as a list ([] when absent or not constant)."""
    v = op.param(arg)
    if v is None:
        return []
    return [int(x) for x in (v.reshape(-1) if hasattr(v, "reshape") else (v if isinstance(v, (list, tuple)) else [v]))]


def producer_type(v: Value | None) -> str:
    return v.producer.type if v is not None and v.producer is not None else ""


# ---------------------------------------------------------------------------------------------
# 2.1 data types

@rule("DT-1", family="dtype", confidence="A", apple_message="Invalid output tensor format: fp32",
      source="apple/coremltools docs-guides/source/typed-execution.md ('ML Program Typed Tensors'); ane-rules.md DT-1, DT-3, DT-13",
      fix="Convert with compute_precision=ct.precision.FLOAT16 (the default), or narrow the fp32 op_selector so only ops that need fp32 keep it.")
def fp32_compute(op: Op, ctx: Context):
    """An ML Program op computes in fp32.

    The ANE computes in fp16. Core ML bars only the Neural Engine for fp32-typed ops ("Only the
    NE is barred as a compute unit when a model is typed with float 32 precision"); they run on
    the GPU or CPU in fp32. Casts at the model's fp32 inputs/outputs are covered by DT-2/DT-12."""
    if not ctx.typed or op.type == "cast":
        return None
    fp32 = [v for v in runtime_tensors(op) if v.type.dtype == "fp32"]
    if fp32:
        return f"computes in fp32 ({fp32[0].name}: {fp32[0].type}); the ANE runs fp16 only"
    return None


@rule("DT-12", family="dtype", confidence="M", scope="H13-H14 (A14/M1, A15/M2); M on M1 macOS 14.5, C on M2",
      when=lambda t: t.chip.tier in (13, 14), apple_message="Invalid input tensor format: fp32",
      source="freedomtan/coreml_modelc_profling without_compute_plan_output.txt (E5 analytics, M1 macOS 14.5); FluidInference/mobius trials.md (M2); ane-rules.md DT-12, DT-13",
      fix="Use fp16 model inputs/outputs (ct.TensorType(dtype=np.float16), iOS16+) so no fp32 cast or fp32 image scale/bias runs at the boundary.")
def fp32_io_on_early_ane(op: Op, ctx: Context):
    """An op reads or writes an fp32 tensor on an M1/M2-class ANE (including the I/O casts).

    On H13 (M1) Apple's own analytics mark the converter's fp32->fp16 input cast, the
    fp16->fp32 output cast and fp32 image scale/bias ops as not ANE-supported. On M4/macOS 27
    the same casts are ANE-eligible (DT-2), so this rule is scoped to the early generations.
    NeuralNetwork models are untyped (their fp32 blobs run as fp16 on the ANE): not checked."""
    if not ctx.typed:
        return None
    fp32_in = [v for v in op.runtime_inputs() if v.type.dtype == "fp32"]
    fp32_out = [v for v in op.outputs if v.type.dtype == "fp32"]
    if fp32_in:
        return f"reads fp32 {fp32_in[0].name} on an {ctx.target.chip.ane_arch} ANE, which takes fp16 tensors only", "Invalid input tensor format: fp32"
    if fp32_out:
        return f"writes fp32 {fp32_out[0].name} on an {ctx.target.chip.ane_arch} ANE, which takes fp16 tensors only", "Invalid output tensor format: fp32"
    return None


@rule("DT-4", family="dtype", confidence="M", blocks=("ane",), apple_message="Unsupported tensor data type: int32",
      source="751K/Apple-Neural-Engine-Microarchitecture-Study-M6 plan_iso_cpune.tsv (M4, macOS 27; add_i32, cast_f16_i32, argmax); Anemll/anemll-profile README; ane-rules.md DT-4, DT-5",
      fix="Keep integer work (index arithmetic, argmax, shape math) out of the hot path: precompute it, pass it as fp16/uint16 inputs, or move it before/after the model.")
def integer_tensor(op: Op, ctx: Context):
    """An op reads or writes a runtime int32/int64 tensor.

    The ANE has no int32 datapath; every int32 op measured on M4 (add, mul, matmul, casts to and
    from int32, argmax, argsort) was CPU-only (GPU-eligible)."""
    for v in runtime_tensors(op):
        if v.type.dtype in ("int32", "int64", "uint32", "uint64"):
            return f"{v.name} is {v.type.dtype}; the ANE has no 32/64-bit integer datapath"
    return None


@rule("DT-6", family="dtype", confidence="M",
      source="751K plan_iso_cpune.tsv cast_f16_i8, quantize_i8 (M4 macOS 27); ane-rules.md DT-6, DT-7",
      fix="Keep int8 activations internal (quantize -> dequantize pairs run on the ANE); return fp16 from the model.")
def int8_model_output(op: Op, ctx: Context):
    """An op writes an int8/uint8 tensor that is a model output.

    The final cast/quantize producing an int8 graph output was CPU-only on M4, while a
    quantize->dequantize pair inside the graph stayed on the ANE."""
    for v in op.outputs:
        if v.type.dtype in ("int8", "uint8") and v in ctx.graph.outputs:
            return f"writes the int8 model output {v.name}; only internal quantize/dequantize pairs stay on the ANE"
    return None


@rule("DT-8", family="dtype", confidence="R", apple_message="Unsupported tensor data type: bf16",
      source="sbryngelson/ane-guide part-1-machine/04-capability-surface.md ('Type limits'); apple/coreai-models neural_engine_rules.md (supported dtypes fp16, int8, int16); ane-rules.md DT-8, DT-10",
      fix="Cast bf16/fp64 tensors to fp16 before conversion.")
def unsupported_float_type(op: Op, ctx: Context):
    """An op reads or writes a bf16, fp64 or fp8 tensor.

    The ANE datapath is fp16 (with int8/uint8 storage); bf16 is not usable as ANE tensor format."""
    for v in runtime_tensors(op):
        if v.type.dtype in ("bf16", "fp64", "fp8e4m3fn", "fp8e5m2"):
            return f"{v.name} is {v.type.dtype}; the ANE takes fp16/int8/uint8 tensors"
    return None


# ---------------------------------------------------------------------------------------------
# 2.2 ops that never reach the ANE

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


# ---------------------------------------------------------------------------------------------
# 2.3 parameter rules

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


# ---------------------------------------------------------------------------------------------
# 2.4 shape and rank limits

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


# ---------------------------------------------------------------------------------------------
# graph-level rules: flexible shapes, size, state, device

@rule("DY-1", family="dynamic", confidence="M", level="graph",
      apple_message="ANECompiler does not support range shape flexibility",
      source="apple/coremltools#1029 (Xcode: 'MLE5Engine is not currently supported for models with range shape inputs that try to utilize the Neural Engine'), #2370, #1764; Apple message catalogue state 110; ane-rules.md DY-1, DY-3",
      fix="Use EnumeratedShapes (up to 128) or fixed shapes; on iOS 17.4+/macOS 14.4+ try MLModelConfiguration reshapeFrequency = .infrequent.")
def range_shape_input(graph: Graph, ctx: Context):
    """A model input with a flexible range shape (RangeDim / image size range).

    Range-shaped inputs keep the model off the ANE except, at best, at the default shape."""
    flex = [s for s in graph.input_specs if s.flexibility == "range"]
    if flex:
        return f"input {flex[0].name} has a range (flexible) shape; the ANE compiler does not support range shapes"
    return None


@rule("DY-2", family="dynamic", confidence="A", level="graph", blocks=(),
      source="apple/coremltools docs-guides/source/faqs.md ('Neural Engine With Flexible Input Shapes'); ane-rules.md DY-2",
      fix="Keep reshapes static so each enumerated shape compiles to a fully static graph; check each shape with a fixed-shape copy of the model.")
def enumerated_shape_input(graph: Graph, ctx: Context):
    """A model input with EnumeratedShapes: runs on the ANE unless conversion made layers dynamic.

    Apple: 'The converted model will run on the NE, unless the conversion introduces dynamic layers
    not supported on the NE.' Costs are predicted at the default shape (see the report's notes)."""
    flex = [s for s in graph.input_specs if s.flexibility == "enumerated"]
    return (f"input {flex[0].name} has {len(flex[0].enumerated_shapes)} enumerated shapes; Core ML compiles each as a "
            f"static model, predicted here at the default {flex[0].default_shape}") if flex else None


@rule("DY-4", family="dynamic", confidence="M", level="graph", scope="iOS 16 / macOS 13 (measured 2023)",
      when=lambda t: t.os.ios <= 16,
      source="apple/coremltools#1909 (Xcode report); smpanaro NOTES.md 2023-10-25; ane-rules.md DY-4",
      fix="Use fixed shapes, or rank-4 layer_norm (B, C, 1, S) which worked with enumerated shapes.")
def layer_norm_with_enumerated_shapes(graph: Graph, ctx: Context):
    """A layer_norm in a model with EnumeratedShapes inputs (iOS 16 era)."""
    if any(s.flexibility == "enumerated" for s in graph.input_specs) and any(op.type == "layer_norm" and (op.input("x").type.rank or 0) != 4 for op in graph.ops):
        return "layer_norm with enumerated input shapes kept the whole model off the ANE on iOS 16"
    return None


@rule("DY-6", family="dynamic", confidence="C", level="graph", scope="macOS 13-14 / iOS 16-17",
      when=lambda t: t.os.ios <= 17,
      source="smpanaro/more-ane-transformers src/experiments/enumerated_*.py docstrings, NOTES.md Sept 2023; ane-rules.md DY-6",
      fix="Use a single enumerated input (others fixed), or one model per shape.")
def several_flexible_inputs(graph: Graph, ctx: Context):
    """More than one flexible (enumerated or range) input."""
    flex = [s.name for s in graph.input_specs if s.flexibility != "fixed"]
    return f"{len(flex)} flexible inputs ({', '.join(flex)})" if len(flex) > 1 else None


@rule("SZ-1", family="size", confidence="A", level="graph", scope="iOS / iPadOS", when=lambda t: t.chip.platform == "ios",
      apple_message="Weight file size <size> exceeds the maximum (<max>)",
      source="apple/coremltools docs-guides/source/mlmodel-utilities.md (model splitting); apple/ml-stable-diffusion README (--chunk-unet); ane-rules.md SZ-1",
      fix="Split the model (ct.models.utils.bisect_model) or compress weights to 6 bits or fewer.")
def model_over_1gb_on_ios(graph: Graph, ctx: Context):
    """A model whose weights exceed 1 GB on an iPhone/iPad."""
    size = ctx.model.weights_bytes or graph.weight_bytes()
    if size > 1 << 30:
        return f"weights are {size / (1 << 30):.2f} GB > 1 GB, the iOS limit for the Neural Engine"
    return None


@rule("SZ-2", family="size", confidence="C", level="graph", scope="M1 (H13)", when=lambda t: t.chip.tier == 13 and t.chip.platform == "macos",
      source="smpanaro NOTES.md 2023-03-30..04-07 ('4x800MB is the limit'); eiln/ane ane_drv.c vm_size 0xE0000000; ane-rules.md SZ-2",
      fix="Compress weights (palettize to 4-6 bits) or split the model.")
def model_over_ane_address_space_m1(graph: Graph, ctx: Context):
    """A model whose weights exceed ~3 GB on M1 (the ANE's mapped address space)."""
    size = ctx.model.weights_bytes or graph.weight_bytes()
    return f"weights are {size / (1 << 30):.2f} GB; M1 maps at most ~3-3.75 GB for the ANE" if size > 3 << 30 else None


@rule("ST-2", family="state", confidence="C", level="graph", scope="M1 / A14 (H13)", when=lambda t: t.chip.tier == 13,
      source="argus1/Anemll docs/RELEASE_NOTES_0.3.5.md ('M1/A14 Limitations'); ane-rules.md ST-2, CH-9",
      fix="Give all state tensors the same shape (pad the shorter KV cache).")
def non_uniform_states(graph: Graph, ctx: Context):
    """Stateful model whose state tensors have different shapes, on M1/A14."""
    shapes = {s.type.shape for s in graph.states}
    return f"{len(graph.states)} states with {len(shapes)} different shapes" if len(shapes) > 1 else None


@rule("CH-0", family="chip", confidence="A", level="graph", scope="A11 and older", when=lambda t: t.chip.tier == 0,
      source="hollance/neural-engine docs/supported-devices.md; ane-hardware.md §1.1 ('A11's ANE is not usable from Core ML')",
      fix="Target an A12 or newer device.")
def no_usable_ane(graph: Graph, ctx: Context):
    """The chip has no Neural Engine that Core ML can use."""
    return f"{ctx.target.chip.name} has no ANE usable by third-party Core ML models"


@rule("Q-2", family="compression", confidence="A", blocks=(), level="graph", scope="before A17 Pro / M4",
      when=lambda t: not t.chip.fast_int8,
      source="apple/coremltools docs-guides opt-quantization-perf.md, opt-overview.md; ane-rules.md Q-2, CH-7",
      fix="On this chip prefer weight-only compression (palettization / int8 weights) over W8A8.")
def w8a8_without_fast_int8(graph: Graph, ctx: Context):
    """Activation quantization (W8A8) on a chip without fast int8-int8 ANE compute."""
    if any(op.type == "quantize" for op in graph.ops):
        return "activations are quantized, but int8-int8 compute is faster only on A17 Pro / M4 and newer"
    return None


def explain(rule_id: str) -> Rule:
    """Look a rule up by id (case-insensitive)."""
    key = rule_id.upper()
    if key not in RULES:
        from .ir import ModelError

        raise ModelError(f"no rule {rule_id!r}; run `anedoctor rules` for the list")
    return RULES[key]
