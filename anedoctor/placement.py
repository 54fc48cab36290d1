"""Predict where Core ML runs each op: eligibility (rules) then a cost-based segmenter.

Eligibility: every op rule and graph rule runs; a finding that blocks a device removes it
from the op's supported set. The CPU can run everything.

Placement: Core ML's E5 compiler picks a minimum-cost assignment of ops to backends. On M4
(macOS 27) its analytics record ``Launch_ane_ms = 0.125`` and ``Src_<a>_Dest_<b>_ms = 0.125``,
and "+0.125 ms per ANE segment, +0.125 ms per backend switch, +0.125 ms if the graph output
is on the ANE" reproduced 440/482 single-op models (ane-rules.md §1, SEG-1). We solve the
same shortest path over the ops in execution order (a dynamic programme over one state per
device), with per-op times from a roofline model: ``overhead + max(FLOPs / (peak * eff),
bytes / bandwidth)``. The ANE and CPU constants are fitted to the segmenter's own per-op
estimates on M4 (conv 3x3 64->64 @32x32: 4.67 vs 100.06 us; matmul; SDPA; upsample; softmax;
relu; transpose; ane-rules.md §1) and to the size thresholds of GT-B. GPU constants are the
segmenter's relative anchors (GPU ~6x CPU FLOP/s, 4x bandwidth), not a measurement.
Approximations: execution order stands in for the DAG; the launch/switch constants measured
on M4 are used for every chip; ANE time scales with the chip's fp16 TFLOP/s and DRAM bandwidth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import ops as opinfo
from .chips import Target
from .ir import Graph, Model, Op
from .rules import RULES, Context, Rule, rule

DEVICES = ("cpu", "gpu", "ane")  # tie-break order: the first cheapest wins
COMPUTE_UNITS = {"all": ("cpu", "gpu", "ane"), "cpu_and_ne": ("cpu", "ane"), "cpu_and_gpu": ("cpu", "gpu"), "cpu_only": ("cpu",)}
LAUNCH_MS = 0.125  # opening an accelerator segment (Launch_ane_ms, M4)
SWITCH_MS = 0.125  # any backend switch (Src_*_Dest_*_ms, M4)
OUTPUT_ON_ACCEL_MS = 0.125  # graph output produced on the accelerator

# Per device: peak TFLOP/s, bandwidth GB/s, per-op overhead us. ANE values are for M4 (19 TFLOP/s
# fp16, 120 GB/s DRAM) and scale with the chip; CPU/GPU are M4-class and kept for all chips.
DEVICE_PEAKS = {"ane": (19.0, 200.0, 1.2), "cpu": (0.7, 150.0, 1.0), "gpu": (4.2, 100.0, 5.0)}
# Efficiency of each cost class as (FLOP efficiency, bandwidth efficiency) per device, fitted to
# the M4 segmenter estimates quoted in the module docstring and to GT-A's wrapped ("ctx") models:
# two 64-channel 3x3 convs save ~0.19 ms, less than an edge segment's 0.25 ms, while four do
# pay for it; const-weight linears (rank-3 wrappers) are estimated far cheaper on the ANE
# than on the CPU (band_part between two 128x128 linears still opened two ANE segments).
CLASS_EFFICIENCY = {
    "conv": {"ane": (1.0, 1.0), "cpu": (1.08, 1.0), "gpu": (1.0, 1.0)},
    "linear": {"ane": (0.5, 1.0), "cpu": (0.043, 1.0), "gpu": (1.0, 1.0)},
    "matmul": {"ane": (0.28, 1.0), "cpu": (1.2, 1.0), "gpu": (1.0, 1.0)},
    "attention": {"ane": (0.27, 1.0), "cpu": (6.0, 1.0), "gpu": (1.0, 1.0)},
    "norm": {"ane": (0.016, 1.0), "cpu": (0.28, 1.0), "gpu": (0.1, 1.0)},
    "resample": {"ane": (0.02, 1.0), "cpu": (0.003, 1.0), "gpu": (0.1, 1.0)},
    "pool": {"ane": (0.05, 1.0), "cpu": (0.2, 1.0), "gpu": (0.2, 1.0)},
    "layout": {"ane": (1.0, 0.5), "cpu": (1.0, 1.0), "gpu": (1.0, 1.0)},
    "elementwise": {"ane": (1.0, 1.0), "cpu": (1.0, 1.0), "gpu": (1.0, 1.0)},
    "recurrent": {"ane": (0.1, 1.0), "cpu": (0.1, 1.0), "gpu": (0.1, 1.0)},
}
CPU_BANDWIDTH_PENALTY = {"concat": 0.15}  # channel concat: 2.62 us ANE vs 22.79 us CPU on M4


@rule("SEG-1", family="placement", confidence="M", level="placement",
      source="751K notes/coreml_dispatch.md §0, §2.2-2.3 (E5 analytics.mil, M4 macOS 27); vx-lang/Vx #435-#437; ane-rules.md SEG-1..SEG-6",
      fix="Give the ANE more contiguous work: remove the CPU-only ops that split the graph, batch or enlarge the work, or use compute_units=cpu_and_ne and measure.")
def segment_too_small(graph, ctx):
    """An ANE-eligible op the segmenter is predicted to keep off the ANE.

    Opening an ANE segment costs 0.125 ms, each switch 0.125 ms and an output on the ANE
    another 0.125 ms: a segment at the edge of the graph must save >= 0.25 ms, one in the middle
    >= 0.375 ms, or Core ML keeps the work where it is."""


@rule("SEG-2", family="placement", confidence="C", level="placement",
      source="apple/ml-stable-diffusion#122 (Apple engineer on .all choosing GPU); hollance docs/other.md; segmenter cost anchors (ane-guide ch. 18, R); ane-rules.md SEG-9",
      fix="Load with compute_units=cpu_and_ne if the ANE should win, and measure.")
def gpu_preferred(graph, ctx):
    """An ANE-eligible op predicted to run on the GPU under compute units 'all'.

    With GPU allowed, the segmenter compares the ANE with the GPU: a GPU segment that already
    runs the ops Core ML cannot put on the ANE often absorbs their eligible neighbours too, to
    avoid extra switches ("ANE -> GPU just once")."""


@rule("CU-1", family="placement", confidence="A", level="placement",
      source="Core ML MLComputeUnits documentation (apple/coremltools docs-guides, compute units)",
      fix="Load the model with compute_units=all or cpu_and_ne.")
def compute_units_exclude_ane(graph, ctx):
    """The chosen compute units exclude the Neural Engine."""


@dataclass
class Finding:
    rule: Rule
    message: str
    apple_message: str | None = None


@dataclass(eq=False)
class OpPlacement:
    op: Op
    part: str
    supported: dict[str, bool]
    findings: list[Finding] = field(default_factory=list)  # blocking, plus placement reasons
    notes: list[Finding] = field(default_factory=list)  # advisory
    flops: int = 0
    bytes: int = 0
    cost_ms: dict[str, float | None] = field(default_factory=dict)
    device: str = "cpu"
    extra: dict[str, float] = field(default_factory=dict)  # per-op figures later analyses add


def run_rules(op: Op, ctx: Context, graph_findings: list[Finding], op_rules: list[Rule]) -> OpPlacement:
    p = OpPlacement(op, ctx.graph.name, {d: True for d in DEVICES})
    for f in graph_findings:
        p.findings.append(f)
        p.supported["ane"] = False
    for r in op_rules:
        out = r.check(op, ctx)
        if out is None:
            continue
        message, apple = out if isinstance(out, tuple) else (out, None)
        finding = Finding(r, message, apple)
        if r.blocking:
            p.findings.append(finding)
            for d in r.blocks:
                p.supported[d] = False
        else:
            p.notes.append(finding)
    return p


def device_rates(target: Target) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(cost class, device) -> (FLOPs per us, bytes per us, overhead us) on ``target``."""
    rates = {}
    for cls, per_device in CLASS_EFFICIENCY.items():
        for device, (flop_eff, bw_eff) in per_device.items():
            tflops, gbps, overhead_us = DEVICE_PEAKS[device]
            if device == "ane":
                tflops *= target.chip.fp16_tflops / 19.0
                gbps *= max(target.chip.dram_gbps, 1.0) / 120.0
            rates[cls, device] = (tflops * flop_eff * 1e6, gbps * bw_eff * 1e3, overhead_us)
    return rates


def op_costs(p: OpPlacement, rates: dict[tuple[str, str], tuple[float, float, float]]) -> dict[str, float]:
    """Roofline time in ms of one op on each device: overhead + max(compute, memory)."""
    op_type = p.op.type
    cls = opinfo.cost_class(op_type)
    moved = 0 if op_type in opinfo.FREE else p.bytes
    costs = {}
    for device in DEVICES:
        flop_rate, byte_rate, overhead_us = rates[cls, device]
        if device == "cpu":
            byte_rate *= CPU_BANDWIDTH_PENALTY.get(op_type, 1.0)
        compute_us = p.flops / flop_rate if flop_rate else float("inf")
        costs[device] = (overhead_us + max(compute_us, moved / byte_rate)) / 1000.0
    return costs


def segment(placements: list[OpPlacement], allowed: tuple[str, ...]) -> None:
    """Assign devices minimising op time + launch/switch/output costs (shortest path).

    One state per device; entering a device from another costs the switch, plus the launch when
    the device is an accelerator. Ties go to the first device in DEVICES."""
    inf = float("inf")
    best = [0.0 if d == "cpu" else inf for d in DEVICES]  # start: inputs live in CPU memory
    entry = [LAUNCH_MS if d != "cpu" else 0.0 for d in DEVICES]  # the first op: no switch yet
    switched_entry = [LAUNCH_MS + SWITCH_MS if d != "cpu" else SWITCH_MS for d in DEVICES]
    back: list[tuple[int, ...]] = []
    for p in placements:
        supported, cost = p.supported, p.cost_ms
        nxt, choice = [], []
        for i, d in enumerate(DEVICES):
            if d not in allowed or not supported[d]:
                nxt.append(inf)
                choice.append(i)
                continue
            arrive, came_from = inf, i
            for j, prev_cost in enumerate(best):
                c = prev_cost if j == i else prev_cost + entry[i]
                if c < arrive:
                    arrive, came_from = c, j
            nxt.append(arrive + cost[d])
            choice.append(came_from)
        back.append(tuple(choice))
        best, entry = nxt, switched_entry
    if not placements:
        return
    final = [c + (OUTPUT_ON_ACCEL_MS if d != "cpu" else 0.0) for d, c in zip(DEVICES, best)]
    i = min(range(len(DEVICES)), key=lambda k: (final[k], k))
    for p, choice in zip(reversed(placements), reversed(back)):
        p.device = DEVICES[i]
        i = choice[i]


def explain_off_ane(placements: list[OpPlacement], allowed: tuple[str, ...]) -> None:
    """Attach a placement reason to each ANE-eligible op that did not land on the ANE.

    Eligible ops kept off the ANE are explained per run (contiguous eligible ops on one device):
    what moving the run to the ANE would save against what opening the segment would cost."""
    n, i = len(placements), 0
    while i < n:
        p = placements[i]
        if p.device == "ane" or not p.supported["ane"]:
            i += 1
            continue
        hi = i
        while hi + 1 < n and placements[hi + 1].supported["ane"] and placements[hi + 1].device == p.device:
            hi += 1
        run = placements[i:hi + 1]
        if "ane" not in allowed:
            finding = Finding(RULES["CU-1"], "the compute units exclude the Neural Engine")
        else:
            saving = sum(q.cost_ms[p.device] - q.cost_ms["ane"] for q in run)
            price = LAUNCH_MS + (SWITCH_MS if i > 0 else 0.0) + (SWITCH_MS if hi < n - 1 else OUTPUT_ON_ACCEL_MS)
            gain = f"save only ~{saving:.3f} ms" if saving > 0 else f"be no faster (~{-saving:.3f} ms slower)"
            finding = Finding(RULES["SEG-2" if p.device == "gpu" else "SEG-1"],
                              f"ANE-eligible, but moving the {len(run)} eligible op(s) around it from the {p.device.upper()} to "
                              f"the ANE would {gain}, while an ANE segment there costs ~{price:.3f} ms (launch, switches)")
        for q in run:
            q.findings.append(finding)
        i = hi + 1


def place_graph(graph: Graph, model: Model, target: Target, compute_units: str) -> list[OpPlacement]:
    """Eligibility, costs and devices for every (non-constant) op of one graph."""
    ctx = Context(target, model, graph, typed=bool(graph.opset))
    graph_findings, graph_notes = [], []
    for r in RULES.values():
        if r.level == "graph" and r.applies(target):
            out = r.check(graph, ctx)
            if out is not None:
                message, apple = out if isinstance(out, tuple) else (out, None)
                (graph_findings if r.blocking else graph_notes).append(Finding(r, message, apple))
    op_rules = [r for r in RULES.values() if r.level == "op" and r.applies(target)]
    rules_by_type: dict[str, list[Rule]] = {}
    rates = device_rates(target)
    placements = []
    for op in graph.ops:
        if op.type.startswith("constexpr_"):
            continue  # materialised weights, not work placed on a device
        if op.type not in rules_by_type:
            rules_by_type[op.type] = [r for r in op_rules if r.ops is None or op.type in r.ops]
        p = run_rules(op, ctx, graph_findings, rules_by_type[op.type])
        p.notes.extend(graph_notes)
        p.flops, p.bytes = opinfo.flops(op), opinfo.bytes_moved(op)
        p.cost_ms = op_costs(p, rates)
        placements.append(p)
    allowed = COMPUTE_UNITS[compute_units]
    segment(placements, allowed)
    explain_off_ane(placements, allowed)
    return placements
