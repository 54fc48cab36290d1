"""Where does fp16 break a model? Run it in fp32 and in ANE/GPU fp16 emulation, compare every
intermediate tensor, and report the first op that overflows fp16, goes NaN/inf or drifts.

A finding is a *source*: an op whose emulated inputs were still healthy (finite where the fp32
reference is finite, within the drift threshold) but whose output is not; everything after it
inherits the problem and is not reported again. Drift is the max-abs relative error
``max|a-b| / max|b|`` and the PSNR Apple's ml-stable-diffusion uses to accept fp16 conversions
(``20 log10((max|b| + 1e-5) / (rms(a-b) + 1e-10))``, minimum 35 dB). Only the ops of the top-level
graph are compared (control-flow bodies run, but their per-iteration values are not kept).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import ModelError
from .execute import FP16_MAX, check_inputs, default_inputs, load_model, side_by_side
from .ir import Op, Value

__all__ = ["numerics", "NumericsReport", "Finding", "compare", "errors", "psnr", "rel_err"]
FP16_MIN_NORMAL = 2.0**-14
TINY = 1e-30
KINDS = ("overflow", "nan", "inf", "underflow", "drift")
SOFTMAX_LIKE = ("softmax", "scaled_dot_product_attention")


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b| / max(max|b|, tiny), over positions finite in both."""
    return errors(a, b)[0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of ``a`` against reference ``b`` as ml-stable-diffusion computes it (finite positions)."""
    return errors(a, b)[1]


def errors(a: np.ndarray, b: np.ndarray, finite: np.ndarray | None = None) -> tuple[float, float]:
    """(:func:`rel_err`, :func:`psnr`) in one pass over the positions finite in both (``finite``: that mask, when
    the caller has it). float32 arithmetic (float64 only where a difference overflows it), the mean square taken on
    differences scaled by the largest, so no square overflows or underflows."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ok = np.isfinite(a) & np.isfinite(b) if finite is None else finite
    if not ok.all():
        a, b = a[ok], b[ok]
    if not b.size:
        return 0.0, math.inf
    with np.errstate(over="ignore"):
        diff = np.abs(a - b)
    worst = float(diff.max())
    if not math.isfinite(worst):
        diff = np.abs(a.astype(np.float64) - b)
        worst = float(diff.max())
    peak = float(np.abs(b).max())
    rms = worst * math.sqrt(float(np.mean(np.square(diff / worst), dtype=np.float64))) if worst else 0.0
    return worst / max(peak, TINY), 20 * math.log10((peak + 1e-5) / (rms + 1e-10))


@dataclass
class Range:
    """Value range of one tensor."""

    shape: tuple[int, ...]
    dtype: str
    min: float
    max: float
    absmax: float
    nonfinite: int = 0

    @classmethod
    def of(cls, arr: np.ndarray, dtype: str) -> "Range":
        a = np.asarray(arr)
        fin = a[np.isfinite(a)] if a.dtype.kind == "f" and not np.isfinite(a).all() else a
        if fin.size == 0:
            return cls(tuple(a.shape), dtype, math.nan, math.nan, math.nan, int(a.size))
        low, high = float(fin.min()), float(fin.max())
        return cls(tuple(a.shape), dtype, low, high, max(-low, high), int(a.size - fin.size))

    def __str__(self) -> str:
        bad = f", {self.nonfinite} non-finite" if self.nonfinite else ""
        return f"{self.dtype}{list(self.shape)} min {self.min:.4g} max {self.max:.4g} |max| {self.absmax:.4g}{bad}"


@dataclass
class Finding:
    """The op where a problem starts."""

    kind: str  # overflow | nan | inf | underflow | drift
    op: str
    op_type: str
    index: int
    device: str
    output: str
    message: str
    rel_err: float
    psnr: float
    output_range: Range  # fp32 reference
    inputs: dict[str, Range] = field(default_factory=dict)  # fp32 reference ranges (constants marked)
    fix: str = ""

    def render(self) -> str:
        lines = [
            f"{self.kind} at op {self.op!r} ({self.op_type}, #{self.index}, on {self.device})",
            f"  {self.message}",
            "  inputs (fp32 reference):",
        ]
        lines += [f"    {name:<12} {r}" for name, r in self.inputs.items()]
        lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


@dataclass
class OutputCheck:
    name: str
    rel_err: float
    psnr: float
    nonfinite: int
    ok: bool

    def __str__(self) -> str:
        bad = f", {self.nonfinite} non-finite" if self.nonfinite else ""
        return f"{self.name}: rel err {self.rel_err:.2e}, PSNR {self.psnr:.1f} dB{bad} -> {'ok' if self.ok else 'FAIL'}"


@dataclass
class NumericsReport:
    model: str
    placement: str
    accumulator: str
    threshold: float
    min_psnr: float
    findings: list[Finding]
    outputs: list[OutputCheck]  # fp16 emulation vs fp32
    reference: list[OutputCheck]  # fp32 executor vs the torch source module
    ops: list[dict[str, Any]]  # per-op comparison
    warnings: list[str] = field(default_factory=list)
    inputs: str = "given"

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def ok(self) -> bool:
        return not self.findings and all(o.ok for o in self.outputs + self.reference)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["first"] = asdict(self.first) if self.first else None
        d["ok"] = self.ok
        return json_safe(d)

    def render(self) -> str:
        lines = [
            f"numerics: {self.model}",
            f"placement: {self.placement}; accumulator: {self.accumulator}; "
            f"drift threshold: rel err {self.threshold:g} or PSNR < {self.min_psnr:g} dB; inputs: {self.inputs}",
        ]
        if self.first:
            lines += ["", "FIRST PROBLEM: " + self.first.render()]
            if len(self.findings) > 1:
                lines += ["", f"{len(self.findings) - 1} more independent problem(s):"]
                lines += [f"  - {f.kind} at {f.op!r} ({f.op_type}, #{f.index}): {f.message}" for f in self.findings[1:]]
        else:
            lines += ["", "no op overflows, goes NaN/inf or drifts past the threshold in fp16 emulation"]
        lines += ["", "outputs (fp16 emulation vs fp32):"] + [f"  {o}" for o in self.outputs]
        if self.reference:
            lines += ["", "reference (fp32 executor vs torch module):"] + [f"  {o}" for o in self.reference]
        if self.warnings:
            lines += ["", "warnings:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    __str__ = render


def json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


# ------------------------------------------------------------------ fixes

KEEP_FP32 = (
    "or keep the op in fp32: convert with compute_precision=ct.transform.FP16ComputePrecision("
    "op_selector=lambda op: op.name != {name!r}) (it then runs on the CPU or GPU)"
)
MATMUL_LIKE = ("conv", "conv_transpose", "linear", "matmul", "einsum")
NORMS = ("layer_norm", "instance_norm", "batch_norm", "l2_norm", "local_response_norm")


def fix_for(kind: str, op: Op, consumers: dict[str, list[Op]], ref: dict[str, np.ndarray]) -> str:
    """A concrete change to try for a problem starting at ``op``."""
    t = op.type
    nxt = {c.type for v in op.outputs for c in consumers.get(v.name, [])}
    absmax = max(
        (float(np.nanmax(np.abs(ref[v.name]))) for v in op.outputs if v.name in ref and ref[v.name].size), default=0.0
    )
    k = 2 ** max(1, math.ceil(math.log2(max(absmax, 1.0) / 16384)))  # bring the peak down to ~16K
    if kind == "underflow":
        text = (
            f"values sit below fp16's smallest normal ({FP16_MIN_NORMAL:.1e}) and lose precision: scale this tensor up "
            "(e.g. multiply attention probabilities by 64 before P@V and divide after, ane-rules NU-5)"
        )
    elif kind == "nan":
        text = (
            "NaN from inf-inf, 0*inf or a log/sqrt/pow of a value fp16 rounding pushed below zero: clamp the input "
            "(e.g. clamp(min=1e-4)) or remove the upstream overflow"
        )
    elif t in MATMUL_LIKE and kind in ("overflow", "inf"):
        text = (
            f"the output exceeds fp16's ±65504: rescale, e.g. divide this layer's weights and bias by {k} and undo it "
            "after (fold the factor into the next scale-invariant normalisation or layer)"
        )
    elif t in NORMS:
        text = (
            "normalisation over large activations overflows fp16 in (x - mean)^2 (ane-rules NU-3): divide the input by "
            "a constant first (LayerNorm is scale-invariant; scale eps by the square), as ml-ane-transformers' "
            "LayerNormANE does"
        )
    elif t in ("square", "pow", "mul") and nxt & {"reduce_mean", "reduce_sum"}:
        text = (
            "a variance/RMS computed from squares (a decomposed GroupNorm/RMSNorm) overflows fp16: divide x by its "
            "max (or a constant) before squaring, or use a fused layer_norm/instance_norm"
        )
    elif t in ("exp", "exp2") and nxt & {"reduce_sum", "reduce_mean"}:
        text = "exp then sum is a naive log-sum-exp: subtract the max first, or use torch.logsumexp / softmax"
    elif t in ("exp", "exp2", "pow", "softplus", "cosh", "sinh"):
        text = (
            "the function grows past fp16's range (exp(x) overflows for x > 11.09): use a stable formulation, "
            "e.g. subtract the max before exp, softplus as torch.where(x > 10, x, F.softplus(x))"
        )
    elif t in ("reduce_sum", "reduce_mean", "reduce_prod", "reduce_sum_square", "reduce_l2_norm", "cumsum"):
        text = (
            "a long reduction exceeds fp16 (or loses precision): reduce x / n instead of x, or split the reduction "
            "into chunks"
        )
    elif t in ("add", "sub") and kind in ("overflow", "inf"):
        text = (
            "a residual stream grows past fp16 (ane-rules NU-1): scale the branch (or the weights feeding it) down, "
            "or clamp to ±65000"
        )
    elif t in ("floor", "ceil", "round", "sign", "cast", "greater", "less", "equal", "greater_equal", "less_equal"):
        text = "a discontinuous op amplifies fp16 rounding of its input: compute its input in fp32 or add a margin"
    elif kind == "drift":
        text = "fp16 precision loss accumulates here: rescale the inputs toward 1, or compute this op in fp32"
    else:
        text = "the value leaves fp16's range: rescale this op's inputs"
    return text + "; " + KEEP_FP32.format(name=op.name.removesuffix("_cast_fp16"))


# ------------------------------------------------------------------ analysis


def compare(op: Op, ref: dict, emu: dict, bad: set[str], drifted: set[str], threshold: float, min_psnr: float):
    """Classify one op's outputs; returns (kind | None, the metrics of its worst output, the metrics of each output by
    name) and updates the bad/drifted sets."""
    inherited_bad = any(v.name in bad for v in op.runtime_inputs())
    inherited_drift = any(v.name in drifted for v in op.runtime_inputs())
    result, metrics, each = None, {}, {}
    for v in op.outputs:
        b, a = ref.get(v.name), emu.get(v.name)
        if a is None or b is None or a.dtype.kind != "f" or a.shape != b.shape:
            if inherited_bad:
                bad.add(v.name)
            continue
        a32, b32 = a.astype(np.float32, copy=False), b.astype(np.float32, copy=False)
        fa, fb = np.isfinite(a32), np.isfinite(b32)
        new_bad = fb & ~fa
        err, p = errors(a32, b32, fa & fb)
        absmax = float(np.abs(b32 if fb.all() else b32[fb]).max()) if fb.any() else 0.0
        each[v.name] = {
            "output": v.name,
            "rel_err": err,
            "psnr": p,
            "ref_absmax": absmax,
            "new_nonfinite": int(new_bad.sum()),
        }
        if not metrics or (each[v.name]["new_nonfinite"], -p) > (metrics["new_nonfinite"], -metrics["psnr"]):
            metrics = each[v.name]
        if new_bad.any() or inherited_bad:
            bad.add(v.name)
            if new_bad.any() and not inherited_bad and result is None:
                over = new_bad & (np.abs(b32) > FP16_MAX)
                kind = "overflow" if over.any() else "nan" if np.isnan(a32[new_bad]).any() else "inf"
                result = (kind, v, each[v.name])
        elif err > threshold or p < min_psnr:
            drifted.add(v.name)
            if not inherited_drift and result is None:
                result = ("underflow" if absmax < FP16_MIN_NORMAL * 64 else "drift", v, each[v.name])
    return result, metrics, each


def describe(kind: str, out: Value, m: dict, threshold: float, min_psnr: float) -> str:
    if kind == "overflow":
        return (
            f"output {out.name!r} reaches |x| = {m['ref_absmax']:.6g} in fp32, beyond fp16's 65504: "
            f"{m['new_nonfinite']} value(s) became inf"
        )
    if kind in ("nan", "inf"):
        return (
            f"output {out.name!r} has {m['new_nonfinite']} {kind} value(s) in fp16 where fp32 is finite "
            f"(fp32 |max| {m['ref_absmax']:.4g}): an intermediate inside the op left fp16's range"
        )
    return (
        f"output {out.name!r} drifts: rel err {m['rel_err']:.3g} (threshold {threshold:g}), PSNR {m['psnr']:.1f} dB "
        f"(minimum {min_psnr:g}), fp32 |max| {m['ref_absmax']:.4g}"
    )


def input_ranges(op: Op, ranges: dict[str, Range]) -> dict[str, Range]:
    """The fp32 ranges of the op's inputs: constants from their data, the rest from ``ranges`` (by value name)."""
    out = {}
    for arg, vals in op.inputs.items():
        for i, v in enumerate(vals if isinstance(vals, list) else [vals]):
            key = arg if not isinstance(vals, list) else f"{arg}[{i}]"
            if v.is_const:
                data = v.data()
                if isinstance(data, np.ndarray) and data.dtype.kind == "f" and data.size > 1:
                    out[key] = Range.of(data, f"const {v.type.dtype}")
            elif v.name in ranges:
                out[key] = ranges[v.name]
    return out


def numerics(
    model: Any,
    inputs: dict[str, Any] | None = None,
    reference: Any = "fp32",
    threshold: float = 0.05,
    min_psnr: float = 35.0,
    devices: Any = None,
    accumulator: str = "fp32",
    seed: int = 0,
    example_inputs: Any = None,
    max_findings: int = 20,
) -> NumericsReport:
    """Compare fp16 emulation with fp32 op by op and report where fp16 breaks the model.

    ``model``: a path, MLModel, ir.Model or torch module (+ ``example_inputs``; then it is also the
    reference). ``reference``: "fp32" (the executor in fp32) or a torch module whose outputs the
    converted model's fp32 outputs are checked against as well. ``devices``: placement for the
    emulation (see :func:`anedoctor.execute.resolve_devices`; :func:`anedoctor.numerics` defaults it
    to the placement ``anedoctor.check`` predicts)."""
    torch_ref = reference if hasattr(reference, "forward") else model if hasattr(model, "forward") else None
    if reference is not None and torch_ref is None and reference != "fp32":
        raise ModelError(f"unknown reference {reference!r}: use 'fp32' or a torch.nn.Module")
    m = load_model(model, example_inputs)
    if not m.graphs:
        raise ModelError(f"{m.path}: the model has no neural network to execute")
    graph = m.graphs[0]
    feeds = check_inputs(graph, inputs if inputs is not None else default_inputs(m, graph, example_inputs, seed))
    graphs = m.prediction_graphs()
    consumers = {name: ops for g in graphs for name, ops in g.consumers().items()}
    into_softmax = {v.name for g in graphs for op in g.ops if op.type in SOFTMAX_LIKE for v in op.runtime_inputs()}
    dtypes = {v.name: v.type.dtype for g in graphs for v in g.inputs}
    ranges = {name: Range.of(a, dtypes.get(name, str(np.asarray(a).dtype))) for name, a in feeds.items()}
    neginf = {name for name, a in feeds.items() if name in into_softmax and np.isneginf(np.asarray(a)).any()}
    findings, rows, warnings = [], [], []
    bad: set[str] = set()
    drifted: set[str] = set()

    def visit(step, ref_vals: dict[str, np.ndarray], emu_vals: dict[str, np.ndarray]) -> None:
        op = step.op
        device = step.device if step.emulate else "-"
        for v in op.outputs:
            if v.name in ref_vals:
                ranges[v.name] = Range.of(ref_vals[v.name], v.type.dtype)
                if v.name in into_softmax and np.isneginf(ref_vals[v.name]).any():
                    neginf.add(v.name)
        res, metrics, _ = compare(op, ref_vals, emu_vals, bad, drifted, threshold, min_psnr)
        if metrics:
            rows.append({"op": op.name, "type": op.type, "index": op.index, "device": device, **metrics})
        warnings.extend(op_warnings(op, device, ref_vals, neginf))
        if res and len(findings) < max_findings:
            kind, out, mt = res
            findings.append(
                Finding(
                    kind,
                    op.name,
                    op.type,
                    op.index,
                    device,
                    out.name,
                    describe(kind, out, mt, threshold, min_psnr),
                    mt["rel_err"],
                    mt["psnr"],
                    ranges[out.name],
                    input_ranges(op, ranges),
                    fix_for(kind, op, consumers, ref_vals),
                )
            )

    ref, emu = side_by_side(m, m, feeds, visit, "fp16", devices, accumulator, seed)
    outputs = [output_check(n, emu.outputs[n], ref.outputs[n], threshold, min_psnr) for n in ref.outputs]
    reference_checks = (
        torch_reference(torch_ref, graph, feeds, ref.outputs, threshold, min_psnr, warnings) if torch_ref else []
    )
    source = (
        "given"
        if inputs is not None
        else "the example inputs"
        if example_inputs is not None
        else f"generated (seed {seed})"
    )
    return NumericsReport(
        m.path,
        emu.placement,
        accumulator,
        threshold,
        min_psnr,
        findings,
        outputs,
        reference_checks,
        rows,
        warnings,
        source,
    )


def op_warnings(op: Op, device: str, outputs: dict[str, np.ndarray], neginf: set[str]) -> list[str]:
    """Problems fp16 emulation cannot show: -inf masks into ANE softmax (``neginf``: the values whose fp32 reference
    holds -inf), and fp32 values beyond fp16 range in ops placed on the CPU (they would overflow if the op moved to
    the ANE/GPU); ``outputs``: the op's fp32 outputs."""
    out = []
    if device == "ane" and op.type in SOFTMAX_LIKE and any(v.name in neginf for v in op.runtime_inputs()):
        out.append(
            f"op {op.name!r} ({op.type}) on the ANE receives -inf (an attention mask?): the ANE mishandles IEEE "
            "-inf in softmax (ane-rules NU-2); use a large finite negative such as -1e4"
        )
    if device == "cpu":
        for v in op.outputs:
            a = outputs.get(v.name)
            if (
                a is not None
                and a.dtype.kind == "f"
                and a.size
                and np.nanmax(np.abs(np.where(np.isfinite(a), a, 0))) > FP16_MAX
            ):
                out.append(
                    f"op {op.name!r} ({op.type}) produces |x| > 65504 in fp32; it is placed on the CPU here, "
                    "but would overflow on the ANE or GPU"
                )
    return out


def output_check(name: str, a: np.ndarray, b: np.ndarray, threshold: float, min_psnr: float) -> OutputCheck:
    if a.dtype.kind != "f":
        same = bool(np.array_equal(a, b))
        return OutputCheck(name, 0.0 if same else 1.0, math.inf if same else 0.0, 0, same)
    err, p = errors(a, b)
    nonfinite = int((~np.isfinite(a.astype(np.float32)) & np.isfinite(b)).sum())
    return OutputCheck(name, err, p, nonfinite, nonfinite == 0 and err <= threshold and p >= min_psnr)


def torch_reference(
    module, graph, feeds, outputs: dict[str, np.ndarray], threshold, min_psnr, warnings
) -> list[OutputCheck]:
    """Run the source torch module on the same inputs and compare with the converted model in fp32."""
    import torch

    arrays = [np.asarray(feeds[v.name]) for v in graph.inputs if v.name in feeds]
    args = [torch.from_numpy(a.astype(np.float32) if a.dtype.kind == "f" else a) for a in arrays]  # modules run in fp32
    with torch.no_grad():
        res = module.eval()(*args)
    flat = []

    def walk(x):
        if isinstance(x, torch.Tensor):
            flat.append(x.detach().cpu().numpy())
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(res)
    if len(flat) != len(outputs):
        warnings.append(
            f"the torch module returns {len(flat)} tensor(s), the model {len(outputs)}: compared by position"
        )
    return [
        output_check(name, ours, theirs, threshold, min_psnr) for (name, ours), theirs in zip(outputs.items(), flat)
    ]
