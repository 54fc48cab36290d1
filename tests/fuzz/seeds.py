"""Seed models the mutation campaign starts from, built here (no downloads): an ML Program
``.mlpackage`` with weights in ``weight.bin`` (coremltools MIL builder), a NeuralNetwork
``.mlmodel`` (NeuralNetworkBuilder), copies of the compiled samples in ``tests/data/mlmodelc``,
and ``.npz`` inputs (a good one and a zip bomb)."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TQDM_DISABLE", "1")

DATA = Path(__file__).resolve().parents[1] / "data" / "mlmodelc"
RNG = np.random.default_rng(0)


def weights(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.1).astype(np.float32)


def mlprogram(path: Path) -> Path:
    """conv -> relu -> mean -> linear -> softmax, two inputs, weights big enough to live in weight.bin."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8)), mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS17
    )
    def prog(x, y):
        h = mb.conv(x=x, weight=weights(4, 3, 3, 3), bias=weights(4), pad_type="same", name="conv")
        h = mb.relu(x=h, name="relu")
        h = mb.reduce_mean(x=h, axes=[2, 3], keep_dims=False, name="pool")
        h = mb.add(x=h, y=y, name="add")
        h = mb.linear(x=h, weight=weights(5, 4), bias=weights(5), name="fc")
        return mb.softmax(x=h, axis=-1, name="probs")

    model = ct.convert(
        prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, compute_precision=ct.precision.FLOAT32
    )
    model.save(str(path))
    return path


def neuralnetwork(path: Path) -> Path:
    """Rank-5 NeuralNetwork: conv, flatten, inner product, embedding, softmax (two inputs)."""
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder
    from coremltools.models.utils import save_spec

    b = NeuralNetworkBuilder(
        [("image", datatypes.Array(3, 4, 4)), ("ids", datatypes.Array(1))], [("probs", None), ("vec", None)]
    )
    b.add_convolution(
        "conv",
        kernel_channels=3,
        output_channels=2,
        height=3,
        width=3,
        stride_height=1,
        stride_width=1,
        border_mode="same",
        groups=1,
        W=weights(3, 3, 3, 2),
        b=weights(2),
        has_bias=True,
        input_name="image",
        output_name="c",
    )
    b.add_activation("relu", "RELU", "c", "r")
    b.add_flatten("flat", mode=0, input_name="r", output_name="f")
    b.add_inner_product(
        "fc",
        W=weights(4, 32),
        b=weights(4),
        input_channels=32,
        output_channels=4,
        has_bias=True,
        input_name="f",
        output_name="logits",
    )
    b.add_softmax("softmax", "logits", "probs")
    b.add_embedding(
        "embed",
        W=weights(6, 10),
        b=None,
        input_dim=10,
        output_channels=6,
        has_bias=False,
        input_name="ids",
        output_name="vec",
    )
    save_spec(b.spec, str(path))
    return path


def inputs_npz(path: Path) -> Path:
    np.savez(
        path, x=RNG.standard_normal((1, 3, 8, 8)).astype(np.float32), y=RNG.standard_normal((1, 4)).astype(np.float32)
    )
    return path


def zip_bomb(path: Path, nbytes: int = (1 << 30) + (1 << 24)) -> Path:
    """An .npz whose one member inflates to ``nbytes`` of zeros (just over the 1 GiB input limit; ~5 MB on disk)."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (nbytes // 4,)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(1 << 24)
            for _ in range(nbytes >> 24):
                f.write(chunk)
    return path


def build_seeds(folder: Path) -> dict[str, Path]:
    """Every seed, by name, built into ``folder`` (reused when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {
        "mlpackage": folder / "prog.mlpackage",
        "mlmodel": folder / "nn.mlmodel",
        "inputs": folder / "inputs.npz",
        "bomb": folder / "bomb.npz",
    }
    makers = {"mlpackage": mlprogram, "mlmodel": neuralnetwork, "inputs": inputs_npz, "bomb": zip_bomb}
    for name, maker in makers.items():
        if not seeds[name].exists():
            maker(seeds[name])
    for sample in sorted(DATA.glob("*.mlmodelc")):
        target = folder / sample.name
        if not target.exists():
            shutil.copytree(sample, target)
        seeds["mlmodelc:" + sample.name.removesuffix(".mlmodelc")] = target
    return seeds
