"""Apple's Stable Diffusion UNet in the ANE layout (random weights), as apple/ml-stable-diffusion converts it.

Written from python_coreml_stable_diffusion/{unet,attention}.py (read at 11cf20e): diffusers' UNet2DConditionModel
with every Linear a 1x1 conv, LayerNormANE before each attention and the feed-forward, the text as a (B, C, 1, 77)
map, and SPLIT_EINSUM_V2 attention (split per head, queries cut into 512-token chunks). Sizes are Python ints fixed
at build time: the trace carries no shape arithmetic. A module of its own, so that its code does not change the
build hash of the transformer models in models_seq.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .models_seq import LayerNormANE


class CrossAttentionChunked(nn.Module):
    """ml-stable-diffusion's CrossAttention with SPLIT_EINSUM_V2 (python_coreml_stable_diffusion/attention.py
    split_einsum_v2): bias-free 1x1 q / k / v, split per head; a query sequence of at least ``chunk`` tokens is cut
    into ``chunk``-token pieces, each with its own einsum pair and softmax over the keys; shorter ones are not cut."""

    def __init__(self, dim: int, heads: int, tokens: int, context: int | None = None, chunk: int = 512):
        super().__init__()
        self.head_dim, self.tokens = dim // heads, tokens
        self.step = chunk if tokens >= chunk else tokens
        self.q = nn.Conv2d(dim, dim, 1, bias=False)
        self.k, self.v = (nn.Conv2d(context or dim, dim, 1, bias=False) for _ in range(2))
        self.out = nn.Conv2d(dim, dim, 1)

    def forward(self, x, context=None):
        memory = x if context is None else context
        qs = self.q(x).split(self.head_dim, dim=1)
        ks = self.k(memory).transpose(1, 3).split(self.head_dim, dim=3)
        vs = self.v(memory).split(self.head_dim, dim=1)
        heads = []
        for q, k, v in zip(qs, ks, vs):
            pieces = []
            for start in range(0, self.tokens - self.tokens % self.step, self.step):
                w = torch.einsum("bchq,bkhc->bkhq", q[..., start : start + self.step], k) * self.head_dim**-0.5
                pieces.append(torch.einsum("bkhq,bchk->bchq", w.softmax(dim=1), v))
            heads.append(torch.cat(pieces, dim=3) if len(pieces) > 1 else pieces[0])
        return self.out(torch.cat(heads, dim=1))


class SpatialTransformerANE(nn.Module):
    """GroupNorm, 1x1 proj_in, one block (self-attention, cross-attention over the text, GEGLU feed-forward, each
    after a LayerNormANE and added back), 1x1 proj_out, added to the input."""

    def __init__(self, dim: int, heads: int, context: int, size: int):
        super().__init__()
        self.shape = (-1, dim, size, size)
        self.norm = nn.GroupNorm(32, dim, eps=1e-6)
        self.proj_in, self.proj_out = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)
        self.norms = nn.ModuleList([LayerNormANE(dim, eps=1e-5) for _ in range(3)])
        self.attn1 = CrossAttentionChunked(dim, heads, size * size)
        self.attn2 = CrossAttentionChunked(dim, heads, size * size, context)
        self.geglu, self.ff_out = nn.Conv2d(dim, 8 * dim, 1), nn.Conv2d(4 * dim, dim, 1)

    def forward(self, x, context):
        y = self.proj_in(self.norm(x)).flatten(2).unsqueeze(2)
        y = self.attn1(self.norms[0](y)) + y
        y = self.attn2(self.norms[1](y), context) + y
        value, gate = self.geglu(self.norms[2](y)).chunk(2, dim=1)
        y = self.ff_out(value * F.gelu(gate)) + y
        return self.proj_out(y.reshape(self.shape)) + x


class ResnetBlockANE(nn.Module):
    """diffusers' ResnetBlock2D: GroupNorm, SiLU, 3x3 conv, the time embedding (SiLU, 1x1 conv) added, GroupNorm,
    SiLU, 3x3 conv, a 1x1 shortcut where the channel count changes."""

    def __init__(self, cin: int, cout: int, temb: int):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(32, cin, eps=1e-5), nn.GroupNorm(32, cout, eps=1e-5)
        self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, padding=1), nn.Conv2d(cout, cout, 3, padding=1)
        self.time = nn.Conv2d(temb, cout, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        y = self.conv1(F.silu(self.norm1(x))) + self.time(F.silu(temb))
        return self.shortcut(x) + self.conv2(F.silu(self.norm2(y)))


class NoAttention(nn.Module):
    """A level without a transformer (the UNet's deepest level)."""

    def forward(self, x, context):
        return x


class UNetANE(nn.Module):
    """Stable Diffusion's UNet2DConditionModel as ml-stable-diffusion's unet.py lays it out for the ANE (every
    Linear a 1x1 conv, text as (B, C, 1, 77)), from its structure at 11cf20e: four down levels (cross-attention at
    the first three; two resnets each, a stride-2 conv between levels), a mid block (resnet, transformer, resnet),
    four up levels of three resnets over the concatenated skips (nearest x2 upsampling and a 3x3 conv between
    levels), the sinusoidal timestep embedding built in the graph. Defaults: SD-2.1 base (channels 320-1280, 5 / 10
    / 20 / 20 heads of 64, text width 1024)."""

    def __init__(self, latent: int = 64, channels=(320, 640, 1280, 1280), heads=(5, 10, 20, 20), context: int = 1024):
        super().__init__()
        self.freqs, temb, levels = channels[0] // 2, 4 * channels[0], len(channels)
        self.time1, self.time2 = nn.Conv2d(channels[0], temb, 1), nn.Conv2d(temb, temb, 1)
        self.conv_in = nn.Conv2d(4, channels[0], 3, padding=1)
        self.down, self.downsample, skips, cin = nn.ModuleList(), nn.ModuleList(), [channels[0]], channels[0]
        for level, (cout, n) in enumerate(zip(channels, heads)):
            for _ in range(2):
                size = latent >> level
                attention = NoAttention() if level == levels - 1 else SpatialTransformerANE(cout, n, context, size)
                self.down.append(nn.ModuleList([ResnetBlockANE(cin, cout, temb), attention]))
                cin = cout
                skips.append(cout)
            if level < levels - 1:
                self.downsample.append(nn.Conv2d(cout, cout, 3, 2, 1))
                skips.append(cout)
        deepest = SpatialTransformerANE(cin, heads[-1], context, latent >> (levels - 1))
        self.mid = nn.ModuleList([ResnetBlockANE(cin, cin, temb), deepest])
        self.mid_out = ResnetBlockANE(cin, cin, temb)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, (cout, n) in enumerate(zip(reversed(channels), reversed(heads))):
            for _ in range(3):
                size = latent >> (levels - 1 - level)
                attention = NoAttention() if level == 0 else SpatialTransformerANE(cout, n, context, size)
                self.up.append(nn.ModuleList([ResnetBlockANE(cin + skips.pop(), cout, temb), attention]))
                cin = cout
            if level < levels - 1:
                self.upsample.append(nn.Conv2d(cout, cout, 3, padding=1))
        self.norm_out, self.conv_out = nn.GroupNorm(32, channels[0], eps=1e-5), nn.Conv2d(channels[0], 4, 3, padding=1)

    def forward(self, sample, timestep, text):
        exponent = torch.arange(self.freqs, dtype=torch.float32) * (-math.log(10000.0) / self.freqs)
        angles = timestep[:, None].float() * torch.exp(exponent)[None, :]
        t = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)[:, :, None, None]  # flip_sin_to_cos
        temb = self.time2(F.silu(self.time1(t)))
        x = self.conv_in(sample)
        skips = [x]
        for i, (resnet, attention) in enumerate(self.down):
            x = attention(resnet(x, temb), text)
            skips.append(x)
            if i % 2 and i // 2 < len(self.downsample):
                x = self.downsample[i // 2](x)
                skips.append(x)
        x = self.mid_out(self.mid[1](self.mid[0](x, temb), text), temb)
        for i, (resnet, attention) in enumerate(self.up):
            x = attention(resnet(torch.cat([x, skips.pop()], dim=1), temb), text)
            if i % 3 == 2 and i // 3 < len(self.upsample):
                x = self.upsample[i // 3](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(x)))


def sd_unet(batch: int = 2, latent: int = 64) -> tuple:
    """SD-2.1 base at 512 x 512 (a 64 x 64 latent), batch 2 (classifier-free guidance), 77 text tokens."""
    inputs = (torch.randn(batch, 4, latent, latent), torch.full((batch,), 999.0), torch.randn(batch, 1024, 1, 77))
    return UNetANE(latent), inputs
