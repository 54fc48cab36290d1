"""The ANE knowledge base: one small, documented function per rule, one module per rule family.

Each rule has an id (stable, e.g. ``PA-11``), a docstring whose first line says what it checks and
whose rest says why it matters, an ``example`` model it fires on and a ``quiet`` near-miss it does
not fire on (tests/test_rules.py checks both), ``references`` a user can follow (repository files,
issues, URLs), a confidence code (A Apple-authored, M measured with Core ML's own read-out, R
reverse-engineered or private path, C community anecdote, I inferred from whole-model counts), its
chip/OS scope (``when`` decides), and the fix to try (``fix_pass`` names a rewrite that applies it,
``fix_exact`` whether that rewrite keeps the numerics). A rule returns None when it does not fire,
else a message (or ``(message, apple_message)``). ``blocks`` names the devices the finding rules out; a rule that
blocks nothing is an advisory note. ``level="graph"`` rules look at a whole graph and rule the
ANE out for all its ops. Registering an id twice is an error. ``Rule.doc()`` is the full text
``anedoctor rules ID`` prints.

A new rule goes in the family module it belongs to (dtype, ops, parameters, shapes, graph,
placement, coreai, measured), registered with :func:`rule`; its references use the builders in :mod:`.refs`.
"""

from . import coreai, dtype, graph, measured, ops, parameters, placement, shapes  # noqa: F401  (each registers its rules)
from .base import CONFIDENCE, RULES, Context, Example, Rule, explain, markdown_table, rule

__all__ = ["CONFIDENCE", "RULES", "Context", "Example", "Rule", "explain", "markdown_table", "rule"]
