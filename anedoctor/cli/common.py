"""What every command shares: the app, option declarations, error handling, progress, outputs.

Command line: thin shells over the public functions in :mod:`anedoctor.api`.

Exit codes: 0 success, 1 a gate failed (--min-ane, or numerics found a problem), 2 unusable input
(one-line error).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from contextlib import contextmanager
from enum import Enum

import typer
from rich.console import Console
from rich.text import Text

from ..errors import ModelError
from ..util import safe_lines, safe_text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Does my Core ML model run on the Apple Neural Engine? Which ops don't, why, and how to fix it.",
)


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


class OutputFormat(str, Enum):
    text = "text"
    github = "github"


def compute_units_value(text: str | None) -> str | None:
    from ..hardware import parse_compute_units

    try:
        return None if text is None else parse_compute_units(text)
    except ModelError as e:
        raise typer.BadParameter(str(e)) from None


MODEL = typer.Argument(..., help="Model: .mlpackage, .mlmodel, .mlmodelc or .aimodel")
INPUTS = typer.Option(
    None,
    "--input",
    help="Inputs: an .npz (arrays by name) or name=file.npy / name=file.npz; repeatable. "
    "Default: generated from the model's input description",
)
DEVICES_OPTION = typer.Option(
    "predicted",
    help="Where ops run in fp16 emulation: predicted (anedoctor check placement), or ane / gpu / cpu for every op",
)
ACCUMULATOR = typer.Option(Precision.fp32, help="Accumulator width emulated for ANE conv/matmul/reductions")
SEED = typer.Option(0, help="Seed for generated inputs")
CHIP = typer.Option(
    None,
    help="a12..a19, m1..m5 and their pro/max/ultra variants, or a device: 'iPhone 15 Pro', 'MacBook Air M2' "
    "(default: a17, assumed); see `anedoctor chips`",
)
PROFILE = typer.Option(
    None,
    "--profile",
    help="Calibrate with a measured profile (anedoctor probes ingest -o profile.json): its chip/OS, "
    "measured eligibility (MS-1/MS-2) and cost scales",
)
OS = typer.Option(
    None,
    "--os",
    help="ios17|ios18|ios26|macos14|macos15|macos26 ... (default: the model's deployment target, "
    "or the first OS the chip ran if that is later)",
)
INPUT_SHAPE = typer.Option(
    None,
    "--input-shape",
    help="NAME=1x384x1x128: size and time a flexible (range / enumerated) input at this shape; for a TorchScript "
    ".pt file its input shape (repeatable)",
)
FUNCTION = typer.Option(
    None, "--function", help="One function of a multi-function model (default: all placed, the default one timed)"
)
COMPUTE_UNITS_OPTION = typer.Option(
    None,
    "--compute-units",
    callback=compute_units_value,
    help="all | cpu_and_ne | cpu_and_gpu | cpu_only (coremltools spellings such as CPU_AND_NE work) "
    "[default: all, or [tool.anedoctor] compute_units]",
)


def fail(message: str, code: int = 2) -> None:
    print(f"anedoctor: error: {safe_text(message)}", file=sys.stderr)
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
        first = str(e).splitlines()[0] if str(e) else ""
        fail(f"unexpected {type(e).__name__}: {first} (set ANEDOCTOR_DEBUG=1 for a traceback)")


def silence_stdout() -> None:
    """After the reader of stdout went away: send the rest to /dev/null so Python's exit does not fail on it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def show(lines, to_stderr: bool = False) -> None:
    """Print rich renderables (in colour on a terminal); a closed stdout stops the printing, nothing else.

    They are rendered to text first: rich itself exits the process when its stream breaks. A plain string is printed
    as it is (:func:`~anedoctor.util.safe_lines`), never read as rich markup: it may carry a model's names."""
    stream = sys.stderr if to_stderr else sys.stdout
    tty = stream.isatty()
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        highlight=False,
        force_terminal=tty,
        color_system="auto" if tty else None,
        width=shutil.get_terminal_size().columns if tty else None,
    )
    for line in lines:
        console.print(Text(safe_lines(line)) if isinstance(line, str) else line)
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
        from .._version import __version__

        print(f"anedoctor {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Print the version and exit"
    ),
) -> None:
    """Does my Core ML model run on the Apple Neural Engine? Which ops don't, why, and how to fix it."""


def claimed(inputs, paths: dict[str, str | None], models: dict[str, str | None] | None = None):
    """An :class:`~anedoctor.outputs.Outputs` with these output flags claimed, before any work is done;
    ``models``: the model folders the command itself writes (``-o``), which no other output may touch."""
    from ..outputs import Outputs

    outputs = Outputs(inputs=inputs, models=models)
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


def split_list(option: str | None, configured: list[str] | None) -> list[str] | None:
    return option.split(",") if option is not None else configured


probes_app = typer.Typer(no_args_is_help=True, help="One-layer probe models (seed 000's method) and per-chip profiles.")


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
