"""Work a published figure includes that ran outside the Core ML model, as models anedoctor can estimate
(cases.Outside). Kept apart from the published models' builders so that adding one does not rebuild them."""

from __future__ import annotations

import torch
from torch import nn

from .models_seq import WHISPER


class WhisperCrossKV(nn.Module):
    """whisper.cpp's cross-attention precompute (whisper_build_graph_cross): per decoder layer K = W_k x scaled by
    (dim / heads)^-0.25 and V = W_v x + b_v over the 1,500 encoder states. whisper.cpp runs it with ggml right after
    the Core ML encoder, inside the time it reports as the encoder's."""

    def __init__(self, size: str, layers: int | None):
        super().__init__()
        dim, encoder_layers, heads = WHISPER[size]
        self.scale = (dim // heads) ** -0.25
        count = layers or encoder_layers  # decoder layers: as many as the encoder's but in large-v3-turbo (4)
        self.k = nn.ModuleList([nn.Linear(dim, dim, bias=False) for _ in range(count)])
        self.v = nn.ModuleList([nn.Linear(dim, dim) for _ in range(count)])

    def forward(self, x):
        return tuple(out for k, v in zip(self.k, self.v) for out in (k(x) * self.scale, v(x)))


def whisper_cross_kv(size: str = "tiny", layers: int | None = None) -> tuple:
    return WhisperCrossKV(size, layers), (torch.randn(1, 1500, WHISPER[size][0]),)
