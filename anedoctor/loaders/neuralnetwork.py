"""Core ML NeuralNetwork spec (plain, classifier or regressor) -> IR.

Each layer becomes one :class:`~anedoctor.ir.Op` in spec order: ``type`` is the ML Program
(MIL) op that computes what the layer computes, with MIL argument names and layer parameters
as constant inputs, and ``layer_type`` keeps the layer's own name. Where no MIL op does (or
not with these parameters: a scale layer with a bias, an n-ary add, a channel-last flatten)
the type is ``"nn.<layerType>"``. Operands MIL lacks keep descriptive names (the
``ref_tensor`` of a two-input crop, a bidirectional LSTM's ``initial_h_back``).

Layers do not record output shapes, so shapes are propagated from the model inputs
(``layer.outputTensor`` wins where set). Shapes stay as the model description states them:
under the legacy rank-5 mapping (spec <= 3) a ``(C,)`` or ``(C, H, W)`` input keeps that
rank and layers defined on the notional ``[Seq, Batch, C, H, W]`` axes act on trailing dims.
Activations are ``fp32``. Weights stay protobuf fields until an analysis asks for them
(:class:`NNWeights`); quantized weights keep their storage dtype and load dequantized.
"""

from __future__ import annotations

from math import prod
from typing import Any, Callable

import numpy as np

from ..ir import Block, Graph, Op, TensorType, Value
from ..ir.dtypes import NUMPY_DTYPES
from ..ir.shapes import (
    broadcast,
    norm_axis,
    with_dims,
)
from .files import bounded_shape
from .mlprogram import input_specs
from .nn_handlers import (
    activation,
    batchnorm,
    bias,
    concat,
    constant_pad,
    convolution,
    convolution3d,
    crop,
    crop_resize,
    dot,
    elementwise,
    embedding,
    embedding_nd,
    flatten,
    global_pool,
    inner_product,
    layer_normalization,
    load_constant,
    mvn,
    padding,
    permute,
    pooling,
    pooling3d,
    reduce,
    reduce_nd,
    reorganize,
    reshape,
    resize_bilinear,
    rnn_activation,
    scale,
    sequence_repeat,
    slice_legacy,
    split,
    unary,
    upsample,
)
from .nn_layers import TABLE, Emit, enum_name, table_handler
from .nn_weights import NNWeights, storage_dtype, stored_count

IR_DTYPES = {np.dtype(v): k for k, v in NUMPY_DTYPES.items()}


# ---------------------------------------------------------------------------- translation


def const_value(name: str, payload: Any) -> Value:
    """A layer parameter as a constant Value (64-bit numbers narrowed to fp32 / int32)."""
    if isinstance(payload, NNWeights):
        return Value(name, TensorType(payload.dtype, payload.out_shape), payload)
    if isinstance(payload, (bool, int, float, str)):
        dtype = {bool: "bool", int: "int32", float: "fp32", str: "string"}[type(payload)]
        return Value(name, TensorType(dtype, ()), payload)
    arr = np.asarray(payload)
    if (arr.dtype.kind in "fiu" and arr.dtype.itemsize == 8) or arr.size == 0:
        arr = arr.astype(np.float32 if arr.dtype.kind == "f" and arr.size else np.int32)
    return Value(name, TensorType(IR_DTYPES.get(arr.dtype, "string"), arr.shape), arr)


class Reader:
    """Turns the layers of one NeuralNetwork (and its nested branch / loop bodies) into Ops."""

    def __init__(self, graph_name: str, rank5: bool, notes: list[str]):
        self.graph_name, self.rank5, self.notes = graph_name, rank5, notes
        self.values: dict[str, Value] = {}
        self.layer_name = ""

    def note(self, text: str) -> None:
        self.notes.append(f"{self.graph_name}: layer {self.layer_name!r}: {text}")

    def value(self, name: str) -> Value:
        if name not in self.values:
            self.values[name] = Value(name, TensorType("fp32", None))
        return self.values[name]

    @staticmethod
    def shape(v: Value):
        return v.type.shape

    def lax(self, shape, axis: int) -> int | None:
        """Index of the notional C (-3), H (-2) or W (-1) axis; None where it is implicit
        (a rank-1 ``(C,)`` tensor under the rank-5 mapping)."""
        if shape is None:
            return None
        if self.rank5 and len(shape) == 1:
            return 0 if axis == -3 else None
        return norm_axis(axis, len(shape))

    def legacy_broadcast(self, shapes):
        """Broadcast for layers of the rank-5 era, where a ``(C,)`` blob means ``(C, 1, 1)``."""
        if self.rank5 and any(s is not None and len(s) >= 3 for s in shapes):
            shapes = [s + (1, 1) if s is not None and len(s) == 1 else s for s in shapes]
        return broadcast(*shapes)

    def weight(self, wps, shape, transpose=False, qaxis=0) -> NNWeights | None:
        """WeightParams (or a list of gate parts) as a lazy constant; None when absent or malformed."""
        parts = wps if isinstance(wps, list) else [wps]
        if not any(stored_count(w) for w in parts):
            return None
        shape = tuple(int(d) for d in shape) if shape is not None else (sum(map(stored_count, parts)),)
        part = (shape[0] // len(parts), *shape[1:]) if len(parts) > 1 else shape
        n = prod(part)
        # sub-byte packing pads the last byte, so packed weights may hold a few more values
        if any(stored_count(w) < n if storage_dtype(w).startswith("uint") else stored_count(w) != n for w in parts):
            counts = [stored_count(w) for w in parts]
            self.note(f"weights hold {counts} values where shape {shape} needs {n} per part; left out")
            return None
        return NNWeights([(w, part) for w in parts], shape, transpose, qaxis)

    def param(self, p, name: str) -> Any:
        """A proto field as a constant payload: enum -> its name, repeated -> list (None when
        empty: the MIL default), weights -> NNWeights."""
        fd = p.DESCRIPTOR.fields_by_name[name]
        v = getattr(p, name)
        if fd.is_repeated:
            return list(v) or None
        if fd.enum_type is not None:
            return enum_name(p, name)
        if fd.message_type is not None:
            return self.weight(v, None) if fd.message_type.name == "WeightParams" else None
        return v

    def ops(self, layers) -> list[Op]:
        return [self.layer(layer) for layer in layers]

    def layer(self, layer) -> Op:
        lt = layer.WhichOneof("layer") or "unknown"
        self.layer_name = layer.name
        xs = [self.value(n) for n in layer.input]
        handler = HANDLERS.get(lt)
        t = None
        if handler is None:
            self.note(f"layer type {lt!r} has no MIL equivalent here; its output shapes are unknown")
        else:
            try:
                t = handler(self, getattr(layer, lt), xs)
            except Exception as e:  # a malformed layer must not stop the analysis of the others
                self.note(f"{lt} could not be translated ({type(e).__name__}: {e}); its output shapes are unknown")
        if t is None:
            t = Emit("nn." + lt, {"x": xs[0]} if len(xs) == 1 else {"inputs": xs} if xs else {})
        inputs: dict[str, Value | list[Value]] = {}
        for arg, v in t.args.items():
            runtime = isinstance(v, Value) or isinstance(v, list) and any(isinstance(e, Value) for e in v)
            if v is not None:
                inputs[arg] = v if runtime else const_value(f"{layer.name}.{arg}", v)
        op = Op(layer.name, t.type, inputs, [], "", t.attrs, t.blocks, lt)
        for i, name in enumerate(layer.output):
            shape = t.shapes[i] if i < len(t.shapes) else None
            if i < len(layer.outputTensor) and layer.outputTensor[i].rank:
                ot = layer.outputTensor[i]
                dims = tuple(int(d) if d > 0 else None for d in ot.dimValue)
                if len(dims) == ot.rank and all(dims) or shape is None or len(shape) != ot.rank:
                    shape = dims if len(dims) == ot.rank else (None,) * ot.rank
            shape = bounded_shape(
                None if shape is None else tuple(shape), f"layer {layer.name!r} ({lt}), output {name!r}"
            )
            v = Value(name, TensorType("fp32", shape), producer=op)
            self.values[name] = v
            op.outputs.append(v)
        return op


# ------------------------------------------------------------- layer handlers that need the reader's state


def rnn_shapes(r, x, out_size: int, state_size: int, sequence: bool):
    """Shapes of a recurrent layer's output and state(s) for input ``[Seq, Batch, I, 1, 1]``."""
    c = r.lax(x, -3)
    if c is None:
        return None, None

    def shaped(size, keep_seq):
        s = list(x)
        s[c] = size
        if len(s) == 5 and not keep_seq:
            s[0] = 1
        return tuple(s)

    return shaped(out_size, sequence), shaped(state_size, False)


LSTM_GATES = ("inputGate", "forgetGate", "outputGate", "blockInput")  # MIL order i, f, o, z
GRU_GATES = ("resetGate", "outputGate", "updateGate")  # MIL order r, o, z


def gate_args(r, w, gates, h, i, has_bias, suffix=""):
    n = len(gates)
    args = {
        "weight_ih" + suffix: r.weight([getattr(w, g + "WeightMatrix") for g in gates], (n * h, i)),
        "weight_hh" + suffix: r.weight([getattr(w, g + "RecursionMatrix") for g in gates], (n * h, h)),
    }
    if has_bias:
        args["bias" + suffix] = r.weight([getattr(w, g + "BiasVector") for g in gates], (n * h,))
    return args


def lstm(r, p, xs):
    h, i, lp = p.outputVectorSize, p.inputVectorSize, p.params
    bi = p.DESCRIPTOR.name == "BiDirectionalLSTMLayerParams"
    directions = list(p.weightParams) if bi else [p.weightParams]
    args = dict(x=xs[0], initial_h=xs[1] if len(xs) > 1 else None, initial_c=xs[2] if len(xs) > 2 else None)
    if bi:
        args.update(initial_h_back=xs[3] if len(xs) > 3 else None, initial_c_back=xs[4] if len(xs) > 4 else None)
    for w, suffix in zip(directions, ("", "_back")):
        args.update(gate_args(r, w, LSTM_GATES, h, i, lp.hasBiasVectors, suffix))
        if lp.hasPeepholeVectors:
            args["peephole" + suffix] = r.weight([getattr(w, g + "PeepholeVector") for g in LSTM_GATES[:3]], (3 * h,))
    acts = [rnn_activation(a) for a in (p.activationsForwardLSTM if bi else p.activations)]
    acts = acts or ["sigmoid", "tanh", "tanh"]
    args.update(
        direction="bidirectional" if bi else "reverse" if p.reverseInput else "forward",
        output_sequence=lp.sequenceOutput,
        recurrent_activation=acts[0],
        cell_activation=acts[1],
        activation=acts[2],
        clip=lp.cellClipThreshold or 50.0,
    )
    y, state = rnn_shapes(r, r.shape(xs[0]), h * (2 if bi else 1), h, lp.sequenceOutput)
    attrs = {k: True for k in ("forgetBias", "coupledInputAndForgetGate") if getattr(lp, k)}
    return Emit("lstm", args, [y] + [state] * (4 if bi else 2), attrs)


def gru(r, p, xs):
    h = p.outputVectorSize
    acts = [rnn_activation(a) for a in p.activations] or ["sigmoid", "tanh"]
    args = dict(
        x=xs[0],
        initial_h=xs[1] if len(xs) > 1 else None,
        **gate_args(r, p, GRU_GATES, h, p.inputVectorSize, p.hasBiasVectors),
        direction="reverse" if p.reverseInput else "forward",
        output_sequence=p.sequenceOutput,
        recurrent_activation=acts[0],
        activation=acts[-1],
    )
    return Emit("gru", args, list(rnn_shapes(r, r.shape(xs[0]), h, h, p.sequenceOutput)))


def simple_recurrent(r, p, xs):
    h, i = p.outputVectorSize, p.inputVectorSize
    args = dict(
        x=xs[0],
        initial_h=xs[1] if len(xs) > 1 else None,
        weight_ih=r.weight(p.weightMatrix, (h, i)),
        weight_hh=r.weight(p.recursionMatrix, (h, h)),
        bias=r.weight(p.biasVector, (h,)) if p.hasBiasVector else None,
        direction="reverse" if p.reverseInput else "forward",
        output_sequence=p.sequenceOutput,
        activation=rnn_activation(p.activation) if p.HasField("activation") else "tanh",
    )
    return Emit("rnn", args, list(rnn_shapes(r, r.shape(xs[0]), h, h, p.sequenceOutput)))


def batched_matmul(r, p, xs):
    if len(xs) > 1:
        a, b = r.shape(xs[0]), r.shape(xs[1])
        out = None
        if a is not None and b is not None:
            a = (1, *a) if len(a) == 1 else a
            b = (*b, 1) if len(b) == 1 else b
            rows, cols = a[-1] if p.transposeA else a[-2], b[-2] if p.transposeB else b[-1]
            lead = broadcast(a[:-2], b[:-2])
            out = None if lead is None else (*lead, rows, cols)
        return Emit("matmul", dict(x=xs[0], y=xs[1], transpose_x=p.transposeA, transpose_y=p.transposeB), [out])
    x1, x2 = p.weightMatrixFirstDimension, p.weightMatrixSecondDimension  # stored column-major: (X2, X1)
    args = dict(x=xs[0], weight=r.weight(p.weights, (x2, x1)), bias=r.weight(p.bias, (x2,)) if p.hasBias else None)
    return Emit(
        "linear",
        args,
        [with_dims(r.shape(xs[0]), {-1: x2})],
        {"int8_dynamic_quantize": True} if p.int8DynamicQuantize else {},
    )


def triangular(upper: bool) -> Callable:
    """lower/upperTriangular -> band_part where it can say the same (k >= 0 / k <= 0)."""

    def handler(r, p, xs):
        same = [r.shape(xs[0])]
        if (p.k <= 0) if upper else (p.k >= 0):
            return Emit("band_part", dict(x=xs[0], lower=-p.k if upper else -1, upper=-1 if upper else p.k), same)
        return Emit("nn.upperTriangular" if upper else "nn.lowerTriangular", dict(x=xs[0], k=p.k), same)

    return handler


def custom(r, p, xs):
    params = {k: getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None for k, v in p.parameters.items()}
    args = {"inputs": xs, **{f"weight{i}": r.weight(w, None) for i, w in enumerate(p.weights)}}
    r.note(f"custom layer class {p.className!r}: its output shapes are unknown")
    return Emit("custom", args, [], {"class_name": p.className, "parameters": params, "description": p.description})


def branch(r, p, xs):
    blocks = [Block([], r.ops(n.layers), []) for n in (p.ifBranch, p.elseBranch)]
    return Emit("cond", {"pred": xs[0] if xs else None}, [], blocks=blocks)


def loop(r, p, xs):
    blocks = [Block([], r.ops(n.layers), []) for n in (p.conditionNetwork, p.bodyNetwork)]
    attrs = {"max_iterations": p.maxLoopIterations, "condition_var": p.conditionVar}
    return Emit("while_loop", {"loop_vars": xs} if xs else {}, [], attrs, blocks)


HANDLERS: dict[str, Callable] = {
    **{k: table_handler(*v) for k, v in TABLE.items()},
    **{
        k: reduce_nd(v)
        for k, v in {
            "reduceL1": "reduce_l1_norm",
            "reduceL2": "reduce_l2_norm",
            "reduceMax": "reduce_max",
            "reduceMin": "reduce_min",
            "reduceSum": "reduce_sum",
            "reduceProd": "reduce_prod",
            "reduceMean": "reduce_mean",
            "reduceLogSum": "reduce_log_sum",
            "reduceSumSquare": "reduce_sum_square",
            "reduceLogSumExp": "reduce_log_sum_exp",
        }.items()
    },
    **{
        k: elementwise(k, v)
        for k, v in {"add": "add", "multiply": "mul", "max": "maximum", "min": "minimum", "average": None}.items()
    },
    "convolution": convolution,
    "convolution3d": convolution3d,
    "pooling": pooling,
    "pooling3d": pooling3d,
    "globalPooling3d": lambda r, p, xs: global_pool(r, xs, r.param(p, "type"), (-3, -2, -1)),
    "activation": activation,
    "innerProduct": inner_product,
    "embedding": embedding,
    "embeddingND": embedding_nd,
    "batchnorm": batchnorm,
    "mvn": mvn,
    "layerNormalization": layer_normalization,
    "crop": crop,
    "padding": padding,
    "constantPad": constant_pad,
    "upsample": upsample,
    "resizeBilinear": resize_bilinear,
    "cropResize": crop_resize,
    "unary": unary,
    "scale": scale,
    "bias": bias,
    "dot": dot,
    "reduce": reduce,
    "loadConstant": load_constant,
    "loadConstantND": load_constant,
    "reshape": reshape,
    "flatten": flatten,
    "permute": permute,
    "concat": concat,
    "split": split,
    "reorganizeData": reorganize,
    "slice": slice_legacy,
    "sequenceRepeat": sequence_repeat,
    "uniDirectionalLSTM": lstm,
    "biDirectionalLSTM": lstm,
    "gru": gru,
    "simpleRecurrent": simple_recurrent,
    "batchedMatmul": batched_matmul,
    "lowerTriangular": triangular(False),
    "upperTriangular": triangular(True),
    "custom": custom,
    "branch": branch,
    "loop": loop,
}


# ---------------------------------------------------------------------------- graph

COLOR_BIASES = {
    10: ("grayBias",),
    40: ("grayBias",),
    20: ("redBias", "greenBias", "blueBias"),
    30: ("blueBias", "greenBias", "redBias"),
}


def flexible_dims(feature) -> set[int]:
    """Indices of the dims a model input may vary in (shape range / enumerated shapes / image sizes)."""
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        t = feature.type.multiArrayType
        which = t.WhichOneof("ShapeFlexibility")
        if which == "shapeRange":
            return {i for i, rg in enumerate(t.shapeRange.sizeRanges) if rg.lowerBound != rg.upperBound}
        if which == "enumeratedShapes":
            shapes = [tuple(s.shape) for s in t.enumeratedShapes.shapes]
            return {i for i, dims in enumerate(zip(*shapes)) if len(set(dims)) > 1}
    elif kind == "imageType":
        t = feature.type.imageType
        which = t.WhichOneof("SizeFlexibility")
        if which == "imageSizeRange":
            rg = t.imageSizeRange
            return {i for i, b in ((2, rg.heightRange), (3, rg.widthRange)) if b.lowerBound != b.upperBound}
        if which == "enumeratedSizes":
            sizes = t.enumeratedSizes.sizes
            return {i for i, vals in ((2, {s.height for s in sizes}), (3, {s.width for s in sizes})) if len(vals) > 1}
    return set()


def preprocessing_op(pre, x: Value, color_space: int) -> Op:
    """The image scale / bias (or mean-image) step Core ML runs before the first layer."""
    kind = pre.WhichOneof("preprocessor")
    c = x.type.shape[1] if x.type.shape and len(x.type.shape) == 4 else 3
    name = f"preprocessing:{x.name}"
    if kind == "scaler":
        s = pre.scaler
        fields = COLOR_BIASES.get(color_space, COLOR_BIASES[20])[:c]
        biases = np.array([getattr(s, f) for f in fields], np.float32).reshape(-1, 1, 1)
        payloads = {"scale": s.channelScale, "bias": biases}
    else:
        mean = np.array(pre.meanImage.meanImage, np.float32)
        chw_shape = (c, *x.type.shape[2:]) if x.type.is_static and len(x.type.shape) == 4 else ()
        payloads = {"mean_image": mean.reshape(chw_shape) if chw_shape and mean.size == prod(chw_shape) else mean}
    inputs = {"x": x, **{k: const_value(f"{name}.{k}", v) for k, v in payloads.items()}}
    op = Op(name, "nn.preprocessing", inputs, [], "", {"kind": kind}, [], "preprocessing")
    op.outputs.append(Value(name, x.type, producer=op))
    return op


def graph_from_neuralnetwork(nn, description, name: str, weights_note: list[str] | None = None) -> Graph:
    """Translate a ``NeuralNetwork`` / ``NeuralNetworkClassifier`` / ``NeuralNetworkRegressor``
    message with its ``ModelDescription`` into one :class:`Graph`; problems go to ``weights_note``."""
    notes = weights_note if weights_note is not None else []
    reader = Reader(name, nn.arrayInputShapeMapping == 0, notes)
    specs = input_specs(description)
    inputs = []
    for spec, feature in zip(specs, description.input):
        flex = flexible_dims(feature)
        stated = spec.type.shape
        shape = None if stated is None else tuple(None if i in flex else d for i, d in enumerate(stated))
        v = Value(spec.name, TensorType(spec.type.dtype, shape))
        reader.values[v.name] = v
        inputs.append(v)
    ops = []
    colors = {f.name: f.type.imageType.colorSpace for f in description.input}
    for pre in nn.preprocessing:
        target = pre.featureName or (inputs[0].name if len(inputs) == 1 else "")
        if target in reader.values:
            ops.append(preprocessing_op(pre, reader.values[target], colors.get(target, 0)))
            reader.values[target] = ops[-1].outputs[0]
    ops += reader.ops(nn.layers)
    labels = nn.WhichOneof("ClassLabels") if hasattr(nn, "labelProbabilityLayerName") else None
    blob_of = {}  # a classifier's probabilities output may name the blob differently
    if labels:
        blob_of[description.predictedProbabilitiesName] = nn.labelProbabilityLayerName
        notes.append(
            f"{name}: classifier with {len(getattr(nn, labels).vector)} class labels; Core ML picks the label "
            f"({description.predictedFeatureName or 'classLabel'!r}) on the CPU after the network"
        )
    blobs = [blob_of.get(o.name) or o.name for o in description.output]
    outputs = [reader.values[b] for b in blobs if b in reader.values]
    missing = [b for b in blobs if b not in reader.values and b != description.predictedFeatureName]
    if missing:
        notes.append(f"{name}: no layer produces the model output(s) {', '.join(map(repr, missing))}")
    return Graph(name, ops, inputs, outputs, specs, "")
