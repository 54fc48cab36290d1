"""What a rule is: the :class:`Rule` record, the :func:`rule` decorator and registry, the
:class:`Context` a rule sees, and the small shape/parameter readers the rule families share."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelError
from ..hardware import Target
from ..ir import Graph, Model, Op, Value

CONFIDENCE = {
    "A": "Apple-authored",
    "M": "measured with MLComputePlan / Core ML read-outs",
    "R": "reverse-engineered or private-path",
    "C": "community anecdote",
    "I": "inferred from whole-model measurements: they count ops per device, which op they point at is inferred",
}
DEFAULT_SCOPE = "all chips and OS versions"
FORMAT_NAMES = {"coreai": "Core AI (.aimodel)"}  # how a per-format fix names its format


@dataclass
class Context:
    """What a rule may look at besides the op."""

    target: Target
    model: Model
    graph: Graph
    typed: bool  # ML Program typed execution: an fp32 tensor means fp32 compute
    profile: Any = None  # a measured per-chip profile (anedoctor.measure.profile.Profile), for rules.measured

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
class Example:
    """A tiny model a rule fires on (or, as a near-miss, does not).

    ``text`` is either the MIL text of one or more ``func`` definitions (an ML Program, parsed by
    the ``model.mil`` reader) or, for NeuralNetwork rules, a Core ML ``Model`` protobuf in text
    format (weight values left out are zeros of the declared size). With ``via`` set (``"coreai"``)
    it is PyTorch code instead, run with ``torch``, ``nn`` and ``F`` imported, that binds ``module``
    and its example ``inputs`` (a tuple), converted as ``anedoctor.check(module, inputs, via=via)``
    converts it. ``compute_units`` is the setting to check it with; ``chip`` is set only where the
    rule depends on nothing but the chip. ``profile`` is a measured profile (the dict ``anedoctor probes
    ingest`` writes) to check it with, for the rules that read one (rules.measured)."""

    text: str
    compute_units: str = "all"
    chip: str | None = None
    via: str | None = None
    profile: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def format(self) -> str:
        if self.via:
            return "torch"
        return "mil" if self.text.lstrip().startswith("func") else "protobuf"


def cite(reference: str) -> str:
    """A reference URL (plus an optional note after it) as a short readable citation."""
    url, _, note = reference.partition(" ")
    bare = url.removeprefix("https://").removeprefix("http://")
    parts = bare.split("/")
    if parts[0] == "github.com" and len(parts) >= 3:
        repo, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        if rest[:1] in (["issues"], ["pull"], ["discussions"]) and len(rest) > 1:
            bare = f"{repo}{' PR ' if rest[0] == 'pull' else ''}#{rest[1]}"
        elif rest[:1] in (["blob"], ["tree"]) and len(rest) > 2:
            bare = f"{repo} {'/'.join(rest[2:])}"
        else:
            bare = repo
    return f"{bare} {note}".strip()


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    family: str
    summary: str
    why: str
    references: tuple[str, ...]  # URLs a user can follow, each optionally followed by a note
    confidence: str
    fix: str
    scope: str
    blocks: tuple[str, ...]
    level: str
    ops: frozenset[str] | None  # op types the rule looks at; None = every op
    apple_message: str | None
    applies: Callable[[Target], bool]
    check: Callable
    example: Example
    quiet: Example
    fix_pass: str | None = None  # the rewrite that cures it ("common::..." = a coremltools pass)
    fix_exact: bool | None = None  # whether that rewrite keeps the numerics (up to fp rounding)
    fixes: tuple[tuple[str, str], ...] = ()  # (model format, fix text) where the fix differs for that format

    def fix_for(self, model_format: str) -> str:
        """The fix to give for a model of this format (``Model.format``: "coreai", "mlprogram" ...)."""
        return dict(self.fixes).get(model_format, self.fix)

    @property
    def blocking(self) -> bool:
        return bool(self.blocks)

    @property
    def source(self) -> str:
        """The references as one readable citation string (the JSON report's ``source``)."""
        return "; ".join(cite(r) for r in self.references)

    def doc(self) -> str:
        """The rule's full documentation, in ruff's sections."""
        if self.fix_pass:
            exactness = "exact (keeps the numerics up to rounding)" if self.fix_exact else "inexact: verify the outputs"
            safety = f"The rewrite `{self.fix_pass}` applies this fix where its pattern matches; it is {exactness}."
        else:
            safety = "No automatic rewrite."
        blocks = ", ".join(self.blocks) or "nothing (advisory note)"
        sections = [
            (f"{self.id} {self.name} ({self.family})", ""),
            ("What it checks", self.summary),
            ("Why it matters", self.why),
            ("Example (fires)", _example_text(self.example)),
            ("Near miss (does not fire)", _example_text(self.quiet)),
            (
                "Fix",
                "\n".join([self.fix, *(f"For {FORMAT_NAMES.get(k, k)} models: {v}" for k, v in self.fixes), safety]),
            ),
            ("Blocks", blocks + (f"; Apple's message: {self.apple_message}" if self.apple_message else "")),
            ("Scope", self.scope),
            ("Confidence", f"{self.confidence} ({CONFIDENCE[self.confidence]})"),
            ("References", "\n".join(f"- {r}" for r in self.references)),
        ]
        return "\n\n".join(f"## {title}\n{body}" if body else title for title, body in sections).rstrip() + "\n"


def _example_text(example: Example) -> str:
    settings = [f"PyTorch, converted with via={example.via!r}"] if example.via else []
    settings += [f"compute units {example.compute_units}"] if example.compute_units != "all" else []
    settings += [f"chip {example.chip}"] if example.chip else []
    settings += [
        f"a profile measuring {e['op_type']} {'on' if e['ane'] else 'off'} the ANE (probe {e.get('probe')})"
        for e in (example.profile or {}).get("eligibility", ())
    ]
    head = f"({', '.join(settings)})\n" if settings else ""
    return head + textwrap.indent(example.text, "    ")


RULES: dict[str, Rule] = {}


def rule(
    id: str,
    *,
    family: str,
    references: list[str],
    confidence: str,
    fix: str,
    example: str | Example,
    quiet: str | Example,
    scope: str = DEFAULT_SCOPE,
    blocks: tuple[str, ...] = ("ane",),
    level: str = "op",
    apple_message: str | None = None,
    when: Callable[[Target], bool] = lambda t: True,
    ops: tuple[str, ...] | None = None,
    fix_pass: str | None = None,
    fix_exact: bool | None = None,
    fixes: dict[str, str] | None = None,
):
    """Register a rule; the decorated function's docstring documents it (first line: what it
    checks; the rest: why it matters). ``fixes`` maps a model format (``"coreai"``) to the fix to
    give for models of that format instead of ``fix``. Registering an id twice is an error."""

    def register(fn):
        doc = inspect.getdoc(fn) or ""
        summary, _, why = doc.partition("\n")
        if id in RULES:
            raise KeyError(f"rule {id} is already registered (by {RULES[id].check.__module__})")
        if confidence not in CONFIDENCE:
            raise ValueError(f"rule {id}: confidence {confidence!r} is not one of {''.join(CONFIDENCE)}")
        RULES[id] = Rule(
            id,
            fn.__name__.replace("_", "-"),
            family,
            summary.strip(),
            " ".join(why.split()),
            tuple(references),
            confidence,
            fix,
            scope,
            blocks,
            level,
            ops and frozenset(ops),
            apple_message,
            when,
            fn,
            as_example(example),
            as_example(quiet),
            fix_pass,
            fix_exact,
            tuple((fixes or {}).items()),
        )
        return fn

    return register


def as_example(example: str | Example) -> Example:
    """An Example with its text dedented (examples are written indented inside the rule's call)."""
    example = example if isinstance(example, Example) else Example(example)
    return dataclasses.replace(example, text=textwrap.dedent(example.text).strip("\n").rstrip())


def runtime_tensors(op: Op) -> list[Value]:
    """Runtime (non-constant) tensor inputs and outputs of an op (cached on the op)."""
    cached = op.__dict__.get("_runtime_tensors")
    if cached is None:
        cached = [v for v in op.runtime_inputs() + op.outputs if v.type.kind == "tensor"]
        op.__dict__["_runtime_tensors"] = cached
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


def markdown_table() -> str:
    """The README's rules table, generated from the registry (in registration order)."""
    rows = ["| id | name | confidence | blocks | scope | checks |", "|---|---|---|---|---|---|"]
    for r in RULES.values():
        cells = (r.id, r.name, r.confidence, ", ".join(r.blocks) or "note", r.scope, r.summary)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def explain(rule_id: str) -> Rule:
    """Look a rule up by id (case-insensitive)."""
    key = rule_id.upper()
    if key not in RULES:
        raise ModelError(f"no rule {rule_id!r}; run `anedoctor rules` for the list")
    return RULES[key]
