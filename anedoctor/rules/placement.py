"""Placement rules (SEG-*, CU-1): reasons the segmenter attaches to ANE-eligible ops it keeps off the ANE.

They hold documentation only; :func:`anedoctor.placement.explain_off_ane` decides when they apply."""

from __future__ import annotations

from .base import Example, rule
from .refs import WEIGHT, file, guide, hollance, issue, m6, notes, pull

LONE_RELU = """
    func main<ios17>(tensor<fp16, [1, 64, 32, 32]> x) {
        tensor<fp16, [1, 64, 32, 32]> y = relu(x = x);
    } -> (y);"""


def conv_stack(n: int, middle: str = "") -> str:
    """n 3x3 convs (64 -> 64 channels, 64 x 64, same padding) with ReLUs between them, ``middle`` after the first."""
    w = f"const()[val = tensor<fp16, [64, 64, 3, 3]>({WEIGHT})]"
    lines = [f"tensor<fp16, [64, 64, 3, 3]> w = {w};"]
    x = "x"
    for i in range(n):
        lines.append(f'tensor<fp16, [1, 64, 64, 64]> c{i} = conv(x = {x}, weight = w, pad_type = "same");')
        x = f"c{i}"
        if i == 0 and middle:
            lines.append(middle.format(x=x))
            x = "m"
        elif i < n - 1:
            lines.append(f"tensor<fp16, [1, 64, 64, 64]> r{i} = relu(x = {x});")
            x = f"r{i}"
    body = "\n        ".join(lines)
    return f"""
    func main<ios17>(tensor<fp16, [1, 64, 64, 64]> x) {{
        {body}
    }} -> ({x});"""


@rule(
    "SEG-1",
    family="placement",
    confidence="M",
    level="placement",
    references=[
        m6("notes/coreml_dispatch.md", "(§0, §2.2-2.3: E5 analytics.mil segment costs, M4 macOS 27)"),
        issue("vx-lang/Vx", 435, "(f16 matmul <= 384 x 384 preferred on the CPU, M4)"),
        issue("vx-lang/Vx", 437, "(SDPA on the ANE only from ~2 M elements per operand)"),
    ],
    fix="Give the ANE more contiguous work: remove the CPU-only ops that split the graph, or batch or enlarge the "
    "work.",
    example=LONE_RELU,
    quiet=conv_stack(4),
)
def segment_too_small(graph, ctx):
    """An ANE-eligible op the segmenter is predicted to keep off the ANE.

    Opening an ANE segment costs 0.125 ms, each switch 0.125 ms and an output on the ANE
    another 0.125 ms: a segment at the edge of the graph must save >= 0.25 ms, one in the middle
    >= 0.375 ms, or Core ML keeps the work where it is."""


@rule(
    "SEG-2",
    family="placement",
    confidence="C",
    level="placement",
    references=[
        issue("apple/ml-stable-diffusion", 122, "(Apple engineer: .all may choose the GPU, a known issue)"),
        hollance("docs/other.md", "(large all-eligible models placed on the GPU)"),
        hollance("docs/unsupported-layers.md", "('ANE -> GPU just once')"),
        guide("part-5-practice/18-optimization-cost-model.md", "(decompiled segmenter cost anchors, R)"),
        notes(
            "(Mar 25-26 2023, M1 Max, macOS 13, compute units All: GPT-2 GPU 975 / ANE 370 / CPU 0 and nanoGPT "
            "ANE 361 / GPU 117 / CPU 0, where CPUAndNeuralEngine put 8 and 67 ops on the CPU)"
        ),
        file(
            "smpanaro/CoreMLInspect", "README.md", "(GPT-2 under all, macOS 14.4+: gather G|C, the mul after it G|CN)"
        ),
    ],
    fix="Load with compute_units=cpu_and_ne if the ANE should win, and measure.",
    example=conv_stack(2, "tensor<fp16, [1, 64, 64, 64]> m = cumsum(x = {x}, axis = 3);"),
    quiet=Example(
        conv_stack(2, "tensor<fp16, [1, 64, 64, 64]> m = cumsum(x = {x}, axis = 3);"), compute_units="cpu_and_ne"
    ),
)
def gpu_preferred(graph, ctx):
    """An ANE-eligible op predicted to run on the GPU under compute units 'all'.

    With GPU allowed, the segmenter compares the ANE with the GPU: a GPU segment that already
    runs the ops Core ML cannot put on the ANE often absorbs their eligible neighbours too, to
    avoid extra switches ("ANE -> GPU just once"). On macOS 14 and earlier that segment is predicted to
    hold every op the ANE does not take (the published plans under 'all' there have no op on the CPU), so
    an embedding gather at the start can pull the ops after it onto the GPU too, as CoreMLInspect shows
    for GPT-2 (anedoctor.placement.gpu_takes_cpu_work)."""


SPLIT_EINSUM_HEADS = """
    func main<ios16>(tensor<fp16, [1, 128, 1, 64]> x, tensor<fp16, [1, 64, 1, 64]> mask) {
        tensor<fp16, [1, 64, 1, 64]> h0, tensor<fp16, [1, 64, 1, 64]> h1 = split(x = x, num_splits = 2, axis = 1);
        tensor<fp16, [1, 64, 1, 64]> s0 = einsum(values = (h0, h0), equation = "bchq,bkhc->bkhq");
        tensor<fp16, [1, 64, 1, 64]> m0 = add(x = s0, y = mask);
        tensor<fp16, [1, 64, 1, 64]> w0 = softmax(x = m0, axis = 1);
        tensor<fp16, [1, 64, 1, 64]> o0 = einsum(values = (h0, w0), equation = "bchk,bkhq->bchq");
        tensor<fp16, [1, 64, 1, 64]> s1 = einsum(values = (h1, h1), equation = "bchq,bkhc->bkhq");
        tensor<fp16, [1, 64, 1, 64]> m1 = add(x = s1, y = mask);
        tensor<fp16, [1, 64, 1, 64]> w1 = softmax(x = m1, axis = 1);
        tensor<fp16, [1, 64, 1, 64]> o1 = einsum(values = (h1, w1), equation = "bchk,bkhq->bchq");
        tensor<fp16, [1, 128, 1, 64]> y = concat(values = (o0, o1), axis = 1, interleave = false);
    } -> (y);"""


@rule(
    "SEG-3",
    family="placement",
    confidence="I",
    level="placement",
    scope="Macs on macOS 13 and earlier, compute units 'all'",
    when=lambda t: t.chip.platform == "macos" and t.os.ios <= 16,
    references=[
        notes(
            "(March 25, 2023, M1 Max, macOS 13: GPT-2 in the ANE layout under All GPU 975 / ANE 370, 283 ms; under "
            "CPUAndNeuralEngine CPU 8 / ANE 1315, 534 ms. nanoGPT, batched matmul attention: ANE 361 / GPU 117)"
        ),
        issue(
            "apple/ml-stable-diffusion",
            122,
            "(split-einsum UNet: on an M1 Max .all 'balanced the charge between GPU and ANE'; an Apple engineer: "
            ".cpuAndNeuralEngine beating .all is 'a known issue on this set of models and certain systems')",
        ),
        pull("huggingface/swift-coreml-diffusers", 29, "(M1 Pro: CPU+GPU+ANE with SPLIT_EINSUM)"),
    ],
    fix="Measure the model under compute_units=all and cpu_and_ne and load it with the faster: either has won "
    "on such models (GPT-2 under all, Stable Diffusion under cpu_and_ne).",
    example=SPLIT_EINSUM_HEADS,
    quiet=Example(SPLIT_EINSUM_HEADS, compute_units="cpu_and_ne"),
)
def gpu_takes_attention_heads(graph, ctx):
    """A split-einsum attention head predicted to run on the GPU under compute units 'all'.

    Under 'all' on macOS 13, Core ML split models in Apple's ANE layout between the GPU and the ANE:
    GPT-2 in that layout ran 72% of its ops on an M1 Max's GPU (283 ms, faster than its 534 ms under
    cpu_and_ne), Stable Diffusion's split-einsum UNet was "balanced" between them and ran slower than
    under cpu_and_ne. A model whose attention is batched matmuls (nanoGPT) kept it on the ANE. Which ops
    the GPU took is not published: the per-head einsums, the scale and masks on their scores and the
    softmax are 76 of GPT-2's ~104 ops per layer, which matches the counts, so those are what the
    segmenter is predicted to keep off the ANE (inferred, confidence I)."""


@rule(
    "CU-1",
    family="placement",
    confidence="A",
    level="placement",
    references=[
        "https://developer.apple.com/documentation/coreml/mlcomputeunits (MLComputeUnits)",
        file("apple/coremltools", "coremltools/models/model.py", "(compute_units argument of MLModel)"),
    ],
    fix="Load the model with compute_units=all or cpu_and_ne.",
    example=Example(LONE_RELU, compute_units="cpu_and_gpu"),
    quiet=LONE_RELU,
)
def compute_units_exclude_ane(graph, ctx):
    """The chosen compute units exclude the Neural Engine.

    Core ML places work only on the compute units the app allows: under cpu_only or
    cpu_and_gpu an op the ANE could run still runs on the CPU or GPU."""
