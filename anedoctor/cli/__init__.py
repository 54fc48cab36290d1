"""Command line: thin shells over the public functions (``anedoctor.check``, ``run``, ``fix`` …), one module per
group of commands; :mod:`.common` holds what they share. Exit codes: 0 success, 1 a gate failed (or numerics
found a problem), 2 unusable input (one-line error)."""

from . import check, measure, run, tools  # noqa: F401  (each module registers its commands)
from .common import app, probes_app

app.add_typer(probes_app, name="probes")


def main() -> None:
    app(prog_name="anedoctor")
