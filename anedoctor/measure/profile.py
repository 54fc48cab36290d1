"""Per-chip profiles: measurements of the one-op probe models turned into eligibility overrides and cost scales.

A profile is JSON (``kind: "profile"``) with where it was measured (chip, OS build, Core ML version), one
eligibility entry per probe (op type, whether Core ML supported it on the ANE, where it preferred it),
``cost_scale`` per device and ``class_cost_scale`` per cost class and device (measured prediction time / the
segmenter's estimate over the probes that ran wholly on one device, median), ``latency_scale`` and
``class_latency_scale`` (the same against the latency model's whole-model estimate, per compute-unit setting
measured, where the probe ran wholly on the device predicted), ``ane_pass_us`` (what one ANE pass costs: the
measured difference of the pass-chain probes, :data:`PASS_CHAIN`, which set no scale), ``assumptions`` (the measured
and estimated times of the probe pairs of :data:`ASSUMPTIONS`, what they say of the latency model; read by people,
not by the estimate) and the provenance of every measurement used.

``check --profile`` (:func:`anedoctor.check` ``profile=``): :func:`as_profile` loads it; :meth:`Profile.resolve`
picks the chip/OS (the profile's own when none is asked; another chip is an error, another OS a warning note);
``profile.ane_eligible(op_type)`` -> True / False / None feeds the measured rules (:mod:`anedoctor.rules.measured`:
MS-1 off the ANE, MS-2 on it); :meth:`Profile.cost_factors` multiplies the segmenter's per-op estimates
(:class:`anedoctor.cost.CostModel`) per cost class and device; :meth:`Profile.latency_factor` the latency model's
op times and segment launches (:mod:`anedoctor.cost.latency`: ``summary.latency_ms``, per-op ``time_ms``), and
:meth:`Profile.latency_overrides` its constants (the measured cost of a pass). Profiles written before the latency
scales existed load with none (the latency estimate is then the model's).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._version import __version__
from ..cost.work import cost_class
from ..errors import ModelError
from ..hardware import DISPLAY_ORDER, parse_chip, parse_os
from ..loaders.files import read_json_document
from ..util import json_rows, write_atomic
from .compare import expect, read_measurement

# Probes whose measured difference, over their 32 extra passes, is the cost of one ANE pass (cost.latency's
# ane_op_us; Profile.ane_pass_us): a 3x3 conv pooled to 256 values, then this many adds (suite.SWEEPS)
PASS_CHAIN = {"pass_chain_1": 1, "pass_chain_33": 33}
# Probe pairs (suite.SWEEPS) that put one assumption of the latency model to a Mac, by what they ask: their measured
# and estimated times under cpu_and_ne, when both ran wholly on the ANE, go to the profile's ``assumptions``.
WEIGHT_STREAM = {"weight_stream_2": 2, "weight_stream_48": 48}  # 2 MiB convs: 4 MiB fits any cache, 96 MiB none
LAYOUT_CHANNELS = (768, 1280)  # a C x C projection of 1,500 tokens, as Whisper small and large have
ASSUMPTIONS = {
    "weights_streamed_from_dram": tuple(WEIGHT_STREAM),
    "linear_grows_as_macs": tuple(f"linear_bsc_{c}" for c in LAYOUT_CHANNELS),
    "conv_grows_as_macs": tuple(f"conv_bc1s_{c}" for c in LAYOUT_CHANNELS),
}
ANE_RUN = ("cpu_and_ne", "ane")  # the setting and device a pass chain or an assumption pair is timed under


def ingest(measurements: list[Any], manifest: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Build a profile from probe measurements (dicts or JSON paths; a directory's ``*.json`` files).

    ``manifest`` maps a probe name (the measured model's file stem) to what the probe tests and what
    anedoctor predicted for it: ``{"op_type": ..., "predicted_ms": {"ane": .., "gpu": .., "cpu": ..},
    "predicted_latency_ms": {compute units: ms}, "predicted_latency_device": {compute units: device},
    "predicted_for": {"chip": .., "os": ..}}`` (:func:`anedoctor.measure.suite.build_suite` writes it).
    Without an entry the probe's op type is taken from its measurement (the op of the rarest type)."""
    manifest = manifest or {}
    sources = _expand(measurements)
    if not sources:
        raise ModelError("no probe measurements to ingest (expected measurement JSON files)")
    entries, provenance, ratios = [], [], {d: [] for d in DISPLAY_ORDER}
    class_ratios: dict[tuple[str, str], list[float]] = {}
    latency: dict[str, list[float]] = {}  # device -> measured / predicted latency
    class_latency: dict[tuple[str, str], list[float]] = {}  # (cost class, device) -> the same
    chain: dict[str, float] = {}  # pass-chain probe -> its measured median, run wholly on the ANE
    asked: dict[str, dict[str, float]] = {}  # probe -> its run wholly on the ANE (for the ASSUMPTIONS pairs)
    where: tuple | None = None
    first: dict[str, Any] | None = None
    for source in sources:
        d, label = read_measurement(source)
        if first is None:
            first = d
        here = ((d.get("chip") or {}).get("name"), (d.get("os") or {}).get("build"))
        if where is not None and here != where:
            raise ModelError(
                f"{label}: measured on {here[0]} / {here[1]}, but earlier probes on {where[0]} / "
                f"{where[1]}; one chip and OS build per profile"
            )
        where = here
        name = Path((d.get("model") or {}).get("name") or label).stem
        info = manifest.get(name, {})
        check_probe_entry(info, f"{label}: the manifest's probes[{name!r}]")
        _same_chip(label, d, info)
        op_type = info.get("op_type") or _probe_type(d["ops"])
        ops = [op for op in d["ops"] if op.get("type") == op_type and op.get("device") in DISPLAY_ORDER]
        if not ops:
            raise ModelError(f"{label}: no measured op of type {op_type!r} (probe {name})")
        entries.append(
            {
                "probe": name,
                "op_type": op_type,
                "ane": all((op.get("supported") or {}).get("ane", op["device"] == "ane") for op in ops),
                "device": ops[0]["device"],
                "source": label,
            }
        )
        ratio = _ratio(d, info)
        if ratio is not None:
            ratios[ratio[0]].append(ratio[1])
            class_ratios.setdefault((cost_class(op_type), ratio[0]), []).append(ratio[1])
        runs = _latency_runs(d, info)
        on_ane = [r for r in runs if (r["compute_units"], r["device"]) == ANE_RUN]
        asked.update((name, {"measured_ms": r["measured_ms"], "estimated_ms": r["predicted_ms"]}) for r in on_ane)
        if name in PASS_CHAIN:  # measures the cost of a pass, not a scale
            chain.update((name, r["measured_ms"]) for r in on_ane)
        else:
            for run in runs:
                ratio = run["measured_ms"] / run["predicted_ms"]
                latency.setdefault(run["device"], []).append(ratio)
                class_latency.setdefault((cost_class(op_type), run["device"]), []).append(ratio)
        provenance.append(
            {
                "source": label,
                "model": (d.get("model") or {}).get("name"),
                "measured_with": d.get("measured_with"),
                "compute_units": d.get("compute_units"),
                "latency_runs": runs,
            }
        )
    return {
        "schema_version": "1.0",
        "kind": "profile",
        "tool": {"name": "anedoctor", "version": __version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "chip": first.get("chip") or {},
        "os": first.get("os") or {},
        "coreml": first.get("coreml") or {},
        "eligibility": entries,
        "cost_scale": {dev: _median(r) for dev, r in ratios.items() if r},
        "class_cost_scale": _nest({key: _median(r) for key, r in sorted(class_ratios.items())}),
        "latency_scale": {dev: _median(latency[dev]) for dev in DISPLAY_ORDER if dev in latency},
        "class_latency_scale": _nest({key: _median(r) for key, r in sorted(class_latency.items())}),
        **({"ane_pass_us": _pass_us(chain)} if chain.keys() == PASS_CHAIN.keys() else {}),
        "assumptions": {
            question: {name: asked[name] for name in pair}
            for question, pair in ASSUMPTIONS.items()
            if all(name in asked for name in pair)
        },
        "provenance": provenance,
    }


def _pass_us(chain: dict[str, float]) -> float:
    """The cost of one ANE pass in us: the pass chains' measured difference over their extra passes (0 when the
    longer one did not take longer)."""
    (short, few), (long, many) = sorted(PASS_CHAIN.items(), key=lambda kv: kv[1])
    return round(max(0.0, 1000 * (chain[long] - chain[short]) / (many - few)), 4)


def assumption_lines(assumptions: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """What the measured probe pairs say of the latency model's assumptions, one line each."""
    lines = []
    for question, runs in assumptions.items():
        (small, a), (large, b) = runs.items()
        if question == "weights_streamed_from_dram":
            ratios = [run["measured_ms"] / run["estimated_ms"] for run in (a, b)]
            lines.append(
                f"weights streamed from DRAM? measured / estimated: {small} {ratios[0]:.2f}x, {large} {ratios[1]:.2f}x "
                "(if the first is far lower, weights that fit the system-level cache stay there)"
            )
            continue
        span = math.log(LAYOUT_CHANNELS[1] / LAYOUT_CHANNELS[0])
        grew = {key: math.log(b[key] / a[key]) / span for key in ("measured_ms", "estimated_ms")}
        lines.append(
            f"{small.rsplit('_', 1)[0]} from C={LAYOUT_CHANNELS[0]} to {LAYOUT_CHANNELS[1]}: measured time grew as "
            f"C^{grew['measured_ms']:.2f}, estimated as C^{grew['estimated_ms']:.2f}"
        )
    return lines


def check_probe_entry(info: Any, where: str) -> None:
    """A probe manifest entry as ingest reads it: an object whose fields are of the types build_suite writes."""
    expect(info, dict, where, "entry")
    expect(info.get("op_type"), str, where, "op_type")
    for key in ("predicted_ms", "predicted_latency_ms", "predicted_latency_device", "predicted_for"):
        expect(info.get(key), dict, where, key)


def _expand(measurements: list[Any]) -> list[Any]:
    out: list[Any] = []
    for m in measurements:
        if isinstance(m, (str, Path)) and Path(m).is_dir():
            out += sorted(Path(m).glob("*.json"))
        else:
            out.append(m)
    return out


def _probe_type(ops: list[dict[str, Any]]) -> str | None:
    """The op a probe tests: its rarest type, ignoring the I/O casts converters add."""
    counts: dict[str, int] = {}
    for op in ops:
        if op.get("type"):
            counts[op["type"]] = counts.get(op["type"], 0) + 1
    core = {t: n for t, n in counts.items() if t != "cast"} or counts
    return min(core, key=lambda t: (core[t], t)) if core else None


def _ratio(d: dict[str, Any], info: dict[str, Any]) -> tuple[str, float] | None:
    """(device, measured / predicted time) when the whole probe ran on one device and both times are known."""
    units = d.get("compute_units")
    run = (d.get("runs") or {}).get(units) or {}
    device, measured = _run_device(d, units, run), _positive((run.get("predict_ms") or {}).get("median"))
    predicted = _positive((info.get("predicted_ms") or {}).get(device))
    ratio = _positive(measured / predicted) if measured and predicted else None  # 1e308 / 1e-300 is no ratio
    return (device, ratio) if device and ratio else None


def _latency_runs(d: dict[str, Any], info: dict[str, Any]) -> list[dict[str, Any]]:
    """Each measured compute-unit setting under which the whole probe ran on the one device the latency model
    put it on, with its measured median and the model's whole-model estimate (the manifest's)."""
    predicted = info.get("predicted_latency_ms") or {}
    placed = info.get("predicted_latency_device") or {}
    runs = []
    for units, run in sorted((d.get("runs") or {}).items()):
        run = run if isinstance(run, dict) else {}
        device = _run_device(d, units, run)
        measured = _positive((run.get("predict_ms") or {}).get("median"))
        estimate = _positive(predicted.get(units))
        finite = measured and estimate and _positive(measured / estimate)  # 1e308 / 1e-300 is no ratio
        if device is not None and device == placed.get(units) and finite:
            runs.append({"compute_units": units, "device": device, "measured_ms": measured, "predicted_ms": estimate})
    return runs


def _run_device(d: dict[str, Any], units: str | None, run: dict[str, Any]) -> str | None:
    """The one device a measured run used: from the run's own plan summary, else (the measurement's first
    setting) from its ops; None when several devices ran it or nothing says."""
    summary = run.get("summary")
    if isinstance(summary, dict):
        devices = {dev for dev in DISPLAY_ORDER if summary.get(dev)}
    elif units is not None and units == d.get("compute_units"):
        devices = {op.get("device") for op in d["ops"] if op.get("device")}
    else:
        devices = {"cpu"} if units == "cpu_only" else set()
    return devices.pop() if len(devices) == 1 else None


def _median(ratios: list[float]) -> float:
    return round(statistics.median(ratios), 4)


def _positive(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")
    return float(value) if ok else None


def _same_chip(label: str, d: dict[str, Any], info: dict[str, Any]) -> None:
    """A manifest's estimates are for the chip it was built for: scaling another chip's measurements by them
    would calibrate the wrong chip."""
    built_for = (info.get("predicted_for") or {}).get("chip")
    measured = chip_id(d.get("chip") or {})
    if built_for and measured and built_for != measured:
        raise ModelError(
            f"{label}: measured on {measured}, but the manifest's estimates are for {built_for}; rebuild the probes "
            f"with `anedoctor probes build DIR --chip {measured}` (or ingest without --manifest: eligibility only)"
        )


def _nest(flat: dict[tuple[str, str], float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for (cls, device), value in flat.items():
        out.setdefault(cls, {})[device] = value
    return out


@dataclass
class Profile:
    """A loaded profile; see the module docstring for how ``check --profile`` uses it."""

    path: str
    chip: dict[str, Any]
    os: dict[str, Any]
    eligibility: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # op type -> probe entries
    cost_scale: dict[str, float] = field(default_factory=dict)
    provenance: list[dict[str, Any]] = field(default_factory=list)
    class_cost_scale: dict[str, dict[str, float]] = field(default_factory=dict)
    coreml: dict[str, Any] = field(default_factory=dict)
    latency_scale: dict[str, float] = field(default_factory=dict)
    class_latency_scale: dict[str, dict[str, float]] = field(default_factory=dict)
    ane_pass_us: float | None = None  # measured cost of one ANE pass (the pass chains), None when not measured
    _sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # op type -> source_of

    def ane_eligible(self, op_type: str) -> bool | None:
        """Measured ANE support of this op type; None when no probe covers it or the probes disagree
        (then the answer depends on parameters the rules must decide)."""
        verdicts = {e["ane"] for e in self.eligibility.get(op_type, ())}
        return verdicts.pop() if len(verdicts) == 1 else None

    def probes_of(self, op_type: str) -> list[str]:
        return [str(e.get("probe", "?")) for e in self.eligibility.get(op_type, ())]

    @property
    def where(self) -> str:
        """Where it was measured, as a report says it: 'Apple M4 (Mac16,12), macOS 15.5 (24F74)'."""
        machine = f" ({self.chip['machine']})" if self.chip.get("machine") else ""
        os_name = self.os.get("version") and f"macOS {self.os['version']}" or self.os.get("id") or "an unknown OS"
        build = f" ({self.os['build']})" if self.os.get("build") else ""
        return f"{self.chip.get('name') or self.chip.get('id') or 'an unknown chip'}{machine}, {os_name}{build}"

    def source_of(self, op_type: str) -> str:
        """'profile p.json (Apple M4 ..., macOS 15.5 (24F74)): probes a, b' (once per op type: findings repeat it)."""
        if op_type not in self._sources:
            probes = ", ".join(self.probes_of(op_type))
            self._sources[op_type] = f"profile {Path(self.path).name} ({self.where}): probes {probes}"
        return self._sources[op_type]

    @property
    def chip_id(self) -> str | None:
        """anedoctor's id of the measured chip (from ``chip.id``, else its name); None if unknown."""
        return chip_id(self.chip)

    def resolve(self, chip: str | None, os: str | None) -> tuple[str | None, str | None, list[str]]:
        """The chip and OS to predict for, and warnings. Not given: the profile's own. A different chip is an
        error (its eligibility and timings belong to the chip measured); a different OS a warning note."""
        measured_chip, notes = self.chip_id, []
        if chip is None:
            if measured_chip is None:
                raise ModelError(
                    f"{self.path}: measured on {self.chip.get('name') or 'an unknown chip'}, which anedoctor has no "
                    "entry for; give --chip for the prediction"
                )
            chip = measured_chip
        elif measured_chip is not None and parse_chip(chip).id != measured_chip:
            raise ModelError(
                f"{self.path}: measured on {self.where}, but the prediction is for {parse_chip(chip).name}; "
                f"a profile applies only to its own chip (use --chip {measured_chip} or leave --chip out)"
            )
        measured_os = self._os_id()
        if os is None:
            os = measured_os
        elif measured_os is not None and parse_os(os).id != measured_os:
            notes.append(
                f"profile {Path(self.path).name} was measured on {self.where}, not {parse_os(os).id}: "
                "its eligibility and timings may differ on this OS"
            )
        return chip, os, notes

    def _os_id(self) -> str | None:
        for text in (self.os.get("id"), self.os.get("version") and f"macos{str(self.os['version']).split('.')[0]}"):
            if text:
                try:
                    return parse_os(str(text)).id
                except ModelError:
                    continue
        return None

    def cost_factor(self, cost_class: str, device: str) -> float:
        """The factor on the segmenter's estimate of an op of this cost class on this device: the class's own
        measured scale, else the device's, else 1."""
        return float(self.class_cost_scale.get(cost_class, {}).get(device, self.cost_scale.get(device, 1.0)))

    def latency_factor(self, cost_class: str | None, device: str) -> float:
        """The factor on the latency model's time of an op of this cost class on this device (None: a segment
        launch there): the class's own measured latency scale, else the device's, else 1."""
        own = self.class_latency_scale.get(cost_class, {}) if cost_class is not None else {}
        return float(own.get(device, self.latency_scale.get(device, 1.0)))

    def latency_overrides(self) -> dict[str, float]:
        """Constants of the latency model the profile measured: the cost of an ANE pass."""
        return {} if self.ane_pass_us is None else {"ane_op_us": self.ane_pass_us}

    @property
    def calibrates_latency(self) -> bool:
        return bool(self.latency_scale or self.class_latency_scale or self.latency_overrides())

    def note(self) -> str:
        """The report note: which profile calibrated the prediction, and whether the latency estimate too."""
        if self.latency_scale or self.class_latency_scale:
            latency = (
                "; the latency estimate is rescaled by its measured latency per device ("
                + ", ".join(f"{dev} x{factor:g}" for dev, factor in self.latency_scale.items())
                + (", per cost class where measured" if self.class_latency_scale else "")
                + ")"
            )
        else:
            latency = "; it has no latency scale" + (
                "" if self.calibrates_latency else ", so the latency estimate is the model's own"
            )
        if self.ane_pass_us is not None:
            latency += f"; an ANE pass costs its measured {self.ane_pass_us:g} us"
        return f"calibrated by the measured profile {self.path} ({self.where}){latency}"

    def panel(self) -> dict[str, Any]:
        """The report panel that says what the profile changed and where it was measured."""
        rows = [
            {"op type": t, "measured on the ANE": self.ane_eligible(t), "probes": ", ".join(self.probes_of(t))}
            for t in sorted(self.eligibility)
        ]
        return {
            "title": f"Calibration profile {Path(self.path).name} (measured on {self.where})",
            "rows": rows or [{"op type": "-", "measured on the ANE": None, "probes": "no eligibility entries"}],
            "profile": {
                "path": self.path,
                "chip": self.chip,
                "os": self.os,
                "coreml": self.coreml,
                "cost_scale": self.cost_scale,
                "class_cost_scale": self.class_cost_scale,
                "latency_scale": self.latency_scale,
                "class_latency_scale": self.class_latency_scale,
                "ane_pass_us": self.ane_pass_us,
                "measurements": len(self.provenance),
                "confidence": "M",
            },
        }


def as_profile(source: Any) -> Profile | None:
    """A Profile from a path, a profile dict (as ``ingest`` returns) or a Profile; None stays None."""
    if source is None or isinstance(source, Profile):
        return source
    if isinstance(source, dict):
        return _validated(source, "profile")
    return load_profile(source)


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile JSON written by :func:`write_profile`."""
    return _validated(read_json_document(path, "profile"), str(path))


def _validated(d: Any, path: str) -> Profile:
    if not isinstance(d, dict) or d.get("kind") != "profile":
        kind = d.get("kind") if isinstance(d, dict) else None
        raise ModelError(f"{path}: not an anedoctor profile (kind is {kind!r})")
    for key in ("chip", "os", "coreml"):
        if not isinstance(d.get(key) or {}, dict):
            raise ModelError(f"{path}: {key}: expected an object, got {type(d[key]).__name__}")
    entries = d.get("eligibility") or []
    if not isinstance(entries, list):
        raise ModelError(f"{path}: eligibility: expected a list of probe entries")
    eligibility: dict[str, list[dict[str, Any]]] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("op_type"), str) or not isinstance(e.get("ane"), bool):
            raise ModelError(f"{path}: eligibility[{i}]: needs 'op_type' (text) and 'ane' (true/false)")
        eligibility.setdefault(e["op_type"], []).append(e)
    scale = _scale(d.get("cost_scale"), path, "cost_scale")
    provenance = d.get("provenance") or []
    if not isinstance(provenance, list):
        raise ModelError(f"{path}: provenance: expected a list of measurements, got {type(provenance).__name__}")
    return Profile(
        path,
        d.get("chip") or {},
        d.get("os") or {},
        eligibility,
        scale,
        list(provenance),
        _class_scale(d, path, "class_cost_scale"),
        d.get("coreml") or {},
        _scale(d.get("latency_scale"), path, "latency_scale"),
        _class_scale(d, path, "class_latency_scale"),
        _pass_cost(d.get("ane_pass_us"), path),
    )


def _pass_cost(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ModelError(f"{path}: ane_pass_us: expected a number of microseconds >= 0, got {value!r}")
    return float(value)


def _class_scale(d: dict[str, Any], path: str, key: str) -> dict[str, dict[str, float]]:
    classes = d.get(key) or {}
    if not isinstance(classes, dict):
        raise ModelError(f"{path}: {key}: expected an object of cost class -> device -> factor")
    return {cls: _scale(v, path, f"{key}[{cls!r}]") for cls, v in classes.items()}


def _scale(value: Any, path: str, where: str) -> dict[str, float]:
    value = value or {}
    if not isinstance(value, dict):
        raise ModelError(f"{path}: {where}: expected an object of device -> factor")
    bad = [
        k
        for k, v in value.items()
        if k not in DISPLAY_ORDER or isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf")
    ]
    if bad:
        raise ModelError(f"{path}: {where}[{bad[0]!r}]: expected a positive number for ane, gpu or cpu")
    return {k: float(v) for k, v in value.items()}


def chip_id(chip: dict[str, Any]) -> str | None:
    """anedoctor's id of a measured chip (from ``id``, else ``name``); None if unknown."""
    for text in (chip.get("id"), chip.get("name")):
        if text:
            try:
                return parse_chip(str(text)).id
            except ModelError:
                continue
    return None


def write_profile(profile: dict[str, Any], path: str | Path) -> Path:
    return write_atomic(path, json_rows(profile))
