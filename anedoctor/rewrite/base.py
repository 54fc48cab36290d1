"""Rewrite passes: a registry keyed by name, and the contract every pass keeps.

A pass rewrites ops of a coremltools pymil ``Program`` that one of its rules flags. The contract
follows torch.fx's ``PassBase`` (pytorch/pytorch ``torch/fx/passes/infra/pass_base.py``):

* ``requires`` -- the ops to rewrite: flagged by one of ``rules`` in ``anedoctor.check`` of the model
  (the driver passes their names) *and* of a form the pass can rewrite (``matches``).
* ``call`` -- rewrites those ops in place and returns a :class:`PassResult`.
* ``ensures`` -- judged on the saved result: none of the ops that replaced the rewritten ones
  carries the rule any more, blocking or a note (``residual`` op types excepted, e.g. the concat that joins chunks of
  a too-long axis) nor any other ANE-blocking rule the rewritten ops did not already carry, and
  the ANE share of ops and of FLOPs did not drop (for a pass whose ``gain`` is latency: the ANE share of FLOPs did
  not drop and the estimated latency fell; the ops it adds may land off the ANE). The numeric half
  of ``ensures`` (outputs within ``tolerance`` of the original) needs the reference executor and is
  run by the driver.

Each pass documents itself the way coremltools documents its MIL passes (``Given:`` / ``Result:``
in the class docstring, apple/coremltools ``mil/passes/defs/optimize_conv.py``), says whether it is
exact, and names its source.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..rules.shapes import axis_limits

EXACT_TOLERANCE = 1e-4  # max relative output error allowed for an exact rewrite (fp32 reference run)


@dataclass
class PassResult:
    """What a pass did: the names of the ops it rewrote (empty when nothing matched)."""

    program: Any
    rewritten: list[str] = field(default_factory=list)

    @property
    def modified(self) -> bool:
        return bool(self.rewritten)


class Pass:
    """Base class of a rewrite pass. Subclasses set the class attributes and implement
    ``matches`` and ``rewrite``; the class docstring is the pass's documentation."""

    name: ClassVar[str]
    rules: ClassVar[tuple[str, ...]]  # rule ids the pass cures
    exact: ClassVar[bool] = True
    tolerance: ClassVar[float] = EXACT_TOLERANCE  # relative; the stated tolerance of an approximate pass
    source: ClassVar[str]
    interface: ClassVar[bool] = False  # changes model inputs/outputs: only with allow_interface_changes
    residual: ClassVar[frozenset[str]] = frozenset()  # op types left carrying the rule by design
    op_types: ClassVar[tuple[str, ...]] = ()
    gain: ClassVar[str] = "placement"  # what the pass improves: "placement" (no ANE share may drop) or "latency"

    def __init__(self, target: Any = None):
        self.target = target  # anedoctor's resolved chip/OS target (limits depend on the generation)

    def limits(self) -> dict[str, int]:
        """The ANE's per-axis limits (rule SH-1) for the target's generation; M1-class without a target."""
        return axis_limits(self.target.chip.tier if self.target is not None else 13)

    @classmethod
    def doc(cls) -> str:
        return inspect.getdoc(cls) or ""

    @classmethod
    def summary(cls) -> str:
        return cls.doc().split("\n", 1)[0]

    # ---- the contract -----------------------------------------------------------------
    def requires(self, prog: Any, flagged: set[str]) -> list[Any]:
        """Ops of ``prog`` flagged by this pass's rules that this pass can rewrite."""
        return [op for op in main_ops(prog) if op.op_type in self.op_types and op.name in flagged and self.matches(op)]

    def __call__(self, prog: Any, flagged: set[str]) -> PassResult:
        ops = self.requires(prog, flagged)
        return self.call(prog, ops) if ops else PassResult(prog)

    def transform(self, source: Any, target: Any, flagged: set[str]) -> list[str]:
        """Rewrite the package at ``source`` into a new package at ``target`` (written only when something
        was rewritten); returns the names of the rewritten ops. Program-level passes go through pymil."""
        from .coreml_io import load_program, save_program

        prog, spec = load_program(source)
        result = self(prog, flagged)
        if result.modified:
            save_program(prog, spec, target)
        return result.rewritten

    def call(self, prog: Any, ops: list[Any]) -> PassResult:
        from coremltools.converters.mil import Builder as mb

        done = []
        for op in ops:
            block = op.enclosing_block
            with block, mb.set_before_op(op):
                new = self.rewrite(op, op.outputs[0].name)
            if new is None:
                continue
            block.replace_uses_of_var_after_op(anchor_op=op, old_var=op.outputs[0], new_var=new)
            block.remove_ops([op])
            done.append(op.name)
        return PassResult(prog, done)

    def ensures(self, before: Any, after: Any, rewritten: list[str]) -> str | None:
        """Why the saved result breaks the contract (None when it keeps it); see the module docstring."""
        watched = replacements(before, after, rewritten)
        had = set().union(*(blocking(p) for p in before.placements if p.op.name in rewritten)) - set(self.rules)
        for p in after.placements:
            if p.op.name not in watched:
                continue
            fired = blocking(p) | {f.rule.id for f in p.notes if f.rule.id in self.rules}  # a noting rule it cures
            bad = fired - had - (set(self.rules) if p.op.type in self.residual else set())
            if bad:
                return f"{', '.join(sorted(bad))} fires on {p.op.name} ({p.op.type}) after the rewrite"
        b, a = before.summary, after.summary
        shares = (("ane_fraction", "ops"), ("ane_flops_fraction", "FLOPs"))
        for key, label in shares[1:] if self.gain == "latency" else shares:
            if a[key] < b[key] - 1e-9:
                return f"ANE share of {label} dropped from {b[key]:.1%} to {a[key]:.1%}"
        if self.gain == "latency" and not a["latency_ms"] < b["latency_ms"]:
            return f"estimated latency did not fall ({b['latency_ms']:.3f} -> {a['latency_ms']:.3f} ms)"
        return None

    # ---- what subclasses implement ----------------------------------------------------
    def matches(self, op: Any) -> bool:
        """Whether this op has a form the pass rewrites exactly as documented."""
        raise NotImplementedError

    def rewrite(self, op: Any, name: str) -> Any:
        """Build the replacement before ``op`` (inside ``mb.set_before_op``) and return the Var that
        replaces ``op``'s output; name the op producing it ``name`` so graph output names survive."""
        raise NotImplementedError


def replacements(before: Any, after: Any, rewritten: list[str]) -> set[str]:
    """Names of the ops in ``after`` that replaced the ``rewritten`` ones: those ops themselves (a replacement keeps
    the name) and every op with a new name and a new output. An op whose outputs all existed before is one the save
    only renamed (coremltools' cast_optimization renumbers casts)."""
    old_names = {p.op.name for p in before.placements}
    old_values = {v.name for p in before.placements for v in p.op.outputs}
    return set(rewritten) | {
        p.op.name
        for p in after.placements
        if p.op.name not in old_names and not all(v.name in old_values for v in p.op.outputs)
    }


PLACEMENT_RULES = ("SEG-", "CU-")  # consequences of placement, not rules a rewrite cures


def blocking(placement: Any) -> set[str]:
    """Ids of the rules that keep this op off the ANE (placement consequences left out)."""
    return {
        f.rule.id for f in placement.findings if "ane" in f.rule.blocks and not f.rule.id.startswith(PLACEMENT_RULES)
    }


PASSES: dict[str, type[Pass]] = {}


def register(cls: type[Pass]) -> type[Pass]:
    """Add a pass to the registry (in priority order); a name registered twice is an error."""
    if cls.name in PASSES:
        raise KeyError(f"rewrite pass {cls.name!r} is already registered")
    for attr in ("rules", "source"):
        if not getattr(cls, attr, None):
            raise TypeError(f"rewrite pass {cls.name!r} needs {attr}")
    if "Given:" not in cls.doc() or "Result:" not in cls.doc():
        raise TypeError(f"rewrite pass {cls.name!r} must document Given: / Result:")
    PASSES[cls.name] = cls
    return cls


# ---- small pymil helpers shared by passes ------------------------------------------------


def main_ops(prog: Any) -> list[Any]:
    """Ops of every function's top-level block (nested blocks are left alone)."""
    return [op for f in prog.functions.values() for op in list(f.operations)]


def const(var: Any) -> Any:
    """The constant value of an op input (None when absent or computed at runtime)."""
    return None if var is None else var.val


def int_list(var: Any, default: list[int]) -> list[int]:
    v = const(var)
    return default if v is None else [int(x) for x in np.asarray(v).reshape(-1)]


def window_pads(op: Any, kernel: list[int], dilations: list[int]) -> list[tuple[int, int]] | None:
    """(before, after) padding per spatial dim of a conv/pool, as MIL defines ``pad_type``
    (TF-style 'same': the smaller half before); None when the spatial sizes are not static."""
    pad_type = str(const(op.inputs.get("pad_type")) or "valid")
    n = len(kernel)
    if pad_type == "custom":
        p = int_list(op.inputs.get("pad"), [0] * 2 * n)
        return [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    if pad_type == "valid":
        return [(0, 0)] * n
    sizes = op.x.shape[2:]
    if any(not isinstance(s, (int, np.integer)) for s in sizes):
        return None
    strides = int_list(op.inputs.get("strides"), [1] * n)
    out = []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        out.append((small, total - small) if pad_type == "same" else (total - small, small))
    return out


def static_shape(var: Any) -> bool:
    return var is not None and all(isinstance(s, (int, np.integer)) for s in var.shape)


def compare_outputs(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], tol: float) -> tuple[float, str | None]:
    """Largest relative error max|a-b| / max|b| over the outputs, and why it fails (None if within ``tol``)."""
    worst = 0.0
    for name, b in ref.items():
        if name not in got:
            return worst, f"output {name!r} is missing from the rewritten model"
        a, b = np.asarray(got[name]), np.asarray(b)
        if a.shape != b.shape:
            return worst, f"output {name!r} changed shape {b.shape} -> {a.shape}"
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        if not np.array_equal(np.isfinite(a64), np.isfinite(b64)):
            return float("inf"), f"output {name!r} has non-finite values where the original has none (or vice versa)"
        ok = np.isfinite(b64)
        if ok.any():
            err = float(np.abs(a64[ok] - b64[ok]).max() / max(np.abs(b64[ok]).max(), 1e-30))
            worst = max(worst, err)
    if worst > tol:
        return worst, f"outputs differ by {worst:.3g} relative (allowed {tol:g})"
    return worst, None
