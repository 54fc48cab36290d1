"""Shape arithmetic on partly known shapes (a dim is an int or None): broadcasting, reductions,
reshapes, convolution and pooling windows, slices. Used by loaders that must propagate shapes."""

from __future__ import annotations

from math import prod
from typing import Any


def norm_axis(axis: int, rank: int) -> int | None:
    a = axis + rank if axis < 0 else axis
    return a if 0 <= a < rank else None


def plus(d: int | None, k: int) -> int | None:
    return None if d is None else d + k


def times(d: int | None, num: float, den: int = 1) -> int | None:
    return None if d is None else int(d * num // den)


def dims_prod(dims) -> int | None:
    return None if any(d is None for d in dims) else prod(dims)


def broadcast(*shapes):
    """Numpy broadcasting; a dim the inputs disagree on, or that only unknown dims decide, is None."""
    if any(s is None for s in shapes):
        return None
    n = max(map(len, shapes), default=0)
    out = []
    for dims in zip(*[(1,) * (n - len(s)) + tuple(s) for s in shapes]):
        known = {d for d in dims if d not in (None, 1)}
        out.append(known.pop() if len(known) == 1 else None if known or None in dims else 1)
    return tuple(out)


def with_dims(shape, changes: dict[int, Any]):
    """``shape`` with the dims at (possibly negative) ``changes`` keys replaced."""
    if shape is None:
        return None
    out = list(shape)
    for axis, d in changes.items():
        a = norm_axis(axis, len(out))
        if a is not None:
            out[a] = d
    return tuple(out)


def reduced(shape, axes, keep: bool):
    if shape is None:
        return None
    drop = set(range(len(shape))) if axes is None else {norm_axis(a, len(shape)) for a in axes}
    if keep:
        return tuple(1 if i in drop else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in drop)


def reshaped(target, x):
    """Target shape with 0 (copy the input dim) and -1 (infer) resolved where possible."""
    out = [(x[i] if x is not None and i < len(x) else None) if t == 0 else int(t) for i, t in enumerate(target)]
    if -1 in out:
        rest = dims_prod([d for d in out if d != -1])
        total = dims_prod(x) if x is not None else None
        out[out.index(-1)] = total // rest if total is not None and rest else None
    return tuple(out)


def shape_arg(shape):
    """An inferred shape as a MIL ``reshape`` argument (-1 for the unknown dim)."""
    return None if shape is None else [-1 if d is None else d for d in shape]


def window(n, k, s, d, pad, pad_type, deconv=False):
    """Output length of a conv / pool window along one axis (``pad`` = both sides)."""
    if n is None:
        return None
    keff = (k - 1) * d + 1
    if pad_type.startswith("same"):
        return n * s if deconv else -(-n // s)
    if deconv:
        return (n - 1) * s + keff - pad
    if pad_type == "ceil":  # pooling's includeLastPixel
        o = -(-(n + pad - k) // s) + 1
        return o - 1 if pad and (o - 1) * s >= n + pad // 2 else o
    return (n + pad - keff) // s + 1


def conv_shape(x, cout, k, s, d, pad_type, pad, deconv=False):
    """Output of a conv / pool over the last ``len(k)`` dims; ``cout`` None keeps the channels."""
    nk = len(k)
    if x is None or len(x) < nk + 1:
        return None
    spatial = [
        window(n, k[i], s[i], d[i], pad[2 * i] + pad[2 * i + 1], pad_type, deconv) for i, n in enumerate(x[-nk:])
    ]
    return (*x[: -nk - 1], cout or x[-nk - 1], *spatial)


def dynamic(shape_of_shape):
    """Output shape of a layer whose shape is a runtime rank-1 input: only the rank is known."""
    s = shape_of_shape
    return (None,) * s[0] if s is not None and len(s) == 1 and s[0] is not None else None


def sliced(n, begin, end, stride, begin_mask=False, end_mask=False):
    if n is None:
        return None
    return len(range(*slice(None if begin_mask else begin, None if end_mask else end, stride or 1).indices(n)))


def concat_shape(shapes, axis_of):
    """Concatenated shape; ``axis_of(shape)`` gives the index to sum along."""
    if any(s is None for s in shapes):
        return None
    a = axis_of(shapes[0])
    if a is None or any(len(s) != len(shapes[0]) for s in shapes):
        return None
    total = None if any(s[a] is None for s in shapes) else sum(s[a] for s in shapes)
    return with_dims(broadcast(*[with_dims(s, {a: 1}) for s in shapes]), {a: total})
