"""The hardware vocabulary, defined once: devices, compute-unit settings, chips and OS versions.

Devices are named ``ane``, ``gpu``, ``cpu`` everywhere; ``DISPLAY_ORDER`` is how reports list
them and ``SEGMENTER_ORDER`` the placement tie-break (the first cheapest device wins).

The ANE generation ("H-number") is what the compiler keys on; marketing names map to it
as read from real devices' IORegistry (github.com/751K/Apple-Neural-Engine-Microarchitecture-Study-M6,
notes/ane_naming.md, R). fp16 TFLOP/s is Apple's quoted TOPS where that counts fp16 MACs x2 (A12-A16,
M1-M3) and half the quoted INT8 TOPS for A17 Pro, A18 and M4, whose TOPS count int8 (W8A8) operations
(Apple's chip pages; maderix "Inside the M4 ANE", github.com/maderix/ANE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import ModelError

DISPLAY_ORDER = ("ane", "gpu", "cpu")
SEGMENTER_ORDER = ("cpu", "gpu", "ane")  # tie-break order: the first cheapest wins
DEVICE_LABELS = {"ane": "Neural Engine", "gpu": "GPU", "cpu": "CPU"}
# Energy is reported per power rail: the devices, plus the DRAM traffic the ANE causes (the memory rail:
# powermetrics' ANE power does not include it, github.com/751K/Apple-Neural-Engine-Microarchitecture-Study-M6
# notes/power.md, R).
ENERGY_LABELS = {**DEVICE_LABELS, "dram": "DRAM (ANE traffic)"}
COMPUTE_UNITS = {
    "all": ("cpu", "gpu", "ane"),
    "cpu_and_ne": ("cpu", "ane"),
    "cpu_and_gpu": ("cpu", "gpu"),
    "cpu_only": ("cpu",),
}


def parse_compute_units(text: str) -> str:
    """A compute-units setting in anedoctor's or coremltools' spelling (``CPU_AND_NE``, ``ComputeUnit.ALL``,
    ``cpuAndNeuralEngine``) -> one of ``COMPUTE_UNITS``."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", str(text).rsplit(".", 1)[-1]).lower().replace("-", "_")
    key = words.replace("neural_engine", "ne")
    if key not in COMPUTE_UNITS:
        raise ModelError(
            f"unknown compute units {text!r}; choose one of {', '.join(COMPUTE_UNITS)} "
            "(coremltools' spellings such as CPU_AND_NE work too)"
        )
    return key


@dataclass(frozen=True)
class Chip:
    """One chip as the cost model sees it; every figure comes from the chip's published specs."""

    id: str
    name: str
    tier: int  # ANE generation: 13 = H13 (A14/M1) ... 17 = H17 (A18 Pro/M5); 0 = no usable ANE
    ane_arch: str
    fp16_tflops: float  # ANE fp16 peak one model can use (one die of an Ultra)
    dram_gbps: float  # whole-SoC memory bandwidth
    launch_os: int  # iOS-equivalent major version the chip shipped with
    fast_int8: bool = False  # faster int8-int8 (W8A8) compute: A17 Pro / M4 and newer (Q-2, A)
    arch_confidence: str = "R"  # how sure the H-number mapping is
    ane_cores: int = 16  # marketed Neural Engine cores (32 on an Ultra: two dies)
    ane_weight_gbps: float = 0.0  # what the ANE streams weights at (measured on M chips; derived on A chips)
    weight_bw_measured: bool = False
    cpu_p_cores: int = 0
    cpu_e_cores: int = 0
    cpu_ghz: float = 0.0  # P-core maximum clock
    gpu_cores: int = 0
    gpu_tflops: float = 0.0  # fp32 peak
    base: str = ""  # the base chip of a Pro / Max / Ultra variant

    @property
    def platform(self) -> str:
        return "macos" if self.id.startswith("m") else "ios"

    @property
    def ane_ghz(self) -> float:
        """The NE clock implied by the fp16 peak: 2 FLOPs x MACs/cycle x f (256 fp16 MACs per core and cycle,
        751K M6 study)."""
        return self.fp16_tflops * 1e3 / (2 * self.ane_macs_per_cycle) if self.fp16_tflops else 0.0

    @property
    def ane_macs_per_cycle(self) -> int:
        """fp16 MACs per cycle of the ANE one model runs on: 256 per core, 16 cores (8 on A12/A13)."""
        return 256 * (8 if self.tier in (11, 12) else 16)

    @property
    def cpu_gflops(self) -> float:
        """fp32 NEON peak of the P-cores (the CPU's elementwise ops): 4 FMA pipes x 4 lanes x 2 FLOPs per cycle each
        (AnandTech's Firestorm analysis, https://www.anandtech.com/show/16226/apple-silicon-m1-a14-deep-dive/2, C)."""
        return self.cpu_p_cores * self.cpu_ghz * 32.0

    @property
    def cpu_matrix_gflops(self) -> float:
        """fp32 peak of one P-cluster's matrix coprocessor (AMX), where Core ML's CPU convs and matmuls run:
        :data:`AMX_FP32_FLOPS_PER_CYCLE` at the P-core clock, whatever the core count (see there). A11 and A12
        have none (the A13 introduced it): their matrix ops stay on NEON."""
        return AMX_FP32_FLOPS_PER_CYCLE * self.cpu_ghz if self.tier >= AMX_FIRST_TIER else self.cpu_gflops


# The CPU's matrix coprocessor (AMX), one per P-cluster: Accelerate's SGEMM reached 2,626 GFLOP/s on an M1 Max's two
# P-clusters (https://github.com/philipturner/amx-benchmarks README, R), 0.8 of 2 x 512 FLOPs x 3.2 GHz; 512 is one
# outer product of 16 x 16 fp32 multiply-adds per cycle (https://github.com/corsix/amx README, R). Core ML's CPU
# convs and matmuls run there, on one cluster (I): Apple's ANE-layout DistilBERT under CPU_ONLY ran 11.2 GFLOP in 33 ms
# on an A14 (2 P-cores, 340 GFLOP/s: more than the 192 its NEON units can do) and 45.9 GFLOP in 111 ms on an M1 Max
# (8 P-cores in 2 clusters, 413 GFLOP/s): 1.2x, where cores would give 4.3x and clusters 2.1x
# (https://github.com/smpanaro/more-ane-transformers src/experiments/NOTES.md, March 26, 2023). The per-cycle figure
# is assumed for every generation (U: the later coprocessors' widths are not published).
AMX_FP32_FLOPS_PER_CYCLE = 512.0
# The A13 brought the CPU's "machine learning accelerators" (Apple's iPhone 11 Pro announcement,
# https://www.apple.com/newsroom/2019/09/iphone-11-pro-and-iphone-11-pro-max-the-most-powerful-and-advanced-smartphones/,
# C); tiers as in _ROWS (12 = A13).
AMX_FIRST_TIER = 12

# Sources a user can follow. ANE peaks, SoC bandwidths and H-numbers: Apple's TOPS figures as
# collected in https://github.com/hollance/neural-engine (docs/supported-devices.md, A/C) and the
# compiler clock tables of https://github.com/751K/Apple-Neural-Engine-Microarchitecture-Study-M6
# (notes/ane_naming.md, R); from A17 Pro / M4 Apple quotes INT8 TOPS, so fp16 is half of it.
# ANE weight bandwidth (M chips): Anemll-bench llama_lm_head, macOS 15 (https://github.com/Anemll/anemll-bench
# Results.MD, R); a single model uses one die of an Ultra (same GB/s as the Max there).
# A chips have no such measurement: 0.85 x the SoC bandwidth, capped at the base M chip of the same
# ANE generation (derived, U). CPU cores/clock and GPU cores/fp32 TFLOP/s: Apple's product pages as
# transcribed on Wikipedia (https://en.wikipedia.org/wiki/Apple_silicon, the per-chip pages linked
# from it; C: community-transcribed, not re-checked here).
CHIP_SOURCES = {
    "ane": "https://github.com/hollance/neural-engine/blob/master/docs/supported-devices.md",
    "ane_weight_gbps": "https://github.com/Anemll/anemll-bench (Results.MD)",
    "cpu_gpu": "https://en.wikipedia.org/wiki/Apple_silicon",
}
_ROWS = [
    # id, name, tier, arch, fp16 TFLOP/s, SoC GB/s, launch iOS, fast int8, arch conf, ANE cores,
    # ANE weight GB/s (0: derive), P, E, P GHz, GPU cores, GPU fp32 TFLOP/s, base
    ("a11", "Apple A11 (iPhone 8/X)", 0, "none", 0.0, 34.1, 11, False, "A", 2, 0, 2, 4, 2.39, 3, 0.35, ""),
    ("a12", "Apple A12 (iPhone XS/XR)", 11, "h11", 5.0, 34.1, 12, False, "C", 8, 0, 2, 4, 2.49, 4, 0.5, ""),
    ("a13", "Apple A13 (iPhone 11)", 12, "h12", 6.0, 34.1, 13, False, "C", 8, 0, 2, 4, 2.65, 4, 0.69, ""),
    ("a14", "Apple A14 (iPhone 12)", 13, "h13", 11.0, 34.1, 14, False, "R", 16, 0, 2, 4, 3.0, 4, 0.75, ""),
    ("a15", "Apple A15 (iPhone 13/14)", 14, "h14", 15.8, 34.1, 15, False, "R", 16, 0, 2, 4, 3.23, 5, 1.37, ""),
    ("a16", "Apple A16 (iPhone 14 Pro/15)", 15, "h15", 17.0, 51.2, 16, False, "C", 16, 0, 2, 4, 3.46, 5, 1.79, ""),
    ("a17", "Apple A17 Pro (iPhone 15 Pro)", 16, "h16", 17.5, 51.2, 17, True, "R", 16, 0, 2, 4, 3.78, 6, 2.15, ""),
    ("a18", "Apple A18 (iPhone 16)", 17, "h17", 17.5, 60.0, 18, True, "R", 16, 0, 2, 4, 4.04, 5, 1.79, ""),
    (
        "a18pro",
        "Apple A18 Pro (iPhone 16 Pro)",
        17,
        "h17",
        17.5,
        60.0,
        18,
        True,
        "R",
        16,
        0,
        2,
        4,
        4.04,
        6,
        2.15,
        "a18",
    ),
    ("a19", "Apple A19 (iPhone 17)", 18, "h18", 17.8, 68.3, 26, True, "U", 16, 0, 2, 4, 4.26, 5, 1.9, ""),
    ("a19pro", "Apple A19 Pro (iPhone 17 Pro)", 18, "h18", 17.8, 76.8, 26, True, "U", 16, 0, 2, 4, 4.26, 6, 2.3, "a19"),
    ("m1", "Apple M1", 13, "h13g", 11.0, 68.25, 14, False, "R", 16, 60.87, 4, 4, 3.2, 8, 2.6, ""),
    ("m1pro", "Apple M1 Pro", 13, "h13g", 11.0, 200.0, 15, False, "R", 16, 54.90, 8, 2, 3.2, 16, 5.2, "m1"),
    ("m1max", "Apple M1 Max", 13, "h13g", 11.0, 400.0, 15, False, "R", 16, 54.62, 8, 2, 3.2, 32, 10.4, "m1"),
    ("m1ultra", "Apple M1 Ultra", 13, "h13g", 11.0, 800.0, 15, False, "R", 32, 54.72, 16, 4, 3.2, 64, 20.8, "m1"),
    ("m2", "Apple M2", 14, "h14g", 15.8, 100.0, 16, False, "M", 16, 60.45, 4, 4, 3.49, 10, 3.6, ""),
    ("m2pro", "Apple M2 Pro", 14, "h14g", 15.8, 200.0, 16, False, "M", 16, 61.93, 8, 4, 3.49, 19, 6.8, "m2"),
    ("m2max", "Apple M2 Max", 14, "h14g", 15.8, 400.0, 16, False, "M", 16, 62.01, 8, 4, 3.69, 38, 13.6, "m2"),
    ("m2ultra", "Apple M2 Ultra", 14, "h14g", 15.8, 800.0, 16, False, "M", 32, 61.68, 16, 8, 3.69, 76, 27.2, "m2"),
    ("m3", "Apple M3", 15, "h15g", 18.0, 100.0, 17, False, "C", 16, 63.10, 4, 4, 4.05, 10, 4.1, ""),
    ("m3pro", "Apple M3 Pro", 15, "h15g", 18.0, 150.0, 17, False, "C", 16, 0, 6, 6, 4.05, 18, 7.4, "m3"),
    ("m3max", "Apple M3 Max", 15, "h15g", 18.0, 400.0, 17, False, "C", 16, 120.22, 12, 4, 4.05, 40, 16.4, "m3"),
    ("m3ultra", "Apple M3 Ultra", 15, "h15g", 18.0, 819.0, 18, False, "C", 32, 120.22, 24, 8, 4.05, 80, 32.8, "m3"),
    ("m4", "Apple M4", 16, "h16g", 19.0, 120.0, 18, True, "M", 16, 64.18, 4, 6, 4.4, 10, 4.26, ""),
    ("m4pro", "Apple M4 Pro", 16, "h16g", 19.0, 273.0, 18, True, "M", 16, 126.36, 10, 4, 4.5, 20, 9.2, "m4"),
    ("m4max", "Apple M4 Max", 16, "h16g", 19.0, 546.0, 18, True, "M", 16, 118.88, 12, 4, 4.5, 40, 18.4, "m4"),
    ("m5", "Apple M5", 17, "h17", 19.0, 153.0, 26, True, "M", 16, 70.2, 4, 6, 4.6, 10, 4.6, ""),
    # M5 Pro / Max: six "super cores" (the P-class design) and twelve new "performance cores" optimised for
    # power-efficient multithreading, counted here with the E-cores (U: their matrix throughput is not published);
    # 20 / 40 GPU cores, 307 / 614 GB/s (Apple's announcement of 2026-03-03 as reported by MacRumors,
    # https://www.macrumors.com/2026/03/03/apple-unveils-macbook-pro-with-m5-pro-and-m5-max-chips-with-neural-accelerators/,
    # C); GPU TFLOP/s scaled from the M5's per core (derived).
    ("m5pro", "Apple M5 Pro", 17, "h17", 19.0, 307.0, 26, True, "M", 16, 0, 6, 12, 4.6, 20, 9.2, "m5"),
    ("m5max", "Apple M5 Max", 17, "h17", 19.0, 614.0, 26, True, "M", 16, 148.4, 6, 12, 4.6, 40, 18.4, "m5"),
]


def _chip(row: tuple) -> Chip:
    (cid, name, tier, arch, tflops, soc, los, int8, conf, cores, wbw, p, e, ghz, gcores, gtf, base) = row
    return Chip(
        cid, name, tier, arch, tflops, soc, los, int8, conf, cores, wbw, bool(wbw), p, e, ghz, gcores, gtf, base or cid
    )


def _derive_weight_bandwidth(chips: dict[str, Chip]) -> dict[str, Chip]:
    """Chips without a measured ANE weight bandwidth: 0.85 x SoC, capped at the measured base M chip of the
    same ANE generation (or of the same family for a Pro), (a derivation, not a measurement)."""
    measured = {c.tier: c.ane_weight_gbps for c in chips.values() if c.weight_bw_measured and c.base == c.id}
    out = {}
    for c in chips.values():
        if not c.weight_bw_measured:
            cap = chips[c.base].ane_weight_gbps if chips[c.base].weight_bw_measured else measured.get(c.tier, 64.0)
            c = replace(c, ane_weight_gbps=round(min(0.85 * c.dram_gbps, cap), 2))
        out[c.id] = c
    return out


CHIPS = _derive_weight_bandwidth({row[0]: _chip(row) for row in _ROWS})
DEFAULT_CHIP = "a17"  # a common recent iPhone; same ANE generation (H16) as the measured M4 data
MACOS_TO_IOS = {11: 14, 12: 15, 13: 16, 14: 17, 15: 18, 26: 26, 27: 27}
IOS_TO_MACOS = {v: k for k, v in MACOS_TO_IOS.items()}
IOS_VERSIONS = (11, 12, 13, *IOS_TO_MACOS)  # iOS majors with Core ML (macOS 10.13-10.15 are not modelled)


@dataclass(frozen=True)
class OSVersion:
    id: str  # e.g. "ios17", "macos14"
    platform: str
    major: int

    @property
    def ios(self) -> int:
        """The iOS-equivalent major version (macOS 14 -> 17)."""
        return self.major if self.platform == "ios" else MACOS_TO_IOS.get(self.major, self.major)


def parse_os(text: str) -> OSVersion:
    t = text.lower().replace(" ", "").replace("_", "")
    for platform in ("ios", "macos", "ipados", "tvos", "watchos", "visionos"):
        if t.startswith(platform):
            try:
                major = int(t[len(platform) :].split(".")[0])
            except ValueError:
                break
            platform = "ios" if platform in ("ipados", "tvos", "visionos") else platform
            versions = MACOS_TO_IOS if platform == "macos" else IOS_VERSIONS
            if major in versions:
                return OSVersion(f"{platform}{major}", platform, major)
            known = ", ".join(f"{platform}{v}" for v in versions)
            raise ModelError(
                f"there is no {platform}{major} with Core ML (Apple went from iOS 18 / macOS 15 to 26 in "
                f"2025); known: {known}"
            )
    raise ModelError(f"unknown OS {text!r}; use e.g. ios17, ios18, ios26, macos14, macos15, macos26")


# The chip of each iPhone, as Apple's technical specifications list it (support.apple.com/docs/iphone, A)
IPHONE_CHIPS = {
    "a11": ("8", "8plus", "x"),
    "a12": ("xs", "xsmax", "xr"),
    "a13": ("11", "11pro", "11promax", "se2", "se2ndgeneration"),
    "a14": ("12", "12mini", "12pro", "12promax"),
    "a15": ("13", "13mini", "13pro", "13promax", "14", "14plus", "se3", "se3rdgeneration"),
    "a16": ("14pro", "14promax", "15", "15plus"),
    "a17": ("15pro", "15promax"),
    "a18": ("16", "16plus", "16e"),
    "a18pro": ("16pro", "16promax"),
    "a19": ("17",),
    "a19pro": ("17pro", "17promax", "air"),
}
CHIP_ALIASES = {"a17pro": "a17", "a18base": "a18", **{f"iphone{m}": c for c, ms in IPHONE_CHIPS.items() for m in ms}}
# Macs are named by their chip: 'MacBook Air M2', 'Mac Studio M2 Ultra' (an iPad's M chip: --chip m4 --os ios18)
MAC_PREFIXES = ("macbookair", "macbookpro", "macmini", "macstudio", "macpro", "imac")


def parse_chip(text: str) -> Chip:
    """A chip id from a user's spelling: 'M1 Max', 'm1max', 'm1-max', 'Apple M2 Ultra', 'A17 Pro', or the device:
    'iPhone 15 Pro', 'MacBook Air M2'."""
    key = "".join(ch for ch in text.lower().replace("apple", "") if ch.isalnum())
    key = next((key[len(p) :] for p in MAC_PREFIXES if key.startswith(p) and len(key) > len(p)), key)
    chip = CHIPS.get(CHIP_ALIASES.get(key, key))
    if chip is None:
        raise ModelError(
            f"unknown chip {text!r}; choose one of {', '.join(CHIPS)}, or name an iPhone or Mac "
            "(iPhone 15 Pro, MacBook Air M2)"
        )
    return chip


@dataclass(frozen=True)
class Target:
    """The chip and OS a prediction is for, and whether each was assumed."""

    chip: Chip
    os: OSVersion
    chip_assumed: bool
    os_assumed: bool


def resolve_target(deployment_target: str, chip: str | None, os: str | None) -> Target:
    """Pick chip and OS: explicit values win; else a common recent device running at least the
    model's deployment target (and at least the OS the chip shipped with)."""
    c = parse_chip(chip or DEFAULT_CHIP)
    if os:
        version = parse_os(os)
        if version.ios < c.launch_os:
            first = (
                f"macos{IOS_TO_MACOS.get(c.launch_os, c.launch_os)}"
                if version.platform == "macos"
                else f"ios{c.launch_os}"
            )
            raise ModelError(f"{c.name} shipped with {first}; it never ran {version.id}")
        return Target(c, version, chip is None, False)
    target_ios = parse_os(deployment_target).ios if deployment_target.startswith(("ios", "macos")) else 0
    ios = max(target_ios, c.launch_os)
    macos = IOS_TO_MACOS.get(ios, ios)
    version = (
        OSVersion(f"macos{macos}", "macos", macos) if c.platform == "macos" else OSVersion(f"ios{ios}", "ios", ios)
    )
    return Target(c, version, chip is None, True)
