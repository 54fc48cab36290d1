"""Measured rules (MS-*): what a per-chip profile (``check --profile``) measured overrides the other rules.

A profile holds, per op type, whether Core ML supported the ANE for every one-op probe of that type on the
chip and OS it was measured on (MLComputePlan; ``anedoctor probes build`` / ``measure`` / ``probes ingest``).
Where all probes of a type agree the verdict is a measurement on that chip/OS (confidence M): MS-1 rules the
ANE out; MS-2 overrides the op-type rule that says the type never runs on the ANE (OP-*, whose finding does not
depend on the op's parameters). Parameter limits (kernel sizes, axis lengths ...) stay with their rules: a
probe measured one set of parameters. Both fire only with a profile; the message names its file, where it
was measured and the probes.
"""

from __future__ import annotations

from typing import Any

from ..ir import Op
from .base import Context, Example, rule
from .ops import NEVER_ON_ANE
from .refs import m6

MLCOMPUTEPLAN = (
    "https://developer.apple.com/documentation/coreml/mlcomputeplan (the read-out profiles are measured with)"
)
PROBE_METHOD = m6("plan_iso_cpune.tsv", "(one-op probe models read with MLComputePlan, M4: the method)")
SCOPE = "all chips and OS versions, with a profile measured on the chip/OS predicted for (check --profile)"


def example_profile(entries: list[tuple[str, bool, str]]) -> dict[str, Any]:
    """An example profile as `anedoctor probes ingest` writes it: (probe, op type, ANE supported) on M4."""
    return {
        "kind": "profile",
        "chip": {"id": "m4", "name": "Apple M4", "machine": "Mac16,10"},
        "os": {"id": "macos15", "version": "15.5", "build": "24F74"},
        "eligibility": [
            {"probe": probe, "op_type": op_type, "ane": ane, "device": "ane" if ane else "cpu"}
            for probe, ane, op_type in entries
        ],
    }


def _unary(op_type: str) -> str:
    return f"""
    func main<ios17>(tensor<fp16, [1, 64, 32, 32]> x) {{
        tensor<fp16, [1, 64, 32, 32]> y = {op_type}(x = x);
    }} -> (y);"""


def _verdict(op: Op, ctx: Context, ane: bool) -> Any:
    profile = ctx.profile
    return profile is not None and profile.ane_eligible(op.type) is ane and profile


@rule(
    "MS-1",
    family="measured",
    confidence="M",
    scope=SCOPE,
    references=[MLCOMPUTEPLAN, PROBE_METHOD],
    fix="Measured on this chip/OS: replace the op with ops the profile measured on the ANE, or run that part "
    "as a separate CPU/GPU model; re-measure the probes after an OS update. `anedoctor fix` reads constant, evenly "
    "spaced gathers as slices.",
    fix_pass="gather_to_slice",
    fix_exact=True,
    example=Example(_unary("relu"), chip="m4", profile=example_profile([("relu_x4", False, "relu")])),
    quiet=Example(_unary("relu"), chip="m4"),
)
def measured_off_ane(op: Op, ctx: Context):
    """An op type every probe of the profile measured off the ANE on this chip and OS.

    Core ML's own compute plan on the measured chip and OS did not list the ANE among the supported devices
    of any probe of this op type, whatever the other rules predict. The evidence is the profile's: its file,
    machine, OS build and probes are named in the message."""
    profile = _verdict(op, ctx, False)
    if not profile:
        return None
    devices = sorted({str(e.get("device")) for e in profile.eligibility[op.type] if e.get("device")})
    return (
        f"{op.type} measured off the ANE by {profile.source_of(op.type)}; Core ML preferred "
        f"{' / '.join(d.upper() for d in devices) or 'another device'}"
    )


@rule(
    "MS-2",
    family="measured",
    confidence="M",
    scope=SCOPE,
    blocks=(),
    references=[MLCOMPUTEPLAN, PROBE_METHOD],
    fix="Nothing to change on this chip/OS: the measurement shows Core ML runs this op type on the ANE. "
    "Other chips and OS versions keep the op-type rule.",
    example=Example(_unary("tan"), chip="m4", profile=example_profile([("tan_x4", True, "tan")])),
    quiet=Example(_unary("tan"), chip="m4"),
)
def measured_on_ane(op: Op, ctx: Context):
    """An op type an op-type rule keeps off the ANE, which every probe of the profile measured on it.

    The op-type rules (OP-*) say a type never runs on the ANE, from evidence on other chips or OS versions;
    a measurement of this chip and OS with Core ML's own compute plan wins over them, so the op is eligible
    again (parameter limits of other rules still apply)."""
    profile = _verdict(op, ctx, True)
    if not profile or op.type not in NEVER_ON_ANE:
        return None
    return f"{op.type} measured on the ANE by {profile.source_of(op.type)}; overrides {NEVER_ON_ANE[op.type]}"


def lift_overridden(placement: Any) -> None:
    """Apply MS-2 to one op's placement: drop the op-type rule it overrides and give the ANE back when no
    other finding blocks it (called by anedoctor.placement after the rules ran)."""
    if not any(n.rule.id == "MS-2" for n in placement.notes):
        return
    overridden = NEVER_ON_ANE[placement.op.type]
    placement.findings = [f for f in placement.findings if f.rule.id != overridden]
    placement.supported["ane"] = not any("ane" in f.rule.blocks for f in placement.findings)
