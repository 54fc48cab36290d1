"""compress(): shrink an .mlpackage with coremltools.optimize and report what it does to size, placement,
latency and accuracy."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..cost.latency import COMPRESSED_STREAM_IOS
from ..errors import ModelError
from ..ir import Model
from ..outputs import check_package_output, publish_package
from ..util import Exportable
from .analysis import (
    Accuracy,
    OpFormat,
    PlacementChange,
    Sizes,
    accuracy,
    first_ops,
    op_formats,
    op_kind,
    placement_changes,
)
from .recipe import (
    Recipe,
    apply,
    check_blocks,
    check_target,
    load_calibration,
    make_recipe,
    open_mlmodel,
    weight_misfits,
)

NO_ESTIMATE = "no estimate"
SHOWN = 12  # rows of a list the terminal report shows (the JSON has all)


def check_source(source: Any) -> Path:
    """The input must be an ML Program package on disk."""
    if not isinstance(source, (str, os.PathLike)):
        raise ModelError("compress needs the path of an .mlpackage (an ML Program)")
    path = Path(source)
    if not (path / "Manifest.json").is_file():
        raise ModelError(f"{path}: not an .mlpackage (no Manifest.json); compress works on ML Program packages")
    return path


def save_atomic(ml: Any, output: Path) -> None:
    """Save an MLModel so that ``output`` is either the old package or the complete new one."""
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}."))
    try:
        staged = staging / output.name
        ml.save(str(staged))
        publish_package(staged, output, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass
class Baseline:
    """The uncompressed model, measured once: placement, sizes, and the inputs it ran on (every compressed variant
    runs beside it on them)."""

    path: Path
    model: Model
    report: Any
    sizes: Sizes
    inputs: dict[str, Any]
    inputs_label: str


def baseline(
    source: Path, chip: str | None, os_: str | None, inputs: Any = None, model: Model | None = None
) -> Baseline:
    """Load, check and run the uncompressed model once (an op the executor cannot run fails here, before any
    compression)."""
    from ..api import check, load
    from ..execute import load_inputs, run

    model = model or load(source)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = load_inputs(str(inputs))
    report = check(model, chip=chip, os=os_)
    reference = run(model, inputs, seed=0)
    label = "given inputs" if inputs is not None else "random inputs (seed 0)"
    return Baseline(source, model, report, Sizes.of(source), reference.inputs, label)


def load_mlprogram(source: Path) -> Model:
    from ..api import load

    model = load(source)
    model.refuse_functions("compress", "which coremltools.optimize does not take")
    if model.format != "mlprogram" or len(model.graphs) != 1:
        raise ModelError(f"{source}: compress works on single-function ML Programs; this is a {model.format} model")
    return model


@dataclass
class CompressReport(Exportable):
    """What a compression did to one model."""

    source: str
    output: str
    recipe: str
    target: str
    size_before: Sizes
    size_after: Sizes
    summary_before: dict[str, Any]
    summary_after: dict[str, Any]
    formats: list[OpFormat]
    changes: list[PlacementChange]
    accuracy: Accuracy
    notes: list[str] = field(default_factory=list)

    @property
    def weight_ratio(self) -> float:
        return self.size_after.weights / self.size_before.weights if self.size_before.weights else 1.0

    @property
    def latency(self) -> tuple[float | None, float | None]:
        return self.summary_before.get("latency_ms"), self.summary_after.get("latency_ms")

    def change_groups(self) -> list[tuple[str, str, list[str], list[PlacementChange]]]:
        """The placement changes by kind: (before, after, why, the ops), in the order of their first op."""
        groups: dict[tuple, list[PlacementChange]] = {}
        for c in self.changes:
            groups.setdefault((c.before, c.after, tuple(c.why)), []).append(c)
        return [(before, after, list(why), changed) for (before, after, why), changed in groups.items()]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weight_ratio"] = self.weight_ratio
        d["latency_ms"] = dict(zip(("before", "after"), self.latency))
        d["accuracy"]["min_psnr"] = self.accuracy.min_psnr
        return json_safe(d)

    def html(self) -> str:
        from .html import compress_page

        return compress_page(self)

    def render(self) -> str:
        """The terminal report."""
        b, a = self.size_before, self.size_after
        lat_b, lat_a = self.latency
        lines = [
            f"anedoctor compress · {self.source} → {self.output}",
            f"recipe: {self.recipe} · {self.target}",
            f"size: weights {mb(b.weights)} → {mb(a.weights)} ({self.weight_ratio:.1%}), "
            f"package {mb(b.package)} → {mb(a.package)}",
            f"Neural Engine: {share(self.summary_before)} → {share(self.summary_after)} of ops",
            "latency (estimate): "
            + (f"{lat_b:.3f} ms → {lat_a:.3f} ms" if lat_b is not None and lat_a is not None else NO_ESTIMATE),
            f"accuracy vs the original (reference executor, {self.accuracy.inputs}):",
        ]
        lines += [f"  {o.name}: PSNR {fmt_db(o.psnr)}, relative error {o.rel_err:.3g}" for o in self.accuracy.outputs]
        for key, title in (
            ("first_drift", "error first exceeds 5% / 35 dB at"),
            ("largest_growth", "error grows most at"),
        ):
            row = getattr(self.accuracy, key)
            if row:
                lines.append(
                    f"  {title} {row['op']} ({op_kind(row)}): PSNR {fmt_db(row['psnr'])}, "
                    f"its inputs {fmt_db(row['input_psnr'])}"
                )
        lines.append(f"compressed weights: {len(self.formats)} op input(s)")
        for f in self.formats[:SHOWN]:
            lines.append(f"  {f.op} ({f.type}).{f.input}: {f.format}" + (f" — {'; '.join(f.rules)}" if f.rules else ""))
        if len(self.formats) > SHOWN:
            lines.append(f"  … {len(self.formats) - SHOWN} more (see --json)")
        lines.append(f"placement changes: {len(self.changes) or 'none'}")
        groups = self.change_groups()
        for before, after, why, changed in groups[:SHOWN]:
            count = f"{len(changed)} ops " if len(changed) > 1 else ""
            lines.append(f"  {count}{before} → {after}: {first_ops(changed)} — {'; '.join(why)}")
        if len(groups) > SHOWN:
            lines.append(f"  … {sum(len(g[3]) for g in groups[SHOWN:])} more in other groups (see --json)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def share(summary: dict[str, Any]) -> str:
    return f"{summary.get('ane', 0)}/{summary.get('ops', 0)} ({summary.get('ane_fraction', 0.0):.0%})"


def fmt_db(x: float) -> str:
    return "∞ (identical)" if math.isinf(x) else f"{x:.1f} dB"


def json_safe(x: Any) -> Any:
    """inf/nan -> strings (JSON has neither)."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def measure(base: Baseline, recipe: Recipe, output: Path, chip: str | None, os_: str | None) -> CompressReport:
    """Compare a compressed package with its baseline."""
    from ..api import check, load

    model = load(output)
    after = check(model, chip=chip, os=os_)
    summary_before, summary_after = dict(base.report.summary), dict(after.summary)
    notes = [] if "latency_ms" in summary_after else [f"latency: {NO_ESTIMATE} (the check report has no latency_ms)"]
    decompressed = recipe.palettize or recipe.pruning or (recipe.quantize and not recipe.w8a8)
    if decompressed and after.target.os.ios < COMPRESSED_STREAM_IOS:
        notes.append(
            f"on {after.target.os.id} the estimate streams compressed weights at their fp16 size (Apple's palettized, "
            "int8 and sparse CNNs ran about as fast as fp16 on iOS 17, faster on iOS 18): where the placement stays, "
            f"the size shrinks, the latency barely; iOS {COMPRESSED_STREAM_IOS} / macOS {COMPRESSED_STREAM_IOS - 3} "
            "or later gains more"
        )
    notes += [n for n in after.notes if n not in base.report.notes]
    names_before, names_after = ({p.op.name for p in r.placements} for r in (base.report, after))
    if names_before != names_after:
        notes.append(
            f"{len(names_after - names_before)} op(s) are new and {len(names_before - names_after)} gone: "
            "coremltools re-runs its graph passes when it compresses (a renamed op counts as both)"
        )
    target = f"{after.target.chip.name} · {after.target.os.id}"
    return CompressReport(
        str(base.path),
        str(output),
        recipe.label,
        target,
        base.sizes,
        Sizes.of(output),
        summary_before,
        summary_after,
        op_formats(after),
        placement_changes(base.report, after),
        accuracy(model, base.model, base.inputs, base.inputs_label),
        notes,
    )


def compress(
    source: Any,
    output: Any,
    palettize: int | None = None,
    per_grouped_channel: int | None = None,
    quantize: str | None = None,
    block_size: int | None = None,
    activations: Any = None,
    prune: float | None = None,
    n_m: str | None = None,
    chip: str | None = None,
    os: str | None = None,
    inputs: Any = None,
) -> CompressReport:
    """Compress an .mlpackage with coremltools.optimize.coreml and report size, placement, latency, accuracy.

    One of ``palettize`` (bits; ``per_grouped_channel`` G), ``quantize`` ('int8' | 'int4';
    ``block_size`` B for per-block scales; ``activations``: calibration .npz for W8A8 with int8) or
    ``prune`` (fraction, or ``n_m`` '2:4'); pruning can join palettization / quantization.
    ``inputs`` (dict or .npz) feed the accuracy comparison (default: random, seed 0). Bad requests
    raise ModelError before any work; the input is never modified; ``output`` is written atomically."""
    from ..hardware import parse_chip, parse_os

    recipe = make_recipe(palettize, per_grouped_channel, quantize, block_size, prune, n_m, activations is not None)
    if chip is not None:
        parse_chip(chip)
    if os is not None:
        parse_os(os)
    src = check_source(source)
    out = check_package_output(src, output, "compress")
    model = load_mlprogram(src)
    check_target(recipe, model, os)
    calibration = load_calibration(activations, model) if activations is not None else None
    ml = open_mlmodel(src)
    check_blocks(weight_misfits((recipe,), ml, model, src)[0], src)
    base = baseline(src, chip, os, inputs, model)
    save_atomic(apply(recipe, ml, model, calibration), out)
    return measure(base, recipe, out, chip, os)
