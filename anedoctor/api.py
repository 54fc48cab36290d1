"""The public functions; the CLI is a thin shell over these."""
from __future__ import annotations

from typing import Any

from .chips import resolve_target
from .ir import Model, ModelError
from .loaders import load as load_model
from .placement import COMPUTE_UNITS, place_graph
from .report import Report


def load(source: Any, example_inputs: Any = None) -> Model:
    """Load a model (path, coremltools MLModel or torch.nn.Module) into the IR."""
    return source if isinstance(source, Model) else load_model(source, example_inputs)


def check(source: Any, example_inputs: Any = None, chip: str | None = None, os: str | None = None,
          compute_units: str = "all") -> Report:
    """Predict where Core ML runs every op of a model, and why ops miss the Neural Engine.

    ``source`` is a path (.mlpackage, .mlmodel, .mlmodelc), an MLModel, a torch.nn.Module (with
    ``example_inputs``) or an already loaded :class:`~anedoctor.ir.Model`. ``chip`` (m1..m5,
    a11..a18) and ``os`` (ios17, macos15 ...) default to a common recent device running the
    model's deployment target; the report says what was assumed."""
    if compute_units not in COMPUTE_UNITS:
        raise ModelError(f"unknown compute units {compute_units!r}; choose one of {', '.join(COMPUTE_UNITS)}")
    model = load(source, example_inputs)
    target = resolve_target(model.deployment_target, chip, os)
    placements = [p for g in model.graphs for p in place_graph(g, model, target, compute_units)]
    report = Report(model, target, compute_units, placements)
    if model.deployment_target.startswith("ios") and target.os.ios < _ios_major(model.deployment_target):
        report.notes.append(f"the model needs {model.deployment_target} or later; Core ML on {target.os.id} will refuse to load it")
    return report


def _ios_major(target: str) -> int:
    digits = target.removeprefix("ios").split(".")[0]
    return int(digits) if digits.isdigit() else 0
