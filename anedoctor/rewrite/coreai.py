"""The rewrite passes for Core AI ``.aimodel`` programs: the same passes (name, rules, documentation,
exactness) as for ML Programs, applied to the ``coreai`` dialect through coreai-core's MLIR bindings.

A program is read into an MLIR module, the flagged ops are replaced in place with ops built by
coreai-core's own builders (``coreai._compiler.dialects.coreai``), and the module is written back with
``AIProgram.save_asset``: it verifies the IR, writes ``main.mlirb`` as versioned bytecode, its sha256 in
``main.hash`` (apple coreai-core ``coreai/authoring/asset.py``) and ``metadata.json`` (the source's, with a
new producer and date). The driver then checks and runs the result with anedoctor's executor, and
:func:`verify_runtime` runs the original and the rewrite with coreai-core's CPU runtime on the same inputs.
Each class keeps the docstring of the pass it implements (the ML Program ``Given:`` / ``Result:``);
``coreai_form`` says what the Core AI program gets instead. This module holds the editing and verification and
three passes; :mod:`.coreai_passes` the others, and a pass of Core AI's own (no ML Program form: PA-12's -inf pad),
which `fix` tries on ``.aimodel`` folders after the registered passes. :func:`why_not` gives the reason
reported for a pass with no Core AI implementation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelError
from ..ir.dtypes import FP16_MAX
from ..loaders import coreai as loader
from ..loaders.coreai_tools import run_coreai
from .base import PASSES as BASE_PASSES
from .base import PassResult, compare_outputs
from .dtypes import Fp32IslandsToFp16
from .spatial import POOL_MAX_WINDOW, DilatedConvToSpaceToBatch, MaxPoolCascade, split_window


class Program:
    """An ``.aimodel`` opened for editing: its MLIR module and, by anedoctor op name, the MLIR op each
    IR op was read from (only ops of the public graphs: composite bodies are shared by every call)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.b = loader.bindings()
        loader.load_aimodel(self.path)  # the same checks and one-line errors as `check`
        self.context = self.b.context()._mlir_context
        self.module = self.b.load(context=self.context, path=self.path / "main.mlirb")
        self.reader = loader.ProgramReader(self.b, self.path / "main.mlirb", self.module, {})
        self.graphs = self.reader.public_graphs()
        for graph in self.graphs:
            self.reader.graph(graph)
        self.ops = {name: o for name, o in self.reader.origin.items() if o.parent in self.graphs}
        self.erased: set[str] = set()

    def flagged(self, names: set[str], mlir_names: tuple[str, ...]) -> list[tuple[str, Any]]:
        return [(n, o) for n, o in self.ops.items() if n in names and o.name in mlir_names]

    def erase(self, o: Any) -> str | None:
        """Erase an MLIR op; returns its anedoctor name when it was read from the program (None for an op added)."""
        name = next((n for n, x in self.ops.items() if n not in self.erased and x == o), None)
        if name is not None:
            self.erased.add(name)
        o.erase()
        return name

    def save(self, target: Path) -> None:
        """Write the module as a new ``.aimodel`` at ``target`` with coreai-core's own writer."""
        from coreai.authoring.asset import AIModelAsset, AIProgram

        metadata = AIModelAsset.load(self.path).metadata
        try:
            AIProgram._from_mlir_module(self.module).save_asset(Path(target), metadata=metadata)
        except RuntimeError as e:  # the IR verifier's diagnostic is the cause, after a long location
            text = str(e.__cause__ or e)
            found = re.search(r"'(coreai\.[\w.]+)' op ([^\n]*)", text)
            cause = f"{found.group(1)}: {found.group(2)}" if found else loader._first_line(e)
            raise ModelError(f"{target}: coreai-core refuses the rewritten program ({cause[:200]})") from None

    def constant(self, value: Any) -> np.ndarray | None:
        """The value of an MLIR value produced by ``coreai.constant`` (None for runtime values)."""
        owner = value.owner
        if not hasattr(owner, "name") or owner.name != "coreai.constant":
            return None
        return np.asarray(self.reader.constant(owner).data())


def ints(values: Any) -> np.ndarray:
    """Sizes, axes and paddings as Core AI's index operands want them: ui32."""
    return np.asarray(values, np.uint32).reshape(-1)


def shape_of(value: Any) -> list[int]:
    return list(loader.bindings().ir.RankedTensorType(value.type).shape)


def static(value: Any) -> bool:
    ir = loader.bindings().ir
    return ir.RankedTensorType.isinstance(value.type) and ir.RankedTensorType(value.type).has_static_shape


class CoreAITarget:
    # Mixed in before the ML Program pass it implements, without a docstring of its own, so that the
    # pass's documentation (inspect.getdoc follows the MRO) stays the one documentation of the pass.
    mlir_ops: ClassVar[tuple[str, ...]]
    coreai_form: ClassVar[str]

    def transform(self, source: Any, target: Any, flagged: set[str]) -> list[str]:
        """Rewrite the ``.aimodel`` at ``source`` into ``target`` (written only when something was rewritten)."""
        program = Program(source)
        ops = [(n, o) for n, o in program.flagged(flagged, self.mlir_ops) if self.matches_mlir(program, o)]
        result = self.call_mlir(program, ops) if ops else PassResult(program)
        if result.modified:
            program.save(target)
        return result.rewritten

    def call_mlir(self, program: Program, ops: list[tuple[str, Any]]) -> PassResult:
        ir = program.b.ir
        with program.context:
            for _, o in ops:
                with o.location, ir.InsertionPoint(o):
                    new = self.rewrite_mlir(program, o)
                o.results[0].replace_all_uses_with(new)
                o.erase()
        return PassResult(program, [n for n, _ in ops])

    def matches_mlir(self, program: Program, o: Any) -> bool:
        raise NotImplementedError

    def rewrite_mlir(self, program: Program, o: Any) -> Any:
        raise NotImplementedError


def space_to_batch(cai: Any, x: Any, block: list[int]) -> Any:
    """(N, C, H, W) -> (bh*bw*N, C, H/bh, W/bw), batch ordered (bh, bw, N) as space_to_batch_nd, in rank-4 steps."""
    n, c, h, w = shape_of(x)
    (bh, bw), (oh, ow) = block, (h // block[0], w // block[1])
    t = cai.reshape(x, ints([n * c * oh, bh, ow, bw]))
    t = cai.transpose(t, ints([1, 3, 0, 2]))
    return cai.reshape(t, ints([bh * bw * n, c, oh, ow]))


def batch_to_space(cai: Any, y: Any, block: list[int]) -> Any:
    """The inverse of :func:`space_to_batch`: (bh*bw*N, C, h, w) -> (N, C, h*bh, w*bw)."""
    nb, c, h, w = shape_of(y)
    bh, bw = block
    n = nb // (bh * bw)
    t = cai.reshape(y, ints([bh, bw, n * c * h, w]))
    t = cai.transpose(t, ints([2, 0, 3, 1]))
    return cai.reshape(t, ints([n, c, h * bh, w * bw]))


class DilatedConvToSpaceToBatchCoreAI(CoreAITarget, DilatedConvToSpaceToBatch):
    mlir_ops = ("coreai.conv2d",)
    coreai_form = (
        "Core AI has no space_to_batch op and pads with an explicit coreai.pad before each conv: the padded input "
        "is zero-extended to a multiple of the dilation, split into the d x d sub-images with reshape/transpose "
        "(rank 4 throughout), convolved undilated, interleaved back and sliced to the original size"
    )

    def matches_mlir(self, program: Program, o: Any) -> bool:
        x, weight, stride, dilation, _ = o.operands
        dil, strides = program.constant(dilation), program.constant(stride)
        return (
            dil is not None
            and strides is not None
            and int(dil.max()) > 1
            and bool(np.all(strides == 1))
            and static(x)
            and static(weight)
            and static(o.results[0])
        )

    def rewrite_mlir(self, program: Program, o: Any) -> Any:
        from coreai._compiler.dialects import coreai as cai

        x, weight, stride, dilation, groups = o.operands
        block = [int(d) for d in program.constant(dilation)]
        _, _, h, w = shape_of(x)
        extra = [(-size) % d for size, d in zip((h, w), block)]
        if any(extra):
            x = cai.pad(x, ints([0, 0, 0, 0, 0, extra[0], 0, extra[1]]), zero_like(x))
        y = cai.conv2d(space_to_batch(cai, x, block), weight, stride, ints([1, 1]), groups)
        y = batch_to_space(cai, y, block)
        out = shape_of(o.results[0])
        if shape_of(y) != out:
            y = cai.slice_(y, *(np.asarray(v, np.int32) for v in ([0] * 4, out, [1] * 4)))  # slice takes si32
        return y


def str_element(value: Any) -> str:
    return str(loader.bindings().ir.RankedTensorType(value.type).element_type)


def zero_like(value: Any) -> Any:
    """A scalar 0 constant of ``value``'s element type (a pad value)."""
    from coreai._compiler.dialects import coreai as cai

    return cai.constant(np.zeros((), loader.BUFFER_DTYPES[loader.ELEMENT_TYPES[str_element(value)]]))


class MaxPoolCascadeCoreAI(CoreAITarget, MaxPoolCascade):
    mlir_ops = ("coreai.max_pool_2d",)
    coreai_form = (
        "Core AI pools read an explicitly padded input (coreai.pad with -inf), so the cascade is a chain of "
        "unpadded coreai.max_pool_2d ops, the stride on the last"
    )

    def matches_mlir(self, program: Program, o: Any) -> bool:
        x, kernel, _, dilation, ceil_mode = o.operands
        k, dil, ceil = (program.constant(v) for v in (kernel, dilation, ceil_mode))
        return (
            k is not None
            and int(k.max()) > POOL_MAX_WINDOW
            and dil is not None
            and bool(np.all(dil == 1))
            and ceil is not None
            and not bool(ceil)
            and static(x)
        )

    def rewrite_mlir(self, program: Program, o: Any) -> Any:
        from coreai._compiler.dialects import coreai as cai

        ir = program.b.ir
        x, kernel, stride, dilation, ceil_mode = o.operands
        per_dim = [split_window(int(k), POOL_MAX_WINDOW) for k in program.constant(kernel)]
        stages = max(len(w) for w in per_dim)
        per_dim = [w + [1] * (stages - len(w)) for w in per_dim]
        element = ir.RankedTensorType(x.type).element_type
        for i in range(stages):
            last = i == stages - 1
            windows = [w[i] for w in per_dim]
            n, c, h, w = shape_of(x)
            out = (
                o.results[0].type
                if last
                else ir.RankedTensorType.get([n, c, h - windows[0] + 1, w - windows[1] + 1], element)
            )
            kernel, step = cai.constant(ints(windows)), stride if last else cai.constant(ints([1, 1]))
            x = cai.MaxPool2dOp(out, x, kernel, step, dilation, ceil_mode).result
        return x


class Fp32IslandsToFp16CoreAI(CoreAITarget, Fp32IslandsToFp16):
    mlir_ops = ()  # any op computing in fp32
    coreai_form = (
        "the flagged ops' fp32 results are retyped to f16 in place, fp32 constants they read become f16 "
        "constants, and a coreai.cast is added only where an fp32 value enters or leaves the converted ops "
        "(a cast pair fp16 -> fp32 -> fp16 around an island disappears); composite calls (coreai.invoke), silu "
        "(rule CAI-1), "
        "ops reading constants beyond fp16's range and ops whose verifier refuses f16 stay fp32 (an op keeps "
        "fp32 parameter constants its verifier insists on, e.g. interpolate's scale)"
    )
    skipped: ClassVar[frozenset[str]] = frozenset(  # silu: Core AI computes an fp16 silu in fp32 anyway (CAI-1)
        {"coreai.cast", "coreai.constant", "coreai.invoke", "coreai.output", "coreai.silu"}
    )

    def transform(self, source: Any, target: Any, flagged: set[str]) -> list[str]:
        program = Program(source)
        ops = [
            (n, o)
            for n, o in program.ops.items()
            if n in flagged and o.name not in self.skipped and self.matches_mlir(program, o)
        ]
        if not ops:
            return []
        with program.context, program.b.ir.Location.unknown():
            converted = Fp16Conversion(program, [o for _, o in ops]).run()
        if not converted:
            return []
        program.save(target)
        return [n for n, o in ops if any(o == c for c in converted)]

    def matches_mlir(self, program: Program, o: Any) -> bool:
        if len(o.regions) or not any(str_element(r) == "f32" for r in o.results if static_type(r)):
            return False
        for v in o.operands:
            data = program.constant(v) if static_type(v) and str_element(v) == "f32" else None
            if data is not None and np.any(np.abs(data[np.isfinite(data)]) > FP16_MAX):
                return False
        return True


def static_type(value: Any) -> bool:
    return loader.bindings().ir.RankedTensorType.isinstance(value.type)


class Fp16Conversion:
    """Retype a set of fp32 ops to fp16 in an MLIR block, with casts only at the set's edges. The ops are
    marked with a temporary attribute: the bindings' Operation objects do not hash stably while the IR changes."""

    MARK = "anedoctor.fp16"

    def __init__(self, program: Program, ops: list[Any]):
        from coreai._compiler.dialects import coreai as cai

        self.program, self.cai, self.ir = program, cai, program.b.ir
        self.ops = ops
        self.half: list[tuple[Any, Any]] = []  # (fp32 value, its fp16 version)
        self.created: list[Any] = []  # the casts and constants added

    def inside(self, op: Any) -> bool:
        return op is not None and self.MARK in op.attributes

    def tensor(self, value: Any, element: Any) -> Any:
        return self.ir.RankedTensorType.get(shape_of(value), element)

    def as_half(self, value: Any, before: Any) -> Any:
        """The fp16 version of an fp32 operand: an f16 constant, the input of a cast from f16, or a new cast."""
        known = next((new for old, new in self.half if old == value), None)
        if known is not None:
            return known
        data = self.program.constant(value)
        owner = producer(value)
        with self.ir.InsertionPoint(before):
            if owner is not None and owner.name == "coreai.cast" and str_element(owner.operands[0]) == "f16":
                new = owner.operands[0]
            else:
                new = (
                    self.cai.constant(data.astype(np.float16))
                    if data is not None
                    else self.cai.cast(value, self.tensor(value, self.ir.F16Type.get()))
                )
                self.created.append(new)
        self.half.append((value, new))
        return new

    def verifies(self, o: Any) -> bool:
        with loader._stderr_captured():
            try:
                o.verify()
            except self.ir.MLIRError:
                return False
        return True

    def convert(self, o: Any) -> list[Any]:
        """Retype one op to f16; returns its retyped results, or None (and the op unchanged) when the op's
        verifier refuses it even with its fp32 constants kept."""
        original = list(o.operands)
        for i, v in enumerate(original):
            if static_type(v) and str_element(v) == "f32" and not self.inside(producer(v)):
                o.operands[i] = self.as_half(v, o)
        results = [r for r in o.results if static_type(r) and str_element(r) == "f32"]
        for r in results:
            r.set_type(self.tensor(r, self.ir.F16Type.get()))
        if self.verifies(o):
            return results
        for i, v in enumerate(original):  # parameters such as interpolate's scale must stay f32
            if getattr(producer(v), "name", "") == "coreai.constant":
                o.operands[i] = v
        if self.verifies(o):
            return results
        for i, v in enumerate(original):
            o.operands[i] = v
        for r in results:
            r.set_type(self.tensor(r, self.ir.F32Type.get()))
        del o.attributes[self.MARK]  # now outside: its readers of converted values get casts back to f32
        return None

    def run(self) -> list[Any]:
        """Convert the ops; returns those converted."""
        for o in self.ops:
            o.attributes[self.MARK] = self.ir.UnitAttr.get()
        converted = [(o, results) for o in self.ops if (results := self.convert(o)) is not None]
        for o, results in converted:
            for r in results:
                self.restore_fp32(o, r)
        for o, _ in converted:
            del o.attributes[self.MARK]
        dead = [v for v, _ in self.half] + self.created  # fp32 constants and casts nothing reads any more
        for value in dead:
            owner = producer(value)
            if owner is not None and owner.name in ("coreai.cast", "coreai.constant") and not list(value.uses):
                owner.erase()
        return [o for o, _ in converted]

    def restore_fp32(self, o: Any, r: Any) -> None:
        """Users outside the converted ops read fp32: a cast to f16 becomes the value itself, a cast to another
        type reads the f16 value, anything else gets one cast back to f32."""
        back = None
        for use in list(r.uses):
            user = use.owner.operation
            if self.inside(user):
                continue
            if user.name == "coreai.cast":
                if str_element(user.results[0]) == "f16":
                    user.results[0].replace_all_uses_with(r)
                    user.erase()
                continue
            if back is None:
                with self.ir.InsertionPoint.after(o):
                    back = self.cai.cast(r, self.tensor(r, self.ir.F32Type.get()))
            user.operands[use.operand_number] = back


def producer(value: Any) -> Any:
    """The MLIR operation defining a value (None for a block argument)."""
    owner = value.owner
    return owner.operation if hasattr(owner, "operation") else None


PASSES: dict[str, type] = {}  # pass name -> its Core AI implementation


def register(cls: type) -> type:
    """Add a Core AI implementation; a pass of its own (no ML Program form) also joins the passes `fix` tries."""
    if cls.name in PASSES:
        raise KeyError(f"Core AI pass {cls.name!r} is already registered")
    if cls.name not in BASE_PASSES and not (
        cls.rules and cls.source and "Given:" in cls.doc() and "Result:" in cls.doc()
    ):
        raise TypeError(f"Core AI pass {cls.name!r} needs rules, a source and a Given: / Result: documentation")
    PASSES[cls.name] = cls
    return cls


for _cls in (DilatedConvToSpaceToBatchCoreAI, MaxPoolCascadeCoreAI, Fp32IslandsToFp16CoreAI):
    register(_cls)


FP16_DRIFT_FACTOR = 2.0  # how much further from the fp32 truth than the original a rewrite may land in fp16


def verify_runtime(
    p: Any, source: Path, rewritten: Path, inputs: dict[str, Any], exact: dict[str, Any] | None = None
) -> tuple[float, str | None]:
    """Run the original and the rewritten program with coreai-core's CPU runtime on the same inputs; the
    outputs must agree within the pass's tolerance (relative to the largest output value).

    An fp16 program accumulates in fp16 there, so a rewrite that only reorders a sum (a contraction in blocks,
    a linear as a conv) moves the outputs by the runtime's own fp16 error: 2.4% on a 40000-long contraction,
    where the split program was closer to the fp32 result than the original. Given the ``exact`` outputs (the
    reference executor in fp32), such a rewrite passes when its runtime result is no further from them than
    twice the original's (plus the pass's tolerance): a wrong rewrite lands far off either way."""
    before, after = run_coreai(source, inputs), run_coreai(rewritten, inputs)
    error, broken = compare_outputs(before, after, p.tolerance)
    if broken and exact is not None and broken.startswith("outputs differ"):  # not a missing or reshaped output
        drift_before = compare_outputs(exact, before, float("inf"))[0]
        drift_after = compare_outputs(exact, after, float("inf"))[0]
        if drift_after <= FP16_DRIFT_FACTOR * drift_before + p.tolerance:
            return error, None
        broken = f"{broken}; {drift_after:.3g} from the fp32 result, the original {drift_before:.3g}"
    return error, broken and f"coreai-core's runtime: {broken}"


def passes(source: Path, registered: dict[str, type] = BASE_PASSES) -> list[type]:
    """The passes `fix` tries on ``source``, in priority order: the ``registered`` ML Program passes, and for an
    ``.aimodel`` also the passes that exist only in Core AI's dialect."""
    extra = [cls for name, cls in PASSES.items() if name not in BASE_PASSES] if source.suffix == ".aimodel" else []
    return list(registered.values()) + extra


NOT_IN_COREAI = {  # why a pass has no Core AI implementation, where that is more than "not written yet"
    "layer_norm_to_rank4": "rule DY-4 is about iOS 16 models with EnumeratedShapes; a Core AI program (OS 27) has none",
    "select_to_additive_mask": "rule OP-19 is about iOS 16 / macOS 13; a Core AI program runs on OS 27",
}


def why_not(cls: type) -> str:
    """Why pass ``cls`` is not tried on an ``.aimodel``: the line `fix` reports."""
    return NOT_IN_COREAI.get(cls.name, "no Core AI (.aimodel) implementation of this pass yet")


def implementation(cls: type, source: Path) -> type | None:
    """The class that applies pass ``cls`` to ``source``: ``cls`` itself for an ML Program, its Core AI
    implementation for an ``.aimodel`` (None when it has none: its ``coreai_form`` below says why)."""
    return PASSES.get(cls.name) if source.suffix == ".aimodel" else cls
