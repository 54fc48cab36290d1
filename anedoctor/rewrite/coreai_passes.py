"""More Core AI implementations of the rewrite passes (see :mod:`.coreai`): long linears split into chunks,
rank-6 tensors run at rank 4, pools decomposed for A12/A13, and a pass of Core AI's own for the -inf pad that
coreai-torch puts before a padded max pool."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any, ClassVar

import numpy as np

from ..loaders import coreai as loader
from .base import Pass, PassResult
from .coreai import CoreAITarget, Program, ints, producer, register, shape_of, static, zero_like
from .layout import LinearToConv
from .shapes import (
    ELEMENTWISE,
    MAX_CONTRACTION,
    CollapseHighRank,
    HighRankTransposeToRank4,
    SplitLongContraction,
    SplitLongLinear,
    fits,
)
from .spatial import PoolDecompose, even_split

RANK_LIMIT = 5  # the ANE's largest tensor rank (rule SH-4)


def users(value: Any) -> list[tuple[Any, int]]:
    """(operation, operand position) of every reader of an MLIR value."""
    return [(use.owner.operation, use.operand_number) for use in value.uses]


def erase_unused(program: Program, ops: list[Any]) -> list[str]:
    """Erase those of ``ops`` (and the constants and reshapes they leave unread) whose results nothing reads;
    returns the names of the erased ops that came from the program as read. An erased op's Python object
    dangles (touching it crashes the bindings), so each one leaves the candidates before it is erased."""
    candidates: list[Any] = []
    for o in ops:
        if o is not None and not any(o == c for c in candidates):
            candidates.append(o)
    erased = []
    while True:
        unread = next((i for i, o in enumerate(candidates) if not any(list(r.uses) for r in o.results)), None)
        if unread is None:
            return erased
        o = candidates.pop(unread)
        feeding = [producer(v) for v in o.operands]
        erased.append(program.erase(o))
        for f in feeding:
            if (
                f is not None
                and f.name in ("coreai.constant", "coreai.reshape")
                and not any(f == c for c in candidates)
            ):
                candidates.append(f)


class ConstantWeightMatmul(CoreAITarget):
    # Shared by the passes on coreai-torch's linear, transpose(W) -> broadcasting_batch_matmul -> add(bias): the
    # matmul is rewritten (through its bias add where the pass takes the bias in) and what it leaves unread is
    # erased. No docstring, so that each pass keeps the documentation of the ML Program pass it implements.
    mlir_ops = ("coreai.decomposable.broadcasting_batch_matmul", "coreai.batch_matmul")

    def weight(self, program: Program, value: Any) -> np.ndarray | None:
        """The (K, O) right operand: a constant, or the transpose of a constant (O, K)."""
        data = program.constant(value)
        owner = producer(value)
        if data is None and owner is not None and owner.name == "coreai.transpose":
            perm, source = program.constant(owner.operands[1]), program.constant(owner.operands[0])
            if perm is not None and source is not None and source.ndim == 2 and list(perm) == [1, 0]:
                data = source.T
        return data if data is not None and data.ndim == 2 else None

    def operands(self, program: Program, o: Any) -> tuple[Any, np.ndarray] | None:
        """The static runtime input and the constant (K, O) weight of a matmul with a static result."""
        x, w = o.operands[:2]
        weight = self.weight(program, w)
        return (x, weight) if weight is not None and static(x) and static(o.results[0]) else None

    def tail(self, program: Program, o: Any) -> Any:
        """The op whose result the rewrite replaces: the matmul itself unless the pass takes its bias add in."""
        return o

    def call_mlir(self, program: Program, ops: list[tuple[str, Any]]) -> PassResult:
        ir, replaced = program.b.ir, []
        with program.context:
            for _, o in ops:
                tail, weight = self.tail(program, o), producer(o.operands[1])
                with o.location, ir.InsertionPoint(tail):
                    new = self.rewrite_mlir(program, o)
                tail.results[0].replace_all_uses_with(new)
                replaced += erase_unused(program, [tail, o, weight])
        return PassResult(program, [n for n in replaced if n])


@register
class SplitLongLinearCoreAI(ConstantWeightMatmul, SplitLongLinear):
    coreai_form = (
        "coreai-torch writes a linear as transpose(W) -> broadcasting_batch_matmul -> broadcasting_add(bias); the "
        "matmul reading a constant (or a transposed constant) weight is split into matmuls with column blocks of "
        "the transposed weight, each with its block of the bias, joined by a coreai.concat on the last axis"
    )

    def bias(self, program: Program, o: Any) -> tuple[Any, np.ndarray] | None:
        """The add of a constant (O,) bias that alone reads the matmul, and the bias."""
        readers = users(o.results[0])
        if len(readers) != 1 or readers[0][0].name != "coreai.decomposable.broadcasting_add":
            return None
        add = readers[0][0]
        data = program.constant(add.operands[1 - readers[0][1]])
        outputs = shape_of(o.results[0])[-1]
        if data is None or data.size != outputs or data.shape[-1] != outputs:
            return None
        return add, data.reshape(-1)

    def tail(self, program: Program, o: Any) -> Any:
        biased = self.bias(program, o)
        return biased[0] if biased else o

    def matches_mlir(self, program: Program, o: Any) -> bool:
        if self.operands(program, o) is None:
            return False
        shape, out, limits = shape_of(o.operands[0]), shape_of(o.results[0]), self.limits()
        return 1 <= len(shape) <= 5 and fits(shape, limits) and not fits(out, limits) and fits(out[:-1] + [1], limits)

    def rewrite_mlir(self, program: Program, o: Any) -> Any:
        from coreai._compiler.dialects import coreai as cai

        (x, weight), biased = self.operands(program, o), self.bias(program, o)
        n = math.ceil(weight.shape[1] / self.limits()["W"])
        chunks = []
        for lo, hi in itertools.pairwise(np.cumsum([0] + even_split(weight.shape[1], n))):
            y = cai.broadcasting_batch_matmul(x, cai.constant(np.ascontiguousarray(weight[:, lo:hi])))
            chunks.append(cai.broadcasting_add(y, cai.constant(biased[1][lo:hi])) if biased else y)
        return cai.concat(len(shape_of(x)) - 1, chunks)


@register
class SplitLongContractionCoreAI(ConstantWeightMatmul, SplitLongContraction):
    coreai_form = (
        "the broadcasting_batch_matmul of coreai-torch's linear (its weight a constant or a transposed constant) "
        "reads row blocks of the transposed weight and coreai.slice blocks of its input, and the partial products "
        "are added with broadcasting_add; the bias add stays after them"
    )

    def matches_mlir(self, program: Program, o: Any) -> bool:
        return self.operands(program, o) is not None and shape_of(o.operands[0])[-1] > MAX_CONTRACTION

    def rewrite_mlir(self, program: Program, o: Any) -> Any:
        from coreai._compiler.dialects import coreai as cai

        x, weight = self.operands(program, o)
        shape = shape_of(x)
        total = None
        n = math.ceil(weight.shape[0] / MAX_CONTRACTION)
        for lo, hi in itertools.pairwise(np.cumsum([0] + even_split(weight.shape[0], n))):
            begin, end = [0] * (len(shape) - 1) + [int(lo)], shape[:-1] + [int(hi)]
            part = cai.slice_(x, *(np.asarray(v, np.int32) for v in (begin, end, [1] * len(shape))))
            part = cai.broadcasting_batch_matmul(part, cai.constant(np.ascontiguousarray(weight[lo:hi])))
            total = part if total is None else cai.broadcasting_add(total, part)
        return total


@register
class LinearToConvCoreAI(ConstantWeightMatmul, LinearToConv):
    coreai_form = (
        "the broadcasting_batch_matmul of coreai-torch's linear (its weight a constant or a transposed constant) "
        "becomes reshape -> transpose to (B, K, 1, S) -> coreai.conv2d with the (O, K, 1, 1) weight -> transpose "
        "-> reshape; the bias add stays after it"
    )

    def matches_mlir(self, program: Program, o: Any) -> bool:
        found = self.operands(program, o)
        if found is None or len(shape_of(found[0])) < 2:
            return False
        batch, rows, inner = self.folded(tuple(shape_of(found[0])))
        limits = self.limits()
        return fits((batch, inner, 1, rows), limits) and fits((batch, found[1].shape[1], 1, rows), limits)

    def rewrite_mlir(self, program: Program, o: Any) -> Any:
        from coreai._compiler.dialects import coreai as cai

        x, weight = self.operands(program, o)
        batch, rows, inner = self.folded(tuple(shape_of(x)))
        t = cai.transpose(cai.reshape(x, ints([batch, rows, 1, inner])), ints([0, 3, 2, 1]))
        kernel = cai.constant(np.ascontiguousarray(weight.T[:, :, None, None]))
        y = cai.conv2d(t, kernel, ints([1, 1]), ints([1, 1]), np.asarray(1, np.uint32))
        return cai.reshape(cai.transpose(y, ints([0, 3, 2, 1])), ints(shape_of(o.results[0])))


class RankFour:
    """Rewrites that run rank-6+ values at rank 4. Readers of a rewritten value read the rank-4 value where they
    are reshapes (a reshape of a reshape is one reshape) and a reshape back to the old shape otherwise; rank-6
    reshapes left unread are erased."""

    def __init__(self, program: Program):
        from coreai._compiler.dialects import coreai as cai

        self.program, self.cai, self.ir = program, cai, program.b.ir
        self.bypassed: list[Any] = []  # reshapes read through or added: erased at the end if nothing reads them

    def flat(self, value: Any, shape: list[int]) -> Any:
        """``value`` (row-major) as a tensor of ``shape``, reading through a reshape that produced it."""
        owner = producer(value)
        if owner is not None and owner.name == "coreai.reshape":
            self.bypassed.append(owner)
            value = owner.operands[0]
        return value if shape_of(value) == list(shape) else self.cai.reshape(value, ints(shape))

    def replace(self, o: Any, new: Any) -> None:
        """Make ``new`` (``o``'s result in row-major order, another shape) the value ``o``'s readers read."""
        back = None
        for user, position in users(o.results[0]):
            if user.name == "coreai.reshape" and position == 0:
                user.operands[0] = new
                continue
            if back is None:
                back = self.cai.reshape(new, ints(shape_of(o.results[0])))
                self.bypassed.append(producer(back))
            user.operands[position] = back

    def elementwise(self, o: Any) -> Any:
        """An elementwise op or softmax cloned at rank 4: the leading axes merged, constants keeping their trailing
        axes, a softmax axis counted in the merged shape."""
        shape = shape_of(o.results[0])
        merged = [math.prod(shape[:-3]), *shape[-3:]]
        operands = []
        for i, v in enumerate(o.operands):
            data = self.program.constant(v)
            if o.name == "coreai.softmax" and i == 1:
                v = self.cai.constant(np.asarray(int(data) % len(shape) - len(shape) + 4, data.dtype))
            elif data is None:
                v = self.flat(v, merged)
            elif data.ndim > 3:
                v = self.cai.constant(data.reshape(data.shape[-3:]))
            operands.append(v)
        new = o.clone(ip=self.ir.InsertionPoint(o))  # after the operands built above
        for i, v in enumerate(operands):
            new.operands[i] = v
        element = self.ir.RankedTensorType(o.results[0].type).element_type
        new.results[0].set_type(self.ir.RankedTensorType.get(merged, element))
        return new.results[0]

    def transpose(self, o: Any) -> Any:
        """A rank-6+ transpose as transposes of rank <= 4: axes that stay neighbours are merged first (coremltools'
        ``expand_high_rank_reshape_and_transpose``); when more than four groups are left, each step moves one
        group forward with a rank-4 [0, 2, 1, 3] transpose (a step whose group is in place already is skipped)."""
        x, perm = o.operands[0], [int(p) for p in self.program.constant(o.operands[1])]
        groups = [list(g) for g in split_runs(perm)]
        starts = sorted(g[0] for g in groups)
        sizes = [math.prod(shape_of(x)[g[0] : g[-1] + 1]) for g in sorted(groups)]
        order = [starts.index(g[0]) for g in groups]  # the permutation of the merged axes
        if len(order) <= 4:
            return self.cai.transpose(self.flat(x, sizes), ints(order))
        y, leading, moved = x, 1, set()
        for axis in order:
            moved.add(axis)
            before = math.prod(s for i, s in enumerate(sizes[:axis]) if i not in moved)
            after = math.prod(s for i, s in enumerate(sizes) if i > axis and i not in moved)
            if before > 1:  # otherwise the axis is in place already
                y = self.cai.transpose(self.flat(y, [leading, before, sizes[axis], after]), ints([0, 2, 1, 3]))
            leading *= sizes[axis]
        return y


def split_runs(perm: list[int]) -> list[list[int]]:
    """A permutation cut into runs of consecutive axes: [0, 2, 3, 1] -> [[0], [2, 3], [1]]."""
    runs: list[list[int]] = []
    for p in perm:
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


ELEMENTWISE_COREAI = {  # Core AI ops whose ML Program form is elementwise (or softmax)
    f"coreai.{name}" for name, (mil, _, _) in loader.DIRECT.items() if mil in ELEMENTWISE
}


class HighRankCoreAI(CoreAITarget):
    # Shared by the two SH-4 passes (which rank-6+ ops each rewrites, and how); no docstring, so that each
    # pass keeps the documentation of the ML Program pass it implements.
    transposes_only: ClassVar[bool]

    def matches_mlir(self, program: Program, o: Any) -> bool:
        if len(o.results) != 1 or not static(o.results[0]) or len(shape_of(o.results[0])) <= RANK_LIMIT:
            return False
        if o.name == "coreai.transpose":
            return static(o.operands[0]) and program.constant(o.operands[1]) is not None
        if self.transposes_only:
            return False
        shape = shape_of(o.results[0])
        for i, v in enumerate(o.operands):
            data = program.constant(v)
            if o.name == "coreai.softmax" and i == 1:
                if data is None or int(data) % len(shape) < len(shape) - 3:
                    return False
            elif data is None and (not static(v) or shape_of(v) != shape):
                return False
            elif data is not None and data.ndim > 3 and any(s != 1 for s in data.shape[:-3]):
                return False
        return True

    def call_mlir(self, program: Program, ops: list[tuple[str, Any]]) -> PassResult:
        ranks, ir = RankFour(program), program.b.ir
        with program.context:
            for _, o in ops:
                with o.location, ir.InsertionPoint(o):
                    new = ranks.transpose(o) if o.name == "coreai.transpose" else ranks.elementwise(o)
                    ranks.replace(o, new)
                program.erase(o)
            erased = erase_unused(program, ranks.bypassed)
        return PassResult(program, [n for n, _ in ops] + [n for n in erased if n])


@register
class CollapseHighRankCoreAI(HighRankCoreAI, CollapseHighRank):
    mlir_ops = tuple(sorted(ELEMENTWISE_COREAI | {"coreai.softmax", "coreai.transpose"}))
    transposes_only = False
    coreai_form = (
        "coreai-torch drops unit axes but keeps rank-6 window partitions (reshape -> transpose -> elementwise -> "
        "reshape); Core AI has no merge-reshapes pass to call, so this pass also expands the rank-6 transposes "
        "(as high_rank_transpose_to_rank4) and folds reshapes of reshapes itself, leaving no rank-6 tensor"
    )


@register
class HighRankTransposeToRank4CoreAI(HighRankCoreAI, HighRankTransposeToRank4):
    mlir_ops = ("coreai.transpose",)
    transposes_only = True
    coreai_form = (
        "a rank-6+ coreai.transpose (whatever produces and reads it) becomes rank <= 4 reshape/transpose steps; "
        "the reshapes that fed it and read it are folded into the steps"
    )


def global_average(program: Program, o: Any) -> bool:
    """Whether ``o`` invokes coreai-torch's avg_pool_2d composite with one unpadded window over the whole input."""
    callee = re.search(r"@([\w.$-]+)", str(o.attributes["callee"])) if "callee" in o.attributes else None
    graph = callee and program.reader.graph_ops.get(callee.group(1))
    decl = graph and loader._composite(graph)
    if not decl or decl[0] != "avg_pool_2d" or len(o.operands) != 7 or not static(o.operands[0]):
        return False
    kernel, stride, padding, ceil_mode, _, divisor = (program.constant(v) for v in o.operands[1:])
    if any(v is None for v in (kernel, padding, ceil_mode, divisor)):
        return False
    return shape_of(o.operands[0])[2:] == list(kernel) and not (np.any(padding) or bool(ceil_mode) or np.any(divisor))


@register
class PoolDecomposeCoreAI(CoreAITarget, PoolDecompose):
    mlir_ops = ("coreai.max_pool_2d", "coreai.invoke")
    coreai_form = (
        "a global coreai.max_pool_2d becomes coreai.reduce_max over the spatial axes, one with stride = window = "
        "2^n a chain of n window-2 stride-2 max_pool_2d ops (Core AI pools are unpadded; their padding is a separate "
        "coreai.pad); a global average pool (coreai-torch's avg_pool_2d composite: pad -> sum_pool_2d -> divide) "
        "becomes coreai.reduce_mean. Other average pools are left alone: their halvings would be sum_pool_2d ops, "
        "which have no ML Program equivalent anedoctor could check"
    )

    def matches_mlir(self, program: Program, o: Any) -> bool:
        if o.name == "coreai.invoke":
            return global_average(program, o)
        x, kernel, stride, dilation, ceil_mode = o.operands
        k, s, d, ceil = (program.constant(v) for v in (kernel, stride, dilation, ceil_mode))
        if any(v is None for v in (k, s, d, ceil)) or bool(ceil) or np.any(d != 1) or not static(x):
            return False
        return shape_of(x)[2:] == list(k) or self.pool_halvings(k, s) is not None

    @staticmethod
    def pool_halvings(kernel: np.ndarray, strides: np.ndarray) -> list[int] | None:
        k = [int(v) for v in kernel]
        if [int(v) for v in strides] != k or max(k) < 2 or any(v & (v - 1) for v in k):
            return None
        return [v.bit_length() - 1 for v in k]

    def rewrite_mlir(self, program: Program, o: Any) -> Any:
        from coreai._compiler.dialects import coreai as cai

        ir = program.b.ir
        if o.name == "coreai.invoke":
            return cai.reduce_mean(o.operands[0], np.asarray([2, 3], np.int32))
        x, kernel, stride, dilation, ceil_mode = o.operands
        k = program.constant(kernel)
        if shape_of(x)[2:] == list(k):
            return cai.reduce_max(x, np.asarray([2, 3], np.int32))
        halvings = self.pool_halvings(k, program.constant(stride))
        element = ir.RankedTensorType(x.type).element_type
        for i in range(max(halvings)):
            window = [2 if i < n else 1 for n in halvings]
            batch, channels, h, w = shape_of(x)
            out = ir.RankedTensorType.get([batch, channels, h // window[0], w // window[1]], element)
            step = cai.constant(ints(window))
            x = cai.MaxPool2dOp(out, x, step, step, dilation, ceil_mode).result
        return x


def replicated_windows(size: int, before: int, after: int, k: int, s: int, d: int, out: int) -> bool:
    """Whether every window of a max pool over an axis padded (``before``, ``after``) around ``size`` values holds,
    for each padded position it reads, the border value replicate padding puts there."""
    for i in range(out):
        window = {i * s + j * d for j in range(k)}
        real = {p for p in window if before <= p < before + size}
        if not real or any(min(max(p, before), before + size - 1) not in real for p in window - real):
            return False
    return out == (size + before + after - (k - 1) * d - 1) // s + 1


@register
class MaxPoolPadToReplicate(CoreAITarget, Pass):
    """Pad a max pool's input by replicating its border instead of with -inf.

    coreai-torch writes a padded max pool as ``pad(x, value=-inf)`` followed by an unpadded ``max_pool_2d``;
    the ANE pads with zeros only, so the -inf pad stays off it (rule PA-12). A max pool never needs the -inf:
    when every window that reads padding also reads the border value next to it, padding with copies of the
    border (replicate mode) yields the same maximum, since the copies already are in the window. That holds
    for every undilated pool torch allows (padding at most half the window, any stride, not ceil mode); a
    dilated window can step over the border value, so the pass checks each window of each pool reading the pad
    and leaves the pad alone when one misses. Replicate padding ran on the ANE in Apple's M4 one-op probes
    (no rule flags it; sbryngelson/ane-guide ``appendices/a-op-device-matrix.md`` reports a software path for
    it on M1).

    Given:
        %p = pad(%x, padding=[0, 0, 0, 0, 1, 1, 1, 1], value=-inf, mode=constant)
        %y = max_pool_2d(%p, kernel=[3, 3], stride=[2, 2])
    Result:
        %p = pad(%x, padding=[0, 0, 0, 0, 1, 1, 1, 1], value=0, mode=replicate)
        %y = max_pool_2d(%p, kernel=[3, 3], stride=[2, 2])

    Exact. Source: coreai-core ``coreai.pad`` (replicate mode: "each inserted element is a copy of the
    nearest border"); replicate padding on the ANE: 751K/Apple-Neural-Engine-Microarchitecture-Study-M6
    ``data/03_compile/opdispatch/plan_iso_cpune.tsv`` (row pad_replicate, M4).
    """

    name = "max_pool_pad_to_replicate"
    rules = ("PA-12",)
    source = (
        "coreai-core coreai.pad (replicate mode); 751K/Apple-Neural-Engine-Microarchitecture-Study-M6 "
        "data/03_compile/opdispatch/plan_iso_cpune.tsv (pad_replicate)"
    )
    mlir_ops = ("coreai.pad",)
    coreai_form = "Core AI only: an ML Program max_pool pads inside the op, so no -inf pad precedes it"

    def matches_mlir(self, program: Program, o: Any) -> bool:
        x, padding, value = o.operands
        pads, fill = program.constant(padding), program.constant(value)
        mode = str(o.attributes["padding_mode"]) if "padding_mode" in o.attributes else ""
        readers = users(o.results[0])
        if "constant" not in mode or fill is None or not np.isneginf(fill).all() or pads is None or not readers:
            return False
        if not static(x) or len(shape_of(x)) != 4 or np.any(pads[:4]):
            return False
        return all(
            position == 0 and self.reads_replicas(program, user, shape_of(x), pads) for user, position in readers
        )

    @staticmethod
    def reads_replicas(program: Program, pool: Any, shape: list[int], pads: np.ndarray) -> bool:
        """Whether ``pool`` is a max pool whose every window finds the replicated border values in it."""
        if pool.name != "coreai.max_pool_2d" or not static(pool.results[0]):
            return False
        k, s, d, ceil = (program.constant(v) for v in pool.operands[1:])
        if any(v is None for v in (k, s, d, ceil)) or bool(ceil):
            return False
        out = shape_of(pool.results[0])[2:]
        return all(
            replicated_windows(shape[2 + i], int(pads[4 + 2 * i]), int(pads[5 + 2 * i]), *map(int, v), out[i])
            for i, v in enumerate(zip(k, s, d))
        )

    def call_mlir(self, program: Program, ops: list[tuple[str, Any]]) -> PassResult:
        ir = program.b.ir
        with program.context:
            for _, o in ops:
                fill = producer(o.operands[2])
                with o.location, ir.InsertionPoint(o):
                    o.operands[2] = zero_like(o.operands[2])
                o.attributes["padding_mode"] = ir.Attribute.parse("#coreai.padding_mode<replicate>")
                erase_unused(program, [fill])
        return PassResult(program, [n for n, _ in ops])
