"""Published whole-model latencies and placements, each with the model that rebuilds it.

A ``Model`` says how to build the Core ML model (builder + config, input kind, deployment target);
a ``Case`` is one published measurement of one model: chip, OS, compute units, the latency in ms
and/or the op counts per device, the source a reader can follow, the conditions and a confidence
(A Apple-authored, M measured with Core ML's read-outs, R reverse-engineered, C community, D derived
from a published figure). Chip ids are anedoctor's (a14, m1 ...) with the variant appended
(m1pro, m1max, m2ultra ...). ``split`` puts roughly half of the latency cases in ``fit`` and half
in ``holdout``, alternating within each (family, chip, compute units) group, so that a setting with two figures
of a family on a chip has one on each side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

VARIANTS = ("pro", "max", "ultra")


@dataclass(frozen=True)
class Model:
    builder: str  # a function name in models / models_seq / models_mil / models_outside
    config: dict = field(default_factory=dict)
    inputs: str = "tensor"  # tensor | image (ct.ImageType) | range (RangeDim on the last axis)
    target: str = "iOS15"  # minimum_deployment_target the source converted with
    # "" = the installed coremltools and torch; else a key of build.TOOLCHAINS (kept out of repr: the build hash
    # already names the converter)
    toolchain: str = field(default="", repr=False)
    # keyword arguments of anedoctor.compress.compress applied to the converted fp16 model ("activations": N
    # calibrates W8A8 on N random inputs); kept out of repr, the build hash names it when set
    compression: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Outside:
    """Work a published figure includes that ran outside the Core ML model; the benchmark estimates it apart and
    adds it to the prediction (evaluate.outside_ms): on the GPU anedoctor's estimate of ``model`` under
    cpu_and_gpu, on the CPU its FLOPs at Accelerate's measured SGEMM rate."""

    model: str  # key of MODELS: that work as a model
    device: str  # "gpu" | "cpu"
    what: str


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    model: str  # key of MODELS
    chip: str
    os: str
    compute_units: str
    source: str
    conditions: str
    confidence: str
    latency_ms: float | None = None
    placement: dict | None = None  # published op counts per device: {'ane': .., 'gpu': .., 'cpu': ..}
    placement_is_share: bool = False  # the plan was published as shares only, entered per 100 ops
    ane_figure: bool = False  # the published latency is an ANE figure: the model should be >= 95% ANE
    outside: Outside | None = None  # work the published latency includes that ran outside the Core ML model

    @property
    def models(self) -> tuple[str, ...]:
        """Keys of MODELS the case needs: its model, and its outside work's if any."""
        return (self.model, self.outside.model) if self.outside else (self.model,)

    @property
    def base_chip(self) -> str:
        """The chip without its variant suffix (m1max -> m1)."""
        return next((self.chip[: -len(v)] for v in VARIANTS if self.chip.endswith(v)), self.chip)


# The compressed forms of Apple's coremltools benchmark tables, as anedoctor.compress options.
COMPRESSION_FORMS = {
    "w8a8": {"quantize": "int8", "activations": 4},
    "int8": {"quantize": "int8"},
    **{f"lut{bits}": {"palettize": bits} for bits in (2, 4, 6)},
    **{f"sparse{pct}": {"prune": pct / 100} for pct in (75, 90)},
}

WHISPER_SIZES = ("tiny", "base", "small", "medium", "large")
MODELS = {
    # ModelBench times prediction(input:) on a 224x224 BGRA CVPixelBuffer (apple/ml-mobileone
    # ModelBench/ModelBench/ViewController.swift): the published models take an image
    **{f"mobileone_{v}": Model("mobileone", {"variant": v}, inputs="image") for v in ("s0", "s1", "s2", "s3", "s4")},
    **{f"fastvit_{v}": Model("fastvit", {"variant": v}) for v in ("t8", "t12", "s12", "sa12", "sa24", "sa36", "ma36")},
    **{f"fastvit_{v}_ios16": Model("fastvit", {"variant": v}, target="iOS16") for v in ("t8", "ma36")},
    **{f"efficientformer_{v}": Model("efficientformer", {"variant": v}) for v in ("l1", "l3", "l7")},
    **{
        f"efficientformer_v2_{v}": Model("efficientformer_v2", {"variant": v}, target="iOS16")
        for v in ("s0", "s1", "s2", "l")
    },
    "mobilenet_v2_x1.4": Model("mobilenet_v2", {"width": 1.4}),
    "mobilenet_v2": Model("mobilenet_v2", target="iOS17"),
    "mobilenet_v2_image": Model("mobilenet_v2", inputs="image", target="iOS17"),
    "mobilenet_v3_small": Model("mobilenet_v3_small", target="iOS17"),
    "resnet50": Model("resnet", {"depth": 50}, target="iOS17"),
    "mobilevit_v2": Model("mobilevit_v2", target="iOS17"),
    # Apple's compressed variants of three of these CNNs (the cases' "compressed" family)
    **{
        f"{base}_{form}": Model(builder, config, target="iOS17", compression=COMPRESSION_FORMS[form])
        for base, builder, config, forms in [
            ("mobilenet_v2", "mobilenet_v2", {}, ("w8a8", "int8", "lut6", "lut2", "sparse75")),
            ("resnet50", "resnet", {"depth": 50}, ("w8a8", "int8", "lut6", "lut4", "lut2", "sparse75", "sparse90")),
            ("mobilevit_v2", "mobilevit_v2", {}, ("w8a8", "int8")),
        ]
        for form in forms
    },
    "mobileclip_b_image": Model("vit", {"dim": 768, "layers": 12, "heads": 12, "patch": 16}, target="iOS17"),
    "mobileclip_b_text": Model("clip_text", {"dim": 512, "layers": 12, "heads": 8}, target="iOS17"),
    "mobileclip_l_image": Model(
        "vit", {"dim": 1024, "layers": 24, "heads": 16, "patch": 14, "embed": 768}, target="iOS17"
    ),
    "mobileclip_l_text": Model("clip_text", {"dim": 768, "layers": 12, "heads": 12}, target="iOS17"),
    **{f"mobileclip_s{i}_image": Model("fastvit", {"variant": f"mci{i}"}, target="iOS17") for i in range(3)},
    "mobileclip_s0_text": Model(
        "clip_text", {"dim": 512, "layers": 4, "heads": 8, "causal": False, "repmixer": True}, target="iOS17"
    ),
    "depth_anything_small": Model("depth_anything_small", target="iOS17"),
    # Models that mask with masked_fill(-inf), measured in 2022-23 on coremltools 6 conversions, are converted by
    # coremltools 6.2 (build.TOOLCHAINS): it kept that select in fp32 between two casts, which decides their plans.
    # The CNNs of the time convert alike either way (MobileOne-S0, FastViT-T8: 91 ops each); the twins that mask by
    # addition come out the same (ANE DistilBERT on A15: 99.3% ANE, 3.75 against 3.74 ms, though coremltools 6
    # leaves 577 ops where 9 leaves 473). They keep the installed converter.
    "distilbert_ane": Model("bert_ane"),
    "distilbert_hf": Model("distilbert_hf", toolchain="coremltools6"),
    "distilbert_ane_512": Model("bert_ane", {"seq": 512}),
    "distilbert_hf_512": Model("distilbert_hf", {"seq": 512}, toolchain="coremltools6"),
    "distilbert_hf_b2_256": Model("distilbert_hf", {"seq": 256, "batch": 2}, toolchain="coremltools6"),
    "distilbert_ane_b2_256": Model("bert_ane", {"seq": 256, "batch": 2}),
    "bert_ane_512": Model("bert_ane", {"seq": 512, "layers": 12, "token_types": True, "head": "token"}, target="iOS17"),
    **{f"whisper_{s}": Model("whisper_encoder", {"size": s}) for s in WHISPER_SIZES},
    "whisper_large_v3": Model("whisper_encoder", {"size": "large", "mels": 128}),
    **{
        f"whisper_{s}_ane": Model("whisper_encoder", {"size": s, "ane": True})
        for s in ("tiny", "base", "small", "medium")
    },
    "whisper_large_v3_ane": Model("whisper_encoder", {"size": "large", "mels": 128, "ane": True}),
    **{f"whisper_cross_kv_{s}": Model("whisper_cross_kv", {"size": s}) for s in WHISPER_SIZES},
    "whisper_cross_kv_large_v3_turbo": Model("whisper_cross_kv", {"size": "large", "layers": 4}),
    "llama_lm_head": Model("lm_head", target="iOS18"),
    "llama2_mlp_x4": Model("llama_mlp", target="iOS18"),
    **{f"llama2_mlp_x4_{w}": Model("llama_mlp", {"weights": w}, target="iOS18") for w in ("lut4", "lut2", "w8a8")},
    # SD-2.1 base UNet, 6-bit palettized as ml-stable-diffusion's --quantize-nbits 6 (k-means, per tensor); the
    # deployment target of the README's iOS 17 runs is not stated [U]
    "sd21_base_unet_lut6": Model("sd_unet", target="iOS17", compression=COMPRESSION_FORMS["lut6"]),
    "gpt2_ane": Model("gpt2_ane", toolchain="coremltools6"),
    "nanogpt": Model("nanogpt", toolchain="coremltools6"),
    "gpt2_full": Model("gpt2_full", toolchain="coremltools6"),
    "gpt2_baseline": Model("gpt2_full", {"baseline": True}, toolchain="coremltools6"),
    # coremltools 6.2 needs more than 23 GB to convert gpt2-large (killed); for the base size the installed converter
    # gives 281 ops where 6.2 gives 296 (it folds the mask's band_part and a transpose per layer), estimated alike
    # (125.0 against 125.2 ms on the M1 Max under CPUAndNeuralEngine, 324.6 against 324.7 CPU only), in 3.3 GB
    # against 7.3 (gpt2-large: 10 GB).
    "gpt2_baseline_large": Model("gpt2_full", {"layers": 36, "dim": 1280, "heads": 20, "baseline": True}),
    # The notes converted these with the coremltools of March 2023 (6.x: "Just hangs in the MIL cleanup passes", an
    # hour for large); 6.2 turns base into 2,739 ops where 9 gives 2,709, estimated alike (67.8 against 67.6 ms on the
    # M1 Max under CPUAndNeuralEngine), so the installed converter builds them.
    **{
        f"reference_transformer_{size}": Model(
            "reference_transformer", {"dim": dim, "heads": heads, "decoder_layers": layers}
        )
        for size, dim, heads, layers in [("base", 768, 12, 12), ("medium", 1024, 16, 24), ("large", 1280, 20, 36)]
    },
    "meridian_realistic": Model("meridian_encoder", inputs="range", target="iOS18"),
    "meridian_tiny": Model("meridian_encoder", {"dim": 128, "layers": 2, "heads": 4}, inputs="range", target="iOS18"),
}

MOBILEONE = "https://github.com/apple/ml-mobileone (README, ImageNet table: ModelBench on iPhone 12 Pro)"
FASTVIT = "https://github.com/apple/ml-fastvit (README table and docs/latency/*.PNG, ModelBench on iPhone 12 Pro)"
FASTVIT_HF = "https://huggingface.co/apple/coreml-FastViT-{} (model card, 'Download and run' table)"
COREMLTOOLS = (
    "https://apple.github.io/coremltools/docs-guides/source/opt-quantization-perf.html "
    "(FP16 column; Xcode performance report median)"
)
EFFICIENTFORMER = "https://github.com/snap-research/EfficientFormer (README, iPhone 12 latency, coreml-performance)"
MOBILECLIP = "https://github.com/apple/ml-mobileclip (README table, iPhone 12 Pro Max)"
DEPTH_ANYTHING = "https://huggingface.co/apple/coreml-depth-anything-small (model card, revision 8771831)"
ANE_TRANSFORMERS = (
    "https://github.com/apple/ml-ane-transformers (README; assets/xcode_performance_report_comparison.png)"
)
ANE_CHART = "https://github.com/apple/ml-ane-transformers (assets/iPhone13_iOS16_latency_comparison.png)"
# The chart's absolute readings disagree with the article's own text: at seq 128 it shows ~6.5 ms for the
# ANE-optimised model on the iPhone 13, where the text gives 3.47 ms for that device and OS (and Xcode's report
# 3.48 ms on a 13 Pro Max). What the chart measured beyond the prediction is not stated, so only its ratios are
# used: each curve's seq 512 reading over its own seq 128 reading, anchored on the text / Xcode figure at 128.
CHART_512_OVER_128 = {"ane": 20.0 / 6.5, "hf": 180.0 / 21.0}
WHISPER_566 = "https://github.com/ggml-org/whisper.cpp/pull/566 (M1 Pro table, encoder time)"
WHISPER_566_M2 = "https://github.com/ggml-org/whisper.cpp/pull/566 (comment of 2023-03-06, Mac mini M2 table)"
WHISPER_1716 = "https://github.com/ggml-org/whisper.cpp/pull/1716 (M2 Ultra encoder tables)"
WHISPER_89 = "https://github.com/ggml-org/whisper.cpp/issues/89 (M1 Ultra comment, 2026-01-17)"
# whisper.cpp's encoder time (t_encode_us) also covers whisper_build_graph_cross: each decoder layer's cross-attention
# K and V, two d x d projections of the 1,500 encoder states, computed with ggml after the Core ML encoder returns
# (whisper.cpp whisper_encode_internal at 5e47e22, the merge of #566; at eaac005 of #1716; at f53dc748).
CROSS_KV = "the figure includes whisper.cpp's cross-attention K/V precompute (ggml, after the Core ML encoder)"
CROSS_KV_METAL = f"{CROSS_KV}, on the Metal backend ('COREML METAL'): anedoctor's GPU estimate added"
CROSS_KV_CPU = (
    f"{CROSS_KV}, on the CPU (#566: ggml, its matrix products by Accelerate's sgemm): its FLOPs at Accelerate's "
    "measured SGEMM rate added, a lower bound: the graph's fp16-to-fp32 weight copies (one thread), scale, bias and "
    "transposed copies are not estimated [U]"
)
WHISPER_566_RUN = (
    "bench.cpp at #566's merge (5e47e22) times the first encode after loading (no warm-up run); that cold start is not "
    "estimated"
)
ANEMLL = "https://github.com/Anemll/anemll-bench (Results.MD: ANE GB/s of llama_lm_head, 1050.67 MB fp16)"
SMPANARO_MLP = "https://huggingface.co/smpanaro/coreml-joint-compression-test (model card, Xcode median)"
OPENMED = "https://github.com/maziyarpanahi/openmed/pull/3071 (BERT token classifier on the ANE, M2 Max)"
SD_README = "https://github.com/apple/ml-stable-diffusion (README, Performance Benchmark: iOS 17 table, August 2023)"
SMPANARO_NOTES = "https://github.com/smpanaro/more-ane-transformers/blob/main/src/experiments/NOTES.md ({})"
MERIDIAN = (
    "https://ask-meridian.uk/blog/apple-neural-engine-eligibility-vs-placement/ ; "
    "https://github.com/LuuOW/meridian-mcp mlcore/ane_encoder/build/proof/proof.md"
)

MODELBENCH = "fp16, default MLModelConfiguration (all), ModelBench trimmed mean"


def latency(name, family, model, chip, os, units, ms, source, conditions, confidence, ane_figure=False, outside=None):
    return Case(
        name,
        family,
        model,
        chip,
        os,
        units,
        source,
        conditions,
        confidence,
        latency_ms=ms,
        ane_figure=ane_figure,
        outside=outside,
    )


def m1max_share_plan(name, family, model, day, conditions, ane):
    """A CPUAndNeuralEngine plan of smpanaro's M1 Max (macOS 13) notes published as a share of ops on the ANE."""
    return Case(
        name,
        family,
        model,
        "m1max",
        "macos13",
        "cpu_and_ne",
        SMPANARO_NOTES.format(day),
        f"{conditions}: published as a share, entered as {ane} of 100 ops",
        "M",
        placement={"ane": ane, "gpu": 0, "cpu": 100 - ane},
        placement_is_share=True,
    )


LATENCY_CASES = [
    *(
        latency(
            f"mobileone_{v}_a14",
            "mobileone",
            f"mobileone_{v}",
            "a14",
            "ios16",
            "all",
            ms,
            MOBILEONE,
            MODELBENCH + "; iOS 15+ [U]",
            "A",
            True,
        )
        for v, ms in [("s0", 0.79), ("s1", 0.89), ("s2", 1.18), ("s3", 1.53), ("s4", 1.86)]
    ),
    *(
        latency(
            f"fastvit_{v}_a14",
            "fastvit",
            f"fastvit_{v}",
            "a14",
            "ios16",
            "all",
            ms,
            FASTVIT,
            MODELBENCH + ", 256x256; iOS 16 [U]",
            "A",
            True,
        )
        for v, ms in [
            ("t8", 0.8),
            ("t12", 1.2),
            ("s12", 1.4),
            ("sa12", 1.6),
            ("sa24", 2.6),
            ("sa36", 3.5),
            ("ma36", 4.6),
        ]
    ),
    latency(
        "fastvit_t8_a14_ios17",
        "fastvit",
        "fastvit_t8_ios16",
        "a14",
        "ios17",
        "all",
        0.79,
        FASTVIT_HF.format("T8"),
        "iPhone 12 Pro Max, iOS 17.5, FastViTT8F16, ANE dominant",
        "A",
        True,
    ),
    latency(
        "fastvit_t8_m3max",
        "fastvit",
        "fastvit_t8_ios16",
        "m3max",
        "macos14",
        "all",
        0.62,
        FASTVIT_HF.format("T8"),
        "M3 Max, macOS 14.4, ANE",
        "A",
        True,
    ),
    latency(
        "fastvit_ma36_a14_ios18",
        "fastvit",
        "fastvit_ma36_ios16",
        "a14",
        "ios18",
        "all",
        4.50,
        FASTVIT_HF.format("MA36"),
        "iPhone 12 Pro Max, iOS 18.0, ANE",
        "A",
        True,
    ),
    latency(
        "fastvit_ma36_m3max",
        "fastvit",
        "fastvit_ma36_ios16",
        "m3max",
        "macos15",
        "all",
        2.99,
        FASTVIT_HF.format("MA36"),
        "M3 Max, macOS 15.0, ANE",
        "A",
        True,
    ),
    latency(
        "mobilenet_v2_a16",
        "mobilenet",
        "mobilenet_v2",
        "a16",
        "ios17",
        "all",
        0.48,
        COREMLTOOLS,
        "torchvision MobileNetV2 1.0, iPhone 14 Pro, iOS 17",
        "A",
        True,
    ),
    latency(
        "mobilenet_v2_a17",
        "mobilenet",
        "mobilenet_v2",
        "a17",
        "ios17",
        "all",
        0.49,
        COREMLTOOLS,
        "iPhone 15 Pro, iOS 17",
        "A",
        True,
    ),
    latency(
        "mobilenet_v3_small_a16",
        "mobilenet",
        "mobilenet_v3_small",
        "a16",
        "ios17",
        "all",
        0.13,
        COREMLTOOLS,
        "torchvision MobileNetV3-small, iPhone 14 Pro, iOS 17",
        "A",
        True,
    ),
    latency(
        "mobilenet_v2_x1.4_a14",
        "mobilenet",
        "mobilenet_v2_x1.4",
        "a14",
        "ios16",
        "all",
        1.6,
        EFFICIENTFORMER,
        "MobileNetV2 x1.4 as benchmarked in the EfficientFormer paper, iPhone 12, iOS 15/16 [U]",
        "C",
        True,
    ),
    latency(
        "resnet50_a16",
        "resnet",
        "resnet50",
        "a16",
        "ios17",
        "all",
        1.52,
        COREMLTOOLS,
        "torchvision ResNet-50, iPhone 14 Pro, iOS 17",
        "A",
        True,
    ),
    latency(
        "resnet50_a17",
        "resnet",
        "resnet50",
        "a17",
        "ios17",
        "all",
        1.38,
        COREMLTOOLS,
        "iPhone 15 Pro, iOS 17",
        "A",
        True,
    ),
    latency(
        "resnet50_a17_ios18",
        "resnet",
        "resnet50",
        "a17",
        "ios18",
        "all",
        1.63,
        "https://apple.github.io/coremltools/docs-guides/source/opt-resnet.html (FP16 row)",
        "iPhone 15 Pro, iOS 18 seed",
        "A",
        True,
    ),
    latency(
        "mobilevit_v2_a16",
        "mobilevit",
        "mobilevit_v2",
        "a16",
        "ios17",
        "all",
        1.38,
        COREMLTOOLS,
        "cvnets MobileViTv2-1.0, 256x256 [U], iPhone 14 Pro, iOS 17",
        "A",
        True,
    ),
    latency(
        "mobilevit_v2_a17",
        "mobilevit",
        "mobilevit_v2",
        "a17",
        "ios17",
        "all",
        1.36,
        COREMLTOOLS,
        "iPhone 15 Pro, iOS 17",
        "A",
        True,
    ),
    # Apple's compressed variants of the same three CNNs, Xcode medians under All: the iPhone 14 Pro (A16) and 15 Pro
    # (A17 Pro) columns on iOS 17 of opt-quantization-perf, the iPhone 14 Pro rows of opt-palettization-perf and
    # opt-pruning-perf, and opt-resnet's iPhone 15 Pro on the iOS 18 seed. Rebuilt with anedoctor's compress
    # (coremltools.optimize.coreml on the converted fp16 model): Apple's training-time forms (QAT W8A8, DKM 2-bit,
    # MagnitudePruner) convert to the same ops as these post-training ones.
    *(
        latency(
            f"{model}_{chip}" + ("_ios18" if os == "ios18" else ""),
            "compressed",
            model,
            chip,
            os,
            "all",
            ms,
            f"https://apple.github.io/coremltools/docs-guides/source/{page}.html",
            f"{form}, {'iPhone 14 Pro' if chip == 'a16' else 'iPhone 15 Pro'}, {os}",
            "A",
            True,
        )
        for page, rows in [
            (
                "opt-quantization-perf",
                [
                    (f"{base}_{form}", chip, "ios17", ms, label)
                    for base, form, label, a16, a17 in [
                        ("mobilenet_v2", "w8a8", "W8A8 (training time, symmetric per-channel)", 0.27, 0.20),
                        ("mobilenet_v2", "int8", "int8 weights only (post training)", 0.45, 0.44),
                        ("resnet50", "w8a8", "W8A8 (training time, symmetric per-channel)", 0.94, 0.77),
                        ("resnet50", "int8", "int8 weights only (post training)", 1.49, 1.50),
                        ("mobilevit_v2", "w8a8", "W8A8 (training time, symmetric per-channel)", 1.18, 1.03),
                        ("mobilevit_v2", "int8", "int8 weights only (post training)", 1.43, 1.37),
                    ]
                    for chip, ms in (("a16", a16), ("a17", a17))
                ],
            ),
            (
                "opt-palettization-perf",
                [
                    ("mobilenet_v2_lut6", "a16", "ios17", 0.48, "6-bit palettized (k-means, post training)"),
                    ("mobilenet_v2_lut2", "a16", "ios17", 0.47, "2-bit palettized (DKM, training time)"),
                    ("resnet50_lut6", "a16", "ios17", 1.37, "6-bit palettized (k-means, post training)"),
                    ("resnet50_lut2", "a16", "ios17", 1.43, "2-bit palettized (DKM, training time)"),
                ],
            ),
            (
                "opt-pruning-perf",
                [
                    ("mobilenet_v2_sparse75", "a16", "ios17", 0.46, "75% unstructured sparsity (MagnitudePruner)"),
                    ("resnet50_sparse75", "a16", "ios17", 1.28, "75% unstructured sparsity (MagnitudePruner)"),
                ],
            ),
            (
                "opt-resnet",
                [
                    ("resnet50_lut6", "a17", "ios18", 1.25, "6-bit palettized (per tensor)"),
                    ("resnet50_lut4", "a17", "ios18", 1.12, "4-bit palettized (per tensor)"),
                    ("resnet50_sparse90", "a17", "ios18", 0.86, "90% sparsity (data-free MagnitudePruner)"),
                    ("resnet50_w8a8", "a17", "ios18", 1.07, "W8A8 (LinearQuantizer, 128 calibration samples)"),
                ],
            ),
        ]
        for model, chip, os, ms, form in rows
    ),
    *(
        latency(
            f"efficientformer_{v}_a14",
            "efficientformer",
            f"efficientformer_{v}",
            "a14",
            "ios16",
            "all",
            ms,
            EFFICIENTFORMER,
            "iPhone 12, iOS 15/16 [U], fp16 [U]",
            "C",
            True,
        )
        for v, ms in [("l1", 1.6), ("l3", 3.0), ("l7", 7.0)]
    ),
    *(
        latency(
            f"efficientformer_v2_{v}_a14",
            "efficientformer",
            f"efficientformer_v2_{v}",
            "a14",
            "ios16",
            "all",
            ms,
            EFFICIENTFORMER,
            "EfficientFormerV2, iPhone 12, iOS 16, Xcode 14 performance report, fp16",
            "C",
            True,
        )
        for v, ms in [("s0", 0.9), ("s1", 1.1), ("s2", 1.6), ("l", 2.7)]
    ),
    *(
        latency(
            f"{m}_a14",
            "vit",
            m,
            "a14",
            "ios17",
            "all",
            ms,
            MOBILECLIP,
            "iPhone 12 Pro Max; OS, compute units and precision not stated [U]",
            "A",
        )
        for m, ms in [
            ("mobileclip_b_image", 10.4),
            ("mobileclip_b_text", 3.3),
            ("mobileclip_l_image", 57.9),
            ("mobileclip_l_text", 6.6),
            ("mobileclip_s0_image", 1.5),
            ("mobileclip_s0_text", 1.6),
            ("mobileclip_s1_image", 2.5),
            ("mobileclip_s2_image", 3.6),
        ]
    ),
    # Apple's Stable Diffusion 2.1 base on iOS / iPadOS 17 (ml-stable-diffusion README, August 2023): the UNet step
    # rate, so one UNet call of batch 2 per step; the scheduler's step on the CPU is in it too [U].
    *(
        latency(
            f"sd21_base_unet_lut6_{chip}_{device_id}",
            "diffusion",
            "sd21_base_unet_lut6",
            chip,
            "ios17",
            "cpu_and_ne",
            round(1000 / rate, 1),
            SD_README,
            f"{device}, iOS 17 beta; SD-2.1 base UNet, 512x512 (64x64 latent), batch 2, 77 tokens, 6-bit palettized, "
            f"SPLIT_EINSUM_V2, CPU_AND_NE; {rate} it/s (median of 5 runs), so 1000 / {rate} ms per UNet step",
            "D",
            ane_figure=True,
        )
        for chip, device_id, device, rate in [
            ("a14", "12mini", "iPhone 12 mini", 1.44),
            ("a14", "12promax", "iPhone 12 Pro Max", 1.45),
            ("a15", "13", "iPhone 13", 2.53),
            ("a15", "13promax", "iPhone 13 Pro Max", 2.55),
            ("a15", "14", "iPhone 14", 2.57),
            ("a16", "14promax", "iPhone 14 Pro Max", 2.69),
            ("m1", "ipadpro", "iPad Pro (M1)", 2.19),
            ("m2", "ipadpro", "iPad Pro (M2)", 3.07),
        ]
    ),
    # Apple's Depth Anything small (DepthAnythingSmallF16), its model card's table. The A14 on iOS 18 ran it faster
    # than the A17 Pro on iOS 17.4: no chip-only model can give both.
    *(
        latency(
            f"depth_anything_small_{chip}",
            "depth",
            "depth_anything_small",
            chip,
            os,
            "all",
            ms,
            DEPTH_ANYTHING,
            f"{device}, {os_full}; compute units not stated (default all), the card's figure an ANE one; input 518x392 "
            "[U: the v1-era sample app fed 518x396]",
            "A",
            ane_figure=True,
        )
        for chip, os, os_full, device, ms in [
            ("a14", "ios18", "iOS 18.0", "iPhone 12 Pro Max", 31.10),
            ("a17", "ios17", "iOS 17.4", "iPhone 15 Pro Max", 33.90),
            ("m1max", "macos15", "macOS 15.0", "MacBook Pro M1 Max", 32.80),
            ("m3max", "macos15", "macOS 15.0", "MacBook Pro M3 Max", 24.58),
        ]
    ),
    latency(
        "distilbert_ane_a15",
        "distilbert",
        "distilbert_ane",
        "a15",
        "ios16",
        "cpu_and_ne",
        3.48,
        ANE_TRANSFORMERS,
        "iPhone 13 Pro Max, iOS 16.0, seq 128, Xcode performance report median",
        "M",
        True,
    ),
    latency(
        "distilbert_hf_a15",
        "distilbert",
        "distilbert_hf",
        "a15",
        "ios16",
        "cpu_and_ne",
        9.89,
        ANE_TRANSFORMERS,
        "baseline Hugging Face conversion, same device, seq 128, Xcode median",
        "M",
    ),
    latency(
        "distilbert_ane_512_a15",
        "distilbert",
        "distilbert_ane_512",
        "a15",
        "ios16",
        "cpu_and_ne",
        round(3.47 * CHART_512_OVER_128["ane"], 2),
        ANE_CHART,
        "iPhone 13, iOS 16.0, seq 512: the chart's seq 512 / seq 128 ratio (20 / 6.5 ms, read off its log scale) "
        "times the article's 3.47 ms at seq 128 (see CHART_512_OVER_128)",
        "D",
        True,
    ),
    latency(
        "distilbert_hf_512_a15",
        "distilbert",
        "distilbert_hf_512",
        "a15",
        "ios16",
        "cpu_and_ne",
        round(9.89 * CHART_512_OVER_128["hf"], 2),
        ANE_CHART,
        "baseline, iPhone 13, iOS 16.0, seq 512: the chart's seq 512 / seq 128 ratio (180 / 21 ms, read off its log "
        "scale) times the Xcode report's 9.89 ms at seq 128 (see CHART_512_OVER_128)",
        "D",
    ),
    latency(
        "distilbert_ane_cpu_only_a14",
        "distilbert",
        "distilbert_ane",
        "a14",
        "ios16",
        "cpu_only",
        33,
        SMPANARO_NOTES.format("March 26, 2023"),
        "Apple's ANE-optimised DistilBERT SST-2 (seq 128, batch 1), 'ComputeUnit.CPU ... 33ms prediction' on the "
        "author's iPhone 12 Pro; iOS 16 minor [U] (the notes compare 16.0 with 16.3.1)",
        "M",
    ),
    # Apple's test models of ml-ane-transformers (huggingface/test_distilbert.py: two sentences padded to
    # TEST_MAX_SEQ_LEN 256, so batch 2 x 256; converted as its test does), saved and timed with Xcode on an M1 Max.
    *(
        latency(
            f"distilbert_{kind}_b2_256_{units}_m1max",
            "distilbert",
            f"distilbert_{kind}_b2_256",
            "m1max",
            "macos13",
            units,
            ms,
            SMPANARO_NOTES.format("March 26, 2023"),
            f"{label}, {note}; batch 2 x 256 read from the test that saves them [U], macOS 13 minor [U]",
            "M",
            units == "cpu_and_ne" and kind == "ane",
        )
        for kind, label, figures in [
            (
                "hf",
                "'ref distilbert model aka unoptimized'",
                [
                    ("cpu_only", 262, "CPU_ONLY"),
                    ("cpu_and_gpu", 9.45, "CPU_GPU (all GPU)"),
                    ("cpu_and_ne", 55, "CPU_ANE (85% ANE)"),
                ],
            ),
            (
                "ane",
                "'test distilbert model aka optimized'",
                [
                    ("cpu_only", 111, "CPU_ONLY"),
                    ("cpu_and_gpu", 14.35, "CPU_GPU (~all GPU)"),
                    ("cpu_and_ne", 8.7, "CPU_ANE (~all ANE)"),
                ],
            ),
        ]
        for units, ms, note in figures
    ),
    latency(
        "bert_ane_512_m2max",
        "bert",
        "bert_ane_512",
        "m2max",
        "macos26",
        "cpu_and_ne",
        13.2,
        OPENMED,
        "BERT-base-size token classifier in ANE layout, seq 512, graph-only time; measured September 2026, so macOS "
        "26 presumed [U]; target [U]",
        "R",
    ),
    *(
        latency(
            f"whisper_{s}_m1pro",
            "whisper",
            f"whisper_{s}",
            "m1pro",
            "macos13",
            "all",
            ms,
            WHISPER_566,
            f"whisper.cpp Core ML encoder, 30 s of audio, macOS 13.2.1; {WHISPER_566_RUN}",
            "C",
            outside=Outside(f"whisper_cross_kv_{s}", "cpu", CROSS_KV_CPU),
        )
        for s, ms in [("tiny", 30), ("base", 64), ("small", 208), ("medium", 1033)]
    ),
    *(
        latency(
            f"whisper_{s}_m2",
            "whisper",
            f"whisper_{s}",
            "m2",
            "macos13",
            "all",
            ms,
            WHISPER_566_M2,
            f"whisper.cpp Core ML encoder, Mac mini M2, macOS 13.2.1 (medium and large not run); {WHISPER_566_RUN}",
            "C",
            outside=Outside(f"whisper_cross_kv_{s}", "cpu", CROSS_KV_CPU),
        )
        for s, ms in [("tiny", 25), ("base", 54), ("small", 190)]
    ),
    *(
        latency(
            f"whisper_{s}_m2ultra",
            "whisper",
            f"whisper_{s}",
            "m2ultra",
            "macos14",
            "all",
            ms,
            WHISPER_1716,
            "original whisper.cpp conversion, one 16-core ANE presumably used [U], macOS 14 [U]; warm (bench.cpp "
            "encodes once before the timed run)",
            "C",
            outside=Outside(f"whisper_cross_kv_{s}", "gpu", CROSS_KV_METAL),
        )
        for s, ms in [("tiny", 29.4), ("base", 43.3), ("small", 139.9), ("medium", 658.4), ("large", 1686.5)]
    ),
    latency(
        "whisper_tiny_ane_m2ultra",
        "whisper",
        "whisper_tiny_ane",
        "m2ultra",
        "macos14",
        "all",
        23.2,
        WHISPER_1716,
        "ANE-optimised (ane_transformers-style) whisper.cpp conversion; warm",
        "C",
        True,
        outside=Outside("whisper_cross_kv_tiny", "gpu", CROSS_KV_METAL),
    ),
    *(
        latency(
            f"whisper_{s}_m1ultra",
            "whisper",
            f"whisper_{s}_ane",
            "m1ultra",
            "macos26",
            "all",
            ms,
            WHISPER_89,
            "whisper.cpp Core ML encoder at commit f53dc748, macOS 26.2; the GPU may be used [U]. The ANE-optimised "
            "conversion: since PR #1716 (2024-01-04) the README's models/generate-coreml-model.sh runs "
            "convert-whisper-to-coreml.py with --optimize-ane True, fp16 by default at that commit (fp32 only from "
            "PR #3868, 2026-06-09); how the commenter made the models is not stated [U]; large is large-v3-turbo "
            "(its encoder is large-v3's, its decoder 4 layers)",
            "C",
            outside=Outside(f"whisper_cross_kv_{cross}", "gpu", CROSS_KV_METAL),
        )
        for s, cross, ms in [
            ("tiny", "tiny", 18.9),
            ("base", "base", 34.3),
            ("small", "small", 115.0),
            ("medium", "medium", 347.0),
            ("large_v3", "large_v3_turbo", 618.2),
        ]
    ),
    *(
        latency(
            f"llama_lm_head_{chip}",
            "weight_streaming",
            "llama_lm_head",
            chip,
            "macos15",
            "cpu_and_ne",
            round(1050.67 / gbps, 2),
            ANEMLL,
            f"single token, fp16; latency derived from the measured {gbps} GB/s (1050.67 MB / GB/s)",
            "D",
            True,
        )
        for chip, gbps in [
            ("m1", 60.87),
            ("m1pro", 54.90),
            ("m1max", 54.62),
            ("m2", 60.45),
            ("m2max", 62.01),
            ("m3", 63.10),
            ("m3max", 120.22),
            ("m4", 64.18),
            ("m4pro", 126.36),
            ("m4max", 118.88),
        ]
    ),
    # GPT-2 in the ANE layout, March 25 ("all float16"), as that day's code built it (models_seq.GPT2ANE). Its author
    # doubted these figures ("something is different about my GPT2 conversion"); the estimate puts them in the
    # lm_head, a 1x1 conv whose batch is the 512 positions (x.permute(3, 1, 0, 2), kept in the repository's later ANE
    # model too): without that permute the model estimates at ~25 ms, the order of the all-fp16 'gpt2-full' of the
    # same notes (April 15: 36 ms on CPU+ANE).
    *(
        latency(
            f"{model}_{units}_m1max",
            "gpt2",
            model,
            "m1max",
            "macos13",
            units,
            ms,
            SMPANARO_NOTES.format(day),
            conditions,
            "M",
        )
        for model, units, ms, day, conditions in [
            (
                "gpt2_ane",
                "cpu_and_ne",
                534.0,
                "March 25, 2023",
                "GPT-2 512 ctx, all float16, QK and K masks, Xcode benchmark, 'CPU 8, ANE 1315, 534ms prediction'",
            ),
            (
                "gpt2_ane",
                "all",
                283.0,
                "March 25, 2023",
                "GPT-2 512 ctx, all float16, QK and K masks, Xcode benchmark, 'GPU 975, ANE 370, 283ms prediction'",
            ),
            # smpanaro's 'gpt2-full' of April 15 (models_seq.GPT2Full: his nanoGPT of April 13 with an additive causal
            # mask, all fp16).
            (
                "gpt2_full",
                "cpu_and_ne",
                36.0,
                "April 15, 2023",
                "'Xcode profiles for gpt2 ... full: 36ms CPU+ANE (414/421 ANE)', all fp16, 512 tokens, returns the K/V "
                "caches",
            ),
            (
                "gpt2_full",
                "cpu_only",
                545.0,
                "April 15, 2023",
                "'Xcode profiles for gpt2 ... full: 545ms CPUOnly', all fp16, 512 tokens, returns the K/V caches",
            ),
            # The same author's baseline_gpt2.py of March 26 (commit f469a38; models_seq.GPT2Full(baseline=True)):
            # nanoGPT "tweaked ... to gain more speed", all fp16 (convert-baseline.py keeps layer_norm in fp32 for gpt2
            # only after this figure), logits of all 512 positions.
            (
                "gpt2_baseline",
                "cpu_and_ne",
                154.0,
                "March 26, 2023",
                "'small tweaks to the 99% vanilla nanoGPT and got it down to 154ms' (mask in fp16, all fp16, before "
                "the fp32 layer_norm that 'only added 30ms'), 512 tokens; CPUAndNeuralEngine as the day's other "
                "figures [U]",
            ),
            *(
                ("gpt2_baseline_large", units, ms, "March 26, 2023", f"gpt2-large, all fp16, 512 tokens, {quote}")
                for units, ms, quote in [
                    ("cpu_and_ne", 391.5, "'379-404ms on NE' (the range's middle; CPUAndNeuralEngine [U])"),
                    ("cpu_only", 3000.0, "'CPU is sloooow (3s)' (CPU_ONLY [U], a round figure)"),
                    ("cpu_and_gpu", 130.0, "'GPU is still amazingly fast 130ms' (read as CPU_AND_GPU [U])"),
                ]
            ),
        ]
    ),
    # Apple's reference transformer scaled to GPT-2 sizes on the same M1 Max, March 28 (the notes' table; its op
    # counts, ~2.7k / 6k / 10.3k, are those of the rebuilds: 2,709 / 6,021 / 10,389). gpt2-xl's row ran on the CPU
    # under CPU+ANE and is not rebuilt (16.5k ops, 1.4 B parameters).
    *(
        latency(
            f"reference_transformer_{size}_{units}_m1max",
            "reference_transformer",
            f"reference_transformer_{size}",
            "m1max",
            "macos13",
            units,
            ms,
            SMPANARO_NOTES.format("March 28, 2023"),
            f"ml-ane-transformers reference transformer, '{size}' row: 6 encoder + {layers} decoder layers, batch 2, "
            "512 tokens, split einsum; Xcode benchmark [U]; ffn_dim the reference's default 2048 [U]",
            "M",
        )
        for size, layers, units, ms in [
            ("base", 12, "cpu_and_ne", 92.0),
            ("base", 12, "cpu_and_gpu", 90.0),
            ("medium", 24, "cpu_and_ne", 243.0),
            ("medium", 24, "cpu_and_gpu", 208.0),
            ("large", 36, "cpu_and_ne", 443.0),
            ("large", 36, "cpu_and_gpu", 415.0),
        ]
    ),
    # nanoGPT on the same M1 Max, macOS 13: CPUAndNeuralEngine on March 25, CPU_AND_GPU and All on March 26.
    *(
        latency(
            f"nanogpt_{units}_m1max",
            "gpt2",
            "nanogpt",
            "m1max",
            "macos13",
            units,
            ms,
            SMPANARO_NOTES.format(day),
            f"baseline nanoGPT fp16 (gpt2 small, 512 ctx), {note}; Xcode benchmark, macOS 13 minor [U]",
            "M",
        )
        for units, ms, day, note in [
            ("cpu_and_ne", 224.0, "March 25, 2023", "'CPU 67, ANE 416, 224ms prediction'"),
            ("cpu_and_gpu", 25.0, "March 26, 2023", "'GPU alone is ~25ms' (read as CPU_AND_GPU [U])"),
            ("all", 45.0, "March 26, 2023", "'All (which ends up being GPU+ANE) is 45ms (361 ops ANE, 117 GPU)'"),
        ]
    ),
    latency(
        "llama2_mlp_x4_m1max",
        "weight_streaming",
        "llama2_mlp_x4",
        "m1max",
        "macos15",
        "cpu_and_ne",
        19.42,
        SMPANARO_MLP,
        "4 x Llama-2-7B MLP, fp16 (1.082 GB), sequence length not stated (1 assumed) [U]",
        "M",
        True,
    ),
    *(
        latency(
            f"llama2_mlp_x4_{w}_{chip}",
            "weight_streaming",
            f"llama2_mlp_x4_{w}",
            chip,
            "macos15",
            "cpu_and_ne",
            ms,
            SMPANARO_MLP,
            f"4 x Llama-2-7B MLP, {label}; how the tables are grouped and the activations calibrated is not "
            "stated [U], sequence length not stated (1 assumed) [U]",
            "M",
            True,
        )
        for chip, figures in [("m1max", (5.98, 6.11, 9.94)), ("m4", (4.19, 3.83, 8.18))]
        for (w, label), ms in zip(
            [
                ("lut4", "4-bit palettized"),
                ("lut2", "2-bit palettized"),
                ("w8a8", "int8 weights and activations (W8A8)"),
            ],
            figures,
        )
    ),
]

PLACEMENT_CASES = [
    Case(
        "distilbert_ane_a15_plan",
        "distilbert",
        "distilbert_ane",
        "a15",
        "ios16",
        "cpu_and_ne",
        ANE_TRANSFORMERS,
        "Xcode performance report, iPhone 13 Pro Max, iOS 16.0: 602 of 606 ops on the NE",
        "M",
        placement={"ane": 602, "gpu": 0, "cpu": 4},
    ),
    Case(
        "distilbert_hf_a15_plan",
        "distilbert",
        "distilbert_hf",
        "a15",
        "ios16",
        "cpu_and_ne",
        ANE_TRANSFORMERS,
        "Xcode performance report, same device: 228 of 266 ops on the NE, 38 on the CPU",
        "M",
        placement={"ane": 228, "gpu": 0, "cpu": 38},
    ),
    m1max_share_plan(
        "distilbert_hf_b2_256_m1max_plan",
        "distilbert",
        "distilbert_hf_b2_256",
        "March 26, 2023",
        "'ref distilbert model aka unoptimized', CPU_ANE '(85% ANE)'",
        85,
    ),
    Case(
        "gpt2_ane_m1max_all",
        "gpt2",
        "gpt2_ane",
        "m1max",
        "macos13",
        "all",
        SMPANARO_NOTES.format("March 25, 2023"),
        "GPT-2 512 ctx, fp16, QK and K masks, Xcode benchmark",
        "M",
        placement={"ane": 370, "gpu": 975, "cpu": 0},
    ),
    Case(
        "gpt2_ane_m1max_cpu_and_ne",
        "gpt2",
        "gpt2_ane",
        "m1max",
        "macos13",
        "cpu_and_ne",
        SMPANARO_NOTES.format("March 25, 2023"),
        "same model, CPUAndNeuralEngine",
        "M",
        placement={"ane": 1315, "gpu": 0, "cpu": 8},
    ),
    Case(
        "nanogpt_m1max_cpu_and_ne",
        "gpt2",
        "nanogpt",
        "m1max",
        "macos13",
        "cpu_and_ne",
        SMPANARO_NOTES.format("March 25, 2023"),
        "nanoGPT fp16 (gpt2 small, 512 ctx), CPUAndNeuralEngine",
        "M",
        placement={"ane": 416, "gpu": 0, "cpu": 67},
    ),
    Case(
        "gpt2_full_m1max_cpu_and_ne",
        "gpt2",
        "gpt2_full",
        "m1max",
        "macos13",
        "cpu_and_ne",
        SMPANARO_NOTES.format("April 15, 2023"),
        "'gpt2-full' (no K/V cache input), all fp16, CPU+ANE, Xcode profile",
        "M",
        placement={"ane": 414, "gpu": 0, "cpu": 7},
    ),
    Case(
        "nanogpt_m1max_all",
        "gpt2",
        "nanogpt",
        "m1max",
        "macos13",
        "all",
        SMPANARO_NOTES.format("March 26, 2023"),
        "baseline nanoGPT, All ends up GPU + ANE",
        "M",
        placement={"ane": 361, "gpu": 117, "cpu": 0},
    ),
    *(
        m1max_share_plan(
            f"reference_transformer_{size}_m1max_plan",
            "reference_transformer",
            f"reference_transformer_{size}",
            "March 28, 2023",
            "'these are 100% on the ANE/GPU with no CPU'",
            100,
        )
        for size in ("base", "medium", "large")
    ),
    Case(
        "meridian_realistic_plan",
        "encoder",
        "meridian_realistic",
        "m4",
        "macos15",
        "cpu_and_ne",
        MERIDIAN,
        "6L x 384 x 6 heads, RangeDim(32..256, default 64), coremltools 9, MLComputePlan; Mac chip not stated [U]",
        "M",
        placement={"ane": 217, "gpu": 0, "cpu": 0},
    ),
    Case(
        "meridian_tiny_plan",
        "encoder",
        "meridian_tiny",
        "m4",
        "macos15",
        "cpu_and_ne",
        MERIDIAN,
        "2L x 128 x 4 heads, same recipe: 0 of 77 schedulable ops on the ANE; Mac chip not stated [U]",
        "M",
        placement={"ane": 0, "gpu": 0, "cpu": 77},
    ),
    *(
        Case(
            f"mobilenet_v2_image_{chip}",
            "mobilenet",
            "mobilenet_v2_image",
            chip,
            os,
            "all",
            COREMLTOOLS,
            "MobileNetV2 with an image input (ct.ImageType, iOS 17 target): the published figure is an ANE figure",
            "A",
            ane_figure=True,
        )
        for chip, os in [("a17", "ios17"), ("m4", "macos15")]
    ),
]

CASES = LATENCY_CASES + PLACEMENT_CASES
BY_NAME = {c.name: c for c in CASES}


def split(case: Case) -> str:
    """'fit' or 'holdout' for latency cases (alternating within each family, chip and compute units), 'plan'
    otherwise."""
    return SPLITS.get(case.name, "plan")


def _splits() -> dict[str, str]:
    ordered = sorted((c for c in LATENCY_CASES), key=lambda c: (c.family, c.base_chip, c.compute_units, c.name))
    result, turn = {}, 0
    for _, group in groupby(ordered, key=lambda c: (c.family, c.base_chip, c.compute_units)):
        for case in group:  # the turn carries over between groups, so singletons alternate too
            result[case.name] = ("fit", "holdout")[turn % 2]
            turn += 1
    return result


SPLITS = _splits()


def select(names: str | None = None, which: str = "all") -> list[Case]:
    """Cases by comma-separated name (unknown names raise KeyError) and split (fit | holdout | all);
    placement-only cases (split 'plan') are kept under every split."""
    chosen = [BY_NAME[n.strip()] for n in names.split(",") if n.strip()] if names else CASES
    return [c for c in chosen if which == "all" or split(c) in (which, "plan")]
