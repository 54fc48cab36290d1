"""Constants of the latency model fitted by ``bench/calibrate.py`` (generated below; re-run it to change them).

Every other figure of the model is a chip spec (anedoctor.hardware) or a published measurement cited
where it is used (anedoctor.cost.latency). What each constant is, the evidence it started from, and
whether the fit moves it (bounds in bench/calibrate.py FREE):
- ane_conv_efficiency / ane_linear_efficiency / ane_matmul_efficiency (fitted): attainable fraction of
  the filled MAC array for convs, constant-weight linears (channels on the last axis) and matmuls of two
  runtime tensors, on top of the array fill (cost.latency.ane_fill: a matmul's leading axes are batches, its
  last axis the output channels); start 0.6 / 0.6 / 0.3 (deep conv chains reach 95-99%, standalone matmuls 25-35%,
  whole models 20-35%: maderix "Inside the M4 ANE", github.com/maderix/ANE, R).
- ane_pe_scale (fitted): planar-engine elements per cycle relative to 751K's M6 figure (~120 G/s).
- ane_activation_gbps (fitted): the rate, in GB/s, of the activation / tile DMA for tensors that miss the 2 MiB
  buffer, the same on every chip (no faster than its DRAM): Bryngelson measured 24 GB/s on an M1 and on an M5
  (via 751K notes/bryngelson_summary.md, R), whose DRAM (68 and 153 GB/s) and weight streams differ, so the rate is
  the ANE's DMA engine's, not a share of the memory's; start 24. As a share of each chip's weight stream (the form
  before the nineteenth session) it fitted 0.54 of it: 16 GB/s on an A14 / A15, 29-34 on M1-M4, 64 on an M3 Max /
  M4 Pro / M4 Max; the engine rate took MobileCLIP-B on the A14 from 1.57x to 1.20x, the A15's Stable Diffusion from
  1.30x to 1.16x, Depth Anything on the M3 Max from 0.83x to 0.96x (BENCHMARKS.md).
- ane_slc_speedup (fitted): how many times faster than that DRAM rate a spilled activation that fits the SoC's
  system-level cache (16 MiB, cost.latency.SLC_BYTES) moves; start 1.0 (no faster), bounds 1-20. Apple's
  SD-2.1 UNet (8 MiB attention-score chunks) ran 1.76x faster on an A15 than on an A14, whose DRAM is the same
  (ml-stable-diffusion README, A); with every spill at the DRAM rate the estimate gave 1.04x.
- ane_op_us (fitted): a fixed cost per ANE pass (an op not fused into the pass before it; a reshape that leaves the
  innermost axis alone is no pass), in us on every chip; start 0.02, the per task descriptor figure (44 cycles in the
  compiler's cost model, <= 13 ns measured on M6; 751K, R), bounds 0-5. The fit puts it near 1 us, some 80 times
  that figure, so it is not the descriptors' cost but what each layer pays however small its tensors (inferred, I:
  e.g. its first tiles' DMA before the MAC array starts and its last write after it stops); the probes pass_chain_1
  and pass_chain_33 (`anedoctor probes build`) measure it on a Mac, and a profile's measured value replaces this
  one (Profile.ane_pass_us). With it the launches the fit found came near the measured per-call overheads (macOS
  0.078 ms at H16 against the M4's measured 0.0925; 0.166 without it), and Apple's MobileViTv2 (369 ops in 1.4 ms)
  is no longer 0.71-0.82x. Scaled by the ANE clock instead (a cost in cycles) it fitted worse (fit median 1.10x against
  1.09x; BENCHMARKS.md, eighteenth session).
- ane_dispatch_ms_ios (fitted): one per ANE segment on an H16 iPhone chip (A17 Pro); other generations scale it by
  their measured per-call overhead (cost.latency.CALL_OVERHEAD_US: M1 ~190 us, M4 ~92.5, M5 Pro ~70; 751K and
  maderix, R), so an A14 pays 2.05x the A17 Pro's. Start 0.08 ms (iOS 17: MobileNetV3-small runs in 0.13 ms on A16,
  apple.github.io/coremltools opt-quantization-perf). On macOS a segment's launch is that measured per-call overhead
  itself (not fitted: free, the fit drove it to its 0.01 ms bound, below every measurement).
- cpu_mac_efficiency / gpu_mac_efficiency (fitted): fraction of one P-cluster's matrix coprocessor (AMX) fp32
  peak (anedoctor.hardware.AMX_FP32_FLOPS_PER_CYCLE) / of the GPU's fp32 peak reached on MAC ops; start 0.5 / 0.4.
- cpu_linear_efficiency (fitted): the same fraction for constant-weight linears (channels on the last axis), which
  Core ML's CPU runs as BNNS inner products (smpanaro/more-ane-transformers NOTES.md, April 2 2023, an Instruments
  trace: "a bunch of BNNS inner products that take up almost the whole time", R); start cpu_mac_efficiency. On one
  M1 Max (macOS 13), CPU only, the (B, S, C) DistilBERT, GPT-2 and gpt2-large took 1.5-2.4x the time per MAC of
  Apple's (B, C, 1, S) DistilBERT, whose linears are 1x1 convs; the cause is not published.
- cpu_bandwidth_fraction, gpu_bandwidth_fraction, cpu_op_us, gpu_op_us, gpu_launch_ms (fixed, no data to
  fit: few published CPU/GPU whole-model figures): 0.5, 0.6, 5 us, 8 us, 0.15 ms.
- cpu_select_ns (fitted): Core ML's CPU select (masked_fill), ns per output element; start 1.0. Every published
  model that masks with masked_fill(-inf) under CPUAndNeuralEngine (select on the CPU, rule OP-19) ran slower than its
  additive-mask twin by ~3-5 ns per score element (Hugging Face vs ml-ane-transformers DistilBERT: A15 seq 128 and 512,
  M1 Max batch 2 x 256), far above what streaming the tensors at DRAM rate takes; the cause is not published.
- ane_int8_speedup_before_a17 (fitted): how much faster the ANE's MAC array runs int8 x int8 (W8A8) than fp16 on
  chips before A17 Pro / M4 (those run it at 2x, INT8_MAC_SPEEDUP); start 1.0, bounds 1-2: the M1's HAL has a
  dual-INT8 MAC mode (Bryngelson via 751K, R), and Apple's W8A8 CNNs ran 1.2-1.8x faster than fp16 on an A16
  (apple.github.io/coremltools/docs-guides opt-quantization-perf, A).
- switch_ms (fitted): per device switch, on top of the crossing tensors' copy; start 0.05 ms (~90 us for 1-2 MB
  on M6's direct path, 751K, R); Core ML's own estimator charges 0.125 ms per switch (E5 analytics, M4, M).
"""

FITTED = {
    "constants": {
        "ane_conv_efficiency": 0.899,
        "ane_linear_efficiency": 0.4841,
        "ane_matmul_efficiency": 1.0,
        "ane_pe_scale": 0.5376,
        "ane_activation_gbps": 26.1968,
        "ane_slc_speedup": 2.0227,
        "ane_op_us": 1.0281,
        "ane_dispatch_ms_ios": 0.0298,
        "cpu_mac_efficiency": 0.259,
        "cpu_linear_efficiency": 0.1222,
        "cpu_bandwidth_fraction": 0.5,
        "cpu_op_us": 5.0,
        "gpu_mac_efficiency": 0.6238,
        "gpu_bandwidth_fraction": 0.6,
        "gpu_op_us": 8.0,
        "gpu_launch_ms": 0.15,
        "switch_ms": 0.0595,
        "ane_int8_speedup_before_a17": 1.4364,
        "cpu_select_ns": 3.899,
    },
    "fit": {
        "fit": "n=69  median error 1.09x  within ±25%: 64/69  max error 1.91x",
        "holdout": "n=69  median error 1.09x  within ±25%: 61/69  max error 2.20x",
    },
}
