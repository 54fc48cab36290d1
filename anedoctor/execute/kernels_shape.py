"""Op kernels, part 2: shape manipulation, gather/scatter, quantisation and random ops."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .kernels import f, nn_blob, op
from .precision import axes_of, flat_pads, ints, tensor

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
        shape += list(ref.shape[b : None if m else e])
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
@nn_blob(nchw=False)
def concat(s, a):
    values, axis = [tensor(v) for v in a["values"]], int(a["axis"])
    if bool(a.get("interleave", False)):
        return torch.stack(values, axis % values[0].dim() + 1).flatten(
            axis % values[0].dim(), axis % values[0].dim() + 1
        )
    return torch.cat(values, axis)


@op("split")
@nn_blob(nchw=False)
def split(s, a):
    x, axis = a["x"], int(a["axis"])
    sizes = ints(a["split_sizes"]) if a.get("split_sizes") is not None else x.shape[axis] // int(a["num_splits"])
    return tuple(torch.split(x, sizes, axis))


@op("stack")
def stack(s, a):
    return torch.stack([tensor(v) for v in a["values"]], int(a["axis"]))


@op("tile")
def tile(s, a):
    """MIL lists one repeat per axis; a NeuralNetwork tile may list fewer, and ones are prepended (torch.tile's rule;
    NeuralNetwork.proto TileLayerParams, apple/coremltools mlmodel/format/NeuralNetwork.proto, A)."""
    return a["x"].tile(ints(a["reps"]))


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
    y = F.pad(x.reshape(1, -1, *x.shape[x.dim() - nd :]), flat_pads(pairs), mode=mode)
    return y.reshape(*lead, *y.shape[y.dim() - nd :])


@op("pixel_shuffle")
def pixel_shuffle(s, a):
    return F.pixel_shuffle(a["x"], int(a["upscale_factor"]))


@op("pixel_unshuffle")
def pixel_unshuffle(s, a):
    return F.pixel_unshuffle(a["x"], int(a["downscale_factor"]))


@op("depth_to_space")
@nn_blob(nchw=True)
def depth_to_space(s, a):
    x, b = a["x"], int(a["block_size"])
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


@op("space_to_depth")
@nn_blob(nchw=True)
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
    return y[..., cr[0] : h * bh - cr[1], cr[2] : w * bw - cr[3]]


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
    masks = {
        m: [bool(v) for v in ints(a[m])] if a.get(m) is not None else [False] * rank
        for m in ("begin_mask", "end_mask", "squeeze_mask")
    }
    out, squeeze = [], []
    for i in range(rank):
        if masks["squeeze_mask"][i]:
            out.append(begin[i] % x.shape[i])
            squeeze.append(i)
            continue
        out.append(
            slice(None if masks["begin_mask"][i] else begin[i], None if masks["end_mask"][i] else end[i], stride[i])
        )
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
    idx = [
        torch.arange(*(s_.indices(x.shape[i]))) if isinstance(s_, slice) else torch.tensor([s_])
        for i, s_ in enumerate(sl)
    ]
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
    return torch.arange(
        start.item(),
        end.item(),
        step.item(),
        dtype=torch.float32 if any(t.is_floating_point() for t in (start, end, step)) else torch.int64,
    )


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
    vals, idx = torch.topk(
        x, int(a.get("k", 1)), int(a.get("axis", -1)), largest=not bool(a.get("ascending", False)), sorted=True
    )
    return (vals, idx) if bool(a.get("return_indices", True)) else vals


@op("argsort")
def argsort(s, a):
    return torch.argsort(
        a["x"], dim=int(a.get("axis", -1)), descending=not bool(a.get("ascending", False)), stable=True
    )


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
        return x.index_select(axis, idx.reshape(-1)).reshape((*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :]))
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
    return out.reshape(*idx.shape[:-1], *xb.shape[1 + idx.shape[-1] :])


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
    strides = torch.tensor([math.prod(data.shape[i + 1 : k]) for i in range(k)])
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
