"""The hardware vocabulary, defined once: devices, compute-unit settings, chips and OS versions.

Devices are named ``ane``, ``gpu``, ``cpu`` everywhere; ``DISPLAY_ORDER`` is how reports list
them and ``SEGMENTER_ORDER`` the placement tie-break (the first cheapest device wins).

The ANE generation ("H-number") is what the compiler keys on; marketing names map to it
per ``../shared/knowledge/ane-hardware.md`` §1.2 and ``ane-rules.md`` §5. fp16 TFLOP/s is
Apple's quoted TOPS where that counts fp16 MACs x2 (A12-A16, M1-M3) and half the quoted
INT8 TOPS for A17 Pro, A18 and M4 (ane-hardware.md §1.1).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ModelError

DISPLAY_ORDER = ("ane", "gpu", "cpu")
SEGMENTER_ORDER = ("cpu", "gpu", "ane")  # tie-break order: the first cheapest wins
DEVICE_LABELS = {"ane": "Neural Engine", "gpu": "GPU", "cpu": "CPU"}
COMPUTE_UNITS = {"all": ("cpu", "gpu", "ane"), "cpu_and_ne": ("cpu", "ane"), "cpu_and_gpu": ("cpu", "gpu"),
                 "cpu_only": ("cpu",)}


@dataclass(frozen=True)
class Chip:
    id: str
    name: str
    tier: int  # ANE generation: 13 = H13 (A14/M1) ... 17 = H17 (A18 Pro/M5); 0 = no usable ANE
    ane_arch: str
    fp16_tflops: float
    dram_gbps: float
    launch_os: int  # iOS-equivalent major version the chip shipped with
    fast_int8: bool = False  # faster int8-int8 (W8A8) compute: A17 Pro / M4 and newer (Q-2, A)
    arch_confidence: str = "R"  # how sure the H-number mapping is

    @property
    def platform(self) -> str:
        return "macos" if self.id.startswith("m") else "ios"


CHIPS = {c.id: c for c in [
    Chip("a11", "Apple A11 (iPhone 8/X)", 0, "none", 0.0, 34, 11, arch_confidence="A"),
    Chip("a12", "Apple A12 (iPhone XS/XR)", 11, "h11", 5.0, 34.1, 12, arch_confidence="C"),
    Chip("a13", "Apple A13 (iPhone 11)", 12, "h12", 6.0, 34.1, 13, arch_confidence="C"),
    Chip("a14", "Apple A14 (iPhone 12)", 13, "h13", 11.0, 34.1, 14),
    Chip("a15", "Apple A15 (iPhone 13/14)", 14, "h14", 15.8, 34.1, 15),
    Chip("a16", "Apple A16 (iPhone 14 Pro/15)", 15, "h15", 17.0, 51.2, 16, arch_confidence="C"),
    Chip("a17", "Apple A17 Pro (iPhone 15 Pro)", 16, "h16", 17.5, 51.2, 17, fast_int8=True),
    Chip("a18", "Apple A18 / A18 Pro (iPhone 16)", 17, "h17", 17.5, 60.0, 18, fast_int8=True),
    Chip("m1", "Apple M1", 13, "h13g", 11.0, 68.25, 14),
    Chip("m2", "Apple M2", 14, "h14g", 15.8, 100.0, 16, arch_confidence="M"),
    Chip("m3", "Apple M3", 15, "h15g", 18.0, 100.0, 17, arch_confidence="C"),
    Chip("m4", "Apple M4", 16, "h16g", 19.0, 120.0, 18, fast_int8=True, arch_confidence="M"),
    Chip("m5", "Apple M5", 17, "h17", 19.0, 153.0, 26, fast_int8=True, arch_confidence="M"),
]}
DEFAULT_CHIP = "a17"  # a common recent iPhone; same ANE generation (H16) as the measured M4 data
MACOS_TO_IOS = {11: 14, 12: 15, 13: 16, 14: 17, 15: 18, 26: 26, 27: 27}
IOS_TO_MACOS = {v: k for k, v in MACOS_TO_IOS.items()}


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
                major = int(t[len(platform):].split(".")[0])
            except ValueError:
                break
            platform = "ios" if platform in ("ipados", "tvos", "visionos") else platform
            if major in (MACOS_TO_IOS if platform == "macos" else IOS_TO_MACOS) or 11 <= major <= 30:
                return OSVersion(f"{platform}{major}", platform, major)
    raise ModelError(f"unknown OS {text!r}; use e.g. ios17, ios18, ios26, macos14, macos15, macos26")


def parse_chip(text: str) -> Chip:
    chip = CHIPS.get(text.lower().replace("apple", "").replace(" ", "").replace("pro", "").replace("max", ""))
    if chip is None:
        raise ModelError(f"unknown chip {text!r}; choose one of {', '.join(CHIPS)}")
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
        return Target(c, parse_os(os), chip is None, False)
    target_ios = parse_os(deployment_target).ios if deployment_target.startswith(("ios", "macos")) else 0
    ios = max(target_ios, c.launch_os)
    version = OSVersion(f"macos{IOS_TO_MACOS.get(ios, ios)}", "macos", IOS_TO_MACOS.get(ios, ios)) if c.platform == "macos" else OSVersion(f"ios{ios}", "ios", ios)
    return Target(c, version, chip is None, True)
