"""Data-type rules (DT-*): what the ANE's fp16/int8 datapath cannot read or write."""
from __future__ import annotations

from ..ir import Op
from .base import Context, rule, runtime_tensors


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
