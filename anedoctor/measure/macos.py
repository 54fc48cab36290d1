"""The one module that calls macOS: Core ML (via coremltools), powermetrics, the unified log, sysctl.

Needs: Apple silicon, macOS 14.4+ (MLComputePlan), coremltools >= 8.1 built with its native extension
(the macOS wheels). ``--power`` uses powermetrics when it can run as root (``sudo -n``), else the sudoless
IOReport "Energy Model" counters through ctypes (libIOReport, macmon's method); ``--reasons`` needs ``/usr/bin/log``.
Everything that reads these tools' output lives in the sibling modules and is tested on Linux.
NOT RUN ON A MAC YET: written against the documented APIs (developer.apple.com/documentation/coreml/mlcomputeplan;
apple/coremltools ``coremltools/models/compute_plan.py``, ``models/model.py``); the darwin-only tests exercise it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import plistlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..hardware import COMPUTE_UNITS, parse_chip
from . import computeplan, logs, powermetrics

ESPRESSO_PREDICATE = 'subsystem == "com.apple.espresso"'
IDLE_SECONDS = 2.0  # the baseline sampled before the prediction loop
COREML_VERSION_PLIST = "/System/Library/Frameworks/CoreML.framework/Resources/version.plist"
IOREPORT_LIB = "/usr/lib/libIOReport.dylib"  # in the dyld shared cache: loadable though not on disk
COREFOUNDATION_LIB = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
CF_UTF8 = 0x08000100  # kCFStringEncodingUTF8
POWER_INTERVAL_MS = 200


def require_macos() -> None:
    """Raise a one-line ModelError unless this is a Mac that can run MLComputePlan."""
    if sys.platform != "darwin":
        raise ModelError(
            f"anedoctor measure needs macOS 14.4+ on Apple silicon (Core ML's MLComputePlan); this is "
            f"{platform.system()} — predict here with `anedoctor check`, measure on a Mac"
        )
    version = tuple(int(x) for x in platform.mac_ver()[0].split(".")[:2] if x.isdigit())
    if version < (14, 4):
        raise ModelError(f"anedoctor measure needs macOS 14.4+ (MLComputePlan); this Mac runs {platform.mac_ver()[0]}")


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30).stdout.strip()


def machine_info() -> dict[str, Any]:
    """Chip, machine model, OS build and the Core ML / coremltools versions of this Mac."""
    import coremltools

    try:
        coreml = plistlib.loads(Path(COREML_VERSION_PLIST).read_bytes()).get("CFBundleShortVersionString")
    except (OSError, plistlib.InvalidFileException):
        coreml = None
    brand = _run("sysctl", "-n", "machdep.cpu.brand_string")  # 'Apple M4 Pro'
    try:
        chip = parse_chip(brand)
        known = {"id": chip.id, "ane_arch": chip.ane_arch}
    except ModelError:  # a chip newer than anedoctor's table: keep the name, no id
        known = {"id": None, "ane_arch": None}
    return {
        "chip": {**known, "name": brand, "machine": _run("sysctl", "-n", "hw.model"), "assumed": False},
        "os": {
            "id": f"macos{platform.mac_ver()[0].split('.')[0]}",
            "version": platform.mac_ver()[0],
            "build": _run("sw_vers", "-buildVersion"),
            "assumed": False,
        },
        "coreml": {"framework": coreml, "coremltools": coremltools.__version__},
    }


def _units(compute_units: str):
    """'cpu_and_ne' -> coremltools' ComputeUnit.CPU_AND_NE (the same names, upper case)."""
    import coremltools as ct

    return getattr(ct.ComputeUnit, compute_units.upper())


def compile_model(model_path: Path, out_dir: Path) -> tuple[Path, float | None]:
    """Compile to a fresh .mlmodelc (a new path, so Core ML's E5 cache is cold); returns (path, seconds).
    A .mlmodelc is used as it is (no compile time)."""
    import coremltools as ct

    if model_path.suffix == ".mlmodelc":
        return model_path, None
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    compiled = ct.models.utils.compile_model(str(model_path), str(out_dir / f"{model_path.stem}.mlmodelc"))
    return Path(compiled), time.perf_counter() - start


def compute_plan(compiled: Path, compute_units: str, function: str | None = None) -> list[dict[str, Any]]:
    """Per-op preferred/supported device and cost weight from MLComputePlan for one compute-unit setting (of one
    function of a multi-function model when ``function`` is named)."""
    from coremltools.models.compute_plan import MLComputePlan

    plan = MLComputePlan.load_from_path(str(compiled), compute_units=_units(compute_units))
    return plan_rows(plan, str(compiled), function=function)


def plan_rows(
    plan, name: str, structure=None, part: str | None = None, function: str | None = None
) -> list[dict[str, Any]]:
    """Measured op rows from a coremltools MLComputePlan (no macOS call here; const ops have no usage).
    Pipelines: every sub-model, its ops' ``part`` naming the stage. Programs: every function, or only ``function``."""
    structure = structure or plan.model_structure
    ops: list[dict[str, Any]] = []
    if structure.program is not None:
        for fname, body in structure.program.functions.items():
            if function is None or fname == function:
                _walk_block(plan, body.block, f"{part}/{fname}" if part else fname, ops)
    elif structure.neuralnetwork is not None:
        for i, layer in enumerate(structure.neuralnetwork.layers):
            usage = plan.get_compute_device_usage_for_neuralnetwork_layer(layer)
            if usage is not None:
                row = computeplan.plan_op(len(ops), layer.name, layer.type, *_devices(usage))
                ops.append({**row, "part": part, "plan_index": i})
    elif structure.pipeline is not None:
        for i, sub in enumerate(structure.pipeline.sub_models):
            for row in plan_rows(plan, name, sub, f"{part}/stage{i}" if part else f"stage{i}"):
                ops.append({**row, "index": len(ops)})
    else:
        raise ModelError(f"{name}: MLComputePlan describes no program, neural network or pipeline")
    return ops


def _walk_block(plan, block, part: str, ops: list[dict[str, Any]]) -> None:
    for i, op in enumerate(block.operations):
        usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
        if usage is not None:
            cost = plan.get_estimated_cost_for_mlprogram_operation(op)
            name = op.outputs[0].name if op.outputs else None
            row = computeplan.plan_op(len(ops), name, op.operator_name, *_devices(usage), cost.weight if cost else None)
            ops.append({**row, "part": part, "plan_index": i})
        for inner in op.blocks:
            _walk_block(plan, inner, part, ops)


def _devices(usage) -> tuple[str | None, list[str]]:
    preferred = computeplan.device_of(type(usage.preferred_compute_device).__name__)
    supported = (computeplan.device_of(type(x).__name__) for x in usage.supported_compute_devices)
    return preferred, [d for d in supported if d]


def _loaded(compiled: Path, compute_units: str, function: str | None):
    """The compiled model loaded for predictions (of ``function``, else the default function)."""
    import coremltools as ct

    return ct.models.CompiledMLModel(str(compiled), compute_units=_units(compute_units), function_name=function)


def _inputs(model_path: Path, function: str | None) -> dict[str, Any]:
    """Random inputs for one prediction of ``function`` (else the default function), as Core ML takes them."""
    from ..execute.inputs import generate_inputs
    from ..loaders import load

    graph = load(model_path).only(function).graphs[0]
    return _coreml_inputs(model_path, generate_inputs(str(model_path), graph=graph))


def timing(
    compiled: Path, compute_units: str, iterations: int, inputs: dict[str, Any], function: str | None = None
) -> dict[str, Any]:
    """Load (cold = first in this process, warm = again) and prediction times in ms, like Xcode's report; ``inputs``
    as :func:`_inputs` makes them for ``function``."""
    loads = []
    for _ in range(2):
        start = time.perf_counter()
        model = _loaded(compiled, compute_units, function)
        loads.append(1000 * (time.perf_counter() - start))
    model.predict(inputs)  # first prediction: may finish device specialisation
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        model.predict(inputs)
        times.append(1000 * (time.perf_counter() - start))
    return {
        "load_cold_ms": round(loads[0], 3),
        "load_warm_ms": round(loads[1], 3),
        "iterations": iterations,
        "predict_ms": {
            "median": round(statistics.median(times), 4),
            "min": round(min(times), 4),
            "max": round(max(times), 4),
        },
        "note": "cold = first load in this process after a fresh compile; the system ANE compile cache "
        "(aned) may still hold this model from earlier runs",
    }


def _coreml_inputs(model_path: Path, arrays: dict[str, Any]) -> dict[str, Any]:
    """Image inputs as PIL images (Core ML wants them so); others as given."""
    import coremltools as ct

    if model_path.suffix == ".mlmodelc":  # no spec to read image inputs from; arrays as generated
        return arrays
    spec = ct.utils.load_spec(str(model_path))
    images = {i.name for i in spec.description.input if i.type.WhichOneof("Type") == "imageType"}
    if not images:
        return arrays
    from PIL import Image

    out = dict(arrays)
    for name in images:
        a = arrays[name].reshape(arrays[name].shape[-3:]).astype("uint8")
        out[name] = Image.fromarray(a.transpose(1, 2, 0) if a.shape[0] == 3 else a[0])
    return out


def powermetrics_available() -> str | None:
    """None when powermetrics can run without a password prompt; else why not (one line)."""
    if not Path("/usr/bin/powermetrics").exists():
        return "powermetrics not found (/usr/bin/powermetrics)"
    if os.geteuid() != 0 and subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode:
        return "powermetrics needs root: run `sudo -v` first (or the whole command with sudo); power not measured"
    return None


def capture_power(seconds: float, work=None, interval_ms: int = POWER_INTERVAL_MS) -> powermetrics.PowerReport:
    """Sample ANE/GPU/CPU power (plist) for ``seconds`` or while ``work()`` runs."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "power.plist"
        cmd = [
            "powermetrics",
            "--samplers",
            "cpu_power,gpu_power",
            "-f",
            "plist",
            "-i",
            str(interval_ms),
            "-o",
            str(out),
        ]
        proc = subprocess.Popen(
            cmd if os.geteuid() == 0 else ["sudo", "-n", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            time.sleep(interval_ms / 1000)
            if work is None:
                time.sleep(seconds)
            else:
                work()
            time.sleep(interval_ms / 1000)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        return powermetrics.parse_power(out.read_bytes(), "powermetrics capture")


class IOReportEnergy:
    """The IOReport "Energy Model" channels, sampled without root: the libIOReport calls macmon makes
    (github.com/vladkens/macmon ``src/sources.rs`` @ 8d9fae4: IOReportCopyChannelsInGroup, IOReportCreateSubscription,
    IOReportCreateSamples, IOReportCreateSamplesDelta, IOReportSimpleGetIntegerValue). Darwin only."""

    def __init__(self):
        vp, i64 = ctypes.c_void_p, ctypes.c_int64
        try:
            self.cf, self.io = ctypes.CDLL(COREFOUNDATION_LIB), ctypes.CDLL(IOREPORT_LIB)
        except OSError as e:
            raise ModelError(f"IOReport energy counters unavailable: cannot load libIOReport ({e})") from None
        for lib, name, restype, argtypes in [
            (self.cf, "CFStringCreateWithCString", vp, [vp, ctypes.c_char_p, ctypes.c_uint32]),
            (self.cf, "CFStringGetCString", ctypes.c_bool, [vp, ctypes.c_char_p, i64, ctypes.c_uint32]),
            (self.cf, "CFDictionaryGetCount", i64, [vp]),
            (self.cf, "CFDictionaryCreateMutableCopy", vp, [vp, i64, vp]),
            (self.cf, "CFDictionaryGetValue", vp, [vp, vp]),
            (self.cf, "CFArrayGetCount", i64, [vp]),
            (self.cf, "CFArrayGetValueAtIndex", vp, [vp, i64]),
            (self.cf, "CFRelease", None, [vp]),
            (self.io, "IOReportCopyChannelsInGroup", vp, [vp, vp, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64]),
            (self.io, "IOReportCreateSubscription", vp, [vp, vp, ctypes.POINTER(vp), ctypes.c_uint64, vp]),
            (self.io, "IOReportCreateSamples", vp, [vp, vp, vp]),
            (self.io, "IOReportCreateSamplesDelta", vp, [vp, vp, vp]),
            (self.io, "IOReportChannelGetChannelName", vp, [vp]),
            (self.io, "IOReportChannelGetUnitLabel", vp, [vp]),
            (self.io, "IOReportSimpleGetIntegerValue", i64, [vp, ctypes.c_int32]),
        ]:
            getattr(lib, name).restype, getattr(lib, name).argtypes = restype, argtypes
        group = self._cfstr("Energy Model")
        found = self.io.IOReportCopyChannelsInGroup(group, None, 0, 0, 0)
        self.cf.CFRelease(group)
        if not found:
            raise ModelError("IOReport energy counters unavailable: no 'Energy Model' channel group on this Mac")
        self.channels = self.cf.CFDictionaryCreateMutableCopy(None, self.cf.CFDictionaryGetCount(found), found)
        self.cf.CFRelease(found)
        subscribed = vp()
        self.subscription = self.io.IOReportCreateSubscription(None, self.channels, ctypes.byref(subscribed), 0, None)
        if not self.subscription:
            raise ModelError("IOReport energy counters unavailable: the subscription was refused")
        self.key = self._cfstr("IOReportChannels")

    def _cfstr(self, text: str):
        return self.cf.CFStringCreateWithCString(None, text.encode(), CF_UTF8)

    def _text(self, ref) -> str:
        buf = ctypes.create_string_buffer(256)
        return (
            buf.value.decode("utf-8", "replace") if ref and self.cf.CFStringGetCString(ref, buf, 256, CF_UTF8) else ""
        )

    def snapshot(self):
        """The counters now (release with :meth:`release`)."""
        return self.io.IOReportCreateSamples(self.subscription, self.channels, None)

    def release(self, ref) -> None:
        if ref:
            self.cf.CFRelease(ref)

    def deltas(self, before, after) -> list[tuple[str, str, int]]:
        """(channel, unit, counter delta) of every energy channel between two snapshots."""
        delta = self.io.IOReportCreateSamplesDelta(before, after, None)
        try:
            items = self.cf.CFDictionaryGetValue(delta, self.key)
            out = []
            for i in range(self.cf.CFArrayGetCount(items) if items else 0):
                item = self.cf.CFArrayGetValueAtIndex(items, i)
                unit = self._text(self.io.IOReportChannelGetUnitLabel(item)).strip()
                if unit in powermetrics.IOREPORT_UNIT_J:
                    name = self._text(self.io.IOReportChannelGetChannelName(item))
                    out.append((name, unit, self.io.IOReportSimpleGetIntegerValue(item, 0)))
            return out
        finally:
            self.release(delta)


def ioreport_available() -> str | None:
    """None when the IOReport energy counters can be read (no root needed); else why not (one line)."""
    if sys.platform != "darwin":
        return "IOReport energy counters exist only on macOS"
    try:
        IOReportEnergy()
    except ModelError as e:
        return str(e)
    return None


def capture_ioreport(seconds: float, work=None, interval_ms: int = POWER_INTERVAL_MS) -> powermetrics.PowerReport:
    """Sample the IOReport energy counters every ``interval_ms`` for ``seconds`` or while ``work()`` runs;
    each sample's counter deltas become ANE/GPU/CPU mW through :func:`.powermetrics.ioreport_sample`."""
    sampler, samples, stop = IOReportEnergy(), [], threading.Event()
    failure: list[BaseException] = []

    def sample_loop():
        before, start = sampler.snapshot(), time.perf_counter()
        try:
            while True:
                done = stop.wait(interval_ms / 1000)
                after, now = sampler.snapshot(), time.perf_counter()
                deltas = sampler.deltas(before, after)
                sampler.release(before)
                before = after
                samples.append(powermetrics.ioreport_sample(deltas, 1000 * (now - start), len(samples)))
                start = now
                if done:
                    return
        except BaseException as e:  # noqa: BLE001  (raised again in the caller's thread)
            failure.append(e)
        finally:
            sampler.release(before)

    thread = threading.Thread(target=sample_loop, name="anedoctor-ioreport", daemon=True)
    thread.start()
    try:
        if work is None:
            time.sleep(seconds)
        else:
            work()
    finally:
        stop.set()
        thread.join(timeout=10)
    if failure:
        raise failure[0]
    return powermetrics.PowerReport("IOReport Energy Model", "ioreport", samples)


def power_while_predicting(
    compiled: Path, compute_units: str, iterations: int, inputs: dict[str, Any], function: str | None = None
) -> dict[str, Any]:
    """Idle baseline, then the prediction loop, both sampled; energy per inference above idle. powermetrics
    when it can run as root, else the sudoless IOReport counters; neither: not measured, and why."""
    capture, method = capture_power, "powermetrics"
    why_not = powermetrics_available()
    if why_not:
        no_ioreport = ioreport_available()
        if no_ioreport:
            return {"measured": False, "reason": f"{why_not}; {no_ioreport}"}
        capture, method = capture_ioreport, "ioreport"
    model = _loaded(compiled, compute_units, function)
    model.predict(inputs)
    idle = capture(IDLE_SECONDS)

    def loop():
        for _ in range(iterations):
            model.predict(inputs)

    run = capture(0, loop)
    return {
        "measured": True,
        "method": method,
        "interval_ms": POWER_INTERVAL_MS,
        "idle_seconds": IDLE_SECONDS,
        "run": run.to_dict()["summary"],
        "idle": idle.to_dict()["summary"],
        "per_inference": powermetrics.per_inference(run, idle, iterations),
    }


def espresso_reasons(
    compiled: Path, compute_units: str, function: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Stream com.apple.espresso while MLComputePlan compiles the model; returns (parsed log, plan ops)."""
    os.environ["OS_ACTIVITY_DT_MODE"] = "YES"  # unmasks <private> log fields; anemll-profile sets it in-process too
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            ["/usr/bin/log", "stream", "--predicate", ESPRESSO_PREDICATE, "--info", "--debug", "--style", "compact"],
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.8)  # let log stream attach (anemll-profile waits the same)
            ops = compute_plan(compiled, compute_units, function)
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        out.seek(0)
        return logs.parse_espresso_log(out.read()), ops


def measure(
    model: str | Path,
    compute_units: list[str] | tuple[str, ...] = ("all",),
    iterations: int = 20,
    power: bool = False,
    reasons: bool = False,
    lldb_log: str | Path | None = None,
    function: str | None = None,
) -> computeplan.Measurement:
    """Measure on this Mac: the compute plan, timing and optionally power and Core ML's rejection reasons,
    for every compute-unit setting (of one function of a multi-function model when ``function`` is named; else
    the plan of every function and the default function's timing). The measurement's ``ops`` are those of the first
    setting."""
    require_macos()
    model_path = Path(model)
    if not model_path.exists():
        raise ModelError(f"{model}: no such model")
    inputs = _inputs(model_path, function)  # an unknown function is a one-line error naming those there are
    unknown = [cu for cu in compute_units if cu not in COMPUTE_UNITS]
    if unknown or not compute_units:
        raise ModelError(f"unknown compute units {unknown}; choose from {', '.join(COMPUTE_UNITS)}")
    info, notes = machine_info(), []
    runs: dict[str, Any] = {}
    first_ops: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, cu in enumerate(compute_units):
            compiled, compile_s = compile_model(model_path, Path(tmp) / cu)
            if reasons and n == 0:
                log, ops = espresso_reasons(compiled, cu, function)
                notes.append(logs.attach_log(ops, log))
            else:
                ops = compute_plan(compiled, cu, function)
            run = {
                "compile_ms": None if compile_s is None else round(1000 * compile_s, 3),
                **timing(compiled, cu, iterations, inputs, function),
                "summary": computeplan.measurement(ops)["summary"],
            }
            if power:
                run["power"] = power_while_predicting(compiled, cu, iterations, inputs, function)
            runs[cu] = run
            first_ops = first_ops or ops
    sections: dict[str, Any] = {"runs": runs}
    if lldb_log is not None:
        try:
            sections["engines"] = logs.parse_lldb_log(Path(lldb_log).read_text("utf-8", errors="replace"))
        except OSError as e:
            raise ModelError(f"{lldb_log}: cannot read the lldb log ({e.strerror or e})") from None
    return computeplan.measurement(
        first_ops,
        model={"path": str(model_path), "name": model_path.name, **({"function": function} if function else {})},
        compute_units=compute_units[0],
        chip=info["chip"],
        os=info["os"],
        coreml=info["coreml"],
        notes=notes,
        **sections,
    )
