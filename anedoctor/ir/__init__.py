"""The one graph IR every loader produces and every analysis reads.

A :class:`Model` holds one or more :class:`Graph` s (an ML Program function, a
NeuralNetwork, or each sub-model of a pipeline). A graph is a list of :class:`Op`
in execution order; ops read and write named :class:`Value` s. Constants are
values with ``const`` set (weights stay lazy: a :class:`LazyConst` such as
``loaders.blob.BlobRef`` reads its bytes only when asked). Op types use ML Program (MIL) names; NeuralNetwork layers are
translated to their MIL equivalent where one exists and keep the layer type in
``Op.layer_type``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any, Iterator

from ..errors import ModelError
from .dtypes import DTYPE_BYTES


@dataclass(frozen=True)
class TensorType:
    """Shape and element type of a value. A dim is an int, or None when unknown/flexible.
    ``shape`` is None when even the rank is unknown. Non-tensor values (lists, dicts,
    strings) use ``kind``."""

    dtype: str
    shape: tuple[int | None, ...] | None = ()
    kind: str = "tensor"  # tensor | state | list | dict | tuple

    def __post_init__(self) -> None:
        static = self.shape is not None and all(isinstance(d, int) for d in self.shape)
        numel = math.prod(self.shape) if static else None
        object.__setattr__(self, "_numel", numel)
        object.__setattr__(self, "_nbytes", int((numel or 0) * DTYPE_BYTES.get(self.dtype, 4)))

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self._numel is not None

    @property
    def numel(self) -> int | None:
        return self._numel

    @property
    def nbytes(self) -> int:
        """Bytes of the tensor; 0 when the shape is unknown."""
        return self._nbytes

    def __str__(self) -> str:
        dims = "?" if self.shape is None else ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


class LazyConst:
    """A constant whose data is decoded only when an analysis asks for it."""

    def load(self) -> Any:
        raise NotImplementedError


@dataclass(eq=False)
class Value:
    """A named SSA value: a graph input, an op output, or a constant (compared by identity)."""

    name: str
    type: TensorType
    const: Any = None  # numpy array, python scalar/str/list, or a LazyConst; None when not constant
    producer: "Op | None" = None

    @property
    def is_const(self) -> bool:
        return self.const is not None

    def data(self) -> Any:
        """The constant's value, with blob weights loaded; None for a runtime value."""
        return self.const.load() if isinstance(self.const, LazyConst) else self.const


@dataclass(frozen=True)
class SourceLocation:
    """Where an op came from in the user's PyTorch code; reads as ``model.py:42 (encoder.layers.3.attn)``.
    ``frames`` holds every (file, line) the op was traced through, innermost first."""

    file: str
    line: int
    module_path: str = ""
    frames: tuple[tuple[str, int], ...] = ()

    def __str__(self) -> str:
        return f"{PurePath(self.file).name}:{self.line}" + (f" ({self.module_path})" if self.module_path else "")


@dataclass(eq=False)
class Op:
    """One operation. ``inputs`` maps MIL argument names to a Value or a list of Values
    (variadic arguments such as concat's ``values``)."""

    name: str
    type: str  # MIL op type without opset prefix, e.g. "conv"
    inputs: dict[str, Value | list[Value]]
    outputs: list[Value]
    opset: str = ""  # e.g. "ios18"; "" when not known
    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: list["Block"] = field(default_factory=list)  # cond / while_loop bodies
    layer_type: str = ""  # original NeuralNetwork layer type, when translated
    index: int = -1  # position among the graph's ops (constants excluded)
    source: SourceLocation | None = None  # the PyTorch line it came from, where the format records it

    def input(self, arg: str) -> Value | None:
        v = self.inputs.get(arg)
        return v[0] if isinstance(v, list) and v else (None if isinstance(v, list) else v)

    def param(self, arg: str, default: Any = None) -> Any:
        """The value of a constant argument or attribute (loaded), else ``default``."""
        if arg in self.attrs:
            v = self.attrs[arg]
            return v.load() if isinstance(v, LazyConst) else v
        v = self.input(arg)
        if v is None or not v.is_const:
            return default
        return v.data()

    def input_values(self) -> list[Value]:
        """All input Values, variadic lists flattened (cached: use ``set_input`` to change inputs)."""
        cached = self.__dict__.get("_input_values")
        if cached is None:
            cached = []
            for v in self.inputs.values():
                cached.extend(v if isinstance(v, list) else [v])
            self.__dict__["_input_values"] = cached
        return cached

    def set_input(self, arg: str, value: "Value | list[Value]") -> None:
        self.inputs[arg] = value
        self.__dict__.pop("_input_values", None)

    def runtime_inputs(self) -> list[Value]:
        return [v for v in self.input_values() if not v.is_const]

    @property
    def qualified_type(self) -> str:
        return f"{self.opset}.{self.type}" if self.opset else self.type


@dataclass
class Block:
    """A nested block (control-flow body): its own inputs, ops and outputs."""

    inputs: list[Value]
    ops: list[Op]
    outputs: list[Value]


@dataclass
class InputSpec:
    """A model input as the model description states it, including flexibility."""

    name: str
    type: TensorType
    flexibility: str = "fixed"  # fixed | range | enumerated | unbounded
    enumerated_shapes: list[tuple[int, ...]] = field(default_factory=list)
    default_shape: tuple[int, ...] | None = None
    image: bool = False
    ranges: list[tuple[int, int]] = field(default_factory=list)  # per dim (lower, upper) of a range; upper < 0: none

    def allows(self, shape: tuple[int, ...]) -> bool:
        """Whether the input may take ``shape`` (within its ranges, one of its enumerated shapes)."""
        if self.flexibility == "enumerated":
            return tuple(shape) in self.enumerated_shapes
        if self.flexibility == "fixed":
            return tuple(shape) == self.default_shape
        rank = len(self.ranges) or (len(self.default_shape) if self.default_shape else len(shape))
        within = all(lo <= d and (hi < 0 or d <= hi) for d, (lo, hi) in zip(shape, self.ranges))
        return len(shape) == rank and within

    def allowed(self) -> str:
        """The shapes the input may take, as a user writes them (``1x3x224x224``, ``1x384x1x32..256``)."""
        dims = lambda shape: "x".join(map(str, shape))  # noqa: E731
        if self.flexibility == "enumerated":
            return "one of " + ", ".join(map(dims, self.enumerated_shapes))
        if self.ranges:
            return "x".join(str(lo) if lo == hi else f"{lo}..{hi if hi >= 0 else ''}" for lo, hi in self.ranges)
        if self.flexibility == "fixed" and self.default_shape:
            return f"only {dims(self.default_shape)}"
        return "any shape" + (f" of rank {len(self.default_shape)}" if self.default_shape else "")


@dataclass
class Graph:
    """One executable unit: an ML Program function, a NeuralNetwork, or a pipeline stage."""

    name: str
    ops: list[Op]
    inputs: list[Value]
    outputs: list[Value]
    input_specs: list[InputSpec] = field(default_factory=list)
    opset: str = ""
    states: list[Value] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i, op in enumerate(self.ops):
            op.index = i

    def values(self) -> Iterator[Value]:
        seen: set[int] = set()
        for v in self.inputs:
            seen.add(id(v))
            yield v
        for op in self.ops:
            for v in op.input_values() + op.outputs:
                if id(v) not in seen:
                    seen.add(id(v))
                    yield v

    def consumers(self) -> dict[str, list[Op]]:
        """Map value name -> ops that read it."""
        out: dict[str, list[Op]] = {}
        for op in self.ops:
            for v in op.input_values():
                out.setdefault(v.name, []).append(op)
        return out

    def weight_bytes(self) -> int:
        total = 0
        for v in self.values():
            if v.is_const:
                total += v.type.nbytes
        return total


@dataclass
class Model:
    """A loaded model file: format, description and its graphs."""

    path: str
    format: str  # mlprogram | neuralnetwork | pipeline | mlmodelc-mlprogram | mlmodelc-neuralnetwork | torch
    graphs: list[Graph]
    spec_version: int = 0
    deployment_target: str = ""  # e.g. "ios16" (from spec version / opset)
    description: str = ""
    notes: list[str] = field(default_factory=list)  # what could not be analysed, and why
    weights_bytes: int = 0  # size of the weight files on disk
    is_updatable: bool = False
    pipeline: bool = False  # the graphs are stages that run one after another (else alternative functions)

    def __post_init__(self) -> None:
        self.pipeline = self.pipeline or self.format == "pipeline"

    @property
    def functions(self) -> list[str]:
        """The functions of a multi-function program, the default first (one runs per prediction); [] when the
        model has one function or is a pipeline."""
        return [] if self.pipeline or len(self.graphs) < 2 else [g.name for g in self.graphs]

    def only(self, function: str | None) -> Model:
        """This model with one of its functions, which then runs per prediction (``--function``); itself for None."""
        if function is None:
            return self
        chosen = [g for g in self.graphs if g.name == function]
        if self.pipeline or not chosen:
            names = ", ".join(self.functions or [g.name for g in self.graphs[:1]])
            raise ModelError(
                f"{self.path}: a pipeline runs all its stages; --function picks one function of a multi-function "
                "program"
                if self.pipeline
                else f"{self.path}: no function {function!r}; its functions: {names}"
            )
        return replace(self, graphs=chosen)

    def refuse_functions(self, command: str, why: str) -> None:
        """Raise a ModelError when this is a multi-function model, which ``command`` does not take (``why``), saying
        what to do instead."""
        if self.functions:
            raise ModelError(
                f"{self.path}: {command} works on single-function models; this one has {len(self.functions)} "
                f"functions ({', '.join(self.functions)}), {why}: {command} each function's model, then combine them "
                "(coremltools.utils.save_multifunction)"
            )

    def prediction_graphs(self) -> list[Graph]:
        """The graphs one prediction runs: a pipeline's stages in order, else the default (first) function."""
        return list(self.graphs) if self.pipeline else self.graphs[:1]

    @property
    def ops(self) -> list[Op]:
        return [op for g in self.graphs for op in g.ops]
