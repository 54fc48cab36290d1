"""Reference executor for Core ML models on Linux, with PyTorch as the backend.

``run(model, inputs)`` executes the IR of an ML Program (or a translated NeuralNetwork) op by op.
Every MIL op type maps to a small function in ``OPS``; a model is first compiled into a
:class:`Plan` (constants turned into tensors once, argument lookups pre-bound to slots,
intermediates freed after their last use), so a forward pass costs little more than the
tensor math itself.

Precisions
----------
``fp32``
    Everything runs in fp32, including ops an fp16 ML Program types as fp16: fp16 casts are
    ignored and fp16 weights are widened. This is the reference.
``fp16``
    An emulation of where Core ML would run each op (``devices``: op -> "ane" | "gpu" | "cpu"):

    * ANE ops read and write fp16 (inputs and outputs rounded to fp16; |x| > 65504 becomes inf,
      as on the device). Elementwise products inside normalisations, softmax and attention are
      rounded to fp16 too. Sums use the ``accumulator``: ``"fp32"`` (default: a wide accumulator
      rounded only at the output port, the M1 finding) or ``"fp16"`` (a running fp16 sum over
      partials of ``ACC_CHUNK`` products, the pessimistic reading). ``ane-hardware.md`` §2.4
      records both claims; which one a chip implements is contested, hence the setting.
    * GPU ops store fp16 and compute in fp32 (Core ML's default on the GPU).
    * CPU ops compute and store in fp32.
    * ``cast`` to fp16 always rounds (the model asked for it).

    Not emulated: denormal flushing, NaN-to-inf conversion, the saturating M1/A14 MAC output
    (32768), the Q15.16 fixed-point accumulator reported for M4, per-product rounding inside
    conv/matmul, and the device's transcendental approximations (exp, erf, ... are exact then
    rounded).

    Placement (:func:`resolve_devices`): a mapping, a report, one device name, or by default the
    placement ``anedoctor.check`` predicts (every op on the ANE when no predictor is available).

Inputs come from ``.npz``/``.npy`` files (:func:`load_inputs`) or are generated from the input
description (:func:`generate_inputs`); :func:`save_outputs` writes ``.npz`` atomically. Bad
inputs, missing weights and ops without an implementation (list, complex and NMS ops,
crop_resize, resample, NeuralNetwork loop/branch layers) raise :class:`ModelError` naming them.
"""
from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ModelError
from .hardware import DISPLAY_ORDER
from .ir import Graph, LazyConst, Model, Op, Value
from .ir.dtypes import NUMPY_DTYPES

FP16_MAX = 65504.0
ACC_CHUNK = 8  # products summed in fp32 before each fp16 accumulation step (accumulator="fp16")
MAX_LOOP_ITERATIONS = 1_000_000
OPS: dict[str, Callable[["Step", dict], Any]] = {}


def op(*names: str):
    """Register an op implementation ``fn(step, args) -> tensor | tuple of tensors``."""
    def register(fn):
        for n in names:
            OPS[n] = fn
        return fn
    return register


# ------------------------------------------------------------------ helpers

def r16(t):
    """Round a float tensor to fp16 and back (overflow -> inf); other values pass through."""
    return t.to(torch.float16).float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t


def ints(v) -> list[int]:
    """A constant int argument (tensor, number or list) as a list of Python ints."""
    if isinstance(v, torch.Tensor):
        v = v.reshape(-1).tolist()
    return [int(i) for i in v] if isinstance(v, (list, tuple)) else [int(v)]


def tensor(v) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.as_tensor(v)


def axes_of(v, rank: int) -> list[int]:
    """Normalised axes; None means all."""
    return list(range(rank)) if v is None else [a % rank if rank else 0 for a in ints(v)]


def flat_pads(pairs: list[tuple[int, int]]) -> list[int]:
    """[(before, after)] per spatial dim -> the F.pad list (last dim first)."""
    return [p for b, a in reversed(pairs) for p in (b, a)]


def to_torch(value: Any) -> Any:
    """A constant payload as the executor keeps it: numbers as tensors (floats fp32, ints int64)."""
    if isinstance(value, (str, bytes)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [to_torch(v) for v in value]
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        return str(arr) if arr.ndim == 0 else arr.tolist()
    if arr.dtype.kind == "b":
        return torch.from_numpy(arr.copy())
    kind = np.float32 if arr.dtype.kind == "f" else np.int64
    return torch.from_numpy(np.array(arr, dtype=kind))


def to_numpy(t: Any, dtype: str, precision: str) -> np.ndarray:
    """A result as the model declares it (fp16 outputs stay fp32 in fp32 precision)."""
    arr = t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    if dtype == "fp16" and precision == "fp32":
        dtype = "fp32"
    return arr.astype(NUMPY_DTYPES.get(dtype, arr.dtype), copy=False)


# ------------------------------------------------------------------ precision-aware building blocks

def acc_sum(s: "Step", t: torch.Tensor, dims, keepdim=False) -> torch.Tensor:
    """Sum as the op's accumulator does: plain fp32, or (accumulator="fp16") a running fp16 sum
    over fp32 partials of ACC_CHUNK terms."""
    if not s.acc16:
        return t.sum(dims, keepdim)
    dims = axes_of(dims, t.dim())
    moved = t.movedim(dims, list(range(t.dim() - len(dims), t.dim())))
    flat = moved.reshape(*moved.shape[: t.dim() - len(dims)], -1)
    acc = torch.zeros(flat.shape[:-1])
    for k in range(0, flat.shape[-1], ACC_CHUNK):
        acc = r16(acc + r16(flat[..., k:k + ACC_CHUNK].sum(-1)))
    if keepdim:
        for d in sorted(dims):
            acc = acc.unsqueeze(d)
    return acc


def acc_chunks(s: "Step", total: int, step: int, partial: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """Accumulate ``partial(lo, hi)`` over [0, total): one call when sums are wide, fp16 steps otherwise."""
    if not s.acc16 or total <= step:
        return partial(0, total)
    acc = None
    for lo in range(0, total, step):
        part = r16(partial(lo, min(lo + step, total)))
        acc = part if acc is None else r16(acc + part)
    return acc


def mm(s: "Step", x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w with the op's accumulator."""
    return acc_chunks(s, x.shape[-1], ACC_CHUNK, lambda lo, hi: x[..., lo:hi] @ w[..., lo:hi, :])


def mean_var(s: "Step", x: torch.Tensor, dims: list[int]):
    """Mean and (biased) variance over dims; on the ANE the squares are fp16 products."""
    if not s.ane:
        var, mean = torch.var_mean(x, dims, unbiased=False, keepdim=True)
        return mean, var
    n = math.prod(x.shape[d] for d in dims)
    mean = r16(acc_sum(s, x, dims, True) / n)
    d = r16(x - mean)
    return mean, r16(acc_sum(s, r16(d * d), dims, True) / n)


def normalize(s: "Step", x, mean, var, eps):
    r = s.r
    return r(r(x - mean) * r(torch.rsqrt(r(var + eps))))


def channel_param(v, rank: int) -> torch.Tensor:
    """A per-channel vector broadcast against [N, C, *spatial]."""
    return tensor(v).reshape(-1, *([1] * (rank - 2)))


# ------------------------------------------------------------------ elementwise

UNARY = {
    "abs": torch.abs, "acos": torch.acos, "asin": torch.asin, "atan": torch.atan, "atanh": torch.atanh,
    "ceil": torch.ceil, "cos": torch.cos, "cosh": torch.cosh, "erf": torch.erf, "exp": torch.exp,
    "exp2": torch.exp2, "floor": torch.floor, "round": torch.round, "sign": torch.sign, "sin": torch.sin,
    "sinh": torch.sinh, "sqrt": torch.sqrt, "square": torch.square, "tan": torch.tan, "tanh": torch.tanh,
    "relu": torch.relu, "relu6": lambda x: F.hardtanh(x, 0.0, 6.0), "sigmoid": torch.sigmoid, "silu": F.silu,
    "softsign": F.softsign, "softplus": F.softplus, "logical_not": torch.logical_not, "identity": lambda x: x,
}
BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "pow": torch.pow, "mod": torch.remainder,
    "floor_div": torch.floor_divide, "equal": torch.eq, "not_equal": torch.ne, "less": torch.lt,
    "less_equal": torch.le, "greater": torch.gt, "greater_equal": torch.ge,
    "logical_and": torch.logical_and, "logical_or": torch.logical_or, "logical_xor": torch.logical_xor,
}


@op(*UNARY)
def unary(s, a):
    x = a["x"]
    keeps_ints = s.op.type in ("abs", "sign", "square", "logical_not", "identity")
    return UNARY[s.op.type](x if x.is_floating_point() or keeps_ints else x.float())


@op(*BINARY)
def binary(s, a):
    return BINARY[s.op.type](a["x"], a["y"])


@op("real_div")
def real_div(s, a):
    x, y = a["x"], a["y"]
    if not x.is_floating_point() and not y.is_floating_point():
        return torch.div(x, y, rounding_mode="trunc")
    return torch.div(x, y)


@op("maximum", "minimum")
def max_min(s, a):
    return (torch.maximum if s.op.type == "maximum" else torch.minimum)(a["x"], a["y"])


def f(a: dict, key: str, default: float | None = None) -> float:
    """A scalar float argument."""
    return float(a[key] if default is None else a.get(key, default))


PARAM_UNARY = {  # ops of x with constant parameters (epsilons, alpha/beta, per-channel vectors)
    "log": lambda x, a: torch.log(x + f(a, "epsilon", 1e-45)),
    "rsqrt": lambda x, a: torch.rsqrt(x + f(a, "epsilon", 1e-12)),
    "inverse": lambda x, a: torch.reciprocal(x + f(a, "epsilon", 1e-4)),
    "clip": lambda x, a: torch.clamp(x, f(a, "alpha"), f(a, "beta")),
    "threshold": lambda x, a: torch.clamp_min(x, f(a, "alpha")),
    "leaky_relu": lambda x, a: F.leaky_relu(x, f(a, "alpha", 0.01)),
    "elu": lambda x, a: F.elu(x, f(a, "alpha", 1.0)),
    "thresholded_relu": lambda x, a: torch.where(x >= f(a, "alpha", 1.0), x, 0.0),
    "clamped_relu": lambda x, a: torch.clamp_max(torch.where(x >= 0, x, f(a, "alpha") * x), f(a, "beta")),
    "linear_activation": lambda x, a: x * f(a, "alpha") + f(a, "beta", 0.0),
    "scaled_tanh": lambda x, a: f(a, "alpha", 1.0) * torch.tanh(f(a, "beta", 1.0) * x),
    "sigmoid_hard": lambda x, a: torch.clamp(f(a, "alpha", 0.2) * x + f(a, "beta", 0.5), 0.0, 1.0),
    "prelu": lambda x, a: torch.where(x > 0, x, x * channel_param(a["alpha"], x.dim())),
    "softplus_parametric": lambda x, a: channel_param(a["alpha"], x.dim()) * F.softplus(x * channel_param(a["beta"], x.dim())),
    "gelu": lambda x, a: x * torch.sigmoid(1.702 * x) if a.get("mode") == "SIGMOID_APPROXIMATION" else
    F.gelu(x, approximate="tanh" if a.get("mode") == "TANH_APPROXIMATION" else "none"),
}


@op(*PARAM_UNARY)
def param_unary(s, a):
    return PARAM_UNARY[s.op.type](a["x"], a)


@op("select")
def select(s, a):
    return torch.where(a["cond"].bool(), a["a"], a["b"])


@op("cast")
def cast(s, a):
    x, dtype = a["x"], a["dtype"]
    if dtype in ("fp16", "fp32", "fp64"):
        return r16(x.float()) if dtype == "fp16" and s.emulate else x.float()
    return x.bool() if dtype == "bool" else x.to(torch.int64)


# ------------------------------------------------------------------ linear algebra

@op("linear")
def linear(s, a):
    x, w, b = a["x"], a["weight"], a.get("bias")
    if s.acc16:
        y = mm(s, x, w.t())
        return y if b is None else s.r(y + b)
    return F.linear(x, w, b)


@op("matmul")
def matmul(s, a):
    x, y = a["x"], a["y"]
    if bool(a.get("transpose_x", False)) and x.dim() > 1:
        x = x.transpose(-1, -2)
    if bool(a.get("transpose_y", False)) and y.dim() > 1:
        y = y.transpose(-1, -2)
    if s.acc16 and x.dim() > 1 and y.dim() > 1:
        return mm(s, x, y)
    return torch.matmul(x, y)


@op("einsum")
def einsum(s, a):
    return torch.einsum(a["equation"], *a["values"])


def conv_pads(pad_type: str, pad, sizes, kernel, strides, dilations) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim for MIL's pad_type (TF-style 'same')."""
    n = len(kernel)
    if pad_type == "custom":
        p = ints(pad) if pad is not None else [0] * 2 * n
        return [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        out = []
        for i, k, st, d in zip(sizes, kernel, strides, dilations):
            total = max(0, (math.ceil(i / st) - 1) * st + (k - 1) * d + 1 - i)
            small = total // 2
            out.append((small, total - small) if pad_type == "same" else (total - small, small))
        return out
    return [(0, 0)] * n


CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def spatial_args(a, nd):
    strides = ints(a["strides"]) if a.get("strides") is not None else [1] * nd
    dilations = ints(a["dilations"]) if a.get("dilations") is not None else [1] * nd
    return strides, dilations, int(a.get("groups", 1))


@op("conv")
def conv(s, a):
    x, w, b = a["x"], a["weight"], a.get("bias")
    nd = w.dim() - 2
    strides, dilations, groups = spatial_args(a, nd)
    pads = conv_pads(a.get("pad_type", "valid"), a.get("pad"), x.shape[2:], w.shape[2:], strides, dilations)
    if all(p == q for p, q in pads):
        padding = [p for p, _ in pads]
    else:
        x, padding = F.pad(x, flat_pads(pads)), 0
    fn = CONV[nd]
    if not s.acc16:
        return fn(x, w, b, strides, padding, dilations, groups)
    # fp16 accumulation: sum partial convolutions over chunks of input channels (within each group)
    cg, n = w.shape[1], x.shape[0]
    xs = x.reshape(n, groups, cg, *x.shape[2:])
    step = max(1, ACC_CHUNK // math.prod(w.shape[2:]))
    y = acc_chunks(s, cg, step, lambda lo, hi: fn(xs[:, :, lo:hi].reshape(n, -1, *x.shape[2:]), w[:, lo:hi], None,
                                                     strides, padding, dilations, groups))
    return y if b is None else s.r(y + channel_param(b, y.dim()))


@op("conv_transpose")
def conv_transpose(s, a):
    x, w, b = a["x"], a["weight"], a.get("bias")
    nd = w.dim() - 2
    strides, dilations, groups = spatial_args(a, nd)
    full = [(i - 1) * st + (k - 1) * d + 1 for i, st, k, d in zip(x.shape[2:], strides, w.shape[2:], dilations)]
    pad_type = a.get("pad_type", "valid")
    if pad_type == "custom":
        p = ints(a["pad"])
        pads = [(p[2 * i], p[2 * i + 1]) for i in range(nd)]
    elif pad_type == "same":
        pads = [((f - i * st) // 2, f - i * st - (f - i * st) // 2) for f, i, st in zip(full, x.shape[2:], strides)]
    else:
        pads = [(0, 0)] * nd
    out = a.get("output_shape")
    sizes = ints(out)[2:] if out is not None else [f - p - q for f, (p, q) in zip(full, pads)]
    extra = [sz - (f - 2 * p) for sz, f, (p, _) in zip(sizes, full, pads)]  # torch's output_padding, when it can say it
    if all(0 <= e < max(st, d) for e, st, d in zip(extra, strides, dilations)):
        return CONV_T[nd](x, w, b, strides, [p for p, _ in pads], extra, groups, dilations)
    # otherwise: the full result, the padding cropped, zeros past the computed area (output_shape)
    y = F.pad(CONV_T[nd](x, w, None, strides, 0, 0, groups, dilations),
              flat_pads([(-p, sz + p - f) for (p, _), sz, f in zip(pads, sizes, full)]))
    return y if b is None else y + channel_param(b, y.dim())


# ------------------------------------------------------------------ normalisation

def scale_shift(s: "Step", y, gamma, beta, shape):
    if gamma is not None:
        y = s.r(y * gamma.reshape(shape))
    return y if beta is None else s.r(y + beta.reshape(shape))


@op("batch_norm")
def batch_norm(s, a):
    x = a["x"]
    shape = (-1, *[1] * (x.dim() - 2))
    y = normalize(s, x, a["mean"].reshape(shape), a["variance"].reshape(shape), f(a, "epsilon", 1e-5))
    return scale_shift(s, y, a.get("gamma"), a.get("beta"), shape)


@op("instance_norm")
def instance_norm(s, a):
    x = a["x"]
    mean, var = mean_var(s, x, list(range(2, x.dim())))
    return scale_shift(s, normalize(s, x, mean, var, f(a, "epsilon", 1e-5)), a.get("gamma"), a.get("beta"),
                       (-1, *[1] * (x.dim() - 2)))


@op("layer_norm")
def layer_norm(s, a):
    x = a["x"]
    dims = sorted(axes_of(a.get("axes"), x.dim()))
    eps, gamma, beta = f(a, "epsilon", 1e-5), a.get("gamma"), a.get("beta")
    if not s.ane and dims == list(range(x.dim() - len(dims), x.dim())):
        return F.layer_norm(x, x.shape[x.dim() - len(dims):], gamma, beta, eps)
    mean, var = mean_var(s, x, dims)
    return scale_shift(s, normalize(s, x, mean, var, eps), gamma, beta, [x.shape[i] if i in dims else 1 for i in range(x.dim())])


@op("l2_norm")
def l2_norm(s, a):
    x, r = a["x"], s.r
    dims = list(range(max(0, x.dim() - 3), x.dim()))
    ss = r(acc_sum(s, r(x * x), dims, True))
    return r(x * r(torch.rsqrt(ss + f(a, "epsilon", 1e-6))))


@op("local_response_norm")
def local_response_norm(s, a):
    x, r = a["x"], s.r
    size = int(a["size"])
    sq = r(x * x).unsqueeze(1)
    window = F.pad(sq, (0, 0) * (x.dim() - 2) + (size // 2, (size - 1) // 2))
    pool = F.avg_pool3d if x.dim() == 4 else F.avg_pool2d
    mean = pool(window, (size,) + (1,) * (x.dim() - 2), 1).squeeze(1)
    base = r(f(a, "k", 1.0) + f(a, "alpha", 1e-4) * mean)
    return r(x / r(base ** f(a, "beta", 0.75)))


@op("softmax")
def softmax(s, a):
    x, axis = a["x"], int(a.get("axis", -1))
    if not s.ane:
        return torch.softmax(x, axis)
    e = r16(torch.exp(x - x.amax(axis, keepdim=True)))
    return r16(e / r16(acc_sum(s, e, [axis], True)))


@op("scaled_dot_product_attention")
def sdpa(s, a):
    q, k, v, mask = a["query"], a["key"], a["value"], a.get("attn_mask")
    if not s.ane:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = r16(mm(s, q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else r16(scores + mask)
    return mm(s, softmax(s, {"x": scores, "axis": -1}), v)


# ------------------------------------------------------------------ reductions

REDUCE = {
    "reduce_sum": lambda s, x, d, k: acc_sum(s, x, d, k),
    "reduce_mean": lambda s, x, d, k: acc_sum(s, x, d, k) / math.prod(x.shape[i] for i in d),
    "reduce_max": lambda s, x, d, k: x.amax(d, k),
    "reduce_min": lambda s, x, d, k: x.amin(d, k),
    "reduce_prod": lambda s, x, d, k: prod(x, d, k),
    "reduce_l1_norm": lambda s, x, d, k: acc_sum(s, x.abs(), d, k),
    "reduce_l2_norm": lambda s, x, d, k: torch.sqrt(acc_sum(s, s.r(x * x), d, k)),
    "reduce_sum_square": lambda s, x, d, k: acc_sum(s, s.r(x * x), d, k),
    "reduce_log_sum": lambda s, x, d, k: torch.log(acc_sum(s, x, d, k)),
    "reduce_log_sum_exp": lambda s, x, d, k: torch.logsumexp(x, d, k),
}


def prod(x, dims, keepdim):
    for d in sorted(dims, reverse=True):
        x = x.prod(d, keepdim)
    return x


@op(*REDUCE)
def reduction(s, a):
    x = a["x"]
    return REDUCE[s.op.type](s, x, axes_of(a.get("axes"), x.dim()), bool(a.get("keep_dims", False)))


@op("reduce_argmax", "reduce_argmin")
def reduce_arg(s, a):
    x, axis, keep = a["x"], int(a.get("axis", -1)), bool(a.get("keep_dims", False))
    return (torch.argmax if s.op.type == "reduce_argmax" else torch.argmin)(x, axis, keep)


# ------------------------------------------------------------------ pooling and resizing

def pool_setup(a, x):
    kernel = ints(a["kernel_sizes"])
    nd = len(kernel)
    strides = ints(a["strides"]) if a.get("strides") is not None else [1] * nd
    pads = conv_pads(a.get("pad_type", "valid"), a.get("pad"), x.shape[2:], kernel, strides, [1] * nd)
    native = all(p == q and p <= k // 2 for (p, q), k in zip(pads, kernel))
    return kernel, strides, pads, native, bool(a.get("ceil_mode", False))


@op("max_pool")
def max_pool(s, a):
    x = a["x"]
    kernel, strides, pads, native, ceil = pool_setup(a, x)
    fn = getattr(F, f"max_pool{len(kernel)}d")
    if native:
        return fn(x, kernel, strides, [p for p, _ in pads], ceil_mode=ceil)
    return fn(F.pad(x, flat_pads(pads), value=float("-inf")), kernel, strides, 0, ceil_mode=ceil)


@op("avg_pool", "l2_pool")
def avg_pool(s, a):
    x = a["x"]
    kernel, strides, pads, native, ceil = pool_setup(a, x)
    fn = getattr(F, f"avg_pool{len(kernel)}d")
    l2 = s.op.type == "l2_pool"
    if l2:
        x = s.r(x * x)
    exclude = bool(a.get("exclude_padding_from_average", False)) and not l2
    if native:
        y = fn(x, kernel, strides, [p for p, _ in pads], ceil, not exclude)
    else:
        y = fn(F.pad(x, flat_pads(pads)), kernel, strides, 0, ceil)
        if exclude:
            ones = F.pad(torch.ones(1, 1, *x.shape[2:]), flat_pads(pads))
            y = y / fn(ones, kernel, strides, 0, ceil)
    return torch.sqrt(y * math.prod(kernel)) if l2 else y


def grid(mode: str, n_in: int, n_out: int) -> torch.Tensor:
    """Sample positions (float64) of MIL's resize sampling modes along one axis."""
    i = torch.arange(n_out, dtype=torch.float64)
    if mode in ("ALIGN_CORNERS", "STRICT_ALIGN_CORNERS"):
        g = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else torch.full((1,), (n_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
    elif mode == "DEFAULT":
        g = i * (n_in / n_out)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    elif mode in ("UNALIGN_CORNERS", "HALF_PIXEL"):
        g = (i + 0.5) * (n_in / n_out) - 0.5
    else:
        raise ModelError(f"unknown sampling mode {mode!r}")
    return g.clamp(0, n_in - 1)


def lerp_axis(x: torch.Tensor, dim: int, g: torch.Tensor) -> torch.Tensor:
    lo = g.floor().long()
    hi = (lo + 1).clamp(max=x.shape[dim] - 1)
    w = (g - lo).to(x.dtype).reshape([-1] + [1] * (x.dim() - 1 - dim % x.dim()))
    a, b = x.index_select(dim, lo), x.index_select(dim, hi)
    return a + (b - a) * w


def nearest_axis(x: torch.Tensor, dim: int, idx: torch.Tensor) -> torch.Tensor:
    return x.index_select(dim, idx.long().clamp(0, x.shape[dim] - 1))


TORCH_RESIZE = {("ALIGN_CORNERS", True): dict(mode="bilinear", align_corners=True),
                ("STRICT_ALIGN_CORNERS", True): dict(mode="bilinear", align_corners=True),
                ("UNALIGN_CORNERS", True): dict(mode="bilinear", align_corners=False),
                ("DEFAULT", False): dict(mode="nearest")}


def resize(x: torch.Tensor, sizes: list[int], mode: str, linear: bool) -> torch.Tensor:
    """Resize the trailing len(sizes) dims (torch's kernels where they sample the same points)."""
    fast = TORCH_RESIZE.get((mode, linear))
    if fast and x.dim() == 4 and len(sizes) == 2 and min(sizes) > 1 and x.is_floating_point():
        return F.interpolate(x, size=sizes, **fast)
    for k, n_out in enumerate(sizes):
        dim = x.dim() - len(sizes) + k
        n_in = x.shape[dim]
        if n_in == n_out and mode != "OFFSET_CORNERS":
            continue
        g = grid(mode, n_in, n_out)
        if linear:
            x = lerp_axis(x, dim, g)
        else:  # DEFAULT floors like TF's resize_nearest; aligned modes round; half-pixel modes take the centre
            x = nearest_axis(x, dim, g.floor() if mode == "DEFAULT" else g.round() if mode.endswith("ALIGN_CORNERS") and
                             mode != "UNALIGN_CORNERS" else (g + 0.5).floor())
    return x


@op("upsample_nearest_neighbor")
def upsample_nearest(s, a):
    x = a["x"]
    scales = [f(a, "scale_factor_height", 1), f(a, "scale_factor_width", 1)]
    if x.dim() == 4 and all(sc == int(sc) for sc in scales):
        return F.interpolate(x, scale_factor=scales, mode="nearest")
    for dim, scale in zip((-2, -1), scales):  # source index floor(i / scale)
        n_out = int(math.floor(x.shape[dim] * scale))
        x = nearest_axis(x, x.dim() + dim, torch.floor(torch.arange(n_out, dtype=torch.float64) / scale))
    return x


@op("upsample_bilinear")
def upsample_bilinear(s, a):
    x = a["x"]
    align = bool(a.get("align_corners", True))
    half = bool(a.get("half_pixel_centers", not align))
    mode = "ALIGN_CORNERS" if align else "UNALIGN_CORNERS" if half else "DEFAULT"
    sizes = [int(math.floor(x.shape[-2] * f(a, "scale_factor_height", 1))),
             int(math.floor(x.shape[-1] * f(a, "scale_factor_width", 1)))]
    return resize(x, sizes, mode, True)


@op("resize_bilinear", "resize_nearest_neighbor")
def resize_target(s, a):
    sizes = [int(a.get("target_size_height", 1)), int(a.get("target_size_width", 1))]
    linear = s.op.type == "resize_bilinear"
    return resize(a["x"], sizes, a.get("sampling_mode", "DEFAULT") if linear else "DEFAULT", linear)


@op("resize")
def resize_op(s, a):
    x, shape, n = a["x"], ints(a["shape"]), int(a["resized_dims"])
    sizes = [sz if sz else x.shape[x.dim() - n + i] for i, sz in enumerate(shape[len(shape) - n:])]
    return resize(x, sizes, a.get("sampling_mode", "DEFAULT"), a.get("interpolation_mode", "LINEAR") == "LINEAR")


@op("crop")
def crop(s, a):
    x = a["x"]
    (t, b), (l, r) = ints(a["crop_height"]), ints(a["crop_width"])
    return x[..., t:x.shape[-2] - b, l:x.shape[-1] - r]


# ------------------------------------------------------------------ shape manipulation

@op("reshape")
def reshape(s, a):
    x, shape = a["x"], ints(a["shape"])
    # 0 copies the matching dim of x counted from the right (iOS17 rule; same as iOS15 when ranks agree)
    lead = x.dim() - len(shape)
    return x.reshape([(x.shape[lead + i] if lead + i >= 0 else 1) if d == 0 else d for i, d in enumerate(shape)])


@op("reshape_like")
def reshape_like(s, a):
    ends, masks = ints(a["ends"]), [bool(m) for m in ints(a["end_masks"])]
    shape = []
    for ref, b, e, m in zip(a["ref_tensors"], ints(a["begins"]), ends, masks):
        shape += list(ref.shape[b:None if m else e])
    return a["x"].reshape(shape)


@op("transpose")
def transpose(s, a):
    return a["x"].permute(ints(a["perm"]))


@op("squeeze")
def squeeze(s, a):
    x = a["x"]
    if a.get("axes") is None:
        return x.squeeze()
    return x.squeeze(tuple(axes_of(a["axes"], x.dim())))


@op("expand_dims")
def expand_dims(s, a):
    x = a["x"]
    rank = x.dim() + len(ints(a["axes"]))
    for ax in sorted(d % rank for d in ints(a["axes"])):
        x = x.unsqueeze(ax)
    return x


@op("flatten2d")
def flatten2d(s, a):
    x, axis = a["x"], int(a.get("axis", 1)) % (a["x"].dim() or 1)
    return x.reshape(math.prod(x.shape[:axis]), -1)


@op("concat")
def concat(s, a):
    values, axis = [tensor(v) for v in a["values"]], int(a["axis"])
    if bool(a.get("interleave", False)):
        return torch.stack(values, axis % values[0].dim() + 1).flatten(axis % values[0].dim(), axis % values[0].dim() + 1)
    return torch.cat(values, axis)


@op("split")
def split(s, a):
    x, axis = a["x"], int(a["axis"])
    sizes = ints(a["split_sizes"]) if a.get("split_sizes") is not None else x.shape[axis] // int(a["num_splits"])
    return tuple(torch.split(x, sizes, axis))


@op("stack")
def stack(s, a):
    return torch.stack([tensor(v) for v in a["values"]], int(a["axis"]))


@op("tile")
def tile(s, a):
    return a["x"].repeat(ints(a["reps"]))


@op("pad")
def pad(s, a):
    x, p, mode = a["x"], ints(a["pad"]), a.get("mode", "constant")
    pairs = [(p[2 * i], p[2 * i + 1]) for i in range(len(p) // 2)]
    if mode == "constant":
        return F.pad(x, flat_pads(pairs), value=f(a, "constant_val", 0.0))
    # torch pads at most 3 trailing dims in reflect/replicate mode: fold leading dims away
    nd = len(pairs)
    while pairs and pairs[0] == (0, 0) and nd > 1:
        pairs, nd = pairs[1:], nd - 1
    lead = x.shape[: x.dim() - nd]
    y = F.pad(x.reshape(1, -1, *x.shape[x.dim() - nd:]), flat_pads(pairs), mode=mode)
    return y.reshape(*lead, *y.shape[y.dim() - nd:])


@op("pixel_shuffle")
def pixel_shuffle(s, a):
    return F.pixel_shuffle(a["x"], int(a["upscale_factor"]))


@op("pixel_unshuffle")
def pixel_unshuffle(s, a):
    return F.pixel_unshuffle(a["x"], int(a["downscale_factor"]))


@op("depth_to_space")
def depth_to_space(s, a):
    x, b = a["x"], int(a["block_size"])
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


@op("space_to_depth")
def space_to_depth(s, a):
    x, b = a["x"], int(a["block_size"])
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


@op("space_to_batch")
def space_to_batch(s, a):
    (bh, bw), p = ints(a["block_shape"]), ints(a["paddings"])
    x = F.pad(a["x"], (p[2], p[3], p[0], p[1]))
    n, c, h, w = x.shape
    return x.reshape(n, c, h // bh, bh, w // bw, bw).permute(3, 5, 0, 1, 2, 4).reshape(n * bh * bw, c, h // bh, w // bw)


@op("batch_to_space")
def batch_to_space(s, a):
    x, (bh, bw), cr = a["x"], ints(a["block_shape"]), ints(a["crops"])
    n, c, h, w = x.shape
    y = x.reshape(bh, bw, n // (bh * bw), c, h, w).permute(2, 3, 4, 0, 5, 1).reshape(n // (bh * bw), c, h * bh, w * bw)
    return y[..., cr[0]:h * bh - cr[1], cr[2]:w * bw - cr[3]]


@op("reverse")
def reverse(s, a):
    x = a["x"]
    return x.flip(axes_of(a.get("axes"), x.dim()))


@op("reverse_sequence")
def reverse_sequence(s, a):
    x, lengths = a["x"], a["lengths"]
    seq, batch = int(a.get("seq_axis", 0)) % x.dim(), int(a.get("batch_axis", 0)) % x.dim()
    t = torch.arange(x.shape[seq]).reshape([-1 if d == seq else 1 for d in range(x.dim())])
    lens = lengths.long().reshape([-1 if d == batch else 1 for d in range(x.dim())])
    return torch.gather(x, seq, torch.where(t < lens, lens - 1 - t, t).expand(x.shape))


@op("sliding_windows")
def sliding_windows(s, a):
    x, axis = a["x"], int(a["axis"]) % a["x"].dim()
    return x.unfold(axis, int(a["size"]), int(a.get("stride", 1))).movedim(-1, axis + 1)


def slices(x: torch.Tensor, a: dict) -> tuple[list, list[int]]:
    """numpy-style slices (plus squeezed axes) of slice_by_index / slice_update arguments."""
    rank = x.dim()
    begin, end = ints(a["begin"]), ints(a["end"])
    stride = ints(a["stride"]) if a.get("stride") is not None else [1] * rank
    masks = {m: [bool(v) for v in ints(a[m])] if a.get(m) is not None else [False] * rank
             for m in ("begin_mask", "end_mask", "squeeze_mask")}
    out, squeeze = [], []
    for i in range(rank):
        if masks["squeeze_mask"][i]:
            out.append(begin[i] % x.shape[i])
            squeeze.append(i)
            continue
        out.append(slice(None if masks["begin_mask"][i] else begin[i], None if masks["end_mask"][i] else end[i], stride[i]))
    return out, squeeze


def apply_slices(x: torch.Tensor, sl: list) -> torch.Tensor:
    for i, s_ in enumerate(sl):
        if isinstance(s_, int):
            x = x.narrow(i, s_, 1)
            continue
        start, stop, step = s_.indices(x.shape[i])
        if step > 0:
            x = x[(slice(None),) * i + (slice(start, stop, step),)]
        else:
            x = x.index_select(i, torch.arange(start, stop, step))
    return x


@op("slice_by_index")
def slice_by_index(s, a):
    x = a["x"]
    sl, squeeze = slices(x, a)
    y = apply_slices(x, sl)
    return y.squeeze(tuple(squeeze)) if squeeze else y


@op("slice_update")
def slice_update(s, a):
    x = a["x"].clone()
    sl, _ = slices(x, a)
    idx = [torch.arange(*(s_.indices(x.shape[i]))) if isinstance(s_, slice) else torch.tensor([s_]) for i, s_ in enumerate(sl)]
    grids = torch.meshgrid(*idx, indexing="ij")
    x[tuple(grids)] = a["update"].reshape(grids[0].shape).to(x.dtype)
    return x


@op("slice_by_size")
def slice_by_size(s, a):
    x = a["x"]
    for i, (b, n) in enumerate(zip(ints(a["begin"]), ints(a["size"]))):
        b %= x.shape[i] or 1
        x = x.narrow(i, b, x.shape[i] - b if n == -1 else n)
    return x


@op("shape")
def shape(s, a):
    return torch.tensor(a["x"].shape, dtype=torch.int64)


@op("fill", "fill_like")
def fill(s, a):
    v = tensor(a.get("value", 0.0))
    return torch.full(a["ref_tensor"].shape if "ref_tensor" in a else ints(a["shape"]), v.item(), dtype=v.dtype)


@op("range_1d")
def range_1d(s, a):
    start, end, step = tensor(a["start"]), tensor(a["end"]), tensor(a["step"])
    return torch.arange(start.item(), end.item(), step.item(),
                        dtype=torch.float32 if any(t.is_floating_point() for t in (start, end, step)) else torch.int64)


@op("band_part")
def band_part(s, a):
    x = a["x"]
    lower, upper = int(a.get("lower", -1)), int(a.get("upper", -1))
    i = torch.arange(x.shape[-2]).unsqueeze(1)
    j = torch.arange(x.shape[-1]).unsqueeze(0)
    keep = ((lower < 0) | (i - j <= lower)) & ((upper < 0) | (j - i <= upper))
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype))


@op("cumsum")
def cumsum(s, a):
    x, axis = a["x"], int(a.get("axis", 0))
    rev = bool(a.get("reverse", False))
    y = (x.flip(axis) if rev else x).cumsum(axis)
    if bool(a.get("exclusive", False)):
        y = y - (x.flip(axis) if rev else x)
    return y.flip(axis) if rev else y


@op("topk")
def topk(s, a):
    x = a["x"]
    vals, idx = torch.topk(x, int(a.get("k", 1)), int(a.get("axis", -1)), largest=not bool(a.get("ascending", False)), sorted=True)
    return (vals, idx) if bool(a.get("return_indices", True)) else vals


@op("argsort")
def argsort(s, a):
    return torch.argsort(a["x"], dim=int(a.get("axis", -1)), descending=not bool(a.get("ascending", False)), stable=True)


@op("one_hot")
def one_hot(s, a):
    idx, n, axis = a["indices"], int(a["one_hot_vector_size"]), int(a.get("axis", -1))
    on, off = tensor(a.get("on_value", 1)), tensor(a.get("off_value", 0))
    hot = F.one_hot(idx.long() % n, n).movedim(-1, axis % (idx.dim() + 1))
    return torch.where(hot.bool(), on, off)


@op("non_zero")
def non_zero(s, a):
    return torch.nonzero(a["x"])


# ------------------------------------------------------------------ gather / scatter

def wrap(idx: torch.Tensor, n: int) -> torch.Tensor:
    idx = idx.long()
    return torch.where(idx < 0, idx + n, idx)


@op("gather")
def gather(s, a):
    x, idx = a["x"], a["indices"]
    axis, bd = int(a.get("axis", 0)) % x.dim(), int(a.get("batch_dims", 0))
    idx = wrap(tensor(idx), x.shape[axis])
    if bd == 0:
        return x.index_select(axis, idx.reshape(-1)).reshape(*x.shape[:axis], *idx.shape, *x.shape[axis + 1:])
    b = math.prod(x.shape[:bd])
    xb = x.reshape(b, *x.shape[bd:]).movedim(axis - bd + 1, 1)
    out = xb[torch.arange(b).unsqueeze(1), idx.reshape(b, -1)]  # [b, K, rest...]
    out = out.reshape(*x.shape[:bd], *idx.shape[bd:], *xb.shape[2:])
    return out.movedim(list(range(bd, idx.dim())), list(range(axis, axis + idx.dim() - bd)))


@op("gather_along_axis")
def gather_along_axis(s, a):
    x, axis = a["x"], int(a.get("axis", 0))
    return torch.gather(x, axis, wrap(a["indices"], x.shape[axis]))


@op("gather_nd")
def gather_nd(s, a):
    x, idx, bd = a["x"], a["indices"].long(), int(a.get("batch_dims", 0))
    b = math.prod(x.shape[:bd])
    xb, ib = x.reshape(b, *x.shape[bd:]), idx.reshape(b, -1, idx.shape[-1])
    keys = [wrap(ib[..., k], xb.shape[k + 1]) for k in range(idx.shape[-1])]
    out = xb[(torch.arange(b).unsqueeze(1), *keys)]
    return out.reshape(*idx.shape[:-1], *xb.shape[1 + idx.shape[-1]:])


def scatter_mode(data, dim, index, src, mode):
    src = src.to(data.dtype)
    if mode == "update":
        return data.scatter(dim, index, src)
    if mode in ("add", "sub"):
        return data.scatter_add(dim, index, src if mode == "add" else -src)
    red = {"mul": "prod", "div": "prod", "max": "amax", "min": "amin"}[mode]
    return data.scatter_reduce(dim, index, 1 / src if mode == "div" else src, red)


@op("scatter")
def scatter(s, a):
    data, upd, axis = a["data"], a["updates"], int(a.get("axis", 0)) % a["data"].dim()
    idx = wrap(tensor(a["indices"]).reshape(-1), data.shape[axis])
    index = idx.reshape([-1 if d == axis else 1 for d in range(upd.dim())]).expand(upd.shape)
    return scatter_mode(data, axis, index, upd, a.get("mode", "add"))


@op("scatter_along_axis")
def scatter_along_axis(s, a):
    data, axis = a["data"], int(a.get("axis", 0))
    return scatter_mode(data, axis, wrap(a["indices"], data.shape[axis]), a["updates"], a.get("mode", "add"))


@op("scatter_nd")
def scatter_nd(s, a):
    data, idx, upd = a["data"], a["indices"].long(), a["updates"]
    k = idx.shape[-1]
    strides = torch.tensor([math.prod(data.shape[i + 1:k]) for i in range(k)])
    flat = (torch.stack([wrap(idx[..., i], data.shape[i]) for i in range(k)], -1) * strides).sum(-1).reshape(-1)
    d2 = data.reshape(-1, *data.shape[k:])
    u2 = upd.reshape(-1, *data.shape[k:])
    index = flat.reshape([-1] + [1] * (u2.dim() - 1)).expand(u2.shape)
    return scatter_mode(d2, 0, index, u2, a.get("mode", "add")).reshape(data.shape)


# ------------------------------------------------------------------ quantisation and random

def axis_param(v, x: torch.Tensor, axis) -> Any:
    v = tensor(v)
    if v.dim() == 0 or axis is None:
        return v
    return v.reshape([-1 if d == int(axis) % x.dim() else 1 for d in range(x.dim())])


QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}


@op("quantize")
def quantize(s, a):
    x, axis = a["input"], a.get("axis")
    q = torch.round(x / axis_param(a["scale"], x, axis))
    if a.get("zero_point") is not None:
        q = q + axis_param(a["zero_point"], x, axis)
    return q.clamp(*QRANGE[a["output_dtype"]]).to(torch.int64)


@op("dequantize")
def dequantize(s, a):
    x, axis = a["input"].float(), a.get("axis")
    if a.get("zero_point") is not None:
        x = x - axis_param(a["zero_point"], x, axis)
    return x * axis_param(a["scale"], x, axis)


def generator(s, a) -> torch.Generator:
    seed = int(a.get("seed", -1))
    return torch.Generator().manual_seed(seed if seed >= 0 else s.plan.seed)


@op("random_normal", "random_uniform", "random_bernoulli")
def random(s, a):
    shape, g = ints(a["shape"]), generator(s, a)
    if s.op.type == "random_normal":
        return torch.randn(shape, generator=g) * f(a, "stddev", 1.0) + f(a, "mean", 0.0)
    u = torch.rand(shape, generator=g)
    if s.op.type == "random_bernoulli":
        return (u < f(a, "prob", 0.5)).float()
    lo, hi = f(a, "low", 0.0), f(a, "high", 1.0)
    return lo + u * (hi - lo)


@op("random_categorical")
def random_categorical(s, a):
    x = a["x"]
    probs = torch.softmax(x, -1) if a.get("mode", "logits") == "logits" else x
    draws = torch.multinomial(probs.reshape(-1, x.shape[-1]), int(a.get("size", 1)), True, generator=generator(s, a))
    return draws.reshape(*x.shape[:-1], -1).float()


# ------------------------------------------------------------------ recurrent (MIL semantics)

ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "linear": lambda x: x,
               "scaled_tanh": torch.tanh, "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0, 1),
               "sigmoid_hard": lambda x: torch.clamp(0.2 * x + 0.5, 0, 1)}


def act(name: str):
    try:
        return ACTIVATIONS[name.lower()]
    except KeyError:
        raise ModelError(f"recurrent activation {name!r} is not supported") from None


def run_direction(x, h, step, reverse: bool):
    """Loop a cell over time (vectorised over batch and features); returns stacked outputs and the final state."""
    outs = []
    for t in (range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])):
        h = step(x[t], h)
        outs.append(h[0] if isinstance(h, tuple) else h)
    if reverse:
        outs.reverse()
    return torch.stack(outs), h


def seq_input(a) -> torch.Tensor:
    """[s, b, I]; a NeuralNetwork recurrent layer states its input as [s, b, I, 1, 1]."""
    x = a["x"]
    return x.reshape(x.shape[0], x.shape[1], -1) if x.dim() > 3 else x


def seq_outputs(a, ys, finals):
    y = torch.cat(ys, -1)
    if not bool(a.get("output_sequence", False)):
        y = torch.cat([f[0] if isinstance(f, tuple) else f for f in finals], -1).unsqueeze(0)
    return y


def initial_state(a, name: str, batch: int, width: int) -> torch.Tensor:
    v = a.get(name)
    return torch.zeros(batch, width) if v is None else v.reshape(batch, -1)


@op("lstm")
def lstm(s, a):
    """MIL lstm (gates i, f, o, z); also a NeuralNetwork LSTM, whose bidirectional form has separate
    backward initial states and returns (y, h, c, h_back, c_back)."""
    x, direction = seq_input(a), a.get("direction", "forward")
    rec, cell, out_act = (act(a.get(k, d)) for k, d in
                          (("recurrent_activation", "sigmoid"), ("cell_activation", "tanh"), ("activation", "tanh")))
    clip_v = a.get("clip")
    forget_bias, coupled = bool(a.get("forgetBias", False)), bool(a.get("coupledInputAndForgetGate", False))
    dirs = [("", direction == "reverse")] + ([("_back", True)] if direction == "bidirectional" else [])
    hidden, batch = a["weight_hh"].shape[1], x.shape[1]
    per_direction = len(s.outs) == 5
    ys, finals = [], []
    for k, (suffix, rev) in enumerate(dirs):
        w_hh, peep = a["weight_hh" + suffix], a.get("peephole" + suffix)
        xw = F.linear(x, a["weight_ih" + suffix], a.get("bias" + suffix))
        ph = peep.reshape(3, hidden) if peep is not None else None

        def step(xt, state, w_hh=w_hh, ph=ph):
            h, c = state
            i, f, o, z = (xt + h @ w_hh.t()).chunk(4, -1)
            if ph is not None:
                i, f = i + ph[0] * c, f + ph[1] * c
            f = rec(f + 1.0 if forget_bias else f)
            c = f * c + ((1 - f) if coupled else rec(i)) * cell(z)
            if clip_v is not None:
                c = c.clamp(-float(clip_v), float(clip_v))
            if ph is not None:
                o = o + ph[2] * c
            return rec(o) * out_act(c), c

        if per_direction:
            h0, c0 = (initial_state(a, n + suffix, batch, hidden) for n in ("initial_h", "initial_c"))
        else:
            sl = slice(k * hidden, (k + 1) * hidden)
            h0, c0 = (initial_state(a, n, batch, hidden * len(dirs))[:, sl] for n in ("initial_h", "initial_c"))
        y, final = run_direction(xw, (h0, c0), step, rev)
        ys.append(y)
        finals.append(final)
    y = seq_outputs(a, ys, finals)
    if per_direction:
        return (y, *finals[0], *finals[-1])
    return y, torch.cat([f[0] for f in finals], -1), torch.cat([f[1] for f in finals], -1)


@op("gru")
def gru(s, a):
    x = seq_input(a)
    rec, out_act = act(a.get("recurrent_activation", "sigmoid")), act(a.get("activation", "tanh"))
    w_hh = a["weight_hh"]
    hidden = w_hh.shape[1]
    bias = a["bias"] if a.get("bias") is not None else torch.zeros(3 * hidden)
    xw = F.linear(x, a["weight_ih"], a.get("input_bias"))
    reset_after = bool(a.get("reset_after", False))

    def step(xt, h):  # gate order r, o, z (MIL); bias is the hidden-side bias
        hw = h @ w_hh.t()
        xr, xo, xz = xt.chunk(3, -1)
        hr, ho, hz = hw.chunk(3, -1)
        br, bo, bz = bias.chunk(3, -1)
        r, z = rec(xr + hr + br), rec(xz + hz + bz)
        o = out_act(xo + r * (ho + bo) if reset_after else xo + r * ho + bo)
        return (1 - z) * o + z * h

    y, h = run_direction(xw, initial_state(a, "initial_h", x.shape[1], hidden), step, a.get("direction", "forward") == "reverse")
    return seq_outputs(a, [y], [h]), h


@op("rnn")
def rnn(s, a):
    x, w_hh, f = seq_input(a), a["weight_hh"], act(a.get("activation", "tanh"))
    xw = F.linear(x, a["weight_ih"], a.get("bias"))
    h0 = initial_state(a, "initial_h", x.shape[1], w_hh.shape[1])
    y, h = run_direction(xw, h0, lambda xt, h: f(xt + h @ w_hh.t()), a.get("direction", "forward") == "reverse")
    return seq_outputs(a, [y], [h]), h


# ------------------------------------------------------------------ NeuralNetwork layers without a MIL twin
# (the NeuralNetwork loader types them "nn.<layerType>"; see anedoctor/loaders/neuralnetwork.py)

NARY = {"nn.add": torch.add, "nn.multiply": torch.mul, "nn.max": torch.maximum, "nn.min": torch.minimum,
        "nn.average": torch.add}


@op("load_constant")
def load_constant(s, a):
    return tensor(a["val"])


@op(*NARY)
def nary(s, a):
    vals = [tensor(v) for v in a["values"]]
    out = vals[0]
    for v in vals[1:]:
        out = NARY[s.op.type](out, v)
    return out / len(vals) if s.op.type == "nn.average" else out


@op("nn.scale")
def nn_scale(s, a):
    return a["x"] * a["y"] + a["bias"]


@op("nn.unary")
def nn_unary(s, a):
    x = a["x"] * (f(a, "scale", 1.0) or 1.0) + f(a, "shift", 0.0)
    return OPS[a["function"]](s, {**a, "x": x})


@op("nn.dot")
def nn_dot(s, a):
    x, y = a["x"], a["y"]
    dims = list(range(max(0, x.dim() - 3), x.dim()))
    if bool(a.get("cosine_similarity", False)):
        x, y = F.normalize(x.flatten(len(dims) and x.dim() - 3), dim=-1).reshape(x.shape), F.normalize(
            y.flatten(len(dims) and y.dim() - 3), dim=-1).reshape(y.shape)
    return (x * y).sum(dims, keepdim=True)


@op("nn.mvn")
def nn_mvn(s, a):
    x = a["x"]
    return x - x.mean([-3, -2, -1] if bool(a.get("across_channels", False)) else [-2, -1], keepdim=True)


@op("nn.batchnorm")
def nn_batchnorm(s, a):
    x = a["x"]
    dims = [d for d in range(x.dim()) if d != x.dim() - 3]
    mean, var = mean_var(s, x, dims)
    y = normalize(s, x, mean, var, f(a, "epsilon", 1e-5))
    return y * a["gamma"].reshape(-1, 1, 1) + a["beta"].reshape(-1, 1, 1)


@op("nn.embedding")
def nn_embedding(s, a):
    table, idx = a["x"], a["indices"].long()
    return table.index_select(0, idx.reshape(-1)).reshape(*idx.shape, -1) + a["bias"]


@op("nn.upperTriangular", "nn.lowerTriangular")
def nn_triangular(s, a):
    return (torch.triu if s.op.type == "nn.upperTriangular" else torch.tril)(a["x"], int(a["k"]))


@op("nn.broadcastToLike", "nn.broadcastToStatic", "nn.broadcastToDynamic")
def nn_broadcast(s, a):
    x = a["x"]
    shape = a["ref_tensor"].shape if "ref_tensor" in a else ints(a["shape"])
    return x.broadcast_to(torch.broadcast_shapes(x.shape, tuple(shape)))


@op("nn.preprocessing")
def nn_preprocessing(s, a):
    """Core ML's image preprocessing: scale and per-channel bias, or a mean image subtracted."""
    x = a["x"]
    if "mean_image" in a:
        return x - a["mean_image"]
    return x * f(a, "scale") + a["bias"]


@op("nn.sequenceRepeat")
def nn_sequence_repeat(s, a):
    x = a["x"]
    return x.repeat(int(a["reps"]), *([1] * (x.dim() - 1)))


# ------------------------------------------------------------------ constexpr (folded while compiling)

def const_array(v: Value) -> Any:
    """A constant's payload, with sub-byte data that an inline immediate kept packed unpacked."""
    from .loaders.blob import SUB_BYTE_BITS, unpack_sub_byte

    data = v.data()
    if v.type.dtype in SUB_BYTE_BITS and v.type.is_static and np.size(data) != v.type.numel:
        return unpack_sub_byte(np.asarray(data, np.uint8), v.type.dtype, v.type.numel).reshape(v.type.shape)
    return data


def fold_constexpr(op_: Op, args: dict[str, Any]) -> list[np.ndarray]:
    """Evaluate a constexpr_* op with coremltools' own reference decompression."""
    from coremltools.converters.mil.mil.ops.defs.iOS16 import constexpr_ops as v16
    from coremltools.converters.mil.mil.ops.defs.iOS18 import compression as v18

    t, g = op_.type, args.get
    if t == "constexpr_affine_dequantize":
        out = v16.constexpr_affine_dequantize.decompress(g("quantized_data"), g("zero_point"), g("scale"), int(g("axis")))
    elif t == "constexpr_cast":
        out = np.asarray(g("source_val")).astype(NUMPY_DTYPES[str(g("output_dtype"))])
    elif t == "constexpr_lut_to_dense" and g("shape") is not None:
        out = v16.constexpr_lut_to_dense.decompress(g("lut"), g("indices"), np.asarray(g("shape")))
    elif t == "constexpr_lut_to_dense":
        out = v18.constexpr_lut_to_dense.decompress(g("indices"), g("lut"), g("vector_axis"))
    elif t == "constexpr_sparse_to_dense" and g("shape") is not None:
        out = v16.constexpr_sparse_to_dense.decompress(g("nonzero_data"), g("mask"), np.asarray(g("shape")))
    elif t == "constexpr_sparse_to_dense":
        out = v18.constexpr_sparse_to_dense.decompress(g("nonzero_data"), g("mask"))
    elif t == "constexpr_blockwise_shift_scale":
        out = v18.constexpr_blockwise_shift_scale.decompress(g("data"), g("scale"), g("offset"))
    elif t == "constexpr_lut_to_sparse":
        out = v18.constexpr_lut_to_sparse.decompress(g("indices_mask"), g("indices_nonzero_data"), g("lut"), g("vector_axis"))
    elif t == "constexpr_sparse_blockwise_shift_scale":
        out = v18.constexpr_sparse_blockwise_shift_scale.decompress(g("data_mask"), g("nonzero_data"), g("scale"), g("offset"))
    else:
        raise ModelError(f"op {op_.name!r}: unsupported constexpr op {t}")
    outs = list(out) if isinstance(out, tuple) else [out]
    for v, o in zip(op_.outputs, outs):
        if v.type.is_static and tuple(np.shape(o)) != v.type.shape:
            raise ModelError(f"op {op_.name!r} ({t}): decompressed shape {np.shape(o)} does not match the declared {v.type}")
    return outs


# ------------------------------------------------------------------ the plan

@dataclass(eq=False)
class Step:
    """One op bound to its slots and precision."""

    op: Op
    fn: Callable
    single: tuple[tuple[str, int], ...]  # argument name -> slot
    multi: tuple[tuple[str, tuple[int, ...]], ...]  # variadic argument name -> slots
    outs: tuple[int, ...]
    shapes: tuple  # declared static output shapes (None when not static), checked after every op
    plan: "Plan"
    device: str = "cpu"
    rin: bool = False  # round float inputs to fp16
    rout: bool = False  # round float outputs to fp16
    ane: bool = False  # fp16 products inside compound ops
    acc16: bool = False  # fp16 accumulation
    emulate: bool = False
    needs_env: bool = False  # control flow and state ops read and write the environment
    free: tuple[int, ...] = ()
    blocks: list = field(default_factory=list)  # (input slots, steps, output slots) per nested block

    def r(self, t):
        return r16(t) if self.ane else t


class Plan:
    """A graph compiled for repeated execution at one precision and placement: constants are
    tensors in ``init``, every value has a slot, every op a :class:`Step`."""

    def __init__(self, graph: Graph, precision: str = "fp32", devices: Callable[[Op], str] | None = None,
                 accumulator: str = "fp32", seed: int = 0):
        if precision not in ("fp32", "fp16"):
            raise ModelError(f"unknown precision {precision!r} (use fp32 or fp16)")
        if accumulator not in ("fp32", "fp16"):
            raise ModelError(f"unknown accumulator {accumulator!r} (use fp32 or fp16)")
        self.graph, self.precision, self.accumulator, self.seed = graph, precision, accumulator, seed
        self.device_of = devices or (lambda o: "ane")
        self.slot_of: dict[int, int] = {}
        self.init: list[Any] = []
        self.folded: dict[int, np.ndarray] = {}
        self.inputs = [(v, self.slot(v)) for v in graph.inputs]
        self.steps = self.compile(graph.ops)
        self.outputs = [(v, self.slot(v)) for v in graph.outputs]
        self.free_after_last_use()

    def slot(self, v: Value) -> int:
        if id(v) not in self.slot_of:
            self.slot_of[id(v)] = len(self.init)
            self.init.append(to_torch(v.data()) if v.is_const else None)
        return self.slot_of[id(v)]

    def const_slot(self, value: Any) -> int:
        self.init.append(to_torch(value))
        return len(self.init) - 1

    def compile(self, ops: list[Op]) -> list[Step]:
        steps = []
        for o in ops:
            if o.type.startswith("constexpr_"):
                self.fold(o)
                continue
            fn = OPS.get(o.type) or ENV_OPS.get(o.type)
            if fn is None:
                raise ModelError(f"op {o.name!r}: the executor does not support op type {o.qualified_type!r}")
            if o.blocks and o.layer_type:
                raise ModelError(f"op {o.name!r}: the executor does not run NeuralNetwork {o.layer_type} layers "
                                 "(their bodies update blobs in place)")
            single, multi = [], []
            for name, v in o.inputs.items():
                try:
                    if isinstance(v, list):
                        multi.append((name, tuple(self.slot(x) for x in v)))
                    else:
                        single.append((name, self.slot(v)))
                except ModelError as e:
                    raise ModelError(f"op {o.name!r} ({o.type}), input {name!r}: {e}") from None
            for k, v in o.attrs.items():  # attributes (e.g. translated NeuralNetwork parameters) become constant args
                if k not in o.inputs:
                    single.append((k, self.const_slot(v.load() if isinstance(v, LazyConst) else v)))
            shapes = tuple(v.type.shape if v.type.is_static and v.type.kind == "tensor" else None for v in o.outputs)
            s = Step(o, fn, tuple(single), tuple(multi), tuple(self.slot(v) for v in o.outputs), shapes, self,
                     needs_env=o.type in ENV_OPS)
            self.place(s)
            s.blocks = [([self.slot(v) for v in b.inputs], self.compile(b.ops), [self.slot(v) for v in b.outputs])
                        for b in o.blocks]
            steps.append(s)
        return steps

    def fold(self, o: Op) -> None:
        """Decompress a constexpr op once; its outputs become constants."""
        args = {}
        for k, v in list(o.attrs.items()) + [(k, v) for k, v in o.inputs.items() if not isinstance(v, list)]:
            try:
                if isinstance(v, Value):
                    if not v.is_const and id(v) not in self.folded:
                        raise ModelError(f"input {k!r} is not a constant")
                    v = const_array(v) if v.is_const else self.folded[id(v)]
                elif isinstance(v, LazyConst):
                    v = v.load()
            except ModelError as e:
                raise ModelError(f"op {o.name!r} ({o.type}): {e}") from None
            args[k] = v
        outs = fold_constexpr(o, args)
        for v, out in zip(o.outputs, outs):
            self.folded[id(v)] = out
            self.init[self.slot(v)] = to_torch(out)

    def place(self, s: Step) -> None:
        if self.precision == "fp32" or s.needs_env:
            return
        s.emulate = True
        s.device = self.device_of(s.op) or "cpu"
        if s.device not in DISPLAY_ORDER:
            raise ModelError(f"op {s.op.name!r}: unknown device {s.device!r} (use one of {', '.join(DISPLAY_ORDER)})")
        s.rin = s.rout = s.device in ("ane", "gpu")
        s.ane = s.device == "ane"
        s.acc16 = s.ane and self.accumulator == "fp16"

    def free_after_last_use(self) -> None:
        """Drop each top-level intermediate after the step that reads it last (reads inside blocks count)."""
        keep = {slot for _, slot in self.outputs} | {slot for _, slot in self.inputs}

        def reads(step: Step):
            yield from (slot for _, slot in step.single)
            for _, slots in step.multi:
                yield from slots
            for _, steps, outs in step.blocks:
                yield from outs
                for inner in steps:
                    yield from reads(inner)

        last = {slot: i for i, step in enumerate(self.steps) for slot in reads(step)}
        produced = {slot for step in self.steps for slot in step.outs}
        frees: dict[int, list[int]] = {}
        for slot, i in last.items():
            if slot in produced and slot not in keep:
                frees.setdefault(i, []).append(slot)
        for i, step in enumerate(self.steps):
            step.free = tuple(frees.get(i, ()))

    def run(self, arrays: dict[str, np.ndarray], trace: Callable[[Step, tuple], None] | None = None,
            states: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Execute once on checked input arrays (see :func:`check_inputs`); returns the outputs as
        the model types them. ``trace(step, results)`` sees every top-level op; final state
        values go to ``states``."""
        env = list(self.init)
        for v, slot in self.inputs:
            arr = arrays.get(v.name)
            if arr is None:  # a state without an initial value starts at zero
                arr = np.zeros(tuple(d or 1 for d in (v.type.shape or ())), NUMPY_DTYPES.get(v.type.dtype, np.float32))
            t = torch.from_numpy(np.array(arr, dtype=np.float32 if v.type.dtype.startswith("fp") else
                                          bool if v.type.dtype == "bool" else np.int64))
            env[slot] = r16(t) if self.precision == "fp16" and v.type.dtype == "fp16" else t
        with torch.inference_mode():
            run_steps(self.steps, env, trace)
        if states is not None:
            states.update((v.name, env[slot].numpy()) for v, slot in self.inputs if v.type.kind == "state")
        return {v.name: to_numpy(env[slot], v.type.dtype, self.precision) for v, slot in self.outputs}


def run_steps(steps: list[Step], env: list, trace=None) -> None:
    for s in steps:
        a = {n: env[i] for n, i in s.single}
        for n, slots in s.multi:
            a[n] = [env[j] for j in slots]
        if s.rin:
            a = {n: ([r16(x) for x in v] if isinstance(v, list) else r16(v)) for n, v in a.items()}
        try:
            res = s.fn(s, a, env) if s.needs_env else s.fn(s, a)
        except ModelError:
            raise
        except Exception as e:  # an op that cannot run on these inputs: name it, never a traceback
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ModelError(f"op {s.op.name!r} ({s.op.type}) failed: {msg}") from e
        if type(res) is not tuple:
            res = (res,)
        if len(res) < len(s.outs):
            raise ModelError(f"op {s.op.name!r} ({s.op.type}) produced {len(res)} outputs, the model declares {len(s.outs)}")
        if s.rout:
            res = tuple(r16(v) for v in res)
        for slot, shape, val in zip(s.outs, s.shapes, res):
            if shape is not None and val.shape != shape and s.op.layer_type and val.numel() == math.prod(shape):
                val = val.reshape(shape)  # NeuralNetwork layers state shapes in their notional rank-5 layout
            if shape is not None and val.shape != shape:
                raise ModelError(f"op {s.op.name!r} ({s.op.type}) produced shape {tuple(val.shape)} where the model "
                                 f"declares {tuple(shape)}")
            env[slot] = val
        if trace is not None:
            trace(s, res)
        for slot in s.free:
            env[slot] = None


def run_block(block, values: list, env: list) -> list:
    ins, steps, outs = block
    for slot, v in zip(ins, values):
        env[slot] = v
    run_steps(steps, env)
    return [env[o] for o in outs]


def run_cond(s: Step, a: dict, env: list):
    pred = bool(tensor(a["pred"]).reshape(-1)[0])
    return tuple(run_block(s.blocks[0 if pred else 1], [], env))


def run_while(s: Step, a: dict, env: list):
    values = a["loop_vars"] if isinstance(a["loop_vars"], list) else [a["loop_vars"]]
    if len(s.blocks) != 2:
        raise ModelError(f"op {s.op.name!r}: a while_loop needs a condition and a body block")
    for _ in range(MAX_LOOP_ITERATIONS):
        if not bool(tensor(run_block(s.blocks[0], values, env)[0]).reshape(-1)[0]):
            return tuple(values)
        values = run_block(s.blocks[1], values, env)
    raise ModelError(f"op {s.op.name!r}: while_loop ran {MAX_LOOP_ITERATIONS} iterations without stopping")


def state_slot(s: Step) -> int:
    slots = dict(s.single)
    return slots["input"] if "input" in slots else slots["state"]


def read_state(s: Step, a: dict, env: list):
    return env[state_slot(s)]


def write_state(s: Step, a: dict, env: list):
    env[state_slot(s)] = a["data"] if "data" in a else a["value"]
    return ()


def update_state(s: Step, a: dict, env: list):
    write_state(s, a, env)
    return a["value"]


ENV_OPS = {"cond": run_cond, "while_loop": run_while, "read_state": read_state, "write_state": write_state,
           "coreml_update_state": update_state}


# ------------------------------------------------------------------ inputs

def load_model(model: Any, example_inputs: Any = None) -> Model:
    """A path, MLModel, torch module (with example inputs) or an already loaded ir.Model -> ir.Model."""
    if isinstance(model, Model):
        return model
    from .loaders import load

    return load(model, example_inputs)


def input_specs(graph: Graph) -> dict[str, tuple[Value, Any]]:
    specs = {s.name: s for s in graph.input_specs}
    return {v.name: (v, specs.get(v.name)) for v in graph.inputs}


def generate_inputs(model: Any, seed: int = 0, graph: Graph | None = None) -> dict[str, np.ndarray]:
    """Random inputs from the model's input description: normal floats, images uniform in 0..255,
    integer inputs in the range of the gather they index (token ids), else 0/1."""
    graph = graph or load_model(model).graphs[0]
    rng = np.random.default_rng(seed)
    out = {}
    for name, (v, spec) in input_specs(graph).items():
        if v.type.kind == "state":
            continue
        shape = tuple((spec.default_shape if spec and spec.default_shape else None) or tuple(d or 1 for d in (v.type.shape or ())))
        dtype = NUMPY_DTYPES.get(v.type.dtype, np.float32)
        if spec is not None and spec.image:
            out[name] = rng.integers(0, 256, shape).astype(dtype)
        elif v.type.dtype.startswith(("int", "uint")):
            out[name] = rng.integers(0, index_bound(graph, v), shape).astype(dtype)
        elif v.type.dtype == "bool":
            out[name] = rng.integers(0, 2, shape).astype(bool)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out


def default_inputs(model: Model, graph: Graph, example_inputs: Any, seed: int) -> dict[str, Any]:
    """A torch module's example inputs (by position), else generated ones."""
    if example_inputs is None:
        return generate_inputs(model, seed, graph)
    examples = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    return dict(zip((v.name for v in graph.inputs), examples))


def index_bound(graph: Graph, v: Value, depth: int = 4) -> int:
    """Upper bound for a generated integer input: the size of the axis a downstream gather indexes."""
    consumers = graph.consumers()
    bounds, frontier = [], [v]
    for _ in range(depth):
        nxt = []
        for val in frontier:
            for o in consumers.get(val.name, []):
                if o.type in ("gather", "gather_along_axis") and o.input("indices") is val:
                    x = o.input("x")
                    axis = int(o.param("axis", 0))
                    if x is not None and x.type.shape and x.type.shape[axis] is not None:
                        bounds.append(x.type.shape[axis])
                elif o.type in ("cast", "select", "add", "greater_equal", "less", "squeeze", "expand_dims", "reshape"):
                    nxt.extend(out for out in o.outputs if out.type.dtype.startswith(("int", "uint")))
        frontier = nxt
    return min(bounds) if bounds else 2


def check_inputs(graph: Graph, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Validate names, shapes and dtypes against the graph inputs; ModelError names the problem."""
    specs = input_specs(graph)
    described = ", ".join(f"{n} ({v.type})" for n, (v, _) in specs.items())
    out = {}
    for name, value in inputs.items():
        if name not in specs:
            raise ModelError(f"unknown input {name!r}; the model's inputs are: {described}")
        v, spec = specs[name]
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        want = v.type.dtype
        kind_ok = arr.dtype.kind in ("fiub" if want.startswith("fp") else "iub" if want.startswith(("int", "uint", "bool")) else "")
        if not kind_ok:
            raise ModelError(f"input {name!r}: dtype {arr.dtype} does not fit the model's {want} input")
        shape = v.type.shape
        fits = shape is None or len(shape) == arr.ndim and all(d is None or d == n for d, n in zip(shape, arr.shape))
        if v.type.kind != "state" and not fits:
            raise ModelError(f"input {name!r}: shape {tuple(arr.shape)} does not match the model's {v.type}")
        if spec is not None and spec.enumerated_shapes and tuple(arr.shape) not in [tuple(s) for s in spec.enumerated_shapes]:
            raise ModelError(f"input {name!r}: shape {tuple(arr.shape)} is not one of the enumerated shapes {spec.enumerated_shapes}")
        out[name] = arr
    missing = [n for n, (v, _) in specs.items() if n not in out and v.type.kind != "state"]
    if missing:
        raise ModelError(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
                         f"the model's inputs are: {described}")
    return out


def load_inputs(*sources: str | os.PathLike) -> dict[str, np.ndarray]:
    """Inputs from ``.npz`` files (every array, by its name) and ``name=file.npy`` / ``name=file.npz`` pairs."""
    out: dict[str, np.ndarray] = {}
    for src in map(str, sources):
        name, _, path = src.rpartition("=") if "=" in src and not Path(src).exists() else ("", "", src)
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ModelError(f"{path}: cannot read inputs ({type(e).__name__}: {str(e).splitlines()[0][:100]})") from None
        if isinstance(data, np.ndarray):
            if not name:
                raise ModelError(f"{path}: a .npy file holds one array; name it as NAME={path}")
            out[name] = data
        elif name:
            if name not in data.files and len(data.files) != 1:
                raise ModelError(f"{path}: no array named {name!r} (it has {', '.join(data.files)})")
            out[name] = data[name if name in data.files else data.files[0]]
        else:
            out.update((k, data[k]) for k in data.files)
    return out


def save_outputs(path: str | os.PathLike, outputs: dict[str, np.ndarray]) -> Path:
    """Write arrays to ``path`` as .npz, atomically."""
    from .util import write_atomic

    buffer = io.BytesIO()
    np.savez(buffer, **outputs)
    return write_atomic(path, buffer.getvalue())


# ------------------------------------------------------------------ placement

def resolve_devices(model: Model, devices: Any = None) -> tuple[Callable[[Op], str], str]:
    """Op -> device for fp16 emulation, and where it came from. ``devices`` may be a mapping
    {Op: device} (ops not in it run on the CPU in fp32), an object with ``.device(op)`` such as an
    ``anedoctor.check`` report, one device name for every op, or None: the placement predicted by
    ``anedoctor.check`` for the default chip and OS."""
    if isinstance(devices, str):
        return (lambda o: devices), f"every op on {devices}"
    if isinstance(devices, dict):
        by_id = {id(k): v for k, v in devices.items()}
        return (lambda o: by_id.get(id(o), "cpu")), "given mapping (unlisted ops on cpu)"
    if devices is not None and hasattr(devices, "device"):
        return (lambda o: devices.device(o) or "cpu"), "given placement"
    from .api import check

    report = check(model)
    return (lambda o: report.device(o) or "cpu"), "anedoctor.check placement (ops inside control flow on cpu)"


# ------------------------------------------------------------------ public API

@dataclass
class RunResult:
    outputs: dict[str, np.ndarray]
    intermediates: dict[str, np.ndarray] = field(default_factory=dict)
    states: dict[str, np.ndarray] = field(default_factory=dict)
    precision: str = "fp32"
    accumulator: str = "fp32"
    placement: str = ""
    devices: dict[str, str] = field(default_factory=dict)  # op name -> device (fp16 emulation)
    seconds: float = 0.0
    inputs: dict[str, np.ndarray] = field(default_factory=dict)

    def describe(self) -> str:
        """One line per output: shape, dtype, range, non-finite count."""
        lines = []
        for name, arr in self.outputs.items():
            a = np.asarray(arr)
            if a.dtype.kind == "f" and a.size:
                fin = a[np.isfinite(a)]
                rng = f"min {fin.min():.4g} max {fin.max():.4g} mean {fin.mean():.4g}" if fin.size else "no finite values"
                bad = a.size - fin.size
                lines.append(f"{name}: {a.dtype}{list(a.shape)} {rng}" + (f", {bad} non-finite" if bad else ""))
            else:
                lines.append(f"{name}: {a.dtype}{list(a.shape)}")
        return "\n".join(lines)


def run(model: Any, inputs: dict[str, Any] | None = None, precision: str = "fp32", devices: Any = None,
        accumulator: str = "fp32", seed: int = 0, keep_intermediates: bool = False,
        example_inputs: Any = None) -> RunResult:
    """Execute a model (path, MLModel, torch module + ``example_inputs``, or ir.Model).

    ``inputs`` maps input names to arrays (None: generated from the input description with
    ``seed``). ``precision`` is "fp32" or "fp16" (ANE/GPU emulation, see the module docstring)
    with placement from ``devices`` (see :func:`resolve_devices`). Errors raise ModelError."""
    m = load_model(model, example_inputs)
    if not m.graphs:
        raise ModelError(f"{m.path}: the model has no neural network to execute")
    device_of, placement = resolve_devices(m, devices) if precision == "fp16" else (None, "")
    start = time.perf_counter()
    graphs = m.graphs if m.format == "pipeline" else m.graphs[:1]
    feeds = dict(inputs) if inputs is not None else default_inputs(m, graphs[0], example_inputs, seed)
    given = {k: np.asarray(v) for k, v in feeds.items()}
    result = RunResult({}, precision=precision, accumulator=accumulator, placement=placement, inputs=given)

    def keep(step: Step, res: tuple):
        for v, val in zip(step.op.outputs, res):
            if isinstance(val, torch.Tensor):
                result.intermediates[v.name] = val.numpy()

    for g in graphs:
        plan = Plan(g, precision, device_of, accumulator, seed)
        names = {v.name for v in g.inputs}
        arrays = check_inputs(g, {k: v for k, v in feeds.items() if k in names or g is graphs[0]})
        result.outputs = plan.run(arrays, keep if keep_intermediates else None, result.states)
        result.devices.update((st.op.name, st.device) for st in plan.steps if st.emulate)
        feeds = {**feeds, **result.outputs}
    result.seconds = time.perf_counter() - start
    return result
