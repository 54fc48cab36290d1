"""Image models of the published latencies, written by hand in torch (random weights).

torchvision and timm do not import with the CPU torch here, so each architecture is rebuilt
from its paper / reference repository at inference time (reparameterised where the source
benchmarked the reparameterised network). Every builder returns ``(module, example_inputs)``.
Shapes are Python ints fixed at build time, so traces carry no shape arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(
    cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU, bias: bool = False
) -> nn.Sequential:
    """conv + BatchNorm (+ activation); coremltools folds the BatchNorm into the conv."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def make_divisible(value: float, divisor: int = 8) -> int:
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def image(size: int | tuple[int, int] = 224) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.rand(1, 3, h, w)


# --- MobileNetV2 (torchvision.models.mobilenet_v2) ---------------------------------------------


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int, act: type = nn.ReLU6):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1, act=act)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=act), conv_bn(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def mobilenet_v2(width: float = 1.0, size: int = 224) -> tuple[nn.Module, tuple]:
    """torchvision MobileNetV2 (width multiplier ``width``), 1000 classes."""
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    cin = make_divisible(32 * width)
    last = make_divisible(1280 * max(1.0, width))
    layers: list[nn.Module] = [conv_bn(3, cin, 3, 2, act=nn.ReLU6)]
    for t, c, n, s in settings:
        cout = make_divisible(c * width)
        for i in range(n):
            layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
            cin = cout
    layers += [conv_bn(cin, last, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, 1000)]
    return nn.Sequential(*layers), (image(size),)


# --- MobileNetV3-small (torchvision.models.mobilenet_v3_small) -----------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int, act: type = nn.ReLU, gate: type = nn.Hardsigmoid):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)
        self.act, self.gate = act(), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class MobileNetV3Block(nn.Module):
    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: type, stride: int):
        super().__init__()
        layers = [conv_bn(cin, exp, 1, act=act)] if exp != cin else []
        layers.append(conv_bn(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcite(exp, make_divisible(exp // 4)))
        layers.append(conv_bn(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def mobilenet_v3_small(size: int = 224) -> tuple[nn.Module, tuple]:
    re, hs = nn.ReLU, nn.Hardswish
    config = [
        (16, 3, 16, 16, True, re, 2),
        (16, 3, 72, 24, False, re, 2),
        (24, 3, 88, 24, False, re, 1),
        (24, 5, 96, 40, True, hs, 2),
        (40, 5, 240, 40, True, hs, 1),
        (40, 5, 240, 40, True, hs, 1),
        (40, 5, 120, 48, True, hs, 1),
        (48, 5, 144, 48, True, hs, 1),
        (48, 5, 288, 96, True, hs, 2),
        (96, 5, 576, 96, True, hs, 1),
        (96, 5, 576, 96, True, hs, 1),
    ]
    layers: list[nn.Module] = [conv_bn(3, 16, 3, 2, act=hs)]
    layers += [MobileNetV3Block(*c) for c in config]
    layers += [
        conv_bn(96, 576, 1, act=hs),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(576, 1024),
        hs(),
        nn.Linear(1024, 1000),
    ]
    return nn.Sequential(*layers), (image(size),)


# --- ResNet (torchvision.models.resnet34 / resnet50) -------------------------------------------


class ResNetBlock(nn.Module):
    def __init__(self, cin: int, width: int, stride: int, bottleneck: bool):
        super().__init__()
        cout = width * 4 if bottleneck else width
        if bottleneck:
            self.body = nn.Sequential(
                conv_bn(cin, width, 1), conv_bn(width, width, 3, stride), conv_bn(width, cout, 1, act=None)
            )
        else:
            self.body = nn.Sequential(conv_bn(cin, width, 3, stride), conv_bn(width, width, 3, act=None))
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def resnet_backbone(depth: int) -> tuple[nn.Sequential, int]:
    blocks, bottleneck = {34: ([3, 4, 6, 3], False), 50: ([3, 4, 6, 3], True)}[depth]
    layers: list[nn.Module] = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, n in enumerate(blocks):
        width = 64 * 2**stage
        for i in range(n):
            layers.append(ResNetBlock(cin, width, 2 if i == 0 and stage > 0 else 1, bottleneck))
            cin = width * 4 if bottleneck else width
    return nn.Sequential(*layers), cin


def resnet(depth: int = 50, size: int = 224) -> tuple[nn.Module, tuple]:
    backbone, channels = resnet_backbone(depth)
    model = nn.Sequential(backbone, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1000))
    return model, (image(size),)


# --- MobileOne (apple/ml-mobileone, inference_mode=True: every branch folded into one conv) ------

MOBILEONE_WIDTHS = {
    "s0": (0.75, 1.0, 1.0, 2.0),
    "s1": (1.5, 1.5, 2.0, 2.5),
    "s2": (1.5, 2.0, 2.5, 4.0),
    "s3": (2.0, 2.5, 3.0, 4.0),
    "s4": (3.0, 3.5, 3.5, 4.0),
}


class MobileOneSE(nn.Module):
    """mobileone.SEBlock: global average, 1x1 reduce (by ``ratio``), ReLU, 1x1 expand, sigmoid."""

    def __init__(self, channels: int, ratio: int = 16):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(channels, channels // ratio, 1), nn.Conv2d(channels // ratio, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1)))))


def mobileone_unit(cin: int, cout: int, k: int, stride: int, groups: int, se: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups)]
    if se:
        layers.append(MobileOneSE(cout))
    return nn.Sequential(*layers, nn.ReLU())


def mobileone(variant: str = "s0", size: int = 224) -> tuple[nn.Module, tuple]:
    w = MOBILEONE_WIDTHS[variant]
    cin = min(64, int(64 * w[0]))
    layers: list[nn.Module] = [mobileone_unit(3, cin, 3, 2, 1, False)]
    for stage, (n, base) in enumerate(zip([2, 8, 10, 1], [64, 128, 256, 512])):
        cout = int(base * w[stage])
        se_blocks = {2: 5, 3: 1}.get(stage, 0) if variant == "s4" else 0
        for i in range(n):
            se = i >= n - se_blocks
            layers.append(mobileone_unit(cin, cin, 3, 2 if i == 0 else 1, cin, se))  # depthwise
            layers.append(mobileone_unit(cin, cout, 1, 1, 1, se))  # pointwise
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    return nn.Sequential(*layers), (image(size),)


# --- FastViT (apple/ml-fastvit, reparameterised) ----------------------------------------------------

FASTVIT = {  # layers, embed dims, mlp ratio, attention in the last stage
    "t8": ([2, 2, 4, 2], [48, 96, 192, 384], 3, False),
    "t12": ([2, 2, 6, 2], [64, 128, 256, 512], 3, False),
    "s12": ([2, 2, 6, 2], [64, 128, 256, 512], 4, False),
    "sa12": ([2, 2, 6, 2], [64, 128, 256, 512], 4, True),
    "sa24": ([4, 4, 12, 4], [64, 128, 256, 512], 4, True),
    "sa36": ([6, 6, 18, 6], [64, 128, 256, 512], 4, True),
    "ma36": ([6, 6, 18, 6], [76, 152, 304, 608], 4, True),
}
# MobileCLIP's image encoders MCi0-2 (apple/ml-mobileclip@4144bb1 mobileclip/models/mci.py, configs/mobileclip_s*.json):
# FastViT with a squeeze-excite (ratio 1/4) in the patch embeddings into stages 3 and 4, and a 512-wide projection
# without bias for the classifier
MCI = {
    "mci0": ([2, 6, 10, 2], [64, 128, 256, 512], 3, True),
    "mci1": ([4, 12, 20, 4], [64, 128, 256, 512], 3, True),
    "mci2": ([4, 12, 24, 4], [80, 160, 320, 640], 3, True),
}


class ConvFFN(nn.Module):
    """FastViT ConvFFN: 7x7 depthwise conv + BN, 1x1 expand, GELU, 1x1 project."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(dim, dim, 7, groups=dim, act=None), nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1)
        )

    def forward(self, x):
        return self.body(x)


class RepMixerBlock(nn.Module):
    """Reparameterised RepMixer (one 3x3 depthwise conv) + layer-scaled ConvFFN."""

    def __init__(self, dim: int, mlp_ratio: int):
        super().__init__()
        self.mixer = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.ffn = ConvFFN(dim, dim * mlp_ratio)
        self.scale = nn.Parameter(torch.full((dim, 1, 1), 1e-5))

    def forward(self, x):
        x = self.mixer(x)
        return x + self.scale * self.ffn(x)


class FastViTAttention(nn.Module):
    """FastViT's MHSA on a (B, C, H, W) map, head_dim 32, with BatchNorm pre-norm and layer scales."""

    def __init__(self, dim: int, hw: int, mlp_ratio: int):
        super().__init__()
        self.dim, self.hw, self.heads = dim, hw, dim // 32
        self.norm = nn.BatchNorm2d(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim)
        self.ffn = ConvFFN(dim, dim * mlp_ratio)
        self.scale1 = nn.Parameter(torch.full((dim, 1, 1), 1e-5))
        self.scale2 = nn.Parameter(torch.full((dim, 1, 1), 1e-5))

    def attend(self, x):
        n = self.hw * self.hw
        tokens = x.reshape(1, self.dim, n).transpose(1, 2)
        qkv = self.qkv(tokens).reshape(1, n, 3, self.heads, 32).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q * 32**-0.5) @ k.transpose(-2, -1), dim=-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(1, n, self.dim))
        return out.transpose(1, 2).reshape(1, self.dim, self.hw, self.hw)

    def forward(self, x):
        x = x + self.scale1 * self.attend(self.norm(x))
        return x + self.scale2 * self.ffn(x)


def fastvit(variant: str = "t8", size: int = 256) -> tuple[nn.Module, tuple]:
    """FastViT (apple/ml-fastvit) or, for an MCI variant, MobileCLIP's image encoder."""
    mci = variant in MCI
    depths, dims, mlp_ratio, attention = MCI[variant] if mci else FASTVIT[variant]
    gelu = nn.GELU
    layers: list[nn.Module] = [
        conv_bn(3, dims[0], 3, 2, act=gelu),
        conv_bn(dims[0], dims[0], 3, 2, dims[0], gelu),
        conv_bn(dims[0], dims[0], 1, act=gelu),
    ]
    hw = size // 4
    for stage, (n, dim) in enumerate(zip(depths, dims)):
        if stage > 0:  # PatchEmbed: 7x7 stride-2 grouped conv (reparameterised), then 1x1
            layers.append(conv_bn(dims[stage - 1], dim, 7, 2, dims[stage - 1], None))
            layers += [MobileOneSE(dim, 4)] if mci and stage >= 2 else []
            layers += [gelu(), conv_bn(dim, dim, 1, act=gelu)]
            hw //= 2
        last_attention = attention and stage == 3
        if last_attention:  # RepCPE: 7x7 depthwise positional conv (identity folded in)
            layers.append(nn.Conv2d(dim, dim, 7, 1, 3, groups=dim))
        layers += [
            FastViTAttention(dim, hw, mlp_ratio) if last_attention else RepMixerBlock(dim, mlp_ratio) for _ in range(n)
        ]
    head = dims[-1] * 2  # conv_exp: MobileOne 3x3 grouped conv with SE, then GAP + classifier
    layers += [
        nn.Conv2d(dims[-1], head, 3, 1, 1, groups=dims[-1]),
        MobileOneSE(head),
        nn.GELU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(head, 512, bias=False) if mci else nn.Linear(head, 1000),
    ]
    return nn.Sequential(*layers), (image(size),)


# --- EfficientFormer v1 (snap-research/EfficientFormer) -------------------------------------------

EFFICIENTFORMER = {
    "l1": ([3, 2, 6, 4], [48, 96, 224, 448], 1),
    "l3": ([4, 4, 12, 6], [64, 128, 320, 512], 4),
    "l7": ([6, 6, 18, 8], [96, 192, 384, 768], 8),
}


class Meta4D(nn.Module):
    """Pool mixer (avg 3x3 minus identity) + conv MLP with BatchNorm, both layer-scaled."""

    def __init__(self, dim: int):
        super().__init__()
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.mlp = nn.Sequential(
            conv_bn(dim, 4 * dim, 1, act=nn.GELU, bias=True), conv_bn(4 * dim, dim, 1, act=None, bias=True)
        )
        self.scale1 = nn.Parameter(torch.full((dim, 1, 1), 1e-5))
        self.scale2 = nn.Parameter(torch.full((dim, 1, 1), 1e-5))

    def forward(self, x):
        x = x + self.scale1 * (self.pool(x) - x)
        return x + self.scale2 * self.mlp(x)


class Meta3D(nn.Module):
    """LayerNorm + attention with learned position biases (8 heads, key 32, ratio 4) + LayerNorm + MLP."""

    def __init__(self, dim: int, tokens: int):
        super().__init__()
        self.dim, self.tokens, self.heads, self.key, self.d = dim, tokens, 8, 32, 128
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, self.heads * (2 * self.key + self.d))
        self.proj = nn.Sequential(nn.Hardswish(), nn.Linear(self.heads * self.d, dim))
        self.bias = nn.Parameter(torch.zeros(1, self.heads, tokens, tokens))  # the cached `ab` of eval mode
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.scale1, self.scale2 = nn.Parameter(torch.full((dim,), 1e-5)), nn.Parameter(torch.full((dim,), 1e-5))

    def attend(self, x):
        qkv = self.qkv(x).reshape(1, self.tokens, self.heads, -1).permute(0, 2, 1, 3)
        q, k, v = qkv.split([self.key, self.key, self.d], dim=3)
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.key**-0.5 + self.bias, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(1, self.tokens, self.heads * self.d))

    def forward(self, x):
        x = x + self.scale1 * self.attend(self.norm1(x))
        return x + self.scale2 * self.mlp(self.norm2(x))


class EfficientFormer(nn.Module):
    def __init__(self, variant: str, size: int):
        super().__init__()
        depths, dims, vit_num = EFFICIENTFORMER[variant]
        layers: list[nn.Module] = [
            conv_bn(3, dims[0] // 2, 3, 2, bias=True),
            conv_bn(dims[0] // 2, dims[0], 3, 2, bias=True),
        ]
        for stage, (n, dim) in enumerate(zip(depths, dims)):
            if stage > 0:
                layers.append(conv_bn(dims[stage - 1], dim, 3, 2, act=None, bias=True))
            layers += [Meta4D(dim) for _ in range(n - (vit_num if stage == 3 else 0))]
        self.conv = nn.Sequential(*layers)
        self.dim, self.tokens = dims[-1], (size // 32) ** 2
        self.vit = nn.Sequential(*[Meta3D(dims[-1], self.tokens) for _ in range(vit_num)])
        self.norm = nn.LayerNorm(dims[-1])
        self.head, self.dist_head = nn.Linear(dims[-1], 1000), nn.Linear(dims[-1], 1000)

    def forward(self, x):
        x = self.conv(x).reshape(1, self.dim, self.tokens).transpose(1, 2)
        x = self.norm(self.vit(x)).mean(dim=1)
        return (self.head(x) + self.dist_head(x)) / 2


def efficientformer(variant: str = "l1", size: int = 224) -> tuple[nn.Module, tuple]:
    return EfficientFormer(variant, size), (image(size),)


# --- EfficientFormerV2 (snap-research/EfficientFormer models/efficientformer_v2.py @ d01da426) ----

EFFICIENTFORMER_V2 = {  # depths, widths, vit_num, expansion ratios per stage
    "s0": ([2, 2, 6, 4], [32, 48, 96, 176], 2, [[4] * 2, [4] * 2, [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]]),
    "s1": ([3, 3, 9, 6], [32, 48, 120, 224], 2, [[4] * 3, [4] * 3, [4, 4] + [3] * 4 + [4] * 3, [4, 4, 3, 3, 4, 4]]),
    "s2": (
        [4, 4, 12, 8],
        [32, 64, 144, 288],
        4,
        [[4] * 4, [4] * 4, [4, 4] + [3] * 6 + [4] * 4, [4, 4] + [3] * 4 + [4] * 2],
    ),
    "l": (
        [5, 5, 15, 10],
        [40, 80, 192, 384],
        6,
        [[4] * 5, [4] * 5, [4] * 4 + [3] * 7 + [4] * 4, [4] * 3 + [3] * 4 + [4] * 3],
    ),
}


def attention_bias(heads: int, queries: int, keys: int) -> nn.Parameter:
    """The eval-mode bias table (heads, queries, keys) the source caches from its per-offset biases; random, as
    trained (a zero table's add would be removed by the converter)."""
    return nn.Parameter(0.02 * torch.randn(heads, queries, keys))


class V2Mlp(nn.Module):
    """Mlp(mid_conv=True): 1x1 + BN + GELU, 3x3 depthwise + BN + GELU, 1x1 + BN."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(dim, hidden, 1, act=nn.GELU, bias=True),
            conv_bn(hidden, hidden, 3, groups=hidden, act=nn.GELU, bias=True),
            conv_bn(hidden, dim, 1, act=None, bias=True),
        )

    def forward(self, x):
        return self.body(x)


class Attention4D(nn.Module):
    """8 heads, key 32, ratio 4, talking heads, position biases, local 3x3 depthwise on v; stride 2 in stage 3."""

    def __init__(self, dim: int, res: int, stride: int | None):
        super().__init__()
        self.heads, self.key, self.d = 8, 32, 128
        self.res_in, self.res = res, (res + 1) // 2 if stride else res
        self.n, dh = self.res**2, 8 * self.d
        self.stride_conv = conv_bn(dim, dim, 3, 2, dim, act=None, bias=True) if stride else nn.Identity()
        self.q, self.k = (
            conv_bn(dim, 8 * self.key, 1, act=None, bias=True),
            conv_bn(dim, 8 * self.key, 1, act=None, bias=True),
        )
        self.v = conv_bn(dim, dh, 1, act=None, bias=True)
        self.v_local = conv_bn(dh, dh, 3, groups=dh, act=None, bias=True)
        self.talking_head1, self.talking_head2 = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)
        self.proj = nn.Sequential(nn.GELU(), conv_bn(dh, dim, 1, act=None, bias=True))
        self.bias = attention_bias(8, self.n, self.n)
        self.stride = stride

    def forward(self, x):
        x = self.stride_conv(x)
        q = self.q(x).reshape(1, self.heads, self.key, self.n).transpose(2, 3)
        k = self.k(x).reshape(1, self.heads, self.key, self.n)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(1, self.heads, self.d, self.n).transpose(2, 3)
        attn = self.talking_head1((q @ k) * self.key**-0.5 + self.bias)
        attn = self.talking_head2(attn.softmax(dim=-1))
        out = (attn @ v).transpose(2, 3).reshape(1, 8 * self.d, self.res, self.res) + v_local
        if self.stride:
            out = F.interpolate(out, size=(self.res_in, self.res_in), mode="bilinear", align_corners=False)
        return self.proj(out)


class AttnFFN(nn.Module):
    def __init__(self, dim: int, ratio: int, res: int, stride: int | None):
        super().__init__()
        self.token_mixer, self.mlp = Attention4D(dim, res, stride), V2Mlp(dim, dim * ratio)
        self.scale1 = nn.Parameter(torch.full((dim, 1, 1), 1e-5))
        self.scale2 = nn.Parameter(torch.full((dim, 1, 1), 1e-5))

    def forward(self, x):
        x = x + self.scale1 * self.token_mixer(x)
        return x + self.scale2 * self.mlp(x)


class FFN(nn.Module):
    def __init__(self, dim: int, ratio: int):
        super().__init__()
        self.mlp = V2Mlp(dim, dim * ratio)
        self.scale2 = nn.Parameter(torch.full((dim, 1, 1), 1e-5))

    def forward(self, x):
        return x + self.scale2 * self.mlp(x)


class Attention4DDownsample(nn.Module):
    """Embedding(asub=True): attention (8 heads, key 16, ratio 4, LGQuery) + 3x3 stride-2 conv + BN."""

    def __init__(self, dim: int, out_dim: int, res: int):
        super().__init__()
        self.heads, self.key, self.d = 8, 16, 64
        self.res2 = (res + 1) // 2
        self.n, self.n2, dh = res * res, self.res2**2, 8 * self.d
        # LGQuery: 3x3 stride-2 depthwise conv (no BN) + AvgPool2d(1, 2) subsampling, then 1x1 + BN
        self.q_local, self.q_pool = nn.Conv2d(dim, dim, 3, 2, 1, groups=dim), nn.AvgPool2d(1, 2, 0)
        self.q_proj = conv_bn(dim, 8 * self.key, 1, act=None, bias=True)
        self.k = conv_bn(dim, 8 * self.key, 1, act=None, bias=True)
        self.v = conv_bn(dim, dh, 1, act=None, bias=True)
        self.v_local = conv_bn(dh, dh, 3, 2, dh, act=None, bias=True)
        self.proj = nn.Sequential(nn.GELU(), conv_bn(dh, out_dim, 1, act=None, bias=True))
        self.bias = attention_bias(8, self.n2, self.n)
        self.conv = conv_bn(dim, out_dim, 3, 2, act=None, bias=True)

    def forward(self, x):
        q = self.q_proj(self.q_local(x) + self.q_pool(x)).reshape(1, self.heads, self.key, self.n2).transpose(2, 3)
        k = self.k(x).reshape(1, self.heads, self.key, self.n)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(1, self.heads, self.d, self.n).transpose(2, 3)
        attn = ((q @ k) * self.key**-0.5 + self.bias).softmax(dim=-1)
        out = (attn @ v).transpose(2, 3).reshape(1, 8 * self.d, self.res2, self.res2) + v_local
        return self.proj(out) + self.conv(x)


class EfficientFormerV2(nn.Module):
    """Eval mode: the classifier and the distillation head averaged."""

    def __init__(self, variant: str, size: int):
        super().__init__()
        depths, dims, vit_num, ratios = EFFICIENTFORMER_V2[variant]
        gelu = nn.GELU
        layers: list[nn.Module] = [
            conv_bn(3, dims[0] // 2, 3, 2, act=gelu, bias=True),
            conv_bn(dims[0] // 2, dims[0], 3, 2, act=gelu, bias=True),
        ]
        for stage, (n, dim) in enumerate(zip(depths, dims)):
            res = -(-size // 2 ** (stage + 2))
            if stage == 1 or stage == 2:  # Embedding: 3x3 stride-2 conv + BN
                layers.append(conv_bn(dims[stage - 1], dim, 3, 2, act=None, bias=True))
            elif stage == 3:
                layers.append(Attention4DDownsample(dims[2], dim, -(-size // 16)))
            for i in range(n):
                if stage >= 2 and i > n - 1 - vit_num:
                    layers.append(AttnFFN(dim, ratios[stage][i], res, 2 if stage == 2 else None))
                else:
                    layers.append(FFN(dim, ratios[stage][i]))
        self.features = nn.Sequential(*layers, nn.BatchNorm2d(dims[-1]))
        self.dim = dims[-1]
        self.head, self.dist_head = nn.Linear(dims[-1], 1000), nn.Linear(dims[-1], 1000)

    def forward(self, x):
        x = self.features(x).reshape(1, self.dim, -1).mean(-1)
        return (self.head(x) + self.dist_head(x)) / 2


def efficientformer_v2(variant: str = "s0", size: int = 224) -> tuple[nn.Module, tuple]:
    return EfficientFormerV2(variant, size), (image(size),)


# --- MobileViTv2 (apple/ml-cvnets, width 1.0) -------------------------------------------------------


class LinearAttentionFFN(nn.Module):
    """MobileViTv2 LinearAttnFFN: GroupNorm(1) + separable linear self-attention, GroupNorm(1) + conv FFN."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.norm1, self.norm2 = nn.GroupNorm(1, d), nn.GroupNorm(1, d)
        self.qkv, self.out = nn.Conv2d(d, 1 + 2 * d, 1), nn.Conv2d(d, d, 1)
        self.ffn = nn.Sequential(nn.Conv2d(d, 2 * d, 1), nn.SiLU(), nn.Conv2d(2 * d, d, 1))

    def attend(self, x):
        query, key, value = self.qkv(x).split([1, self.d, self.d], dim=1)
        context = (key * torch.softmax(query, dim=-1)).sum(dim=-1, keepdim=True)
        return self.out(F.relu(value) * context)

    def forward(self, x):
        x = x + self.attend(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class MobileViTv2Block(nn.Module):
    def __init__(self, channels: int, d: int, n_blocks: int, hw: int):
        super().__init__()
        self.channels, self.d, self.hw = channels, d, hw
        self.local = nn.Sequential(
            conv_bn(channels, channels, 3, groups=channels, act=nn.SiLU), nn.Conv2d(channels, d, 1, bias=False)
        )
        self.globals = nn.Sequential(*[LinearAttentionFFN(d) for _ in range(n_blocks)], nn.GroupNorm(1, d))
        self.project = conv_bn(d, channels, 1, act=None)

    def forward(self, x):
        h = self.hw // 2
        y = self.local(x).reshape(self.d, h, 2, h, 2).permute(0, 2, 4, 1, 3)  # 2x2 patches, rank <= 5
        y = self.globals(y.reshape(1, self.d, 4, h * h))
        y = y.reshape(self.d, 2, 2, h, h).permute(0, 3, 1, 4, 2).reshape(1, self.d, self.hw, self.hw)
        return self.project(y)


def mobilevit_v2(size: int = 256) -> tuple[nn.Module, tuple]:
    layers: list[nn.Module] = [
        conv_bn(3, 32, 3, 2, act=nn.SiLU),
        InvertedResidual(32, 64, 1, 2, nn.SiLU),
        InvertedResidual(64, 128, 2, 2, nn.SiLU),
        InvertedResidual(128, 128, 1, 2, nn.SiLU),
    ]
    hw = size // 4
    for cin, cout, d, n in [(128, 256, 128, 2), (256, 384, 192, 4), (384, 512, 256, 3)]:
        hw //= 2
        layers += [InvertedResidual(cin, cout, 2, 2, nn.SiLU), MobileViTv2Block(cout, d, n, hw)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers), (image(size),)
