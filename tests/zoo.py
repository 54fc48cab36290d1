"""A zoo of small real architectures, built in code (no downloads), for executor tests and benches.

Each entry is ``name -> builder``; a builder returns ``(module, example_inputs)`` with the module in
eval mode and seeded weights, small enough that conversion and execution take well under a second.
``convert`` turns one into an ``.mlpackage`` with coremltools.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F


def seeded(fn):
    """Build under a fixed seed so every session gets the same weights."""

    def build():
        torch.manual_seed(0)
        module, inputs = fn()
        return module.eval(), inputs

    build.__name__ = fn.__name__
    return build


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act()
    )


def randomize_bn(module):
    """Give BatchNorm layers non-trivial statistics (fresh ones are the identity)."""
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return module


class Attention(nn.Module):
    """Multi-head self/cross attention written out (q/k/v projections, softmax, output projection)."""

    def __init__(self, dim, heads, fused=False):
        super().__init__()
        self.heads, self.fused = heads, fused
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, context=None, mask=None):
        context = x if context is None else context

        def split(t):  # shapes come from unflatten/flatten: traced sizes would become constants anyway
            return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(context)), split(self.v(context))
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.q.out_features // self.heads)
            if mask is not None:
                scores = scores + mask
            out = scores.softmax(-1) @ v
        return self.o(out.transpose(1, 2).flatten(2))


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, mlp=2, fused=False, act=nn.GELU()):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, fused)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp), act, nn.Linear(dim * mlp, dim))

    def forward(self, x, mask=None):
        x = x + self.attn(self.n1(x), mask=mask)
        return x + self.mlp(self.n2(x))


# ---------------------------------------------------------------- CNNs


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = conv_bn(cin, cout, 3, stride)
        self.c2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (
            nn.Sequential()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        return F.relu(self.c2(self.c1(x)) + self.skip(x))


@seeded
def resnet():
    m = nn.Sequential(
        nn.Conv2d(3, 16, 7, 2, 3, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        BasicBlock(16, 16, 1),
        BasicBlock(16, 32, 2),
        BasicBlock(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
    return randomize_bn(m), (torch.randn(1, 3, 64, 64),)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand, k=3, act=nn.ReLU6, se=False):
        super().__init__()
        mid = cin * expand
        layers = [conv_bn(cin, mid, 1, act=act), conv_bn(mid, mid, k, stride, groups=mid, act=act)]
        if se:
            layers.append(SqueezeExcite(mid))
        layers += [nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(s))))


@seeded
def mobilenetv2():
    m = nn.Sequential(
        conv_bn(3, 16, 3, 2, act=nn.ReLU6),
        InvertedResidual(16, 16, 1, 1),
        InvertedResidual(16, 24, 2, 4),
        InvertedResidual(24, 24, 1, 4),
        InvertedResidual(24, 32, 2, 4),
        conv_bn(32, 64, 1, act=nn.ReLU6),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(64, 10),
    )
    return randomize_bn(m), (torch.randn(1, 3, 64, 64),)


@seeded
def efficientnet():
    m = nn.Sequential(
        conv_bn(3, 16, 3, 2, act=nn.SiLU),
        InvertedResidual(16, 16, 1, 1, 3, nn.SiLU, se=True),
        InvertedResidual(16, 24, 2, 4, 5, nn.SiLU, se=True),
        InvertedResidual(24, 24, 1, 4, 5, nn.SiLU, se=True),
        conv_bn(24, 64, 1, act=nn.SiLU),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
    return randomize_bn(m), (torch.randn(1, 3, 64, 64),)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1, self.pw2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ChannelsLayerNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@seeded
def convnext():
    m = nn.Sequential(
        nn.Conv2d(3, 32, 4, 4),
        ChannelsLayerNorm(32, eps=1e-6),
        ConvNeXtBlock(32),
        ConvNeXtBlock(32),
        ChannelsLayerNorm(32, eps=1e-6),
        nn.Conv2d(32, 64, 2, 2),
        ConvNeXtBlock(64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.LayerNorm(64),
        nn.Linear(64, 10),
    )
    return m, (torch.randn(1, 3, 64, 64),)


class UNet(nn.Module):
    def __init__(self, c=16):
        super().__init__()

        def double(cin, cout):
            return nn.Sequential(conv_bn(cin, cout), conv_bn(cout, cout))

        self.d1, self.d2, self.mid = double(3, c), double(c, 2 * c), double(2 * c, 4 * c)
        self.up1 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2)
        self.u1 = double(4 * c, 2 * c)
        self.u2 = double(3 * c, c)
        self.head = nn.Conv2d(c, 2, 1)

    def forward(self, x):
        a = self.d1(x)
        b = self.d2(F.max_pool2d(a, 2))
        m = self.mid(F.max_pool2d(b, 2))
        y = self.u1(torch.cat([self.up1(m), b], 1))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.u2(torch.cat([y, a], 1))
        return self.head(y).sigmoid()


@seeded
def unet():
    return randomize_bn(UNet()), (torch.randn(1, 3, 32, 32),)


class DilatedTransposed(nn.Module):
    """Dilated and strided convolutions, reflection padding, transposed convs, pixel shuffle, nearest upsampling."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=2, dilation=2)
        self.c2 = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4)
        self.c3 = nn.Conv2d(32, 32, 3, padding=4, dilation=4, padding_mode="reflect")
        self.t1 = nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1)
        self.t2 = nn.ConvTranspose2d(16, 16, 4, stride=2, padding=1, groups=2)
        self.c4 = nn.Conv2d(16, 12, 3, padding=1, padding_mode="replicate")
        self.ps = nn.PixelShuffle(2)

    def forward(self, x):
        y = F.leaky_relu(self.c1(x), 0.1)
        y = F.elu(self.c2(y))
        y = F.hardswish(self.c3(y)) + y
        y = F.relu(self.t1(y))
        y = F.hardtanh(self.t2(y), -2.0, 2.0)
        y = self.ps(self.c4(y))
        return F.interpolate(F.avg_pool2d(y, 3, 2, 1, count_include_pad=False), scale_factor=2, mode="nearest")


@seeded
def dilated_transposed():
    return DilatedTransposed(), (torch.randn(1, 3, 32, 32),)


class Conv3dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv3d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm3d(8)
        self.c2 = nn.Conv3d(8, 16, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        y = F.max_pool3d(F.relu(self.bn(self.c1(x))), 2)
        y = F.avg_pool3d(F.gelu(self.c2(y)), (1, 2, 2))
        return self.fc(y.mean((2, 3, 4)))


@seeded
def video_conv3d():
    return randomize_bn(Conv3dNet()), (torch.randn(1, 3, 4, 16, 16),)


class AudioNet(nn.Module):
    """1-D conv audio classifier on a raw waveform: strided conv front end, log compression, pooling."""

    def __init__(self):
        super().__init__()
        self.front = nn.Conv1d(1, 16, 64, stride=16, padding=24)
        self.blocks = nn.Sequential(
            nn.Conv1d(16, 32, 5, padding=2),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(32, 32, 3, padding=2, dilation=2),
            nn.BatchNorm1d(32),
            nn.PReLU(32),
            nn.Conv1d(32, 48, 3, stride=2, padding=1, groups=16),
            nn.Softplus(),
        )
        self.head = nn.Linear(48, 6)

    def forward(self, wav):
        y = torch.log(self.front(wav).abs() + 1e-3)
        y = self.blocks(y)
        return F.log_softmax(self.head(F.adaptive_max_pool1d(y, 1).flatten(1) + y.mean(-1)), -1)


@seeded
def audio_conv1d():
    return randomize_bn(AudioNet()), (torch.randn(1, 1, 4096),)


# ---------------------------------------------------------------- transformers


class ViT(nn.Module):
    def __init__(self, dim=64, depth=2, heads=4, patch=8, size=32):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, fused=True) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand_as(t[:, :1]), t], 1) + self.pos
        for blk in self.blocks:
            t = blk(t)
        return self.head(self.norm(t[:, 0]))


@seeded
def vit():
    return ViT(), (torch.randn(1, 3, 32, 32),)


class Bert(nn.Module):
    def __init__(self, vocab=100, dim=64, depth=2, heads=4, seq=16):
        super().__init__()
        self.tok, self.pos, self.typ = nn.Embedding(vocab, dim), nn.Embedding(seq, dim), nn.Embedding(2, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, 4, act=nn.GELU(approximate="tanh")) for _ in range(depth)
        )
        self.pool = nn.Linear(dim, dim)

    def forward(self, ids, mask):
        x = self.norm(self.tok(ids) + self.pos.weight + self.typ(torch.zeros_like(ids)))
        bias = (1.0 - mask[:, None, None, :]) * -10000.0
        for blk in self.blocks:
            x = blk(x, bias)
        return x, torch.tanh(self.pool(x[:, 0]))


@seeded
def bert():
    ids = torch.randint(0, 100, (1, 16), dtype=torch.int32)
    mask = torch.ones(1, 16)
    mask[:, 12:] = 0
    return Bert(), (ids, mask)


class GPT(nn.Module):
    def __init__(self, vocab=128, dim=64, depth=2, heads=4, seq=16):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Parameter(torch.randn(1, seq, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, 4) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.register_buffer("causal", torch.full((seq, seq), float("-inf")).triu(1))

    def forward(self, ids):
        x = self.tok(ids) + self.pos
        for blk in self.blocks:
            x = blk(x, self.causal)
        return self.norm(x) @ self.tok.weight.t()


@seeded
def gpt():
    return GPT(), (torch.randint(0, 128, (1, 16), dtype=torch.int32),)


class DETR(nn.Module):
    """Conv backbone, transformer encoder over pixels, decoder with learned queries, class/box heads."""

    def __init__(self, dim=32, queries=8, classes=5):
        super().__init__()
        self.backbone = nn.Sequential(conv_bn(3, 16, 3, 2), conv_bn(16, dim, 3, 2))
        self.row, self.col = nn.Parameter(torch.randn(8, dim // 2)), nn.Parameter(torch.randn(8, dim // 2))
        self.enc = TransformerBlock(dim, 4)
        self.query = nn.Parameter(torch.randn(1, queries, dim))
        self.self_attn, self.cross_attn = Attention(dim, 4), Attention(dim, 4)
        self.n1, self.n2, self.n3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, dim))
        self.cls, self.box = (
            nn.Linear(dim, classes + 1),
            nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 4)),
        )

    def forward(self, img):
        f = self.backbone(img)
        pos = torch.cat([self.col.unsqueeze(0).repeat(8, 1, 1), self.row.unsqueeze(1).repeat(1, 8, 1)], -1)
        mem = self.enc(f.flatten(2).transpose(1, 2) + pos.flatten(0, 1).unsqueeze(0))
        q = self.query
        q = self.n1(q + self.self_attn(q))
        q = self.n2(q + self.cross_attn(q, mem))
        q = self.n3(q + self.ffn(q))
        return self.cls(q).softmax(-1), self.box(q).sigmoid()


@seeded
def detr():
    return randomize_bn(DETR()), (torch.randn(1, 3, 32, 32),)


class MLPMixer(nn.Module):
    def __init__(self, dim=64, patch=8, size=32, depth=2):
        super().__init__()
        tokens = (size // patch) ** 2
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    nn.LayerNorm(dim),
                    nn.Sequential(nn.Linear(tokens, 32), nn.GELU(), nn.Linear(32, tokens)),
                    nn.LayerNorm(dim),
                    nn.Sequential(nn.Linear(dim, 128), nn.GELU(), nn.Linear(128, dim)),
                ]
            )
            for _ in range(depth)
        )
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        for n1, tok, n2, ch in self.layers:
            t = t + tok(n1(t).transpose(1, 2)).transpose(1, 2)
            t = t + ch(n2(t))
        return self.head(self.norm(t).mean(1))


@seeded
def mlp_mixer():
    return MLPMixer(), (torch.randn(1, 3, 32, 32),)


# ---------------------------------------------------------------- recurrent


class LSTMTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(12, 24, num_layers=2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(48, 4)

    def forward(self, x):
        y, (h, c) = self.lstm(x)
        return self.out(y), h


@seeded
def lstm():
    return LSTMTagger(), (torch.randn(1, 10, 12),)


class GRUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        y, h = self.gru(x)
        return self.out(y[:, -1]), h


@seeded
def gru():
    return GRUNet(), (torch.randn(1, 7, 8),)


# ---------------------------------------------------------------- generative, with fp16 trouble


class VAEDecoder(nn.Module):
    """Stable-Diffusion-style VAE decoder: GroupNorm/SiLU res blocks, nearest upsampling, mid-block
    attention. ``up_conv`` has a large gain (as in fp16-overflowing SD VAEs): its output exceeds the fp16
    range, and the GroupNorm after it brings values back, so fp32 is fine while fp16 overflows."""

    def __init__(self, c=32):
        super().__init__()
        self.post_quant = nn.Conv2d(4, c, 3, padding=1)
        self.n1, self.c1 = nn.GroupNorm(8, c), nn.Conv2d(c, c, 3, padding=1)
        self.attn_norm, self.attn = nn.GroupNorm(8, c), Attention(c, 1)
        self.up_conv = nn.Conv2d(c, c, 3, padding=1)
        self.n2, self.c2 = nn.GroupNorm(8, c), nn.Conv2d(c, 3, 3, padding=1)
        with torch.no_grad():
            self.up_conv.weight.mul_(10000.0)

    def forward(self, z):
        x = self.post_quant(z / 0.18215)
        x = x + self.c1(F.silu(self.n1(x)))
        t = self.attn_norm(x).flatten(2).transpose(1, 2)
        x = x + self.attn(t).transpose(1, 2).reshape_as(x)
        x = self.up_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.c2(F.silu(self.n2(x)))


@seeded
def vae_decoder():
    return VAEDecoder(), (torch.randn(1, 4, 8, 8),)


class EnergyHead(nn.Module):
    """Scores turned into log-densities with softplus / logsumexp / exp / pow (stable and naive forms)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 32)

    def forward(self, x):
        s = self.fc(x) * 8.0
        lse = torch.logsumexp(s, -1, keepdim=True)
        naive = torch.log(torch.exp(s).sum(-1, keepdim=True))
        rms = s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + 1e-6)
        return F.softplus(s) - lse, naive, rms


@seeded
def energy_head():
    return EnergyHead(), (torch.randn(2, 16) * 2,)


class OpsMix(nn.Module):
    """A grab bag of tensor ops that common models emit: gather/index, topk, sort, cumsum, where,
    einsum, flip, tile, split/stack, reductions, clamp, pow, erf, comparisons."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x, idx):
        a = torch.einsum("bij,jk->bik", x, self.w)
        vals, ind = a.topk(3, dim=-1)
        srt, order = torch.sort(a, dim=1, descending=True)
        g = torch.gather(a, 2, ind)
        picked = a[:, idx]
        c = torch.cumsum(a, dim=1).flip(-1)
        w = torch.where(a > 0.5, a.clamp(-1, 1), torch.erf(a) * a.pow(2))
        p, q = torch.split(w, [3, 5], dim=-1)
        s = torch.stack([p.sum(-1), q.amax(-1), q.amin(-1), w.abs().sqrt().sum(-1), w.norm(dim=-1)], -1)
        t = torch.tile(vals, (1, 1, 2)) * torch.sign(g).repeat(1, 1, 2)
        am = a.argmax(-1).to(torch.float32) + a.argmin(1).to(torch.float32).mean()
        rnd = torch.floor(a * 3) + torch.ceil(a) + torch.round(a * 2) + torch.remainder(a * 5, 2.0)
        mix = torch.maximum(a, -a).exp2() * (a != 0).float() * torch.atan(a) + torch.cos(a) * torch.sin(a)
        return (
            s,
            t,
            am,
            picked,
            c,
            srt + order.float(),
            rnd + mix + torch.tril(a[0]).sum() + F.hardsigmoid(a) * F.softsign(a),
        )


@seeded
def ops_mix():
    return OpsMix(), (torch.randn(1, 6, 8), torch.tensor([2, 0, 5], dtype=torch.int32))


ZOO = {
    f.__name__: f
    for f in (
        resnet,
        mobilenetv2,
        efficientnet,
        convnext,
        unet,
        dilated_transposed,
        video_conv3d,
        audio_conv1d,
        vit,
        bert,
        gpt,
        detr,
        mlp_mixer,
        lstm,
        gru,
        vae_decoder,
        energy_head,
        ops_mix,
    )
}
INPUT_NAMES = {"bert": ("ids", "mask"), "gpt": ("ids",), "ops_mix": ("x", "idx")}


def input_names(name: str, count: int) -> tuple[str, ...]:
    return INPUT_NAMES.get(name, ("x", "y", "z")[:count])


def convert(name: str, folder: Path, fp16: bool = False, target: str = "iOS18") -> Path:
    """Trace and convert zoo model ``name`` to ``folder/<name>[_fp16].mlpackage``; returns the path."""
    module, inputs = ZOO[name]()
    return convert_module(module, inputs, name, folder / f"{name}{'_fp16' if fp16 else ''}.mlpackage", fp16, target)


def convert_module(module, inputs, name: str, path: Path, fp16: bool = False, target: str = "iOS18") -> Path:
    """Trace ``module`` on ``inputs`` (named as zoo model ``name``'s) and save it as an ML Program at ``path``."""
    import contextlib
    import io
    import logging

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import coremltools as ct

    with torch.no_grad():
        traced = torch.jit.trace(module, inputs)
    specs = [
        ct.TensorType(name=n, shape=tuple(x.shape), dtype=x.numpy().dtype)
        for n, x in zip(input_names(name, len(inputs)), inputs)
    ]
    with contextlib.redirect_stderr(io.StringIO()):
        ml = ct.convert(
            traced,
            inputs=specs,
            convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, target),
            compute_precision=ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32,
        )
    ml.save(str(path))
    return path


_CONVERTED: dict[tuple[str, bool], Path] = {}


@pytest.fixture(scope="session")
def zoo_models(tmp_path_factory):
    """``get(name, fp16=False)`` -> path of the converted zoo model, converted once per session."""
    folder = tmp_path_factory.getbasetemp() / "zoo"
    folder.mkdir(exist_ok=True)

    def get(name: str, fp16: bool = False) -> Path:
        if (name, fp16) not in _CONVERTED:
            _CONVERTED[name, fp16] = convert(name, folder, fp16)
        return _CONVERTED[name, fp16]

    return get
