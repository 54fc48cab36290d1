"""The ANE knowledge base: one small, documented function per rule, one module per rule family.

Each rule has an id (stable, e.g. ``PA-11``), a docstring whose first line says what it checks and
whose rest says why, the source a user can follow, a confidence code (A Apple-authored, M measured
with Core ML's own read-out, R reverse-engineered or private path, C community anecdote), its
chip/OS scope, and the fix to try. A rule returns None when it does not fire, else a message (or
``(message, apple_message)``). ``blocks`` names the devices the finding rules out; a rule that
blocks nothing is an advisory note. ``level="graph"`` rules look at a whole graph and rule the
ANE out for all its ops. Registering an id twice is an error.
"""
from . import dtype, graph, ops, parameters, placement, shapes  # noqa: F401  (each module registers its rules)
from .base import CONFIDENCE, RULES, Context, Rule, explain, rule

__all__ = ["CONFIDENCE", "RULES", "Context", "Rule", "explain", "rule"]
