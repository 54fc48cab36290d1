"""Small ML Program models built with coremltools' MIL builder, saved as .mlpackage."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anedoctor.util import quiet_coremltools

ct = quiet_coremltools()
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

RNG = np.random.default_rng(0)


def w(*shape):
    return (RNG.standard_normal(shape) * 0.05).astype(np.float32)


def save(program, path: Path, target=None, precision=None, **kw) -> Path:
    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=target or ct.target.iOS17,
        compute_precision=precision or ct.precision.FLOAT16,
        **kw,
    )
    model.save(str(path))
    return path


def conv_stack(x, n, c=64):
    for i in range(n):
        x = mb.relu(x=mb.conv(x=x, weight=w(c, x.shape[1], 3, 3), pad_type="same", name=f"conv{i}_{x.name}"[:40]))
    return x


def sandwich(path: Path, middle, name="middle", target=None) -> Path:
    """Four 64-channel convs, a middle op, four more convs: the ANE pays off on both sides."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 64, 64))], opset_version=target or ct.target.iOS17)
    def prog(x):
        x = conv_stack(x, 4)
        x = middle(x)
        return conv_stack(x, 4)

    return save(prog, path, target)


def single(path: Path, shape, build, dtype=types.fp32, target=None, precision=None) -> Path:
    @mb.program(input_specs=[mb.TensorSpec(shape=shape, dtype=dtype)], opset_version=target or ct.target.iOS17)
    def prog(x):
        return build(x)

    return save(prog, path, target, precision)


def chain(path: Path, n_ops: int) -> Path:
    """A long chain of conv/relu/add blocks (for speed and scale checks); every 50th block's conv
    has a large dilation (off the ANE), so the prediction has segments and switches to report."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 64, 64))], opset_version=ct.target.iOS17)
    def prog(x):
        for i in range(n_ops // 3):
            if i % 50 == 49:
                y = mb.conv(x=x, weight=w(64, 64, 3, 3), dilations=[8, 8], pad_type="same")
            else:
                y = mb.conv(x=x, weight=w(64, 64, 1, 1))
            x = mb.add(x=mb.relu(x=y), y=x)
        return x

    return save(prog, path)


def two_functions(folder: Path) -> Path:
    """A multi-function package, as for LLM prefill / decode: 'decode' (the default, 1 row) and 'prefill' (64 rows)
    share the same conv weights."""
    from coremltools.models.utils import MultiFunctionDescriptor, save_multifunction

    weights = [w(256, 256, 1, 1) for _ in range(4)]
    for name, rows in (("decode", 1), ("prefill", 64)):

        @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256, 1, rows))], opset_version=ct.target.iOS18)
        def prog(x):
            for i, weight in enumerate(weights):
                x = mb.relu(x=mb.conv(x=x, weight=weight), name=f"c{i}")
            return x

        save(prog, folder / f"{name}.mlpackage", ct.target.iOS18)
    descriptor = MultiFunctionDescriptor()
    for name in ("decode", "prefill"):
        descriptor.add_function(str(folder / f"{name}.mlpackage"), "main", name)
    descriptor.default_function_name = "decode"
    save_multifunction(descriptor, str(folder / "both.mlpackage"))
    return folder / "both.mlpackage"
