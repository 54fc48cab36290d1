"""The public functions; the CLI is a thin shell over these."""
from __future__ import annotations

from typing import Any

from .errors import ModelError
from .hardware import resolve_target
from .ir import Model, TensorType
from .loaders import load as load_model
from .placement import COMPUTE_UNITS, place_graph
from .report import Report
from .util import gc_paused


def load(source: Any, example_inputs: Any = None) -> Model:
    """Load a model (path, coremltools MLModel or torch.nn.Module) into the IR."""
    if isinstance(source, Model):
        return source
    with gc_paused():
        return load_model(source, example_inputs)


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
    size_enumerated_shapes(model)
    target = resolve_target(model.deployment_target, chip, os)
    with gc_paused():
        placements = [p for g in model.graphs for p in place_graph(g, model, target, compute_units)]
        report = Report(model, target, compute_units, placements)
    if model.deployment_target.startswith("ios") and target.os.ios < _ios_major(model.deployment_target):
        report.notes.append(f"the model needs {model.deployment_target} or later; Core ML on {target.os.id} will refuse to load it")
    return report


def size_enumerated_shapes(model: Model) -> None:
    """Give ops of enumerated-shape graphs the shapes they take at the default input shape.

    The spec leaves flexible dims unknown, so such ops could not be costed. Running the graph once
    at the default shapes (the reference executor, on generated inputs) reads every intermediate
    shape. Where that is impossible (no torch, an op the executor lacks, weights not present) the
    graph stays unsized and a note says so."""
    graph = model.graphs[0] if model.graphs else None  # the executor runs a model's first graph
    if graph is None or not any(s.flexibility == "enumerated" for s in graph.input_specs) or all(
            v.type.is_static for op in graph.ops for v in op.outputs):
        return
    try:
        from .execute import run

        shapes = {name: arr.shape for name, arr in run(model, keep_intermediates=True).intermediates.items()}
    except (ImportError, ModelError) as e:
        model.notes.append(f"{graph.name}: enumerated-shape ops could not be sized ({str(e)[:120]}); their costs count as 0")
        return
    for v in [v for op in graph.ops for v in op.outputs] + graph.inputs:
        if not v.type.is_static and v.name in shapes:
            v.type = TensorType(v.type.dtype, tuple(shapes[v.name]), v.type.kind)
    default = ", ".join(f"{s.name} {s.default_shape}" for s in graph.input_specs if s.flexibility == "enumerated")
    model.notes.append(f"{graph.name}: enumerated shapes sized at the default shape ({default}) by running the model once")


def _ios_major(target: str) -> int:
    digits = target.removeprefix("ios").split(".")[0]
    return int(digits) if digits.isdigit() else 0
