"""``anedoctor measure``, ``compare``, ``power`` and ``probes``: measurements and what reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .common import CHIP, FUNCTION, MODEL, OS, app, claimed, finish, guarded, probes_app, progress, split_list


@app.command("power")
def power_cmd(
    capture: str = typer.Argument(..., help="A powermetrics capture (text or -f plist) or a macmon debug dump"),
    json_path: Optional[str] = typer.Option(
        None, "--json", help="Write the JSON (samples[] and summary) here ('-' for stdout)"
    ),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write a self-contained page with the power plot"),
) -> None:
    """Parse a powermetrics capture: ANE / GPU / CPU power over time, energy, bandwidth."""

    def body():
        from ..measure import power

        outputs = claimed([capture], {"--json": json_path, "--html": html_path})
        report = power(capture)
        s = report.summary
        lines = [
            f"{capture}: {report.format}, {s['samples']} sample(s)"
            + (f", {s['duration_ms']:.0f} ms" if s["duration_ms"] else "")
        ]
        for rail in ("ane", "gpu", "cpu"):
            r, e = s[f"{rail}_mw"], s["energy_mj"][rail]
            lines.append(
                f"  {rail.upper()}: "
                + (
                    "not measured"
                    if r["mean"] is None
                    else f"mean {r['mean']:.1f} mW, max {r['max']:.1f} mW" + ("" if e is None else f", {e:.1f} mJ")
                )
            )
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
        from ..measure import compare

        outputs = claimed([prediction, measurement], {"--json": json_path, "--html": html_path})
        result = compare(prediction, measurement)
        finish(outputs, {"--json": result.to_json, "--html": result.to_html}, [result.render()])

    guarded(body)


@app.command("measure")
def measure_cmd(
    model: str = MODEL,
    compute_units: str = typer.Option(
        "all", "--compute-units", help="Comma-separated: all,cpu_and_ne,cpu_and_gpu,cpu_only"
    ),
    iterations: int = typer.Option(20, help="Predictions timed per compute-unit setting"),
    power: bool = typer.Option(
        False,
        "--power",
        help="ANE/GPU/CPU power while predicting: powermetrics with sudo, else the sudoless IOReport energy counters",
    ),
    reasons: bool = typer.Option(False, "--reasons", help="Core ML's own ANE rejection messages from the unified log"),
    out: Optional[str] = typer.Option(None, "-o", "--output", help="Write the measurement JSON here"),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write the measurement as the HTML report"),
    lldb: Optional[str] = typer.Option(
        None, "--lldb", help="Only write an lldb command file with the Espresso engine breakpoints"
    ),
    lldb_log: Optional[str] = typer.Option(
        None, "--lldb-log", help="Count engine hits in an lldb log made with --lldb"
    ),
    function: Optional[str] = FUNCTION,
) -> None:
    """Measure on this Mac (macOS 14.4+): Core ML's compute plan, timing, and optionally power and reasons."""

    def body():
        if lldb:
            from ..measure.logs import lldb_commands

            finish(
                claimed([model], {"--lldb": lldb}),
                {"--lldb": lldb_commands},
                [f"lldb command file written to {lldb}; run: lldb -s {lldb} -- python your_script.py > lldb.log 2>&1"],
            )
            return
        from ..hardware import parse_compute_units
        from ..measure import measure

        units = [parse_compute_units(u.strip()) for u in compute_units.split(",") if u.strip()]
        outputs = claimed([model, lldb_log], {"--output": out, "--html": html_path})
        data = measure(
            model, units, iterations=iterations, power=power, reasons=reasons, lldb_log=lldb_log, function=function
        )
        s = data["summary"]
        lines = [
            f"{model}: measured with MLComputePlan ({data['compute_units']}) on {data['chip'].get('name')} "
            f"{data['os'].get('build')}: Neural Engine {s['ane']} · GPU {s['gpu']} · CPU {s['cpu']} "
            f"of {s['ops']} ops"
        ]
        for cu, run in data["runs"].items():
            t = run["predict_ms"]
            compiled = "precompiled" if run["compile_ms"] is None else f"compile {run['compile_ms']:.0f} ms"
            lines.append(
                f"  {cu}: {compiled}, load cold {run['load_cold_ms']:.1f} / warm "
                f"{run['load_warm_ms']:.1f} ms, predict median {t['median']:.3f} ms "
                f"(min {t['min']:.3f}, max {t['max']:.3f})"
            )
            power_run = run.get("power")
            if power_run and not power_run["measured"]:
                lines.append(f"    power: not measured ({power_run['reason']})")
            elif power_run:
                for rail, r in power_run["per_inference"]["rails"].items():
                    lines.append(
                        f"    {rail.upper()} above idle ({power_run.get('method', 'powermetrics')}): "
                        + (
                            "not measured"
                            if r["net_mw"] is None
                            else f"{r['net_mw']:.1f} mW, {r['mj_per_inference']:.4f} mJ per inference"
                        )
                    )
        for note in data["notes"]:
            lines.append(f"  note: {note}")
        finish(outputs, {"--output": data.to_json, "--html": data.to_html}, lines)

    guarded(body)


@probes_app.command("build")
def probes_build_cmd(
    folder: Path = typer.Argument(..., help="An empty or new folder for the probe packages and manifest.json"),
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated probe names (default: every probe)"),
) -> None:
    """Write the probe suite as .mlpackage files with a manifest of what anedoctor predicts for each."""

    def body():
        from ..measure.suite import build_suite

        with progress("building probe models"):
            manifest = build_suite(folder, chip=chip, os=os_, names=split_list(only, None))
        written = json.loads(manifest.read_text())
        if written["skipped"]:
            print(
                f"{len(written['skipped'])} probe(s) skipped: no {written['deployment_target']} form "
                f"({', '.join(written['skipped'])}); the manifest says why"
            )
        print(
            f"probe models for {written['deployment_target']} and {manifest.name} written to {folder}; "
            "measure them on a Mac with "
            "`anedoctor measure NAME.mlpackage --compute-units cpu_and_ne,cpu_only -o measured/NAME.json`, then "
            f"`anedoctor probes ingest measured/ --manifest {manifest} -o profile.json`"
        )

    guarded(body)


@probes_app.command("ingest")
def probes_ingest_cmd(
    measured: list[str] = typer.Argument(..., help="Measurement JSON files of probe models, or folders of them"),
    output: str = typer.Option(..., "-o", "--output", help="Write the profile JSON here"),
    manifest: Optional[str] = typer.Option(
        None, "--manifest", help="The manifest.json of `probes build` (predicted times, for the cost scale)"
    ),
) -> None:
    """Turn measurements of the probe models into a per-chip profile (eligibility overrides, cost scale)."""

    def body():
        from ..measure.profile import assumption_lines, ingest
        from ..measure.suite import load_manifest
        from ..util import json_rows

        outputs = claimed([*measured, manifest], {"--output": output})
        profile = ingest(measured, load_manifest(manifest) if manifest else None)
        eligible = sum(e["ane"] for e in profile["eligibility"])
        finish(
            outputs,
            {"--output": lambda: json_rows(profile)},
            [
                f"profile written to {output}: {len(profile['eligibility'])} probe(s), {eligible} ANE-eligible; "
                f"cost scale {profile['cost_scale'] or 'not computed (no manifest or no timing)'}; "
                f"latency scale {profile.get('latency_scale') or 'not computed (no manifest or no timing)'}; "
                + (
                    f"ANE pass cost {profile['ane_pass_us']:g} us"
                    if "ane_pass_us" in profile
                    else "ANE pass cost not measured (needs pass_chain_1 and pass_chain_33 run wholly on the ANE "
                    "under cpu_and_ne, with the manifest)"
                ),
                *assumption_lines(profile["assumptions"]),
            ],
        )

    guarded(body)
