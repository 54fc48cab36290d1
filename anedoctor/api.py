"""The public functions; the CLI is a thin shell over these."""

from __future__ import annotations

from typing import Any, Iterable

from .errors import ModelError
from .hardware import parse_compute_units, resolve_target
from .ir import Model, TensorType
from .loaders import load as load_model
from .placement import place_graph
from .report import Report
from .rules import RULES
from .util import gc_paused


def load(source: Any, example_inputs: Any = None, via: str = "coreml") -> Model:
    """Load a model (path, coremltools MLModel or torch.nn.Module) into the IR. A torch module is
    converted with coremltools, or with coreai-torch to a Core AI .aimodel when ``via="coreai"``."""
    if isinstance(source, Model):
        return source
    with gc_paused():
        return load_model(source, example_inputs, via=via)


def check(
    source: Any,
    example_inputs: Any = None,
    chip: str | None = None,
    os: str | None = None,
    compute_units: str | None = None,
    via: str = "coreml",
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    profile: Any = None,
    function: str | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> Report:
    """Predict where Core ML runs every op of a model, and why ops miss the Neural Engine.

    ``source`` is a path (.mlpackage, .mlmodel, .mlmodelc, .aimodel), an MLModel, a torch.nn.Module
    (with ``example_inputs``; ``via="coreai"`` converts it with coreai-torch instead of coremltools) or
    an already loaded :class:`~anedoctor.ir.Model`. ``chip`` (a12..a19, m1..m5 and their Pro/Max/Ultra)
    and ``os`` (ios17, macos15 ...) default to a common recent device running the model's deployment
    target; the report says what was assumed. ``compute_units`` defaults to an MLModel's own setting,
    else ``all``; coremltools' spellings (``CPU_AND_NE``) are accepted. ``select`` / ``ignore`` name rules
    by id (``PA-11``), id prefix (``PA``) or family (``parameter``): only selected, not ignored rules run.
    ``profile`` (a profile.json path or dict from ``anedoctor probes ingest``) calibrates the prediction with
    measurements of its chip/OS (rules MS-1/MS-2, cost and latency scales); chip and OS default to the
    profile's own, and another chip is an error. A multi-function program is checked whole, its latency being its
    default function's (``summary.functions`` has each); ``function`` keeps that one function only.
    A flexible-shape model is sized at its default input shape, or at ``input_shapes`` (``{"x": (1, 384, 1, 128)}``).

        >>> report = anedoctor.check("model.mlpackage", chip="m4", compute_units="cpu_and_ne")
        >>> report.summary["ane_fraction"], report.causes[0].rule.id"""
    units = compute_units or getattr(getattr(source, "compute_unit", None), "name", None) or "all"
    compute_units = parse_compute_units(units)
    calibration, warnings = None, []
    if profile is not None:
        from .measure.profile import as_profile  # only when asked: the measure package is not needed otherwise

        calibration = as_profile(profile)
        chip, os, warnings = calibration.resolve(chip, os)
    model = load(source, example_inputs, via).only(function)
    size_enumerated_shapes(model, input_shapes)
    target = resolve_target(model.deployment_target, chip, os)
    with gc_paused():
        rules = selected_rules(select, ignore)
        placements = [p for g in model.graphs for p in place_graph(g, model, target, compute_units, rules, calibration)]
        report = Report(model, target, compute_units, placements, calibration)
    if calibration is not None:
        report.notes.extend(warnings)
        report.notes.append(calibration.note())
        report.panels.append(calibration.panel())
    if model.deployment_target.startswith("ios") and target.os.ios < _ios_major(model.deployment_target):
        report.notes.append(
            f"the model needs {model.deployment_target} or later; Core ML on {target.os.id} will refuse to load it"
        )
    return report


def selected_rules(select: Iterable[str] | None, ignore: Iterable[str] | None) -> set[str] | None:
    """Rule ids that stay on: those ``select`` names (all when None) less those ``ignore`` names. A rule is
    named by its id (``PA-11``), its id prefix (``PA``) or its family (``parameter``)."""
    if select is None and ignore is None:
        return None

    def named(tokens: Iterable[str]) -> set[str]:
        ids: set[str] = set()
        for token in (t.strip() for t in tokens if t.strip()):
            key = token.upper()
            hit = {r.id for r in RULES.values() if key in (r.id, r.id.split("-")[0]) or token.lower() == r.family}
            if not hit:
                raise ModelError(f"no rule or rule family {token!r}; run `anedoctor rules` for the list")
            ids |= hit
        return ids

    return (named(select) if select is not None else set(RULES)) - named(ignore or ())


def gate(
    report: Report,
    min_ane: float | None = None,
    min_ane_flops: float | None = None,
    max_latency_ms: float | None = None,
) -> list[str]:
    """The CI gates a report fails, one line each (empty: it passes).

    >>> anedoctor.gate(report, min_ane=0.95, max_latency_ms=5.0)
    ['ANE share of ops 82.0% is below 95.0% (41 of 50 ops predicted on the Neural Engine)']"""
    for name, value in (("min_ane", min_ane), ("min_ane_flops", min_ane_flops)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ModelError(f"{name} must be a fraction between 0 and 1, got {value}")
    s, failures = report.summary, []
    if min_ane is not None and s["ane_fraction"] < min_ane:
        failures.append(
            f"ANE share of ops {s['ane_fraction']:.1%} is below {min_ane:.1%} "
            f"({s['ane']} of {s['ops']} ops predicted on the Neural Engine)"
        )
    if min_ane_flops is not None and s["ane_flops_fraction"] < min_ane_flops:
        failures.append(f"ANE share of FLOPs {s['ane_flops_fraction']:.1%} is below {min_ane_flops:.1%}")
    if max_latency_ms is not None:
        latency = s.get("latency_ms")
        if latency is None:
            raise ModelError("max_latency_ms needs a latency estimate, and this report has none")
        if latency > max_latency_ms:
            failures.append(
                f"estimated latency {latency:.3f} ms is above {max_latency_ms:g} ms "
                f"({report.target.chip.name}, compute units {report.compute_units}; a prediction)"
            )
    return failures


def run(
    model: Any,
    inputs: dict[str, Any] | None = None,
    precision: str = "fp32",
    devices: Any = None,
    chip: str | None = None,
    os: str | None = None,
    compute_units: str = "all",
    **options: Any,
):
    """Execute a model on this machine (PyTorch backend) in fp32 or emulated ANE fp16.

    ``devices`` is the placement for fp16 emulation; by default the one :func:`check` predicts
    for ``chip``/``os``/``compute_units``. Other options (``accumulator``, ``seed``,
    ``keep_intermediates``, ``example_inputs``) are those of :func:`anedoctor.execute.run`.

        >>> result = anedoctor.run("model.mlpackage", precision="fp16")
        >>> result.outputs["logits"].shape"""
    from .execute import run as execute

    example = options.pop("example_inputs", None)
    model = load(model, example)
    if precision == "fp16" and devices is None:
        devices = check(model, chip=chip, os=os, compute_units=compute_units)
    return execute(model, inputs, precision, devices, example_inputs=example, **options)


def numerics(
    model: Any,
    inputs: dict[str, Any] | None = None,
    devices: Any = None,
    chip: str | None = None,
    os: str | None = None,
    compute_units: str = "all",
    **options: Any,
):
    """Find the first op where emulated ANE fp16 overflows, goes NaN/inf or drifts from fp32.

    ``devices`` defaults to the placement :func:`check` predicts; other options are those of
    :func:`anedoctor.drift.numerics` (``reference``, ``threshold``, ``min_psnr``, ``accumulator`` …).

        >>> report = anedoctor.numerics("model.mlpackage")
        >>> report.first          # the first op that breaks in fp16, or None"""
    from .drift import numerics as compare_precisions

    if hasattr(model, "forward") and options.get("reference", "fp32") == "fp32":
        options["reference"] = model  # a torch module is also the reference its conversion is held against
    loaded = load(model, options.get("example_inputs"))
    if devices is None:
        devices = check(loaded, chip=chip, os=os, compute_units=compute_units)
    return compare_precisions(loaded, inputs, devices=devices, **options)


SIZED_AT_DEFAULT = ("enumerated", "range")  # Core ML plans a range-shaped model at its default shape too (DY-1)


def size_enumerated_shapes(model: Model, chosen: dict[str, tuple[int, ...]] | None = None) -> None:
    """Give ops of enumerated- or range-shape graphs the shapes they take at the default input shape, or at the
    ``chosen`` shapes of named flexible inputs (``--input-shape``; each must be one the input allows).

    The spec leaves flexible dims unknown, so such ops could not be costed. Running the graph once
    at those shapes (the reference executor, on generated inputs) reads every intermediate
    shape. Where that is impossible (no torch, an op the executor lacks, weights not present) the
    graph stays unsized and a note says so."""
    graph = model.graphs[0] if model.graphs else None  # the executor runs a model's first graph
    chosen = chosen_shapes(model, graph, chosen or {})
    if graph is None:
        return
    sized = all(v.type.is_static for op in graph.ops for v in op.outputs)
    if sized and all(v.type.shape == chosen.get(v.name, v.type.shape) for v in graph.inputs):
        return  # nothing flexible left, or sized at these shapes already (by an earlier check of the same model)
    if not chosen and not any(s.flexibility in SIZED_AT_DEFAULT for s in graph.input_specs):
        return
    try:
        from .execute import generate_inputs
        from .execute import run as execute

        shapes: dict[str, tuple[int, ...]] = {}

        def record(step, results: tuple) -> None:
            shapes.update((v.name, tuple(t.shape)) for v, t in zip(step.op.outputs, results) if hasattr(t, "shape"))

        execute(model, generate_inputs(model, 0, graph, chosen), trace=record)
    except (ImportError, ModelError) as e:
        model.notes.append(
            f"{graph.name}: enumerated-shape ops could not be sized ({str(e)[:120]}); their costs count as 0"
        )
        return
    for v in [v for op in graph.ops for v in op.outputs] + graph.inputs:
        if (chosen or not v.type.is_static) and v.name in shapes:
            v.type = TensorType(v.type.dtype, tuple(shapes[v.name]), v.type.kind)
    at = ", ".join(
        f"{s.name} {chosen.get(s.name, s.default_shape)}"
        for s in graph.input_specs
        if s.name in chosen or s.flexibility in SIZED_AT_DEFAULT
    )
    model.notes.append(
        f"{graph.name}: flexible shapes sized at {'the chosen' if chosen else 'the default'} shape ({at}) by "
        "running the model once"
        + ("; Core ML plans a range-shaped input at its default shape (DY-1)" if chosen else "")
    )


def chosen_shapes(model: Model, graph, chosen: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """``chosen`` checked against the flexible inputs of ``graph``: a ModelError names an input that is not one,
    or a shape it does not allow. A TorchScript file's shapes are those it was converted at (none left to choose)."""
    if model.format == "torch":
        return {}
    specs = {s.name: s for s in graph.input_specs} if graph is not None else {}
    for name, shape in chosen.items():
        spec = specs.get(name)
        flexible = [n for n, s in specs.items() if s.flexibility != "fixed"]
        if spec is None or spec.flexibility == "fixed":
            what = "has a fixed shape" if spec is not None else "is not an input"
            raise ModelError(
                f"{model.path}: --input-shape {name}: {name!r} {what}; "
                + (f"its flexible inputs: {', '.join(flexible)}" if flexible else "the model has no flexible input")
            )
        if not spec.allows(shape):
            dims = "x".join(map(str, shape))
            raise ModelError(f"{model.path}: --input-shape {name}={dims}: {name!r} takes {spec.allowed()}")
    return dict(chosen)


def _ios_major(target: str) -> int:
    digits = target.removeprefix("ios").split(".")[0]
    return int(digits) if digits.isdigit() else 0
