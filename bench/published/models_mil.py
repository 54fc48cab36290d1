"""Weight-streaming models written directly with coremltools' MIL builder (no torch): fp16 weights, or compressed
ones in the constexpr ops Core ML decompresses at load time.

They hold ~1 GB of fp16 weights; building them in torch would need 2+ GB of fp32 weights and a trace,
so the layers are written as the ANE-layout 1x1 convs the sources used.
"""

from __future__ import annotations

import numpy as np


def random_fp16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)


def lm_head(hidden: int = 4096, vocab: int = 128256, parts: int = 16):
    """Anemll-bench llama_lm_head: one token (1, hidden, 1, 1) through the vocabulary projection,
    split into ``parts`` 1x1 convs (each under the 65536-channel limit), one output each."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    rng = np.random.default_rng(0)

    @mb.program(input_specs=[mb.TensorSpec((1, hidden, 1, 1), dtype=types.fp16)], opset_version=ct.target.iOS18)
    def program(hidden_states):
        return tuple(
            mb.conv(x=hidden_states, weight=random_fp16(rng, (vocab // parts, hidden, 1, 1)), name=f"lm_head_{i}")
            for i in range(parts)
        )

    return program


def llama_mlp(copies: int = 4, dim: int = 4096, hidden: int = 11008, seq: int = 1, weights: str = "fp16"):
    """smpanaro/coreml-joint-compression-test: ``copies`` Llama-2-7B MLPs in a row
    (down(silu(gate(x)) * up(x)) as 1x1 convs, residual add), ANE layout (1, dim, 1, seq). ``weights``: the
    variants the model card times, 'fp16', 'lut4' / 'lut2' (palettized: one 16- or 4-entry table per weight) or
    'w8a8' (int8 weights with a scale per output channel; each conv reads its input through quantize/dequantize)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    rng = np.random.default_rng(0)

    def weight(shape: tuple[int, ...], name: str):
        if weights == "fp16":
            return random_fp16(rng, shape)
        if weights.startswith("lut"):
            bits = int(weights[3:])
            indices = rng.integers(0, 2**bits, size=shape).astype(getattr(types, f"np_uint{bits}_dtype"))
            table = random_fp16(rng, (1,) * len(shape) + (2**bits, 1))
            return mb.constexpr_lut_to_dense(indices=indices, lut=table, name=name)
        data = rng.integers(-127, 128, size=shape, dtype=np.int8)
        scale = np.full((shape[0],) + (1,) * (len(shape) - 1), 2e-4, dtype=np.float16)
        return mb.constexpr_blockwise_shift_scale(data=data, scale=scale, name=name)

    def read(v, name: str):
        if weights != "w8a8":
            return v
        quantized = mb.quantize(input=v, scale=np.float16(0.05), output_dtype="int8", name=f"{name}_quantize")
        return mb.dequantize(input=quantized, scale=np.float16(0.05), name=f"{name}_dequantize")

    @mb.program(input_specs=[mb.TensorSpec((1, dim, 1, seq), dtype=types.fp16)], opset_version=ct.target.iOS18)
    def program(x):
        for i in range(copies):
            x_in = read(x, f"mlp{i}_in")
            gate = mb.conv(x=x_in, weight=weight((hidden, dim, 1, 1), f"mlp{i}_gate_w"), name=f"mlp{i}_gate")
            up = mb.conv(x=x_in, weight=weight((hidden, dim, 1, 1), f"mlp{i}_up_w"), name=f"mlp{i}_up")
            act = mb.mul(x=mb.silu(x=gate, name=f"mlp{i}_silu"), y=up, name=f"mlp{i}_mul")
            down = mb.conv(
                x=read(act, f"mlp{i}_act"), weight=weight((dim, hidden, 1, 1), f"mlp{i}_down_w"), name=f"mlp{i}_down"
            )
            x = mb.add(x=x, y=down, name=f"mlp{i}_residual")
        return x

    return program
