"""Whole-model latency and energy: what each op, segment and device switch costs on a chip.

The segmenter's per-op estimates (:class:`anedoctor.cost.CostModel`) mimic Core ML's own cost
estimator, which is what placement follows; this module models what the hardware then does, from
the chip's published figures (:mod:`anedoctor.hardware`) and the few constants fitted by
``bench/calibrate.py`` (:mod:`anedoctor.cost.fitted`).

The Neural Engine is the neural processor circuit of Apple's patents (US 11,537,838 "Scalable neural
network processing engine"; US 2025/0165784 "Splitting of input data", A) as reverse-engineered in
https://github.com/751K/Apple-Neural-Engine-Microarchitecture-Study-M6 (notes/compute_array.md, R):
- MAC ops (conv, linear, matmul, attention) run on 256 fp16 MACs per core per cycle at the clock the
  chip's fp16 peak implies, at a utilisation set by how well the op fills the array: output channels
  spread over the cores in groups, the reduction length (Cin/groups x kernel) filling each core's
  lanes, output pixels filling the work units (128 pixels per NE);
- elementwise / norm / layout ops run on the planar engine at elements per cycle (M6: ~120 G
  elements/s per ANE at 2.58 GHz, notes/compute_array.md, R), serially with the MAC array; an
  activation, bias, scale or residual add right after a MAC op is done by its post-processor
  (fused: no extra pass, no memory round trip; maderix "Inside the M4 ANE" part 2 measured fused
  matmul+bias+relu 5.7x faster than unfused, https://github.com/maderix/ANE, R); a quantize / dequantize
  between ANE ops is a format conversion of the pass that writes / reads the int8 tensor, which moves at one
  byte per element (W8A8);
- weights stream from DRAM through the kernel DMA at the chip's measured ANE weight bandwidth
  (Anemll-bench); activations stay in the 2 MiB on-chip buffer between chained ops of one segment
  (eiln/ane docs, https://github.com/eiln/ane, R) and otherwise move at the activation DMA's rate (fitted, the same
  on every chip, as measured on an M1 and an M5), faster (a fitted factor) when the tensor fits the SoC's
  system-level cache, which the ANE compiler plans with;
  per op ``max(compute, memory)`` (double-buffered tiles overlap DMA and compute) plus a fitted fixed cost per
  pass (every op not fused into the pass before it, but a reshape that leaves the innermost axis alone);
- each ANE segment pays one dispatch (on macOS the generation's measured per-call overhead, on iOS a fitted one
  scaled by it); each device switch a fitted cost plus an fp16<->fp32 copy of
  the tensors that cross (751K notes/coreml_dispatch.md, R: ~90 us for 1-2 MB on M6).
CPU and GPU ops are rooflines over the chip's own CPU/GPU peak and memory bandwidth.
Energy: ANE 0.7 pJ/MAC, and apart from it the DRAM traffic at 50 pJ per byte, 10 on a system-level-cache hit (751K
notes/power.md; compiler model, R); CPU and GPU
at an assumed active power (no published per-inference figure): labelled an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..hardware import Chip, Target
from ..ir.compression import stored_bytes
from .fitted import FITTED
from .work import ATTENTION, BINARY_ELEMENTWISE, CONV, FREE, MAC_CLASSES, MATMUL, TRANSCENDENTAL, cost_class

L2_BYTES = 2 << 20  # on-chip buffer one operand can stay in (eiln/ane MMIO map; 751K, R)
# The system-level cache ("MCache") the ANE compiler plans with: 16 MiB in the SoC parameters of H13 (A14 / M1)
# through H18, 24 MiB for the "s" variants, 36 MiB for H19 (ZinIrSocVariantParams, dumped in
# github.com/751K/Apple-Neural-Engine-Microarchitecture-Study-M6 notes/comparison.md, R; its power model charges
# 10 pJ per byte on a hit against 50 from DRAM). A spilled activation up to this size is read back at the fitted
# ane_slc_speedup times the DRAM activation rate.
SLC_BYTES = 16 << 20
# Output pixels a work unit fills: 128-256 per NE in 751K's compiler performance CSV (R); 64 here, because
# the one-token lm_head streams weights at 126 GB/s on M4 Pro (Anemll-bench), which needs >= 0.7% of the
# MAC peak at one pixel: 1/128 of the array would make it compute-bound.
WORK_UNIT_PIXELS = 64
OUT_CHANNEL_GROUP = 64  # 16 NEs x 4 output channels per cycle in fp16 (Bryngelson via 751K, R)
REDUCTION_FULL = 512  # reduction length (Cin/groups x kernel) that fills a core: 512-ch 1x1 convs reach
#                      98.8% of peak, 64-ch chains ~20% (maderix part 1, via 751K notes/maderix_summary.md, R)
PE_ELEMENTS_PER_CYCLE = 120e9 / 2.58e9  # planar engine, M6 single op (751K notes/compute_array.md, R)
PE_PASSES = {
    "softmax": 6,
    "log_softmax": 6,
    "layer_norm": 6,
    "batch_norm": 2,
    "instance_norm": 6,
    "l2_norm": 3,
    "local_response_norm": 4,
}  # softmax/layer_norm lower to 6-7 primitives (maderix part 3, R)
FUSABLE = {
    "relu",
    "relu6",
    "clip",
    "sigmoid",
    "tanh",
    "silu",
    "gelu",
    "leaky_relu",
    "prelu",
    "elu",
    "softplus",
    "sigmoid_hard",
    "scaled_tanh",
    "batch_norm",
    "linear_activation",
    "thresholded_relu",
    "softsign",
    "erf",
    "swish",
} | BINARY_ELEMENTWISE
PJ_PER_MAC = 0.7  # fp16, M6 SMC fit (751K notes/power.md, R)
PJ_PER_DRAM_BYTE = 50.0  # ANECompiler power model (HAL 0x890) via 751K notes/power.md (R)
PJ_PER_SLC_BYTE = 10.0  # the same model, a system-level-cache hit
SWITCH_COPY_GBPS = 40.0  # fp16<->fp32 cast + copy at a switch: ~90 us for 1-2 MB on M6 (751K, R)
ASSUMED_WATTS = {"cpu": {"ios": 2.0, "macos": 5.0}, "gpu": {"ios": 1.5, "macos": 0.4}}  # per GPU core on macOS
GATHER = {"gather", "gather_nd", "gather_along_axis"}
BOUNDS = ("compute", "weights", "activations", "overhead", "fused")
# A measured profile's latency factor: (cost class, device) -> factor; cost class None asks for the device's own
# (applied to its segment launches). anedoctor.measure.profile.Profile.latency_factor is one.
LatencyScale = Callable[[str | None, str], float]


@dataclass
class OpTime:
    ms: float
    bound: str  # compute | weights | activations | overhead | fused
    macs: float = 0.0
    dram_bytes: float = 0.0
    slc_bytes: float = 0.0


@dataclass
class SegmentCost:
    part: str
    device: str
    start: int  # index into the placement list, inclusive
    end: int
    ops_ms: float
    launch_ms: float


@dataclass
class SwitchCost:
    part: str
    after: int
    before: int
    src: str
    dst: str
    ms: float
    bytes: int


@dataclass
class Breakdown:
    """Latency of one inference: per op, per segment and per switch, and energy per device."""

    latency_ms: float
    segments: list[SegmentCost] = field(default_factory=list)
    switches: list[SwitchCost] = field(default_factory=list)
    device_ms: dict[str, float] = field(default_factory=dict)
    energy_mj: dict[str, float] = field(default_factory=dict)

    @property
    def energy_total_mj(self) -> float:
        return sum(self.energy_mj.values())


def constants(overrides: dict | None = None) -> dict:
    """The fitted constants, with ``overrides`` (calibration) on top."""
    return {**FITTED["constants"], **(overrides or {})}


def weight_bytes(op, decompressed: bool = False) -> int:
    """Bytes of constant weights the op streams: compressed size when a constexpr op decompresses them (their
    dense size with ``decompressed``). A gather from a constant table reads only the rows it returns (counted as
    its output)."""
    if op.type in GATHER:
        return sum(v.type.nbytes for v in op.outputs)
    total = 0
    for v in op.input_values():
        if v.is_const:
            total += v.type.nbytes if v.type.numel and v.type.numel > 16 else 0
        elif v.producer is not None and v.producer.type.startswith("constexpr_"):
            total += v.type.nbytes if decompressed else stored_bytes(v.producer)
    return total


# Compressed weights stream at their compressed size from iOS 18 / macOS 15 on, and at their fp16 size before
# (inferred, I): on iOS 17 Apple's palettized (2-8 bit), int8 and 75%-sparse ResNet-50 ran 1.28-1.50 ms on an
# iPhone 14 Pro / 15 Pro against 1.52 / 1.38 ms in fp16 (opt-palettization-perf, opt-quantization-perf,
# opt-pruning-perf), on the iOS 18 seed the 15 Pro's 4- and 6-bit ones 1.12 / 1.25 against 1.63 ms (opt-resnet),
# all apple.github.io/coremltools/docs-guides (A); on macOS 15 4-bit Llama-2 MLPs 3.2x faster than fp16
# (smpanaro/coreml-joint-compression-test, M). A W8A8 op reads its int8 weights as int8 on either.
COMPRESSED_STREAM_IOS = 18


def _dims(op, flops: int) -> tuple[int, int, int, int]:
    """(output channels, reduction length, output pixels, independent batches) of a MAC op."""
    out = op.outputs[0].type.shape if op.outputs and op.outputs[0].type.is_static else ()
    if op.type in CONV:
        w = op.input("weight")
        wshape = w.type.shape if w is not None and w.type.is_static else ()
        if len(wshape) < 3 or len(out) < 3:
            return 1, 1, 1, 1
        cout = wshape[0] if op.type == "conv" else wshape[1] * int(op.param("groups", 1) or 1)
        return cout, math.prod(wshape[1:]), math.prod(out[2:]), out[0]
    if op.type in ATTENTION:
        q = op.input("query")
        qs = q.type.shape if q is not None and q.type.is_static else ()
        return (qs[-1], qs[-1], qs[-2], math.prod(qs[:-2])) if len(qs) >= 2 else (1, 1, 1, 1)
    n = math.prod(out) if out else 0
    if not n or not flops:
        return 1, 1, 1, 1
    reduction = max(1, flops // (2 * n))
    if len(out) == 4 and op.type != "matmul":  # (B, C, H, W): the ANE layout, channels on axis 1 (split einsum)
        return out[1], reduction, out[2] * out[3], out[0]
    # (..., M, N) = (..., M, K) @ (..., K, N): N output channels, M pixels, the leading axes (heads) batches
    return out[-1], reduction, out[-2] if len(out) > 1 else 1, math.prod(out[:-2]) if len(out) > 2 else 1


def work_unit_fill(pixels: int) -> float:
    """Share of the work units the output pixels of one image fill (the images of a batch follow one another)."""
    return pixels / (math.ceil(pixels / WORK_UNIT_PIXELS) * WORK_UNIT_PIXELS)


def ane_fill(op, flops: int = 0) -> float:
    """Fraction of the MAC array an op keeps busy (channel groups, reduction lanes, work units)."""
    cout, reduction, pixels, _ = _dims(op, flops)
    out_fill = cout / (math.ceil(cout / OUT_CHANNEL_GROUP) * OUT_CHANNEL_GROUP)
    lane_fill = math.sqrt(min(1.0, reduction / REDUCTION_FULL))
    return max(out_fill * lane_fill * work_unit_fill(pixels), 1e-3)


# W8A8: on A17 Pro / M4 and newer an int8 x int8 pass packs two output channels per accumulator, 512 instead
# of 256 MACs per core and cycle (github.com/751K/Apple-Neural-Engine-Microarchitecture-Study-M6
# notes/compute_array.md, R; maderix "Inside the M4 ANE", github.com/maderix/ANE, R; Apple: "increased
# throughput for int8-int8 compute on A17 Pro/M4", apple.github.io/coremltools/docs-guides opt-quantization-perf, A).
# Older chips gain less: the M1's HAL has a dual-INT8 MAC mode (Bryngelson via 751K, R) and Apple's iPhone 14 Pro
# (A16) ran W8A8 ResNet-50 and MobileNetV2 1.6-1.8x faster than fp16 (opt-quantization-perf, A), so their factor
# is fitted (ane_int8_speedup_before_a17). Weight-only int8 gains nothing here: its weights are decompressed to fp16
# (only weight bytes shrink).
INT8_MAC_SPEEDUP = 2.0


def activations(op) -> list:
    """The op's runtime inputs that are activations: a weight decompressed by a constexpr op at load time is
    streamed as a weight (:func:`weight_bytes`, at its compressed size), not read as an activation."""
    return [v for v in op.runtime_inputs() if v.producer is None or not v.producer.type.startswith("constexpr_")]


def int8_activations(op) -> bool:
    """Whether the op's activations arrive as int8 (a ``dequantize`` of an int8/uint8 tensor feeds it)."""
    return any(
        v.producer is not None
        and v.producer.type == "dequantize"
        and any(i.type.dtype in ("int8", "uint8") for i in v.producer.runtime_inputs())
        for v in op.runtime_inputs()
    )


def mac_kind(op) -> str | None:
    """'conv' | 'linear' | 'matmul' (two runtime operands) | None for ops without a MAC array pass."""
    if op.type in CONV or op.type == "linear":
        return "conv" if op.type in CONV else "linear"
    if op.type in MATMUL or op.type in ATTENTION:
        const = any(
            v.is_const or (v.producer is not None and v.producer.type.startswith("constexpr_"))
            for v in op.input_values()
            if v.type.rank and v.type.rank >= 2
        )
        return "linear" if const else "matmul"
    return None


class LatencyModel:
    """Per-op times on the three devices of one target's chip, with the fitted constants; ``scale`` (a measured
    profile's :data:`LatencyScale`) multiplies each op's time and each segment launch, None keeps the model's.
    The target's OS decides how compressed weights stream."""

    def __init__(self, target: Target, overrides: dict | None = None, scale: LatencyScale | None = None):
        self.chip = chip = target.chip
        self.scale = scale
        self.streams_compressed = target.os.ios >= COMPRESSED_STREAM_IOS
        self.k = k = constants(overrides)
        self.ane_macs_per_ms = chip.ane_macs_per_cycle * chip.ane_ghz * 1e6
        self.pe_per_ms = PE_ELEMENTS_PER_CYCLE * chip.ane_ghz * 1e6 * k["ane_pe_scale"]
        self.weight_per_ms = chip.ane_weight_gbps * 1e6
        self.act_per_ms = min(k["ane_activation_gbps"], chip.dram_gbps) * 1e6  # the DMA engine's rate, on any chip
        self.cpu_flops_per_ms = chip.cpu_gflops * 1e6
        self.cpu_matrix_flops_per_ms = chip.cpu_matrix_gflops * 1e6
        self.cpu_bytes_per_ms = chip.dram_gbps * k["cpu_bandwidth_fraction"] * 1e6
        self.gpu_flops_per_ms = chip.gpu_tflops * 1e9
        self.gpu_bytes_per_ms = chip.dram_gbps * k["gpu_bandwidth_fraction"] * 1e6

    def ane(self, op, flops: int, dram_bytes: float, slc_bytes: float = 0.0) -> OpTime:
        """One pass on the ANE; ``dram_bytes`` are the activations it moves that miss the on-chip buffer and the
        system-level cache, ``slc_bytes`` those that miss the buffer and fit the cache."""
        k = self.k
        int8 = int8_activations(op)
        wbytes = weight_bytes(op, decompressed=not (self.streams_compressed or int8))
        weights_ms = wbytes / self.weight_per_ms
        act_ms = (dram_bytes + slc_bytes / k["ane_slc_speedup"]) / self.act_per_ms
        kind = mac_kind(op)
        if kind:
            macs = flops / 2
            compute_ms = macs / (self.ane_macs_per_ms * ane_fill(op, flops) * k[f"ane_{kind}_efficiency"])
            if int8:
                compute_ms /= INT8_MAC_SPEEDUP if self.chip.fast_int8 else k["ane_int8_speedup_before_a17"]
        else:
            macs = 0.0
            compute_ms = self._pe_elements(op) / self.pe_per_ms
        overhead_ms = k["ane_op_us"] / 1000 if op.type not in FREE or moves_last_axis(op) else 0.0
        busy = max(compute_ms, weights_ms + act_ms)  # weights and activations share the DMA engines
        if compute_ms >= weights_ms + act_ms:
            bound = "compute"
        else:
            bound = "weights" if weights_ms >= act_ms else "activations"
        ms = self._scaled(overhead_ms + busy, cost_class(op.type), "ane")
        return OpTime(ms, bound if busy > overhead_ms else "overhead", macs, wbytes + dram_bytes, slc_bytes)

    def _scaled(self, ms: float, cls: str | None, device: str) -> float:
        return ms if self.scale is None else ms * self.scale(cls, device)

    def _pe_elements(self, op) -> float:
        if op.type in FREE:
            return 0.0
        out = sum(v.type.numel or 0 for v in op.outputs)
        ins = max((v.type.numel or 0 for v in op.runtime_inputs()), default=0)
        cls = cost_class(op.type)
        if cls == "pool":
            k = op.param("kernel_sizes", [1])
            return out * max(1, int(math.prod(k)) // 4)
        passes = PE_PASSES.get(op.type, 2 if op.type in TRANSCENDENTAL else 1)
        return passes * max(out, ins)

    def roofline(self, device: str, op, flops: int, nbytes: int) -> OpTime:
        """One op on the CPU or GPU: per-op cost + max(FLOPs / peak, bytes / bandwidth)."""
        k = self.k
        cls = cost_class(op.type)
        moved = 0 if op.type in FREE else nbytes
        if op.type in GATHER:
            moved = 2 * weight_bytes(op) + sum(v.type.nbytes for v in activations(op))
        if device == "cpu":
            if cls in MAC_CLASSES:  # on the matrix coprocessor, the rest on NEON
                kind = "linear" if mac_kind(op) == "linear" else "mac"
                peak = self.cpu_matrix_flops_per_ms * k[f"cpu_{kind}_efficiency"]
            else:
                peak = self.cpu_flops_per_ms
            compute, memory, over = flops / peak, moved / self.cpu_bytes_per_ms, k["cpu_op_us"]
            if op.type == "select":  # Core ML's CPU select: a per-element kernel, not a stream
                compute = max(compute, sum(v.type.numel or 0 for v in op.outputs) * k["cpu_select_ns"] / 1e6)
        else:
            eff = k["gpu_mac_efficiency"] if cls in MAC_CLASSES else 1.0
            compute, memory, over = flops / (self.gpu_flops_per_ms * eff), moved / self.gpu_bytes_per_ms, k["gpu_op_us"]
        busy = max(compute, memory)
        bound = "compute" if compute >= memory else ("weights" if weight_bytes(op) * 2 > moved else "activations")
        ms = self._scaled(over / 1000 + busy, cls, device)
        return OpTime(ms, bound if busy * 1000 > over else "overhead", flops / 2, moved)

    def dispatch_ms(self) -> float:
        return dispatch_ms(self.chip, self.k)

    def launch_ms(self, device: str) -> float:
        launch = {"ane": self.dispatch_ms(), "gpu": self.k["gpu_launch_ms"], "cpu": 0.0}[device]
        return self._scaled(launch, None, device)

    def switch_ms(self, nbytes: int) -> float:
        return self.k["switch_ms"] + nbytes / (SWITCH_COPY_GBPS * 1e6)


# Per-call overhead of one ANE request, measured per generation on the direct path (us): M1 (H13) ~190 (~130 of it the
# firmware round trip), M4 (H16) 90-95, M5 Pro (H17) ~70 (github.com/751K/Apple-Neural-Engine-Microarchitecture-Study-M6
# and maderix "Inside the M4 ANE", github.com/maderix/ANE, R). Generations between two measured ones are interpolated
# geometrically, those outside take the nearest measured one (derived, U).
CALL_OVERHEAD_US = {13: 190.0, 16: 92.5, 17: 70.0}
DISPATCH_REFERENCE_TIER = 16  # the fitted ane_dispatch_ms_ios is an H16 (A17 Pro) chip's


def call_overhead_us(tier: int) -> float:
    """The per-call overhead of an ANE generation: measured, or interpolated between measured generations."""
    known = sorted(CALL_OVERHEAD_US)
    tier = min(max(tier, known[0]), known[-1])
    lo, hi = max(t for t in known if t <= tier), min(t for t in known if t >= tier)
    share = (tier - lo) / (hi - lo) if hi > lo else 0.0
    return CALL_OVERHEAD_US[lo] * (CALL_OVERHEAD_US[hi] / CALL_OVERHEAD_US[lo]) ** share


def dispatch_ms(chip: Chip, k: dict) -> float:
    """What one ANE segment's launch costs on ``chip``: on macOS its generation's measured per-call overhead; on iOS
    the fitted dispatch (on an H16 chip) scaled by that overhead."""
    if chip.platform == "macos":
        return call_overhead_us(chip.tier) / 1000
    return k["ane_dispatch_ms_ios"] * call_overhead_us(chip.tier) / CALL_OVERHEAD_US[DISPATCH_REFERENCE_TIER]


def _fusable(op, producer_op, device_of, consumers) -> bool:
    """An elementwise op the ANE post-processor does in the pass of the MAC op (or fused chain) before it."""
    if op.type not in FUSABLE or producer_op is None or device_of.get(id(producer_op)) != "ane":
        return False
    return len(consumers.get(producer_op.outputs[0].name, ())) == 1


def gated_activations(placements, device_of, consumers) -> set[int]:
    """Ids of the ``f`` and the ``mul`` of each ``mul(x, f(x))`` on the ANE, ``f`` an activation read only by the
    ``mul`` and ``x`` read only by the two: hard-swish (coremltools lowers torch's to ``mul(x, sigmoid_hard(x))``)
    and swish written out. The product is one function of ``x``, which the post-processor's LUT activation can
    evaluate in the pass that makes ``x``, as it does ``silu`` (inferred, I: the ANE's activation is a LUT,
    github.com/maderix/ANE, R; with two planar-engine passes per hard-swish Apple's 0.13 ms MobileNetV3-small on an
    A16, apple.github.io/coremltools/docs-guides opt-quantization-perf, A, is out of reach)."""
    out = set()
    for p in placements:
        op = p.op
        ins = op.runtime_inputs()
        if op.type != "mul" or len(ins) != 2 or p.device != "ane":
            continue
        for x, g in (ins, ins[::-1]):
            f = g.producer
            if (
                f is not None
                and f.type in FUSABLE - BINARY_ELEMENTWISE
                and device_of.get(id(f)) == "ane"
                and f.runtime_inputs() == [x]
                and consumers.get(g.name) == [op]
                and sorted(map(id, consumers.get(x.name, ()))) == sorted((id(f), id(op)))
            ):
                out |= {id(f), id(op)}
                break
    return out


def _quantized_on_write(op, producer_op, device_of) -> bool:
    """A ``quantize`` of a tensor made on the ANE: the pass that makes the tensor writes it as int8 (the ANE's
    tensor formats are int8 / uint8 / fp16, rule DT-9; W8A8 runs as int8 chains, Apple's opt-quantization-perf)."""
    made = producer_op is not None and producer_op.type != "dequantize"  # a requantize is a pass of its own
    return op.type == "quantize" and made and device_of.get(id(producer_op)) == "ane"


def _before_round_trip(v, consumers):
    """``x`` when ``v`` is ``dequantize(quantize(x))`` and nothing else reads the pair: W8A8 graphs put one between a
    conv and its activation, which the conv's pass still applies before it writes int8 (Apple's W8A8 MobileViTv2, SiLU
    after each conv, ran 15-24% faster than fp16 on an A16 / A17 Pro, opt-quantization-perf, A); else ``v``."""
    dq = v.producer
    q = dq.runtime_inputs()[0].producer if dq is not None and dq.type == "dequantize" and dq.runtime_inputs() else None
    if q is None or q.type != "quantize" or len(consumers.get(v.name, ())) != 1:
        return v
    return q.runtime_inputs()[0] if len(consumers.get(q.outputs[0].name, ())) == 1 else v


def _dequantized_on_read(op, device_of, consumers) -> bool:
    """A ``dequantize`` whose readers all run on the ANE: each reads the int8 tensor itself."""
    readers = consumers.get(op.outputs[0].name, ()) if op.type == "dequantize" and op.outputs else ()
    return bool(readers) and all(device_of.get(id(c)) == "ane" for c in readers)


def op_times(
    placements, target: Target, overrides: dict | None = None, scale: LatencyScale | None = None
) -> list[OpTime]:
    """Per-op times of one graph's placements (in execution order) on ``target``, with on-chip residency and
    fusion; ``scale``: a measured profile's factors (see :class:`LatencyModel`)."""
    model = LatencyModel(target, overrides, scale)
    device_of = {id(p.op): p.device for p in placements}
    position = {id(p.op): i for i, p in enumerate(placements)}
    segment_id, seg = [], 0
    for i, p in enumerate(placements):
        seg += i > 0 and p.device != placements[i - 1].device
        segment_id.append(seg)
    consumers: dict[str, list] = {}
    for p in placements:
        for v in p.op.runtime_inputs():
            consumers.setdefault(v.name, []).append(p.op)
    # op id of each op done in the pass before it (a MAC op's or a fused chain's) -> op id of the pass it is done in
    root: dict[int, int] = {}
    on_read = set()  # ids of dequantize ops their ANE readers do themselves
    gated = gated_activations(placements, device_of, consumers)
    for p in placements:
        if p.device != "ane":
            continue
        op = p.op
        first = op.runtime_inputs()[0] if op.runtime_inputs() else None
        producer = first.producer if first is not None else None
        source = _before_round_trip(first, consumers).producer if first is not None else None
        if _quantized_on_write(op, producer, device_of):
            root[id(op)] = root.get(id(producer), id(producer))
        elif (id(op) in gated or _fusable(op, source, device_of, consumers)) and (
            id(source) in root or mac_kind(source)
        ):
            root[id(op)] = root.get(id(source), id(source))
        if _dequantized_on_read(op, device_of, consumers):
            on_read.add(id(op))

    def pass_of(op) -> int:
        return root.get(id(op), id(op))

    def read(v):
        """What an ANE op reads for ``v``: the int8 tensor when ``v`` is dequantized on read."""
        return v.producer.runtime_inputs()[0] if v.producer is not None and id(v.producer) in on_read else v

    def made_in(v, key: int) -> bool:
        """``v`` is made within the pass ``key`` (by its op or by one fused into it)."""
        return v.producer is not None and pass_of(v.producer) == key

    def readers_of(v) -> list:
        """The ops that read ``v``, through the dequantize ops their readers do themselves."""
        return [r for c in consumers.get(v.name, ()) for r in (readers_of(c.outputs[0]) if id(c) in on_read else [c])]

    def carried_on(v) -> bool:
        """``v`` is never written: its readers all continue the pass that makes it (fused, or quantized on write)."""
        readers = readers_of(v)
        return bool(readers) and all(id(r) in root and made_in(v, pass_of(r)) for r in readers)

    traffic: dict[int, tuple[float, float]] = {}  # op id -> activation bytes its pass moves [from DRAM, from the SLC]
    for i, p in enumerate(placements):
        op = p.op
        if p.device != "ane" or id(op) in on_read:
            continue
        key = pass_of(op)  # a fused op's traffic is its pass's
        moved = []
        for v in map(read, activations(op)):
            if made_in(v, key):  # the pass's own result, still in the post-processor
                continue
            j = position.get(id(v.producer)) if v.producer is not None else None
            if j is None or segment_id[j] != segment_id[i] or v.type.nbytes > L2_BYTES:
                moved.append(v)
        for v in op.outputs:
            if carried_on(v):
                continue
            outside = any(
                segment_id[position[id(c)]] != segment_id[i] for c in consumers.get(v.name, ()) if id(c) in position
            )
            if outside or v.name not in consumers or v.type.nbytes > L2_BYTES:
                moved.append(v)
        if moves_last_axis(op):
            moved += [*op.runtime_inputs()[:1], *op.outputs]
        from_dram, from_slc = traffic.get(key, (0.0, 0.0))
        for v in moved:
            if v.type.nbytes > SLC_BYTES:
                from_dram += v.type.nbytes
            else:
                from_slc += v.type.nbytes
        traffic[key] = (from_dram, from_slc)
    times = []
    for p in placements:
        op = p.op
        if p.device != "ane":
            times.append(model.roofline(p.device, op, p.flops, p.bytes))
        elif id(op) in root or id(op) in on_read:
            times.append(OpTime(0.0, "fused"))
        else:
            times.append(model.ane(op, p.flops, *traffic.get(id(op), (0.0, 0.0))))
    return times


def moves_last_axis(op) -> bool:
    """A reshape or transpose that changes the innermost (64-byte aligned, contiguous) axis: on the ANE a
    memory copy, as Apple's ANE transformer principles warn (https://github.com/apple/ml-ane-transformers
    README, machinelearning.apple.com/research/neural-engine-transformers, A)."""
    if op.type not in ("transpose", "reshape") or not op.runtime_inputs() or not op.outputs:
        return False
    src, dst = op.runtime_inputs()[0].type.shape, op.outputs[0].type.shape
    if not src or not dst:
        return False
    if op.type == "transpose":
        perm = [int(i) for i in (op.param("perm", None) if op.param("perm", None) is not None else [])]
        return bool(perm) and perm[-1] % len(perm) != len(perm) - 1 and src[-1] > 1
    return src[-1] != dst[-1]


def breakdown(
    placements, target: Target, overrides: dict | None = None, scale: LatencyScale | None = None
) -> Breakdown:
    """Whole-model latency of placements whose ``time_ms`` is set: ops + segment launches + switches.
    ``scale`` (the factors the ops were timed with) rescales the launches; switches keep the model's cost
    (a one-op probe, all a profile measures, has none)."""
    model = LatencyModel(target, overrides, scale)
    result = Breakdown(0.0)
    start = 0
    for i in range(1, len(placements) + 1):
        if (
            i < len(placements)
            and placements[i].device == placements[start].device
            and placements[i].part == placements[start].part
        ):
            continue
        run = placements[start:i]
        seg = SegmentCost(
            run[0].part, run[0].device, start, i - 1, sum(p.time_ms for p in run), model.launch_ms(run[0].device)
        )
        if result.segments and result.segments[-1].part == seg.part:
            prev = result.segments[-1]
            nbytes = crossing_bytes(placements, prev, seg)
            result.switches.append(
                SwitchCost(seg.part, prev.end, seg.start, prev.device, seg.device, model.switch_ms(nbytes), nbytes)
            )
        result.segments.append(seg)
        start = i
    for s in result.segments:
        result.device_ms[s.device] = result.device_ms.get(s.device, 0.0) + s.ops_ms + s.launch_ms
    switch_total = sum(s.ms for s in result.switches)
    result.device_ms["cpu"] = result.device_ms.get("cpu", 0.0) + switch_total  # the CPU does the copies
    result.latency_ms = sum(result.device_ms.values())
    result.energy_mj = energy(placements, result, target.chip)
    return result


def crossing_bytes(placements, before: SegmentCost, after: SegmentCost) -> int:
    """Bytes of the tensors produced in or before ``before`` and read in ``after`` (what a switch copies)."""
    inside = {id(p.op) for p in placements[before.start : before.end + 1]}
    seen, total = set(), 0
    for p in placements[after.start : after.end + 1]:
        for v in p.op.runtime_inputs():
            if id(v) not in seen and v.producer is not None and id(v.producer) in inside:
                seen.add(id(v))
                total += v.type.nbytes
    return total


def energy(placements, result: Breakdown, chip: Chip) -> dict[str, float]:
    """mJ per inference per power rail: the ANE from pJ/MAC, the DRAM traffic it causes from pJ/byte (the memory
    rail, kept apart so the ANE figure compares with powermetrics' ANE power), CPU and GPU from an assumed
    active power."""
    out = {}
    ane = [p for p in placements if p.device == "ane"]
    if ane:
        out["ane"] = sum(getattr(p, "macs", 0.0) for p in ane) * PJ_PER_MAC * 1e-9
        out["dram"] = (
            sum(getattr(p, "dram_bytes", 0.0) for p in ane) * PJ_PER_DRAM_BYTE
            + sum(getattr(p, "slc_bytes", 0.0) for p in ane) * PJ_PER_SLC_BYTE
        ) * 1e-9
    if result.device_ms.get("cpu"):
        out["cpu"] = result.device_ms["cpu"] * ASSUMED_WATTS["cpu"][chip.platform]
    if result.device_ms.get("gpu"):
        watts = ASSUMED_WATTS["gpu"][chip.platform] * (chip.gpu_cores if chip.platform == "macos" else 1)
        out["gpu"] = result.device_ms["gpu"] * watts
    return out
