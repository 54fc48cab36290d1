"""Data-type rules (DT-*): what the ANE's fp16/int8 datapath cannot read or write."""

from __future__ import annotations

from ..ir import Op
from .base import Context, rule, runtime_tensors
from .refs import docs, file, guide, issue, m6, ne_rules

RELU_FP16 = """
func main<ios17>(tensor<fp16, [1, 64, 32, 32]> x) {
    tensor<fp16, [1, 64, 32, 32]> y = relu(x = x);
} -> (y);"""


@rule(
    "DT-1",
    family="dtype",
    confidence="A",
    apple_message="Invalid output tensor format: fp32",
    references=[
        docs("typed-execution", "('ML Program Typed Tensors')"),
        ne_rules("(top: 'fp32 falls back to GPU/CPU'; 'Float32 intermediates')"),
        issue("vx-lang/Vx", 435, "(fp32 matmul never ANE-preferred, M4 MLComputePlan)"),
        file(
            "FluidInference/mobius",
            "models/tts/styletts2/coreml/trials.md",
            "(fp32 model: 1348 of 1349 ops 'Invalid output tensor format: fp32', M2)",
        ),
    ],
    fix="Convert with compute_precision=ct.precision.FLOAT16 (the default), or narrow the fp32 op_selector so only "
    "ops that need fp32 keep it.",
    fixes={
        "coreai": "Convert a half-precision module (`module.half()`, fp16 example inputs) and keep every "
        "intermediate fp16: no Python float literals (`torch.ones(1, dtype=x.dtype)` instead), no "
        "`.float()` or `dtype=torch.float32` (Apple's 'Float32 intermediates' rule)."
    },
    fix_pass="fp32_islands_to_fp16",
    fix_exact=False,
    example=RELU_FP16.replace("fp16", "fp32"),
    quiet=RELU_FP16,
)
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


@rule(
    "DT-12",
    family="dtype",
    confidence="M",
    scope="H13-H14 (A14/M1, A15/M2); M on M1 macOS 14.5, C on M2",
    when=lambda t: t.chip.tier in (13, 14),
    apple_message="Invalid input tensor format: fp32",
    references=[
        file(
            "freedomtan/coreml_modelc_profling",
            "without_compute_plan_output.txt",
            "(E5 analytics: BackendSupport per op, M1 H13G, macOS 14.5)",
        ),
        file("FluidInference/mobius", "models/tts/styletts2/coreml/trials.md", "(M2, macOS 26.5)"),
        m6("plan_iso_cpune.tsv", "(contrast: rows add_f32, matmul_f32, relu_f32 on M4 keep the I/O casts eligible)"),
    ],
    fix="Use fp16 model inputs/outputs (ct.TensorType(dtype=np.float16), iOS16+) so no fp32 cast or fp32 image "
    "scale/bias runs at the boundary.",
    fix_pass="fp16_model_io",
    fix_exact=False,
    example="""
        func main<ios17>(tensor<fp32, [1, 64, 32, 32]> x) {
            tensor<fp16, [1, 64, 32, 32]> x16 = cast(x = x, dtype = "fp16");
            tensor<fp16, [1, 64, 32, 32]> y = relu(x = x16);
        } -> (y);""",
    quiet=RELU_FP16,
)
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
        return (
            f"reads fp32 {fp32_in[0].name} on an {ctx.target.chip.ane_arch} ANE, which takes fp16 tensors only",
            "Invalid input tensor format: fp32",
        )
    if fp32_out:
        return (
            f"writes fp32 {fp32_out[0].name} on an {ctx.target.chip.ane_arch} ANE, which takes fp16 tensors only",
            "Invalid output tensor format: fp32",
        )
    return None


@rule(
    "DT-4",
    family="dtype",
    confidence="M",
    blocks=("ane",),
    apple_message="Unsupported tensor data type: int32",
    references=[
        m6(
            "plan_iso_cpune.tsv",
            "(rows add_i32, mul_i32, matmul_i32, cast_f16_i32, cast_i32_f16, "
            "argmax_flat, "
            "argsort_w: CPU only on M4, macOS 27)",
        ),
        file("Anemll/anemll-profile", "README.md", "(reason string 'Unsupported tensor data type: int32')"),
        file("argus1/Anemll", "tests/dev/MB_GRAPH_ISSUES.md", "('ANE Data Type Requirements')"),
    ],
    fix="Keep integer work (index arithmetic, argmax, shape math) out of the hot path: precompute it, pass it as "
    "fp16/uint16 inputs, or move it before/after the model (`anedoctor fix` folds shape math on static shapes into "
    "constants).",
    fix_pass="fold_shape_arithmetic",
    fix_exact=True,
    example="""
        func main<ios17>(tensor<int32, [1, 64]> x) {
            tensor<int32, [1, 64]> y = add(x = x, y = x);
        } -> (y);""",
    quiet="""
        func main<ios17>(tensor<fp16, [1, 64]> x) {
            tensor<fp16, [1, 64]> y = add(x = x, y = x);
        } -> (y);""",
)
def integer_tensor(op: Op, ctx: Context):
    """An op reads or writes a runtime int32/int64 tensor.

    The ANE has no int32 datapath; every int32 op measured on M4 (add, mul, matmul, casts to and
    from int32, argmax, argsort) was CPU-only (GPU-eligible)."""
    for v in runtime_tensors(op):
        if v.type.dtype in ("int32", "int64", "uint32", "uint64"):
            return f"{v.name} is {v.type.dtype}; the ANE has no 32/64-bit integer datapath"
    return None


@rule(
    "DT-6",
    family="dtype",
    confidence="M",
    references=[
        m6("plan_iso_cpune.tsv", "(rows cast_f16_i8, quantize_i8: the final cast is CPU only, M4 macOS 27)"),
        m6("plan_ctx_cpune.tsv", "(row q_dq_i8: an internal quantize -> dequantize pair stays on the ANE)"),
    ],
    fix="Keep int8 activations internal (quantize -> dequantize pairs run on the ANE); return fp16 from the model.",
    example="""
        func main<ios17>(tensor<fp16, [1, 64]> x) {
            tensor<int8, [1, 64]> y = cast(x = x, dtype = "int8");
        } -> (y);""",
    quiet="""
        func main<ios17>(tensor<fp16, [1, 64]> x) {
            tensor<int8, [1, 64]> q = cast(x = x, dtype = "int8");
            tensor<fp16, [1, 64]> y = cast(x = q, dtype = "fp16");
        } -> (y);""",
)
def int8_model_output(op: Op, ctx: Context):
    """An op writes an int8/uint8 tensor that is a model output.

    The final cast/quantize producing an int8 graph output was CPU-only on M4, while a
    quantize->dequantize pair inside the graph stayed on the ANE."""
    for v in op.outputs:
        if v.type.dtype in ("int8", "uint8") and v in ctx.graph.outputs:
            return f"writes the int8 model output {v.name}; only internal quantize/dequantize pairs stay on the ANE"
    return None


@rule(
    "DT-8",
    family="dtype",
    confidence="R",
    apple_message="Unsupported tensor data type: bf16",
    references=[
        guide("part-1-machine/04-capability-surface.md", "('Type limits': bf16 not usable as ANE program I/O)"),
        ne_rules("(top: supported dtypes fp16, int8, int16)"),
    ],
    fix="Cast bf16/fp64 tensors to fp16 before conversion.",
    example="""
        func main<ios18>(tensor<bf16, [1, 64]> x) {
            tensor<bf16, [1, 64]> y = relu(x = x);
        } -> (y);""",
    quiet="""
        func main<ios18>(tensor<fp16, [1, 64]> x) {
            tensor<fp16, [1, 64]> y = relu(x = x);
        } -> (y);""",
)
def unsupported_float_type(op: Op, ctx: Context):
    """An op reads or writes a bf16, fp64 or fp8 tensor.

    The ANE datapath is fp16 (with int8/uint8 storage); bf16 is not usable as ANE tensor format.
    The direct-path study found bf16 annotations unimplemented in the ANE backend, and Apple's
    authoring rules list only fp16, int8 and int16; fp64 and fp8 are in neither list, so such an
    op is expected on the GPU or CPU."""
    for v in runtime_tensors(op):
        if v.type.dtype in ("bf16", "fp64", "fp8e4m3fn", "fp8e5m2"):
            return f"{v.name} is {v.type.dtype}; the ANE takes fp16/int8/uint8 tensors"
    return None
