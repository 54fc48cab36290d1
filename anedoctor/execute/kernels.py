"""Op kernels, part 1: the registry, elementwise, linear algebra, normalisation, reductions, pooling and resizing.

Each MIL op type maps to ``fn(step, args) -> tensor | tuple``; :func:`op` registers it in ``OPS``."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F

from ..errors import ModelError

if TYPE_CHECKING:
    from .plan import Step
from .precision import (
    ACC_CHUNK,
    acc_chunks,
    acc_sum,
    axes_of,
    channel_param,
    flat_pads,
    ints,
    mean_var,
    mm,
    normalize,
    r16,
)

OPS: dict[str, Callable[["Step", dict], Any]] = {}


def op(*names: str):
    """Register an op implementation ``fn(step, args) -> tensor | tuple of tensors``."""

    def register(fn):
        for n in names:
            OPS[n] = fn
        return fn

    return register


# NeuralNetwork layers of the rank-5 era act on the trailing [C, H, W] of a blob of rank >= 3 (the leading axes are
# batch) and, under the rank-5 mapping, read a (C,) vector as (C, 1, 1): apple/coremltools,
# mlmodel/format/NeuralNetwork.proto (Batchnorm, MeanVarianceNormalize, LRN, ReorganizeData, PReLU / parametric
# softplus activations, Softmax, Concat, Split, Reduce, Bias, Scale, Add/Multiply/Max/Min/Average layers; A).
# The loader keeps the stated rank and names the MIL op, so a kernel running such a layer must read the blob as the
# layer does. These layer types name the notional axes -3/-2/-1:
NOTIONAL_LAYERS = frozenset("softmax concat split reduce mvn bias scale add multiply max min average".split())


def nchw_view(x: torch.Tensor) -> tuple[torch.Tensor, Callable] | None:
    """A blob as ``[n, C, H, W]`` (leading axes folded into n; ``(C,)`` as ``(1, C, 1, 1)``) and the way back."""
    if x.dim() in (0, 2, 4):
        return None
    if x.dim() == 1:
        return x.reshape(1, -1, 1, 1), lambda y: y.reshape(-1)
    return x.reshape(-1, *x.shape[-3:]), lambda y: y.reshape(*x.shape[:-3], *y.shape[-3:])


def notional_view(a: dict) -> tuple[dict, Callable] | None:
    """``(C,)`` operands as ``(C, 1, 1)`` when the others are rank 1 or >= 3, and the way back."""
    ranks = {t.dim() for t in [*a.get("values", ()), a.get("x"), a.get("y")] if isinstance(t, torch.Tensor)} - {0}
    if 1 not in ranks or 2 in ranks:
        return None

    def lift(t):
        return t.reshape(-1, 1, 1) if isinstance(t, torch.Tensor) and t.dim() == 1 else t

    lifted = {k: [lift(t) for t in v] if k == "values" else lift(v) if k in ("x", "y") else v for k, v in a.items()}
    return lifted, (lambda y: y.reshape(-1)) if ranks == {1} else (lambda y: y)


def nn_blob(nchw: bool):
    """Run a kernel on the blob as a rank-5-era NeuralNetwork layer reads it: with ``nchw`` (the MIL op takes
    ``[n, C, *D]``; any NeuralNetwork layer) ``x`` at rank 4, else (a layer of NOTIONAL_LAYERS) ``(C,)`` operands as
    ``(C, 1, 1)``. Results take the blob's own rank back; ops of ML Programs (no ``layer_type``) keep MIL's reading."""

    def wrap(kernel):
        @functools.wraps(kernel)
        def run(s, a):
            lt = s.op.layer_type
            view = None
            if lt and nchw:
                xv = nchw_view(a["x"])
                view = xv and ({**a, "x": xv[0]}, xv[1])
            elif lt in NOTIONAL_LAYERS:
                view = notional_view(a)
            if view is None:
                return kernel(s, a)
            out = kernel(s, view[0])
            return tuple(view[1](y) for y in out) if isinstance(out, tuple) else view[1](out)

        return run

    return wrap


# ------------------------------------------------------------------ elementwise

UNARY = {
    "abs": torch.abs,
    "acos": torch.acos,
    "asin": torch.asin,
    "atan": torch.atan,
    "atanh": torch.atanh,
    "ceil": torch.ceil,
    "cos": torch.cos,
    "cosh": torch.cosh,
    "erf": torch.erf,
    "exp": torch.exp,
    "exp2": torch.exp2,
    "floor": torch.floor,
    "round": torch.round,
    "sign": torch.sign,
    "sin": torch.sin,
    "sinh": torch.sinh,
    "sqrt": torch.sqrt,
    "square": torch.square,
    "tan": torch.tan,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "relu6": lambda x: F.hardtanh(x, 0.0, 6.0),
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "softsign": F.softsign,
    "softplus": F.softplus,
    "logical_not": torch.logical_not,
    "identity": lambda x: x,
}
BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "pow": torch.pow,
    "mod": torch.remainder,
    "floor_div": torch.floor_divide,
    "equal": torch.eq,
    "not_equal": torch.ne,
    "less": torch.lt,
    "less_equal": torch.le,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}


@op(*UNARY)
def unary(s, a):
    x = a["x"]
    keeps_ints = s.op.type in ("abs", "sign", "square", "logical_not", "identity")
    return UNARY[s.op.type](x if x.is_floating_point() or keeps_ints else x.float())


@op(*BINARY)
@nn_blob(nchw=False)
def binary(s, a):
    return BINARY[s.op.type](a["x"], a["y"])


@op("real_div")
def real_div(s, a):
    x, y = a["x"], a["y"]
    if not x.is_floating_point() and not y.is_floating_point():
        return torch.div(x, y, rounding_mode="trunc")
    return torch.div(x, y)


@op("maximum", "minimum")
@nn_blob(nchw=False)
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
    "softplus_parametric": lambda x, a: (
        channel_param(a["alpha"], x.dim()) * F.softplus(x * channel_param(a["beta"], x.dim()))
    ),
    "gelu": lambda x, a: (
        x * torch.sigmoid(1.702 * x)
        if a.get("mode") == "SIGMOID_APPROXIMATION"
        else F.gelu(x, approximate="tanh" if a.get("mode") == "TANH_APPROXIMATION" else "none")
    ),
}


@op(*PARAM_UNARY)
@nn_blob(nchw=True)
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
    if s.op.layer_type == "innerProduct" and x.dim() >= 3 and x.shape[-1] != w.shape[-1]:
        x = x.flatten(-3)  # rank-5 (..., C, H, W) blob: Core ML contracts C*H*W; the plan restores (..., C_out, 1, 1)
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
    y = acc_chunks(
        s,
        cg,
        step,
        lambda lo, hi: fn(
            xs[:, :, lo:hi].reshape(n, -1, *x.shape[2:]), w[:, lo:hi], None, strides, padding, dilations, groups
        ),
    )
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
    y = F.pad(
        CONV_T[nd](x, w, None, strides, 0, 0, groups, dilations),
        flat_pads([(-p, sz + p - f) for (p, _), sz, f in zip(pads, sizes, full)]),
    )
    return y if b is None else y + channel_param(b, y.dim())


# ------------------------------------------------------------------ normalisation


def scale_shift(s: "Step", y, gamma, beta, shape):
    if gamma is not None:
        y = s.r(y * gamma.reshape(shape))
    return y if beta is None else s.r(y + beta.reshape(shape))


@op("batch_norm")
@nn_blob(nchw=True)
def batch_norm(s, a):
    x = a["x"]
    shape = (-1, *[1] * (x.dim() - 2))
    y = normalize(s, x, a["mean"].reshape(shape), a["variance"].reshape(shape), f(a, "epsilon", 1e-5))
    return scale_shift(s, y, a.get("gamma"), a.get("beta"), shape)


@op("instance_norm")
@nn_blob(nchw=True)
def instance_norm(s, a):
    x = a["x"]
    mean, var = mean_var(s, x, list(range(2, x.dim())))
    return scale_shift(
        s, normalize(s, x, mean, var, f(a, "epsilon", 1e-5)), a.get("gamma"), a.get("beta"), (-1, *[1] * (x.dim() - 2))
    )


@op("layer_norm")
@nn_blob(nchw=False)
def layer_norm(s, a):
    x = a["x"]
    dims = sorted(axes_of(a.get("axes"), x.dim()))
    eps, gamma, beta = f(a, "epsilon", 1e-5), a.get("gamma"), a.get("beta")
    if not s.ane and dims == list(range(x.dim() - len(dims), x.dim())):
        return F.layer_norm(x, x.shape[x.dim() - len(dims) :], gamma, beta, eps)
    mean, var = mean_var(s, x, dims)
    return scale_shift(
        s, normalize(s, x, mean, var, eps), gamma, beta, [x.shape[i] if i in dims else 1 for i in range(x.dim())]
    )


@op("l2_norm")
def l2_norm(s, a):
    x, r = a["x"], s.r
    dims = list(range(max(0, x.dim() - 3), x.dim()))
    ss = r(acc_sum(s, r(x * x), dims, True))
    return r(x * r(torch.rsqrt(ss + f(a, "epsilon", 1e-6))))


@op("local_response_norm")
@nn_blob(nchw=True)
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
@nn_blob(nchw=False)
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
@nn_blob(nchw=False)
def reduction(s, a):
    x = a["x"]
    return REDUCE[s.op.type](s, x, axes_of(a.get("axes"), x.dim()), bool(a.get("keep_dims", False)))


@op("reduce_argmax", "reduce_argmin")
@nn_blob(nchw=False)
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


@op("coreai.sum_pool_2d")
def sum_pool_2d(s, a):
    """Core AI's unpadded window sum (coreai-torch lowers adaptive_avg_pool2d to it and a division)."""
    x, kernel = a["x"], [int(k) for k in a["kernel_sizes"]]
    strides = [int(v) for v in a.get("strides", kernel)]
    dilations = [int(v) for v in a.get("dilations", [1, 1])]
    cols = F.unfold(x, kernel, dilation=dilations, stride=strides)  # (N, C*kh*kw, L)
    n, c = x.shape[:2]
    h, w = ((x.shape[2 + i] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1 for i in range(2))
    return cols.reshape(n, c, kernel[0] * kernel[1], h, w).sum(2)


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
        g = (
            i * ((n_in - 1) / (n_out - 1))
            if n_out > 1
            else torch.full((1,), (n_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
        )
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


TORCH_RESIZE = {
    ("ALIGN_CORNERS", True): dict(mode="bilinear", align_corners=True),
    ("STRICT_ALIGN_CORNERS", True): dict(mode="bilinear", align_corners=True),
    ("UNALIGN_CORNERS", True): dict(mode="bilinear", align_corners=False),
    ("DEFAULT", False): dict(mode="nearest"),
}


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
            x = nearest_axis(
                x,
                dim,
                g.floor()
                if mode == "DEFAULT"
                else g.round()
                if mode.endswith("ALIGN_CORNERS") and mode != "UNALIGN_CORNERS"
                else (g + 0.5).floor(),
            )
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
    sizes = [
        int(math.floor(x.shape[-2] * f(a, "scale_factor_height", 1))),
        int(math.floor(x.shape[-1] * f(a, "scale_factor_width", 1))),
    ]
    return resize(x, sizes, mode, True)


@op("resize_bilinear", "resize_nearest_neighbor")
def resize_target(s, a):
    sizes = [int(a.get("target_size_height", 1)), int(a.get("target_size_width", 1))]
    linear = s.op.type == "resize_bilinear"
    return resize(a["x"], sizes, a.get("sampling_mode", "DEFAULT") if linear else "DEFAULT", linear)


@op("resize")
def resize_op(s, a):
    x, shape, n = a["x"], ints(a["shape"]), int(a["resized_dims"])
    sizes = [sz if sz else x.shape[x.dim() - n + i] for i, sz in enumerate(shape[len(shape) - n :])]
    return resize(x, sizes, a.get("sampling_mode", "DEFAULT"), a.get("interpolation_mode", "LINEAR") == "LINEAR")


@op("crop")
def crop(s, a):
    x = a["x"]
    (top, bottom), (left, right) = ints(a["crop_height"]), ints(a["crop_width"])
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]
