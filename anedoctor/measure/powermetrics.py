"""Parse power captures: ``powermetrics`` text and ``-f plist`` output, and macmon's IOReport energy dumps.

Formats (verified on public captures; see tests/data/measure/README.md for each file's source):

* plist (macOS 13+): one property list per sample, NUL-separated when streamed (``man powermetrics``).
  ``processor.{cpu,gpu,ane}_energy`` are integer mJ over the sample window and ``*_power`` the same in mW
  (energy / ``elapsed_ns``); macOS 12 has ``package_energy`` and no ``combined_power`` (tlkh/asitop #51/#52).
  ``bandwidth_counters`` (older macOS) is a list of ``{name, value}`` in bytes/s (asitop ``parsers.py``).
* text: ``*** Sampled system activity (<date>) (<ms>ms elapsed) ***`` starts a sample; ``CPU Power: N mW``,
  ``GPU Power: N mW``, ``ANE Power: N mW``, ``Combined Power (CPU + GPU + ANE): N mW`` in the Processor
  section (the GPU section repeats ``GPU Power``: the first one counts); Monterey adds per-cluster
  ``E-Cluster Power: N mW``; Intel prints ``Intel energy model derived package power (CPUs+GT+SA): 8.53W``
  (joularjx #54). Lines ``NAME: N MB/s`` under a ``Bandwidth`` section are read as counters, a layout
  no real capture here shows (seed 004 reports ANE read/write MB/s from the bandwidth sampler).
* ``macmon debug`` (vladkens/macmon #17, #57): ``Energy Model ::  :: ANE0_0 (mJ) = 0.00W`` lines, one
  snapshot in watts; ANE channels are ``ANE``, ``ANE0``, ``ANE0_0``/``ANE0_1`` (per die).
* IOReport "Energy Model" counters (sudoless; what macmon reads, :func:`ioreport_sample`): per channel an
  energy delta in its unit (``mJ``, ``uJ``, ``nJ``) over the sample window; power = delta / window
  (vladkens/macmon ``src/sources.rs`` ``cfio_watts`` @ 8d9fae4). ``macmon debug`` prints exactly that over a
  100 ms window (``src/debug.rs``: ``let dur = 100``), so a dump is read back as the deltas it implies and
  converted by the same code as a live capture (:func:`anedoctor.measure.macos.capture_ioreport`).

A sample that reports no ANE value is *not measured* (None), never 0 mW. powermetrics' own man page
says its power figures are "estimated and may be inaccurate".
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from .._version import __version__
from ..errors import ModelError
from ..util import Exportable
from . import page
from .page import escape

RAILS = ("ane", "gpu", "cpu", "combined")
SAMPLE_HEADER = re.compile(r"^\*\*\* Sampled system activity \((?P<date>[^)]*)\) \((?P<ms>[\d.]+)ms elapsed\) \*\*\*")
POWER_LINE = re.compile(
    r"^(?P<name>CPU|GPU|ANE|Package|Combined) Power(?: \([^)]*\))?: "
    r"(?P<v>[\d.]+) ?(?P<unit>mW|W)\b"
)
CLUSTER_LINE = re.compile(r"^(?P<name>[\w-]*Cluster) Power: (?P<v>[\d.]+) ?(?P<unit>mW|W)\b")
INTEL_LINE = re.compile(r"^Intel energy model derived package power \([^)]*\): (?P<v>[\d.]+) ?(?P<unit>mW|W)\b")
BANDWIDTH_LINE = re.compile(r"^(?P<name>[\w .-]+?):\s+(?P<v>[\d.]+) ?(?P<unit>[KMG]B/s)\b")
IOREPORT_LINE = re.compile(r"^Energy Model ::.*?:: (?P<channel>.+?) \((?P<unit>[mun]J)\) = (?P<v>[\d.]+)W\s*$")
IOREPORT_UNIT_J = {"mJ": 1e-3, "uJ": 1e-6, "nJ": 1e-9}  # joules per counter unit (macmon cfio_watts)
ANE_CHANNEL = re.compile(r"ANE\d*(_\d+)?")  # 'ANE' (base chips), 'ANE0' (Max), 'ANE0_0' / 'ANE0_1' (Ultra, per die)
MACMON_DEBUG_WINDOW_MS = 100.0  # vladkens/macmon src/debug.rs: get_sample(dur) with dur = 100
HEADER_FIELDS = {"Machine model": "machine", "OS version": "os_build"}
BANDWIDTH_SCALE = {"KB/s": 1e-3, "MB/s": 1.0, "GB/s": 1e3}


@dataclass
class PowerSample:
    """One powermetrics sample (or one IOReport snapshot). Power in mW, energy in mJ over the sample."""

    index: int
    time: str | None = None
    elapsed_ms: float | None = None
    ane_mw: float | None = None
    gpu_mw: float | None = None
    cpu_mw: float | None = None
    combined_mw: float | None = None
    energy_mj: dict[str, float] = field(default_factory=dict)  # as reported (plist); else derived
    clusters_mw: dict[str, float] = field(default_factory=dict)
    bandwidth_mb_s: dict[str, float] = field(default_factory=dict)
    channels_mw: dict[str, float] = field(default_factory=dict)  # IOReport channels, as dumped
    line: int | None = None  # where the sample starts in the capture (text formats)

    def power(self, rail: str) -> float | None:
        return getattr(self, f"{rail}_mw")

    def energy(self, rail: str) -> float | None:
        """mJ over the sample: the reported integer when there is one, else power x elapsed."""
        if rail in self.energy_mj:
            return self.energy_mj[rail]
        mw = self.power(rail)
        return None if mw is None or self.elapsed_ms is None else mw * self.elapsed_ms / 1000.0


class PowerReport(Exportable):
    """A parsed power capture: per-sample ANE/GPU/CPU power and a summary. See :func:`power`."""

    def __init__(
        self,
        path: str,
        fmt: str,
        samples: list[PowerSample],
        machine: str | None = None,
        os_build: str | None = None,
        notes: list[str] | None = None,
    ):
        self.path, self.format, self.samples = path, fmt, samples
        self.machine, self.os_build = machine, os_build
        self.notes = list(notes or [])
        for rail in ("ane", "gpu", "cpu"):
            missing = sum(s.power(rail) is None for s in samples)
            if missing:
                self.notes.append(
                    f"{missing} of {len(samples)} sample(s) report no {rail.upper()} power: "
                    "not measured (not counted as 0 mW)"
                )

    @property
    def summary(self) -> dict[str, Any]:
        elapsed = [s.elapsed_ms for s in self.samples]
        out: dict[str, Any] = {
            "samples": len(self.samples),
            "duration_ms": sum(elapsed) if elapsed and None not in elapsed else None,
        }
        energy: dict[str, float | None] = {}
        for rail in RAILS:
            measured = [s for s in self.samples if s.power(rail) is not None]
            values = [s.power(rail) for s in measured]
            timed = measured and all(s.elapsed_ms is not None for s in measured)
            stats: dict[str, Any] = {"mean": None, "max": None, "min": None, "samples": len(measured)}
            if values:
                total_ms = sum(s.elapsed_ms for s in measured) if timed else 0.0
                mean = (
                    sum(s.energy(rail) for s in measured) * 1000.0 / total_ms
                    if timed and total_ms
                    else sum(values) / len(values)
                )
                stats.update(mean=round(mean, 3), max=max(values), min=min(values))
            out[f"{rail}_mw"] = stats
            energy[rail] = round(sum(s.energy(rail) for s in measured), 3) if timed else None
        out["energy_mj"] = energy
        names = sorted({k for s in self.samples for k in s.bandwidth_mb_s})
        if names:
            out["bandwidth_mb_s"] = {
                n: {"mean": round(sum(v) / len(v), 3), "max": max(v)}
                for n in names
                for v in [[s.bandwidth_mb_s[n] for s in self.samples if n in s.bandwidth_mb_s]]
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": "1.0",
            "kind": "power",
            "tool": {"name": "anedoctor", "version": __version__},
            "capture": {"path": self.path, "format": self.format, "machine": self.machine, "os_build": self.os_build},
            "samples": [_sample_dict(s) for s in self.samples],
            "summary": self.summary,
            "notes": self.notes,
        }

    def html(self) -> str:
        return render_power_html(self.to_dict())

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<anedoctor PowerReport {Path(self.path).name}: {s['samples']} sample(s), "
            f"ANE mean {s['ane_mw']['mean']} mW>"
        )


def _sample_dict(s: PowerSample) -> dict[str, Any]:
    """JSON row of a sample: the rails always (None = not measured); detail fields when present."""
    d = {
        k: v
        for k, v in asdict(s).items()
        if k != "energy_mj" and (k.endswith("_mw") and not isinstance(v, dict) or v not in (None, {}))
    }
    d["energy_mj"] = {rail: None if (e := s.energy(rail)) is None else round(e, 3) for rail in RAILS}
    return d


def power(path: str | Path) -> PowerReport:
    """Parse a powermetrics capture (text or plist, any macOS version) or a macmon IOReport dump."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(f"{path}: cannot read the capture ({e.strerror or e})") from None
    return parse_power(data, str(path))


def parse_power(data: bytes, name: str) -> PowerReport:
    """Parse capture bytes; ``name`` is used in messages (the file the bytes came from)."""
    if not data.strip(b"\x00 \t\r\n"):
        raise ModelError(f"{name}: the capture is empty")
    text = data.decode("utf-8", errors="replace")
    has_plist = "<plist" in text or "<?xml" in text
    text_markers = [
        m for m in ("*** Sampled system activity", "CPU Power:", "ANE Power:", "Energy Model ::") if m in text
    ]
    if has_plist and text_markers:
        line = 1 + text[: text.index(text_markers[0])].count("\n")
        raise ModelError(
            f"{name}: line {line}: mixes plist and text powermetrics output ({text_markers[0]!r}); "
            "capture one format per file"
        )
    if has_plist:
        return _parse_plist_stream(data, name)
    if "Energy Model ::" in text:
        return _parse_ioreport(text, name)
    return _parse_text(text, name)


# ---- plist -------------------------------------------------------------------------------------
def _parse_plist_stream(data: bytes, name: str) -> PowerReport:
    chunks = [(offset, chunk) for offset, chunk in _split_nul(data) if chunk.strip()]
    samples, notes, machine, os_build = [], [], None, None
    for number, (offset, chunk) in enumerate(chunks, 1):
        try:
            doc = _plist_doc(chunk.strip())
        except (ElementTree.ParseError, ValueError) as e:
            where = f"plist sample {number} (byte {offset})"
            if number == len(chunks) and samples:  # powermetrics stopped mid-write: keep the complete ones
                notes.append(f"{where} is incomplete ({e}); ignored, as asitop does")
                break
            raise ModelError(f"{name}: {where}: truncated or malformed plist ({e})") from None
        if not isinstance(doc, dict) or "processor" not in doc and "gpu" not in doc:
            raise ModelError(
                f"{name}: plist sample {number} (byte {offset}): not a powermetrics sample "
                "(no 'processor' or 'gpu' dict)"
            )
        sample_machine, sample_build = doc.get("hw_model"), doc.get("kern_osversion")
        if samples and (sample_machine, sample_build) != (machine, os_build):
            raise ModelError(
                f"{name}: plist sample {number} (byte {offset}): from {sample_machine} {sample_build}, "
                f"but earlier samples are from {machine} {os_build}; one capture per file"
            )
        machine, os_build = sample_machine, sample_build
        samples.append(_plist_sample(doc, len(samples), name, number))
    return PowerReport(name, "plist", samples, machine, os_build, notes)


PLIST_SCALARS = {"integer": int, "real": float, "string": str, "date": str}


def _plist_doc(chunk: bytes) -> dict[str, Any]:
    """The parts of a plist sample the parser reads: every dict and scalar, and of the arrays only
    ``bandwidth_counters`` (ElementTree's C parser; plistlib took ~13 ms per 29 KB sample, mostly on the
    per-CPU frequency-state arrays nobody reads here)."""
    root = ElementTree.fromstring(chunk)
    top = root.find("dict")
    if root.tag != "plist" or top is None:
        raise ValueError(f"<{root.tag}> is not a <plist> holding a <dict>")
    return _plist_dict(top)


def _plist_dict(elem: ElementTree.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    children = list(elem)
    if len(children) % 2:
        raise ValueError(f"a <dict> with a key and no value (after {children[-1].text!r})")
    for key, value in zip(children[::2], children[1::2]):
        if key.tag != "key":
            raise ValueError(f"<{key.tag}> where a <key> was expected")
        if value.tag == "dict":
            out[key.text] = _plist_dict(value)
        elif value.tag == "array" and key.text == "bandwidth_counters":
            out[key.text] = [_plist_dict(item) for item in value if item.tag == "dict"]
        elif value.tag in ("true", "false"):
            out[key.text] = value.tag == "true"
        elif value.tag in PLIST_SCALARS:
            out[key.text] = PLIST_SCALARS[value.tag](value.text or "")
    return out


def _split_nul(data: bytes):
    offset = 0
    for chunk in data.split(b"\x00"):
        yield offset, chunk
        offset += len(chunk) + 1


def _plist_sample(doc: dict, index: int, name: str, number: int) -> PowerSample:
    proc = doc.get("processor") or {}
    elapsed_ns = doc.get("elapsed_ns")
    if elapsed_ns is not None and (not isinstance(elapsed_ns, (int, float)) or elapsed_ns <= 0):
        raise ModelError(f"{name}: plist sample {number}: elapsed_ns is {elapsed_ns!r}, expected a positive number")
    s = PowerSample(index, time=doc.get("timestamp"), elapsed_ms=None if elapsed_ns is None else elapsed_ns / 1e6)
    for rail in ("ane", "gpu", "cpu"):
        mw, mj = proc.get(f"{rail}_power"), proc.get(f"{rail}_energy")
        if rail == "gpu" and mj is None:
            mj = (doc.get("gpu") or {}).get("gpu_energy")
        if mj is not None:
            s.energy_mj[rail] = float(mj)
        if mw is None and mj is not None and s.elapsed_ms:
            mw = mj * 1000.0 / s.elapsed_ms
        setattr(s, f"{rail}_mw", None if mw is None else float(mw))
    combined = proc.get("combined_power")
    if combined is None and "package_energy" in proc and s.elapsed_ms:  # macOS 12 (asitop #51)
        s.energy_mj["combined"] = float(proc["package_energy"])
        combined = proc["package_energy"] * 1000.0 / s.elapsed_ms
    s.combined_mw = None if combined is None else float(combined)
    for counter in doc.get("bandwidth_counters") or ():
        if isinstance(counter, dict) and "name" in counter and isinstance(counter.get("value"), (int, float)):
            s.bandwidth_mb_s[str(counter["name"])] = counter["value"] / 1e6
    return s


# ---- text --------------------------------------------------------------------------------------
def _mw(match: re.Match) -> float:
    value = float(match["v"])
    return value * 1000.0 if match["unit"] == "W" else value


def _parse_text(text: str, name: str) -> PowerReport:
    header: dict[str, str] = {}
    samples: list[PowerSample] = []
    current: PowerSample | None = None
    section = ""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        key, _, value = line.partition(":")
        if key in HEADER_FIELDS:
            known = header.setdefault(HEADER_FIELDS[key], value.strip())
            if known != value.strip():
                raise ModelError(
                    f"{name}: line {lineno}: a second capture starts here ({key}: {value.strip()}, "
                    f"earlier {known}); one capture per file"
                )
            continue
        if m := SAMPLE_HEADER.match(line):
            current = PowerSample(len(samples), time=_text_time(m["date"]), elapsed_ms=float(m["ms"]), line=lineno)
            samples.append(current)
            section = ""
            continue
        if line.startswith("****"):
            section = line.strip("* ").lower()
            continue
        if current is None and (POWER_LINE.match(line) or CLUSTER_LINE.match(line) or INTEL_LINE.match(line)):
            current = PowerSample(0, line=lineno)  # an excerpt without the sample header
            samples.append(current)
        if current is None:
            continue
        if m := POWER_LINE.match(line):
            rail = {"Package": "combined"}.get(m["name"], m["name"].lower())
            if current.power(rail) is None:  # the GPU section repeats 'GPU Power': the first one counts
                setattr(current, f"{rail}_mw", _mw(m))
        elif m := CLUSTER_LINE.match(line):
            current.clusters_mw[m["name"]] = _mw(m)
        elif m := INTEL_LINE.match(line):
            current.combined_mw = _mw(m)
        elif "bandwidth" in section and (m := BANDWIDTH_LINE.match(line)):
            current.bandwidth_mb_s[m["name"]] = float(m["v"]) * BANDWIDTH_SCALE[m["unit"]]
    if not samples:
        raise ModelError(
            f"{name}: no powermetrics sample found (no '*** Sampled system activity' header and no "
            "'CPU/GPU/ANE Power:' line); is this a powermetrics capture?"
        )
    notes = []
    if all(s.ane_mw is None for s in samples) and any(s.clusters_mw for s in samples):
        notes.append(
            "the capture has per-cluster CPU power only (Monterey layout or an excerpt); "
            "run powermetrics with --samplers cpu_power,gpu_power to get the ANE line"
        )
    return PowerReport(name, "text", samples, header.get("machine"), header.get("os_build"), notes)


def _text_time(date: str) -> str:
    """'Sat Nov  8 15:54:21 2025 +0900' -> ISO 8601; left as printed when it does not parse."""
    try:
        return datetime.strptime(" ".join(date.split()), "%a %b %d %H:%M:%S %Y %z").isoformat()
    except ValueError:
        return date


# ---- macmon / IOReport -------------------------------------------------------------------------
def channel_mw(delta: float, unit: str, elapsed_ms: float, channel: str = "channel") -> float:
    """Power in mW of an IOReport energy counter that advanced by ``delta`` (in ``unit``) over ``elapsed_ms``."""
    if unit not in IOREPORT_UNIT_J:
        raise ModelError(f"IOReport {channel}: unit {unit!r} is not an energy unit (mJ, uJ or nJ)")
    return delta * IOREPORT_UNIT_J[unit] * 1e6 / elapsed_ms


def ioreport_sample(deltas: list[tuple[str, str, float]], elapsed_ms: float, index: int = 0) -> PowerSample:
    """One sample from IOReport "Energy Model" counter deltas ``(channel, unit, delta)`` over ``elapsed_ms``.

    Rails as macmon sums them: ANE = the ``ANE*`` channels, GPU = ``GPU Energy`` (``GPU (mJ)`` and ``GPU SRAM``
    are parts of it), CPU = the ``*CPU Energy`` channels (``DIE_<n>_CPU Energy`` on an Ultra). A rail with no
    channel is not measured (None)."""
    if not elapsed_ms > 0:
        raise ModelError(f"IOReport sample {index}: the window is {elapsed_ms} ms; it must be positive")
    s = PowerSample(index, elapsed_ms=elapsed_ms)
    for channel, unit, delta in deltas:
        if channel in s.channels_mw:
            raise ModelError(f"IOReport sample {index}: channel {channel!r} appears twice")
        s.channels_mw[channel] = channel_mw(delta, unit, elapsed_ms, channel)
    ane = [v for k, v in s.channels_mw.items() if ANE_CHANNEL.fullmatch(k)]
    s.ane_mw = sum(ane) if ane else None
    s.gpu_mw = s.channels_mw.get("GPU Energy")
    cpu = [v for k, v in s.channels_mw.items() if k.endswith("CPU Energy")]
    s.cpu_mw = sum(cpu) if cpu else None
    return s


def _parse_ioreport(text: str, name: str) -> PowerReport:
    """A ``macmon debug`` dump: watts per channel over its 100 ms window, read back as the counter deltas."""
    deltas: list[tuple[str, str, float]] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = IOREPORT_LINE.match(line)
        if not m:
            raise ModelError(
                f"{name}: line {lineno}: not an IOReport 'Energy Model :: ... (mJ) = N W' line: {line[:60]!r}"
            )
        if m["channel"] in seen:
            raise ModelError(
                f"{name}: line {lineno}: channel {m['channel']!r} appears twice; one macmon debug snapshot per file"
            )
        seen.add(m["channel"])
        window_s = MACMON_DEBUG_WINDOW_MS / 1000
        deltas.append((m["channel"], m["unit"], float(m["v"]) * window_s / IOREPORT_UNIT_J[m["unit"]]))
    s = ioreport_sample(deltas, MACMON_DEBUG_WINDOW_MS)
    s.line = 1
    notes = [
        "a macmon debug snapshot: IOReport 'Energy Model' counters over macmon's 100 ms debug window, "
        "printed in watts to 2 decimals (vladkens/macmon src/debug.rs)"
    ]
    return PowerReport(name, "ioreport", [s], notes=notes)


# ---- baseline and per-inference energy -----------------------------------------------------------
def per_inference(run: PowerReport, idle: PowerReport | None, inferences: int) -> dict[str, Any]:
    """Power drawn by the prediction loop above the idle baseline, and energy per inference (mJ).

    ``run`` covers the loop (its sample windows may overrun it on both ends); ``idle`` the same machine doing
    nothing (None: no baseline, ``baseline_subtracted`` says so). Net energy = (run mean - idle mean) x the whole
    run window: the overrun draws about the idle power, so it cancels and the window length is the right one."""
    if inferences <= 0:
        raise ModelError(f"per-inference energy needs a positive number of inferences, got {inferences}")
    rs, base = run.summary, idle.summary if idle is not None else None
    out: dict[str, Any] = {
        "inferences": inferences,
        "duration_ms": rs["duration_ms"],
        "baseline_subtracted": base is not None,
        "rails": {},
    }
    for rail in ("ane", "gpu", "cpu"):
        mean = rs[f"{rail}_mw"]["mean"]
        idle_mean = base[f"{rail}_mw"]["mean"] if base else 0.0
        if mean is None or idle_mean is None or rs["duration_ms"] is None:
            out["rails"][rail] = {"net_mw": None, "mj_per_inference": None}
            continue
        net = mean - idle_mean
        out["rails"][rail] = {
            "net_mw": round(net, 3),
            "mj_per_inference": round(net * rs["duration_ms"] / 1000.0 / inferences, 6),
        }
    return out


# ---- HTML ----------------------------------------------------------------------------------------
def render_power_html(d: dict[str, Any]) -> str:
    """One self-contained page: the summary, ANE/GPU/CPU power over time (SVG) and the samples."""
    samples, s, cap = d["samples"], d["summary"], d["capture"]
    xs, t = [], 0.0
    for sample in samples:
        xs.append(t)
        t += sample.get("elapsed_ms") or 0.0
    if len(samples) > 1 and t == 0.0:
        xs = [float(i) for i in range(len(samples))]
    series = {rail: [sample.get(f"{rail}_mw") for sample in samples] for rail in ("ane", "gpu", "cpu")}
    x_label = "ms" if t else "sample"
    summary_rows = [
        [
            rail.upper(),
            s[f"{rail}_mw"]["mean"],
            s[f"{rail}_mw"]["max"],
            s["energy_mj"][rail],
            f"{s[f'{rail}_mw']['samples']}/{s['samples']}",
        ]
        for rail in RAILS
    ]
    sample_rows = [
        [x["index"], x.get("time"), x.get("elapsed_ms"), x["ane_mw"], x["gpu_mw"], x["cpu_mw"], x.get("combined_mw")]
        for x in samples
    ]
    info = " · ".join(
        f"{k}: {v}"
        for k, v in (("format", cap["format"]), ("machine", cap["machine"]), ("OS build", cap["os_build"]))
        if v
    )
    body = [
        f"<p>{escape(cap['path'])} · {escape(info)}</p>",
        page.line_plot(xs, series, x_label, "power (mW)"),
        page.table(["rail", "mean mW", "max mW", "energy mJ", "samples measured"], summary_rows, "Summary"),
        page.table(["#", "time", "elapsed ms", "ANE mW", "GPU mW", "CPU mW", "combined mW"], sample_rows, "Samples"),
    ]
    if "bandwidth_mb_s" in s:
        body.append(
            page.table(
                ["counter", "mean MB/s", "max MB/s"],
                [[k, v["mean"], v["max"]] for k, v in s["bandwidth_mb_s"].items()],
                "Bandwidth",
            )
        )
    body += [f'<p class="note">{escape(n)}</p>' for n in d["notes"]]
    body.append(
        '<p class="note">powermetrics: power is "estimated and may be inaccurate" (man powermetrics). '
        "A rail a sample does not report is shown as not measured, never as 0 mW.</p>"
    )
    return page.page(f"Power: {Path(cap['path']).name}", "".join(body))
