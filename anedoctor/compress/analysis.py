"""What a compression did: sizes on disk, the weight format each op reads, placement changes, accuracy."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ir import Model, Op, Value

WEIGHTS_DIR = Path("Data/com.apple.CoreML/weights")


# ------------------------------------------------------------------ sizes

@dataclass
class Sizes:
    """Bytes on disk: the weight files and the whole package."""

    weights: int
    package: int

    @classmethod
    def of(cls, package: Path) -> "Sizes":
        files = [p for p in Path(package).rglob("*") if p.is_file()]
        weights_root = Path(package) / WEIGHTS_DIR
        weights = sum(p.stat().st_size for p in files if weights_root in p.parents)
        return cls(weights, sum(p.stat().st_size for p in files))


# ------------------------------------------------------------------ weight formats

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


def format_step(op: Op, out: Value) -> dict[str, Any]:
    """Bits and granularity of one constexpr op (coremltools' iOS 16 and iOS 18 forms)."""
    mask = arg(op, "data_mask") or arg(op, "indices_mask")  # joint sparse forms: params follow the dense shape
    t, shape = op.type, mask[1] if mask else const_shape(out)
    dtype = {k: a[0] for k in ("indices", "indices_nonzero_data", "data", "nonzero_data", "quantized_data")
             if (a := arg(op, k))}
    params = {k: a[1] for k in ("lut", "scale", "nonzero_data") if (a := arg(op, k))}
    if t == "constexpr_lut_to_dense" and arg(op, "shape") is not None:  # iOS 16: one LUT for the tensor
        return {"kind": "lut", "bits": int(math.log2(max(params["lut"][0], 2))), "granularity": "per-tensor"}
    if t in ("constexpr_lut_to_dense", "constexpr_lut_to_sparse"):
        return {"kind": "lut", "bits": dtype_bits(dtype.get("indices") or dtype.get("indices_nonzero_data", "")),
                "granularity": describe_groups(shape, params["lut"][:-2], "per-grouped-channel")}
    if t in ("constexpr_blockwise_shift_scale", "constexpr_sparse_blockwise_shift_scale"):
        return {"kind": "linear", "bits": dtype_bits(dtype.get("data") or dtype.get("nonzero_data", "")),
                "granularity": describe_groups(shape, params["scale"], "per-block")}
    if t == "constexpr_affine_dequantize":
        per_channel = math.prod(params["scale"]) > 1
        return {"kind": "linear", "bits": dtype_bits(dtype["quantized_data"]),
                "granularity": f"per-channel (axis {op.param('axis', 0)})" if per_channel else "per-tensor"}
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
    words = {"lut": "{bits}-bit LUT {granularity}", "linear": "int{bits} {granularity}",
             "sparse": "sparse, {granularity}"}
    return " + ".join(words.get(s["kind"], "{kind} {granularity}").format(**s) for s in steps)


@dataclass
class OpFormat:
    """The compressed weight an op reads, and the compression rules that fired on it."""

    op: str
    type: str
    input: str
    format: str
    bits: int
    granularity: str
    rules: list[str] = field(default_factory=list)


def op_formats(report: Any) -> list[OpFormat]:
    """Per placed op: every input decompressed from a constexpr chain."""
    rows = []
    for p in report.placements:
        compression = [f"{f.rule.id}: {f.message}" for f in p.findings + p.notes if f.rule.family == "compression"]
        for arg, vals in p.op.inputs.items():
            for v in vals if isinstance(vals, list) else [vals]:
                steps = weight_format(v)
                if steps:
                    rows.append(OpFormat(p.op.name, p.op.type, arg, format_text(steps), min(s["bits"] for s in steps),
                                         steps[-1]["granularity"], compression))
    return rows


# ------------------------------------------------------------------ placement

@dataclass
class PlacementChange:
    op: str
    type: str
    before: str
    after: str
    why: list[str]


def reasons(p: Any) -> dict[str, str]:
    return {f.rule.id: f"{f.rule.id}: {f.message}" for f in p.findings + p.notes}


def placement_changes(before: Any, after: Any) -> list[PlacementChange]:
    """Ops (matched by name) whose predicted device differs, with the rules that appeared or went away;
    and ops that only the compressed model has (coremltools re-runs its graph passes) placed off the ANE."""
    old = {p.op.name: p for p in before.placements}
    kept = {p.op.name for p in after.placements}
    gone = [(q.op.type, q.device) for q in before.placements if q.op.name not in kept]
    changes = []
    for p in after.placements:
        q = old.get(p.op.name)
        renamed = q is None and (p.op.type, p.device) in gone  # same kind of op on the same device: a new name
        if renamed:
            gone.remove((p.op.type, p.device))
        elif q is None and p.device != "ane":
            changes.append(PlacementChange(p.op.name, p.op.type, "new", p.device,
                                           list(reasons(p).values()) or ["segment costs (see `anedoctor check -v`)"]))
        if q is None or q.device == p.device:
            continue
        new, gone = reasons(p), reasons(q)
        why = [text for rid, text in new.items() if rid not in gone] + \
              [f"no longer {text}" for rid, text in gone.items() if rid not in new]
        changes.append(PlacementChange(p.op.name, p.op.type, q.device, p.device,
                                       why or ["segment costs changed (see SEG rules in `anedoctor check -v`)"]))
    return changes


# ------------------------------------------------------------------ accuracy

@dataclass
class OutputError:
    name: str
    psnr: float
    rel_err: float


@dataclass
class Accuracy:
    """The compressed model against the original, both run by the reference executor on the same inputs."""

    outputs: list[OutputError]
    first_drift: dict[str, Any] | None  # first op whose output drifts while its inputs did not
    largest_growth: dict[str, Any] | None  # op whose PSNR drops most below its worst input's
    inputs: str

    @property
    def min_psnr(self) -> float:
        return min((o.psnr for o in self.outputs), default=math.inf)


def accuracy(compressed: Model, reference: Any, inputs_label: str, threshold: float = 0.05,
             min_psnr: float = 35.0) -> Accuracy:
    """Per-output PSNR / relative error, and where along the graph the error appears and grows.

    ``reference`` is the original's :class:`RunResult` with intermediates (run once, reused by a sweep).
    Uses the numerics machinery of :mod:`anedoctor.drift` (same metrics, same drift test)."""
    from ..drift import compare, psnr, rel_err
    from ..execute import run

    result = run(compressed, reference.inputs, keep_intermediates=True)
    def error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """(PSNR, relative error); identical tensors have infinite PSNR."""
        err = rel_err(a, b)
        return (psnr(a, b) if err else math.inf), err

    outputs = [OutputError(name, *error(result.outputs[name], ref)) for name, ref in reference.outputs.items()
               if name in result.outputs and np.asarray(ref).dtype.kind == "f"]
    ref_vals = {**reference.inputs, **reference.intermediates}
    new_vals = {**result.inputs, **result.intermediates}
    bad: set[str] = set()
    drifted: set[str] = set()
    first, growth, op_psnr = None, None, {}
    for op in compressed.graphs[0].ops:
        res, metrics = compare(op, ref_vals, new_vals, bad, drifted, threshold, min_psnr)
        if not metrics:
            continue
        worst_input = min((op_psnr.get(v.name, math.inf) for v in op.runtime_inputs()), default=math.inf)
        op_psnr[metrics["output"]] = metrics["psnr"] if metrics["rel_err"] else math.inf
        row = {"op": op.name, "type": op.type, "psnr": op_psnr[metrics["output"]], "rel_err": metrics["rel_err"],
               "input_psnr": worst_input}
        if res and first is None:
            first = row
        drop = min(worst_input, 200.0) - metrics["psnr"]
        if drop > 0.5 and (growth is None or drop > min(growth["input_psnr"], 200.0) - growth["psnr"]):
            growth = row
    return Accuracy(outputs, first, growth, inputs_label)
