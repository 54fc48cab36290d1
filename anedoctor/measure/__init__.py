"""Measure where a model really runs (macOS) and hold predictions against measurements (anywhere).

``power(capture)`` parses powermetrics / IOReport captures; ``compare(prediction, measurement)`` scores a
prediction; ``measure(model)`` runs Core ML on a Mac (:mod:`anedoctor.measure.macos` is the only module that
calls macOS); ``ingest`` / ``load_profile`` turn probe measurements into a per-chip profile.
"""

from __future__ import annotations

from .compare import Comparison, compare
from .computeplan import Measurement, measurement_from_dump
from .powermetrics import PowerReport, power
from .profile import Profile, ingest, load_profile


def measure(
    model,
    compute_units=("all",),
    iterations: int = 20,
    power: bool = False,
    reasons: bool = False,
    lldb_log=None,
    function: str | None = None,
) -> Measurement:
    """Measure on this Mac (see :func:`anedoctor.measure.macos.measure`); a one-line ModelError elsewhere."""
    from .macos import measure as measure_on_mac

    return measure_on_mac(model, compute_units, iterations, power, reasons, lldb_log, function)


__all__ = [
    "Comparison",
    "Measurement",
    "PowerReport",
    "Profile",
    "compare",
    "ingest",
    "load_profile",
    "measure",
    "measurement_from_dump",
    "power",
]
