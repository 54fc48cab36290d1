"""``anedoctor fix``, ``compress``, ``estimate`` and ``chips``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..errors import ModelError
from ..util import safe_lines
from .common import (
    CHIP,
    COMPUTE_UNITS_OPTION,
    FUNCTION,
    INPUT_SHAPE,
    INPUTS,
    MODEL,
    OS,
    PROFILE,
    app,
    claimed,
    finish,
    guarded,
    input_shapes,
    progress,
    silence_stdout,
)
from .run import input_paths


@app.command("fix")
def fix_cmd(
    model: str = typer.Argument(
        ...,
        help="ML Program .mlpackage, NeuralNetwork .mlmodel (converted to an ML Program first) or Core AI .aimodel "
        "to rewrite (never modified)",
    ),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Write the fixed .mlpackage (.aimodel for a Core AI model) here, atomically"
    ),
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    compute_units: Optional[str] = COMPUTE_UNITS_OPTION,
    select: Optional[str] = typer.Option(
        None, "--select", help="Only cure these rules (comma-separated ids or prefixes, e.g. PA-11,SH)"
    ),
    ignore: Optional[str] = typer.Option(
        None, "--ignore", help="Leave these rules alone (comma-separated ids or prefixes)"
    ),
    allow_interface_changes: bool = typer.Option(
        False, "--allow-interface-changes", help="Allow rewrites that change input/output types"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Verify every rewrite but write no model"),
    profile: Optional[str] = PROFILE,
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the fix report as JSON here"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write a before/after HTML page here"),
) -> None:
    """Rewrite a model so more of it runs on the Neural Engine, verify it, write it (nothing if nothing helps)."""

    def body():
        from ..measure.profile import as_profile
        from ..rewrite import fix

        if output is None and not dry_run:
            suffix = ".aimodel" if Path(model).suffix == ".aimodel" else ".mlpackage"
            raise ModelError(f"fix needs -o OUT{suffix} (or --dry-run)")
        outputs = claimed([model, profile], {"--json": json_path, "--html": html_path}, {"-o": output})
        with progress(f"rewriting and verifying {Path(model).name}"):
            report = fix(
                model,
                output,
                chip=chip,
                os=os_,
                compute_units=compute_units or "all",
                select=select,
                ignore=ignore,
                allow_interface_changes=allow_interface_changes,
                dry_run=dry_run,
                profile=as_profile(profile),
            )
        finish(outputs, {"--json": report.to_json, "--html": report.to_html}, [str(report)])

    guarded(body)


@app.command("compress")
def compress_cmd(
    model: str = typer.Argument(..., help="ML Program .mlpackage to compress (never modified)"),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="The compressed .mlpackage (with --sweep: a folder to keep every variant)"
    ),
    palettize: Optional[int] = typer.Option(None, help="Palettize weights to N-bit LUTs: 1|2|3|4|6|8"),
    per_grouped_channel: Optional[int] = typer.Option(
        None, "--per-grouped-channel", help="One LUT per G output channels"
    ),
    quantize: Optional[str] = typer.Option(None, help="Quantize weights: int8|int4"),
    block_size: Optional[int] = typer.Option(None, "--block-size", help="Per-block scales over B input channels"),
    activations: Optional[Path] = typer.Option(
        None, help="Calibration .npz for int8 activations (W8A8, with --quantize int8)"
    ),
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
        from ..compress import compress, sweep
        from ..execute import load_inputs

        outputs = claimed(
            [model, activations, *input_paths(inputs)], {"--json": json_path, "--html": html_path}, {"-o": output}
        )
        feeds = load_inputs(*inputs) if inputs else None
        recipe = {
            "palettize": palettize,
            "per_grouped_channel": per_grouped_channel,
            "quantize": quantize,
            "block_size": block_size,
            "activations": activations,
            "prune": prune,
            "n_m": n_m,
        }
        with progress(f"compressing {Path(model).name}"):
            if sweep_recipes:
                if any(v is not None for v in recipe.values()):
                    raise ModelError(
                        "--sweep tries its own recipes; drop --palettize/--quantize/--prune and their options"
                    )
                report = sweep(model, output, chip=chip, os=os_, inputs=feeds)
            else:
                report = compress(model, output, chip=chip, os=os_, inputs=feeds, **recipe)
        if json_path:
            outputs.put("--json", report.to_json())
        if html_path:
            outputs.put("--html", report.to_html())
        outputs.commit()
        write_plain(report.render(), to_stderr="-" in outputs.paths.values())

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
    profile: Optional[str] = PROFILE,
    function: Optional[str] = FUNCTION,
    input_shape: Optional[list[str]] = INPUT_SHAPE,
    each_shape: bool = typer.Option(
        False, "--each-shape", help="Also estimate every enumerated shape of the model's input (each sized afresh)"
    ),
) -> None:
    """Estimate latency and energy per inference: per op, segment and device switch (a model, not a measurement).
    Outputs are checked before any work (never an input, all or nothing); with --json - the text goes to stderr."""

    def body():
        from ..estimate import estimate
        from ..measure.profile import as_profile

        outputs = claimed([model, profile], {"--json": json_path, "--html": html_path})
        shapes = input_shapes(input_shape)
        result = estimate(
            model,
            example_inputs=shapes,
            input_shapes=shapes,
            chip=chip,
            os=os_,
            compute_units=compute_units or "all",
            compare_compute_units=compare,
            profile=as_profile(profile),
            function=function,
            each_shape=each_shape,
        )
        finish(outputs, {"--json": result.to_json, "--html": result.to_html}, [])
        write_plain(result.render(), to_stderr="-" in outputs.paths.values())

    guarded(body)


def write_plain(text: str, to_stderr: bool) -> None:
    """Print a report as plain text (rich would wrap its long lines off a terminal), the model's names in it shown and
    not obeyed (:func:`~anedoctor.util.safe_lines`); a closed stdout stops it."""
    stream = sys.stderr if to_stderr else sys.stdout
    try:
        stream.write(safe_lines(text) + "\n")
        stream.flush()
    except BrokenPipeError:
        silence_stdout()


@app.command("chips")
def chips_cmd(json_out: bool = typer.Option(False, "--json", help="Print the table as JSON")) -> None:
    """List the chips and what the latency estimate assumes for each."""
    import json

    from ..estimate import chips_table
    from ..hardware import IOS_VERSIONS, MACOS_TO_IOS

    rows = chips_table()
    if json_out:
        print(json.dumps(rows, indent=1))
        return
    cols = {
        "id": "id",
        "ane_arch": "ANE",
        "ane_fp16_tflops": "fp16 TF",
        "ane_ghz": "NE GHz",
        "ane_weight_gbps": "weights GB/s",
        "ane_weight_gbps_source": "",
        "soc_gbps": "SoC GB/s",
        "cpu_cores": "CPU",
        "cpu_gflops": "CPU GF",
        "cpu_matrix_gflops": "CPU AMX GF",
        "gpu_cores": "GPU cores",
        "gpu_tflops": "GPU TF",
        "ane_dispatch_ms": "dispatch ms",
        "first_os": "first OS",
        "published_latencies": "checked on",
    }
    from rich.measure import Measurement
    from rich.table import Table

    table = Table(title="What the estimate assumes per chip (sources: anedoctor/hardware.py)")
    for label in cols.values():
        table.add_column(label, no_wrap=True)
    for r in rows:
        table.add_row(*(str(r[c]) for c in cols))
    console = Console()
    # never squeeze the ids and figures into ellipses: a narrow terminal wraps the lines instead
    wide = Measurement.get(console, console.options.update_width(1000), table).maximum
    Console(width=max(console.width, wide)).print(table)
    print(
        "OS versions (--os): "
        + ", ".join(f"ios{v}" for v in IOS_VERSIONS)
        + "; "
        + ", ".join(f"macos{v}" for v in MACOS_TO_IOS)
        + " (iPadOS, tvOS, visionOS read as their iOS version). "
        "A chip never runs an OS older than its first one. 'checked on': how many published latencies of the chip "
        "the estimate is compared with (bench/bench_latency.py); 0: it rests on the chip's specs alone."
    )
