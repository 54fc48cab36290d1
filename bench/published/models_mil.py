"""Weight-streaming models written directly with coremltools' MIL builder (fp16 weights, no torch).

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


def llama_mlp(copies: int = 4, dim: int = 4096, hidden: int = 11008, seq: int = 1):
    """smpanaro/coreml-joint-compression-test: ``copies`` Llama-2-7B MLPs in a row
    (down(silu(gate(x)) * up(x)) as 1x1 convs, residual add), ANE layout (1, dim, 1, seq)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    rng = np.random.default_rng(0)

    @mb.program(input_specs=[mb.TensorSpec((1, dim, 1, seq), dtype=types.fp16)], opset_version=ct.target.iOS18)
    def program(x):
        for i in range(copies):
            gate = mb.conv(x=x, weight=random_fp16(rng, (hidden, dim, 1, 1)), name=f"mlp{i}_gate")
            up = mb.conv(x=x, weight=random_fp16(rng, (hidden, dim, 1, 1)), name=f"mlp{i}_up")
            act = mb.mul(x=mb.silu(x=gate, name=f"mlp{i}_silu"), y=up, name=f"mlp{i}_mul")
            down = mb.conv(x=act, weight=random_fp16(rng, (dim, hidden, 1, 1)), name=f"mlp{i}_down")
            x = mb.add(x=x, y=down, name=f"mlp{i}_residual")
        return x

    return program
