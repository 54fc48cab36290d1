"""The plan: a graph compiled into steps (constants folded, slots bound, values freed after last use), control flow
and state."""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ModelError
from ..hardware import DISPLAY_ORDER
from ..ir import Graph, LazyConst, Op, Value
from ..ir.dtypes import NUMPY_DTYPES
from . import kernels_nn, kernels_shape  # noqa: F401  (they register their kernels)
from .kernels import OPS
from .precision import MAX_LOOP_ITERATIONS, r16, tensor, to_numpy, to_torch

# ------------------------------------------------------------------ constexpr (folded while compiling)


def const_array(v: Value) -> Any:
    """A constant's payload, with sub-byte data that an inline immediate kept packed unpacked."""
    from ..loaders.blob import SUB_BYTE_BITS, unpack_sub_byte

    data = v.data()
    if v.type.dtype in SUB_BYTE_BITS and v.type.is_static and np.size(data) != v.type.numel:
        return unpack_sub_byte(np.asarray(data, np.uint8), v.type.dtype, v.type.numel).reshape(v.type.shape)
    return data


def fold_constexpr(op_: Op, args: dict[str, Any]) -> list[np.ndarray]:
    """Evaluate a constexpr_* op with coremltools' own reference decompression."""
    from coremltools.converters.mil.mil.ops.defs.iOS16 import constexpr_ops as v16
    from coremltools.converters.mil.mil.ops.defs.iOS18 import compression as v18

    t, g = op_.type, args.get
    if t == "constexpr_affine_dequantize":
        out = v16.constexpr_affine_dequantize.decompress(
            g("quantized_data"), g("zero_point"), g("scale"), int(g("axis"))
        )
    elif t == "constexpr_cast":
        out = np.asarray(g("source_val")).astype(NUMPY_DTYPES[str(g("output_dtype"))])
    elif t == "constexpr_lut_to_dense" and g("shape") is not None:
        out = v16.constexpr_lut_to_dense.decompress(g("lut"), g("indices"), np.asarray(g("shape")))
    elif t == "constexpr_lut_to_dense":
        out = v18.constexpr_lut_to_dense.decompress(g("indices"), g("lut"), g("vector_axis"))
    elif t == "constexpr_sparse_to_dense" and g("shape") is not None:
        out = v16.constexpr_sparse_to_dense.decompress(g("nonzero_data"), g("mask"), np.asarray(g("shape")))
    elif t == "constexpr_sparse_to_dense":
        out = v18.constexpr_sparse_to_dense.decompress(g("nonzero_data"), g("mask"))
    elif t == "constexpr_blockwise_shift_scale":
        out = v18.constexpr_blockwise_shift_scale.decompress(g("data"), g("scale"), g("offset"))
    elif t == "constexpr_lut_to_sparse":
        out = v18.constexpr_lut_to_sparse.decompress(
            g("indices_mask"), g("indices_nonzero_data"), g("lut"), g("vector_axis")
        )
    elif t == "constexpr_sparse_blockwise_shift_scale":
        out = v18.constexpr_sparse_blockwise_shift_scale.decompress(
            g("data_mask"), g("nonzero_data"), g("scale"), g("offset")
        )
    else:
        raise ModelError(f"op {op_.name!r}: unsupported constexpr op {t}")
    outs = list(out) if isinstance(out, tuple) else [out]
    for v, o in zip(op_.outputs, outs):
        if v.type.is_static and tuple(np.shape(o)) != v.type.shape:
            raise ModelError(
                f"op {op_.name!r} ({t}): decompressed shape {np.shape(o)} does not match the declared {v.type}"
            )
    return outs


# ------------------------------------------------------------------ the plan


@dataclass(eq=False)
class Step:
    """One op bound to its slots and precision."""

    op: Op
    fn: Callable
    single: tuple[tuple[str, int], ...]  # argument name -> slot
    multi: tuple[tuple[str, tuple[int, ...]], ...]  # variadic argument name -> slots
    outs: tuple[int, ...]
    shapes: tuple  # declared static output shapes (None when not static), checked after every op
    plan: "Plan"
    device: str = "cpu"
    rin: bool = False  # round float inputs to fp16
    rout: bool = False  # round float outputs to fp16
    ane: bool = False  # fp16 products inside compound ops
    acc16: bool = False  # fp16 accumulation
    emulate: bool = False
    needs_env: bool = False  # control flow and state ops read and write the environment
    free: tuple[int, ...] = ()
    blocks: list = field(default_factory=list)  # (input slots, steps, output slots) per nested block

    def r(self, t):
        return r16(t) if self.ane else t


class Plan:
    """A graph compiled for repeated execution at one precision and placement: constants are
    tensors in ``init``, every value has a slot, every op a :class:`Step`. Plans of one graph may share
    ``constants`` (value id -> tensor, filled by the first): its weights are then held and decompressed once."""

    def __init__(
        self,
        graph: Graph,
        precision: str = "fp32",
        devices: Callable[[Op], str] | None = None,
        accumulator: str = "fp32",
        seed: int = 0,
        constants: dict[int, Any] | None = None,
    ):
        if precision not in ("fp32", "fp16"):
            raise ModelError(f"unknown precision {precision!r} (use fp32 or fp16)")
        if accumulator not in ("fp32", "fp16"):
            raise ModelError(f"unknown accumulator {accumulator!r} (use fp32 or fp16)")
        self.graph, self.precision, self.accumulator, self.seed = graph, precision, accumulator, seed
        self.device_of = devices or (lambda o: "ane")
        self.slot_of: dict[int, int] = {}
        self.init: list[Any] = []
        self.constants = {} if constants is None else constants
        self.folded: dict[int, np.ndarray] = {}  # decompressed weights a later constexpr op may read, while compiling
        self.inputs = [(v, self.slot(v)) for v in graph.inputs]
        self.steps = self.compile(graph.ops)
        self.folded = {}
        self.outputs = [(v, self.slot(v)) for v in graph.outputs]
        self.free_after_last_use()

    def slot(self, v: Value) -> int:
        if id(v) not in self.slot_of:
            self.slot_of[id(v)] = len(self.init)
            self.init.append(self.constant(v) if v.is_const else None)
        return self.slot_of[id(v)]

    def constant(self, v: Value) -> Any:
        if id(v) not in self.constants:
            self.constants[id(v)] = to_torch(v.data())
        return self.constants[id(v)]

    def const_slot(self, value: Any) -> int:
        self.init.append(to_torch(value))
        return len(self.init) - 1

    def compile(self, ops: list[Op]) -> list[Step]:
        steps = []
        for o in ops:
            if o.type.startswith("constexpr_"):
                self.fold(o)
                continue
            fn = OPS.get(o.type) or ENV_OPS.get(o.type)
            if fn is None:
                raise ModelError(f"op {o.name!r}: the executor does not support op type {o.qualified_type!r}")
            if o.blocks and o.layer_type:
                raise ModelError(
                    f"op {o.name!r}: the executor does not run NeuralNetwork {o.layer_type} layers "
                    "(their bodies update blobs in place)"
                )
            single, multi = [], []
            for name, v in o.inputs.items():
                try:
                    if isinstance(v, list):
                        multi.append((name, tuple(self.slot(x) for x in v)))
                    else:
                        single.append((name, self.slot(v)))
                except ModelError as e:
                    raise ModelError(f"op {o.name!r} ({o.type}), input {name!r}: {e}") from None
            for k, v in o.attrs.items():  # attributes (e.g. translated NeuralNetwork parameters) become constant args
                if k not in o.inputs:
                    single.append((k, self.const_slot(v.load() if isinstance(v, LazyConst) else v)))
            shapes = tuple(v.type.shape if v.type.is_static and v.type.kind == "tensor" else None for v in o.outputs)
            s = Step(
                o,
                fn,
                tuple(single),
                tuple(multi),
                tuple(self.slot(v) for v in o.outputs),
                shapes,
                self,
                needs_env=o.type in ENV_OPS,
            )
            self.place(s)
            s.blocks = [
                ([self.slot(v) for v in b.inputs], self.compile(b.ops), [self.slot(v) for v in b.outputs])
                for b in o.blocks
            ]
            steps.append(s)
        return steps

    def fold(self, o: Op) -> None:
        """Decompress a constexpr op once (once for all plans sharing ``constants``); its outputs become constants."""
        if all(id(v) in self.constants for v in o.outputs):
            for v in o.outputs:
                self.init[self.slot(v)] = self.constants[id(v)]
            return
        for v, out in zip(o.outputs, fold_constexpr(o, self.constexpr_args(o))):
            self.folded[id(v)] = out
            self.init[self.slot(v)] = self.constants[id(v)] = to_torch(out)

    def constexpr_args(self, o: Op) -> dict[str, Any]:
        """A constexpr op's arguments as arrays: constants, and the outputs of the constexpr ops before it."""
        args = {}
        for k, v in list(o.attrs.items()) + [(k, v) for k, v in o.inputs.items() if not isinstance(v, list)]:
            try:
                if isinstance(v, Value):
                    if not v.is_const and id(v) not in self.folded:
                        raise ModelError(f"input {k!r} is not a constant")
                    v = const_array(v) if v.is_const else self.folded[id(v)]
                elif isinstance(v, LazyConst):
                    v = v.load()
            except ModelError as e:
                raise ModelError(f"op {o.name!r} ({o.type}): {e}") from None
            args[k] = v
        return args

    def place(self, s: Step) -> None:
        if self.precision == "fp32" or s.needs_env:
            return
        s.emulate = True
        s.device = self.device_of(s.op) or "cpu"
        if s.device not in DISPLAY_ORDER:
            raise ModelError(f"op {s.op.name!r}: unknown device {s.device!r} (use one of {', '.join(DISPLAY_ORDER)})")
        s.rin = s.rout = s.device in ("ane", "gpu")
        s.ane = s.device == "ane"
        s.acc16 = s.ane and self.accumulator == "fp16"

    def free_after_last_use(self) -> None:
        """Drop each top-level intermediate after the step that reads it last (reads inside blocks count)."""
        keep = {slot for _, slot in self.outputs} | {slot for _, slot in self.inputs}

        def reads(step: Step):
            yield from (slot for _, slot in step.single)
            for _, slots in step.multi:
                yield from slots
            for _, steps, outs in step.blocks:
                yield from outs
                for inner in steps:
                    yield from reads(inner)

        last = {slot: i for i, step in enumerate(self.steps) for slot in reads(step)}
        produced = {slot for step in self.steps for slot in step.outs}
        frees: dict[int, list[int]] = {}
        for slot, i in last.items():
            if slot in produced and slot not in keep:
                frees.setdefault(i, []).append(slot)
        for i, step in enumerate(self.steps):
            step.free = tuple(frees.get(i, ()))

    def run(self, arrays: dict[str, np.ndarray], states: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Execute once on checked input arrays (see :func:`check_inputs`); returns the outputs as the model types
        them, final state values go to ``states``."""
        steps = self.stepwise(arrays, states)
        with torch.inference_mode():
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    return done.value

    def stepwise(
        self, arrays: dict[str, np.ndarray], states: dict[str, np.ndarray] | None = None
    ) -> Generator[tuple[Step, tuple], None, dict[str, np.ndarray]]:
        """:meth:`run` one top-level step at a time: yields each step with its results (the values it read last still
        held) and returns the outputs. The caller holds ``torch.inference_mode()``."""
        env = list(self.init)
        for v, slot in self.inputs:
            arr = arrays.get(v.name)
            if arr is None:  # a state without an initial value starts at zero
                arr = np.zeros(tuple(d or 1 for d in (v.type.shape or ())), NUMPY_DTYPES.get(v.type.dtype, np.float32))
            t = torch.from_numpy(
                np.array(
                    arr,
                    dtype=np.float32 if v.type.dtype.startswith("fp") else bool if v.type.dtype == "bool" else np.int64,
                )
            )
            env[slot] = r16(t) if self.precision == "fp16" and v.type.dtype == "fp16" else t
        yield from step_through(self.steps, env)
        if states is not None:
            states.update((v.name, env[slot].numpy()) for v, slot in self.inputs if v.type.kind == "state")
        return {v.name: to_numpy(env[slot], v.type.dtype, self.precision) for v, slot in self.outputs}


def run_steps(steps: list[Step], env: list) -> None:
    for _ in step_through(steps, env):
        pass


def step_through(steps: list[Step], env: list) -> Iterator[tuple[Step, tuple]]:
    """Execute ``steps`` on ``env`` one at a time, yielding each with its results before the values it read last
    are freed."""
    for s in steps:
        a = {n: env[i] for n, i in s.single}
        for n, slots in s.multi:
            a[n] = [env[j] for j in slots]
        if s.rin:
            a = {n: ([r16(x) for x in v] if isinstance(v, list) else r16(v)) for n, v in a.items()}
        try:
            res = s.fn(s, a, env) if s.needs_env else s.fn(s, a)
        except ModelError:
            raise
        except Exception as e:  # an op that cannot run on these inputs: name it, never a traceback
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            msg = f"no {msg} input (the model left it out or it does not decode)" if isinstance(e, KeyError) else msg
            raise ModelError(f"op {s.op.name!r} ({s.op.type}) failed: {msg}") from e
        if type(res) is not tuple:
            res = (res,)
        if len(res) < len(s.outs):
            raise ModelError(
                f"op {s.op.name!r} ({s.op.type}) produced {len(res)} outputs, the model declares {len(s.outs)}"
            )
        if s.rout:
            res = tuple(r16(v) for v in res)
        for slot, shape, val in zip(s.outs, s.shapes, res):
            if shape is not None and val.shape != shape and s.op.layer_type and val.numel() == math.prod(shape):
                val = val.reshape(shape)  # NeuralNetwork layers state shapes in their notional rank-5 layout
            if shape is not None and val.shape != shape:
                raise ModelError(
                    f"op {s.op.name!r} ({s.op.type}) produced shape {tuple(val.shape)} where the model "
                    f"declares {tuple(shape)}"
                )
            env[slot] = val
        yield s, res
        for slot in s.free:
            env[slot] = None


def run_block(block, values: list, env: list) -> list:
    ins, steps, outs = block
    for slot, v in zip(ins, values):
        env[slot] = v
    run_steps(steps, env)
    return [env[o] for o in outs]


def run_cond(s: Step, a: dict, env: list):
    pred = bool(tensor(a["pred"]).reshape(-1)[0])
    return tuple(run_block(s.blocks[0 if pred else 1], [], env))


def run_while(s: Step, a: dict, env: list):
    values = a["loop_vars"] if isinstance(a["loop_vars"], list) else [a["loop_vars"]]
    if len(s.blocks) != 2:
        raise ModelError(f"op {s.op.name!r}: a while_loop needs a condition and a body block")
    for _ in range(MAX_LOOP_ITERATIONS):
        if not bool(tensor(run_block(s.blocks[0], values, env)[0]).reshape(-1)[0]):
            return tuple(values)
        values = run_block(s.blocks[1], values, env)
    raise ModelError(f"op {s.op.name!r}: while_loop ran {MAX_LOOP_ITERATIONS} iterations without stopping")


def state_slot(s: Step) -> int:
    slots = dict(s.single)
    return slots["input"] if "input" in slots else slots["state"]


def read_state(s: Step, a: dict, env: list):
    return env[state_slot(s)]


def write_state(s: Step, a: dict, env: list):
    env[state_slot(s)] = a["data"] if "data" in a else a["value"]
    return ()


def update_state(s: Step, a: dict, env: list):
    write_state(s, a, env)
    return a["value"]


ENV_OPS = {
    "cond": run_cond,
    "while_loop": run_while,
    "read_state": read_state,
    "write_state": write_state,
    "coreml_update_state": update_state,
}
