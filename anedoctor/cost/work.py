"""What the analyses need to know about each op type: work (FLOPs, bytes) and cost class.

FLOPs count a multiply-add as 2. Bytes are the op's runtime inputs, outputs and the
constant weights it reads. Ops with unknown shapes count 0 (and say so via ``known``).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..ir import Op, TensorType

CONV = {"conv", "conv_transpose"}
MATMUL = {"matmul", "linear", "einsum", "batched_matmul"}  # "linear" has a cost class of its own
ATTENTION = {"scaled_dot_product_attention"}
RECURRENT = {"lstm", "gru", "rnn"}
NORM = {"batch_norm", "instance_norm", "layer_norm", "l2_norm", "local_response_norm", "softmax", "log_softmax"}
RESAMPLE = {
    "upsample_bilinear",
    "upsample_nearest_neighbor",
    "resize_bilinear",
    "resize_nearest_neighbor",
    "resize",
    "resample",
    "affine",
    "crop_resize",
    "crop",
}
POOL = {"max_pool", "avg_pool", "l2_pool", "coreai.sum_pool_2d"}
TRANSCENDENTAL = {
    "exp",
    "exp2",
    "log",
    "sqrt",
    "rsqrt",
    "erf",
    "sigmoid",
    "tanh",
    "silu",
    "gelu",
    "softplus",
    "softsign",
    "elu",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "atanh",
    "pow",
    "real_div",
    "inverse",
    "scaled_tanh",
    "sigmoid_hard",
    "swish",
}
LAYOUT = {
    "transpose",
    "concat",
    "split",
    "stack",
    "pad",
    "slice_by_index",
    "slice_by_size",
    "tile",
    "reverse",
    "gather",
    "gather_along_axis",
    "gather_nd",
    "space_to_depth",
    "depth_to_space",
    "pixel_shuffle",
    "pixel_unshuffle",
    "space_to_batch",
    "batch_to_space",
    "reshape",
    "squeeze",
    "expand_dims",
    "flatten2d",
    "slice_update",
}
# Ops that move no data on the device (metadata-only views); they cost only the per-op overhead.
BINARY_ELEMENTWISE = {"add", "sub", "mul", "real_div", "maximum", "minimum"}  # two operands, one output
FREE = {"reshape", "squeeze", "expand_dims", "identity", "shape", "flatten2d"}
MAC_CLASSES = frozenset({"conv", "linear", "matmul", "attention"})  # cost classes of multiply-accumulate arrays


@functools.lru_cache(maxsize=None)
def cost_class(op_type: str) -> str:
    if op_type in CONV:
        return "conv"
    if op_type == "linear":
        return "linear"
    if op_type in MATMUL:
        return "matmul"
    for name, members in (
        ("attention", ATTENTION),
        ("recurrent", RECURRENT),
        ("norm", NORM),
        ("resample", RESAMPLE),
        ("pool", POOL),
        ("layout", LAYOUT),
    ):
        if op_type in members:
            return name
    if op_type.startswith("reduce_") or op_type in ("topk", "argsort", "cumsum"):
        return "norm"
    return "elementwise"


def numel(t: TensorType) -> int:
    return t.numel or 0


def out_numel(op: Op) -> int:
    return sum(numel(v.type) for v in op.outputs)


def in_numel(op: Op) -> int:
    x = op.input("x")
    return numel(x.type) if x is not None else max((numel(v.type) for v in op.runtime_inputs()), default=0)


def shape_of(op: Op, arg: str) -> tuple:
    v = op.input(arg)
    return v.type.shape if v is not None and v.type.is_static else ()


def conv_flops(op: Op) -> int:
    w = op.input("weight")
    if w is None or not w.type.is_static or not w.type.shape:
        return 0
    wshape = w.type.shape
    per_output = math.prod(wshape[1:])  # Cin/groups * kernel
    if op.type == "conv":
        return 2 * out_numel(op) * per_output
    return 2 * in_numel(op) * math.prod(wshape[1:])  # transpose: every input pixel scatters a kernel


def matmul_flops(op: Op) -> int:
    out = out_numel(op)
    if op.type == "linear":
        return 2 * out * (shape_of(op, "x") or (0,))[-1]
    if op.type == "einsum":
        eq = op.param("equation", "")
        lhs, _, rhs = str(eq).partition("->")
        operands = [o for o in lhs.split(",")]
        values = op.inputs.get("values") or []
        sizes: dict[str, int] = {}
        for letters, v in zip(operands, values if isinstance(values, list) else [values]):
            if v.type.is_static:
                sizes.update(zip(letters.strip(), v.type.shape[-len(letters.strip()) :]))
        contracted = set("".join(operands)) - set(rhs) - {" "}
        return 2 * out * math.prod(sizes.get(ch, 1) for ch in contracted)
    x = shape_of(op, "x")
    if not x:
        return 0
    k = x[-2] if bool(op.param("transpose_x", False)) and len(x) > 1 else x[-1]
    return 2 * out * k


def attention_flops(op: Op) -> int:
    q, k, v = shape_of(op, "query"), shape_of(op, "key"), shape_of(op, "value")
    if not (q and k and v):
        return 0
    batch = math.prod(q[:-2])
    scores = batch * q[-2] * k[-2]
    return 2 * scores * q[-1] + 2 * scores * v[-1] + 5 * scores


def recurrent_flops(op: Op) -> int:
    x = shape_of(op, "x")  # (seq, batch, input)
    h = shape_of(op, "initial_h")
    if not x or not h:
        return 0
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[op.type]
    hidden = h[-1]
    return 2 * x[0] * x[1] * gates * hidden * (x[2] + hidden)


def flops(op: Op) -> int:
    """FLOPs of one execution of ``op`` (0 when shapes are unknown)."""
    cls = cost_class(op.type)
    if cls == "conv":
        return conv_flops(op)
    if cls in ("matmul", "linear"):
        return matmul_flops(op)
    if cls == "attention":
        return attention_flops(op)
    if cls == "recurrent":
        return recurrent_flops(op)
    if cls == "pool":
        return out_numel(op) * int(np.prod(op.param("kernel_sizes", 1)))
    if cls == "norm":
        return 5 * in_numel(op)
    if cls == "resample":
        return 4 * out_numel(op)
    if cls == "layout" or op.type in FREE:
        return 0
    return out_numel(op) * (4 if op.type in TRANSCENDENTAL else 1)


def bytes_moved(op: Op) -> int:
    """Bytes an op reads and writes, weights included."""
    return sum(v.type.nbytes for v in op.input_values()) + sum(v.type.nbytes for v in op.outputs)
