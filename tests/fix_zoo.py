"""Small models with real Neural Engine blockers, for ``fix``'s tests and benchmark.

Each builder writes one ``.mlpackage`` (an fp16 ML Program unless it says otherwise) into a folder
and returns its path. ``ZOO`` maps a name to (builder, whether ``fix`` can cure every blocker on the
graph): the demo's int32 argmax and the lm_head's over-long logits output need the source model;
the rank-6 window partition needs a decomposition without over-long axes, which ``fix`` lacks.
Weights are random (seeded); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from anedoctor.rewrite.coreml_io import coremltools


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _w(rng: np.random.Generator, *shape: int, scale: float = 0.05) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def save(prog, path: Path, precision=None, pipeline=None) -> Path:
    ct = coremltools()
    from anedoctor.rewrite.coreml_io import quiet

    with quiet():
        model = ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17,
            compute_precision=precision or ct.precision.FLOAT16,
            pass_pipeline=pipeline,
        )
        model.save(str(path))
    return path


def tree_hash(path: Path) -> str:
    """A digest of every file under ``path`` (names and bytes): proof an input was not modified."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


def fix_once(tmp_path_factory, recipe: Callable[[str], tuple[Callable[[Path], Path], dict]]):
    """A getter for module-scoped fixtures: builds a case's model (``recipe(case)`` gives its builder and fix
    options) in a fresh folder and fixes it, once per case; returns (input, output, report, input digest)."""
    from anedoctor.rewrite import fix

    cache = {}

    def get(case: str):
        if case not in cache:
            build, options = recipe(case)
            folder = tmp_path_factory.mktemp(case)
            (folder / "in").mkdir()
            src = build(folder / "in")
            digest = tree_hash(src)
            cache[case] = (src, folder / "out.mlpackage", fix(src, folder / "out.mlpackage", **options), digest)
        return cache[case]

    return get


def _convs(mb, rng, x, n: int, c: int, tag: str):
    for i in range(n):
        x = mb.relu(
            x=mb.conv(x=x, weight=_w(rng, c, x.shape[1], 3, 3), pad_type="same", name=f"{tag}{i}_conv"),
            name=f"{tag}{i}_relu",
        )
    return x


def demo(folder: Path) -> Path:
    """anedoctor's built-in demo: a dilated conv (PA-11), a 9x9 max pool (PA-6), an int32 argmax head (DT-4)."""
    from anedoctor.demo import build_demo_model

    return build_demo_model(folder)


def dilated_unet(folder: Path) -> Path:
    """A small U-Net whose bottleneck is a stack of convs with dilations 4, 8 and 16 (PA-11)."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 128, 128))], opset_version=ct.target.iOS17)
    def prog(image):
        e1 = _convs(mb, rng, image, 2, 32, "enc1_")
        e2 = _convs(mb, rng, mb.max_pool(x=e1, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"), 2, 64, "enc2_")
        x = mb.max_pool(x=e2, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid")
        for d in (4, 8, 16):
            x = mb.relu(
                x=mb.conv(x=x, weight=_w(rng, 64, 64, 3, 3), dilations=[d, d], pad_type="same", name=f"bottleneck_d{d}")
            )
        x = mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=2)
        x = _convs(mb, rng, mb.concat(values=[x, e2], axis=1), 2, 64, "dec2_")
        x = mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=2)
        x = _convs(mb, rng, mb.concat(values=[x, e1], axis=1), 2, 32, "dec1_")
        return mb.conv(x=x, weight=_w(rng, 2, 32, 1, 1), name="mask")

    return save(prog, folder / "dilated_unet.mlpackage")


def aspp(folder: Path) -> Path:
    """A DeepLab-style atrous spatial pyramid: parallel 3x3 convs with dilations 6, 12 and 18 (PA-11)."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 128, 128))], opset_version=ct.target.iOS17)
    def prog(image):
        x = mb.conv(x=image, weight=_w(rng, 64, 3, 3, 3), strides=[2, 2], pad_type="same", name="stem")
        x = _convs(mb, rng, x, 3, 64, "backbone")
        branches = [mb.conv(x=x, weight=_w(rng, 64, 64, 1, 1), name="aspp_1x1")]
        branches += [
            mb.relu(x=mb.conv(x=x, weight=_w(rng, 64, 64, 3, 3), dilations=[d, d], pad_type="same", name=f"aspp_d{d}"))
            for d in (6, 12, 18)
        ]
        x = mb.conv(x=mb.concat(values=branches, axis=1), weight=_w(rng, 64, 256, 1, 1), name="aspp_project")
        return mb.conv(x=_convs(mb, rng, x, 2, 64, "head"), weight=_w(rng, 21, 64, 1, 1), name="logits")

    return save(prog, folder / "aspp.mlpackage")


def wavenet(folder: Path) -> Path:
    """A 1-D WaveNet-style stack: kernel-3 convs with dilations 1..64 (dilations 8+ exceed the width limit, PA-11)."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 16000))], opset_version=ct.target.iOS17)
    def prog(audio):
        x = audio
        for d in (1, 2, 4, 8, 16, 32, 64):
            y = mb.tanh(x=mb.conv(x=x, weight=_w(rng, 64, 64, 3), dilations=[d], pad_type="same", name=f"dil{d}"))
            x = mb.add(x=x, y=mb.conv(x=y, weight=_w(rng, 64, 64, 1), name=f"res{d}"))
        return mb.conv(x=x, weight=_w(rng, 8, 64, 1), name="out")

    return save(prog, folder / "wavenet.mlpackage")


def spp_pools(folder: Path) -> Path:
    """A YOLO-style spatial pyramid pooling block: stride-1 max pools of 5, 9 and 13 (9 and 13 break PA-6)."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 128, 128))], opset_version=ct.target.iOS17)
    def prog(image):
        x = mb.conv(x=image, weight=_w(rng, 64, 3, 3, 3), strides=[2, 2], pad_type="same", name="stem")
        x = _convs(mb, rng, x, 3, 64, "backbone")
        pools = [
            mb.max_pool(x=x, kernel_sizes=[k, k], strides=[1, 1], pad_type="same", name=f"spp_{k}x{k}")
            for k in (5, 9, 13)
        ]
        x = mb.conv(x=mb.concat(values=[x] + pools, axis=1), weight=_w(rng, 64, 256, 1, 1), name="spp_fuse")
        x = mb.max_pool(x=x, kernel_sizes=[11, 11], strides=[4, 4], pad_type="valid", name="coarse_pool_11s4")
        return _convs(mb, rng, x, 2, 64, "head")

    return save(prog, folder / "spp_pools.mlpackage")


def lm_head(folder: Path, vocab: int = 128256, hidden: int = 256) -> Path:
    """A decoder tail: norm, an MLP and an lm_head 256 -> 128256 whose logits exceed the axis limit (SH-1)."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 16, hidden))], opset_version=ct.target.iOS17)
    def prog(states):
        x = states
        for i in range(2):
            h = mb.layer_norm(x=x, axes=[-1], name=f"norm{i}")
            h = mb.linear(
                x=mb.gelu(x=mb.linear(x=h, weight=_w(rng, 4 * hidden, hidden), name=f"up{i}")),
                weight=_w(rng, hidden, 4 * hidden),
                name=f"down{i}",
            )
            x = mb.add(x=x, y=h, name=f"residual{i}")
        return mb.linear(
            x=mb.layer_norm(x=x, axes=[-1], name="final_norm"), weight=_w(rng, vocab, hidden), name="lm_head"
        )

    return save(prog, folder / "lm_head.mlpackage")


def window_rank6(folder: Path) -> Path:
    """Swin-style window partition through rank-6 tensors (SH-4), saved without coremltools' default
    passes so the rank-6 reshape -> transpose -> reshape chain and a rank-6 scale survive."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 32, 64, 64))], opset_version=ct.target.iOS17)
    def prog(image):
        x = _convs(mb, rng, image, 3, 32, "pre")
        t = mb.reshape(x=x, shape=[1, 32, 8, 8, 8, 8], name="to_windows")
        t = mb.mul(x=t, y=np.float32(0.5), name="window_scale")
        t = mb.relu(x=t, name="window_relu")
        t = mb.reshape(x=t, shape=[1, 32, 64, 64], name="from_windows")
        p = mb.transpose(
            x=mb.reshape(x=t, shape=[1, 32, 8, 8, 8, 8], name="partition"),
            perm=[0, 2, 4, 1, 3, 5],
            name="partition_perm",
        )
        p = mb.reshape(x=p, shape=[64, 32, 8, 8], name="windows")
        p = _convs(mb, rng, p, 2, 32, "win")
        return mb.reshape(x=p, shape=[1, 2048, 8, 8], name="merged")

    from unittest import mock

    from coremltools.converters.mil.mil.program import Program

    # coremltools 9 refuses to write rank-6 tensors; older converters and other exporters did not
    with mock.patch.object(Program, "_check_invalid_tensor_rank", lambda self: None):
        pipeline = ct.PassPipeline(["common::add_fp16_cast"] + list(ct.PassPipeline.CLEANUP.passes), "fp16_cleanup")
        return save(prog, folder / "window_rank6.mlpackage", pipeline=pipeline)


def fp32_islands(folder: Path, size: int = 128) -> Path:
    """A conv net whose normalisations and activations were kept in fp32 by an op_selector (DT-1)."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, size, size))], opset_version=ct.target.iOS17)
    def prog(image):
        x = mb.conv(x=image, weight=_w(rng, 32, 3, 3, 3), strides=[2, 2], pad_type="same", name="stem")
        for i in range(4):
            x = mb.conv(x=x, weight=_w(rng, 32, 32, 3, 3), pad_type="same", name=f"conv{i}")
            x = mb.instance_norm(x=x, epsilon=1e-5, name=f"island_norm{i}")
            x = mb.sigmoid(x=x, name=f"island_act{i}")
        return mb.conv(x=x, weight=_w(rng, 8, 32, 1, 1), name="out")

    precision = ct.transform.FP16ComputePrecision(op_selector=lambda op: not op.name.startswith("island"))
    return save(prog, folder / "fp32_islands.mlpackage", precision=precision)


def fp32_transformer(folder: Path) -> Path:
    """A transformer block converted with compute_precision=FLOAT32: every op is fp32 (DT-1)."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 128, 128))], opset_version=ct.target.iOS17)
    def prog(tokens):
        h = mb.layer_norm(x=tokens, axes=[-1], name="norm")
        q, k, v = (mb.linear(x=h, weight=_w(rng, 128, 128), name=n) for n in ("q", "k", "v"))
        a = mb.softmax(x=mb.matmul(x=q, y=k, transpose_y=True, name="scores"), axis=-1, name="attn")
        x = mb.add(x=tokens, y=mb.linear(x=mb.matmul(x=a, y=v, name="mix"), weight=_w(rng, 128, 128), name="proj"))
        f = mb.linear(
            x=mb.gelu(x=mb.linear(x=x, weight=_w(rng, 512, 128), name="up")), weight=_w(rng, 128, 512), name="down"
        )
        return mb.add(x=x, y=f, name="out")

    return save(prog, folder / "fp32_transformer.mlpackage", precision=ct.precision.FLOAT32)


def torch_context_net(folder: Path) -> Path:
    """A PyTorch CNN (traced and converted) with a dilation-10 conv and a 15x15 stride-1 max pool."""
    import torch

    ct = coremltools()

    class ContextNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Sequential(
                torch.nn.Conv2d(3, 32, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, 1, 1), torch.nn.ReLU()
            )
            self.context = torch.nn.Conv2d(32, 32, 3, padding=10, dilation=10)
            self.pool = torch.nn.MaxPool2d(15, stride=1, padding=7)
            self.head = torch.nn.Sequential(
                torch.nn.Conv2d(32, 32, 3, 1, 1), torch.nn.ReLU(), torch.nn.Conv2d(32, 4, 1)
            )

        def forward(self, x):
            return self.head(self.pool(torch.relu(self.context(self.stem(x)))))

    torch.manual_seed(0)
    example = torch.randn(1, 3, 128, 128)
    traced = torch.jit.trace(ContextNet().eval(), example)
    from anedoctor.rewrite.coreml_io import quiet

    path = folder / "torch_context_net.mlpackage"
    with quiet():
        model = ct.convert(
            traced,
            inputs=[ct.TensorType(name="x", shape=example.shape)],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17,
        )
        model.save(str(path))
    return path


def clean_convnet(folder: Path) -> Path:
    """A plain conv net the ANE already runs: nothing for fix to do."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 128, 128))], opset_version=ct.target.iOS17)
    def prog(image):
        x = mb.conv(x=image, weight=_w(rng, 32, 3, 3, 3), strides=[2, 2], pad_type="same", name="stem")
        return mb.conv(x=_convs(mb, rng, x, 4, 32, "body"), weight=_w(rng, 8, 32, 1, 1), name="out")

    return save(prog, folder / "clean_convnet.mlpackage")


ZOO: dict[str, tuple[Callable[[Path], Path], bool]] = {
    "demo": (demo, False),
    "dilated_unet": (dilated_unet, True),
    "aspp": (aspp, True),
    "wavenet": (wavenet, True),
    "spp_pools": (spp_pools, True),
    "lm_head": (lm_head, False),
    "window_rank6": (window_rank6, False),
    "fp32_islands": (fp32_islands, True),
    "fp32_transformer": (fp32_transformer, True),
    "torch_context_net": (torch_context_net, True),
    "clean_convnet": (clean_convnet, True),
}


def rank5_mlp(folder: Path, shape: tuple[int, ...] = (1, 4, 8, 64, 128)) -> Path:
    """An MLP over the last axis (128) of a tensor, by default a rank-5 one: every linear has depth > 1 (PA-23)."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS17)
    def prog(x):
        for i in range(3):
            x = mb.relu(x=mb.linear(x=x, weight=_w(rng, 128, 128), bias=_w(rng, 128), name=f"fc{i}"))
        return mb.linear(x=x, weight=_w(rng, 32, 128), name="head")

    return save(prog, folder / f"mlp_rank{len(shape)}.mlpackage")


def pixel_batch_head(folder: Path, kernel: int = 1) -> Path:
    """A (B, C, 1, S) block whose head runs over ``x.permute(3, 1, 0, 2)``: 256 images of one pixel (SH-11), as GPT-2's
    lm_head of March 2023 did; with ``kernel`` 3 the head is a 3x3 conv (padded), which no pass can fold."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 512, 1, 256))], opset_version=ct.target.iOS17)
    def prog(x):
        for i in range(3):
            x = mb.relu(x=mb.conv(x=x, weight=_w(rng, 512, 512, 1, 1), bias=_w(rng, 512), name=f"proj{i}"))
        x = mb.transpose(x=x, perm=[3, 1, 0, 2], name="positions_as_batch")
        w = _w(rng, 2048, 512, kernel, kernel)
        return mb.conv(x=x, weight=w, bias=_w(rng, 2048), pad_type="same", name="head")

    return save(prog, folder / f"pixel_batch_head_k{kernel}.mlpackage")


def enumerated_encoder(folder: Path, layers: int = 2, width: int = 256) -> Path:
    """A PyTorch encoder MLP with nn.LayerNorm, converted for iOS 16 with EnumeratedShapes sequence lengths (DY-4)."""
    import torch

    ct = coremltools()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList(
                torch.nn.Sequential(
                    torch.nn.LayerNorm(width),
                    torch.nn.Linear(width, 2 * width),
                    torch.nn.GELU(),
                    torch.nn.Linear(2 * width, width),
                )
                for _ in range(layers)
            )
            self.norm = torch.nn.LayerNorm(width)

        def forward(self, x):
            for block in self.blocks:
                x = x + block(x)
            return self.norm(x)

    torch.manual_seed(0)
    example = torch.randn(1, 128, width)
    traced = torch.jit.trace(Encoder().eval(), example)
    shapes = ct.EnumeratedShapes(shapes=[(1, n, width) for n in (64, 128, 256)], default=(1, 128, width))
    from anedoctor.rewrite.coreml_io import quiet

    path = folder / "enumerated_encoder.mlpackage"
    with quiet():
        model = ct.convert(
            traced,
            inputs=[ct.TensorType(name="x", shape=shapes)],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS16,
        )
        model.save(str(path))
    return path


def masked_attention(folder: Path, causal: bool = False, seq: int = 128, width: int = 256, layers: int = 2) -> Path:
    """PyTorch attention layers masking their scores with masked_fill(-inf), converted for iOS 16 (OP-19): by a
    runtime attention_mask input compared with 0 (Hugging Face style), or by a constant causal mask (nanoGPT)."""
    import torch

    ct = coremltools()
    heads = width // 64

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.out = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)

        def forward(self, x, masked):
            q, k, v = (t.reshape(1, seq, heads, 64).transpose(1, 2) for t in self.qkv(x).split(width, dim=-1))
            scores = (q @ k.transpose(2, 3) / 8.0).masked_fill(masked, float("-inf"))
            return x + self.out((scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(1, seq, width))

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(Layer() for _ in range(layers))
            self.register_buffer("causal", torch.ones(seq, seq).tril().reshape(1, 1, seq, seq) == 0)

        def forward(self, x, attention_mask=None):
            masked = self.causal if attention_mask is None else (attention_mask == 0).reshape(1, 1, 1, seq)
            for layer in self.layers:
                x = layer(x, masked)
            return x

    torch.manual_seed(0)
    example = (torch.randn(1, seq, width),) + (() if causal else (torch.ones(1, seq, dtype=torch.int32),))
    traced = torch.jit.trace(Encoder().eval(), example)
    inputs = [ct.TensorType(name="x", shape=example[0].shape)]
    if not causal:
        inputs.append(ct.TensorType(name="attention_mask", shape=(1, seq), dtype=np.int32))
    from anedoctor.rewrite.coreml_io import quiet

    path = folder / f"masked_attention_{'causal' if causal else 'runtime'}.mlpackage"
    with quiet():
        model = ct.convert(traced, inputs=inputs, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16)
        model.save(str(path))
    return path


def avg_pool_net(folder: Path, pools: tuple[tuple[int, int], ...] = ((4, 4), (16, 16))) -> Path:
    """A conv net with average pools given as (window, stride): by default a 4x4 stride-4 pool and a global
    16x16 pool, both beyond what A12/A13-era ANEs accept (PA-5)."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 32, 64, 64))], opset_version=ct.target.iOS17)
    def prog(image):
        x = _convs(mb, rng, image, 3, 32, "pre")
        for i, (k, s) in enumerate(pools):
            x = mb.avg_pool(x=x, kernel_sizes=[k, k], strides=[s, s], pad_type="valid", name=f"avg_pool{i}")
            x = _convs(mb, rng, x, 2, 32, f"post{i}_")
        return x

    return save(prog, folder / "avg_pool_net.mlpackage")


def shape_arithmetic_net(folder: Path, trimmed: bool = True) -> Path:
    """Convs (fp16 throughout, fp16 input) around a reshape whose target shape is computed at runtime from
    ``shape(x)`` with int32 ops (DT-4), as traced PyTorch views are. Saved with an empty pass pipeline so the chain
    survives, as in packages from other exporters; ``trimmed=False`` uses coremltools' default pipeline."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    rng = _rng()

    def convs(x, tag: str):
        for i in range(3):
            weight = _w(rng, 64, 64, 3, 3).astype(np.float16)
            x = mb.relu(x=mb.conv(x=x, weight=weight, pad_type="same", name=f"{tag}{i}_conv"), name=f"{tag}{i}_relu")
        return x

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 32, 32), dtype=types.fp16)], opset_version=ct.target.iOS17)
    def prog(image):
        x = convs(image, "pre")
        rows = mb.mul(x=mb.gather(x=mb.shape(x=x), indices=np.array([2], np.int32), axis=0), y=np.int32(32))
        shape = mb.concat(values=[np.array([1, 64], np.int32), rows], axis=0)
        return convs(mb.expand_dims(x=mb.reshape(x=x, shape=shape, name="flatten"), axes=[-1]), "post")

    return save(prog, folder / "shape_arithmetic_net.mlpackage", pipeline=ct.PassPipeline.EMPTY if trimmed else None)


def gather_net(folder: Path, channels: np.ndarray | None = None) -> Path:
    """Convs around two constant-index gathers: every 2nd channel (or ``channels``) and rows 4..19."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = _rng()
    picked = np.arange(0, 64, 2, dtype=np.int32) if channels is None else channels.astype(np.int32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 32, 32))], opset_version=ct.target.iOS17)
    def prog(image):
        x = _convs(mb, rng, image, 3, 64, "pre")
        x = mb.gather(x=x, indices=picked, axis=1, name="pick_channels")
        x = _convs(mb, rng, x, 2, 64, "mid")
        x = mb.gather(x=x, indices=np.arange(4, 20, dtype=np.int32), axis=2, name="crop_rows")
        return _convs(mb, rng, x, 2, 64, "post")

    return save(prog, folder / "gather_net.mlpackage")


def gather_profile(slices_on_ane: bool = True) -> dict:
    """A measured profile (as ``anedoctor probes ingest`` writes it) of an M4 on macOS 15 whose gather probes ran off
    the ANE and whose slice probes ran on it (or off it too)."""
    from anedoctor.rules.measured import example_profile

    return example_profile([("gather_c", False, "gather"), ("slice_c", slices_on_ane, "slice_by_index")])


# the models above whose blockers fix cures at the default chip and OS (the others need a15/ios16, a12 or a profile)
ZOO.update({"rank5_mlp": (rank5_mlp, True), "shape_arithmetic": (shape_arithmetic_net, True)})
