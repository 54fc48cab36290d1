"""``anedoctor run`` and ``numerics``: the reference executor, in fp32 and emulated ANE fp16."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ModelError
from .common import (
    ACCUMULATOR,
    CHIP,
    DEVICES_OPTION,
    FUNCTION,
    INPUT_SHAPE,
    INPUTS,
    MODEL,
    OS,
    SEED,
    Precision,
    app,
    guarded,
    input_shapes,
    progress,
    show,
)


def emulation_setup(model: str, inputs, devices: str, chip, os_, function=None, input_shape=None, seed=0):
    """Load the model once (its --function only, when given), read the --input files or generate inputs at the
    --input-shape shapes, and resolve --devices: 'predicted' (the check report for --chip/--os, so its ops are the
    executor's ops) or one device for every op."""
    from ..api import check, chosen_shapes, load
    from ..execute import generate_inputs, load_inputs

    shapes = input_shapes(input_shape)
    if inputs and shapes:
        raise ModelError("--input-shape sizes generated inputs: give it or --input, not both")
    loaded = load(model, shapes).only(function)
    graph = loaded.graphs[0] if loaded.graphs else None
    chosen = chosen_shapes(loaded, graph, shapes or {})
    arrays = load_inputs(*inputs) if inputs else generate_inputs(loaded, seed, graph, chosen) if chosen else None
    if devices == "predicted":
        return loaded, arrays, check(loaded, chip=chip, os=os_, input_shapes=chosen)
    if devices not in ("ane", "gpu", "cpu"):
        raise ModelError(f"--devices must be predicted, ane, gpu or cpu, not {devices!r}")
    return loaded, arrays, devices


def coreai_second_opinion(model, result) -> list[str]:
    """For a Core AI model: the largest difference between anedoctor's executor and coreai-core's CPU runtime."""
    from ..loaders.coreai_tools import compare_with_coreai

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
        raise ModelError(
            f"--reference {reference!r}: use fp32, a TorchScript .pt file or package.module:factory ({e})"
        ) from None
    module = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    return module.eval()


@app.command("run")
def run_cmd(
    model: str = MODEL,
    inputs: Optional[list[str]] = INPUTS,
    precision: Precision = typer.Option(Precision.fp32, help="fp32, or fp16 = emulated ANE fp16 on the ANE-placed ops"),
    out: Optional[str] = typer.Option(
        None, "--out", help="Write the outputs to this .npz (atomically; '-' for stdout)"
    ),
    devices: str = DEVICES_OPTION,
    accumulator: Precision = ACCUMULATOR,
    seed: int = SEED,
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    function: Optional[str] = FUNCTION,
    input_shape: Optional[list[str]] = INPUT_SHAPE,
) -> None:
    """Execute a model on this machine (PyTorch backend), in fp32 or emulated ANE fp16."""

    def body():
        from ..api import run
        from ..execute import npz_bytes
        from ..outputs import Outputs

        outputs = Outputs(inputs=[model, *input_paths(inputs)])
        outputs.claim("--out", out)
        loaded, arrays, placement = emulation_setup(
            model, inputs, devices if precision is Precision.fp16 else "cpu", chip, os_, function, input_shape, seed
        )
        with progress(f"running {Path(model).name} in {precision.value}"):
            result = run(
                loaded, arrays, precision=precision.value, devices=placement, accumulator=accumulator.value, seed=seed
            )
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
    reference: str = typer.Option(
        "fp32", help="fp32 (the model itself in fp32), a TorchScript .pt file, or package.module:factory"
    ),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the JSON report here"),
    html_path: Optional[str] = typer.Option(
        None, "--html", help="Write the check report with fp16 error per op and the findings"
    ),
    threshold: float = typer.Option(0.05, help="Relative error above which an op drifts"),
    min_psnr: float = typer.Option(35.0, help="PSNR (dB) below which an op drifts"),
    devices: str = DEVICES_OPTION,
    accumulator: Precision = ACCUMULATOR,
    seed: int = SEED,
    chip: Optional[str] = CHIP,
    os_: Optional[str] = OS,
    function: Optional[str] = FUNCTION,
    input_shape: Optional[list[str]] = INPUT_SHAPE,
) -> None:
    """Find the first op where emulated ANE fp16 overflows, goes NaN/inf or drifts from fp32. Exit 1 if any does."""

    def body():
        import json

        from ..api import check, numerics
        from ..outputs import Outputs

        outputs = Outputs(
            inputs=[model, *input_paths(inputs), reference if reference.endswith((".pt", ".pth")) else None]
        )
        outputs.claim("--json", json_path)
        outputs.claim("--html", html_path)
        loaded, arrays, placement = emulation_setup(model, inputs, devices, chip, os_, function, input_shape, seed)
        with progress(f"running {Path(model).name} in fp32 and emulated fp16"):
            rep = numerics(
                loaded,
                arrays,
                reference=torch_reference(reference),
                threshold=threshold,
                min_psnr=min_psnr,
                devices=placement,
                accumulator=accumulator.value,
                seed=seed,
            )
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
