"""The one place that touches coremltools internals: ML Program package <-> pymil Program.

coremltools has no public API to load a saved ``.mlpackage`` into a pymil ``Program`` and save it
back with a chosen pass pipeline. ``coremltools.optimize.coreml`` does exactly this through the
private ``coremltools.models.utils._apply_graph_pass``: the milproto frontend loader
(``converters/mil/frontend/milproto/load.py``) and ``converters.mil.converter.mil_convert`` with the
model's own ``ModelDescription``. That helper always runs ``PassPipeline.DEFAULT`` (95 passes), whose
``common::fuse_dilated_conv`` re-fuses ``space_to_batch -> conv -> batch_to_space`` and whose
``compose_conv1d``/``fuse_squeeze_expand_dims`` fold rank changes back (apple/coremltools
``mil/passes/defs/optimize_conv.py``), undoing the rewrites. So we call the same two functions with
``PassPipeline.CLEANUP`` (public: dead code, constant folding, cast merging, name dedup), which
contains none of the fusions. ``tests/test_fix.py`` pins both facts. Saving also skips coremltools'
rank <= 5 guard (``Program._check_invalid_tensor_rank``) so that models which already hold rank-6
tensors can be written while passes remove them.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any
from unittest import mock

from ..errors import ModelError
from ..util import quiet_coremltools


@contextlib.contextmanager
def quiet() -> Any:
    """Silence coremltools' progress bars and version warnings for the duration."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        yield


def coremltools():
    with quiet():
        return quiet_coremltools()


def load_program(path: str | Path) -> tuple[Any, Any]:
    """Load an ML Program ``.mlpackage`` as (pymil Program, model spec). Never writes to ``path``."""
    ct = coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    with quiet():
        try:
            model = ct.models.MLModel(str(path), skip_model_load=True)
        except Exception as e:  # coremltools raises bare Exceptions for unreadable packages
            raise ModelError(f"{path}: not a readable Core ML package ({str(e).splitlines()[0][:160]})") from e
        spec = model.get_spec()
        if spec.WhichOneof("Type") != "mlProgram":
            raise ModelError(
                f"{path}: fix rewrites ML Programs; this model is a {spec.WhichOneof('Type')} "
                "(convert it with ct.convert(..., convert_to='mlprogram') first)"
            )
        prog = milproto_load(
            model_spec=spec, specification_version=spec.specificationVersion, file_weights_dir=model.weights_dir
        )
    name_unnamed_ops(prog, spec)
    return prog, spec


def name_unnamed_ops(prog: Any, spec: Any) -> None:
    """Name each op saved without a name attribute (coremltools 6 wrote many) after its first output, as
    anedoctor's IR names it; pymil's loader gives it a counter, and the ops ``check`` flagged would not be found."""
    unnamed = {
        op.outputs[0].name
        for function in spec.mlProgram.functions.values()
        for block in function.block_specializations.values()
        for op in block.operations
        if "name" not in op.attributes and op.outputs
    }
    for function in prog.functions.values():
        for op in function.operations:
            if op.outputs and op.outputs[0].name in unnamed:
                op.name = op.outputs[0].name


def save_pipeline():
    """The pipeline used when saving: coremltools' public CLEANUP, which re-fuses nothing."""
    return coremltools().PassPipeline.CLEANUP


def save_program(prog: Any, spec: Any, path: str | Path, pipeline: Any = None) -> Path:
    """Write ``prog`` as an ``.mlpackage`` at ``path`` (which must not exist) with ``spec``'s
    description (inputs, outputs, metadata) and specification version."""
    ct = coremltools()
    from coremltools.converters.mil.converter import mil_convert
    from coremltools.converters.mil.mil.program import Program

    # coremltools 9 refuses to write any rank-6+ tensor; a model that already had them (older
    # converters, other exporters) must still be writable while a pass removes some of them.
    # No pass creates one, so skipping that one check cannot let a rewrite add any.
    with quiet(), mock.patch.object(Program, "_check_invalid_tensor_rank", lambda self: None):
        mil_convert(
            prog,
            convert_from="milinternal",
            convert_to="mlprogram",
            compute_units=ct.ComputeUnit.ALL,
            specification_version=spec.specificationVersion,
            model_description=spec.description,
            skip_model_load=True,
            package_dir=str(path),
            main_pipeline=pipeline or save_pipeline(),
        )
    return Path(path)


def run_coremltools_pass(prog: Any, name: str) -> None:
    """Apply one of coremltools' registered graph passes (e.g. "common::merge_consecutive_reshapes") to ``prog``."""
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    PASS_REGISTRY[name](prog)


def op_types(path: str | Path) -> list[str]:
    """Op types of the main function of a saved ML Program (constants left out), for tests and reports."""
    prog, _ = load_program(path)
    return [op.op_type for op in prog.functions["main"].operations if op.op_type != "const"]
