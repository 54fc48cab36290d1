"""Transformer and weight-streaming models of the published latencies and placements (random weights).

Two layouts, as the sources built them:
- the Hugging Face / OpenAI layout (B, S, C) with nn.Linear and matmul attention;
- Apple's ml-ane-transformers layout (B, C, 1, S): 1x1 Conv2d for every Linear, LayerNormANE over
  channels, attention split per head with einsum 'bchq,bkhc->bkhq' (apple/ml-ane-transformers
  ane_transformers/reference/{layer_norm,multihead_attention}.py, huggingface/distilbert.py),
  rewritten here so that transformers need not be installed.
Sizes are Python ints fixed at build time: the traces carry no shape arithmetic.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

# --- Apple's ANE layout (B, C, 1, S) -----------------------------------------------------------------


class LayerNormANE(nn.Module):
    """ml-ane-transformers LayerNormANE: normalise over channels of a (B, C, 1, S) tensor.

    Scale and shift are random, as in a trained checkpoint. coremltools 9 fuses these elementwise ops
    into one layer_norm op either way."""

    def __init__(self, channels: int, eps: float = 1e-7):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1 + 0.02 * torch.randn(1, channels, 1, 1))
        self.bias = nn.Parameter(0.02 * torch.randn(1, channels, 1, 1))

    def forward(self, x):
        zero_mean = x - x.mean(dim=1, keepdim=True)
        denom = ((zero_mean * zero_mean).mean(dim=1, keepdim=True) + self.eps).rsqrt()
        return (zero_mean * denom + self.bias) * self.weight


class AttentionANE(nn.Module):
    """Split-einsum attention: one einsum pair and one softmax per head, heads concatenated."""

    def __init__(self, dim: int, heads: int, key_bias: bool = True):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1, bias=key_bias)
        self.v, self.out = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)

    def forward(self, x, masks=(), memory=None, x_pos=None, memory_pos=None):
        """``masks`` are added to each head's scores one after the other, as the source added them. ``memory``
        (default ``x``) is what keys and values are projected from (cross-attention); ``x_pos`` / ``memory_pos`` are
        added to the queries' / keys' input before the projections, as Apple's reference transformer does."""
        scale = self.head_dim**-0.5
        memory = x if memory is None else memory
        qs = self.q(x if x_pos is None else x + x_pos).split(self.head_dim, dim=1)
        ks = self.k(memory if memory_pos is None else memory + memory_pos).transpose(1, 3).split(self.head_dim, dim=3)
        vs = self.v(memory).split(self.head_dim, dim=1)
        heads = []
        for q, k, v in zip(qs, ks, vs):
            w = torch.einsum("bchq,bkhc->bkhq", q, k) * scale
            for mask in masks:
                w = w + mask
            heads.append(torch.einsum("bkhq,bchk->bchq", w.softmax(dim=1), v))
        return self.out(torch.cat(heads, dim=1))


class EncoderLayerANE(nn.Module):
    """A BERT-style (post-norm) or Whisper/GPT-style (pre-norm) block in the ANE layout; with ``cross`` a post-norm
    decoder block (self-attention, cross-attention over the encoder's output, FFN)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn: int,
        pre_norm: bool = False,
        key_bias: bool = True,
        activation: type[nn.Module] = nn.GELU,
        cross: bool = False,
    ):
        super().__init__()
        self.pre_norm = pre_norm
        self.attn = AttentionANE(dim, heads, key_bias)
        self.norm1, self.norm2 = LayerNormANE(dim), LayerNormANE(dim)
        self.cross = AttentionANE(dim, heads, key_bias) if cross else None
        self.norm_cross = LayerNormANE(dim) if cross else None
        self.ffn = nn.Sequential(nn.Conv2d(dim, ffn, 1), activation(), nn.Conv2d(ffn, dim, 1))

    def forward(self, x, masks=(), pos=None, memory=None, memory_pos=None, memory_masks=()):
        """``pos`` is added to the queries' and keys' input of the self-attention; ``memory`` (with ``memory_pos`` and
        ``memory_masks``) feeds the cross-attention of a decoder block."""
        if self.pre_norm:
            x = x + self.attn(self.norm1(x), masks)
            return x + self.ffn(self.norm2(x))
        x = self.norm1(self.attn(x, masks, x_pos=pos, memory_pos=pos) + x)
        if self.cross is not None:
            x = self.norm_cross(self.cross(x, memory_masks, memory, x_pos=pos, memory_pos=memory_pos) + x)
        return self.norm2(self.ffn(x) + x)


class BertANE(nn.Module):
    """ml-ane-transformers DistilBERT (and a BERT token classifier built the same way).

    Inputs input_ids and attention_mask (int32, converted from int64 as the source did); the
    embedding lookups run in (B, S, C) and LayerNormANE moves them to (B, C, 1, S)."""

    def __init__(
        self,
        layers: int = 6,
        dim: int = 768,
        heads: int = 12,
        ffn: int = 3072,
        seq: int = 128,
        vocab: int = 30522,
        token_types: bool = False,
        head: str = "sequence",
    ):
        super().__init__()
        self.seq, self.head_kind = seq, head
        self.word, self.position = nn.Embedding(vocab, dim), nn.Embedding(512, dim)
        self.token_type = nn.Embedding(2, dim) if token_types else None
        self.register_buffer("position_ids", torch.arange(seq).unsqueeze(0), persistent=False)
        self.norm = LayerNormANE(dim)
        self.layers = nn.ModuleList([EncoderLayerANE(dim, heads, ffn) for _ in range(layers)])
        if head == "sequence":
            self.pre_classifier, self.classifier = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, 2, 1)
        else:
            self.classifier = nn.Conv2d(dim, 9, 1)

    def forward(self, input_ids, attention_mask):
        x = self.word(input_ids) + self.position(self.position_ids)
        if self.token_type is not None:
            x = x + self.token_type(torch.zeros_like(input_ids))
        x = self.norm(x.transpose(1, 2).unsqueeze(2))
        mask = ((1 - attention_mask).float() * -1e4).unsqueeze(2).unsqueeze(2)  # (B, S, 1, 1)
        for layer in self.layers:
            x = layer(x, (mask,))
        if self.head_kind == "sequence":
            return self.classifier(F.relu(self.pre_classifier(x[:, :, :, 0:1]))).squeeze(-1).squeeze(-1)
        return self.classifier(x)


def bert_ane(
    seq: int = 128, layers: int = 6, token_types: bool = False, head: str = "sequence", batch: int = 1
) -> tuple:
    model = BertANE(layers=layers, seq=seq, token_types=token_types, head=head)
    ids = torch.randint(0, 30522, (batch, seq))
    return model, (ids, torch.ones(batch, seq, dtype=torch.long))


class ReferenceTransformerANE(nn.Module):
    """apple/ml-ane-transformers reference AppleNeuralEngineTransformer (transformer.py, encoder.py, decoder.py,
    multihead_attention.py, ffn.py): post-norm encoder and decoder layers, ReLU FFN, the positional embeddings added to
    the queries' and keys' input of every attention, the QK and K masks added per head, a final LayerNormANE on the
    decoder; outputs (decoder, encoder). Scaled to GPT-2 sizes as smpanaro's notes of March 28, 2023 timed it."""

    def __init__(self, dim: int, heads: int, decoder_layers: int, encoder_layers: int = 6, ffn: int = 2048):
        super().__init__()
        # copy.deepcopy of one layer, as the reference stacks them: every layer has the same weights, so the converter
        # computes the decoder's cross-attention keys and values once (and the notes saw smaller files).
        encoder_layer = EncoderLayerANE(dim, heads, ffn, activation=nn.ReLU)
        decoder_layer = EncoderLayerANE(dim, heads, ffn, activation=nn.ReLU, cross=True)
        self.encoder = nn.ModuleList([copy.deepcopy(encoder_layer) for _ in range(encoder_layers)])
        self.decoder = nn.ModuleList([copy.deepcopy(decoder_layer) for _ in range(decoder_layers)])
        self.norm = LayerNormANE(dim)
        for norm in self.modules():  # the test model was timed as initialised: LayerNormANE weight 1, bias 0
            if isinstance(norm, LayerNormANE):
                nn.init.ones_(norm.weight)
                nn.init.zeros_(norm.bias)

    def forward(self, enc, dec, enc_pos, dec_pos, enc_k_mask, dec_k_mask, enc_qk_mask, dec_qk_mask):
        for layer in self.encoder:
            enc = layer(enc, (enc_qk_mask, enc_k_mask), enc_pos)
        for layer in self.decoder:
            dec = layer(dec, (dec_qk_mask, dec_k_mask), dec_pos, enc, enc_pos, (enc_k_mask,))
        return self.norm(dec), enc


def reference_transformer(dim: int, heads: int, decoder_layers: int, batch: int = 2, seq: int = 512) -> tuple:
    """The notes' table: 6 encoder layers, ``decoder_layers`` decoder layers, the reference's default ffn_dim (2048:
    the table lists embed dim, layers and heads as what was scaled), batch 2 ("all batch size 2 (oops)": the
    reference test's TEST_BATCH_SIZE) and 512 tokens on both sides; every input fp32, as that test converts them."""
    x = [torch.rand(batch, dim, 1, seq) for _ in range(4)]
    masks = (torch.zeros(batch, seq, 1, 1),) * 2 + (torch.zeros(batch, seq, 1, seq),) * 2
    return ReferenceTransformerANE(dim, heads, decoder_layers), (*x, *masks)


# --- Hugging Face layout (B, S, C) ------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Matmul attention as transformers' DistilBERT / OpenAI Whisper / CLIP / nanoGPT write it."""

    def __init__(self, dim: int, heads: int, tokens: int, key_bias: bool = True, batch: int = 1):
        super().__init__()
        self.dim, self.heads, self.tokens, self.batch = dim, heads, tokens, batch
        self.q, self.k = nn.Linear(dim, dim), nn.Linear(dim, dim, bias=key_bias)
        self.v, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def split(self, x):
        return x.reshape(self.batch, self.tokens, self.heads, -1).transpose(1, 2)

    def forward(self, x, mask=None, fill=None):
        """``mask`` is added to the scores; ``fill`` (bool, broadcastable) marks the scores set to -inf."""
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = (q / math.sqrt(self.dim // self.heads)) @ k.transpose(2, 3)
        if fill is not None:
            scores = scores.masked_fill(fill.expand(self.batch, self.heads, self.tokens, self.tokens), float("-inf"))
        elif mask is not None:
            scores = scores + mask
        context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(self.batch, self.tokens, self.dim)
        return self.out(context)


class Block(nn.Module):
    def __init__(
        self, dim: int, heads: int, ffn: int, tokens: int, pre_norm: bool = True, key_bias: bool = True, batch: int = 1
    ):
        super().__init__()
        self.pre_norm = pre_norm
        self.attn = SelfAttention(dim, heads, tokens, key_bias, batch)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))

    def forward(self, x, mask=None, fill=None):
        if self.pre_norm:
            x = x + self.attn(self.norm1(x), mask, fill)
            return x + self.ffn(self.norm2(x))
        x = self.norm1(self.attn(x, mask, fill) + x)
        return self.norm2(self.ffn(x) + x)


class DistilBertHF(nn.Module):
    """transformers' DistilBertForSequenceClassification (4.2x): every layer compares the attention
    mask with 0, reshapes and expands it and applies it with masked_fill(-inf), as the baseline
    conversion of Apple's tutorial traced it."""

    def __init__(
        self, seq: int = 128, layers: int = 6, dim: int = 768, heads: int = 12, ffn: int = 3072, batch: int = 1
    ):
        super().__init__()
        self.seq, self.batch = seq, batch
        self.word, self.position = nn.Embedding(30522, dim), nn.Embedding(512, dim)
        self.register_buffer("position_ids", torch.arange(seq).unsqueeze(0), persistent=False)
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.layers = nn.ModuleList([Block(dim, heads, ffn, seq, pre_norm=False, batch=batch) for _ in range(layers)])
        self.pre_classifier, self.classifier = nn.Linear(dim, dim), nn.Linear(dim, 2)

    def forward(self, input_ids, attention_mask):
        x = self.norm(self.word(input_ids) + self.position(self.position_ids))
        for layer in self.layers:
            x = layer(x, fill=(attention_mask == 0).reshape(self.batch, 1, 1, self.seq))
        return self.classifier(F.relu(self.pre_classifier(x[:, 0])))


def distilbert_hf(seq: int = 128, batch: int = 1) -> tuple:
    inputs = (torch.randint(0, 30522, (batch, seq)), torch.ones(batch, seq, dtype=torch.long))
    return DistilBertHF(seq, batch=batch), inputs


# --- Whisper encoders (openai/whisper model.py AudioEncoder; whisper.cpp's ANE variant) ---------------

WHISPER = {
    "tiny": (384, 4, 6),
    "base": (512, 6, 8),
    "small": (768, 12, 12),
    "medium": (1024, 24, 16),
    "large": (1280, 32, 20),
}


class WhisperEncoder(nn.Module):
    def __init__(self, size: str, ane: bool, mels: int):
        super().__init__()
        dim, layers, heads = WHISPER[size]
        self.ane, self.dim = ane, dim
        self.conv1, self.conv2 = nn.Conv1d(mels, dim, 3, padding=1), nn.Conv1d(dim, dim, 3, 2, padding=1)
        self.register_buffer("positions", torch.randn(1500, dim) * 0.02)
        if ane:
            self.blocks = nn.ModuleList(
                [EncoderLayerANE(dim, heads, 4 * dim, pre_norm=True, key_bias=False) for _ in range(layers)]
            )
            self.norm = LayerNormANE(dim, eps=1e-5)
        else:
            self.blocks = nn.ModuleList([Block(dim, heads, 4 * dim, 1500, key_bias=False) for _ in range(layers)])
            self.norm = nn.LayerNorm(dim)

    def forward(self, mel):
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel))))
        if self.ane:  # (1, C, 1, 1500)
            x = x.unsqueeze(2) + self.positions.transpose(0, 1).reshape(1, self.dim, 1, 1500)
            for block in self.blocks:
                x = block(x)
            return self.norm(x).squeeze(2).permute(0, 2, 1)
        x = x.permute(0, 2, 1) + self.positions
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def whisper_encoder(size: str = "tiny", ane: bool = False, mels: int = 80) -> tuple:
    return WhisperEncoder(size, ane, mels), (torch.randn(1, mels, 3000),)


# --- CLIP-style ViT image encoder and text encoder (MobileCLIP-B / L) ---------------------------------


class ViT(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int, patch: int, size: int, embed: int):
        super().__init__()
        self.tokens, self.dim = (size // patch) ** 2 + 1, dim
        self.patch = nn.Conv2d(3, dim, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.positions = nn.Parameter(torch.randn(1, self.tokens, dim) * 0.02)
        self.norm_pre, self.norm_post = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.blocks = nn.Sequential(*[Block(dim, heads, 4 * dim, self.tokens) for _ in range(layers)])
        self.proj = nn.Linear(dim, embed, bias=False)

    def forward(self, pixels):
        x = self.patch(pixels).reshape(1, self.dim, self.tokens - 1).transpose(1, 2)
        x = self.norm_pre(torch.cat([self.cls, x], dim=1) + self.positions)
        return self.proj(self.norm_post(self.blocks(x)[:, 0]))


def vit(dim: int = 768, layers: int = 12, heads: int = 12, patch: int = 16, size: int = 224, embed: int = 512):
    return ViT(dim, layers, heads, patch, size, embed), (torch.rand(1, 3, size, size),)


class TextRepMixer(nn.Module):
    """MobileCLIP's text RepMixer block, reparameterised (apple/ml-mobileclip@4144bb1
    mobileclip/modules/text/repmixer.py): a 1x11 depthwise mixer and a layer-scaled ConvFFN (1x11 depthwise conv,
    1x1 expand x4, GELU, 1x1 project) over the tokens as a (1, C, 1, S) map."""

    def __init__(self, dim: int, tokens: int, k: int = 11):
        super().__init__()
        self.dim, self.tokens = dim, tokens
        self.mixer = nn.Conv2d(dim, dim, (1, k), 1, (0, k // 2), groups=dim)
        self.ffn = nn.Sequential(
            nn.Conv2d(dim, dim, (1, k), 1, (0, k // 2), groups=dim),
            nn.Conv2d(dim, 4 * dim, 1),
            nn.GELU(),
            nn.Conv2d(4 * dim, dim, 1),
        )
        self.scale = nn.Parameter(torch.full((dim, 1, 1), 1e-5))

    def forward(self, x):
        x = self.mixer(x.transpose(1, 2).reshape(1, self.dim, 1, self.tokens))
        x = x + self.scale * self.ffn(x)
        return x.reshape(1, self.dim, self.tokens).transpose(1, 2)


class TextEncoder(nn.Module):
    """CLIP text transformer, features at the end-of-text token (argmax of the ids); ``causal`` masks the
    scores (MobileCLIP-S*'s encoders do not, configs causal_masking false), ``repmixer`` puts a RepMixer block
    before and after the transformer blocks (MobileCLIP-S0's "mct", mobileclip/text_encoder.py)."""

    def __init__(self, dim: int, layers: int, heads: int, causal: bool, repmixer: bool, ctx: int = 77):
        super().__init__()
        self.word = nn.Embedding(49408, dim)
        self.positions = nn.Parameter(torch.randn(1, ctx, dim) * 0.01)
        self.register_buffer("mask", torch.full((ctx, ctx), -1e4).triu(1) if causal else None)
        self.blocks = nn.ModuleList([Block(dim, heads, 4 * dim, ctx) for _ in range(layers)])
        self.mixers = nn.ModuleList([TextRepMixer(dim, ctx) for _ in range(2 if repmixer else 0)])
        self.norm, self.proj = nn.LayerNorm(dim), nn.Linear(dim, 512, bias=False)

    def forward(self, ids):
        x = self.word(ids) + self.positions
        for mixer in self.mixers[:1]:
            x = mixer(x)
        for block in self.blocks:
            x = block(x, self.mask)
        for mixer in self.mixers[1:]:
            x = mixer(x)
        x = self.norm(x)
        return self.proj(x[torch.arange(1), ids.argmax(dim=-1)])


def clip_text(dim: int = 512, layers: int = 12, heads: int = 8, causal: bool = True, repmixer: bool = False) -> tuple:
    return TextEncoder(dim, layers, heads, causal, repmixer), (torch.randint(0, 49408, (1, 77)),)


# --- GPT-2 (nanoGPT baseline and smpanaro's ANE layout) ----------------------------------------------


class NanoGPT(nn.Module):
    """karpathy/nanoGPT model.py GPT (gpt2 small), inference path: logits of the last token only."""

    def __init__(self, ctx: int = 512, layers: int = 12, dim: int = 768, heads: int = 12):
        super().__init__()
        self.ctx = ctx
        self.wte, self.wpe = nn.Embedding(50257, dim), nn.Embedding(1024, dim)
        self.register_buffer("positions", torch.arange(ctx), persistent=False)
        self.register_buffer("causal", torch.tril(torch.ones(ctx, ctx)).reshape(1, 1, ctx, ctx) == 0)
        self.blocks = nn.ModuleList([Block(dim, heads, 4 * dim, ctx) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, 50257, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as nanoGPT does

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(self.positions)
        for block in self.blocks:
            x = block(x, fill=self.causal)
        return self.lm_head(self.norm(x)[:, -1:, :])


def nanogpt(ctx: int = 512) -> tuple:
    return NanoGPT(ctx), (torch.randint(0, 50257, (1, ctx)),)


class GPT2Full(nn.Module):
    """smpanaro/more-ane-transformers models/gpt2.py at commit 6288e2a (April 13, 2023), the 'gpt2-full' its notes
    timed on April 15 (no cache input, all fp16): nanoGPT with one c_attn split into q, k, v, the scores scaled after
    the matmul, a causal mask (1 - tril) * -1e4 built in the graph and added (not masked_fill), the tanh GELU, the
    position the int32 ``output_mask`` names selected before ln_f and the lm_head, every layer's K and V returned.
    ``baseline=True`` is the same author's baseline_gpt2.py at commit f469a38 (March 26, 2023), timed in the notes that
    day: the same blocks, no ``output_mask`` and no caches, the lm_head over every position."""

    def __init__(self, ctx: int = 512, layers: int = 12, dim: int = 768, heads: int = 12, baseline: bool = False):
        super().__init__()
        self.shape, self.heads, self.baseline = (1, ctx, dim), heads, baseline
        self.wte, self.wpe = nn.Embedding(50257, dim), nn.Embedding(1024, dim)
        self.register_buffer("positions", torch.arange(ctx).unsqueeze(0), persistent=False)
        self.ln_1, self.ln_2 = (nn.ModuleList([nn.LayerNorm(dim) for _ in range(layers)]) for _ in range(2))
        self.c_attn = nn.ModuleList([nn.Linear(dim, 3 * dim) for _ in range(layers)])
        self.attn_proj = nn.ModuleList([nn.Linear(dim, dim) for _ in range(layers)])
        self.c_fc = nn.ModuleList([nn.Linear(dim, 4 * dim) for _ in range(layers)])
        self.mlp_proj = nn.ModuleList([nn.Linear(4 * dim, dim) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, 50257, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx, output_mask=None):
        x = self.wte(idx) + self.wpe(self.positions)
        b, t, c = self.shape
        mask = (1 - torch.tril(torch.ones((1, 1, t, t)))) * -1e4  # in the graph, as the source builds it
        caches = []
        for i in range(len(self.c_attn)):
            q, k, v = self.c_attn[i](self.ln_1[i](x)).split(c, dim=2)
            if not self.baseline:
                caches.append(torch.cat([k, v], dim=1))
            q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
            att = F.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1))) + mask, dim=-1)
            x = x + self.attn_proj[i]((att @ v).transpose(1, 2).contiguous().view(b, -1, c))
            h = self.c_fc[i](self.ln_2[i](x))
            h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
            x = x + self.mlp_proj[i](h)
        if self.baseline:
            return self.lm_head(self.ln_f(x))
        logits = self.lm_head(self.ln_f(torch.index_select(x, 1, output_mask)))
        return logits, torch.stack(caches)


def gpt2_full(ctx: int = 512, layers: int = 12, dim: int = 768, heads: int = 12, baseline: bool = False) -> tuple:
    ids = torch.randint(0, 50257, (1, ctx))
    examples = (ids,) if baseline else (ids, torch.randint(0, ctx, (1,)))
    return GPT2Full(ctx, layers, dim, heads, baseline), examples


class GPT2ANE(nn.Module):
    """smpanaro/more-ane-transformers ane_gpt2.py as of March 25, 2023 (commit 35ac67f), the conversion its
    notes of that day timed: the ANE layout with a QK mask and a K mask as inputs, each added to every head's
    scores, and the logits of every position from the lm_head as a 1x1 conv over ``x.permute(3, 1, 0, 2)``, so the
    512 positions are the conv's batch and its spatial size is 1x1 (rule SH-11: 265 of the 286 ms estimated)."""

    def __init__(self, ctx: int = 512, layers: int = 12, dim: int = 768, heads: int = 12):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(50257, dim), nn.Embedding(1024, dim)
        self.register_buffer("positions", torch.arange(ctx).unsqueeze(0), persistent=False)
        self.blocks = nn.ModuleList([EncoderLayerANE(dim, heads, 4 * dim, pre_norm=True) for _ in range(layers)])
        self.norm = LayerNormANE(dim, eps=1e-5)
        self.lm_head = nn.Conv2d(dim, 50257, 1, bias=False)

    def forward(self, idx, qk_mask, k_mask):
        x = (self.wte(idx) + self.wpe(self.positions)).transpose(1, 2).unsqueeze(2)
        for block in self.blocks:
            x = block(x, (qk_mask, k_mask))
        return self.lm_head(self.norm(x).permute(3, 1, 0, 2)).squeeze().unsqueeze(0)


def gpt2_ane(ctx: int = 512) -> tuple:
    qk = torch.full((ctx, ctx), -1e4).triu(1).transpose(0, 1).reshape(1, ctx, 1, ctx)
    return GPT2ANE(ctx), (torch.randint(0, 50257, (1, ctx)), qk, torch.zeros(1, ctx, 1, 1))


# --- ask-meridian.uk AneEncoder (LuuOW/meridian-mcp mlcore/ane_encoder), RangeDim sequence ------------


class MeridianNorm(nn.Module):
    """ane_modules.LayerNormANE: (x - mean) * rsqrt(var + eps) over channels, then weight and bias."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(1, dim, 1, 1)), nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(var + 1e-5) * self.weight + self.bias


class MeridianBlock(nn.Module):
    """ane_modules.EncoderBlockANE: reshape-based heads, mul + sum attention, tanh GELU. Heads are
    split with reshape(..., -1) so the trace keeps no shape arithmetic (the source read x.shape)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.norm1, self.norm2 = MeridianNorm(dim), MeridianNorm(dim)
        self.q, self.k, self.v, self.o = (nn.Conv2d(dim, dim, 1) for _ in range(4))
        self.ffn = nn.Sequential(nn.Conv2d(dim, 4 * dim, 1), nn.GELU(approximate="tanh"), nn.Conv2d(4 * dim, dim, 1))

    def attend(self, x):
        d = self.dim // self.heads
        q, k, v = (proj(x).reshape(self.heads, d, 1, -1) for proj in (self.q, self.k, self.v))
        scores = (q.permute(0, 1, 3, 2) * k).sum(dim=1, keepdim=True) * d**-0.5
        out = (torch.softmax(scores, dim=-1) * v).sum(dim=-1, keepdim=True).permute(0, 1, 3, 2)
        return self.o(out.reshape(1, self.dim, 1, -1))

    def forward(self, x):
        x = x + self.attend(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def meridian_encoder(dim: int = 384, layers: int = 6, heads: int = 6, seq: int = 64) -> tuple:
    model = nn.Sequential(*[MeridianBlock(dim, heads) for _ in range(layers)], MeridianNorm(dim))
    return model, (torch.randn(1, dim, 1, seq),)


# --- Depth Anything v1 small (apple/coreml-depth-anything-small) ---------------------------------------


class DinoLayerANE(nn.Module):
    """DINOv2 block in the ANE layout with LayerScale, as the conversion's encoder patch wrote it."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = LayerNormANE(dim, 1e-6), LayerNormANE(dim, 1e-6)
        self.attn = AttentionANE(dim, heads)
        self.mlp = nn.Sequential(nn.Conv2d(dim, 4 * dim, 1), nn.GELU(), nn.Conv2d(4 * dim, dim, 1))
        self.ls1, self.ls2 = (nn.Parameter(torch.full((1, dim, 1, 1), 1e-5)) for _ in range(2))

    def forward(self, x):
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.mlp(self.norm2(x)) * self.ls2


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1, self.conv2 = (nn.Conv2d(features, features, 3, 1, 1) for _ in range(2))

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FusionBlock(nn.Module):
    """DPT feature fusion: (+ RCU(skip)), RCU, bilinear align_corners resize to ``size``, 1x1 conv."""

    def __init__(self, features: int, size: tuple[int, int]):
        super().__init__()
        self.size = size
        self.res1, self.res2 = ResidualConvUnit(features), ResidualConvUnit(features)
        self.projection = nn.Conv2d(features, features, 1)

    def forward(self, x, skip=None):
        if skip is not None:
            x = x + self.res1(skip)
        return self.projection(F.interpolate(self.res2(x), size=self.size, mode="bilinear", align_corners=True))


class DepthAnything(nn.Module):
    """Depth Anything v1 small: DINOv2 ViT-S/14 (features after layers 2, 5, 8, 11) and the DPT head (features 64,
    reassembled at 48 / 96 / 192 / 384 channels), from huggingface/transformers@004edfe
    models/depth_anything/modeling_depth_anything.py and LiheYoung/Depth-Anything@1d03336 depth_anything/dpt.py.
    As huggingface/coreml-examples@7d6f459 tutorials/depth-anything-coreml-guide.ipynb converted it: ImageNet
    normalisation of 0..255 pixels in the graph, the encoder patched to the ANE layout (pcuenca/transformers
    dino-ane-patch@0fe4faa: it cut the iPhone 15 Pro's latency from 42.54 to 34.71 ms), the output divided by
    its max; the position embedding fixed for the patch grid."""

    def __init__(self, height: int, width: int, dim: int = 384, layers: int = 12, heads: int = 6, patch: int = 14):
        super().__init__()
        self.dim, self.ph, self.pw = dim, height // patch, width // patch
        self.tokens = self.ph * self.pw + 1
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1) * 255)
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.positions = nn.Parameter(torch.randn(1, self.tokens, dim) * 0.02)
        self.blocks = nn.ModuleList([DinoLayerANE(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        channels, features = (48, 96, 192, 384), 64
        self.projects = nn.ModuleList([nn.Conv2d(dim, c, 1) for c in channels])
        self.resize = nn.ModuleList(
            [
                nn.ConvTranspose2d(48, 48, 4, 4),
                nn.ConvTranspose2d(96, 96, 2, 2),
                nn.Identity(),
                nn.Conv2d(384, 384, 3, 2, 1),
            ]
        )
        self.convs = nn.ModuleList([nn.Conv2d(c, features, 3, 1, 1, bias=False) for c in channels])
        ph, pw = self.ph, self.pw
        sizes = [(8 * ph, 8 * pw), (4 * ph, 4 * pw), (2 * ph, 2 * pw), (ph, pw)]  # each fusion ends one level finer
        self.fusion = nn.ModuleList([FusionBlock(features, size) for size in sizes])
        self.out_size = (ph * patch, pw * patch)
        self.head1 = nn.Conv2d(features, features // 2, 3, 1, 1)
        self.head2 = nn.Sequential(nn.Conv2d(features // 2, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 1, 1), nn.ReLU())

    def forward(self, pixels):
        x = self.patch((pixels - self.mean) / self.std).reshape(1, self.dim, self.tokens - 1).transpose(1, 2)
        x = (torch.cat([self.cls, x], dim=1) + self.positions).permute(0, 2, 1).unsqueeze(2)
        maps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in (2, 5, 8, 11):
                level = len(maps)
                f = self.norm(x.squeeze(2).permute(0, 2, 1))[:, 1:]
                f = f.reshape(1, self.ph, self.pw, self.dim).permute(0, 3, 1, 2)
                maps.append(self.convs[level](self.resize[level](self.projects[level](f))))
        path = self.fusion[3](maps[3])
        for i in (2, 1, 0):
            path = self.fusion[i](path, maps[i])
        depth = F.interpolate(self.head1(path), size=self.out_size, mode="bilinear", align_corners=True)
        depth = self.head2(depth).squeeze(1)
        return (depth / depth.max()).unsqueeze(0)


def depth_anything_small(height: int = 392, width: int = 518) -> tuple:
    """At the Core ML package's 518 x 392 (W x H) input, pixels 0..255."""
    return DepthAnything(height, width), (torch.rand(1, 3, height, width) * 255,)
