"""Graph-level rules: flexible inputs (DY-*), model size (SZ-*), state (ST-*), chip (CH-0), activation quantization (Q-2)."""
from __future__ import annotations

from ..ir import Graph
from .base import Context, rule


@rule("DY-1", family="dynamic", confidence="M", level="graph",
      apple_message="ANECompiler does not support range shape flexibility",
      source="apple/coremltools#1029 (Xcode: 'MLE5Engine is not currently supported for models with range shape inputs that try to utilize the Neural Engine'), #2370, #1764; Apple message catalogue state 110; ane-rules.md DY-1, DY-3",
      fix="Use EnumeratedShapes (up to 128) or fixed shapes; on iOS 17.4+/macOS 14.4+ try MLModelConfiguration reshapeFrequency = .infrequent.")
def range_shape_input(graph: Graph, ctx: Context):
    """A model input with a flexible range shape (RangeDim / image size range).

    Range-shaped inputs keep the model off the ANE except, at best, at the default shape."""
    flex = [s for s in graph.input_specs if s.flexibility == "range"]
    if flex:
        return f"input {flex[0].name} has a range (flexible) shape; the ANE compiler does not support range shapes"
    return None


@rule("DY-2", family="dynamic", confidence="A", level="graph", blocks=(),
      source="apple/coremltools docs-guides/source/faqs.md ('Neural Engine With Flexible Input Shapes'); ane-rules.md DY-2",
      fix="Keep reshapes static so each enumerated shape compiles to a fully static graph; check each shape with a fixed-shape copy of the model.")
def enumerated_shape_input(graph: Graph, ctx: Context):
    """A model input with EnumeratedShapes: runs on the ANE unless conversion made layers dynamic.

    Apple: 'The converted model will run on the NE, unless the conversion introduces dynamic layers
    not supported on the NE.' Costs are predicted at the default shape (see the report's notes)."""
    flex = [s for s in graph.input_specs if s.flexibility == "enumerated"]
    return (f"input {flex[0].name} has {len(flex[0].enumerated_shapes)} enumerated shapes; Core ML compiles each as a "
            f"static model, predicted here at the default {flex[0].default_shape}") if flex else None


@rule("DY-4", family="dynamic", confidence="M", level="graph", scope="iOS 16 / macOS 13 (measured 2023)",
      when=lambda t: t.os.ios <= 16,
      source="apple/coremltools#1909 (Xcode report); smpanaro NOTES.md 2023-10-25; ane-rules.md DY-4",
      fix="Use fixed shapes, or rank-4 layer_norm (B, C, 1, S) which worked with enumerated shapes.")
def layer_norm_with_enumerated_shapes(graph: Graph, ctx: Context):
    """A layer_norm in a model with EnumeratedShapes inputs (iOS 16 era)."""
    if any(s.flexibility == "enumerated" for s in graph.input_specs) and any(op.type == "layer_norm" and (op.input("x").type.rank or 0) != 4 for op in graph.ops):
        return "layer_norm with enumerated input shapes kept the whole model off the ANE on iOS 16"
    return None


@rule("DY-6", family="dynamic", confidence="C", level="graph", scope="macOS 13-14 / iOS 16-17",
      when=lambda t: t.os.ios <= 17,
      source="smpanaro/more-ane-transformers src/experiments/enumerated_*.py docstrings, NOTES.md Sept 2023; ane-rules.md DY-6",
      fix="Use a single enumerated input (others fixed), or one model per shape.")
def several_flexible_inputs(graph: Graph, ctx: Context):
    """More than one flexible (enumerated or range) input."""
    flex = [s.name for s in graph.input_specs if s.flexibility != "fixed"]
    return f"{len(flex)} flexible inputs ({', '.join(flex)})" if len(flex) > 1 else None


@rule("SZ-1", family="size", confidence="A", level="graph", scope="iOS / iPadOS", when=lambda t: t.chip.platform == "ios",
      apple_message="Weight file size <size> exceeds the maximum (<max>)",
      source="apple/coremltools docs-guides/source/mlmodel-utilities.md (model splitting); apple/ml-stable-diffusion README (--chunk-unet); ane-rules.md SZ-1",
      fix="Split the model (ct.models.utils.bisect_model) or compress weights to 6 bits or fewer.")
def model_over_1gb_on_ios(graph: Graph, ctx: Context):
    """A model whose weights exceed 1 GB on an iPhone/iPad."""
    size = ctx.model.weights_bytes or graph.weight_bytes()
    if size > 1 << 30:
        return f"weights are {size / (1 << 30):.2f} GB > 1 GB, the iOS limit for the Neural Engine"
    return None


@rule("SZ-2", family="size", confidence="C", level="graph", scope="M1 (H13)", when=lambda t: t.chip.tier == 13 and t.chip.platform == "macos",
      source="smpanaro NOTES.md 2023-03-30..04-07 ('4x800MB is the limit'); eiln/ane ane_drv.c vm_size 0xE0000000; ane-rules.md SZ-2",
      fix="Compress weights (palettize to 4-6 bits) or split the model.")
def model_over_ane_address_space_m1(graph: Graph, ctx: Context):
    """A model whose weights exceed ~3 GB on M1 (the ANE's mapped address space)."""
    size = ctx.model.weights_bytes or graph.weight_bytes()
    return f"weights are {size / (1 << 30):.2f} GB; M1 maps at most ~3-3.75 GB for the ANE" if size > 3 << 30 else None


@rule("ST-2", family="state", confidence="C", level="graph", scope="M1 / A14 (H13)", when=lambda t: t.chip.tier == 13,
      source="argus1/Anemll docs/RELEASE_NOTES_0.3.5.md ('M1/A14 Limitations'); ane-rules.md ST-2, CH-9",
      fix="Give all state tensors the same shape (pad the shorter KV cache).")
def non_uniform_states(graph: Graph, ctx: Context):
    """Stateful model whose state tensors have different shapes, on M1/A14."""
    shapes = {s.type.shape for s in graph.states}
    return f"{len(graph.states)} states with {len(shapes)} different shapes" if len(shapes) > 1 else None


@rule("CH-0", family="chip", confidence="A", level="graph", scope="A11 and older", when=lambda t: t.chip.tier == 0,
      source="hollance/neural-engine docs/supported-devices.md; ane-hardware.md §1.1 ('A11's ANE is not usable from Core ML')",
      fix="Target an A12 or newer device.")
def no_usable_ane(graph: Graph, ctx: Context):
    """The chip has no Neural Engine that Core ML can use."""
    return f"{ctx.target.chip.name} has no ANE usable by third-party Core ML models"


@rule("Q-2", family="compression", confidence="A", blocks=(), level="graph", scope="before A17 Pro / M4",
      when=lambda t: not t.chip.fast_int8,
      source="apple/coremltools docs-guides opt-quantization-perf.md, opt-overview.md; ane-rules.md Q-2, CH-7",
      fix="On this chip prefer weight-only compression (palettization / int8 weights) over W8A8.")
def w8a8_without_fast_int8(graph: Graph, ctx: Context):
    """Activation quantization (W8A8) on a chip without fast int8-int8 ANE compute."""
    if any(op.type == "quantize" for op in graph.ops):
        return "activations are quantized, but int8-int8 compute is faster only on A17 Pro / M4 and newer"
    return None
