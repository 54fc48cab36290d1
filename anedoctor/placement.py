"""Predict where Core ML runs each op: eligibility (rules) then a cost-based segmenter.

Eligibility: every op rule and graph rule runs; a finding that blocks a device removes it
from the op's supported set. The CPU can run everything.

Placement: Core ML's E5 compiler picks a minimum-cost assignment of ops to backends. We solve
the same shortest path over the ops in execution order (a dynamic programme over one state per
device), with per-op times and the launch/switch/output charges from :mod:`anedoctor.cost`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .cost import LAUNCH_MS, OUTPUT_ON_ACCEL_MS, SWITCH_MS, CostModel
from .cost.work import bytes_moved, flops
from .hardware import COMPUTE_UNITS, SEGMENTER_ORDER, Target
from .ir import Graph, Model, Op
from .rules import RULES, Context, Rule


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
    p = OpPlacement(op, ctx.graph.name, {d: True for d in SEGMENTER_ORDER})
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


def segment(placements: list[OpPlacement], allowed: tuple[str, ...]) -> None:
    """Assign devices minimising op time + launch/switch/output costs (shortest path).

    One state per device; entering a device from another costs the switch, plus the launch when
    the device is an accelerator. Ties go to the first device in SEGMENTER_ORDER."""
    inf = float("inf")
    best = [0.0 if d == "cpu" else inf for d in SEGMENTER_ORDER]  # start: inputs live in CPU memory
    entry = [LAUNCH_MS if d != "cpu" else 0.0 for d in SEGMENTER_ORDER]  # the first op: no switch yet
    switched_entry = [LAUNCH_MS + SWITCH_MS if d != "cpu" else SWITCH_MS for d in SEGMENTER_ORDER]
    back: list[tuple[int, ...]] = []
    for p in placements:
        supported, cost = p.supported, p.cost_ms
        nxt, choice = [], []
        for i, d in enumerate(SEGMENTER_ORDER):
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
    final = [c + (OUTPUT_ON_ACCEL_MS if d != "cpu" else 0.0) for d, c in zip(SEGMENTER_ORDER, best)]
    i = min(range(len(SEGMENTER_ORDER)), key=lambda k: (final[k], k))
    for p, choice in zip(reversed(placements), reversed(back)):
        p.device = SEGMENTER_ORDER[i]
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
    costs = CostModel(target)
    placements = []
    for op in graph.ops:
        if op.type.startswith("constexpr_"):
            continue  # materialised weights, not work placed on a device
        if op.type not in rules_by_type:
            rules_by_type[op.type] = [r for r in op_rules if r.ops is None or op.type in r.ops]
        p = run_rules(op, ctx, graph_findings, rules_by_type[op.type])
        p.notes.extend(graph_notes)
        p.flops, p.bytes = flops(op), bytes_moved(op)
        p.cost_ms = costs.op_costs(op.type, p.flops, p.bytes)
        placements.append(p)
    allowed = COMPUTE_UNITS[compute_units]
    segment(placements, allowed)
    explain_off_ane(placements, allowed)
    return placements
