"""Read a compiled NeuralNetwork stored as Espresso JSON (``model.espresso.net`` / ``.shape``) into the IR;
conv, pooling, inner product, softmax, transpose, reshape, concat read as their ML Program equivalents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..ir import Graph, LazyConst, Op, TensorType, Value
from .files import MAX_DIM, bounded_shape, read_json


def espresso_shape(entry: Any, where: str) -> tuple[int | None, ...] | None:
    """``{"n":1,"k":64,"h":56,"w":56,"_rank":4}`` -> (1, 64, 56, 56); rank r keeps the last r of (seq, n, k, h, w)."""
    if not isinstance(entry, dict):
        return None
    full = [entry.get(k, 1) for k in ("seq", "n", "k", "h", "w")]
    rank = entry.get("_rank", 4)
    if not isinstance(rank, int) or not 0 <= rank <= 5 or not all(isinstance(d, int) for d in full):
        return None
    return bounded_shape(tuple(full[5 - rank :]) if rank else (), where)


def int_field(attrs: dict[str, Any], key: str, default: int, where: str) -> int:
    """An integer layer parameter; ModelError naming the layer and the field when it is not one."""
    value = attrs.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > MAX_DIM:
        raise ModelError(f"{where}: field {key!r} must be an integer up to {MAX_DIM}, got {str(value)[:40]!r}")
    return int(value)


class EspressoWeight(LazyConst):
    """A weight of a compiled NeuralNetwork: its shape is known from the layer, its bytes
    (``model.espresso.weights``) are not read."""

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self):
        raise ModelError(f"{self.folder / 'model.espresso.weights'}: compiled NeuralNetwork weights cannot be read")


def espresso_as_mil(kind: str, attrs: dict[str, Any], inputs: dict[str, Any], folder: Path, where: str) -> str:
    """The MIL op an Espresso layer computes, with MIL parameter names added to ``attrs`` (and a
    shape-only weight input), so rules and costs apply; other layers stay ``espresso.<type>``."""

    def num(key: str, default: int = 1) -> int:
        return int_field(attrs, key, default, where)

    if kind in ("convolution", "deconvolution") and {"C", "K", "Nx", "Ny"} <= attrs.keys():
        groups = num("n_groups") or 1
        shape = bounded_shape((num("C"), num("K") // groups, num("Ny"), num("Nx")), f"{where}: weight")
        inputs["weight"] = Value("weight", TensorType("fp16", shape), EspressoWeight(folder))
        attrs.update(
            strides=[num("stride_y"), num("stride_x")], groups=groups, dilations=[num("dilation_y"), num("dilation_x")]
        )
        return "conv" if kind == "convolution" else "conv_transpose"
    if kind == "pool" and {"size_x", "size_y"} <= attrs.keys():
        attrs.update(kernel_sizes=[num("size_y"), num("size_x")], strides=[num("stride_y"), num("stride_x")])
        return "max_pool" if attrs.get("avg_or_max") == 1 else "avg_pool"
    if kind == "inner_product" and {"nB", "nC"} <= attrs.keys():
        shape = bounded_shape((num("nC"), num("nB")), f"{where}: weight")
        inputs["weight"] = Value("weight", TensorType("fp16", shape), EspressoWeight(folder))
        return "linear"
    return ESPRESSO_SAME.get(kind, "espresso." + kind)


ESPRESSO_SAME = {
    "softmax": "softmax",
    "softmax_nd": "softmax",
    "transpose": "transpose",
    "reshape": "reshape",
    "concat": "concat",
}


def espresso_graph(folder: Path, root: Path, name: str, notes: list[str], where: str) -> Graph | None:
    """Graph from JSON ``model.espresso.net`` (+ ``.shape``); None (with a note) when binary."""
    net_path, shape_path = folder / "model.espresso.net", folder / "model.espresso.shape"
    net = read_json(net_path, root, "Espresso network")
    if not isinstance(net, dict) or not isinstance(net.get("layers"), list):
        notes.append(
            f"{where}model.espresso.net is not JSON (a binary Espresso network): its layers cannot be analysed"
        )
        return None
    shapes = read_json(shape_path, root, "Espresso shape file")
    layer_shapes = shapes.get("layer_shapes", {}) if isinstance(shapes, dict) else {}
    layer_shapes = layer_shapes if isinstance(layer_shapes, dict) else {}
    blobs: dict[str, Value] = {}
    inputs: list[Value] = []
    ops: list[Op] = []
    consumed: set[str] = set()
    flagged: list[Value] = []

    def blob(name: str) -> Value:
        if name not in blobs:
            blobs[name] = Value(
                name, TensorType("fp32", espresso_shape(layer_shapes.get(name), f"{shape_path}: blob {name!r}"))
            )
            inputs.append(blobs[name])
        return blobs[name]

    skip = {"name", "type", "bottom", "top", "weights", "debug_info", "attributes"}
    for k, layer in enumerate(net["layers"]):
        if not isinstance(layer, dict) or "type" not in layer:
            raise ModelError(f"{net_path}: layer {k} has no type")
        place = f"{net_path}: layer {k} ({str(layer.get('name', ''))[:60]!r})"
        for key in ("name", "type", "bottom", "top"):
            if not isinstance(layer.get(key, ""), str):
                raise ModelError(f"{place}: field {key!r} is {type(layer[key]).__name__}, expected a string")
        bottoms = [b for b in str(layer.get("bottom", "")).split(",") if b]
        consumed.update(bottoms)
        args = [blob(b) for b in bottoms]
        op_inputs: dict[str, Value | list[Value]] = (
            {"x": args[0]}
            if len(args) == 1
            else {"x": args[0], "y": args[1]}
            if len(args) == 2
            else {"values": args}
            if args
            else {}
        )
        kind = str(layer["type"])
        attrs = {k: v for k, v in layer.items() if k not in skip}
        op_type = espresso_as_mil(kind, attrs, op_inputs, folder, place)
        op = Op(str(layer.get("name", kind)), op_type, op_inputs, [], attrs=attrs, layer_type=kind)
        for top in [t for t in str(layer.get("top", "")).split(",") if t]:
            v = blobs[top] = Value(
                top,
                TensorType("fp32", espresso_shape(layer_shapes.get(top), f"{shape_path}: blob {top!r}")),
                producer=op,
            )
            op.outputs.append(v)
            if isinstance(layer.get("attributes"), dict) and layer["attributes"].get("is_output"):
                flagged.append(v)
        ops.append(op)
    outputs = flagged or [v for op in ops for v in op.outputs if v.name not in consumed]
    notes.append(
        f"{where}layers from model.espresso.net"
        + (
            ", shapes from model.espresso.shape (n/k/h/w by _rank)"
            if layer_shapes
            else ", no model.espresso.shape: shapes unknown"
        )
        + "; Espresso stores no tensor dtypes (fp32 assumed) and its weights"
        " (model.espresso.weights) are not read"
    )
    return Graph(name, ops, inputs, outputs)
