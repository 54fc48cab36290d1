"""``anedoctor check`` (one or more models, gates, CI formats), ``demo`` and ``rules``."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..errors import ModelError
from .common import (
    CHIP,
    COMPUTE_UNITS_OPTION,
    FUNCTION,
    INPUT_SHAPE,
    OS,
    PROFILE,
    OutputFormat,
    app,
    guarded,
    input_shapes,
    progress,
    show,
    split_list,
)


def per_model_path(path: str | None, model: str, several: bool) -> str | None:
    """An output path for one of several models: ``{name}`` in it becomes the model's file stem."""
    if path is None or path == "-" or not several:
        return path
    if "{name}" not in path:
        raise ModelError(f"{path}: with several models, put {{name}} in the path (e.g. reports/{{name}}.json)")
    return path.replace("{name}", Path(model).stem)


def run_check(
    models: list[str],
    chip=None,
    os_=None,
    compute_units=None,
    json_path=None,
    html_path=None,
    sarif_path=None,
    junit_path=None,
    output_format=None,
    min_ane=None,
    min_ane_flops=None,
    max_latency_ms=None,
    select=None,
    ignore=None,
    explain=None,
    verbose=False,
    input_shape=None,
    measured=None,
    profile=None,
    function=None,
) -> None:
    """``anedoctor check``: settings from the options, else [tool.anedoctor], outputs checked before any work."""
    from ..api import check, gate, load
    from ..config import load_config
    from ..outputs import Outputs
    from ..report.ci import github_annotations, to_junit, to_sarif
    from ..report.html import render_html
    from ..report.terminal import op_lines, report_lines
    from ..util import gc_paused, json_rows

    @gc_paused()
    def body():
        cfg = load_config()
        pick = lambda value, key: value if value is not None else cfg.get(key)  # noqa: E731
        gates = {
            "min_ane": pick(min_ane, "min_ane"),
            "min_ane_flops": pick(min_ane_flops, "min_ane_flops"),
            "max_latency_ms": pick(max_latency_ms, "max_latency_ms"),
        }
        fmt = pick(output_format and output_format.value, "output_format") or (
            "github" if os.environ.get("GITHUB_ACTIONS") else "text"
        )
        units = pick(compute_units, "compute_units")
        several = len(models) > 1
        if several and explain:
            raise ModelError("--explain takes one model")
        if several and measured:
            raise ModelError("--measured takes one model")
        outputs = Outputs(inputs=[*models, measured, profile])
        shapes = input_shapes(input_shape)
        measurement = None
        if measured:
            from ..measure.compare import read_measurement

            measurement = read_measurement(measured)[0]  # a bad measurement fails before any work or output
        calibration = None
        if profile:
            from ..measure.profile import load_profile

            calibration = load_profile(profile)
        for flag, path in (("--sarif", sarif_path), ("--junit", junit_path)):
            outputs.claim(flag, path)
        for model in models:
            outputs.claim(
                f"--json ({Path(model).name})" if several else "--json", per_model_path(json_path, model, several)
            )
            outputs.claim(
                f"--html ({Path(model).name})" if several else "--html", per_model_path(html_path, model, several)
            )
        with outputs:  # an error on the way leaves no staged output behind
            checked, rows = [], []
            for model in models:
                with progress(f"loading {Path(model).name}"):
                    loaded = load(model, shapes)
                with progress(f"predicting {Path(model).name}"):
                    report = check(
                        loaded,
                        chip=pick(chip, "chip"),
                        os=pick(os_, "os"),
                        compute_units=units,
                        select=split_list(select, cfg.get("select")),
                        ignore=split_list(ignore, cfg.get("ignore")),
                        profile=calibration,
                        input_shapes=shapes,
                        function=function,
                    )
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
                    from ..measure import compare

                    human = [*human, "", f"Against the measurement {measured}: {compare(data, measurement).headline()}"]
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


def summary_table(rows):
    from rich.table import Table

    table = Table(title="Summary (predictions)")
    for col in ("model", "ops", "ANE", "GPU", "CPU", "ANE share of ops", "of FLOPs", "est. latency ms", "gates"):
        table.add_column(col, justify="left" if col in ("model", "gates") else "right")
    for name, report, failures in rows:
        s = report.summary
        latency = s.get("latency_ms")
        table.add_row(
            name,
            str(s["ops"]),
            str(s["ane"]),
            str(s["gpu"]),
            str(s["cpu"]),
            f"{s['ane_fraction']:.1%}",
            f"{s['ane_flops_fraction']:.1%}",
            "-" if latency is None else f"{latency:.3f}",
            "failed" if failures else "passed",
        )
    return table


@app.command("check")
def check_cmd(
    models: list[str] = typer.Argument(..., help="One or more models: .mlpackage, .mlmodel, .mlmodelc, .aimodel"),
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    compute_units: Optional[str] = COMPUTE_UNITS_OPTION,
    json_path: Optional[str] = typer.Option(
        None, "--json", help="Write the JSON report here ('-' for stdout; {name} for several models)"
    ),
    html_path: Optional[str] = typer.Option(
        None, "--html", help="Write the self-contained HTML report here ({name} for several models)"
    ),
    sarif_path: Optional[str] = typer.Option(
        None, "--sarif", help="Write a SARIF 2.1.0 log (GitHub code scanning) here"
    ),
    junit_path: Optional[str] = typer.Option(None, "--junit", help="Write JUnit XML (one test suite per model) here"),
    output_format: Optional[OutputFormat] = typer.Option(
        None, "--output-format", help="text, or github (workflow annotations; the default when GITHUB_ACTIONS is set)"
    ),
    min_ane: Optional[float] = typer.Option(
        None, "--min-ane", help="CI gate: exit 1 when the ANE share of ops is below this fraction"
    ),
    min_ane_flops: Optional[float] = typer.Option(
        None, "--min-ane-flops", help="CI gate: exit 1 when the ANE share of FLOPs is below this fraction"
    ),
    max_latency_ms: Optional[float] = typer.Option(
        None, "--max-latency-ms", help="CI gate: exit 1 when the estimated latency is above this"
    ),
    select: Optional[str] = typer.Option(
        None, "--select", help="Only these rules (ids, prefixes or families, comma-separated: PA,DT-4)"
    ),
    ignore: Optional[str] = typer.Option(
        None, "--ignore", help="Not these rules (ids, prefixes or families, comma-separated)"
    ),
    input_shape: Optional[list[str]] = INPUT_SHAPE,
    explain: Optional[str] = typer.Option(None, "--explain", help="Explain one op by name"),
    measured: Optional[str] = typer.Option(
        None,
        "--measured",
        help="Hold the prediction against a measurement (anedoctor measure -o, "
        "or an MLComputePlan dump): the agreement line",
    ),
    profile: Optional[str] = PROFILE,
    function: Optional[str] = FUNCTION,
    verbose: bool = typer.Option(False, "-v", "--verbose", help="List every op"),
) -> None:
    """Predict where every op runs (ANE / GPU / CPU) and why ops miss the Neural Engine.

    Defaults come from [tool.anedoctor] in the nearest pyproject.toml. Exit 1 when a gate fails, 2 on unusable input."""
    run_check(
        models,
        chip,
        os_,
        compute_units,
        json_path,
        html_path,
        sarif_path,
        junit_path,
        output_format,
        min_ane,
        min_ane_flops,
        max_latency_ms,
        select,
        ignore,
        explain,
        verbose,
        input_shape,
        measured,
        profile,
        function,
    )


@app.command("demo")
def demo_cmd(
    save: Optional[Path] = typer.Option(None, help="Keep the example model in this folder"),
    chip: Optional[str] = CHIP,
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Build the built-in example model and check it."""
    from ..demo import build_demo_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = save or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = guarded(lambda: build_demo_model(folder))
        Console().print(f"Built the example model {path}\n", highlight=False)
        run_check([str(path)], chip, verbose=verbose)


@app.command("rules")
def rules_cmd(rule_id: Optional[str] = typer.Argument(None, help="A rule id, e.g. DT-4")) -> None:
    """List the ANE rules, or explain one."""
    from ..rules import RULES, explain

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
