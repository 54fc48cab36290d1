"""Op-type rules (OP-*, GPU-1): ops with no ANE (or GPU) implementation, and NeuralNetwork layer forms."""

from __future__ import annotations

from ..ir import Op
from ..ir.dtypes import below_fp16
from .base import Context, rule
from .refs import COREMLTOOLS, WEIGHT, file, guide, hollance, issue, m6, ne_rules, notes, pull

NEVER_ON_ANE = {  # op type: the rule that documents why it never runs on the ANE
    "lstm": "OP-1",
    "gru": "OP-1",
    "rnn": "OP-1",
    "scatter": "OP-2",
    "scatter_along_axis": "OP-2",
    "scatter_nd": "OP-2",
    "band_part": "OP-3",
    "one_hot": "OP-4",
    "non_zero": "OP-4",
    "range_1d": "OP-4",
    "sliding_windows": "OP-4",
    "random_normal": "OP-4",
    "reduce_prod": "OP-4",
    "mod": "OP-4",
    "argsort": "OP-4",
    "asin": "OP-5",
    "acos": "OP-5",
    "tan": "OP-5",
    "sinh": "OP-5",
    "cosh": "OP-5",
    "atanh": "OP-5",
    "cumsum": "OP-6",
    "crop_resize": "OP-7",
    "cond": "OP-8",
    "while_loop": "OP-8",
    "non_maximum_suppression": "OP-13",
    "custom": "OP-12",
    "reverse_sequence": "OP-18",
    "random_bernoulli": "OP-18",
    "random_categorical": "OP-18",
    "asinh": "OP-18",
    "acosh": "OP-18",
    "make_list": "OP-18",
    "list_read": "OP-18",
    "list_write": "OP-18",
    "list_gather": "OP-18",
    "list_scatter": "OP-18",
    "list_length": "OP-18",
    "constexpr_cast": "OP-18",
}
DIRECT_PATH_MATRIX = guide("appendices/a-op-device-matrix.md", "(187 MIL ops x M1-M5, direct path)")
M4_SWEEP = m6("plan_iso_cpune.tsv", "(single-op MLComputePlan sweep, M4, macOS 27, coremltools 9)")


def unary(op_type: str, dtype: str = "fp16") -> str:
    """A one-op model applying a unary op to a (1, 64) tensor."""
    return f"""
        func main<ios17>(tensor<{dtype}, [1, 64]> x) {{
            tensor<{dtype}, [1, 64]> y = {op_type}(x = x);
        }} -> (y);"""


REDUCE = """
    func main<ios17>(tensor<fp16, [1, 64]> x) {{
        tensor<fp16, [1, 1]> y = {op}(x = x, axes = [1], keep_dims = true);
    }} -> (y);"""


def never_rule(rule_id: str, title: str, why: str, **meta):
    """Register one 'this op type never runs on the ANE' rule covering the types that map to it."""
    members = sorted(t for t, r in NEVER_ON_ANE.items() if r == rule_id)

    def check(op: Op, ctx: Context):
        return f"{op.type} has no ANE implementation", f'Unsupported MIL operation "{op.type}"'

    check.__name__ = meta.pop("name")
    check.__doc__ = f"{title} ({', '.join(members)}): no ANE implementation.\n\n{why}"
    register = rule(rule_id, family="op", apple_message='Unsupported MIL operation "<op>"', ops=tuple(members), **meta)
    return register(check)


never_rule(
    "OP-1",
    "Recurrent cells",
    "Recurrent cells run on the CPU (BNNS) only; an Apple engineer: 'RNN or LSTM ops are not supported on the "
    "neural engine'.",
    name="recurrent-cell",
    confidence="A",
    references=[
        issue(COREMLTOOLS, 1780, "(Apple engineer: RNN/LSTM not supported on the neural engine)"),
        issue(COREMLTOOLS, 337),
        m6("plan_iso_cpune.tsv", "(rows lstm, gru: CPU only on M4)"),
    ],
    fix="Replace the recurrence with convolutions or attention, or run the RNN part as a separate CPU model.",
    example="""
            func main<ios17>(tensor<fp16, [4, 1, 2]> x, tensor<fp16, [1, 2]> h0) {
                tensor<fp16, [2, 2]> w = const()[val = tensor<fp16, [2, 2]>([1, 0, 0, 1])];
                tensor<fp16, [4, 1, 2]> y, tensor<fp16, [1, 2]> h =
                    rnn(x = x, initial_h = h0, weight_ih = w, weight_hh = w);
            } -> (y);""",
    quiet="""
            func main<ios17>(tensor<fp16, [4, 1, 2]> x) {
                tensor<fp16, [2, 2]> w = const()[val = tensor<fp16, [2, 2]>([1, 0, 0, 1])];
                tensor<fp16, [4, 1, 2]> y = linear(x = x, weight = w);
            } -> (y);""",
)
never_rule(
    "OP-2",
    "Scatter ops",
    "coremltools' own source: 'scatter op falls off ANE, while gather op resides'. CPU-only (GPU-eligible) on M4.",
    name="scatter",
    confidence="A",
    references=[
        file(
            COREMLTOOLS,
            "coremltools/converters/mil/frontend/torch/ops.py",
            "(comments at scatter / index_put: 'scatter op falls off ANE, while gather op resides')",
        ),
        m6("plan_iso_cpune.tsv", "(scatter rows: CPU only, GPU-eligible, M4)"),
        file("smpanaro/more-ane-transformers", "models/gpt2.py", "(KV cache without scatter)"),
    ],
    fix="Replace index updates with masks: torch.where(mask, new, old), or concat-then-slice for KV caches.",
    example="""
            func main<ios17>(tensor<fp16, [8, 4]> x, tensor<fp16, [1, 4]> u) {
                tensor<int32, [1]> i = const()[val = tensor<int32, [1]>([2])];
                tensor<fp16, [8, 4]> y = scatter(data = x, indices = i, updates = u, axis = 0, mode = "update");
            } -> (y);""",
    quiet="""
            func main<ios17>(tensor<fp16, [8, 4]> x, tensor<fp16, [1, 4]> u) {
                tensor<bool, [8, 1]> m = const()[val = tensor<bool, [8, 1]>(
                    [false, false, true, false, false, false, false, false])];
                tensor<fp16, [8, 4]> y = select(cond = m, a = u, b = x);
            } -> (y);""",
)
never_rule(
    "OP-3",
    "Band-part masks",
    "band_part (triangular masks) was CPU-only on M4 and had 'no path' on M1-M5 in the direct-path guide.",
    name="band-part",
    confidence="M",
    references=[
        m6("plan_iso_cpune.tsv", "(row band_part: CPU only, M4 macOS 27)"),
        DIRECT_PATH_MATRIX,
        notes("(2023-04-04: matrix_band_part could not run on the ANE)"),
    ],
    fix="Pass a precomputed fp16 mask as a constant or input instead of building it with band_part (tril/triu).",
    example="""
            func main<ios17>(tensor<fp16, [1, 64, 64]> x) {
                tensor<fp16, [1, 64, 64]> y = band_part(x = x, lower = -1, upper = 0);
            } -> (y);""",
    quiet="""
            func main<ios17>(tensor<fp16, [1, 64, 64]> x, tensor<fp16, [1, 64, 64]> mask) {
                tensor<fp16, [1, 64, 64]> y = add(x = x, y = mask);
            } -> (y);""",
)
never_rule(
    "OP-4",
    "Index, random and integer-math ops",
    "Measured CPU-only on M4 with MLComputePlan: index/shape generators, random normal, products, modulo, argsort.",
    name="cpu-only-op",
    confidence="M",
    references=[M4_SWEEP],
    fix="Precompute the result (one_hot, range, masks) as a constant or model input, or move the op out of the model.",
    example=REDUCE.format(op="reduce_prod"),
    quiet=REDUCE.format(op="reduce_sum"),
)
never_rule(
    "OP-5",
    "Inverse and hyperbolic trigonometry",
    "Inverse/hyperbolic trigonometry is CPU-only on M4 (sin, cos and atan are eligible).",
    name="trig",
    confidence="M",
    references=[
        m6("plan_iso_cpune.tsv", "(rows tan, asin, acos, sinh, cosh, atanh: CPU only; sin, cos, atan eligible)"),
        guide("appendices/a-op-device-matrix.md", "('Trigonometric')"),
    ],
    fix="Rewrite with eligible ops (e.g. tanh, exp, atan) or a polynomial approximation.",
    example=unary("tan"),
    quiet=unary("atan"),
)
never_rule(
    "OP-6",
    "Cumulative sum",
    "cumsum is CPU-only through Core ML on M4.",
    name="cumsum",
    confidence="M",
    references=[m6("plan_iso_cpune.tsv", "(rows cumsum_c, cumsum_w: CPU only, M4 macOS 27)")],
    fix="Express the running sum as a matmul with a constant triangular matrix (ANE-eligible).",
    example="""
            func main<ios17>(tensor<fp16, [1, 4]> x) {
                tensor<fp16, [1, 4]> y = cumsum(x = x, axis = 1);
            } -> (y);""",
    quiet="""
            func main<ios17>(tensor<fp16, [1, 4]> x) {
                tensor<fp16, [4, 4]> tri = const()[val = tensor<fp16, [4, 4]>(
                    [1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1])];
                tensor<fp16, [1, 4]> y = matmul(x = x, y = tri);
            } -> (y);""",
)
never_rule(
    "OP-7",
    "Crop-and-resize",
    "crop_resize is CPU-only on M4, not even GPU.",
    name="crop-resize",
    confidence="M",
    blocks=("ane", "gpu"),
    references=[
        m6("plan_iso_cpune.tsv", "(row crop_resize: CPU only)"),
        m6("plan_iso_all.tsv", "(row crop_resize: CPU only under compute units ALL, M4 macOS 27)"),
    ],
    fix="Crop on the host (Vision / Core Image) or with static slices and resize.",
    example="""
            func main<ios17>(tensor<fp16, [1, 3, 32, 32]> x, tensor<fp16, [1, 1, 1, 1, 4]> roi) {
                tensor<fp16, [1, 1, 3, 8, 8]> y = crop_resize(x = x, roi = roi, target_height = 8, target_width = 8);
            } -> (y);""",
    quiet="""
            func main<ios17>(tensor<fp16, [1, 3, 32, 32]> x) {
                tensor<fp16, [1, 3, 8, 8]> y = slice_by_size(x = x, begin = [0, 0, 4, 4], size = [1, 3, 8, 8]);
            } -> (y);""",
)
never_rule(
    "OP-8",
    "Control flow",
    "Control flow has no ANE code generation; 'using cond forces you off the Neural Engine'.",
    name="control-flow",
    confidence="C",
    references=[
        notes("(2023-04-16: 'using cond forces you off the Neural Engine', M1)"),
        file("smpanaro/more-ane-transformers", "src/experiments/zero_matmul_test.py", "(docstring)"),
        guide("appendices/a-op-device-matrix.md", "(cond/while: no standalone code generation)"),
    ],
    fix="Flatten the control flow on the host: export one model per branch, or compute both branches and select.",
    example="""
            func main<ios17>(tensor<fp16, [1, 8]> x, tensor<bool, []> p) {
                tensor<fp16, [1, 8]> y = cond(pred = p) {
                    block0() { tensor<fp16, [1, 8]> a = relu(x = x); } -> (a);
                    block1() { tensor<fp16, [1, 8]> b = sigmoid(x = x); } -> (b);
                };
            } -> (y);""",
    quiet="""
            func main<ios17>(tensor<fp16, [1, 8]> x, tensor<bool, []> p) {
                tensor<fp16, [1, 8]> a = relu(x = x);
                tensor<fp16, [1, 8]> b = sigmoid(x = x);
                tensor<fp16, [1, 8]> y = select(cond = p, a = a, b = b);
            } -> (y);""",
)
NN_ONE_LAYER = """
    specificationVersion: 4
    description {{
      input {{ name: "x" type {{ multiArrayType {{ shape: 8 dataType: FLOAT32 }} }} }}
      output {{ name: "y" type {{ multiArrayType {{ shape: 8 dataType: FLOAT32 }} }} }}
    }}
    neuralNetwork {{ layers {{ name: "l" input: "x" output: "y" {layer} }} }}"""
never_rule(
    "OP-12",
    "Custom layers",
    "Custom layers only have CPU/GPU implementations.",
    name="custom-layer",
    confidence="A",
    references=[hollance("docs/unsupported-layers.md", "('Custom layers')")],
    fix="Replace the custom layer with built-in layers.",
    example=NN_ONE_LAYER.format(layer='custom { className: "Swish" }'),
    quiet=NN_ONE_LAYER.format(layer="activation { sigmoid {} }"),
)
never_rule(
    "OP-13",
    "Non-maximum suppression",
    "non_maximum_suppression offloads to the CPU or GPU (ANE kernel limited to 2048 boxes).",
    name="nms",
    confidence="R",
    references=[
        m6("notes/coreml_dispatch.md", "(§2.1: Espresso strings, 2048-box limit)"),
        guide("appendices/a-op-device-matrix.md", "(non_maximum_suppression offloads to the CPU or GPU)"),
    ],
    fix="Run NMS after the model (Vision, or a separate pipeline stage).",
    example="""
            func main<ios17>(tensor<fp16, [1, 64, 4]> boxes, tensor<fp16, [1, 64, 2]> scores) {
                tensor<fp16, [1, 10, 4]> b, tensor<fp16, [1, 10, 2]> s, tensor<int32, [1, 10]> i, tensor<int32, [1]> n =
                    non_maximum_suppression(boxes = boxes, scores = scores, iou_threshold = 0.5, score_threshold = 0.1,
                                            max_boxes = 10, per_class_suppression = false);
            } -> (b, s);""",
    quiet="""
            func main<ios17>(tensor<fp16, [1, 64, 4]> boxes, tensor<fp16, [1, 64, 2]> scores) {
                tensor<fp16, [1, 64, 2]> s = sigmoid(x = scores);
            } -> (boxes, s);""",
)
never_rule(
    "OP-18",
    "Ops rejected by the ANE compiler on every generation",
    "Rejected on every generation by the direct-path compiler matrix (not measured with Core ML).",
    name="direct-path-rejected",
    confidence="R",
    references=[DIRECT_PATH_MATRIX],
    fix="Move the op out of the model or rewrite it with eligible ops.",
    example=unary("asinh"),
    quiet=unary("atan"),
)


def infinite_fill(op: Op) -> bool:
    """Whether a branch of a select is a constant -inf, or a fill that fp16 turns into -inf (coremltools 6 wrote
    masked_fill(-inf) as -3.4e38): a const, or a fill of one."""
    for arg in ("a", "b"):
        v = op.input(arg)
        if v is None:
            continue
        filled = v.producer is not None and v.producer.type == "fill"
        if below_fp16(v.producer.param("value") if filled else v.data()):
            return True
    return False


@rule(
    "OP-19",
    family="op",
    confidence="I",
    scope="iOS 16 / macOS 13 and earlier (Xcode reports of 2022-23); on M4, macOS 27 select ran on the ANE",
    when=lambda t: t.os.ios <= 16,
    ops=("select",),
    references=[
        file(
            "apple/ml-ane-transformers",
            "assets/xcode_performance_report_comparison.png",
            "(iPhone 13 Pro Max, iOS 16.0: Hugging Face distilbert, masked_fill(-inf) mask, 38 of 266 ops on the "
            "CPU; the same model with an additive mask, 4 of 606)",
            commit="da64000",
        ),
        notes(
            "(Mar 25-26 2023, M1 Max: nanoGPT, masked_fill(-inf) causal mask, 67 CPU / 416 ANE; GPT-2 with additive "
            "masks, 8 / 1315; the causal mask moved 'from f32 -> f16 (so it stays on the ANE instead of shifting to "
            "CPU)'. Apr 15 2023: torch.where(mask, new_k, old_k), two runtime tensors, 'works on ANE')"
        ),
        ne_rules("('Causal mask': the Neural Engine does not handle IEEE -inf correctly in softmax; mask with -40000)"),
        m6("plan_iso_cpune.tsv", "(select with a greater() condition: supported on the ANE, M4, macOS 27)"),
    ],
    fix="Mask by addition, as Apple's ml-ane-transformers does: scores + mask with mask 0 where kept and -1e4 "
    "where masked (fp16), in place of masked_fill(-inf) (a -inf masked_fill can be rewritten on the graph).",
    fix_pass="select_to_additive_mask",
    fix_exact=False,
    example="""
        func main<ios16>(tensor<fp16, [1, 64]> x, tensor<fp16, [1, 64]> m) {
            tensor<fp16, [1, 64]> z = mul(x = m, y = 0.0);
            tensor<bool, [1, 64]> c = greater(x = m, y = z);
            tensor<fp16, [1, 1]> inf = const()[val = tensor<fp16, [1, 1]>([[-inf]])];
            tensor<fp16, [1, 64]> y = select(cond = c, a = inf, b = x);
        } -> (y);""",
    quiet="""
        func main<ios16>(tensor<fp16, [1, 64]> x, tensor<fp16, [1, 64]> m) {
            tensor<fp16, [1, 64]> z = mul(x = m, y = 0.0);
            tensor<bool, [1, 64]> c = greater(x = m, y = z);
            tensor<fp16, [1, 64]> y = select(cond = c, a = x, b = m);
        } -> (y);""",
)
def select_before_ios17(op: Op, ctx: Context):
    """A masked_fill(-inf), a select with a constant infinite branch, on iOS 16 / macOS 13 or earlier.

    Inferred not to run on the ANE there. Two Xcode reports of that era counted about five CPU ops per attention
    layer in models that mask with masked_fill(-inf) (Hugging Face distilbert on an A15, nanoGPT on an M1 Max)
    and almost none in the same models masking by addition. A select of two runtime tensors (torch.where for a KV
    cache) ran on the ANE in the same notes, so the rule is limited to the infinite fill. The weak point, said
    plainly: the converters of those reports (coremltools 6.0 and 6.2, checked) kept this select in fp32 between two
    casts (its fill became -3.4e38, beyond fp16's range), which DT-1 alone takes off the ANE; today's converter
    makes it fp16, and no measurement of an fp16 one on such an OS is published. The counts are therefore no
    evidence for the fp16 form (bench/published rebuilds those models with coremltools 6.2 for that reason); the
    rule stays an inference (confidence I), its fix is Apple's own advice for the ANE's softmax (mask with a
    finite negative, not -inf), and the OP-19 probe of `anedoctor probes` settles it on a device."""
    if infinite_fill(op):
        return "a select with an infinite constant (masked_fill(-inf)) is inferred off the ANE on iOS 16 / macOS 13"
    return None


@rule(
    "GPU-1",
    family="op",
    confidence="M",
    blocks=("gpu",),
    ops=("affine", "non_zero", "sliding_windows"),
    references=[
        m6(
            "plan_iso_all.tsv",
            "(rows affine, non_zero, sliding_windows: supported set lacks the GPU, M4, macOS 27, compute units ALL)",
        )
    ],
    fix="Nothing to do for the ANE; under cpu_and_gpu these ops run on the CPU.",
    example="""
        func main<ios17>(tensor<fp16, [1, 16]> x) {
            tensor<fp16, [1, 13, 4]> y = sliding_windows(x = x, axis = 1, size = 4, stride = 1);
        } -> (y);""",
    quiet="""
        func main<ios17>(tensor<fp16, [1, 16]> x) {
            tensor<fp16, [1, 4, 4]> y = reshape(x = x, shape = [1, 4, 4]);
        } -> (y);""",
)
def no_gpu_kernel(op: Op, ctx: Context):
    """An op Core ML has no GPU kernel for (affine, non_zero, sliding_windows).

    Measured with compute units ALL on M4: the supported set was {CPU, ANE} or {CPU}."""
    return f"{op.type} has no Core ML GPU implementation"


@rule(
    "OP-9",
    family="op",
    confidence="M",
    references=[
        m6("plan_iso_cpune.tsv", "(row slice_dyn: CPU only, M4 macOS 27)"),
        notes("(2023-10-25: dynamic-offset slice, index_select, narrow ran on the CPU, M1)"),
    ],
    fix="Use static slices; for KV caches use read_state -> slice_update -> write_state, or a precomputed mask.",
    ops=("slice_by_index", "slice_by_size", "dynamic_slice"),
    example="""
        func main<ios17>(tensor<fp16, [1, 64]> x, tensor<int32, [2]> begin) {
            tensor<fp16, [1, 8]> y = slice_by_size(x = x, begin = begin, size = [1, 8]);
        } -> (y);""",
    quiet="""
        func main<ios17>(tensor<fp16, [1, 64]> x) {
            tensor<fp16, [1, 8]> y = slice_by_size(x = x, begin = [0, 16], size = [1, 8]);
        } -> (y);""",
)
def dynamic_slice(op: Op, ctx: Context):
    """A slice whose begin/end/size is a runtime value, not a constant.

    Dynamic-offset slices (narrow, index_select with a runtime index) were CPU-only on M4 and M1."""
    for arg in ("begin", "end", "size"):
        v = op.input(arg)
        if v is not None and not v.is_const:
            return f"slice {arg} is the runtime value {v.name}"
    return None


def gather(index_dtype: str) -> str:
    """An embedding lookup: a constant (100, 16) table gathered at runtime indices."""
    return f"""
        func main<ios17>(tensor<{index_dtype}, [1, 8]> ids) {{
            tensor<fp16, [100, 16]> table = const()[val = tensor<fp16, [100, 16]>({WEIGHT})];
            tensor<fp16, [1, 8, 16]> y = gather(x = table, indices = ids, axis = 0);
        }} -> (y);"""


@rule(
    "OP-10",
    family="op",
    confidence="M",
    apple_message="Unsupported tensor data type: int32",
    references=[
        m6("plan_iso_cpune.tsv", "(rows gather_dyn, embedding: gather and its index prep CPU only, M4)"),
        pull("pytorch/executorch", 19252, "(ios17.gather among the non-ANE ops of an LLM partition)"),
        file("argus1/Anemll", "tests/dev/MB_GRAPH_ISSUES.md", "('Gather Index Types': uint16 indices run on the ANE)"),
    ],
    fix="Do the embedding lookup outside the model and feed embeddings, or use uint16 indices (Anemll, iOS 18, C).",
    ops=("gather", "gather_along_axis", "gather_nd", "embedding"),
    example=gather("int32"),
    quiet=gather("uint16"),
)
def runtime_index_gather(op: Op, ctx: Context):
    """A gather / embedding lookup whose indices are a runtime integer tensor.

    With runtime int32 indices the gather and its whole index-prep chain (cast, greater_equal,
    add, select) were CPU-only on M4; constant-index gathers stayed eligible."""
    idx = op.input("indices")
    if idx is not None and not idx.is_const and idx.type.dtype not in ("uint16", "fp16"):
        return f"indices {idx.name} are a runtime {idx.type.dtype} tensor"
    return None


@rule(
    "OP-14",
    family="op",
    confidence="R",
    scope="before H14 (A12-A14, M1)",
    when=lambda t: t.chip.tier < 14,
    references=[
        guide("appendices/a-op-device-matrix.md", "(top-k/argsort family-gated from M2/H14)"),
        m6("arch_h16g_h18g.tsv", "(topk_w direct compile fails on h16g, passes on h18g)"),
        pull("roboflow/rf-detr", 1495, "(two-stage topk the only CPU ops of RF-DETR, M3 Pro)"),
    ],
    fix="Do top-k on the host after the model.",
    ops=("topk",),
    example="""
        func main<ios17>(tensor<fp16, [1, 64]> x) {
            tensor<fp16, [1, 5]> v, tensor<int32, [1, 5]> i = topk(x = x, k = 5, axis = -1);
        } -> (v);""",
    quiet="""
        func main<ios17>(tensor<fp16, [1, 64]> x) {
            tensor<fp16, [1, 1]> v = reduce_max(x = x, axes = [-1], keep_dims = true);
        } -> (v);""",
)
def topk_early(op: Op, ctx: Context):
    """top-k before the H14 generation.

    The compiler's HAL gates top-k/argsort code generation to H14 and later."""
    return "top-k needs an H14+ ANE"


def nn_two_inputs(layer: str) -> str:
    """A NeuralNetwork model with one layer over two (1, 8) inputs a and b."""
    return """
        specificationVersion: 4
        description {
          input { name: "a" type { multiArrayType { shape: 1 shape: 8 dataType: FLOAT32 } } }
          input { name: "b" type { multiArrayType { shape: 1 shape: 8 dataType: FLOAT32 } } }
          output { name: "y" type { multiArrayType { shape: 1 shape: 8 dataType: FLOAT32 } } }
        }
        neuralNetwork { layers { name: "l" input: "a" input: "b" output: "y" LAYER } }""".replace("LAYER", layer)


@rule(
    "OP-15",
    family="neuralnetwork",
    confidence="C",
    references=[
        hollance("docs/unsupported-layers.md", "('Some of these are guesses')"),
        hollance("docs/model-surgery.md"),
    ],
    fix="Replace with the Core ML 2 layers (Add, Multiply/Scale, Concat, LoadConstant).",
    example=nn_two_inputs("addBroadcastable {}"),
    quiet=nn_two_inputs("add {}"),
)
def nn_broadcastable_layer(op: Op, ctx: Context):
    """A NeuralNetwork 'broadcastable' or 'ND' layer (AddBroadcastable, ConcatND, LoadConstantND ...).

    Practitioners report these Core ML 3 layers do not run on the ANE where the Core ML 2
    equivalents do."""
    lt = op.layer_type
    if lt and lt.endswith(("Broadcastable", "ND")) and lt not in ("embeddingND",):
        return f"NeuralNetwork layer {lt} is reported not to run on the ANE"
    return None


@rule(
    "OP-16",
    family="neuralnetwork",
    confidence="C",
    references=[
        issue(COREMLTOOLS, 1103, "(NeuralNetwork gather on the CPU, iOS 14)"),
        hollance("docs/unsupported-layers.md"),
    ],
    fix="Move the lookup out of the model or convert to an ML Program (constant-index gathers are eligible there).",
    example="""
        specificationVersion: 4
        description {
          input { name: "table" type { multiArrayType { shape: 10 shape: 8 dataType: FLOAT32 } } }
          input { name: "ids" type { multiArrayType { shape: 3 dataType: FLOAT32 } } }
          output { name: "y" type { multiArrayType { shape: 3 shape: 8 dataType: FLOAT32 } } }
        }
        neuralNetwork { layers { name: "g" input: "table" input: "ids" output: "y" gather { axis: 0 } } }""",
    quiet="""
        func main<ios17>(tensor<fp16, [10, 8]> table) {
            tensor<int32, [3]> ids = const()[val = tensor<int32, [3]>([1, 4, 7])];
            tensor<fp16, [3, 8]> y = gather(x = table, indices = ids, axis = 0);
        } -> (y);""",
)
def nn_gather_layer(op: Op, ctx: Context):
    """A NeuralNetwork gather / gatherAlongAxis layer.

    Reported CPU-only in the iOS 14 era."""
    if op.layer_type in ("gather", "gatherAlongAxis", "gatherND"):
        return f"NeuralNetwork {op.layer_type} layer"
    return None


@rule(
    "OP-17",
    family="neuralnetwork",
    confidence="C",
    references=[issue("antgroup-skyward/ANETools", 1, "(ANE compiler 'to_fallback' for a two-input batched matmul)")],
    fix="Make one operand a constant weight, or convert to an ML Program (matmul with two runtime inputs is eligible "
    "there).",
    example=nn_two_inputs("batchedMatmul {}"),
    quiet=NN_ONE_LAYER.format(layer="batchedMatmul { weightMatrixFirstDimension: 8 weightMatrixSecondDimension: 8 }"),
)
def nn_batched_matmul_two_inputs(op: Op, ctx: Context):
    """A NeuralNetwork batchedMatMul with two runtime inputs.

    The ANE compiler fell back to CPU for it in 2021 reports."""
    if op.layer_type == "batchedMatmul" and len(op.runtime_inputs()) >= 2:
        return "batchedMatMul with two runtime operands"
    return None


EMBEDDING = """
    specificationVersion: 4
    description {
      input { name: "ids" type { multiArrayType { shape: 1 shape: 1 shape: 1 dataType: FLOAT32 } } }
      output { name: "y" type { multiArrayType { shape: 4 shape: 1 shape: 1 dataType: FLOAT32 } } }
    }
    neuralNetwork { layers { name: "e" input: "ids" output: "y" embedding { inputDim: %d outputChannels: 4 } } }"""


@rule(
    "PA-20",
    family="neuralnetwork",
    confidence="C",
    apple_message="Inner product (is_lookup = True) requires nB to be bounded by 32768.",
    references=[notes("(2023-09-30: kernel validation log, M1 Max)")],
    fix="Split the embedding table into chunks of at most 32768 rows.",
    example=EMBEDDING % 40000,
    quiet=EMBEDDING % 32768,
)
def embedding_table_too_large(op: Op, ctx: Context):
    """An embedding lookup (NN embedding / inner product with is_lookup) with more than 32768 rows.

    The ANE runs an embedding as an inner product used as a lookup; its kernel validator bounds
    the table at 32768 rows ('Inner product (is_lookup = True) requires nB to be bounded by
    32768'), so a larger vocabulary keeps the lookup off the ANE."""
    if op.layer_type in ("embedding", "embeddingND"):
        w = op.input("x") if op.type == "gather" else None
        rows = w.type.shape[0] if w is not None and w.type.is_static and w.type.shape else 0
        if rows > 32768:
            return f"embedding table has {rows} rows > 32768"
    return None
