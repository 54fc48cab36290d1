"""Graph-level rules: flexible inputs (DY-*), model size (SZ-*), state (ST-*), chip (CH-0),
activation quantization (Q-2)."""

from __future__ import annotations

from ..ir import Graph
from .base import Context, Example, rule
from .refs import (
    COREMLTOOLS,
    SMPANARO,
    WEIGHT,
    docs,
    file,
    folder,
    hollance,
    issue,
    notes,
)


def flex(kind: str, shapes: dict[str, str], defaults: dict[str, str]) -> str:
    """The FlexibleShapeInformation attribute of a ``func``: kind RangeDims or EnumeratedShapes."""

    def entries(d: dict[str, str]) -> str:
        return ", ".join(f'{{"{k}", {v}}}' for k, v in d.items())

    info = f'("DefaultShapes", {{{entries(defaults)}}}), ("{kind}", {{{entries(shapes)}}})'
    return f"[FlexibleShapeInformation = ({info})]"


RANGE_X = flex("RangeDims", {"x": "[[1, 1], [1, 2048]]"}, {"x": "[1, 64]"})
ENUM_X = flex("EnumeratedShapes", {"x": "[[1, 64], [1, 128]]"}, {"x": "[1, 64]"})


def big_linear(rows: int, cols: int = 16384) -> str:
    """A linear layer with a (rows, cols) fp16 weight: rows * cols * 2 bytes of weights."""
    return f"""
        func main<ios17>(tensor<fp16, [1, {cols}]> x) {{
            tensor<fp16, [{rows}, {cols}]> w = const()[val = tensor<fp16, [{rows}, {cols}]>({WEIGHT})];
            tensor<fp16, [1, {rows}]> y = linear(x = x, weight = w);
        }} -> (y);"""


STATES = """
    func main<ios18>(state<tensor<fp16, [1, 8, 16]>> k, state<tensor<fp16, [1, %s, 16]>> v, tensor<fp16, [1, 16]> x) {
        tensor<fp16, [1, 16]> y = relu(x = x);
    } -> (y);"""
RELU = """
    func main<ios17>(tensor<fp16, [1, 64]> x) {
        tensor<fp16, [1, 64]> y = relu(x = x);
    } -> (y);"""


@rule(
    "DY-1",
    family="dynamic",
    confidence="M",
    level="graph",
    scope="before iOS 18 / macOS 15 (evidence 2021-23); on macOS 15 a RangeDim encoder ran 217/217 ops on the ANE",
    when=lambda t: t.os.ios <= 17,
    apple_message="ANECompiler does not support range shape flexibility",
    references=[
        issue(
            COREMLTOOLS,
            1029,
            "(Xcode: 'MLE5Engine is not currently supported for models with range shape "
            "inputs that try to utilize the Neural Engine')",
        ),
        issue(COREMLTOOLS, 2370, "(random shapes ~0% ANE; reshapeFrequency hint)"),
        issue(COREMLTOOLS, 1764, "(flexible shape -> CPU only)"),
        docs("flexible-inputs", "('Reshape Frequency Optimization Hint', iOS 17.4+)"),
        (
            "https://ask-meridian.uk/blog/apple-neural-engine-eligibility-vs-placement/ (6L x 384 encoder with "
            "a RangeDim input, coremltools 9, macOS 15, MLComputePlan: 217/217 ops on the ANE: the scope's "
            "end)"
        ),
    ],
    example=f"""
        func main<ios17>(tensor<fp16, [1, ?]> x) {RANGE_X} {{
            tensor<fp16, [1, ?]> y = relu(x = x);
        }} -> (y);""",
    quiet=RELU,
    fix="Use EnumeratedShapes (up to 128) or fixed shapes; on iOS 17.4+/macOS 14.4+ try MLModelConfiguration "
    "reshapeFrequency = .infrequent.",
)
def range_shape_input(graph: Graph, ctx: Context):
    """A model input with a flexible range shape (RangeDim / image size range).

    Range-shaped inputs keep the model off the ANE except, at best, at the default shape."""
    flex = [s for s in graph.input_specs if s.flexibility == "range"]
    if flex:
        return f"input {flex[0].name} has a range (flexible) shape; the ANE compiler does not support range shapes"
    return None


@rule(
    "DY-2",
    family="dynamic",
    confidence="A",
    level="graph",
    blocks=(),
    references=[docs("faqs", "('Neural Engine With Flexible Input Shapes')")],
    example=f"""
        func main<ios17>(tensor<fp16, [1, ?]> x) {ENUM_X} {{
            tensor<fp16, [1, ?]> y = relu(x = x);
        }} -> (y);""",
    quiet=RELU,
    fix="Keep reshapes static so each enumerated shape compiles to a fully static graph; check each shape with a "
    "fixed-shape copy of the model.",
)
def enumerated_shape_input(graph: Graph, ctx: Context):
    """A model input with EnumeratedShapes: runs on the ANE unless conversion made layers dynamic.

    Apple: 'The converted model will run on the NE, unless the conversion introduces dynamic layers
    not supported on the NE.' Costs are predicted at the default shape (see the report's notes)."""
    flex = [s for s in graph.input_specs if s.flexibility == "enumerated"]
    return (
        (
            f"input {flex[0].name} has {len(flex[0].enumerated_shapes)} enumerated shapes; Core ML compiles each as a "
            f"static model, predicted here at the default {flex[0].default_shape}"
        )
        if flex
        else None
    )


@rule(
    "DY-4",
    family="dynamic",
    confidence="M",
    level="graph",
    scope="iOS 16 / macOS 13 (measured 2023)",
    when=lambda t: t.os.ios <= 16,
    references=[
        issue(COREMLTOOLS, 1909, "(Xcode performance report)"),
        notes("(2023-10-25: rank-3 layer_norm fails with enumerated shapes, rank-4 works)"),
    ],
    example=f"""
        func main<ios16>(tensor<fp16, [1, ?]> x) {ENUM_X} {{
            tensor<fp16, [1, ?]> y = layer_norm(x = x, axes = [-1], epsilon = 0.00001);
        }} -> (y);""",
    quiet=f"""
        func main<ios16>(tensor<fp16, [1, ?]> x) {ENUM_X} {{
            tensor<fp16, [1, ?, 1, 1]> x4 = expand_dims(x = x, axes = [-1, -2]);
            tensor<fp16, [1, ?, 1, 1]> y = layer_norm(x = x4, axes = [1], epsilon = 0.00001);
        }} -> (y);""",
    fix="Use fixed shapes, or rank-4 layer_norm (B, C, 1, S) which worked with enumerated shapes (`anedoctor fix` "
    "runs each layer_norm at rank 4).",
    fix_pass="layer_norm_to_rank4",
    fix_exact=True,
)
def layer_norm_with_enumerated_shapes(graph: Graph, ctx: Context):
    """A layer_norm in a model with EnumeratedShapes inputs (iOS 16 era).

    In Xcode performance reports of 2023 such a model did not run on the ANE, while the same
    model with fixed or range shapes did; a rank-4 layer_norm (B, C, 1, S) worked."""
    if any(s.flexibility == "enumerated" for s in graph.input_specs) and any(
        op.type == "layer_norm" and (op.input("x").type.rank or 0) != 4 for op in graph.ops
    ):
        return "layer_norm with enumerated input shapes kept the whole model off the ANE on iOS 16"
    return None


@rule(
    "DY-6",
    family="dynamic",
    confidence="C",
    level="graph",
    scope="macOS 13-14 / iOS 16-17",
    when=lambda t: t.os.ios <= 17,
    references=[
        folder(SMPANARO, "src/experiments", "(enumerated_*.py docstrings)"),
        notes("(Sept 2023: several enumerated inputs kept the model off the ANE)"),
    ],
    example=f"""
        func main<ios17>(tensor<fp16, [1, ?]> x, tensor<fp16, [1, ?]> z) {
        flex(
            "EnumeratedShapes",
            {"x": "[[1, 64], [1, 128]]", "z": "[[1, 64], [1, 128]]"},
            {"x": "[1, 64]", "z": "[1, 64]"},
        )
    } {{
            tensor<fp16, [1, ?]> y = add(x = x, y = z);
        }} -> (y);""",
    quiet=f"""
        func main<ios17>(tensor<fp16, [1, ?]> x, tensor<fp16, [1, 1]> z) {ENUM_X} {{
            tensor<fp16, [1, ?]> y = add(x = x, y = z);
        }} -> (y);""",
    fix="Use a single enumerated input (others fixed), or one model per shape.",
)
def several_flexible_inputs(graph: Graph, ctx: Context):
    """More than one flexible (enumerated or range) input.

    Each flexible input brings its own symbolic dimensions; a practitioner's experiments on
    macOS 13-14 found that two enumerated inputs (or enumerated plus range) kept the model off
    the ANE, while a single flexible input did not."""
    flex = [s.name for s in graph.input_specs if s.flexibility != "fixed"]
    return f"{len(flex)} flexible inputs ({', '.join(flex)})" if len(flex) > 1 else None


@rule(
    "SZ-1",
    family="size",
    confidence="A",
    level="graph",
    scope="iOS / iPadOS",
    when=lambda t: t.chip.platform == "ios",
    apple_message="Weight file size <size> exceeds the maximum (<max>)",
    references=[
        docs("mlmodel-utilities", "(model splitting: bisect_model)"),
        file(
            "apple/ml-stable-diffusion",
            "README.md",
            "(--chunk-unet: 'required for Neural Engine "
            "deployment on "
            "iOS and iPadOS if weights are not quantized to 6-bits or less')",
        ),
    ],
    example=big_linear(37000),
    quiet=big_linear(16384),
    fix="Split the model (ct.models.utils.bisect_model) or compress weights to 6 bits or fewer.",
)
def model_over_1gb_on_ios(graph: Graph, ctx: Context):
    """A model whose weights exceed 1 GB on an iPhone/iPad.

    Apple's coremltools guide: a model must not be larger than 1 GB to run on the Neural
    Engine of an iPhone or iPad; Apple's Stable Diffusion port chunks its UNet for that reason."""
    size = ctx.model.weights_bytes or graph.weight_bytes()
    if size > 1 << 30:
        return f"weights are {size / (1 << 30):.2f} GB > 1 GB, the iOS limit for the Neural Engine"
    return None


@rule(
    "SZ-2",
    family="size",
    confidence="C",
    level="graph",
    scope="M1 (H13)",
    when=lambda t: t.chip.tier == 13 and t.chip.platform == "macos",
    references=[
        notes("(2023-03-30..04-07: '4x800MB is the limit. The fifth gets put on CPU', M1)"),
        file("eiln/ane", "ane/src/ane_drv.c", "(.vm_size = 0xe0000000 on T8103/T6000)"),
    ],
    example=big_linear(100000),
    quiet=big_linear(65536),
    fix="Compress weights (palettize to 4-6 bits) or split the model.",
)
def model_over_ane_address_space_m1(graph: Graph, ctx: Context):
    """A model whose weights exceed ~3 GB on M1 (the ANE's mapped address space).

    The Asahi Linux ANE driver maps the ANE a 0xE0000000 (3.5 GiB) virtual address window on
    M1-class SoCs, and in practice about four 800 MB models fit; later weights fall back to
    the CPU."""
    size = ctx.model.weights_bytes or graph.weight_bytes()
    return f"weights are {size / (1 << 30):.2f} GB; M1 maps at most ~3-3.75 GB for the ANE" if size > 3 << 30 else None


@rule(
    "ST-2",
    family="state",
    confidence="C",
    level="graph",
    scope="M1 / A14 (H13)",
    when=lambda t: t.chip.tier == 13,
    references=[file("argus1/Anemll", "docs/RELEASE_NOTES_0.3.5.md", "('M1/A14 Limitations')")],
    example=STATES % "4",
    quiet=STATES % "8",
    fix="Give all state tensors the same shape (pad the shorter KV cache).",
)
def non_uniform_states(graph: Graph, ctx: Context):
    """Stateful model whose state tensors have different shapes, on M1/A14.

    A project's release notes: 'Both M1 and A14 ANE fail to compile models with non-uniform
    state shapes' (e.g. Gemma-style KV caches of two lengths); the whole model then leaves
    the ANE."""
    shapes = {s.type.shape for s in graph.states}
    return f"{len(graph.states)} states with {len(shapes)} different shapes" if len(shapes) > 1 else None


@rule(
    "CH-0",
    family="chip",
    confidence="A",
    level="graph",
    scope="A11 and older",
    when=lambda t: t.chip.tier == 0,
    references=[
        hollance("docs/supported-devices.md", "(A11: the ANE is not available to third-party apps)"),
        issue(COREMLTOOLS, 667, "(A11 not usable from Core ML)"),
    ],
    example=RELU,
    quiet=Example(RELU, chip="a12"),
    fix="Target an A12 or newer device.",
)
def no_usable_ane(graph: Graph, ctx: Context):
    """The chip has no Neural Engine that Core ML can use.

    The A11's two-core Neural Engine is not usable by third-party Core ML models; Core ML runs
    them on its GPU and CPU. Its near-miss is the same model on an A12, the first chip whose
    ANE Core ML uses."""
    return f"{ctx.target.chip.name} has no ANE usable by third-party Core ML models"


@rule(
    "Q-2",
    family="compression",
    confidence="A",
    blocks=(),
    level="graph",
    scope="before A17 Pro / M4",
    when=lambda t: not t.chip.fast_int8,
    references=[
        docs("opt-quantization-perf", "(int8-int8 compute on the Neural Engine of A17 Pro / M4)"),
        docs("opt-overview"),
        docs("opt-whats-new"),
    ],
    example="""
        func main<ios17>(tensor<fp16, [1, 64]> x) {
            tensor<int8, [1, 64]> q = quantize(input = x, scale = 0.1, output_dtype = "int8");
            tensor<fp16, [1, 64]> y = dequantize(input = q, scale = 0.1);
        } -> (y);""",
    quiet=f"""
        func main<ios18>(tensor<fp16, [1, 16]> x) {{
            tensor<int8, [8, 16]> q = const()[val = tensor<int8, [8, 16]>({WEIGHT})];
            tensor<fp16, [8, 1]> s = const()[val = tensor<fp16, [8, 1]>({WEIGHT})];
            tensor<fp16, [8, 16]> w = constexpr_blockwise_shift_scale(data = q, scale = s);
            tensor<fp16, [1, 8]> y = linear(x = x, weight = w);
        }} -> (y);""",
    fix="Expect a smaller W8A8 gain on this chip than on A17 Pro / M4 (Apple: 1.2-1.8x on an A16, 1.3-2.5x on an "
    "A17 Pro); keep the model on the ANE, where W8A8 still beat weight-only compression in Apple's tables.",
)
def w8a8_without_fast_int8(graph: Graph, ctx: Context):
    """Activation quantization (W8A8) on a chip without the doubled int8-int8 ANE rate.

    Apple's docs: A17 Pro / M4 and newer have "increased throughput" for int8-int8 compute on the
    Neural Engine, so W8A8 gains more there. Older chips gain less (in anedoctor's estimate mostly
    through halved activation and weight traffic): on the iPhone 14 Pro (A16) W8A8 ran MobileNetV2, ResNet-50 and
    MobileViTv2 1.78x, 1.62x and 1.17x faster than fp16, against 2.45x, 1.79x and 1.32x on the
    iPhone 15 Pro, while int8 weights alone gained at most 11% on either. On the CPU (and
    sometimes the GPU) quantized activations are slower: they are decompressed at run time."""
    if any(op.type == "quantize" for op in graph.ops):
        return (
            "activations are quantized: int8-int8 compute doubles only from A17 Pro / M4, older chips gain less "
            "(Apple measured 1.2-1.8x on an A16)"
        )
    return None
