"""What a rule is: the :class:`Rule` record, the :func:`rule` decorator and registry, the
:class:`Context` a rule sees, and the small shape/parameter readers the rule families share."""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable

from ..errors import ModelError
from ..hardware import Target
from ..ir import Graph, Model, Op, Value

CONFIDENCE = {"A": "Apple-authored", "M": "measured with MLComputePlan / Core ML read-outs",
              "R": "reverse-engineered or private-path", "C": "community anecdote"}


@dataclass
class Context:
    """What a rule may look at besides the op."""

    target: Target
    model: Model
    graph: Graph
    typed: bool  # ML Program typed execution: an fp32 tensor means fp32 compute

    @functools.cached_property
    def flexible(self) -> bool:
        """Whether any model input has a range or enumerated shape."""
        return any(s.flexibility != "fixed" for s in self.graph.input_specs)

    @functools.cached_property
    def consumers(self) -> dict[str, list[Op]]:
        return self.graph.consumers()

    @property
    def tier(self) -> int:
        return self.target.chip.tier


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    family: str
    summary: str
    why: str
    source: str
    confidence: str
    fix: str
    scope: str
    blocks: tuple[str, ...]
    level: str
    ops: frozenset[str] | None  # op types the rule looks at; None = every op
    apple_message: str | None
    applies: Callable[[Target], bool]
    check: Callable

    @property
    def blocking(self) -> bool:
        return bool(self.blocks)


RULES: dict[str, Rule] = {}


def rule(id: str, *, family: str, source: str, confidence: str, fix: str, scope: str = "all chips and OS versions",
         blocks: tuple[str, ...] = ("ane",), level: str = "op", apple_message: str | None = None,
         when: Callable[[Target], bool] = lambda t: True, ops: tuple[str, ...] | None = None):
    """Register a rule; the decorated function's docstring documents it."""
    def register(fn):
        doc = inspect.getdoc(fn) or ""
        summary, _, why = doc.partition("\n")
        if id in RULES:
            raise KeyError(f"rule {id} is already registered (by {RULES[id].check.__module__})")
        RULES[id] = Rule(id, fn.__name__.replace("_", "-"), family, summary.strip(), " ".join(why.split()), source,
                         confidence, fix, scope, blocks, level, ops and frozenset(ops), apple_message, when, fn)
        return fn
    return register


def runtime_tensors(op: Op) -> list[Value]:
    """Runtime (non-constant) tensor inputs and outputs of an op (cached on the op)."""
    cached = op.__dict__.get("_runtime_tensors")
    if cached is None:
        cached = op.__dict__["_runtime_tensors"] = [v for v in op.runtime_inputs() + op.outputs if v.type.kind == "tensor"]
    return cached


def kernel(op: Op) -> tuple[int, ...]:
    w = op.input("weight")
    if op.type in ("conv", "conv_transpose") and w is not None and w.type.is_static:
        return tuple(w.type.shape[2:])
    return tuple(ints(op, "kernel_sizes"))


def ints(op: Op, arg: str) -> list[int]:
    """A constant integer argument as a list ([] when absent or not constant)."""
    v = op.param(arg)
    if v is None:
        return []
    return [int(x) for x in (v.reshape(-1) if hasattr(v, "reshape") else (v if isinstance(v, (list, tuple)) else [v]))]


def producer_type(v: Value | None) -> str:
    return v.producer.type if v is not None and v.producer is not None else ""


def explain(rule_id: str) -> Rule:
    """Look a rule up by id (case-insensitive)."""
    key = rule_id.upper()
    if key not in RULES:
        raise ModelError(f"no rule {rule_id!r}; run `anedoctor rules` for the list")
    return RULES[key]
