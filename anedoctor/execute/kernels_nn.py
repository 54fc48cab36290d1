"""Op kernels, part 3: recurrent cells (MIL semantics) and NeuralNetwork layers without a MIL twin."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ModelError
from .kernels import BINARY, PARAM_UNARY, UNARY, f, nn_blob, op
from .precision import ints, mean_var, normalize, tensor

# ------------------------------------------------------------------ recurrent (MIL semantics)

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "linear": lambda x: x,
    "scaled_tanh": torch.tanh,
    "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0, 1),
    "sigmoid_hard": lambda x: torch.clamp(0.2 * x + 0.5, 0, 1),
}


def act(name: str):
    try:
        return ACTIVATIONS[name.lower()]
    except KeyError:
        raise ModelError(f"recurrent activation {name!r} is not supported") from None


def run_direction(x, h, step, reverse: bool):
    """Loop a cell over time (vectorised over batch and features); returns stacked outputs and the final state."""
    outs = []
    for t in range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0]):
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
    rec, cell, out_act = (
        act(a.get(k, d))
        for k, d in (("recurrent_activation", "sigmoid"), ("cell_activation", "tanh"), ("activation", "tanh"))
    )
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

    y, h = run_direction(
        xw, initial_state(a, "initial_h", x.shape[1], hidden), step, a.get("direction", "forward") == "reverse"
    )
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

NARY = {
    "nn.add": torch.add,
    "nn.multiply": torch.mul,
    "nn.max": torch.maximum,
    "nn.min": torch.minimum,
    "nn.average": torch.add,
}


@op("load_constant")
def load_constant(s, a):
    return tensor(a["val"])


@op(*NARY)
@nn_blob(nchw=False)
def nary(s, a):
    vals = [tensor(v) for v in a["values"]]
    out = vals[0]
    for v in vals[1:]:
        out = NARY[s.op.type](out, v)
    return out / len(vals) if s.op.type == "nn.average" else out


@op("nn.scale")
@nn_blob(nchw=False)
def nn_scale(s, a):
    return a["x"] * a["y"] + a["bias"]


@op("nn.unary")
def nn_unary(s, a):
    """``function(scale * x + shift)``; the function is named by the layer, not by this op's type."""
    x, fn = a["x"] * (f(a, "scale", 1.0) or 1.0) + f(a, "shift", 0.0), a["function"]
    if fn in UNARY:
        return UNARY[fn](x)
    if fn in PARAM_UNARY:
        return PARAM_UNARY[fn](x, a)
    return BINARY[fn](x, torch.tensor(f(a, "y")))


@op("nn.dot")
def nn_dot(s, a):
    x, y = a["x"], a["y"]
    dims = list(range(max(0, x.dim() - 3), x.dim()))
    if bool(a.get("cosine_similarity", False)):
        x, y = (
            F.normalize(x.flatten(len(dims) and x.dim() - 3), dim=-1).reshape(x.shape),
            F.normalize(y.flatten(len(dims) and y.dim() - 3), dim=-1).reshape(y.shape),
        )
    return (x * y).sum(dims, keepdim=True)


@op("nn.mvn")
@nn_blob(nchw=False)
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
