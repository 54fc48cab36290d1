"""What a compression did: sizes on disk, the weight format each op reads, placement changes, accuracy."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ir import Model
from ..ir.compression import format_text, weight_format

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
                    rows.append(
                        OpFormat(
                            p.op.name,
                            p.op.type,
                            arg,
                            format_text(steps),
                            min(s["bits"] for s in steps),
                            steps[-1]["granularity"],
                            compression,
                        )
                    )
    return rows


# ------------------------------------------------------------------ placement


@dataclass
class PlacementChange:
    op: str
    type: str
    before: str
    after: str
    why: list[str]


def first_ops(changed: list[PlacementChange], shown: int = 3) -> str:
    """'conv0 (conv), conv1 (conv), conv2 (conv) and 5 more'."""
    more = f" and {len(changed) - shown} more" if len(changed) > shown else ""
    return ", ".join(f"{c.op} ({c.type})" for c in changed[:shown]) + more


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
            changes.append(
                PlacementChange(
                    p.op.name,
                    p.op.type,
                    "new",
                    p.device,
                    list(reasons(p).values()) or ["segment costs (see `anedoctor check -v`)"],
                )
            )
        if q is None or q.device == p.device:
            continue
        now, then = reasons(p), reasons(q)
        why = [text for rid, text in now.items() if rid not in then] + [
            f"no longer {text}" for rid, text in then.items() if rid not in now
        ]
        changes.append(
            PlacementChange(
                p.op.name,
                p.op.type,
                q.device,
                p.device,
                why or ["segment costs changed (see SEG rules in `anedoctor check -v`)"],
            )
        )
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
    largest_growth: dict[str, Any] | None  # op reading compressed data that adds the most error power (added_noise)
    inputs: str

    @property
    def min_psnr(self) -> float:
        return min((o.psnr for o in self.outputs), default=math.inf)


def added_noise(row: dict[str, Any]) -> float:
    """The error power an op adds, relative to the peak: 10^(-PSNR/10) of its output less its worst input's. A drop
    from 50 to 30 dB adds 1e-3, one from identical inputs to 53 dB 5e-6: a PSNR difference would rank the second
    first (infinitely far), though it is the smaller error."""

    def power(db: float) -> float:
        return 0.0 if math.isinf(db) else 10.0 ** (-db / 10.0)

    return power(row["psnr"]) - power(row["input_psnr"])


def op_kind(row: dict[str, Any]) -> str:
    """An accuracy row's op type, with the value a W8A8 ``dequantize`` makes the int8 copy of."""
    return f"{row['type']}, int8 copy of {row['of']}" if row.get("of") else row["type"]


def accuracy(
    compressed: Model,
    original: Model,
    inputs: dict[str, Any],
    inputs_label: str,
    threshold: float = 0.05,
    min_psnr: float = 35.0,
) -> Accuracy:
    """Per-output PSNR / relative error, and where along the graph the error appears and grows. It grows where
    compressed data is read (a compressed weight, an int8 copy); other ops pass it on, and a reduction whose mean is
    near zero would read as a large relative error without adding any.

    The compressed model runs beside the original on ``inputs``, op by op, so only the values not yet compared are
    held. Uses the numerics machinery of :mod:`anedoctor.drift` (same metrics, same drift test). A value with no
    reference (made by an op only the compressed model has, or rescaled beyond recovery: :func:`rescaled_values`)
    carries the error of the inputs it was made from; a ``dequantize`` (W8A8) is compared with the value its
    ``quantize`` read, so the error int8 adds shows where it enters."""
    from ..drift import compare, errors
    from ..execute import side_by_side

    rescaled = rescaled_values(compressed)
    stands_for = {
        op.outputs[0].name: q.runtime_inputs()[0].name
        for g in compressed.graphs
        for op in g.ops
        if (q := quantize_before(op)) is not None
    }
    waiting = Counter(stands_for.values())  # the dequantize ops still to compare with each quantized value
    held = {n: np.asarray(a) for n, a in inputs.items() if waiting[n]}  # those values' reference arrays, until then

    def error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """(PSNR, relative error); identical tensors have infinite PSNR."""
        err, p = errors(a, b)
        return (p if err else math.inf), err

    bad: set[str] = set()
    drifted: set[str] = set()
    found: dict[str, Any] = {"first": None, "growth": None}
    op_psnr: dict[str, float] = {}

    def visit(step, ref_vals: dict[str, np.ndarray], new_vals: dict[str, np.ndarray]) -> None:
        op = step.op
        held.update((n, a) for n, a in ref_vals.items() if waiting[n])
        ref_vals = dict(ref_vals)
        for v in op.outputs:
            source = stands_for.get(v.name)
            if source in held:
                ref_vals[v.name] = held[source]
                waiting[source] -= 1
                if not waiting[source]:
                    del held[source]
        comparable = {
            n: a if n not in rescaled else a / rescaled[n]
            for n, a in new_vals.items()
            if rescaled.get(n, 1.0) is not None
        }
        res, metrics, each = compare(op, ref_vals, comparable, bad, drifted, threshold, min_psnr)
        worst_input = min((op_psnr.get(v.name, math.inf) for v in op.runtime_inputs()), default=math.inf)
        inherited = any(v.name in drifted for v in op.runtime_inputs())
        for v in op.outputs:
            m = each.get(v.name)
            op_psnr[v.name] = worst_input if m is None else m["psnr"] if m["rel_err"] else math.inf
            if m is None and inherited:
                drifted.add(v.name)
        if not metrics:
            return
        row = {
            "op": op.name,
            "type": op.type,
            "psnr": op_psnr[metrics["output"]],
            "rel_err": metrics["rel_err"],
            "input_psnr": worst_input,
        }
        if op.type == "dequantize" and op.outputs[0].name in stands_for:
            row["of"] = stands_for[op.outputs[0].name]  # the int8 copy of this value
        if res and found["first"] is None:
            found["first"] = row
        growth = found["growth"]
        brings_error = op.type == "dequantize" or any(
            v.producer is not None and v.producer.type.startswith("constexpr_") for v in op.input_values()
        )
        if brings_error and worst_input - metrics["psnr"] > 0.5:
            if growth is None or added_noise(row) > added_noise(growth):
                found["growth"] = row

    reference, result = side_by_side(original, compressed, inputs, visit)
    outputs = [
        OutputError(name, *error(result.outputs[name], ref))
        for name, ref in reference.outputs.items()
        if name in result.outputs and np.asarray(ref).dtype.kind == "f"
    ]
    return Accuracy(outputs, found["first"], found["growth"], inputs_label)


# ops that commute with a positive factor: op(f * x) = f * op(x) (each input scaled alike)
HOMOGENEOUS = {
    "add",
    "sub",
    "relu",
    "leaky_relu",
    "max_pool",
    "avg_pool",
    "reshape",
    "transpose",
    "concat",
    "split",
    "slice_by_index",
    "slice_by_size",
    "squeeze",
    "expand_dims",
}


def rescaled_values(model: Model) -> dict[str, float | None]:
    """Values the compressed model makes as a multiple of the original's: name -> the factor, None where no factor
    makes them comparable. coremltools' W8A8 passes normalise a quantized add's or sub's input scales so that one is 1
    (``distributive_quantized_binary_op_scale_normalization``): the ``dequantize`` ops before it take another scale
    than their ``quantize``, the add (and a relu after it) make the sum divided by that input's scale, and the
    ``quantize`` after them takes the factor back. Compared by name, the factor would read as error."""
    factor: dict[str, float | None] = {}
    for g in model.graphs:
        for op in g.ops:
            ins = [factor.get(v.name, 1.0) for v in op.runtime_inputs()]
            q = quantize_before(op)
            if q is not None:
                ratio, base = scale_ratio(op, q), factor.get(q.runtime_inputs()[0].name, 1.0)
                out = None if ratio is None or base is None else base * ratio
            elif any(f is None for f in ins):
                out = None
            elif op.type in HOMOGENEOUS and ins and all(math.isclose(f, ins[0], rel_tol=1e-2) for f in ins):
                out = ins[0]
            else:
                out = 1.0 if all(math.isclose(f, 1.0, rel_tol=1e-2) for f in ins) else None
            if out is None or not math.isclose(out, 1.0, rel_tol=1e-2):
                factor.update((v.name, out) for v in op.outputs)
    return factor


def quantize_before(op: Any) -> Any:
    """The ``quantize`` op a ``dequantize`` reads (the pair of an int8 copy), else None."""
    ins = op.runtime_inputs() if op.type == "dequantize" else []
    q = ins[0].producer if ins else None
    return q if q is not None and q.type == "quantize" else None


def scale_ratio(dequantize: Any, quantize: Any) -> float | None:
    """The dequantize's scale over its quantize's (a per-tensor pair), None when they differ per channel."""
    a, b = dequantize.input("scale"), quantize.input("scale")
    if a is None or b is None or not (a.is_const and b.is_const):
        return None
    ratio = np.asarray(a.data(), np.float64) / np.asarray(b.data(), np.float64)
    return float(ratio.flat[0]) if ratio.size and np.allclose(ratio, ratio.flat[0], rtol=1e-3) else None
