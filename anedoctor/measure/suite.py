"""The probe suite on disk (seed 000's method: one-layer models, measured one by one on a Mac).

``build_suite(folder)`` writes every probe of :mod:`anedoctor.measure.probes` (GT-A / GT-B cases and the
sweeps around the rules' limits there) plus :data:`SWEEPS` as ``<name>.mlpackage`` and a ``manifest.json``
holding, per probe, the op it tests, the published measurement when there is one, and what anedoctor
predicts: device and ANE eligibility, the segmenter's time if the whole probe ran as one segment on each
device, launch and output charges included (``predicted_ms``), and per compute-unit setting the latency
model's whole-model estimate (``predicted_latency_ms``, :func:`anedoctor.check`'s ``summary["latency_ms"]``)
with the one device it puts the probe on (``predicted_latency_device``; null when split). Each is built in the
opset of the OS it is predicted for (``deployment_target``), so it loads there; a probe with no form in that
opset is listed under ``skipped`` with the reason. Measure them with
``anedoctor measure <name>.mlpackage --compute-units cpu_and_ne,cpu_only -o measured/<name>.json``
(cpu_and_ne first: its plan is the eligibility) and turn the folder into a profile with
``anedoctor probes ingest measured/ --manifest manifest.json -o profile.json``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..cost import LAUNCH_MS, OUTPUT_ON_ACCEL_MS
from ..errors import ModelError
from ..hardware import COMPUTE_UNITS, resolve_target
from ..loaders.files import read_json_document
from ..util import write_atomic
from .probes import PROBES, Probe, build_probe
from .profile import ASSUMPTIONS, LAYOUT_CHANNELS, PASS_CHAIN, WEIGHT_STREAM, check_probe_entry

X4 = ((1, 64, 32, 32), "fp16")


def _dilated(d: int):
    weight = np.full((64, 64, 3, 3), 0.01, np.float16)
    return lambda mb, x: mb.conv(x=x, weight=weight, dilations=[d, d], pad_type="same")


def _chain(adds: int):
    """A 3x3 conv pooled to 256 values, then ``adds`` adds of them onto a running sum: the conv keeps the probe on
    the ANE, and each add is an ANE pass of its own that nothing folds away, with next to no work in it."""
    weight = np.full((256, 64, 3, 3), 0.01, np.float16)

    def build(mb, x):
        h = mb.reduce_mean(x=mb.conv(x=x, weight=weight, pad_type="same"), axes=[2, 3], keep_dims=True)
        y = h
        for _ in range(adds):
            y = mb.add(x=y, y=h)
        return y

    return build


def _weight_stream(convs: int):
    """``convs`` 1x1 convs over 64 pixels, each with its own 1024 x 1024 fp16 weights (2 MiB): little to compute
    (enough that the ANE beats the CPU), every weight streamed once. The estimate streams them from DRAM whatever
    their total; a short chain much faster per MiB than a long one on a Mac would say that a model whose weights fit
    the system-level cache keeps them there between predictions (what Apple's 0.13 ms MobileNetV3-small on an A16,
    5 MB of weights, suggests; BENCHMARKS.md)."""

    def build(mb, x):
        rng = np.random.default_rng(convs)
        for _ in range(convs):
            x = mb.conv(x=x, weight=(rng.standard_normal((1024, 1024, 1, 1)) / 32).astype(np.float16))
        return x

    return build


def _layout(layout: str, channels: int):
    """One C x C projection of 1,500 tokens, as a linear on (1, 1500, C) (channels last, the original Whisper
    conversion) or as a 1x1 conv on (1, C, 1, 1500) (the ANE layout). The estimate grows both as C squared;
    whisper.cpp's published encoders (macOS 13 / 14) grew per layer as C cubed in the original conversion
    (BENCHMARKS.md): these measure which layout does, on one Mac."""

    def build(mb, x):
        rng = np.random.default_rng(channels)
        weight = (rng.standard_normal((channels, channels)) / channels**0.5).astype(np.float16)
        return mb.linear(x=x, weight=weight) if layout == "linear" else mb.conv(x=x, weight=weight[:, :, None, None])

    return build


# Sweeps with no published measurement yet (expected ANE support unknown: the measurement decides).
SWEEPS = {
    p.name: p
    for p in [
        *(Probe(f"conv3x3_d{d}", "conv", (X4,), _dilated(d), None) for d in (4, 7, 8)),  # PA-11: (k-1)*d+1 vs 15
        *(
            Probe(f"relu_w{n}", "relu", (((1, 1, 1, n), "fp16"),), lambda mb, x: mb.relu(x=x), None)
            for n in (16385, 32768)
        ),  # SH-1: 16384 on H13-H15, 65536 on H16+
        Probe(
            "select_masked_fill",
            "select",
            (X4, X4),
            lambda mb, x, m: mb.select(cond=mb.greater(x=m, y=np.float16(0)), a=np.float16(-np.inf), b=x),
            None,
        ),  # OP-19: masked_fill(mask, -inf), inferred off the ANE through iOS 16 / macOS 13
        *(Probe(name, "add", (X4,), _chain(n), None) for name, n in PASS_CHAIN.items()),  # cost.latency ane_op_us
        *(
            Probe(name, "conv", (((1, 1024, 1, 64), "fp16"),), _weight_stream(n), None)
            for name, n in WEIGHT_STREAM.items()
        ),  # cost.latency: weights stream from DRAM at the chip's rate
        *(
            Probe(name, "linear", (((1, 1500, c), "fp16"),), _layout("linear", c), None)
            for name, c in zip(ASSUMPTIONS["linear_grows_as_macs"], LAYOUT_CHANNELS)
        ),
        *(
            Probe(name, "conv", (((1, c, 1, 1500), "fp16"),), _layout("conv", c), None)
            for name, c in zip(ASSUMPTIONS["conv_grows_as_macs"], LAYOUT_CHANNELS)
        ),  # cost.latency: the linear's and the conv's time grow with their MACs
    ]
}


def build_suite(
    folder: str | Path, chip: str | None = None, os: str | None = None, names: list[str] | None = None
) -> Path:
    """Write the probe packages and manifest.json into an empty (or new) folder; returns the manifest path."""
    from ..api import check, load

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ModelError(f"{folder}: not empty; probes are written into an empty or new folder")
    catalogue = {**PROBES, **SWEEPS}
    unknown = [n for n in names or () if n not in catalogue]
    if unknown:
        raise ModelError(f"unknown probe(s) {', '.join(unknown)}; see anedoctor.measure.probes.PROBES and suite.SWEEPS")
    deployment = deployment_target(chip, os)
    folder.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    target: dict[str, Any] = {}
    for name in names or catalogue:
        probe = catalogue[name]
        try:
            model = build_probe(probe, target=deployment)
        except Exception as e:  # the op (or a form of it) is newer than the OS's opset; coremltools raises many types
            skipped[name] = f"no {deployment} form: {(str(e).strip().splitlines() or [type(e).__name__])[0][:160]}"
            continue
        ir = load(model)
        reports = {cu: check(ir, chip=chip, os=os, compute_units=cu) for cu in COMPUTE_UNITS}
        report = reports["cpu_and_ne"]
        target = target or {"chip": report.target.chip.id, "os": report.target.os.id}
        ops = [p for p in report.placements if p.op.type == probe.op_type] or report.placements
        entries[name] = {
            "op_type": probe.op_type,
            "expected_ane": probe.ane,
            "expected_source": probe.source if probe.ane is not None else None,
            "predicted_device": ops[0].device,
            "predicted_ane": all(p.supported["ane"] for p in ops),
            "predicted_ms": {d: round(_segmenter_ms(report, d), 6) for d in ("ane", "gpu", "cpu")},
            "predicted_latency_ms": {cu: round(r.latency.latency_ms, 6) for cu, r in reports.items()},
            "predicted_latency_device": {cu: _only_device(r) for cu, r in reports.items()},
            "predicted_for": target,
        }
        _save_package(model, folder / f"{name}.mlpackage")
    manifest = {
        "kind": "probe-manifest",
        "tool": {"name": "anedoctor", "version": __version__},
        "predicted_for": {**target, "compute_units": "cpu_and_ne"},
        "deployment_target": deployment,
        "probes": entries,
        "skipped": skipped,
        "how_to_measure": "on a Mac: anedoctor measure NAME.mlpackage --compute-units cpu_and_ne,cpu_only "
        "-o measured/NAME.json (add cpu_and_gpu or all to calibrate the GPU's latency too); then: "
        "anedoctor probes ingest measured/ --manifest manifest.json -o profile.json",
    }
    return write_atomic(folder / "manifest.json", json.dumps(manifest, indent=1) + "\n")


def deployment_target(chip: str | None, os: str | None) -> str:
    """The ``coremltools.target`` the probes are built for: the predicted-for OS's own opset (iOS 15, the first with
    ML Programs, to iOS 18), so they load on the OS being measured; newer OSes get iOS 18's."""
    ios = resolve_target("iOS15", chip, os).os.ios
    return f"iOS{min(max(ios, 15), 18)}"


def _segmenter_ms(report, device: str) -> float:
    """The segmenter's estimate of the whole probe as one segment on ``device``: its ops, plus the launch and
    output charges of an accelerator segment. A measured prediction time includes Core ML's fixed costs; set
    against the ops alone it would scale every op by the dispatch (~57x on the ANE for a 512x512 matmul probe
    measured at 0.8 ms)."""
    fixed = LAUNCH_MS + OUTPUT_ON_ACCEL_MS if device != "cpu" else 0.0
    return sum(p.cost_ms[device] for p in report.placements) + fixed


def _only_device(report) -> str | None:
    """The device the whole probe is predicted on; None when its ops are split over several."""
    devices = {p.device for p in report.placements}
    return devices.pop() if len(devices) == 1 else None


def _save_package(model, path: Path) -> None:
    """Save beside the target, then rename: a half-written package never carries the final name."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staged = Path(tmp) / path.name
        model.save(str(staged))
        shutil.move(str(staged), str(path))


def load_manifest(path: str | Path) -> dict[str, dict[str, Any]]:
    """The per-probe entries of a manifest.json written by :func:`build_suite`."""
    d = read_json_document(path, "probe manifest")
    if not isinstance(d, dict) or d.get("kind") != "probe-manifest" or not isinstance(d.get("probes"), dict):
        raise ModelError(f"{path}: not a probe manifest (write one with `anedoctor probes build DIR`)")
    for name, entry in d["probes"].items():
        check_probe_entry(entry, f"{path}: probes[{name!r}]")
    return d["probes"]
