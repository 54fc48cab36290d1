"""Compiled .mlmodelc loader: real compiler outputs (tests/data/mlmodelc) and generated edge cases."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from anedoctor.errors import ModelError
from anedoctor.loaders import load
from anedoctor.loaders.blob import BlobRef
from anedoctor.loaders.mlmodelc import load_mlmodelc

DATA = Path(__file__).parent / "data" / "mlmodelc"


def make_model(tmp_path: Path, mil: str, name: str = "m", **files: bytes | str) -> Path:
    """A .mlmodelc folder holding ``mil`` as model.mil plus extra files (``weights__w_bin`` = weights/w.bin)."""
    folder = tmp_path / f"{name}.mlmodelc"
    folder.mkdir()
    (folder / "model.mil").write_text(mil)
    for key, data in files.items():
        path = folder / key.replace("__", "/").replace("_bin", ".bin").replace("_json", ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return folder


def blob_file(sizes: list[tuple[int, int]]) -> tuple[bytes, list[int]]:
    """Zero-filled MIL blob file: 64-byte header, then per blob a 64-byte record + 64-aligned data.
    ``sizes`` = [(mil_dtype_code, n_bytes)]; returns the bytes and each blob's record offset."""
    out = bytearray(struct.pack("<II", len(sizes), 2).ljust(64, b"\0"))
    offsets = []
    for code, n in sizes:
        offsets.append(len(out))
        out += struct.pack("<IIQQ", 0xDEADBEEF, code, n, len(out) + 64).ljust(64, b"\0")
        out += bytes(math.ceil(n / 64) * 64)
    return bytes(out), offsets


def op_of(graph, op_type):
    return next(op for op in graph.ops if op.type == op_type)


# -- real compiler outputs -----------------------------------------------------------
def test_real_argmax_ios16():
    m = load_mlmodelc(DATA / "fluidaudio_argmax_ios16.mlmodelc")
    assert (m.format, m.deployment_target, m.spec_version) == ("mlmodelc-mlprogram", "ios16", 7)
    assert m.description == "Argmax operation for token prediction"
    (g,) = m.graphs
    assert g.name == "main" and g.opset == "ios16"
    assert [(op.type, op.opset, op.name) for op in g.ops] == [
        ("reduce_argmax", "ios16", "op_4_cast_fp16"),
        ("reduce_max", "ios16", "reduce_max_0_cast_fp16"),
    ]
    (x,) = g.inputs
    assert (x.name, x.type.dtype, x.type.shape) == ("logits", "fp16", (1025,))
    assert [(v.name, str(v.type)) for v in g.outputs] == [("index", "int32[1]"), ("score", "fp16[1]")]
    argmax, rmax = g.ops
    assert argmax.input("x") is x and argmax.param("axis") == -1 and argmax.param("keep_dims") is np.True_
    assert rmax.param("axes").tolist() == [-1] and rmax.param("axes").dtype == np.int32
    assert g.outputs[0].producer is argmax
    (spec,) = g.input_specs
    assert (spec.name, spec.flexibility, spec.default_shape) == ("logits", "fixed", (1025,))


def test_real_flexible_shape_attribute_and_metadata(tmp_path):
    m = load_mlmodelc(DATA / "fluidaudio_transpose_flex_ios16.mlmodelc")
    (g,) = m.graphs
    assert g.inputs[0].type.shape == (1, None, None)
    assert g.ops[0].type == "transpose" and g.ops[0].param("perm").tolist() == [0, 2, 1]
    (spec,) = g.input_specs
    assert (spec.flexibility, spec.default_shape) == ("range", (1, 1, 1))
    # without metadata.json the function's FlexibleShapeInformation attribute gives the same answer
    copy = tmp_path / "t.mlmodelc"
    shutil.copytree(DATA / "fluidaudio_transpose_flex_ios16.mlmodelc", copy)
    (copy / "metadata.json").unlink()
    m2 = load_mlmodelc(copy)
    (spec2,) = m2.graphs[0].input_specs
    assert (spec2.flexibility, spec2.default_shape) == ("range", (1, 1, 1))
    assert m2.spec_version == 0 and any("no metadata.json" in n for n in m2.notes)


def test_real_ios17_blob_weights_and_multi_output_op():
    folder = DATA / "parakeet_joint_decision_ios17.mlmodelc"
    m = load_mlmodelc(folder)
    (g,) = m.graphs
    assert (m.deployment_target, m.spec_version, len(g.ops)) == ("ios17", 8, 21)
    linear = next(op for op in g.ops if op.name == "linear_0_cast_fp16")
    w, b = linear.input("weight"), linear.input("bias")
    assert w.is_const and isinstance(w.const, BlobRef) and not w.producer
    assert w.const == BlobRef((folder / "weights" / "weight.bin").resolve(), 64, "fp16", (640, 512))
    assert (b.const.offset, b.const.shape, w.type.nbytes) == (655488, (640,), 640 * 512 * 2)
    topk = op_of(g, "topk")
    assert [(v.name, str(v.type)) for v in topk.outputs] == [
        ("var_63_cast_fp16_cast_int16_0", "fp16[1,1,1,64]"),
        ("var_63_cast_fp16_cast_int16_1", "uint16[1,1,1,64]"),
    ]
    assert topk.param("k") == 64 and topk.param("output_indices_dtype") == "uint16"
    assert [v.name for v in g.outputs] == ["token_id", "token_prob", "top_k_ids", "top_k_logits"]
    assert {op.opset for op in g.ops} == {"ios17"}
    assert any("weight files missing" in n and "weights/weight.bin" in n for n in m.notes)
    assert m.weights_bytes == 0


def test_real_palettized_constexpr_ops_match_histogram():
    folder = DATA / "silero_vad_palette4_ios16.mlmodelc"
    m = load_mlmodelc(folder)
    (g,) = m.graphs
    histogram = json.loads((folder / "metadata.json").read_text())[0]["mlProgramOperationTypeHistogram"]
    assert len(g.ops) == sum(histogram.values()) == 55
    assert not any("counts" in n for n in m.notes)
    luts = [op for op in g.ops if op.type == "constexpr_lut_to_dense"]
    assert len(luts) == histogram["Ios16.constexprLutToDense"] == 7
    first = luts[0]
    assert first.name == "stft_forward_basis_to_fp16_palettized"
    assert first.attrs["indices"] == BlobRef((folder / "weights/weight.bin").resolve(), 64, "uint8", (33024,))
    assert (first.attrs["lut"].offset, first.attrs["lut"].dtype, first.attrs["lut"].shape) == (33152, "fp16", (16,))
    assert first.param("shape").tolist() == [258, 1, 256] and first.param("shape").dtype == np.uint32
    assert str(first.outputs[0].type) == "fp16[258,1,256]"
    lstm = op_of(g, "lstm")
    assert len(lstm.outputs) == 3 and lstm.param("direction") == "forward"


def test_real_espresso_neuralnetwork():
    m = load_mlmodelc(DATA / "chiron_parkinson_wave_nn.mlmodelc")
    assert (m.format, m.spec_version, m.deployment_target) == ("mlmodelc-neuralnetwork", 4, "ios13")
    (g,) = m.graphs
    assert len(g.ops) == 14
    assert [op.layer_type for op in g.ops[:4]] == ["transpose", "convolution", "pool", "convolution"]
    assert [op.type for op in g.ops[:4]] == ["transpose", "conv", "max_pool", "conv"]  # MIL equivalents for rules
    conv = g.ops[1]
    assert conv.name == "sequential/conv1/BiasAdd" and conv.attrs["Nx"] == 5 and conv.attrs["C"] == 128
    assert conv.input("weight").type.shape == (128, 1, 5, 5) and conv.param("groups") == 1
    with pytest.raises(ModelError, match="model.espresso.weights"):
        conv.input("weight").data()  # shape known, bytes not read
    assert g.ops[2].param("kernel_sizes") == [9, 9]
    assert conv.input("x") is g.ops[0].outputs[0]
    assert conv.outputs[0].type.shape == (1, 128, 128, 128)  # n, k, h, w
    assert op_of(g, "linear").outputs[0].type.shape == (1, 64)  # _rank 2
    ((x,), (y,)) = g.inputs, g.outputs
    assert (x.name, x.type.shape, y.name, y.type.shape) == ("input_1", (1, 128, 128, 1), "Identity", (1, 2))
    (spec,) = g.input_specs
    assert (spec.flexibility, spec.default_shape) == ("unbounded", (1, 128, 128, 1))  # batch 1...-1
    assert any("model.espresso.shape" in n and "not read" in n for n in m.notes)


def test_dispatch_through_load():
    m = load(DATA / "fluidaudio_argmax_ios16.mlmodelc")
    assert m.format == "mlmodelc-mlprogram" and len(m.ops) == 2


def test_loading_never_modifies_the_folder():
    def snapshot():
        return {
            p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in DATA.rglob("*")
            if p.is_file()
        }

    before = snapshot()
    for folder in DATA.glob("*.mlmodelc"):
        load_mlmodelc(folder)
    assert snapshot() == before


# -- the iOS18 dialect (lines as coremltools' tests assert them in compiler output) -------
IOS18 = """program(1.3)
[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]
{
    func main<ios18>(tensor<fp16, [1, 8, ?, is0]> x, state<tensor<fp16, [1, 8]>> kv) {
            string pt = const()[name = string("pt"), val = string("valid")];
            tensor<int32, [2]> st = const()[name = string("st"), val = tensor<int32, [2]>([1, 1])];
            int32 gr = const()[name = string("gr"), val = int32(1)];
            fp16 eps = const()[name = string("eps"), val = fp16(0x1p-24)];
            tensor<fp16, [16, 8, 1, 1]> w = const()[name = string("w"), val = tensor<fp16, [16, 8, 1, 1]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(W)))];
            tensor<fp16, [16, 8]> wq = constexpr_blockwise_shift_scale(data = tensor<int4, [16, 8]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(D))), scale = tensor<fp16, [16, 1]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(S))))[name = string("wq")];
            tensor<fp16, [1, 16, ?, is0]> y = ios17.conv(groups = gr, pad_type = pt, strides = st, weight = w, x = x)[name = string("conv_0")];
            tensor<fp16, [1, 8]> cache = read_state(input = kv)[name = string("read_0")];
            write_state(data = cache, input = kv)[name = string("write_0")];
            int32 axis = const()[name = string("axis"), val = int32(1)];
            (tensor<fp16, [1, 8, ?, is0]> a, tensor<fp16, [1, 8, ?, is0]> b) = split(axis = axis, num_splits = int32(2), x = y)[name = string("split_0")];
            tensor<fp16, [1, 16, ?, is0]> z = concat(axis = axis, interleave = bool(false), values = (a, b))[name = string("concat_0")];
            tensor<fp16, [1, 16, ?, is0]> out = add(x = z, y = eps)[name = string("add_0")];
        } -> (out);
    func main_2<ios18>(tensor<fp32, [1, 8]> x) {
            tensor<fp32, [1, 8]> r = clip(alpha = fp32(-inf), beta = fp32(0x1.8p+1), x = x)[name = string("clip_0")];
        } -> (r);
}
"""


def ios18_model(tmp_path: Path, **extra) -> Path:
    blob, (w, d, s) = blob_file([(1, 16 * 8 * 2), (8, 16 * 8 // 2), (1, 16 * 2)])
    mil = (
        IOS18.replace("uint64(W)", f"uint64({w})")
        .replace("uint64(D)", f"uint64({d})")
        .replace("uint64(S)", f"uint64({s})")
    )
    return make_model(tmp_path, mil, weights__weight_bin=blob, **extra)


def test_ios18_dialect_functions_states_and_ops(tmp_path):
    folder = ios18_model(tmp_path)
    m = load_mlmodelc(folder)
    assert [g.name for g in m.graphs] == ["main", "main_2"] and m.deployment_target == "ios18"
    assert m.functions == ["main", "main_2"] and m.prediction_graphs() == m.graphs[:1]  # a prediction runs one
    g = m.graphs[0]
    x, kv = g.inputs
    assert (x.type.dtype, x.type.shape, x.type.is_static) == ("fp16", (1, 8, None, None), False)
    assert (kv.type.kind, kv.type.shape) == ("state", (1, 8)) and g.states == [kv]
    assert [(op.type, op.opset) for op in g.ops] == [
        ("constexpr_blockwise_shift_scale", "ios18"),
        ("conv", "ios17"),
        ("read_state", "ios18"),
        ("write_state", "ios18"),
        ("split", "ios18"),
        ("concat", "ios18"),
        ("add", "ios18"),
    ]
    conv = op_of(g, "conv")
    assert conv.name == "conv_0" and conv.param("pad_type") == "valid" and conv.param("groups") == 1
    assert conv.param("strides").tolist() == [1, 1] and conv.input("x") is x
    weight = conv.input("weight")
    assert weight.const == BlobRef((folder / "weights" / "weight.bin").resolve(), 64, "fp16", (16, 8, 1, 1))
    loaded = weight.data()  # read through anedoctor.loaders.blob from the synthesized file
    assert loaded.shape == (16, 8, 1, 1) and loaded.dtype == np.float16 and not loaded.any()
    wq = op_of(g, "constexpr_blockwise_shift_scale")
    data, scale = wq.input("data"), wq.input("scale")
    assert (data.name, data.const.dtype, data.const.shape, data.const.offset) == ("<immediate>", "int4", (16, 8), 384)
    assert (scale.const.dtype, scale.const.shape, scale.const.offset) == ("fp16", (16, 1), 512)
    assert data.data().shape == (16, 8)
    split, concat, add = g.ops[4:]
    assert [v.name for v in split.outputs] == ["a", "b"] and split.param("num_splits") == 2
    assert concat.inputs["values"] == split.outputs and concat.param("interleave") is np.False_
    assert op_of(g, "write_state").outputs == [] and op_of(g, "read_state").input("input") is kv
    assert add.param("y") == np.float16(2**-24) and g.outputs == add.outputs
    clip = m.graphs[1].ops[0]
    assert clip.param("alpha") == -np.inf and clip.param("beta") == 3.0
    assert any("coremlc 3505.4.1" in n for n in m.notes) and not any("missing" in n for n in m.notes)
    assert m.weights_bytes == (folder / "weights" / "weight.bin").stat().st_size


def test_default_function_enumerated_shapes_and_histogram_check(tmp_path):
    meta = [
        {
            "specificationVersion": 9,
            "defaultFunctionName": "main_2",
            "isUpdatable": "0",
            "inputSchema": [
                {"name": "x", "shape": "[1, 8]", "enumeratedShapes": "[[1, 8], [2, 8]]", "type": "MultiArray"}
            ],
        }
    ]
    m = load_mlmodelc(ios18_model(tmp_path, metadata_json=json.dumps(meta)))
    assert [g.name for g in m.graphs] == ["main_2", "main"] and m.spec_version == 9
    (spec,) = m.graphs[0].input_specs
    assert (spec.flexibility, spec.enumerated_shapes, spec.default_shape) == ("enumerated", [(1, 8), (2, 8)], (1, 8))
    assert m.graphs[1].input_specs == [] and not any("counts" in n for n in m.notes)
    meta[0]["mlProgramOperationTypeHistogram"] = {"Ios18.add": 3}
    (tmp_path / "b").mkdir()
    m2 = load_mlmodelc(ios18_model(tmp_path / "b", metadata_json=json.dumps(meta)))
    assert "metadata.json counts 3 ops but model.mil has 8" in m2.notes


# -- control flow ------------------------------------------------------------------
NESTED = """program(1.0)
[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremlc-version", "3500.32.1"}})]
{
    func main<ios16>(tensor<fp32, [1]> x, tensor<bool, []> p) {
            tensor<fp32, [1]> one = const()[name = tensor<string, []>("one"), val = tensor<fp32, [1]>([0x1p+0])];
            tensor<fp32, [1]> c = cond(pred = p)[name = tensor<string, []>("cond_0")] {
                block0() {
                    tensor<fp32, [1]> a = add(x = x, y = one)[name = tensor<string, []>("a")];
                } -> (a);
                block1() {
                    tensor<fp32, [1]> b = sub(x = x, y = one)[name = tensor<string, []>("b")];
                } -> (b);
            };
            tensor<int32, []> i0 = const()[name = tensor<string, []>("i0"), val = tensor<int32, []>(0)];
            tensor<int32, []> n, tensor<fp32, [1]> acc = while_loop(loop_vars = (i0, c))[name = tensor<string, []>("loop_0")] {
                block0(tensor<int32, []> i, tensor<fp32, [1]> v) {
                    tensor<int32, []> lim = const()[name = tensor<string, []>("lim"), val = tensor<int32, []>(3)];
                    tensor<bool, []> go = less(x = i, y = lim)[name = tensor<string, []>("go")];
                } -> (go);
                block1(tensor<int32, []> i_1, tensor<fp32, [1]> v_1) {
                    tensor<int32, []> i_2 = add(x = i_1, y = tensor<int32, []>(1))[name = tensor<string, []>("inc")];
                    tensor<fp32, [1]> v_2 = cond(pred = p)[name = tensor<string, []>("inner")]
                        block0() { tensor<fp32, [1]> m = mul(x = v_1, y = one)[name = tensor<string, []>("m")]; } -> (m)
                        block1() {} -> (v_1);
                } -> (i_2, v_2);
            };
        } -> (acc);
}
"""


def test_nested_cond_and_while_loop_blocks(tmp_path):
    (g,) = load_mlmodelc(make_model(tmp_path, NESTED)).graphs
    cond, loop = g.ops
    assert (cond.type, loop.type, g.outputs) == ("cond", "while_loop", [loop.outputs[1]])
    then, other = cond.blocks
    assert [op.type for op in then.ops] == ["add"] and then.outputs == then.ops[0].outputs
    assert [op.name for op in other.ops] == ["b"] and other.ops[0].input("x") is g.inputs[0]
    i0, c = loop.inputs["loop_vars"]
    assert i0.const == 0 and c is cond.outputs[0]
    test, body = loop.blocks
    assert [v.name for v in test.inputs] == ["i", "v"] and [v.name for v in test.outputs] == ["go"]
    assert test.ops[0].input("y").const == 3  # a const defined inside the block
    inc, inner = body.ops
    assert inc.input("y").name == "<immediate>" and inc.input("y").const == 1
    assert [len(b.ops) for b in inner.blocks] == [1, 0] and inner.blocks[1].outputs == [body.inputs[1]]
    assert inner.blocks[0].ops[0].input("y").const.tolist() == [1.0]
    assert [v.name for v in body.outputs] == ["i_2", "v_2"]


@pytest.mark.parametrize(
    "blocks",
    [
        "{ block0() { T a = relu(x = x)[name = S]; } -> (a); block1() {} -> (x); }",  # wrapped
        "block0() { T a = relu(x = x)[name = S]; } -> (a) block1() {} -> (x)",  # unwrapped, named
        "() { T a = relu(x = x)[name = S]; } -> (a) () {} -> (x)",  # unwrapped, unnamed
        "{ T a = relu(x = x)[name = S]; } -> (a) {} -> (x)",  # bare bodies
    ],
)
def test_block_spellings(tmp_path, blocks):
    body = blocks.replace("T ", "tensor<fp32, [1]> ").replace("S", 'string("r")')
    mil = (
        "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [1]> x, bool p) {\n"
        f'            tensor<fp32, [1]> c = cond(pred = p)[name = string("c")] {body};\n'
        "        } -> (c);\n}\n"
    )
    (cond,) = load_mlmodelc(make_model(tmp_path, mil)).graphs[0].ops
    then, other = cond.blocks
    assert [op.type for op in then.ops] == ["relu"] and then.outputs == then.ops[0].outputs
    assert other.ops == [] and [v.name for v in other.outputs] == ["x"]


def test_block_values_are_not_visible_outside(tmp_path):
    bad = NESTED.replace("} -> (acc);", "} -> (a);")
    with pytest.raises(
        ModelError, match=r"model\.mil:\d+:\d+: malformed MIL text: value 'a' is used before it is defined"
    ):
        load_mlmodelc(make_model(tmp_path, bad))


# -- errors --------------------------------------------------------------------------
SMALL = """program(1.0)
{
    func main<ios16>(tensor<fp32, [1]> x) {
            tensor<fp32, [1]> y = relu(x = x)[name = tensor<string, []>("r")]
        } -> (y);
}
"""


def test_malformed_text_reports_line_and_column(tmp_path):
    folder = make_model(tmp_path, SMALL)
    with pytest.raises(ModelError) as e:
        load_mlmodelc(folder)
    assert str(e.value) == f"{folder / 'model.mil'}:5:9: malformed MIL text: expected ';', found '}}'"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the program has no functions|expected '{'"),
        (SMALL.replace('("r")]', '("r")];')[:-40], "expected"),  # truncated
        (SMALL.replace("tensor<fp32, [1]> y", "tensor<fp32, [1> y").replace('("r")]', '("r")];'), "expected"),
        (
            SMALL.replace("relu(x = x)", "relu(x = q)").replace('("r")]', '("r")];'),
            "value 'q' is used before it is defined",
        ),
        ("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 12\n", "Git LFS pointer"),
    ],
)
def test_bad_mil_text_raises_model_error(tmp_path, text, message):
    folder = make_model(tmp_path, text)
    with pytest.raises(ModelError, match=message) as e:
        load_mlmodelc(folder)
    assert str(folder / "model.mil") in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "weight_path", ["@model_path/../../secret.bin", "/etc/passwd", "@model_path/weights/../../x.bin"]
)
def test_weight_path_escaping_the_folder_is_refused(tmp_path, weight_path):
    mil = IOS18.replace(
        '"@model_path/weights/weight.bin"), offset = uint64(W)', f'"{weight_path}"), offset = uint64(64)'
    )
    folder = make_model(tmp_path, mil.replace("uint64(D)", "uint64(64)").replace("uint64(S)", "uint64(64)"))
    with pytest.raises(ModelError, match="points outside the model folder") as e:
        load_mlmodelc(folder)
    assert str(folder / "model.mil") in str(e.value) and weight_path in str(e.value)


def test_symlinked_weights_escaping_the_folder_are_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\0" * 64)
    folder = make_model(
        tmp_path,
        IOS18.replace("uint64(W)", "uint64(64)").replace("uint64(D)", "uint64(64)").replace("uint64(S)", "uint64(64)"),
    )
    (folder / "weights").mkdir()
    (folder / "weights" / "weight.bin").symlink_to(outside)
    with pytest.raises(ModelError, match="points outside the model folder"):
        load_mlmodelc(folder)


def test_folder_errors(tmp_path):
    (tmp_path / "empty.mlmodelc").mkdir()
    with pytest.raises(ModelError, match="the folder is empty"):
        load_mlmodelc(tmp_path / "empty.mlmodelc")
    with pytest.raises(ModelError, match="not a folder"):
        load_mlmodelc(tmp_path / "missing.mlmodelc")
    other = tmp_path / "other.mlmodelc"
    other.mkdir()
    (other / "notes.txt").write_text("hi")
    with pytest.raises(ModelError, match=r"other\.mlmodelc: not a compiled Core ML model \(no model\.mil"):
        load_mlmodelc(other)


def test_binary_only_folders_give_zero_graphs_and_a_note(tmp_path):
    nn = tmp_path / "nn.mlmodelc"
    shutil.copytree(DATA / "chiron_parkinson_wave_nn.mlmodelc", nn)
    (nn / "model.espresso.net").write_bytes(b"\x00\x01binary espresso\xff")
    m = load_mlmodelc(nn)
    assert m.graphs == [] and m.format == "mlmodelc-neuralnetwork"
    assert any("model.espresso.net is not JSON" in n for n in m.notes)
    tree = tmp_path / "tree.mlmodelc"
    tree.mkdir()
    (tree / "coremldata.bin").write_bytes(b"\x00\x02")
    (tree / "metadata.json").write_text(json.dumps([{"modelType": {"name": "MLModelType_treeEnsembleClassifier"}}]))
    m = load_mlmodelc(tree)
    assert m.graphs == [] and any("coremldata.bin" in n and "treeEnsembleClassifier" in n for n in m.notes)


def test_pipeline_sub_models(tmp_path):
    pipe = tmp_path / "pipe.mlmodelc"
    shutil.copytree(DATA / "fluidaudio_argmax_ios16.mlmodelc", pipe / "model0")
    shutil.copytree(DATA / "chiron_parkinson_wave_nn.mlmodelc", pipe / "model1")
    (pipe / "coremldata.bin").write_bytes(b"\x00")
    m = load_mlmodelc(pipe)
    assert [g.name for g in m.graphs] == ["model0:main", "model1:main"] and m.format == "mlmodelc-mlprogram"
    assert m.pipeline and m.functions == [] and m.prediction_graphs() == m.graphs  # the stages run one after another
    assert [len(g.ops) for g in m.graphs] == [2, 14]
    assert any(n == "pipeline of 2 compiled sub-models: model0, model1" for n in m.notes)
    assert any(n.startswith("model1/layers from model.espresso.net") for n in m.notes)


STAGE = """program(1.0)
[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremlc-version", "1436.100.10"}})]
{
    func main<ios16>(tensor<fp32, [1, 4]> IN) {
            BODY
        } -> (OUT);
}
"""


def test_a_compiled_pipeline_runs_every_stage(tmp_path):
    """model0 (relu) feeds model1 (x 2): a run returns model1's output; it used to stop after model0."""
    import anedoctor

    relu = 'tensor<fp32, [1, 4]> y = relu(x = x)[name = tensor<string, []>("y")];'
    double = (
        'tensor<fp32, []> two = const()[name = tensor<string, []>("two"), val = tensor<fp32, []>(0x1p+1)];\n'
        '            tensor<fp32, [1, 4]> z = mul(x = y, y = two)[name = tensor<string, []>("z")];'
    )
    pipe = tmp_path / "pipe.mlmodelc"
    for unit, (inp, body, out) in enumerate([("x", relu, "y"), ("y", double, "z")]):
        (pipe / f"model{unit}").mkdir(parents=True)
        text = STAGE.replace("IN", inp).replace("BODY", body).replace("OUT", out)
        (pipe / f"model{unit}" / "model.mil").write_text(text)
    (pipe / "coremldata.bin").write_bytes(b"\x00")
    result = anedoctor.run(pipe, {"x": np.array([[-1, 2, -3, 4]], np.float32)})
    assert list(result.outputs) == ["z"] and result.outputs["z"].tolist() == [[0, 4, 0, 8]]


# -- speed ---------------------------------------------------------------------------
def chain(n: int) -> str:
    """An n-op ML Program (conv with a blob weight / add with a scalar const / relu), iOS18 dialect."""
    lines = [
        "program(1.3)",
        '[buildInfo = dict<string, string>({{"coremlc-version", "3505.4.1"}})]',
        "{",
        "    func main<ios18>(tensor<fp16, [1, 8, 1, 16]> x) {",
        '            string pt = const()[name = string("pt"), val = string("valid")];',
        '            tensor<int32, [2]> st = const()[name = string("st"), val = tensor<int32, [2]>([1, 1])];',
        '            int32 gr = const()[name = string("gr"), val = int32(1)];',
    ]
    prev = "x"
    for i in range(n):
        if i % 3 == 0:
            lines.append(
                f'            tensor<fp16, [8, 8, 1, 1]> w_{i} = const()[name = string("w_{i}"), val = tensor<fp16, [8, 8, 1, 1]>'
                f'(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64({64 + 192 * i})))];'
            )
            op = (
                f'conv(groups = gr, pad_type = pt, strides = st, weight = w_{i}, x = {prev})[name = string("conv_{i}")]'
            )
        elif i % 3 == 1:
            lines.append(f'            fp16 c_{i} = const()[name = string("c_{i}"), val = fp16(0x1.8p+1)];')
            op = f'add(x = {prev}, y = c_{i})[name = string("add_{i}")]'
        else:
            op = f'relu(x = {prev})[name = string("relu_{i}")]'
        lines.append(f"            tensor<fp16, [1, 8, 1, 16]> x_{i} = {op};")
        prev = f"x_{i}"
    return "\n".join(lines + [f"        }} -> ({prev});", "}", ""])


def test_10k_op_program_parses_fast(tmp_path):
    folder = make_model(tmp_path, chain(10_000))
    start = time.process_time()  # CPU time: other processes on a shared runner do not count
    m = load_mlmodelc(folder)
    elapsed = time.process_time() - start
    (g,) = m.graphs
    assert len(g.ops) == 10_000 and [op.type for op in g.ops[:3]] == ["conv", "add", "relu"]
    assert all(op.input("x") is prev.outputs[0] for prev, op in zip(g.ops, g.ops[1:]))
    assert g.ops[9999].input("weight").const.offset == 64 + 192 * 9999
    assert elapsed < 1.5, f"parsing 10k ops took {elapsed:.2f}s"
