"""Command line: thin shells over the public functions in :mod:`anedoctor.api`.

Exit codes: 0 success, 1 a gate failed (--min-ane, or numerics found a problem), 2 unusable input
(one-line error).
"""
from __future__ import annotations

import os
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .errors import ModelError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Does my Core ML model run on the Apple Neural Engine? Which ops don't, why, and how to fix it.")


class ComputeUnits(str, Enum):
    all = "all"
    cpu_and_ne = "cpu_and_ne"
    cpu_and_gpu = "cpu_and_gpu"
    cpu_only = "cpu_only"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


MODEL = typer.Argument(..., help="Model: .mlpackage, .mlmodel or .mlmodelc")
INPUTS = typer.Option(None, "--input", help="Inputs: an .npz (arrays by name) or name=file.npy / name=file.npz; repeatable. "
                                           "Default: generated from the model's input description")
DEVICES = typer.Option("predicted", help="Where ops run in fp16 emulation: predicted (anedoctor check placement), or ane / gpu / cpu for every op")
ACCUMULATOR = typer.Option(Precision.fp32, help="Accumulator width emulated for ANE conv/matmul/reductions")
SEED = typer.Option(0, help="Seed for generated inputs")
CHIP = typer.Option(None, help="m1|m2|m3|m4|m5|a11..a18 (default: a17, assumed)")
OS = typer.Option(None, "--os", help="ios16|ios17|ios18|ios26|macos13|macos14|macos15|macos26 ... (default: the model's deployment target)")


def fail(message: str, code: int = 2) -> None:
    print(f"anedoctor: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def guarded(fn):
    """Run a command, turning bad input into a one-line error and exit code 2."""
    try:
        return fn()
    except ModelError as e:
        fail(str(e))
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as e:  # an input we did not foresee must still not print a traceback
        if os.environ.get("ANEDOCTOR_DEBUG"):
            raise
        fail(f"unexpected {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (set ANEDOCTOR_DEBUG=1 for a traceback)")


def run_check(model: str, chip, os_, compute_units, json_path, html_path, min_ane, explain, verbose) -> None:
    from .api import check
    from .util import gc_paused

    @gc_paused()
    def body():
        if min_ane is not None and not 0.0 <= min_ane <= 1.0:
            raise ModelError(f"--min-ane must be a fraction between 0 and 1, got {min_ane}")
        report = check(model, chip=chip, os=os_, compute_units=compute_units.value)
        console = Console()
        if explain:
            report.explain(explain, console)
        elif json_path != "-":
            report.render(console, verbose)
        if json_path:
            text = report.to_json(None if json_path == "-" else json_path)
            if json_path == "-":
                print(text)
        if html_path:
            report.to_html(html_path)
        if min_ane is not None:
            share = report.summary["ane_fraction"]
            if share < min_ane:
                print(f"anedoctor: gate failed: ANE share of ops {share:.1%} is below --min-ane {min_ane:.1%} "
                      f"({report.summary['ane']} of {report.summary['ops']} ops predicted on the Neural Engine)", file=sys.stderr)
                raise typer.Exit(1)
    guarded(body)


@app.command("check")
def check_cmd(
    model: str = MODEL,
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    compute_units: ComputeUnits = typer.Option(ComputeUnits.all, "--compute-units", help="Core ML compute units the model is loaded with"),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the JSON report here ('-' for stdout)"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write the self-contained HTML report here"),
    min_ane: Optional[float] = typer.Option(None, "--min-ane", help="CI gate: exit 1 when the ANE share of ops is below this fraction"),
    explain: Optional[str] = typer.Option(None, "--explain", help="Explain one op by name"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="List every op"),
) -> None:
    """Predict where every op runs (ANE / GPU / CPU) and why ops miss the Neural Engine."""
    run_check(model, chip, os_, compute_units, json_path, html_path, min_ane, explain, verbose)


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
        run_check(str(path), chip, None, ComputeUnits.all, None, None, None, None, verbose)


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
    out: Optional[Path] = typer.Option(None, "--out", help="Write the outputs to this .npz (atomically)"),
    devices: str = DEVICES,
    accumulator: Precision = ACCUMULATOR,
    seed: int = SEED,
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
) -> None:
    """Execute a model on this machine (PyTorch backend), in fp32 or emulated ANE fp16."""
    def body():
        from .execute import run, save_outputs

        loaded, arrays, placement = emulation_setup(model, inputs, devices if precision is Precision.fp16 else "cpu", chip, os_)
        result = run(loaded, arrays, precision=precision.value, devices=placement, accumulator=accumulator.value, seed=seed)
        print(result.describe())
        if out:
            save_outputs(out, result.outputs)
            print(f"outputs written to {out}")
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
    devices: str = DEVICES,
    accumulator: Precision = ACCUMULATOR,
    seed: int = SEED,
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
) -> None:
    """Find the first op where emulated ANE fp16 overflows, goes NaN/inf or drifts from fp32. Exit 1 if any does."""
    def body():
        from .fp16 import numerics
        from .util import write_atomic

        loaded, arrays, placement = emulation_setup(model, inputs, devices, chip, os_)
        rep = numerics(loaded, arrays, reference=torch_reference(reference), threshold=threshold, min_psnr=min_psnr,
                       devices=placement, accumulator=accumulator.value, seed=seed)
        print(rep.render())
        if html_path:
            from .api import check

            report = placement if not isinstance(placement, str) else check(loaded, chip=chip, os=os_)
            report.add_numerics(rep).to_html(html_path)
        if json_path:
            import json

            write_atomic(json_path, json.dumps(rep.to_dict(), indent=1))
        if not rep.ok:
            raise typer.Exit(1)
    guarded(body)


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
    r = guarded(lambda: explain(rule_id))
    console.print(f"[bold cyan]{r.id}[/] [bold]{r.name}[/] ({r.family})")
    for label, text in (("checks", r.summary), ("why", r.why), ("blocks", ", ".join(r.blocks) or "nothing (advisory note)"),
                        ("scope", r.scope), ("confidence", r.confidence), ("source", r.source),
                        ("Apple's message", r.apple_message or "-"), ("fix", r.fix)):
        console.print(f"  [bold]{label}:[/] {text}", highlight=False)


def main() -> None:
    app(prog_name="anedoctor")


if __name__ == "__main__":
    sys.exit(main())
