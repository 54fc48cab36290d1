"""Per-chip profiles: measurements of the one-op probe models turned into eligibility overrides and cost scales.

A profile is JSON (``kind: "profile"``) with where it was measured (chip, OS build, Core ML version), one
eligibility entry per probe (op type, whether Core ML supported it on the ANE, where it preferred it),
``cost_scale`` per device (measured / predicted prediction time over the probes that ran wholly on that device,
median) and the provenance of every measurement used.

Interface for ``check --profile`` (wired by the coordinator): ``profile = load_profile(path)``;
``profile.ane_eligible(op_type)`` -> True / False / None. None: no probe of that type, or its probes disagree
(the answer depends on parameters: keep the rules'). True / False: every probe of the type agreed on this
chip/OS: replace the rules' eligibility and cite ``profile.source_of(op_type)`` with confidence M;
``profile.cost_scale.get(device, 1.0)`` multiplies the roofline estimate for that device.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ModelError
from ..hardware import DISPLAY_ORDER
from ..util import json_rows, write_atomic
from .computeplan import load_report


def ingest(measurements: list[Any], manifest: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Build a profile from probe measurements (dicts or JSON paths; a directory's ``*.json`` files).

    ``manifest`` maps a probe name (the measured model's file stem) to what the probe tests and what
    anedoctor predicted for it: ``{"op_type": ..., "predicted_ms": {"ane": .., "gpu": .., "cpu": ..}}``.
    Without an entry the probe's op type is taken from its measurement (the op of the rarest type)."""
    manifest = manifest or {}
    sources = _expand(measurements)
    if not sources:
        raise ModelError("no probe measurements to ingest (expected measurement JSON files)")
    entries, provenance, ratios = [], [], {d: [] for d in DISPLAY_ORDER}
    where: tuple | None = None
    for source in sources:
        d = load_report(source, "measurement")
        label = str(source) if isinstance(source, (str, Path)) else (d.get("model") or {}).get("name", "measurement")
        if d.get("kind") != "measurement":
            raise ModelError(f"{label}: kind is {d.get('kind')!r}, expected a measurement of a probe model")
        here = ((d.get("chip") or {}).get("name"), (d.get("os") or {}).get("build"))
        if where is not None and here != where:
            raise ModelError(
                f"{label}: measured on {here[0]} / {here[1]}, but earlier probes on {where[0]} / "
                f"{where[1]}; one chip and OS build per profile"
            )
        where = here
        name = Path((d.get("model") or {}).get("name") or label).stem
        info = manifest.get(name, {})
        op_type = info.get("op_type") or _probe_type(d["ops"])
        ops = [op for op in d["ops"] if op.get("type") == op_type and op.get("device")]
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
        _collect_ratio(d, info, ratios)
        provenance.append(
            {
                "source": label,
                "model": (d.get("model") or {}).get("name"),
                "measured_with": d.get("measured_with"),
                "compute_units": d.get("compute_units"),
            }
        )
    first = load_report(sources[0], "measurement")
    return {
        "schema_version": "1.0",
        "kind": "profile",
        "tool": {"name": "anedoctor", "version": __version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "chip": first.get("chip") or {},
        "os": first.get("os") or {},
        "coreml": first.get("coreml") or {},
        "eligibility": entries,
        "cost_scale": {dev: round(statistics.median(r), 4) for dev, r in ratios.items() if r},
        "provenance": provenance,
    }


def _expand(measurements: list[Any]) -> list[Any]:
    out: list[Any] = []
    for m in measurements:
        if isinstance(m, (str, Path)) and Path(m).is_dir():
            out += sorted(Path(m).glob("*.json"))
        else:
            out.append(m)
    return out


def _probe_type(ops: list[dict[str, Any]]) -> str:
    """The op a probe tests: its rarest type, ignoring the I/O casts converters add."""
    counts: dict[str, int] = {}
    for op in ops:
        counts[op.get("type")] = counts.get(op.get("type"), 0) + 1
    core = {t: n for t, n in counts.items() if t != "cast"} or counts
    return min(core, key=lambda t: (core[t], t))


def _collect_ratio(d: dict[str, Any], info: dict[str, Any], ratios: dict[str, list[float]]) -> None:
    """measured / predicted time, when the whole probe ran on one device and both times are known."""
    devices = {op.get("device") for op in d["ops"] if op.get("device")}
    run = (d.get("runs") or {}).get(d.get("compute_units")) or {}
    measured = (run.get("predict_ms") or {}).get("median")
    if len(devices) == 1 and measured is not None:
        device = devices.pop()
        predicted = (info.get("predicted_ms") or {}).get(device)
        if predicted:
            ratios[device].append(measured / predicted)


@dataclass
class Profile:
    """A loaded profile; see the module docstring for how ``check --profile`` uses it."""

    path: str
    chip: dict[str, Any]
    os: dict[str, Any]
    eligibility: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # op type -> probe entries
    cost_scale: dict[str, float] = field(default_factory=dict)
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def ane_eligible(self, op_type: str) -> bool | None:
        """Measured ANE support of this op type; None when no probe covers it or the probes disagree
        (then the answer depends on parameters the rules must decide)."""
        verdicts = {e["ane"] for e in self.eligibility.get(op_type, ())}
        return verdicts.pop() if len(verdicts) == 1 else None

    def source_of(self, op_type: str) -> str:
        probes = ", ".join(e["probe"] for e in self.eligibility.get(op_type, ()))
        return f"profile {Path(self.path).name} ({self.chip.get('name')}, {self.os.get('build')}): probes {probes}"


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile JSON written by :func:`write_profile`."""
    try:
        d = json.loads(Path(path).read_text("utf-8"))
    except OSError as e:
        raise ModelError(f"{path}: cannot read the profile ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(d, dict) or d.get("kind") != "profile":
        kind = d.get("kind") if isinstance(d, dict) else None
        raise ModelError(f"{path}: not an anedoctor profile (kind is {kind!r})")
    eligibility: dict[str, list[dict[str, Any]]] = {}
    for i, e in enumerate(d.get("eligibility") or ()):
        if not isinstance(e, dict) or not isinstance(e.get("op_type"), str) or not isinstance(e.get("ane"), bool):
            raise ModelError(f"{path}: eligibility[{i}]: needs 'op_type' (text) and 'ane' (true/false)")
        eligibility.setdefault(e["op_type"], []).append(e)
    scale = d.get("cost_scale") or {}
    bad = [k for k, v in scale.items() if k not in DISPLAY_ORDER or not isinstance(v, (int, float)) or v <= 0]
    if bad:
        raise ModelError(f"{path}: cost_scale[{bad[0]!r}]: expected a positive number for ane, gpu or cpu")
    return Profile(
        str(path), d.get("chip") or {}, d.get("os") or {}, eligibility, dict(scale), d.get("provenance") or []
    )


def write_profile(profile: dict[str, Any], path: str | Path) -> Path:
    return write_atomic(path, json_rows(profile))
