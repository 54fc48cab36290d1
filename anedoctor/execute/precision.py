"""Precision-aware building blocks the kernels share: fp16 rounding, accumulators, argument readers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ..ir.dtypes import NUMPY_DTYPES

if TYPE_CHECKING:
    from .plan import Step


ACC_CHUNK = 8  # products summed in fp32 before each fp16 accumulation step (accumulator="fp16")
MAX_LOOP_ITERATIONS = 1_000_000


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
        acc = r16(acc + r16(flat[..., k : k + ACC_CHUNK].sum(-1)))
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
