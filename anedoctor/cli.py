"""Command line: thin shells over the public functions in :mod:`anedoctor.api`.

Exit codes: 0 success, 1 a gate failed (--min-ane, or numerics found a problem), 2 unusable input
(one-line error).
"""
from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .errors import ModelError

app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Does my Core ML model run on the Apple Neural Engine? Which ops don't, why, and how to fix it.")


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


class OutputFormat(str, Enum):
    text = "text"
    github = "github"


def compute_units_value(text: str | None) -> str | None:
    from .hardware import parse_compute_units

    try:
        return None if text is None else parse_compute_units(text)
    except ModelError as e:
        raise typer.BadParameter(str(e)) from None


MODEL = typer.Argument(..., help="Model: .mlpackage, .mlmodel, .mlmodelc or .aimodel")
INPUTS = typer.Option(None, "--input", help="Inputs: an .npz (arrays by name) or name=file.npy / name=file.npz; repeatable. "
                                           "Default: generated from the model's input description")
DEVICES_OPTION = typer.Option("predicted", help="Where ops run in fp16 emulation: predicted (anedoctor check placement), or ane / gpu / cpu for every op")
ACCUMULATOR = typer.Option(Precision.fp32, help="Accumulator width emulated for ANE conv/matmul/reductions")
SEED = typer.Option(0, help="Seed for generated inputs")
CHIP = typer.Option(None, help="a12..a19, m1..m5 and their pro/max/ultra variants (default: a17, assumed); see `anedoctor chips`")
OS = typer.Option(None, "--os", help="ios17|ios18|ios26|macos14|macos15|macos26 ... (default: the model's deployment target, "
                                     "or the first OS the chip ran if that is later)")
COMPUTE_UNITS_OPTION = typer.Option(None, "--compute-units", callback=compute_units_value,
                             help="all | cpu_and_ne | cpu_and_gpu | cpu_only (coremltools spellings such as CPU_AND_NE work) "
                                  "[default: all, or [tool.anedoctor] compute_units]")


def fail(message: str, code: int = 2) -> None:
    print(f"anedoctor: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def guarded(fn):
    """Run a command, turning bad input into a one-line error and exit code 2; a closed stdout (``| head``)
    ends the printing quietly, not the command."""
    try:
        return fn()
    except ModelError as e:
        fail(str(e))
    except BrokenPipeError:
        silence_stdout()
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as e:  # an input we did not foresee must still not print a traceback
        if os.environ.get("ANEDOCTOR_DEBUG"):
            raise
        fail(f"unexpected {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (set ANEDOCTOR_DEBUG=1 for a traceback)")


def silence_stdout() -> None:
    """After the reader of stdout went away: send the rest to /dev/null so Python's exit does not fail on it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def show(lines, to_stderr: bool = False) -> None:
    """Print rich renderables (in colour on a terminal); a closed stdout stops the printing, nothing else.

    They are rendered to text first: rich itself exits the process when its stream breaks."""
    stream = sys.stderr if to_stderr else sys.stdout
    tty = stream.isatty()
    buffer = io.StringIO()
    console = Console(file=buffer, highlight=False, force_terminal=tty, color_system="auto" if tty else None,
                      width=shutil.get_terminal_size().columns if tty else None)
    for line in lines:
        console.print(line)
    try:
        stream.write(buffer.getvalue())
        stream.flush()
    except BrokenPipeError:
        silence_stdout()


@contextmanager
def progress(message: str):
    """A spinner on stderr for work that takes seconds, when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    with Console(stderr=True).status(message):
        yield


def version_callback(value: bool) -> None:
    if value:
        from ._version import __version__

        print(f"anedoctor {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                              help="Print the version and exit")) -> None:
    """Does my Core ML model run on the Apple Neural Engine? Which ops don't, why, and how to fix it."""


def claimed(inputs, paths: dict[str, str | None]):
    """An :class:`~anedoctor.outputs.Outputs` with these output flags claimed, before any work is done."""
    from .outputs import Outputs

    outputs = Outputs(inputs=inputs)
    for flag, path in paths.items():
        outputs.claim(flag, path)
    return outputs


def finish(outputs, render: dict, lines) -> None:
    """Render each claimed output, write them all (or none), then show ``lines`` (on stderr when an output
    took stdout)."""
    for flag, make in render.items():
        if outputs.paths.get(flag) is not None:
            outputs.put(flag, make())
    outputs.commit()
    show(lines, to_stderr="-" in outputs.paths.values())


def per_model_path(path: str | None, model: str, several: bool) -> str | None:
    """An output path for one of several models: ``{name}`` in it becomes the model's file stem."""
    if path is None or path == "-" or not several:
        return path
    if "{name}" not in path:
        raise ModelError(f"{path}: with several models, put {{name}} in the path (e.g. reports/{{name}}.json)")
    return path.replace("{name}", Path(model).stem)


def run_check(models: list[str], chip=None, os_=None, compute_units=None, json_path=None, html_path=None,
              sarif_path=None, junit_path=None, output_format=None, min_ane=None, min_ane_flops=None,
              max_latency_ms=None, select=None, ignore=None, explain=None, verbose=False, input_shape=None,
              measured=None) -> None:
    """``anedoctor check``: settings from the options, else [tool.anedoctor], outputs checked before any work."""
    from .api import check, gate, load
    from .config import load_config
    from .outputs import Outputs
    from .report.ci import github_annotations, to_junit, to_sarif
    from .report.html import render_html
    from .report.terminal import op_lines, report_lines
    from .util import gc_paused, json_rows

    @gc_paused()
    def body():
        cfg = load_config()
        pick = lambda value, key: value if value is not None else cfg.get(key)  # noqa: E731
        gates = {"min_ane": pick(min_ane, "min_ane"), "min_ane_flops": pick(min_ane_flops, "min_ane_flops"),
                 "max_latency_ms": pick(max_latency_ms, "max_latency_ms")}
        fmt = pick(output_format and output_format.value, "output_format") or ("github" if os.environ.get("GITHUB_ACTIONS") else "text")
        units = pick(compute_units, "compute_units")
        several = len(models) > 1
        if several and explain:
            raise ModelError("--explain takes one model")
        if several and measured:
            raise ModelError("--measured takes one model")
        outputs = Outputs(inputs=[*models, measured])
        for flag, path in (("--sarif", sarif_path), ("--junit", junit_path)):
            outputs.claim(flag, path)
        for model in models:
            outputs.claim(f"--json ({Path(model).name})" if several else "--json", per_model_path(json_path, model, several))
            outputs.claim(f"--html ({Path(model).name})" if several else "--html", per_model_path(html_path, model, several))
        checked, rows = [], []
        for model in models:
            with progress(f"loading {Path(model).name}"):
                loaded = load(model, input_shapes(input_shape))
            with progress(f"predicting {Path(model).name}"):
                report = check(loaded, chip=pick(chip, "chip"), os=pick(os_, "os"), compute_units=units,
                               select=split_list(select, cfg.get("select")), ignore=split_list(ignore, cfg.get("ignore")))
                data = report.to_dict()
            failures = gate(report, **gates)
            checked.append((data, failures))
            rows.append((Path(model).name, report, failures))
            tag = f" ({Path(model).name})" if several else ""
            if json_path:
                outputs.put(f"--json{tag}", json_rows(data))
            if html_path:
                outputs.put(f"--html{tag}", render_html(data))
            human = []
            if explain:
                placement = report.find(explain)
                human = op_lines(data["ops"][report.placements.index(placement)])
            elif fmt == "text":
                human = report_lines(data, verbose)
            if measured:
                from .measure import compare

                human = [*human, "", f"Against the measurement {measured}: {compare(data, measured).headline()}"]
            show(human, to_stderr="-" in outputs.paths.values())
        if sarif_path:
            outputs.put("--sarif", to_sarif(checked))
        if junit_path:
            outputs.put("--junit", to_junit(checked))
        outputs.commit()
        if fmt == "github":
            sys.stdout.write(github_annotations(checked))
        if several:
            show([summary_table(rows)], to_stderr="-" in outputs.paths.values())
        failed = [(name, f) for name, _, failures in rows for f in failures]
        for name, f in failed:
            print(f"anedoctor: gate failed: {name + ': ' if several else ''}{f}", file=sys.stderr)
        if failed:
            raise typer.Exit(1)
    guarded(body)


def input_shapes(options: list[str] | None) -> dict[str, tuple[int, ...]] | None:
    """``--input-shape x=1x3x224x224`` options -> {"x": (1, 3, 224, 224)}."""
    if not options:
        return None
    shapes = {}
    for text in options:
        name, _, dims = text.partition("=")
        try:
            shapes[name.strip()] = tuple(int(d) for d in dims.lower().replace(",", "x").split("x"))
        except ValueError:
            raise ModelError(f"--input-shape {text!r}: use NAME=1x3x224x224") from None
        if not name.strip() or not shapes[name.strip()] or min(shapes[name.strip()]) < 1:
            raise ModelError(f"--input-shape {text!r}: use NAME=1x3x224x224 with positive dimensions")
    return shapes


def split_list(option: str | None, configured: list[str] | None) -> list[str] | None:
    return option.split(",") if option is not None else configured


def summary_table(rows):
    from rich.table import Table

    table = Table(title="Summary (predictions)")
    for col in ("model", "ops", "ANE", "GPU", "CPU", "ANE share of ops", "of FLOPs", "est. latency ms", "gates"):
        table.add_column(col, justify="left" if col in ("model", "gates") else "right")
    for name, report, failures in rows:
        s = report.summary
        latency = s.get("latency_ms")
        table.add_row(name, str(s["ops"]), str(s["ane"]), str(s["gpu"]), str(s["cpu"]), f"{s['ane_fraction']:.1%}",
                      f"{s['ane_flops_fraction']:.1%}", "-" if latency is None else f"{latency:.3f}",
                      "failed" if failures else "passed")
    return table


@app.command("check")
def check_cmd(
    models: list[str] = typer.Argument(..., help="One or more models: .mlpackage, .mlmodel, .mlmodelc, .aimodel"),
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    compute_units: Optional[str] = COMPUTE_UNITS_OPTION,
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the JSON report here ('-' for stdout; {name} for several models)"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write the self-contained HTML report here ({name} for several models)"),
    sarif_path: Optional[str] = typer.Option(None, "--sarif", help="Write a SARIF 2.1.0 log (GitHub code scanning) here"),
    junit_path: Optional[str] = typer.Option(None, "--junit", help="Write JUnit XML (one test suite per model) here"),
    output_format: Optional[OutputFormat] = typer.Option(None, "--output-format",
                                                         help="text, or github (workflow annotations; the default when GITHUB_ACTIONS is set)"),
    min_ane: Optional[float] = typer.Option(None, "--min-ane", help="CI gate: exit 1 when the ANE share of ops is below this fraction"),
    min_ane_flops: Optional[float] = typer.Option(None, "--min-ane-flops", help="CI gate: exit 1 when the ANE share of FLOPs is below this fraction"),
    max_latency_ms: Optional[float] = typer.Option(None, "--max-latency-ms", help="CI gate: exit 1 when the estimated latency is above this"),
    select: Optional[str] = typer.Option(None, "--select", help="Only these rules (ids, prefixes or families, comma-separated: PA,DT-4)"),
    ignore: Optional[str] = typer.Option(None, "--ignore", help="Not these rules (ids, prefixes or families, comma-separated)"),
    input_shape: Optional[list[str]] = typer.Option(None, "--input-shape",
                                                    help="NAME=1x3x224x224 for a TorchScript .pt file (repeatable)"),
    explain: Optional[str] = typer.Option(None, "--explain", help="Explain one op by name"),
    measured: Optional[str] = typer.Option(None, "--measured",
                                           help="Hold the prediction against a measurement (anedoctor measure -o, "
                                                "or an MLComputePlan dump): the agreement line"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="List every op"),
) -> None:
    """Predict where every op runs (ANE / GPU / CPU) and why ops miss the Neural Engine.

    Defaults come from [tool.anedoctor] in the nearest pyproject.toml. Exit 1 when a gate fails, 2 on unusable input."""
    run_check(models, chip, os_, compute_units, json_path, html_path, sarif_path, junit_path, output_format, min_ane,
              min_ane_flops, max_latency_ms, select, ignore, explain, verbose, input_shape, measured)


@app.command("demo")
def demo_cmd(
    save: Optional[Path] = typer.Option(None, help="Keep the example model in this folder"),
    chip: Optional[str] = CHIP,
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Build the built-in example model and check it."""
    from .demo import build_demo_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = save or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = guarded(lambda: build_demo_model(folder))
        Console().print(f"Built the example model {path}\n", highlight=False)
        run_check([str(path)], chip, verbose=verbose)


def emulation_setup(model: str, inputs, devices: str, chip, os_):
    """Load the model once, read the --input files, and resolve --devices: 'predicted' (the check
    report for --chip/--os, so its ops are the executor's ops) or one device for every op."""
    from .api import check, load
    from .execute import load_inputs

    loaded = load(model)
    arrays = load_inputs(*inputs) if inputs else None
    if devices == "predicted":
        return loaded, arrays, check(loaded, chip=chip, os=os_)
    if devices not in ("ane", "gpu", "cpu"):
        raise ModelError(f"--devices must be predicted, ane, gpu or cpu, not {devices!r}")
    return loaded, arrays, devices


def coreai_second_opinion(model, result) -> list[str]:
    """For a Core AI model: the largest difference between anedoctor's executor and coreai-core's CPU runtime."""
    from .loaders.coreai import compare_with_coreai

    diffs = compare_with_coreai(model, result).max_abs_diff  # loading the model needed coreai-core already
    return [f"coreai-core CPU runtime vs anedoctor: max |difference| {name} {diff:.3g}" for name, diff in diffs.items()]


def input_paths(inputs: list[str] | None) -> list[str]:
    """The files named by --input options (``x=file.npy`` or ``file.npz``)."""
    return [text.rpartition("=")[2] if "=" in text and not Path(text).exists() else text for text in inputs or ()]


def torch_reference(reference: str):
    """--reference: 'fp32', a TorchScript file (.pt/.pth), or 'package.module:factory' returning an nn.Module."""
    if reference == "fp32":
        return reference
    import importlib

    import torch

    if reference.endswith((".pt", ".pth")):
        try:
            return torch.jit.load(reference).eval()
        except (RuntimeError, OSError, ValueError) as e:
            raise ModelError(f"{reference}: not a TorchScript module ({str(e).splitlines()[0][:100]})") from None
    module_name, _, attr = reference.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ModelError(f"--reference {reference!r}: use fp32, a TorchScript .pt file or package.module:factory ({e})") from None
    module = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    return module.eval()


@app.command("run")
def run_cmd(
    model: str = MODEL,
    inputs: Optional[list[str]] = INPUTS,
    precision: Precision = typer.Option(Precision.fp32, help="fp32, or fp16 = emulated ANE fp16 on the ANE-placed ops"),
    out: Optional[str] = typer.Option(None, "--out", help="Write the outputs to this .npz (atomically; '-' for stdout)"),
    devices: str = DEVICES_OPTION,
    accumulator: Precision = ACCUMULATOR,
    seed: int = SEED,
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
) -> None:
    """Execute a model on this machine (PyTorch backend), in fp32 or emulated ANE fp16."""
    def body():
        from .api import run
        from .execute import npz_bytes
        from .outputs import Outputs

        outputs = Outputs(inputs=[model, *input_paths(inputs)])
        outputs.claim("--out", out)
        loaded, arrays, placement = emulation_setup(model, inputs, devices if precision is Precision.fp16 else "cpu", chip, os_)
        with progress(f"running {Path(model).name} in {precision.value}"):
            result = run(loaded, arrays, precision=precision.value, devices=placement, accumulator=accumulator.value, seed=seed)
        lines = [result.describe()]
        if loaded.format == "coreai" and precision is Precision.fp32:
            lines += coreai_second_opinion(loaded, result)
        if out:
            outputs.put("--out", npz_bytes(result.outputs))
        outputs.commit()
        show(lines + ([f"outputs written to {out}"] if out and out != "-" else []), to_stderr=out == "-")
    guarded(body)


@app.command("numerics")
def numerics_cmd(
    model: str = MODEL,
    inputs: Optional[list[str]] = INPUTS,
    reference: str = typer.Option("fp32", help="fp32 (the model itself in fp32), a TorchScript .pt file, or package.module:factory"),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the JSON report here"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write the check report with fp16 error per op and the findings"),
    threshold: float = typer.Option(0.05, help="Relative error above which an op drifts"),
    min_psnr: float = typer.Option(35.0, help="PSNR (dB) below which an op drifts"),
    devices: str = DEVICES_OPTION,
    accumulator: Precision = ACCUMULATOR,
    seed: int = SEED,
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
) -> None:
    """Find the first op where emulated ANE fp16 overflows, goes NaN/inf or drifts from fp32. Exit 1 if any does."""
    def body():
        import json

        from .api import check, numerics
        from .outputs import Outputs

        outputs = Outputs(inputs=[model, *input_paths(inputs), reference if reference.endswith((".pt", ".pth")) else None])
        outputs.claim("--json", json_path)
        outputs.claim("--html", html_path)
        loaded, arrays, placement = emulation_setup(model, inputs, devices, chip, os_)
        with progress(f"running {Path(model).name} in fp32 and emulated fp16"):
            rep = numerics(loaded, arrays, reference=torch_reference(reference), threshold=threshold, min_psnr=min_psnr,
                           devices=placement, accumulator=accumulator.value, seed=seed)
        if html_path:
            report = placement if not isinstance(placement, str) else check(loaded, chip=chip, os=os_)
            outputs.put("--html", report.add_numerics(rep).to_html())
        if json_path:
            outputs.put("--json", json.dumps(rep.to_dict(), indent=1))
        outputs.commit()
        show([rep.render()], to_stderr="-" in outputs.paths.values())
        if not rep.ok:
            raise typer.Exit(1)
    guarded(body)


@app.command("fix")
def fix_cmd(
    model: str = typer.Argument(..., help="ML Program .mlpackage to rewrite (never modified)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the fixed .mlpackage here (atomically)"),
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    compute_units: Optional[str] = COMPUTE_UNITS_OPTION,
    select: Optional[str] = typer.Option(None, "--select", help="Only cure these rules (comma-separated ids or prefixes, e.g. PA-11,SH)"),
    ignore: Optional[str] = typer.Option(None, "--ignore", help="Leave these rules alone (comma-separated ids or prefixes)"),
    allow_interface_changes: bool = typer.Option(False, "--allow-interface-changes", help="Allow rewrites that change input/output types"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Verify every rewrite but write no model"),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the fix report as JSON here"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write a before/after HTML page here"),
) -> None:
    """Rewrite a model so more of it runs on the Neural Engine, verify the result, write it (nothing if nothing helps)."""
    def body():
        from .rewrite import fix

        if output is None and not dry_run:
            raise ModelError("fix needs -o OUT.mlpackage (or --dry-run)")
        outputs = claimed([model], {"--json": json_path, "--html": html_path})
        with progress(f"rewriting and verifying {Path(model).name}"):
            report = fix(model, output, chip=chip, os=os_, compute_units=compute_units or "all", select=select,
                         ignore=ignore, allow_interface_changes=allow_interface_changes, dry_run=dry_run)
        finish(outputs, {"--json": report.to_json, "--html": report.to_html}, [str(report)])
    guarded(body)


@app.command("compress")
def compress_cmd(
    model: str = typer.Argument(..., help="ML Program .mlpackage to compress (never modified)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="The compressed .mlpackage (with --sweep: a folder to keep every variant)"),
    palettize: Optional[int] = typer.Option(None, help="Palettize weights to N-bit LUTs: 1|2|3|4|6|8"),
    per_grouped_channel: Optional[int] = typer.Option(None, "--per-grouped-channel", help="One LUT per G output channels"),
    quantize: Optional[str] = typer.Option(None, help="Quantize weights: int8|int4"),
    block_size: Optional[int] = typer.Option(None, "--block-size", help="Per-block scales over B input channels"),
    activations: Optional[Path] = typer.Option(None, help="Calibration .npz for int8 activations (W8A8, with --quantize int8)"),
    prune: Optional[float] = typer.Option(None, help="Zero this fraction of the weights (magnitude pruning)"),
    n_m: Optional[str] = typer.Option(None, "--n-m", help="Structured pruning: N zeros in every M weights, e.g. 2:4"),
    sweep_recipes: bool = typer.Option(False, "--sweep", help="Try the common recipes and show the trade-off"),
    inputs: Optional[list[str]] = INPUTS,
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the report as JSON here ('-': stdout)"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write an HTML page here (the sweep: with a plot)"),
) -> None:
    """Compress weights with coremltools.optimize; report size, Neural Engine placement, latency and accuracy."""
    def body():
        from .compress import compress, sweep
        from .execute import load_inputs
        from .outputs import Outputs

        outputs = Outputs(inputs=[model, activations, *input_paths(inputs)])
        outputs.claim("--json", json_path)
        outputs.claim("--html", html_path)
        feeds = load_inputs(*inputs) if inputs else None
        recipe = {"palettize": palettize, "per_grouped_channel": per_grouped_channel, "quantize": quantize,
                  "block_size": block_size, "activations": activations, "prune": prune, "n_m": n_m}
        with progress(f"compressing {Path(model).name}"):
            if sweep_recipes:
                if any(v is not None for v in recipe.values()):
                    raise ModelError("--sweep tries its own recipes; drop --palettize/--quantize/--prune and their options")
                report = sweep(model, output, chip=chip, os=os_, inputs=feeds)
            else:
                report = compress(model, output, chip=chip, os=os_, inputs=feeds, **recipe)
        if json_path:
            outputs.put("--json", report.to_json())
        if html_path:
            outputs.put("--html", report.to_html())
        outputs.commit()
        stream = sys.stderr if "-" in outputs.paths.values() else sys.stdout
        try:  # plain text: the report's lines are long, and rich would wrap them at 80 columns off a terminal
            stream.write(report.render() + "\n")
            stream.flush()
        except BrokenPipeError:
            silence_stdout()
    guarded(body)

@app.command("estimate")
def estimate_cmd(
    model: str = MODEL,
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    compute_units: Optional[str] = COMPUTE_UNITS_OPTION,
    compare: bool = typer.Option(False, "--compare-compute-units", help="Also estimate all four compute-unit settings"),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the estimate as JSON here ('-' for stdout)"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write the report page with a latency waterfall here"),
) -> None:
    """Estimate latency and energy per inference: per op, segment and device switch (a model, not a measurement)."""
    def body():
        from .estimate import estimate

        result = estimate(model, chip=chip, os=os_, compute_units=compute_units or "all",
                          compare_compute_units=compare)
        if json_path == "-":
            print(result.to_json(), end="")
        else:
            print(result.render())
            if json_path:
                result.to_json(json_path)
        if html_path:
            result.to_html(html_path)
    guarded(body)


@app.command("chips")
def chips_cmd(json_out: bool = typer.Option(False, "--json", help="Print the table as JSON")) -> None:
    """List the chips and what the latency estimate assumes for each."""
    import json

    from .estimate import chips_table

    rows = chips_table()
    if json_out:
        print(json.dumps(rows, indent=1))
        return
    cols = {"id": "id", "ane_arch": "ANE", "ane_fp16_tflops": "fp16 TF", "ane_ghz": "NE GHz",
            "ane_weight_gbps": "weights GB/s", "ane_weight_gbps_source": "", "soc_gbps": "SoC GB/s",
            "cpu_cores": "CPU", "cpu_gflops": "CPU GF", "gpu_cores": "GPU cores", "gpu_tflops": "GPU TF",
            "ane_dispatch_ms": "dispatch ms"}
    from rich.table import Table

    table = Table(title="What the estimate assumes per chip (sources: anedoctor/hardware.py)")
    for label in cols.values():
        table.add_column(label, no_wrap=True)
    for r in rows:
        table.add_row(*(str(r[c]) for c in cols))
    Console().print(table)


@app.command("rules")
def rules_cmd(rule_id: Optional[str] = typer.Argument(None, help="A rule id, e.g. DT-4")) -> None:
    """List the ANE rules, or explain one."""
    from .rules import RULES, explain

    console = Console()
    if rule_id is None:
        from rich.table import Table

        table = Table(title=f"{len(RULES)} rules (confidence: A Apple, M measured, R reverse-engineered, C community)")
        for col in ("id", "name", "conf", "blocks", "scope", "checks"):
            table.add_column(col, overflow="fold")
        for r in RULES.values():
            table.add_row(r.id, r.name, r.confidence, ",".join(r.blocks) or "note", r.scope, r.summary)
        console.print(table)
        return
    typer.echo(guarded(lambda: explain(rule_id)).doc(), nl=False)


@app.command("power")
def power_cmd(
    capture: str = typer.Argument(..., help="A powermetrics capture (text or -f plist) or a macmon debug dump"),
    json_path: Optional[str] = typer.Option(None, "--json",
                                            help="Write the JSON (samples[] and summary) here ('-' for stdout)"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write a self-contained page with the power plot"),
) -> None:
    """Parse a powermetrics capture: ANE / GPU / CPU power over time, energy, bandwidth."""
    def body():
        from .measure import power

        outputs = claimed([capture], {"--json": json_path, "--html": html_path})
        report = power(capture)
        s = report.summary
        lines = [f"{capture}: {report.format}, {s['samples']} sample(s)"
                 + (f", {s['duration_ms']:.0f} ms" if s["duration_ms"] else "")]
        for rail in ("ane", "gpu", "cpu"):
            r, e = s[f"{rail}_mw"], s["energy_mj"][rail]
            lines.append(f"  {rail.upper()}: " + ("not measured" if r["mean"] is None else
                         f"mean {r['mean']:.1f} mW, max {r['max']:.1f} mW" + ("" if e is None else f", {e:.1f} mJ")))
        lines += [f"  note: {note}" for note in report.notes]
        finish(outputs, {"--json": report.to_json, "--html": report.to_html}, lines)
    guarded(body)


@app.command("compare")
def compare_cmd(
    prediction: str = typer.Argument(..., help="A prediction: anedoctor check MODEL --json pred.json"),
    measurement: str = typer.Argument(..., help="A measurement (anedoctor measure -o m.json) or an MLComputePlan dump"),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the comparison JSON here"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write a self-contained comparison page"),
) -> None:
    """Hold a prediction against a measurement: per-op agreement, confusion matrix, the wrong ops and why."""
    def body():
        from .measure import compare

        outputs = claimed([prediction, measurement], {"--json": json_path, "--html": html_path})
        result = compare(prediction, measurement)
        finish(outputs, {"--json": result.to_json, "--html": result.to_html}, [result.render()])
    guarded(body)


@app.command("measure")
def measure_cmd(
    model: str = MODEL,
    compute_units: str = typer.Option("all", "--compute-units",
                                      help="Comma-separated: all,cpu_and_ne,cpu_and_gpu,cpu_only"),
    iterations: int = typer.Option(20, help="Predictions timed per compute-unit setting"),
    power: bool = typer.Option(False, "--power", help="ANE/GPU/CPU power while predicting (powermetrics: needs sudo)"),
    reasons: bool = typer.Option(False, "--reasons", help="Core ML's own ANE rejection messages from the unified log"),
    out: Optional[str] = typer.Option(None, "-o", "--output", help="Write the measurement JSON here"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write the measurement as the HTML report"),
    lldb: Optional[str] = typer.Option(None, "--lldb",
                                       help="Only write an lldb command file with the Espresso engine breakpoints"),
    lldb_log: Optional[str] = typer.Option(None, "--lldb-log",
                                           help="Count engine hits in an lldb log made with --lldb"),
) -> None:
    """Measure on this Mac (macOS 14.4+): Core ML's compute plan, timing, and optionally power and reasons."""
    def body():
        if lldb:
            from .measure.logs import lldb_commands

            finish(claimed([model], {"--lldb": lldb}), {"--lldb": lldb_commands},
                   [f"lldb command file written to {lldb}; run: lldb -s {lldb} -- python your_script.py > lldb.log 2>&1"])
            return
        from .hardware import parse_compute_units
        from .measure import measure

        units = [parse_compute_units(u.strip()) for u in compute_units.split(",") if u.strip()]
        outputs = claimed([model, lldb_log], {"--output": out, "--html": html_path})
        data = measure(model, units, iterations=iterations, power=power, reasons=reasons, lldb_log=lldb_log)
        s = data["summary"]
        lines = [f"{model}: measured with MLComputePlan ({data['compute_units']}) on {data['chip'].get('name')} "
              f"{data['os'].get('build')}: Neural Engine {s['ane']} · GPU {s['gpu']} · CPU {s['cpu']} "
              f"of {s['ops']} ops"]
        for cu, run in data["runs"].items():
            t = run["predict_ms"]
            compiled = "precompiled" if run["compile_ms"] is None else f"compile {run['compile_ms']:.0f} ms"
            lines.append(f"  {cu}: {compiled}, load cold {run['load_cold_ms']:.1f} / warm "
                  f"{run['load_warm_ms']:.1f} ms, predict median {t['median']:.3f} ms "
                  f"(min {t['min']:.3f}, max {t['max']:.3f})")
            power_run = run.get("power")
            if power_run and not power_run["measured"]:
                lines.append(f"    power: not measured ({power_run['reason']})")
            elif power_run:
                for rail, r in power_run["per_inference"]["rails"].items():
                    lines.append(f"    {rail.upper()} above idle: " + ("not measured" if r["net_mw"] is None else
                          f"{r['net_mw']:.1f} mW, {r['mj_per_inference']:.4f} mJ per inference"))
        for note in data["notes"]:
            lines.append(f"  note: {note}")
        finish(outputs, {"--output": data.to_json, "--html": data.to_html}, lines)
    guarded(body)


probes_app = typer.Typer(no_args_is_help=True, help="One-layer probe models (seed 000's method) and per-chip profiles.")
app.add_typer(probes_app, name="probes")


@probes_app.command("build")
def probes_build_cmd(
    folder: Path = typer.Argument(..., help="An empty or new folder for the probe packages and manifest.json"),
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated probe names (default: every probe)"),
) -> None:
    """Write the probe suite as .mlpackage files with a manifest of what anedoctor predicts for each."""
    def body():
        from .measure.suite import build_suite

        with progress("building probe models"):
            manifest = build_suite(folder, chip=chip, os=os_, names=split_list(only, None))
        print(f"probe models and {manifest.name} written to {folder}; measure them on a Mac with "
              "`anedoctor measure NAME.mlpackage --compute-units cpu_and_ne -o measured/NAME.json`")
    guarded(body)


@probes_app.command("ingest")
def probes_ingest_cmd(
    measured: list[str] = typer.Argument(..., help="Measurement JSON files of probe models, or folders of them"),
    output: str = typer.Option(..., "-o", "--output", help="Write the profile JSON here"),
    manifest: Optional[str] = typer.Option(None, "--manifest", help="The manifest.json of `probes build` (predicted "
                                                                   "times, for the cost scale)"),
) -> None:
    """Turn measurements of the probe models into a per-chip profile (eligibility overrides, cost scale)."""
    def body():
        from .measure.profile import ingest
        from .measure.suite import load_manifest
        from .util import json_rows

        outputs = claimed([*measured, manifest], {"--output": output})
        profile = ingest(measured, load_manifest(manifest) if manifest else None)
        eligible = sum(e["ane"] for e in profile["eligibility"])
        finish(outputs, {"--output": lambda: json_rows(profile)},
               [f"profile written to {output}: {len(profile['eligibility'])} probe(s), {eligible} ANE-eligible; "
                f"cost scale {profile['cost_scale'] or 'not computed (no manifest or no timing)'}"])
    guarded(body)


def main() -> None:
    app(prog_name="anedoctor")


if __name__ == "__main__":
    sys.exit(main())
