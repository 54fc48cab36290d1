"""Predict where Core ML runs each op: eligibility (rules) then a cost-based segmenter.

Eligibility: every op rule and graph rule runs; a finding that blocks a device removes it
from the op's supported set. The CPU can run everything.

Placement: Core ML's E5 compiler picks a minimum-cost assignment of ops to backends over the
dataflow graph. We first order the ops so that independent ops eligible on the same devices run
together (a topological order that changes device class only when no op of the current class is
ready), then solve the shortest path over that order (a dynamic programme over one state per
device) with the chip's per-op estimates and the launch/switch/output charges of
:mod:`anedoctor.cost` (under 'all' on macOS 14 and earlier, ops the ANE does not take go to the GPU:
:func:`gpu_takes_cpu_work`; on macOS 13 split-einsum attention heads too: :func:`gpu_takes_split_attention`).
Last, :mod:`anedoctor.cost.latency` times every placed op.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from dataclasses import dataclass, field

from .cost import LAUNCH_MS, OUTPUT_ON_ACCEL_MS, SWITCH_MS, CostModel
from .cost.latency import LatencyScale, op_times
from .cost.work import BINARY_ELEMENTWISE, bytes_moved, flops
from .hardware import COMPUTE_UNITS, SEGMENTER_ORDER, Target
from .ir import Graph, Model, Op
from .rules import RULES, Context, Rule
from .rules.measured import lift_overridden

HEAD_SLICES = {"split", "slice_by_index", "slice_by_size"}  # how split-einsum attention takes one head
SCORE_MAKERS = BINARY_ELEMENTWISE | {"einsum"}  # the ops that make and adjust a head's attention scores


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
    avoids: frozenset[str] = frozenset()  # supported devices the segmenter is predicted not to choose
    device: str = "cpu"
    extra: dict[str, float] = field(default_factory=dict)  # per-op figures later analyses add
    time_ms: float = 0.0  # estimated time on its device (anedoctor.cost.latency)
    bound: str = ""  # what limits it: compute | weights | activations | overhead | fused
    macs: float = 0.0
    dram_bytes: float = 0.0
    slc_bytes: float = 0.0


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


def gpu_takes_cpu_work(target: Target, allowed: tuple[str, ...]) -> bool:
    """Whether Core ML is predicted to give the GPU the ops the ANE does not take, rather than the CPU.

    Both published whole-model plans of a Mac under compute units 'all' before macOS 15 have no op on the CPU:
    on an M1 Max, macOS 13, GPT-2 ran GPU 975 / ANE 370 where CPUAndNeuralEngine put 8 ops on the CPU, and
    nanoGPT ANE 361 / GPU 117 where CPUAndNeuralEngine put 67 there (github.com/smpanaro/more-ane-transformers,
    src/experiments/NOTES.md, March 25-26 2023). CoreMLInspect shows GPT-2's embedding gather preferred on the GPU
    over the CPU on macOS 14.4+ (github.com/smpanaro/CoreMLInspect README). On M4, macOS 27 tiny models stay on the
    CPU under ALL (vx-lang/Vx #435), so the scope ends at macOS 14 (macOS 12 and earlier are assumed to behave as
    13). iPhones are left out: no plan shows their edge ops, and the A14 latencies of ModelBench fit a CPU edge
    better. Whole-model counts, not per-op read-outs: confidence I."""
    return "gpu" in allowed and target.os.platform == "macos" and target.os.ios <= 17


def gpu_takes_split_attention(target: Target, allowed: tuple[str, ...]) -> bool:
    """Whether Core ML is predicted to run split-einsum attention heads (:func:`split_attention_heads`) on the
    GPU rather than the ANE: rule SEG-3, whose scope (Macs, macOS 13 and earlier) and evidence it documents."""
    return "gpu" in allowed and "ane" in allowed and RULES["SEG-3"].applies(target)


def split_attention_heads(placements: list[OpPlacement], readers: dict[str, list[Op]]) -> set[int]:
    """Ids of the ops of per-head einsum attention (Apple's split einsum, github.com/apple/ml-ane-transformers
    multihead_attention.py): an einsum of two activations split or sliced per head, the elementwise ops on its
    scores (scale, masks), the softmax over them and the einsum that weighs the values with it; ``readers`` maps
    a value's name to the ops that read it (Graph.consumers)."""
    heads = set()
    for p in placements:
        if p.op.type != "softmax" or not p.op.runtime_inputs():
            continue
        chain, scores = [p.op], p.op.runtime_inputs()[0].producer
        while scores is not None and scores.type in BINARY_ELEMENTWISE:
            chain.append(scores)
            scores = next((v.producer for v in scores.runtime_inputs() if from_chain(v)), None)
        weighing = readers.get(p.op.outputs[0].name, [])
        if scores is None or not weighing or not all(map(per_head_einsum, [scores, *weighing])):
            continue
        heads.update(id(op) for op in [*chain, scores, *weighing])
    return heads


def mark_avoided(placements: list[OpPlacement], ctx: Context, allowed: tuple[str, ...]) -> None:
    """Set the supported devices the segmenter is predicted not to choose: the CPU for ops an allowed accelerator
    can run (:func:`gpu_takes_cpu_work`), the ANE for split-einsum attention heads
    (:func:`gpu_takes_split_attention`)."""
    if gpu_takes_cpu_work(ctx.target, allowed):
        for p in placements:
            if any(p.supported[d] for d in allowed if d != "cpu"):
                p.avoids |= {"cpu"}
    if gpu_takes_split_attention(ctx.target, allowed):
        heads = split_attention_heads(placements, ctx.consumers)
        for p in placements:
            if id(p.op) in heads:
                p.avoids |= {"ane"}


def from_chain(v) -> bool:
    """``v`` is made by an einsum or an elementwise op (the scores), not read from an input or a cast mask."""
    return v.producer is not None and v.producer.type in SCORE_MAKERS


def per_head_einsum(op: Op) -> bool:
    """An einsum of two activations, one of them split or sliced off a larger tensor (one head of several)."""
    operands = op.runtime_inputs()
    return (
        op.type == "einsum"
        and len(operands) == 2
        and any(v.producer is not None and v.producer.type in HEAD_SLICES for v in operands)
    )


def segment(placements: list[OpPlacement], allowed: tuple[str, ...]) -> None:
    """Assign devices minimising op time + launch/switch/output costs (shortest path).

    One state per device; entering a device from another costs the switch, plus the launch when
    the device is an accelerator. Ties go to the first device in SEGMENTER_ORDER. No op goes to a device it
    ``avoids`` (:func:`mark_avoided`)."""
    inf = float("inf")
    best = [0.0 if d == "cpu" else inf for d in SEGMENTER_ORDER]  # start: inputs live in CPU memory
    entry = [LAUNCH_MS if d != "cpu" else 0.0 for d in SEGMENTER_ORDER]  # the first op: no switch yet
    switched_entry = [LAUNCH_MS + SWITCH_MS if d != "cpu" else SWITCH_MS for d in SEGMENTER_ORDER]
    back: list[tuple[int, ...]] = []
    for p in placements:
        supported, cost = p.supported, p.cost_ms
        nxt, choice = [], []
        for i, d in enumerate(SEGMENTER_ORDER):
            if d not in allowed or not supported[d] or d in p.avoids:
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


HEAD_ON_GPU = Finding(
    RULES["SEG-3"],
    "part of a split-einsum attention head: under 'all' on macOS 13 Core ML is predicted to run the heads on the "
    "GPU (GPT-2 in the ANE layout ran 72% of its ops there on an M1 Max)",
)


def explain_off_ane(placements: list[OpPlacement], allowed: tuple[str, ...]) -> None:
    """Attach a placement reason to each ANE-eligible op that did not land on the ANE.

    Eligible ops kept off the ANE are explained per run (contiguous eligible ops on one device):
    what moving the run to the ANE would save against what opening the segment would cost; the ops the
    segmenter is predicted to avoid the ANE for (split-einsum heads) by rule SEG-3."""
    n, i = len(placements), 0
    while i < n:
        p = placements[i]
        if p.device == "ane" or not p.supported["ane"]:
            i += 1
            continue
        hi = i
        while hi + 1 < n and placements[hi + 1].supported["ane"] and placements[hi + 1].device == p.device:
            hi += 1
        run = placements[i : hi + 1]
        movable = [q for q in run if "ane" not in q.avoids]
        if "ane" not in allowed:
            finding = Finding(RULES["CU-1"], "the compute units exclude the Neural Engine")
        else:
            saving = sum(q.cost_ms[p.device] - q.cost_ms["ane"] for q in movable)
            price = LAUNCH_MS + (SWITCH_MS if i > 0 else 0.0) + (SWITCH_MS if hi < n - 1 else OUTPUT_ON_ACCEL_MS)
            gain = f"save only ~{saving:.3f} ms" if saving > 0 else f"be no faster (~{-saving:.3f} ms slower)"
            finding = Finding(
                RULES["SEG-2" if p.device == "gpu" else "SEG-1"],
                f"ANE-eligible, but moving the {len(movable)} eligible op(s) around it from the "
                f"{p.device.upper()} to the ANE would {gain}, while an ANE segment there costs "
                f"~{price:.3f} ms (launch, switches)",
            )
        for q in run:
            q.findings.append(HEAD_ON_GPU if "ane" in q.avoids else finding)
        i = hi + 1


def schedule(placements: list[OpPlacement], allowed: tuple[str, ...]) -> list[OpPlacement]:
    """A topological order of the ops that keeps ops of one device class (the allowed devices each can
    run on and does not avoid) together: stay on the current class while any of its ops is ready, else take the earliest
    ready op. The graph starts where its inputs are, on the CPU, so CPU-only ops that are ready at the
    start (input casts, int32 mask arithmetic) run first. Ops keep their listed order when nothing is
    gained, so a chain is never reordered."""
    n = len(placements)
    position = {id(p.op): i for i, p in enumerate(placements)}
    users: list[list[int]] = [[] for _ in range(n)]
    waiting = [0] * n
    for i, p in enumerate(placements):
        preds = {
            position[id(v.producer)]
            for v in p.op.input_values()
            if v.producer is not None and id(v.producer) in position
        }
        waiting[i] = len(preds)
        for j in preds:
            users[j].append(i)
    kind = [tuple(p.supported[d] and d not in p.avoids for d in allowed) for p in placements]
    ready: dict[tuple, list[int]] = {}
    for i in range(n):
        if not waiting[i]:
            heapq.heappush(ready.setdefault(kind[i], []), i)
    order: list[int] = []
    current = tuple(d == "cpu" for d in allowed)  # the class of ops only the CPU can run
    while len(order) < n:
        heap = ready.get(current)
        if not heap:
            current = min((h[0], k) for k, h in ready.items() if h)[1]
            heap = ready[current]
        i = heapq.heappop(heap)
        order.append(i)
        for j in users[i]:
            waiting[j] -= 1
            if not waiting[j]:
                heapq.heappush(ready.setdefault(kind[j], []), j)
    return [placements[i] for i in order]


def time_ops(
    placements: list[OpPlacement], target: Target, scale: LatencyScale | None = None, overrides: dict | None = None
) -> None:
    """Set each placed op's estimated time and bound (anedoctor.cost.latency); ``scale``: a measured
    profile's latency factors (Profile.latency_factor), None for the model's own times; ``overrides``: constants
    other than the fitted ones (bench/calibrate.py)."""
    for p, t in zip(placements, op_times(placements, target, overrides, scale)):
        p.time_ms, p.bound, p.macs, p.dram_bytes, p.slc_bytes = t.ms, t.bound, t.macs, t.dram_bytes, t.slc_bytes


def place_graph(
    graph: Graph,
    model: Model,
    target: Target,
    compute_units: str,
    rules: Collection[str] | None = None,
    profile=None,
) -> list[OpPlacement]:
    """Eligibility, costs and devices for every (non-constant) op of one graph; ``rules`` limits the
    rules that run to these ids (None: all); a measured ``profile`` (anedoctor.measure.profile.Profile)
    feeds the MS rules and scales the op costs and the op times."""
    ctx = Context(target, model, graph, typed=bool(graph.opset), profile=profile)
    graph_findings, graph_notes = [], []
    for r in RULES.values():
        if r.level == "graph" and r.applies(target) and (rules is None or r.id in rules):
            out = r.check(graph, ctx)
            if out is not None:
                message, apple = out if isinstance(out, tuple) else (out, None)
                (graph_findings if r.blocking else graph_notes).append(Finding(r, message, apple))
    op_rules = [r for r in RULES.values() if r.level == "op" and r.applies(target) and (rules is None or r.id in rules)]
    rules_by_type: dict[str, list[Rule]] = {}
    costs = CostModel(target, profile.cost_factor if profile is not None else None)
    placements = []
    for op in graph.ops:
        if op.type.startswith("constexpr_"):
            continue  # materialised weights, not work placed on a device
        if op.type not in rules_by_type:
            rules_by_type[op.type] = [r for r in op_rules if r.ops is None or op.type in r.ops]
        p = run_rules(op, ctx, graph_findings, rules_by_type[op.type])
        if profile is not None:
            lift_overridden(p)
        p.notes.extend(graph_notes)
        p.flops, p.bytes = flops(op), bytes_moved(op)
        p.cost_ms = costs.op_costs(op.type, p.flops, p.bytes)
        placements.append(p)
    allowed = COMPUTE_UNITS[compute_units]
    mark_avoided(placements, ctx, allowed)
    placements = schedule(placements, allowed)
    segment(placements, allowed)
    explain_off_ane(placements, allowed)
    if profile is None:
        time_ops(placements, target)
    else:
        time_ops(placements, target, profile.latency_factor, profile.latency_overrides())
    return placements
