"""sweep(): try the common compression recipes on one model and show the size / latency / ANE / accuracy
trade-off, with the Pareto front marked."""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..util import Exportable
from .core import (
    NO_ESTIMATE,
    CompressReport,
    baseline,
    check_source,
    fmt_db,
    json_safe,
    load_mlprogram,
    mb,
    measure,
    save_atomic,
)
from .recipe import Recipe, apply, check_target, open_mlmodel, weight_misfits

LEFT = "left uncompressed: "
SWEEP = (
    Recipe(palettize=8),
    Recipe(palettize=6),
    Recipe(palettize=4),
    Recipe(quantize="int8"),
    Recipe(quantize="int4", block_size=32),
    Recipe(prune=0.5),
    Recipe(prune=0.5, palettize=4),
)


@dataclass
class SweepRow:
    recipe: str
    weights: int = 0
    weight_ratio: float = 1.0
    latency_ms: float | None = None
    ane_fraction: float = 0.0
    psnr: float = math.inf  # the worst output's
    rel_err: float = 0.0  # the worst output's
    placement_changes: int = 0
    pareto: bool = False
    skipped: str = ""  # why the recipe was not run on this model
    left_uncompressed: int = 0  # weights the recipe's block size does not divide

    @classmethod
    def of(cls, report: CompressReport) -> "SweepRow":
        return cls(
            report.recipe,
            report.size_after.weights,
            report.weight_ratio,
            report.latency[1],
            report.summary_after.get("ane_fraction", 0.0),
            report.accuracy.min_psnr,
            max((o.rel_err for o in report.accuracy.outputs), default=0.0),
            len(report.changes),
            left_uncompressed=sum(n.startswith(LEFT) for n in report.notes),
        )


def mark_pareto(rows: list[SweepRow]) -> None:
    """A recipe is on the front when no other one is at least as small, as accurate and (when every
    recipe has an estimate) as fast, and strictly better in one of them."""
    done = [r for r in rows if not r.skipped]
    with_latency = all(r.latency_ms is not None for r in done)

    def key(r: SweepRow) -> tuple[float, ...]:  # smaller is better everywhere
        return (r.weights, -r.psnr) + ((r.latency_ms,) if with_latency else ())

    for r in done:
        k = key(r)
        r.pareto = not any(all(x <= y for x, y in zip(key(o), k)) and key(o) != k for o in done if o is not r)


@dataclass
class SweepReport(Exportable):
    source: str
    target: str
    original: SweepRow
    rows: list[SweepRow]
    reports: list[CompressReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "source": self.source,
                "target": self.target,
                "original": asdict(self.original),
                "recipes": [asdict(r) for r in self.rows],
                "reports": [r.to_dict() for r in self.reports],
            }
        )

    def html(self) -> str:
        from .html import sweep_page

        return sweep_page(self)

    def render(self) -> str:
        head = (
            f"{'recipe':<34} {'weights':>10} {'size':>6} {'latency':>10} {'ANE':>5} {'PSNR':>9} {'rel err':>8}  front"
        )
        lines = [f"anedoctor compress --sweep · {self.source} · {self.target}", head, "-" * len(head)]
        for r in [self.original] + self.rows:
            if r.skipped:
                lines.append(f"{r.recipe:<34} skipped: {r.skipped}")
                continue
            latency = f"{r.latency_ms:.3f} ms" if r.latency_ms is not None else "—"
            psnr = "∞" if math.isinf(r.psnr) else f"{r.psnr:.1f} dB"
            name = f"{r.recipe} †{r.left_uncompressed}" if r.left_uncompressed else r.recipe
            lines.append(
                f"{name:<34} {mb(r.weights):>10} {r.weight_ratio:>6.0%} {latency:>10} "
                f"{r.ane_fraction:>5.0%} {psnr:>9} {r.rel_err:>8.3g}  {'*' if r.pareto else ''}"
            )
        lines.append(
            "* Pareto front: no other recipe is smaller and more accurate"
            + (
                " and faster"
                if all(r.latency_ms is not None for r in self.rows if not r.skipped)
                else f" (latency: {NO_ESTIMATE})"
            )
        )
        if any(r.left_uncompressed for r in self.rows):
            lines.append("†N: N weights left uncompressed (the block size does not divide them; see the report notes)")
        lines.append(
            f"PSNR and relative error: the worst output against the original, reference executor, "
            f"{self.reports[0].accuracy.inputs if self.reports else 'random inputs'}; "
            f"best PSNR here {fmt_db(max((r.psnr for r in self.rows if not r.skipped), default=math.inf))}"
        )
        return "\n".join(lines)


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def sweep(
    source: Any,
    output_dir: Any = None,
    chip: str | None = None,
    os: str | None = None,
    inputs: Any = None,
    recipes: tuple[Recipe, ...] = SWEEP,
) -> SweepReport:
    """Compress with each recipe (into ``output_dir`` if given, else a temporary folder) and compare.

    Recipes the model's deployment target lacks are listed as skipped, with the reason; weights a
    recipe's block size does not divide stay uncompressed (coremltools' behaviour), noted in its report."""
    from ..hardware import parse_chip, parse_os

    if chip is not None:
        parse_chip(chip)
    if os is not None:
        parse_os(os)
    src = check_source(source)
    folder = Path(output_dir) if output_dir is not None else None
    if folder is not None and (folder.resolve() == src.resolve() or src.resolve() in folder.resolve().parents):
        raise ModelError(f"{output_dir}: the sweep folder must not be the input {source} or lie inside it")
    if folder is not None and folder.exists() and not folder.is_dir():
        raise ModelError(f"{output_dir}: exists and is not a folder (with --sweep, -o names a folder for the variants)")
    model = load_mlprogram(src)
    ml = open_mlmodel(src)
    misfits = weight_misfits(recipes, ml, model, src)
    base = baseline(src, chip, os, inputs, model)
    original = SweepRow(
        "original",
        base.sizes.weights,
        1.0,
        base.report.summary.get("latency_ms"),
        base.report.summary.get("ane_fraction", 0.0),
    )
    rows, reports = [], []
    with tempfile.TemporaryDirectory(prefix="anedoctor-sweep-") as tmp:
        target_dir = folder or Path(tmp)
        target_dir.mkdir(parents=True, exist_ok=True)
        for recipe, left in zip(recipes, misfits):
            try:
                check_target(recipe, model, os)
            except ModelError as e:
                rows.append(SweepRow(recipe.label, skipped=str(e).removeprefix(f"{src}: ")))
                continue
            out = target_dir / f"{src.stem}-{slug(recipe.label)}.mlpackage"
            save_atomic(apply(recipe, ml, model), out)
            report = measure(base, recipe, out, chip, os)
            report.notes += [LEFT + m for m in left]
            if folder is None:
                report.output = "(not kept; pass an output folder to keep it)"
            reports.append(report)
            rows.append(SweepRow.of(report))
    mark_pareto(rows)
    target = reports[0].target if reports else f"{base.report.target.chip.name} · {base.report.target.os.id}"
    return SweepReport(str(src), target, original, rows, reports)
