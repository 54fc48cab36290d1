"""What a compressed weight is: the chain of constexpr ops that decompresses it (coremltools.optimize's
palettization, linear quantization and sparsity, iOS 16 and iOS 18 forms), as bits and granularity."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from . import Op, Value


def dtype_bits(dtype: str) -> int:
    """'uint4' -> 4, 'int8' -> 8, 'fp16' -> 16."""
    digits = re.sub(r"\D", "", dtype)
    return int(digits) if digits else 0


def describe_groups(shape: tuple[int, ...], params: tuple[int, ...], grouped: str) -> str:
    """Granularity from how many parameter sets (scales, LUTs) each axis of the weight has."""
    varying = [(axis, n, params[axis]) for axis, n in enumerate(shape) if axis < len(params) and params[axis] > 1]
    if not varying:
        return "per-tensor"
    blocks = [(axis, n // p) for axis, n, p in varying if n // p > 1]
    if blocks:
        return ", ".join(f"{grouped} {size} (axis {axis})" for axis, size in blocks)
    return "per-channel (axis " + ", ".join(str(axis) for axis, _, _ in varying) + ")"


def const_shape(v: Value | None) -> tuple[int, ...]:
    return tuple(d or 1 for d in (v.type.shape or ())) if v is not None else ()


def arg(op: Op, name: str) -> tuple[str, tuple[int, ...]] | None:
    """(dtype, shape) of a constexpr argument, whether an input (iOS 18) or an attribute (iOS 16)."""
    v = op.input(name)
    if v is not None:
        return v.type.dtype, const_shape(v)
    a = op.attrs.get(name)
    if a is None:
        return None
    return str(getattr(a, "dtype", np.asarray(a).dtype)), tuple(getattr(a, "shape", np.shape(a)))


def stored_bytes(op: Op) -> int:
    """Bytes a constexpr chain stores for its weight: the compressed data, LUTs and scales, whether inputs (iOS 18)
    or attributes (iOS 16), sub-byte types packed, with those of the constexpr ops it reads; arguments of 16 elements
    or fewer (axes, shapes) left out."""
    total = 0
    for name in {*op.inputs, *op.attrs}:
        v = op.input(name)
        if v is not None and not v.is_const:
            total += (
                stored_bytes(v.producer) if v.producer is not None and v.producer.type.startswith("constexpr_") else 0
            )
            continue
        dtype, shape = arg(op, name) or ("", ())
        if math.prod(shape) > 16:
            total += math.ceil(math.prod(shape) * dtype_bits(dtype) / 8)
    return total


def format_step(op: Op, out: Value) -> dict[str, Any]:
    """Bits and granularity of one constexpr op (coremltools' iOS 16 and iOS 18 forms)."""
    mask = arg(op, "data_mask") or arg(op, "indices_mask")  # joint sparse forms: params follow the dense shape
    t, shape = op.type, mask[1] if mask else const_shape(out)
    dtype = {
        k: a[0]
        for k in ("indices", "indices_nonzero_data", "data", "nonzero_data", "quantized_data")
        if (a := arg(op, k))
    }
    params = {k: a[1] for k in ("lut", "scale", "nonzero_data") if (a := arg(op, k))}
    if t == "constexpr_lut_to_dense" and arg(op, "shape") is not None:  # iOS 16: one LUT for the tensor
        return {"kind": "lut", "bits": int(math.log2(max(params["lut"][0], 2))), "granularity": "per-tensor"}
    if t in ("constexpr_lut_to_dense", "constexpr_lut_to_sparse"):
        return {
            "kind": "lut",
            "bits": dtype_bits(dtype.get("indices") or dtype.get("indices_nonzero_data", "")),
            "granularity": describe_groups(shape, params["lut"][:-2], "per-grouped-channel"),
        }
    if t in ("constexpr_blockwise_shift_scale", "constexpr_sparse_blockwise_shift_scale"):
        return {
            "kind": "linear",
            "bits": dtype_bits(dtype.get("data") or dtype.get("nonzero_data", "")),
            "granularity": describe_groups(shape, params["scale"], "per-block"),
        }
    if t == "constexpr_affine_dequantize":
        per_channel = math.prod(params["scale"]) > 1
        return {
            "kind": "linear",
            "bits": dtype_bits(dtype["quantized_data"]),
            "granularity": f"per-channel (axis {op.param('axis', 0)})" if per_channel else "per-tensor",
        }
    if t == "constexpr_sparse_to_dense":
        density = math.prod(params["nonzero_data"]) / max(math.prod(shape), 1)
        return {"kind": "sparse", "bits": 1, "granularity": f"{1 - density:.0%} zeros"}
    return {"kind": t.removeprefix("constexpr_"), "bits": dtype_bits(out.type.dtype), "granularity": "-"}


def weight_format(v: Value) -> list[dict[str, Any]]:
    """The constexpr chain that produces a weight, outermost first ([] for a plain constant or activation)."""
    op = v.producer
    if op is None or not op.type.startswith("constexpr_"):
        return []
    steps = [format_step(op, v)]
    for inner in op.input_values():
        for step in weight_format(inner):
            if step not in steps:
                steps.append(step)
    return steps


def format_text(steps: list[dict[str, Any]]) -> str:
    """'4-bit LUT per-tensor', '50% zeros sparse + 4-bit LUT per-tensor', 'int4 per-block 32 (axis 1)'."""
    words = {
        "lut": "{bits}-bit LUT {granularity}",
        "linear": "int{bits} {granularity}",
        "sparse": "sparse, {granularity}",
    }
    return " + ".join(words.get(s["kind"], "{kind} {granularity}").format(**s) for s in steps)


def op_weight_formats(op: Op) -> dict[str, str]:
    """Argument name -> format text, for each input of ``op`` decompressed from a constexpr chain."""
    out = {}
    for arg_name, vals in op.inputs.items():
        for v in vals if isinstance(vals, list) else [vals]:
            steps = weight_format(v)
            if steps:
                out[arg_name] = format_text(steps)
    return out
