"""Core AI .aimodel: loading through coreai-core's bindings, source locations, rules, execution.

Every model is converted from a torch module with coreai-torch inside the test run (nothing is
checked in that could go stale)."""

from __future__ import annotations

import copy
import inspect
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "coreai_torch",
    reason="coreai-core / coreai-torch are not installed (pip install --pre "
    "'anedoctor[coreai]'; wheels exist for Linux x86_64 and macOS arm64 only)",
)
import torch
import torch.nn.functional as F

import anedoctor
from anedoctor.errors import ModelError
from anedoctor.ir import LazyConst
from anedoctor.loaders import coreai, coreai_tools


class Net(torch.nn.Module):
    """conv -> dilated conv (3x3, dilation 8) -> resize -> pool -> layer norm -> linear -> softmax."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dil = torch.nn.Conv2d(8, 8, 3, padding=8, dilation=8)
        self.ln = torch.nn.LayerNorm(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = self.dil(y)
        y = F.avg_pool2d(F.interpolate(y, scale_factor=2, mode="bilinear"), 2)
        y = self.ln(y.mean(dim=(2, 3)))
        return torch.softmax(F.gelu(self.fc(y)), -1)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(16, 2, batch_first=True)
        self.norm = torch.nn.GroupNorm(2, 4)

    def forward(self, tokens, image):
        a, _ = self.attn(tokens, tokens, tokens)
        z = F.scaled_dot_product_attention(a[:, None], a[:, None], a[:, None])
        y = F.interpolate(F.max_pool2d(self.norm(image), 2), scale_factor=2, mode="nearest")
        return torch.cat([y, y * 2], 1)[:, 1:6].sum((1, 2, 3)) + F.silu(z).mean()


def line_of(fn, text: str) -> int:
    """The file line of the first source line of ``fn`` containing ``text``."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return Net().eval(), torch.randn(1, 3, 16, 16)


@pytest.fixture(scope="module")
def converted(net, tmp_path_factory):
    module, x = net
    return coreai_tools.convert_module(module, x, tmp_path_factory.mktemp("coreai"))


@pytest.fixture(scope="module")
def model(converted):
    return coreai.load_aimodel(*converted)


def op_of(model, fragment):
    return next(op for op in model.ops if fragment in op.name)


def test_ops_map_to_the_ml_program_vocabulary(model):
    types = [op.type for op in model.ops]
    assert not [t for t in types if t.startswith("coreai.")], types
    for t in ("conv", "relu", "resize_bilinear", "avg_pool", "reduce_mean", "layer_norm", "matmul", "gelu", "softmax"):
        assert t in types
    assert types.count("conv") == 2 and types.count("pad") == 2  # Core AI pads explicitly before each conv
    graph = model.graphs[0]
    assert [(v.name, v.type.dtype, v.type.shape) for v in graph.inputs] == [("input_0", "fp32", (1, 3, 16, 16))]
    assert graph.outputs[0].type.shape == (1, 4) and model.format == "coreai" and model.deployment_target == "ios27"


def test_dilated_conv_parameters_and_lazy_weight(model, net):
    conv = [op for op in model.ops if op.type == "conv"][1]
    assert list(conv.param("dilations")) == [8, 8] and list(conv.param("strides")) == [1, 1]
    assert conv.input("x").type.shape == (1, 8, 32, 32) and conv.outputs[0].type.shape == (1, 8, 16, 16)
    weight = conv.input("weight")
    assert isinstance(weight.const, LazyConst)  # read from main.mlirb only when asked
    np.testing.assert_array_equal(weight.data(), net[0].dil.weight.detach().numpy())


def test_every_op_carries_its_torch_source_location(model):
    dilated = [op for op in model.ops if op.type == "conv"][1].source
    assert (Path(dilated.file).name, dilated.line, dilated.module_path) == (
        Path(__file__).name,
        line_of(Net.forward, "self.dil(y)"),
        "dil",
    )
    assert str(dilated) == f"{Path(__file__).name}:{dilated.line} (dil)"
    norm = op_of(model, "layer_norm").source
    assert (norm.line, norm.module_path) == (line_of(Net.forward, "self.ln("), "ln")
    assert op_of(model, "softmax").source.module_path == ""  # called in Net.forward itself
    assert all(op.source.file == __file__ for op in model.ops)


def test_file_alone_names_modules_as_core_ai_does(converted):
    plain = coreai.load_aimodel(converted[0])
    assert [op for op in plain.ops if op.type == "conv"][1].source.module_path == "Conv2d$2"


def test_reference_executor_matches_torch_and_core_ai_runtime(model, net):
    module, x = net
    expected = module(x).detach().numpy()
    result = anedoctor.run(model, {"input_0": x.numpy()})
    (out,) = result.outputs.values()
    assert np.abs(out - expected).max() <= 1e-4
    check = coreai_tools.compare_with_coreai(model, result)
    assert check.coreai.keys() == check.reference.keys() and max(check.max_abs_diff.values()) <= 1e-4
    assert np.abs(next(iter(check.coreai.values())) - expected).max() <= 1e-4


def test_dilated_conv_flagged_pa11_in_core_ai_and_core_ml(model, net):
    module, x = net
    for report in (anedoctor.check(model), anedoctor.check(module, example_inputs=x)):
        convs = [p for p in report.placements if p.op.type == "conv"]
        flagged = [p for p in convs if "PA-11" in {f.rule.id for f in p.findings}]
        assert len(convs) == 2 and len(flagged) == 1, report.model.format
        assert list(flagged[0].op.param("dilations")) == [8, 8]


def test_attention_norm_pool_and_resize_composites(tmp_path):
    torch.manual_seed(1)
    module, args = Block().eval(), (torch.randn(1, 3, 16), torch.randn(1, 4, 8, 8))
    model = coreai.load_aimodel(*coreai_tools.convert_module(module, args, tmp_path))
    types = {op.type for op in model.ops}
    assert {"scaled_dot_product_attention", "max_pool", "resize_nearest_neighbor", "concat", "slice_by_index"} <= types
    assert not [t for t in types if t.startswith("coreai.")]
    inlined = [op for op in model.ops if ".group_norm." in op.name]  # no ML Program group_norm: body inlined
    assert inlined and all(op.source.module_path == "norm" for op in inlined)
    expected = module(*args).detach().numpy()
    out = anedoctor.run(model, {"input_0": args[0].numpy(), "input_1": args[1].numpy()}).outputs
    assert np.abs(next(iter(out.values())) - expected).max() <= 1e-4


def test_check_and_run_dispatch_aimodel_paths_and_via_coreai(converted, net):
    module, x = net
    from_path = anedoctor.check(converted[0])
    assert from_path.model.format == "coreai" and from_path.model.path == str(converted[0])
    run = anedoctor.run(converted[0], {"input_0": x.numpy()})
    assert np.abs(next(iter(run.outputs.values())) - module(x).detach().numpy()).max() <= 1e-4
    half = anedoctor.check(copy.deepcopy(module).half(), example_inputs=x.half(), via="coreai")
    assert half.model.format == "coreai" and sorted(p.op.type for p in half.placements) == sorted(
        p.op.type for p in from_path.placements
    )  # the same ops (fp16 schedules the weight transpose earlier)
    convs = [p for p in half.placements if p.op.type == "conv"]  # fp16: only the dilated conv misses the ANE
    assert [p.supported["ane"] for p in convs] == [True, False]
    assert "PA-11" in {f.rule.id for f in convs[1].findings}
    assert convs[1].op.source.module_path == "dil"
    with pytest.raises(ModelError, match="unknown converter"):
        anedoctor.load(module, x, via="onnx")


def test_adaptive_average_pool_runs_as_a_window_sum(tmp_path):
    """coreai-torch lowers adaptive_avg_pool2d to a size > 1 as sum_pool_2d and a division: both run, as torch does."""

    class Adaptive(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x, 4)

    x = torch.randn(1, 8, 16, 16)
    model = coreai.load_aimodel(*coreai_tools.convert_module(Adaptive().eval(), x, tmp_path))
    (pool,) = [op for op in model.ops if op.type == "coreai.sum_pool_2d"]
    assert list(pool.inputs)[:2] == ["x", "kernel_sizes"] and pool.outputs[0].type.shape == (1, 8, 4, 4)
    out = next(iter(anedoctor.run(model, {"input_0": x.numpy()}).outputs.values()))
    assert np.abs(out - torch.nn.functional.adaptive_avg_pool2d(x, 4).numpy()).max() <= 1e-5


def test_unknown_ops_keep_their_core_ai_name(tmp_path):
    from coreai._compiler import ir
    from coreai.authoring.asset import AIProgram
    from coreai.authoring.context import Context

    text = """module {
      coreai.graph @main(%x: tensor<1x3xf32> {coreai.name = "x"}) -> (tensor<2x3xf32> {coreai.name = "y"}) {
        %s = coreai.constant dense<[2, 3]> : tensor<2xui32>
        %b = coreai.broadcast_to %x, %s : (tensor<1x3xf32>, tensor<2xui32>) -> tensor<2x3xf32>
        %r = coreai.relu %b : (tensor<2x3xf32>) -> tensor<2x3xf32>
        coreai.output %r : tensor<2x3xf32>
      }
    }"""
    with Context()._mlir_context, ir.Location.unknown():  # a hand-written program: no torch source locations
        AIProgram._from_mlir_module(ir.Module.parse(text)).save_asset(tmp_path / "text.aimodel")
    model = coreai.load_aimodel(tmp_path / "text.aimodel")
    (unknown, relu) = model.ops
    assert (unknown.type, list(unknown.inputs), unknown.outputs[0].type.shape) == (
        "coreai.broadcast_to",
        ["operand_0", "operand_1"],
        (2, 3),
    )
    assert relu.type == "relu" and relu.input("x") is unknown.outputs[0] and model.graphs[0].outputs[0].name == "y"
    assert relu.source is None and any("coreai.broadcast_to" in n for n in model.notes)
    assert "coreai.broadcast_to" in {p.op.type for p in anedoctor.check(model).placements}
    with pytest.raises(ModelError, match="coreai.broadcast_to"):
        anedoctor.run(model)


def test_bad_inputs_fail_with_one_line(converted, tmp_path, monkeypatch):
    path = converted[0]
    with pytest.raises(ModelError, match="main.mlirb"):
        coreai.load_aimodel(tmp_path)
    broken = tmp_path / "broken.aimodel"
    shutil.copytree(path, broken)
    data = (broken / "main.mlirb").read_bytes()
    (broken / "main.mlirb").write_bytes(data[: len(data) // 2])  # the bindings alone would abort the process
    with pytest.raises(ModelError, match="not a readable Core AI program") as e:
        coreai.load_aimodel(broken)
    assert "\n" not in str(e.value)
    (broken / "main.mlirb").write_bytes(data)
    (broken / "main.hash").write_bytes(b"\0" * 32)
    assert any("main.hash" in note for note in coreai.load_aimodel(broken).notes)
    coreai.bindings.cache_clear()
    monkeypatch.setattr(coreai.importlib.metadata, "version", lambda name: "2.0.0")
    try:
        with pytest.raises(ModelError, match="coreai-core 2.0.0 is installed"):
            coreai.load_aimodel(path)
    finally:
        coreai.bindings.cache_clear()


class Branchy(torch.nn.Module):
    """torch.cond on the input's sign, then a torch while_loop that doubles three times."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = torch.cond(x.sum() > 0, lambda x: self.conv(x).relu(), lambda x: x * 2, (x,))
        i = torch.zeros((), dtype=torch.int64)
        return torch._higher_order_ops.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 2 + 1), (i, y))[1]


def test_control_flow_bodies_are_read_into_nested_blocks(tmp_path):
    torch.manual_seed(4)
    module = Branchy().eval()
    model = coreai.load_aimodel(*coreai_tools.convert_module(module, torch.randn(1, 4, 8, 8), tmp_path))
    by_type = {op.type: op for op in model.ops}
    cond, loop = by_type["cond"], by_type["while_loop"]
    assert [[op.type for op in b.ops] for b in cond.blocks] == [["conv", "add", "relu"], ["mul"]]
    assert [len(b.inputs) for b in loop.blocks] == [2, 2] and len(loop.blocks[0].outputs) == 1
    assert [op.type for op in loop.blocks[1].ops] == ["add", "mul", "add"]
    conv = cond.blocks[0].ops[0]
    assert conv.input("x").name == "input_0"  # a branch reads the outer scope directly
    assert (conv.source.file, conv.source.line) == (__file__, line_of(Branchy.forward, "torch.cond"))
    for sign in (1.0, -1.0):  # both branches, against torch and Core AI's runtime
        x = torch.rand(1, 4, 8, 8) * sign
        result = anedoctor.run(model, {"input_0": x.numpy()})
        assert np.abs(next(iter(result.outputs.values())) - module(x).detach().numpy()).max() <= 1e-4
        assert max(coreai_tools.compare_with_coreai(model, result).max_abs_diff.values()) <= 1e-4
    placements = {p.op.type: p for p in anedoctor.check(model).placements}
    assert "OP-8" in {f.rule.id for f in placements["cond"].findings}


class Compressed(torch.nn.Module):
    """An int8 per-channel conv weight (coreai::dequantize) and a 4-bit palettized one (coreai::lut_to_dense);
    coreai-torch finds the LUT's buffers by their names 'indices' and 'lut'."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.register_buffer("q", torch.randint(-127, 127, (8, 4, 3, 3), dtype=torch.int8, generator=g))
        self.register_buffer("scale", torch.rand(8, generator=g) / 100)
        self.register_buffer("indices", torch.randint(0, 16, (8, 8, 1, 1), dtype=torch.uint8, generator=g))
        self.register_buffer("lut", torch.randn(1, 1, 1, 1, 16, 1, generator=g))

    def forward(self, x):
        y = F.conv2d(x, torch.ops.coreai.dequantize(self.q, self.scale, axis=0), padding=1)
        return F.conv2d(y, torch.ops.coreai.lut_to_dense(self.indices, self.lut, 0))


def test_quantized_weights_map_to_constexpr_formats(tmp_path):
    import coreai_torch._compression.custom_layers  # noqa: F401  (registers torch.ops.coreai.*)

    module, x = Compressed().eval(), torch.randn(1, 4, 8, 8)
    model = coreai.load_aimodel(*coreai_tools.convert_module(module, x, tmp_path))
    types = [op.type for op in model.ops]
    assert "constexpr_blockwise_shift_scale" in types and "constexpr_lut_to_dense" in types
    report = anedoctor.check(model)
    formats = [o.get("weights") for o in report.to_dict()["ops"] if o["type"] == "conv"]
    assert formats == [{"weight": "int8 per-channel (axis 0)"}, {"weight": "4-bit LUT per-tensor"}]
    result = anedoctor.run(model, {"input_0": x.numpy()})
    (out,) = result.outputs.values()
    expected = module(x).numpy()
    assert np.abs(out - expected).max() <= 1e-4 * np.abs(expected).max()  # the uint4 indices unpack as Core AI packs
    assert max(coreai_tools.compare_with_coreai(model, result).max_abs_diff.values()) <= 1e-4 * np.abs(expected).max()
