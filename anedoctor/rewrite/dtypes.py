"""Rewrites of tensor types the Neural Engine does not compute in: fp32 islands, fp32 model I/O, boolean masks."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.dtypes import FP16_MAX, below_fp16
from .base import Pass, PassResult, main_ops, register
from .coreml_io import coremltools, load_program, save_program

FP16_TOLERANCE = 1e-2  # max relative output error an fp16 island may add under ANE fp16 emulation
FP16_LOWEST = -FP16_MAX  # the most negative finite fp16: a runtime mask's additive value (0 x -inf would be NaN)


@register
class Fp32IslandsToFp16(Pass):
    """Compute fp32 ops in fp16 (casts at the edges of each island), where fp16 holds the values.

    In an ML Program an fp32-typed op cannot run on the ANE (rule DT-1, Apple's typed-execution
    guide): models converted with ``compute_precision=FLOAT32``, or with an ``op_selector`` that kept
    ops in fp32, split into ANE and GPU/CPU segments at every island. This pass runs coremltools'
    own ``FP16ComputePrecision`` (the ``add_fp16_cast`` pass of the converter) on exactly the ops
    ``check`` flags; the converter's overflow guard keeps ops with constants beyond fp16's range in
    fp32. Not exact: the driver keeps the result only if the outputs under anedoctor's ANE fp16
    emulation stay within 1e-2 relative of the original's (also emulated) and no output
    overflows; ``anedoctor numerics`` shows where fp16 breaks a model that fails.

    Given:
        %y = conv(x=%x_fp32, weight=W_fp32)                  # fp32 compute
    Result:
        %x16 = cast(x=%x_fp32, dtype="fp16")
        %y16 = conv(x=%x16, weight=W_fp16)
        %y = cast(x=%y16, dtype="fp32")                       # merged with neighbouring casts on save

    Approximate (fp16 rounding), verified. Source: apple/coremltools docs-guides ``typed-execution.md``
    and ``coremltools.transform.FP16ComputePrecision``; john-rocky/coreai-model-zoo#36 (13 ANE regions
    -> 1 after moving fp32 islands to fp16).
    """

    name = "fp32_islands_to_fp16"
    rules = ("DT-1",)
    exact = False
    tolerance = FP16_TOLERANCE
    source = "apple/coremltools typed-execution.md, coremltools.transform.FP16ComputePrecision"

    def requires(self, prog: Any, flagged: set[str]) -> list[Any]:
        return [op for op in main_ops(prog) if op.name in flagged and op.op_type not in ("cast", "const")]

    def call(self, prog: Any, ops: list[Any]) -> PassResult:
        names = {op.name for op in ops}
        coremltools().transform.FP16ComputePrecision(op_selector=lambda op: op.name in names).apply(prog)
        still_fp32 = {
            op.name
            for op in main_ops(prog)
            if op.op_type != "cast"
            and any(
                getattr(v, "dtype", None) is not None and v.is_tensor_or_scalar_of(dtype="fp32") for v in op.outputs
            )
        }
        return PassResult(prog, sorted(names - still_fp32))


@register
class Fp16ModelIO(Pass):
    """Make fp32 model inputs and outputs fp16, so no fp32 cast runs at the model's boundary.

    A converted fp16 model keeps fp32 inputs and outputs and casts at the edges. On M1/M2-class
    ANEs those fp32 casts (and fp32 image scale/bias) are not ANE-supported (rule DT-12, Apple's E5
    analytics on M1), so every model starts and ends with a CPU segment. Declaring the inputs and
    outputs fp16 (``MLMultiArray`` Float16, iOS 16 / macOS 13 and later) removes the casts. This
    changes the model's interface -- callers pass and receive fp16 arrays -- so it runs only with
    ``allow_interface_changes``. Done on the program the way coremltools'
    ``change_input_output_tensor_type`` does it, but without that function's save, which runs the
    default pass pipeline (re-fusing earlier rewrites) and renames the outputs.

    Given:
        main(%x: fp32) { %x16 = cast(x=%x, dtype="fp16") ... %y = cast(x=%y16, dtype="fp32") } -> (%y)
    Result:
        main(%x: fp16) { ... } -> (%y16 named y)

    Approximate: inputs and outputs are rounded to fp16 (a relative error up to 2^-11 per value),
    verified within 1e-3. Source: coremltools ``models/utils.py`` ``change_input_output_tensor_type``;
    freedomtan/coreml_modelc_profling (E5 analytics, M1 macOS 14.5) for the fp32 casts off the ANE.
    """

    name = "fp16_model_io"
    rules = ("DT-12",)
    exact = False
    tolerance = 1e-3
    interface = True
    source = "coremltools.models.utils.change_input_output_tensor_type; freedomtan/coreml_modelc_profling"

    def transform(self, source: Any, target: Any, flagged: set[str]) -> list[str]:
        from coremltools.converters.mil.mil import types
        from coremltools.proto.FeatureTypes_pb2 import ArrayFeatureType

        prog, spec = load_program(source)
        func = prog.functions["main"]
        if func.opset_version is None or func.opset_version < coremltools().target.iOS16:
            return []  # fp16 model inputs/outputs need iOS 16 / macOS 13
        desc = {f.name: f for f in list(spec.description.input) + list(spec.description.output)}
        removed = []
        for name, var in func.inputs.items():
            casts = var.child_ops
            if (
                var.dtype == types.fp32
                and name in desc
                and casts
                and all(op.op_type == "cast" and op.dtype.val == "fp16" and op.name in flagged for op in casts)
            ):
                var._sym_type = types.tensor(types.fp16, var.shape)  # as coremltools' change_input_output_tensor_type
                removed += casts  # now fp16 -> fp16: cast_optimization drops them when the program is saved
                desc[name].type.multiArrayType.dataType = ArrayFeatureType.FLOAT16
        outputs, output_casts = list(func.outputs), []
        for i, var in enumerate(outputs):
            op = var.op
            if (
                op is not None
                and op.op_type == "cast"
                and op.name in flagged
                and op.x.dtype == types.fp16
                and var.name in desc
                and len(var.child_ops) == 0
            ):
                outputs[i] = op.x
                output_casts.append(op)
        if not removed and not output_casts:
            return []
        renames = [(outputs[i], v.name) for i, v in enumerate(func.outputs) if outputs[i] is not v]
        func.set_outputs(outputs)
        func.remove_ops(output_casts)
        for var, name in renames:
            var.name = var.op.name = name
            desc[name].type.multiArrayType.dataType = ArrayFeatureType.FLOAT16
        removed += output_casts
        save_program(prog, spec, target)
        return sorted(op.name for op in removed)


@register
class SelectToAdditiveMask(Pass):
    """Apply a -inf mask by addition instead of with ``select`` (masked_fill / torch.where).

    Through iOS 16 / macOS 13 the published plans of models that mask attention scores with
    ``masked_fill(mask, -inf)`` put a few ops per layer on the CPU, where the same models masking by
    addition run whole on the ANE (rule OP-19, inferred; those conversions kept the select in fp32, which
    ``fp32_islands_to_fp16`` turns to fp16 first). Apple's ml-ane-transformers masks by addition, and
    Apple's Neural Engine rules advise a finite negative over -inf. A constant mask (a causal mask)
    becomes one constant added to the scores; a runtime mask is cast to fp16 and scaled by the most
    negative fp16 value.

    Given:
        %y = select(cond=%mask, a=-inf, b=%scores)  # or a fill below fp16's lowest: coremltools 6 wrote -3.4e38
    Result:
        %y = add(x=%scores, y=M)                    # constant %mask: M = the fill where %mask, 0 elsewhere
        %m = cast(x=%mask, dtype="fp16")            # runtime %mask:
        %y = add(x=%scores, y=mul(x=%m, y=-65504))

    Exact for a constant mask (finite scores + -inf = -inf). With a runtime mask the masked scores
    become -65504 + score instead of -inf, which a following softmax turns into the same zeros. Verified
    as an approximate pass: under ANE fp16 emulation, within 1e-2 of the original, whose masked ops ran
    on the CPU in fp32 where the rewritten ones run on the ANE in fp16. Source: apple/ml-ane-transformers
    (``ane_transformers/reference/multihead_attention.py``: additive ``qk_mask`` / ``k_mask``).
    """

    name = "select_to_additive_mask"
    rules = ("OP-19",)
    exact = False
    tolerance = FP16_TOLERANCE
    source = "apple/ml-ane-transformers ane_transformers/reference/multihead_attention.py (additive masks)"
    op_types = ("select",)

    def matches(self, op: Any) -> bool:
        from coremltools.converters.mil.mil import types

        return (
            below_fp16(op.a.val)
            and op.b.val is None
            and op.b.dtype in (types.fp16, types.fp32)
            and op.outputs[0].shape == op.b.shape
        )

    def rewrite(self, op: Any, name: str) -> Any:
        from coremltools.converters.mil import Builder as mb
        from coremltools.converters.mil.mil import types

        dtype = np.float16 if op.b.dtype == types.fp16 else np.float32
        if op.cond.val is not None:
            with np.errstate(over="ignore"):  # a -3.4e38 fill is -inf in fp16, as the original's cast made it
                mask = np.where(np.asarray(op.cond.val, dtype=bool), op.a.val, 0).astype(dtype)
            return mb.add(x=op.b, y=mask, name=name)
        flag = mb.cast(x=op.cond, dtype="fp16" if dtype is np.float16 else "fp32", name=f"{name}_mask")
        return mb.add(x=op.b, y=mb.mul(x=flag, y=dtype(FP16_LOWEST), name=f"{name}_scaled"), name=name)
