"""The cost model: how long each op takes on each device of a chip, and what segments cost.

The segmenter (:mod:`anedoctor.placement`) asks :class:`CostModel` for per-op times; the work
figures (FLOPs, bytes, cost class) come from :mod:`anedoctor.cost.work`.

Core ML's E5 compiler picks a minimum-cost assignment of ops to backends. On M4 (macOS 27) its
analytics record ``Launch_ane_ms = 0.125`` and ``Src_<a>_Dest_<b>_ms = 0.125``, and "+0.125 ms
per ANE segment, +0.125 ms per backend switch, +0.125 ms if the graph output is on the ANE"
reproduced 440/482 single-op models (github.com/751K/Apple-Neural-Engine-Microarchitecture-Study-M6,
notes/coreml_dispatch.md). Per-op times come from a roofline model: ``overhead + max(FLOPs /
(peak * eff), bytes / bandwidth)``. The ANE and CPU constants are fitted to the segmenter's own
per-op estimates on M4 (conv 3x3 64->64 @32x32: 4.67 vs 100.06 us; matmul; SDPA; upsample;
softmax; relu; transpose) and to the MLComputePlan size thresholds of vx-lang/Vx #435-#437 (M4).
GPU constants are the segmenter's relative anchors (6x the CPU's FLOP/s, two thirds of its bandwidth), not
a measurement. Approximations: the launch/switch constants measured on M4 are used for every chip; so are the
ANE's per-op estimates (see :func:`device_rates`); the CPU's and GPU's are scaled down on chips weaker than the M4.

Whole-model latency (what the hardware does once placed) is :mod:`anedoctor.cost.latency`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..hardware import CHIPS, SEGMENTER_ORDER, Target
from .work import FREE, MAC_CLASSES, cost_class

M4 = CHIPS["m4"]  # the chip the segmenter's estimates were read on
LAUNCH_MS = 0.125  # opening an accelerator segment (Launch_ane_ms, M4)
SWITCH_MS = 0.125  # any backend switch (Src_*_Dest_*_ms, M4)
OUTPUT_ON_ACCEL_MS = 0.125  # graph output produced on the accelerator

# Per device: peak TFLOP/s, bandwidth GB/s, per-op overhead us, as the segmenter's estimates on M4 imply
# them; the CPU and GPU scale from M4 to weaker chips by the chip's own figures (CPU P-core FLOP/s, for MAC classes
# one P-cluster's matrix unit, DRAM bandwidth, GPU TFLOP/s: anedoctor.hardware), the ANE keeps M4's on every chip
# (device_rates), so M4's fitted values are unchanged.
# The ANE's per-op cost sits just under the CPU's (the M4 estimates put a lone relu at 2.62 us on both):
# cheap ops at the edges of an ANE segment then stay on it, as whole-model plans show (a 6-layer RangeDim
# encoder 217/217 on the ANE, ask-meridian.uk; DistilBERT 602/606, apple/ml-ane-transformers README).
DEVICE_PEAKS = {"ane": (19.0, 200.0, 0.9), "cpu": (0.7, 150.0, 1.0), "gpu": (4.2, 100.0, 5.0)}
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


class CostModel:
    """Per-op time on each device for one target chip; the segmenter's only source of op costs.

    ``scale(cost_class, device)`` multiplies each estimate: a measured profile's factors for the chip
    (anedoctor.measure.profile.Profile.cost_factor); None keeps the model's own figures."""

    def __init__(self, target: Target, scale: Callable[[str, str], float] | None = None):
        self.rates = device_rates(target)
        self.scale = scale

    def op_costs(self, op_type: str, flops: int, nbytes: int) -> dict[str, float]:
        """Roofline time in ms of one op on each device: overhead + max(compute, memory)."""
        cls = cost_class(op_type)
        moved = 0 if op_type in FREE else nbytes
        costs = {}
        for device in SEGMENTER_ORDER:
            flop_rate, byte_rate, overhead_us = self.rates[cls, device]
            if device == "cpu":
                byte_rate *= CPU_BANDWIDTH_PENALTY.get(op_type, 1.0)
            compute_us = flops / flop_rate if flop_rate else float("inf")
            costs[device] = (overhead_us + max(compute_us, moved / byte_rate)) / 1000.0
            if self.scale is not None:
                costs[device] *= self.scale(cls, device)
        return costs


def device_rates(target: Target) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(cost class, device) -> (FLOPs per us, bytes per us, overhead us) on ``target``."""
    chip = target.chip
    # The GPU's estimate is NOT scaled UP by the chip's GPU size: scaled, every transformer of whisper.cpp
    # (M1 Pro, M1/M2 Ultra) and nanoGPT (M1 Max) went wholly to the GPU under 'all', while the published
    # figures say otherwise (whisper tiny 30 ms on M1 Pro vs 29 ms on M2 Ultra with a 5x GPU: ANE-bound;
    # nanoGPT 361 ANE / 117 GPU ops, github.com/smpanaro/more-ane-transformers NOTES.md; and with the default
    # compute units whisper.cpp's encoder ran on the ANE of an M1 Ultra whose GPU was far faster,
    # github.com/ggml-org/whisper.cpp/issues/966, C). Scaling only the activation x activation classes (matmul,
    # attention, softmax) moves whisper's large attention to the GPU before GPT-2's small per-head ops, the
    # opposite of the published plans. Core ML's estimator is a learned tree over op features (ane-guide
    # ch. 18, R), which need not see the GPU size. The CPU's FLOP/s are not scaled up either (the cores of a Pro/Max
    # against the M4's: scaled, the M1 Max kept 13 of GPT-2's ops on the CPU under CPUAndNeuralEngine, 10 unscaled,
    # published 8, smpanaro/more-ane-transformers). Both are scaled DOWN on chips weaker than the M4 (FLOPs and, as
    # for the CPU, DRAM bandwidth): unscaled, an A15's 5-core GPU looked as fast as an M4's, and an iOS 16
    # DistilBERT whose masks run on the CPU (OP-19) went wholly to it under 'all', 2.8x slower by the latency model.
    # The ANE's estimate is the M4's on every chip, its FLOP/s and its bandwidth (confidence I): the published plans
    # of an M1 Max (macOS 13, Xcode, smpanaro/more-ane-transformers NOTES.md) are those of Core ML pricing its ANE as
    # the M4's, not at the M1 Max's fp16 peak (0.58x the M4's). Hugging Face's DistilBERT ran 85% of its ops on the
    # ANE there, as on an A15 (Xcode: 228 of 266, 85.7%); scaled, the segmenter moved each layer's softmax and V
    # transpose to the CPU (80.3%). GPT-2 in the ANE layout kept 8 ops on the CPU (10 scaled, 8 unscaled), nanoGPT
    # 86.1% of its ops on the ANE (80.3% scaled, 84.2% unscaled). What it costs: nanoGPT under 'all' puts 16.1% of its
    # ops on the GPU, against 26.7% scaled and 24.5% published.
    scale = {
        "ane": 1.0,
        "cpu": min(1.0, chip.cpu_gflops / M4.cpu_gflops),
        "cpu_matrix": chip.cpu_matrix_gflops / M4.cpu_matrix_gflops,
        "gpu": min(1.0, chip.gpu_tflops / M4.gpu_tflops),
    }
    # Bandwidth: the ANE's is the M4's, as above. The CPU and GPU keep the M4 anchor on chips with more
    # DRAM bandwidth (a CPU scaled up by the cores of a Pro/Max took a one-token lm_head that Anemll-bench measured
    # on the ANE) and are scaled down on chips with less: neither streams faster than its DRAM (an A17 Pro has
    # 51 GB/s against the M4's 120).
    dram_share = min(1.0, chip.dram_gbps / M4.dram_gbps)
    bandwidth = {"ane": 1.0, "cpu": dram_share, "gpu": dram_share}
    rates = {}
    for cls, per_device in CLASS_EFFICIENCY.items():
        for device, (flop_eff, bw_eff) in per_device.items():
            tflops, gbps, overhead_us = DEVICE_PEAKS[device]
            tflops *= scale["cpu_matrix"] if device == "cpu" and cls in MAC_CLASSES else scale[device]
            gbps *= bandwidth[device]
            rates[cls, device] = (tflops * flop_eff * 1e6, gbps * bw_eff * 1e3, overhead_us)
    return rates
