"""Reference executor for Core ML models on Linux, with PyTorch as the backend.

``run(model, inputs)`` executes the IR of an ML Program (or a translated NeuralNetwork) op by op.
Every MIL op type maps to a small function in ``OPS``; a model is first compiled into a
:class:`Plan` (constants turned into tensors once, argument lookups pre-bound to slots,
intermediates freed after their last use), so a forward pass costs little more than the
tensor math itself.

Precisions
----------
``fp32``
    Everything runs in fp32, including ops an fp16 ML Program types as fp16: fp16 casts are
    ignored and fp16 weights are widened. This is the reference.
``fp16``
    An emulation of where Core ML would run each op (``devices``: op -> "ane" | "gpu" | "cpu"):

    * ANE ops read and write fp16 (inputs and outputs rounded to fp16; |x| > 65504 becomes inf,
      as on the device). Elementwise products inside normalisations, softmax and attention are
      rounded to fp16 too. Sums use the ``accumulator``: ``"fp32"`` (default: a wide accumulator
      rounded only at the output port, the M1 finding) or ``"fp16"`` (a running fp16 sum over
      partials of ``ACC_CHUNK`` products, the pessimistic reading). Public
      reverse-engineering reports both (751K's M6 study, maderix's M4 notes); which one a chip
      implements is contested, hence the setting.
    * GPU ops store fp16 and compute in fp32 (Core ML's default on the GPU).
    * CPU ops compute and store in fp32.
    * ``cast`` to fp16 always rounds (the model asked for it).

    Not emulated: denormal flushing, NaN-to-inf conversion, the saturating M1/A14 MAC output
    (32768), the Q15.16 fixed-point accumulator reported for M4, per-product rounding inside
    conv/matmul, and the device's transcendental approximations (exp, erf, ... are exact then
    rounded).

    Placement (:func:`resolve_devices`): a mapping, a report, or one device name. The executor
    takes a placement; :func:`anedoctor.run` supplies the one ``anedoctor.check`` predicts.

Inputs come from ``.npz``/``.npy`` files (:func:`load_inputs`) or are generated from the input
description (:func:`generate_inputs`); :func:`save_outputs` writes ``.npz`` atomically. Bad
inputs, missing weights and ops without an implementation (list, complex and NMS ops,
crop_resize, resample, NeuralNetwork loop/branch layers) raise :class:`ModelError` naming them.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ModelError
from ..ir import Model, Op
from ..ir.dtypes import FP16_MAX
from .inputs import (
    check_inputs,
    default_inputs,
    generate_inputs,
    load_inputs,
    load_model,
    npz_bytes,
    save_outputs,
)
from .plan import Plan, Step

__all__ = [
    "FP16_MAX",
    "Plan",
    "RunResult",
    "check_inputs",
    "default_inputs",
    "generate_inputs",
    "load_inputs",
    "load_model",
    "npz_bytes",
    "resolve_devices",
    "run",
    "side_by_side",
    "save_outputs",
]

# ------------------------------------------------------------------ placement


def resolve_devices(model: Model, devices: Any = None) -> tuple[Callable[[Op], str], str]:
    """Op -> device for fp16 emulation, and where it came from. ``devices`` may be a mapping
    {Op: device} (ops not in it run on the CPU in fp32), an object with ``.device(op)`` such as an
    ``anedoctor.check`` report, or one device name for every op. The executor does not predict:
    :func:`anedoctor.run` passes the placement ``anedoctor.check`` predicts when none is given."""
    if isinstance(devices, str):
        return (lambda o: devices), f"every op on {devices}"
    if isinstance(devices, dict):
        by_id = {id(k): v for k, v in devices.items()}
        return (lambda o: by_id.get(id(o), "cpu")), "given mapping (unlisted ops on cpu)"
    if hasattr(devices, "target") and hasattr(devices, "device"):  # an anedoctor.check report
        return (lambda o: devices.device(o) or "cpu"), (
            f"anedoctor.check placement ({devices.target.chip.id}, {devices.compute_units}; "
            "ops inside control flow on cpu)"
        )
    if devices is not None and hasattr(devices, "device"):
        return (lambda o: devices.device(o) or "cpu"), "given placement"
    raise ModelError(
        "fp16 emulation needs a placement: a report from anedoctor.check, a {op: device} mapping or a device name"
    )


# ------------------------------------------------------------------ public API


@dataclass
class RunResult:
    outputs: dict[str, np.ndarray]
    intermediates: dict[str, np.ndarray] = field(default_factory=dict)
    states: dict[str, np.ndarray] = field(default_factory=dict)
    precision: str = "fp32"
    accumulator: str = "fp32"
    placement: str = ""
    devices: dict[str, str] = field(default_factory=dict)  # op name -> device (fp16 emulation)
    seconds: float = 0.0
    inputs: dict[str, np.ndarray] = field(default_factory=dict)

    def describe(self) -> str:
        """One line per output: shape, dtype, range, non-finite count."""
        lines = []
        for name, arr in self.outputs.items():
            a = np.asarray(arr)
            if a.dtype.kind == "f" and a.size:
                fin = a[np.isfinite(a)]
                rng = (
                    f"min {fin.min():.4g} max {fin.max():.4g} mean {fin.mean():.4g}" if fin.size else "no finite values"
                )
                bad = a.size - fin.size
                lines.append(f"{name}: {a.dtype}{list(a.shape)} {rng}" + (f", {bad} non-finite" if bad else ""))
            else:
                lines.append(f"{name}: {a.dtype}{list(a.shape)}")
        return "\n".join(lines)


def naming_the_model(fn):
    """Prefix a ModelError with the model's path when the message does not start with it."""

    @functools.wraps(fn)
    def wrapper(model: Any, *args, **kwargs):
        try:
            return fn(model, *args, **kwargs)
        except ModelError as e:
            path = model.path if isinstance(model, Model) else ""
            raise prefixed(str(model) if isinstance(model, (str, os.PathLike)) else path, e) from None

    return wrapper


def prefixed(path: Any, e: ModelError) -> ModelError:
    """``e`` with the model's path in front, unless it starts with it already."""
    return ModelError(f"{path}: {e}") if path and not str(e).startswith(str(path)) else e


def named(m: Model, steps: Iterator) -> Iterator:
    """``steps``, with a ModelError they raise naming the model's path (as :func:`naming_the_model`)."""
    try:
        yield from steps
    except ModelError as e:
        raise prefixed(m.path, e) from None


@naming_the_model
def run(
    model: Any,
    inputs: dict[str, Any] | None = None,
    precision: str = "fp32",
    devices: Any = None,
    accumulator: str = "fp32",
    seed: int = 0,
    keep_intermediates: bool = False,
    example_inputs: Any = None,
    trace: Callable[[Step, tuple], None] | None = None,
    function: str | None = None,
) -> RunResult:
    """Execute a model (path, MLModel, torch module + ``example_inputs``, or ir.Model).

    ``inputs`` maps input names to arrays (None: generated from the input description with
    ``seed``). ``precision`` is "fp32" or "fp16" (ANE/GPU emulation, see the module docstring)
    with placement from ``devices`` (see :func:`resolve_devices`). ``keep_intermediates`` keeps every
    top-level op's outputs by value name (in a pipeline, whose stages may reuse names, as ``stage/name`` with the
    stage's graph name, the ``part`` of a report); ``trace(step, results)`` sees each one instead, without keeping
    them. ``function`` runs that function of a multi-function program instead of its default. Errors raise
    ModelError."""
    m = load_model(model, example_inputs).only(function)
    result, steps = executing(m, inputs, precision, devices, accumulator, seed, example_inputs)
    staged = m.pipeline
    with torch.inference_mode():
        for step, res in steps:
            if keep_intermediates:
                arrays = arrays_of(step, res)
                stage = f"{step.plan.graph.name}/" if staged else ""
                result.intermediates.update((stage + name, a) for name, a in arrays.items())
            if trace is not None:
                trace(step, res)
    return result


def executing(
    m: Model,
    inputs: dict[str, Any] | None,
    precision: str = "fp32",
    devices: Any = None,
    accumulator: str = "fp32",
    seed: int = 0,
    example_inputs: Any = None,
    constants: dict[int, Any] | None = None,
) -> tuple[RunResult, Iterator[tuple[Step, tuple]]]:
    """The run of :func:`run`, one top-level op at a time: its result (outputs, devices and time filled in when the
    iterator ends) and the iterator of (step, results). ``constants``: weights shared with another run of the same
    model (see :class:`Plan`). The caller holds ``torch.inference_mode()``."""
    if not m.graphs:
        raise ModelError(f"{m.path}: the model has no neural network to execute")
    device_of, placement = resolve_devices(m, devices) if precision == "fp16" else (None, "")
    graphs = m.prediction_graphs()
    feeds = dict(inputs) if inputs is not None else default_inputs(m, graphs[0], example_inputs, seed)
    given = {k: np.asarray(v) for k, v in feeds.items()}
    result = RunResult({}, precision=precision, accumulator=accumulator, placement=placement, inputs=given)

    def steps() -> Iterator[tuple[Step, tuple]]:
        start, fed = time.perf_counter(), feeds
        for g in graphs:
            plan = Plan(g, precision, device_of, accumulator, seed, constants)
            names = {v.name for v in g.inputs}
            arrays = check_inputs(g, {k: v for k, v in fed.items() if k in names or g is graphs[0]})
            result.outputs = yield from plan.stepwise(arrays, result.states)
            result.devices.update((st.op.name, st.device) for st in plan.steps if st.emulate)
            fed = {**fed, **result.outputs}
        result.seconds = time.perf_counter() - start

    return result, steps()


def step_outputs(m: Model) -> set[str]:
    """Names of the values a run of ``m`` yields as top-level step outputs (constexpr ops are folded, not run)."""
    return {
        v.name
        for g in m.prediction_graphs()
        for op in g.ops
        if not op.type.startswith("constexpr_")
        for v in op.outputs
    }


def arrays_of(step: Step, results: tuple) -> dict[str, np.ndarray]:
    """A step's tensor outputs as arrays, by value name."""
    return {v.name: val.numpy() for v, val in zip(step.op.outputs, results) if isinstance(val, torch.Tensor)}


def side_by_side(
    model: Any,
    other: Any,
    inputs: dict[str, Any],
    visit: Callable[[Step, dict[str, np.ndarray], dict[str, np.ndarray]], None],
    precision: str = "fp32",
    devices: Any = None,
    accumulator: str = "fp32",
    seed: int = 0,
) -> tuple[RunResult, RunResult]:
    """Run ``model`` in fp32 and ``other`` (the same model or a rewrite of it, at ``precision`` on ``devices``) on
    the same inputs in step, and call ``visit(step, values, other_values)`` after each top-level op of ``other``
    with the arrays both runs made for its outputs (by name; a name ``model`` never makes is absent). A value is held
    only until ``other`` reaches it, so the memory is that of two runs, not of every intermediate of both. ``seed``
    seeds both runs' random ops."""
    m, o = load_model(model), load_model(other)
    shared = {} if m is o else None  # one model at two precisions: its weights are held once
    reference, ahead = executing(m, inputs, seed=seed, constants=shared)
    result, steps = executing(o, inputs, precision, devices, accumulator, seed, constants=shared)
    ahead, steps = named(m, ahead), named(o, steps)
    wanted = step_outputs(m) & step_outputs(o)
    pending: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for step, res in steps:
            names = [v.name for v in step.op.outputs if v.name in wanted]
            while any(n not in pending for n in names) and (made := next(ahead, None)) is not None:
                pending.update((k, a) for k, a in arrays_of(*made).items() if k in wanted)
            visit(step, {n: pending.pop(n) for n in names if n in pending}, arrays_of(step, res))
        for _ in ahead:
            pass
    return reference, result
