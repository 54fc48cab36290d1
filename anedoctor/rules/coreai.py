"""Core AI rules (CAI-*): where Apple's Core AI (iOS/macOS 27, ``.aimodel``) differs from Core ML.

The Core AI loader maps ``coreai`` ops onto the ML Program vocabulary, so every other rule applies
to Core AI programs as well; these rules cover what only Core AI does. Each gates on the model's
format (``ctx.model.format == "coreai"``) and on OS 27, and its examples are PyTorch modules that
the rule fixtures convert with coreai-torch. Core AI's fix for fp32 compute is DT-1's ``fixes``."""

from __future__ import annotations

from ..hardware import Target
from ..ir import Op, Value
from .base import Context, Example, producer_type, rule
from .refs import COREAI, file, m6, ne_rules

SCOPE = "Core AI (iOS/macOS 27)"
ZOO = "john-rocky/coreai-model-zoo"  # community Core AI ports, measured on M4 and iPhone 17 Pro


def core_ai_os(target: Target) -> bool:
    return target.os.ios >= 27


def core_ai(ctx: Context) -> bool:
    return ctx.model.format == "coreai"


def torch_example(text: str) -> Example:
    """PyTorch code binding ``module`` and ``inputs``, converted with coreai-torch."""
    return Example(text, via="coreai")


def common_issues(note: str) -> str:
    """Apple's Core AI debugging table (apple/coreai-models)."""
    return file(COREAI, "skills/skills/model-authoring/references/common_issues.md", note)


def zoo(path: str, commit: str, note: str) -> str:
    return file(ZOO, f"knowledge/{path}", note, commit)


GATED_MLP = """
    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate, self.up, self.down = nn.Conv2d(64, 128, 1), nn.Conv2d(64, 128, 1), nn.Conv2d(128, 64, 1)

        def forward(self, x):
            gate = self.gate(x)
            return self.down({activation} * self.up(x))

    module, inputs = MLP().half(), (torch.randn(1, 64, 1, 32).half(),)"""


@rule(
    "CAI-1",
    family="coreai",
    confidence="A",
    scope=SCOPE,
    when=core_ai_os,
    ops=("silu",),
    references=[
        common_issues("('Neural Engine MLP — 3 invalid ops from mps.swish')"),
        ne_rules("(contrast: its 'MLP reshape for Conv2d' example still calls nn.functional.silu)"),
        zoo(
            "coreai-ane-partition-cost.md",
            "94738e1",
            "(contrast: a Conv2d + SiLU stack timed as if all on the ANE, iPhone 17 Pro, coreai-torch "
            "0.4.2; placement inferred from timing, not read)",
        ),
    ],
    fix="Write `x * torch.sigmoid(x)` instead of `F.silu(x)` / `nn.SiLU()` (the same function).",
    example=torch_example(GATED_MLP.format(activation="F.silu(gate)")),
    quiet=torch_example(GATED_MLP.format(activation="gate * torch.sigmoid(gate)")),
)
def silu_lowers_to_fp32(op: Op, ctx: Context):
    """An fp16 silu (F.silu, nn.SiLU) in a Core AI program.

    Apple's Core AI debugging table says `nn.functional.silu(x)` lowers to mps.cast(to f32) +
    mps.swish(f32) + mps.cast(to f16), three ops the Neural Engine rejects ("3 invalid ops from
    mps.swish" in an fp16 MLP), and gives x * sigmoid(x) as the fix; Core ML's silu is not affected.
    The evidence is not uniform: Apple's own Neural Engine MLP example calls F.silu, and a
    community timing of a conv + SiLU stack looked all-ANE. The rule follows Apple's explicit note."""
    if core_ai(ctx) and op.input("x").type.dtype == "fp16":
        return "Core AI lowers silu to cast(fp32) + swish(fp32) + cast(fp16), three ops the Neural Engine rejects"
    return None


def linear_weight(matmul: Op) -> Value | None:
    """The constant weight of a matmul as coreai-torch lowers nn.Linear (``y`` = a transposed constant)."""
    y = matmul.input("y")
    weight = y.producer.input("x") if producer_type(y) == "transpose" else y
    return weight if weight is not None and weight.is_const and not matmul.input("x").is_const else None


@rule(
    "CAI-2",
    family="coreai",
    confidence="A",
    scope=SCOPE,
    when=core_ai_os,
    ops=("matmul",),
    blocks=(),
    references=[
        ne_rules("('Conv2d instead of Linear')"),
        m6(
            "plan_ctx_cpune.tsv",
            "(contrast, Core ML on M4, macOS 27: rows linear and matmul_const are ANE-eligible and placed on the ANE)",
        ),
    ],
    fix="Use `nn.Conv2d(in_features, out_features, kernel_size=1)` on (B, C, 1, S) tensors; the Linear weight "
    "[O, I] becomes the Conv2d weight [O, I, 1, 1] (`linear.weight[:, :, None, None]`).",
    example=torch_example("module, inputs = nn.Linear(64, 64).half(), (torch.randn(1, 32, 64).half(),)"),
    quiet=torch_example("module, inputs = nn.Conv2d(64, 64, 1).half(), (torch.randn(1, 64, 1, 32).half(),)"),
)
def linear_decomposed(op: Op, ctx: Context):
    """A Core AI matmul with a constant weight: an nn.Linear, lowered to transpose + batch_matmul + add.

    Apple's Core AI Neural Engine rules: "nn.Linear gets decomposed into less efficient ops that may
    fall back to CPU", while a 1x1 Conv2d "maps directly to the Neural Engine's convolution engine".
    Apple says "may", and on Core ML (M4) linear and constant-weight matmul are measured ANE-eligible,
    so this is advice, not a prediction that the op leaves the ANE."""
    weight = linear_weight(op) if core_ai(ctx) else None
    if weight is None:
        return None
    return (
        f"nn.Linear-style matmul with a constant {weight.type} weight; Apple recommends a 1x1 Conv2d for the "
        "Neural Engine (Linear 'may fall back to CPU')"
    )


def fp32_island(cast: Op, ctx: Context) -> tuple[list[Op], bool]:
    """The fp32 ops downstream of an fp16->fp32 cast, and whether the island returns to fp16."""
    island, returns, frontier, seen = [], False, [cast.outputs[0]], {id(cast)}
    while frontier:
        value = frontier.pop()
        for user in ctx.consumers.get(value.name, []):
            if id(user) in seen:
                continue
            seen.add(id(user))
            if user.type == "cast" and user.outputs[0].type.dtype != "fp32":
                returns = True
                continue
            fp32_out = [v for v in user.outputs if v.type.dtype == "fp32"]
            if fp32_out:
                island.append(user)
                frontier.extend(fp32_out)
    return island, returns


ATTENTION_WEIGHTS = """
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(64, 64, 1)

        def forward(self, x):
            weights = {softmax}
            return self.proj(x * weights)

    module, inputs = Gate().half(), (torch.randn(1, 64, 1, 32).half(),)"""


@rule(
    "CAI-3",
    family="coreai",
    confidence="C",
    scope=SCOPE,
    when=core_ai_os,
    ops=("cast",),
    blocks=(),
    references=[
        zoo(
            "ane-region-count-and-fp32-ops.md",
            "917f989",
            "(Granite-Embedding-97M, M4, macOS 27: 13 ANE regions -> 1 and 13.19 -> 4.60 ms after removing "
            "softmax(dtype=torch.float32) and .float())",
        ),
        zoo(
            "compute-units-and-authoring.md",
            "7d8c098",
            "('25 regions are 25 submissions': Instruments on iPhone 17 Pro, Core AI 25 ANE submissions per "
            "pass with ~1.1 ms gaps against Core ML's 1)",
        ),
        "https://rachuri.me/blog/parakeet-apple-silicon/ (the Instruments measurement behind it)",
        zoo(
            "coreai-ane-partition-cost.md",
            "94738e1",
            "(a fixed cost per ANE boundary, +0.60 to +1.75 ms, iPhone 17 Pro, coreai-torch 0.4.2)",
        ),
    ],
    fix="Keep the island in fp16: drop `dtype=torch.float32` from softmax and `.float()` calls, and use "
    "`torch.ones(1, dtype=x.dtype)` for Python float literals; an op that truly needs fp32 belongs at the end "
    "of the model or outside it, where it does not split the Neural Engine work.",
    example=torch_example(ATTENTION_WEIGHTS.format(softmax="F.softmax(x, dim=1, dtype=torch.float32).half()")),
    quiet=torch_example(ATTENTION_WEIGHTS.format(softmax="F.softmax(x, dim=1)")),
)
def fp32_island_splits_ane_region(op: Op, ctx: Context):
    """A cast to fp32 opens an fp32 island that returns to fp16, inside a Core AI program.

    The fp32 ops cannot run on the Neural Engine (DT-1), so the fp16 work around them becomes
    separate Neural Engine regions. Core AI submits each region separately per inference, where
    Core ML submits one job: community measurements found 25 submissions with ~1.1 ms gaps per
    pass (iPhone 17 Pro), and 13 regions -> 1 took a text encoder from 13.19 to 4.60 ms (M4).
    An fp32 tail at the model's output splits nothing and is left to DT-1."""
    if not core_ai(ctx) or op.input("x").type.dtype != "fp16" or op.outputs[0].type.dtype != "fp32":
        return None
    island, returns = fp32_island(op, ctx)
    if not island or not returns:
        return None
    ops = ", ".join(sorted({o.type for o in island}))
    return (
        f"opens an fp32 island of {len(island)} op(s) ({ops}) that returns to fp16: one more Neural Engine "
        "region, which Core AI submits separately per inference (measured ~0.7-1.1 ms per extra region)"
    )
