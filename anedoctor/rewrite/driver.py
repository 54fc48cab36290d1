"""``fix``: apply the registered passes whose rules fire, verify each result, write the survivor."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..api import check, load, numerics, run, selected_rules
from ..errors import ModelError
from ..outputs import check_package_output, publish_package
from . import coreai as coreai_target
from .base import PASSES, PLACEMENT_RULES, Pass, compare_outputs, replacements
from .coreml_io import load_program
from .from_nn import is_neuralnetwork, to_mlprogram
from .report import Attempt, FixReport, summary_of, unfixed_causes

MIN_LATENCY_GAIN = 0.01  # an estimated latency cut below 1% is within the cost model's noise: not worth a new model


def fix(
    source: Any,
    output: str | os.PathLike | None = None,
    chip: str | None = None,
    os: str | None = None,
    compute_units: str = "all",
    select: Iterable[str] | str | None = None,
    ignore: Iterable[str] | str | None = None,
    allow_interface_changes: bool = False,
    dry_run: bool = False,
    inputs: dict[str, Any] | None = None,
    profile: Any = None,
) -> FixReport:
    """Rewrite an ML Program ``.mlpackage`` (or a NeuralNetwork ``.mlmodel``, converted first) so more of it
    runs on the Neural Engine, and prove the result is the same model.

    Every registered pass (:data:`anedoctor.rewrite.PASSES`, in priority order) whose rules fire in
    ``anedoctor.check`` of the model is tried on its own: the rewritten program is saved (with a
    pipeline that does not undo it), reloaded, checked again (the rule is gone from the rewritten
    ops, no other blocking rule appears, the ANE share of ops and FLOPs did not drop) and executed on
    the same seeded ``inputs`` as the original (outputs within 1e-4 relative for exact passes, the
    pass's stated tolerance under fp16 emulation otherwise). A pass that fails is dropped and
    reported; one dropped before a later pass changed the model is tried once more on the result (two blockers of
    one segment, say a max pool's -inf padding and its window, can each gain nothing alone).
    ``select``/``ignore`` restrict the rule ids (lists or "PA-11,SH"); interface-changing
    passes run only with ``allow_interface_changes``. The result is written atomically to ``output``
    (never over or inside the input) when at least one pass survived and the predicted ANE share
    rose or the estimated latency fell; otherwise nothing is written and the report says why.
    ``dry_run`` verifies everything and writes nothing. ``profile`` (as ``check`` takes it) checks every
    step against a measured profile, so passes also cure what it measured off the ANE (rule MS-1).
    A NeuralNetwork is first converted to an fp16
    ML Program in the opset of the target OS (iOS 15+; :mod:`.from_nn`, verified against the original),
    reported as the first step. A Core AI ``.aimodel`` is rewritten by the passes' Core AI implementations
    (:mod:`.coreai`), and each result is also run with coreai-core's CPU runtime against the original."""
    src = package_path(source)
    out = Path(output) if output is not None else None
    if out is None and not dry_run:
        raise ModelError("fix needs an output path (or dry_run=True)")
    if out is not None:
        check_package_output(src, out, "fix", ".aimodel" if src.suffix == ".aimodel" else ".mlpackage")
    wanted = selected_rules(split(select), split(ignore))
    original = check(src, chip=chip, os=os, compute_units=compute_units, profile=profile)
    original.model.refuse_functions("fix", "and a rewrite is verified by running one")
    reference = None  # the original's outputs on seeded (or given) inputs, computed when a pass is tried
    report = FixReport(src, out, dry_run, original, summary_of(original))
    work = Path(tempfile.mkdtemp(prefix=f".{src.name}.fix-", dir=out.parent if out is not None else None))
    try:
        current, current_report = src, original
        if is_neuralnetwork(src):
            ios = original.target.os.ios
            conversion, nn_run = to_mlprogram(src, work, ios, allow_interface_changes, inputs)
            report.applied.append(conversion.attempt([p.op.name for p in original.placements]))
            current = conversion.path
            current_report = check(current, chip=chip, os=os, compute_units=compute_units, profile=profile)
            reference = run(current, inputs=nn_run.inputs)  # later passes are compared with the converted program
        pending, kept, step = coreai_target.passes(src, PASSES), 0, 0
        for _ in range(2):  # a pass dropped before a later one changed the model is tried once more on the result
            retry = []
            for cls in pending:
                rules = [r for r in cls.rules if wanted is None or r in wanted]
                noted = ((p.op.name, f.rule.id) for p in current_report.placements for f in (*p.findings, *p.notes))
                flagged = {name for name, rule in noted if rule in rules}
                if not flagged:
                    continue
                if cls.interface and not allow_interface_changes:
                    report.skipped.append((cls.name, "changes the model interface; pass allow_interface_changes"))
                    continue
                impl = coreai_target.implementation(cls, src)
                if impl is None:
                    report.skipped.append((cls.name, coreai_target.why_not(cls)))
                    continue
                attempt = Attempt(cls.name, tuple(rules), cls.exact, cls.tolerance, cls.summary())
                reference = reference or run(src, inputs=inputs, seed=0)
                path = work / f"{step:02d}-{cls.name}{current.suffix}"
                step += 1
                new_report = try_pass(
                    impl(original.target),
                    current,
                    current_report,
                    flagged,
                    path,
                    attempt,
                    reference,
                    lambda m: check(m, chip=chip, os=os, compute_units=compute_units, profile=profile),
                )
                report.dropped = [a for a in report.dropped if a.pass_name != cls.name]  # a retry's result replaces it
                (report.applied if attempt.kept else report.dropped).append(attempt)
                if attempt.kept:
                    current, current_report, kept = path, new_report, kept + 1
                else:
                    retry.append((cls, kept))
            pending = [cls for cls, kept_then in retry if kept > kept_then]
        report.finish(current_report, summary_of(current_report), unfixed_causes(current_report, PLACEMENT_RULES))
        report.no_gain = no_gain(original, current_report) if report.applied else None
        if report.improved and out is not None and not dry_run:
            publish_package(current, out, work)
            report.written = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def try_pass(
    p: Pass,
    current: Path,
    current_report: Any,
    flagged: set[str],
    path: Path,
    attempt: Attempt,
    reference: Any,
    check_target,
) -> Any:
    """Apply one pass to ``current``, save it at ``path`` and verify it; fills ``attempt`` and returns
    the check report of the result (None when the pass was dropped)."""
    after = None
    try:
        rewritten = p.transform(current, path, flagged)
        if not rewritten:
            attempt.reason = "no flagged op has a form this pass rewrites"
            return None
        attempt.rewritten = rewritten
        if path.suffix == ".mlpackage":
            load_program(path)  # the saved package must load again (an .aimodel: `load` below checks it)
        model = load(str(path))
        after = check_target(model)
        replaced = replacements(current_report, after, rewritten)
        attempt.ops_after = sum(pl.op.name in replaced for pl in after.placements)
        broken = p.ensures(current_report, after, rewritten)
        if broken is None:
            attempt.error, broken = verify_outputs(p, current, model, after, reference, check_target)
        if broken is None and path.suffix == ".aimodel":  # a second opinion: Core AI's own CPU runtime
            runtime_error, broken = coreai_target.verify_runtime(p, current, path, reference.inputs, reference.outputs)
            attempt.error = max(attempt.error or 0.0, runtime_error)
    except ModelError as e:
        broken = str(e)
    except Exception as e:  # noqa: BLE001  (a coremltools failure in one pass must not stop the others)
        broken = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
    attempt.kept = broken is None
    attempt.reason = broken
    return after if attempt.kept else None


def no_gain(before: Any, after: Any) -> str | None:
    """Why the rewritten model is predicted to be no better than the original (None when its ANE
    share rose or its estimated latency fell by at least 1%). Judged on the end result: two blockers in one segment
    (say a dilated conv next to a big pool) each gain nothing alone."""
    b, a = before.summary, after.summary
    if a["ane_fraction"] > b["ane_fraction"] + 1e-9 or a["ane_flops_fraction"] > b["ane_flops_fraction"] + 1e-9:
        return None
    if "latency_ms" in a and "latency_ms" in b and a["latency_ms"] < b["latency_ms"] * (1 - MIN_LATENCY_GAIN):
        return None
    return (
        f"the rewrites cure their rules, but the predicted ANE share stays {a['ane_fraction']:.1%} of ops: "
        f"the segmenter keeps these ops off the ANE on {after.target.chip.name} "
        f"with compute units {after.compute_units}"
    )


def verify_outputs(
    p: Pass, current: Path, model: Any, after: Any, reference: Any, check_target
) -> tuple[float, str | None]:
    """Run the rewritten model on the reference inputs. An exact pass must match the original's fp32
    outputs; an approximate one is run under ANE fp16 emulation (its predicted placement) and
    compared with the current model under the same emulation, and must not overflow fp16."""
    feeds = reference.inputs
    if p.exact:
        return compare_outputs(reference.outputs, run(model, inputs=feeds, precision="fp32").outputs, p.tolerance)
    base = load(str(current))
    base_out = run(base, inputs=feeds, precision="fp16", devices=check_target(base)).outputs
    error, broken = compare_outputs(
        base_out, run(model, inputs=feeds, precision="fp16", devices=after).outputs, p.tolerance
    )
    if broken is None:
        bad = [f for f in numerics(model, inputs=feeds, devices=after).findings if f.kind in ("overflow", "nan", "inf")]
        if bad:
            broken = f"fp16 {bad[0].kind} at {bad[0].op} ({bad[0].message})"
    return error, broken


def package_path(source: Any) -> Path:
    """The ``.mlpackage`` / ``.aimodel`` folder (or NeuralNetwork ``.mlmodel`` file) of a path or an MLModel."""
    path = getattr(source, "package_path", None) or source
    if not isinstance(path, (str, os.PathLike)):
        raise ModelError(
            f"fix takes an ML Program .mlpackage path or an MLModel saved as one, not {type(source).__name__}"
        )
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    if path.suffix not in (".mlpackage", ".aimodel") or not path.is_dir():
        if not is_neuralnetwork(path):
            raise ModelError(
                f"{path}: fix rewrites ML Program .mlpackage folders, NeuralNetwork .mlmodel files "
                "and Core AI .aimodel folders"
            )
    return path


def split(rules: Iterable[str] | str | None) -> list[str] | None:
    """Rule names as a list; a comma-separated string (the CLI's form) is split."""
    return rules.split(",") if isinstance(rules, str) else (list(rules) if rules is not None else None)
