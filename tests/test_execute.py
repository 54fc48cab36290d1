"""Executor: the zoo against torch eager, single-op semantics against coremltools' reference value
inference or independent numpy/torch code, compressed weights, control flow, state, fp16 emulation
mechanics, input handling, and bad input."""

from __future__ import annotations

import contextlib
import io
import shutil
import warnings
import weakref

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from zoo import ZOO, input_names, zoo_models  # noqa: F401  (zoo_models is a fixture)

from anedoctor.errors import ModelError
from anedoctor.execute import Plan, check_inputs, generate_inputs, load_inputs, run, save_outputs, side_by_side
from anedoctor.loaders import load

warnings.filterwarnings("ignore")
import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4, 6)).astype(np.float32)
X.flags.writeable = False  # some coremltools value inferences write into their inputs


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) if b.size else 0.0


def flat(out) -> list[np.ndarray]:
    return [t.detach().numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]


def feeds_of(name, inputs):
    return dict(zip(input_names(name, len(inputs)), (x.numpy() for x in inputs)))


def program_model(path, build, shapes, target=ct.target.iOS17, dtypes=None, states=()):
    """Save a MIL program (``build(*inputs)`` -> outputs) as an fp32 .mlpackage without graph passes."""
    specs = [mb.TensorSpec(shape=s, dtype=(dtypes or {}).get(i, types.fp32)) for i, s in enumerate(shapes)]
    specs += [mb.StateTensorSpec(shape=s, dtype=types.fp16) for s in states]
    prog = mb.program(input_specs=specs, opset_version=target)(build)
    with contextlib.redirect_stderr(io.StringIO()):
        model = ct.convert(
            prog,
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32,
            pass_pipeline=ct.PassPipeline.EMPTY,
            minimum_deployment_target=target,
        )
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("execute")


# ---------------------------------------------------------------- the zoo, fp32 against torch eager


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_fp32_matches_torch_eager(name, zoo_models):
    module, inputs = ZOO[name]()
    with torch.no_grad():
        expected = flat(module(*inputs))
    res = run(zoo_models(name), feeds_of(name, inputs))
    assert len(res.outputs) == len(expected)
    for (out, got), want in zip(res.outputs.items(), expected):
        assert got.shape == want.shape, out
        assert rel(got, want) <= 1e-4, (out, rel(got, want))


@pytest.mark.parametrize("name", ["resnet", "convnext", "vit", "bert", "lstm", "dilated_transposed"])
def test_zoo_neuralnetwork_format_matches_torch(name, tmp):
    """The same architectures converted to the older NeuralNetwork format (translated by the NN loader)."""
    module, inputs = ZOO[name]()
    with torch.no_grad():
        traced, expected = torch.jit.trace(module, inputs), flat(module(*inputs))
    specs = [
        ct.TensorType(name=n, shape=x.shape, dtype=x.numpy().dtype)
        for n, x in zip(input_names(name, len(inputs)), inputs)
    ]
    with contextlib.redirect_stderr(io.StringIO()):
        ml = ct.convert(traced, inputs=specs, convert_to="neuralnetwork")
    path = tmp / f"{name}.mlmodel"
    ml.save(str(path))
    res = run(path, feeds_of(name, inputs))
    for got, want in zip(res.outputs.values(), expected):
        assert rel(got, want) <= 1e-4


# ---------------------------------------------------------------- single ops

C = np.array
F32 = np.float32
I32 = np.int32

# checked against coremltools' own value inference (the MIL reference semantics in Python)
ORACLE = {
    "acos": lambda x: mb.acos(x=mb.clip(x=x, alpha=-0.9, beta=0.9)),
    "asin": lambda x: mb.asin(x=mb.clip(x=x, alpha=-0.9, beta=0.9)),
    "atanh": lambda x: mb.atanh(x=mb.clip(x=x, alpha=-0.9, beta=0.9)),
    "cosh": lambda x: mb.cosh(x=x),
    "sinh": lambda x: mb.sinh(x=x),
    "tan": lambda x: mb.tan(x=mb.clip(x=x, alpha=-1.2, beta=1.2)),
    "inverse": lambda x: mb.inverse(x=x, epsilon=1e-4),
    "threshold": lambda x: mb.threshold(x=x, alpha=0.1),
    "clamped_relu": lambda x: mb.clamped_relu(x=x, alpha=0.1, beta=1.0),
    "linear_activation": lambda x: mb.linear_activation(x=x, alpha=2.0, beta=-1.0),
    "scaled_tanh": lambda x: mb.scaled_tanh(x=x, alpha=1.5, beta=0.7),
    "prelu": lambda x: mb.prelu(x=x, alpha=C([0.1, 0.2, 0.3], F32)),
    "softplus_parametric": lambda x: mb.softplus_parametric(x=x, alpha=C([0.5, 1, 2], F32), beta=C([1, 2, 0.5], F32)),
    "relu6": lambda x: mb.relu6(x=mb.mul(x=x, y=4.0)),
    "softsign": lambda x: mb.softsign(x=x),
    "elu": lambda x: mb.elu(x=x, alpha=0.5),
    "thresholded_relu": lambda x: mb.thresholded_relu(x=x, alpha=0.2),
    "sigmoid_hard": lambda x: mb.sigmoid_hard(x=x, alpha=0.3, beta=0.4),
    "gelu_tanh": lambda x: mb.gelu(x=x, mode="TANH_APPROXIMATION"),
    "gelu_sigmoid": lambda x: mb.gelu(x=x, mode="SIGMOID_APPROXIMATION"),
    "logical": lambda x: mb.cast(
        x=mb.logical_xor(
            x=mb.logical_and(x=mb.greater(x=x, y=0.0), y=mb.less(x=x, y=1.0)),
            y=mb.logical_or(x=mb.equal(x=x, y=0.0), y=mb.less_equal(x=x, y=-0.5)),
        ),
        dtype="int32",
    ),
    "logical_not": lambda x: mb.cast(x=mb.logical_not(x=mb.greater(x=x, y=0.0)), dtype="int32"),
    "mod": lambda x: mb.mod(x=x, y=0.7),
    "minimum": lambda x: mb.minimum(x=x, y=0.2),
    "floor_div": lambda x: mb.floor_div(x=x, y=0.3),
    "reduce_prod": lambda x: mb.reduce_prod(x=x, axes=[3]),
    "reduce_l1": lambda x: mb.reduce_l1_norm(x=x, axes=[1, 2]),
    "reduce_log_sum": lambda x: mb.reduce_log_sum(x=mb.add(x=mb.abs(x=x), y=1.0), axes=[-1]),
    "reduce_sum_square": lambda x: mb.reduce_sum_square(x=x, axes=[2], keep_dims=True),
    "reduce_log_sum_exp": lambda x: mb.reduce_log_sum_exp(x=x, axes=[0, 3]),
    "reduce_argmax": lambda x: mb.reduce_argmax(x=x, axis=2, keep_dims=True),
    "l2_norm": lambda x: mb.l2_norm(x=x, epsilon=1e-6),
    "layer_norm_inner_axes": lambda x: mb.layer_norm(x=x, axes=[1, 3], epsilon=1e-5),
    "layer_norm_affine": lambda x: mb.layer_norm(
        x=x, axes=[-1], gamma=np.linspace(0.5, 1.5, 6).astype(F32), beta=np.linspace(-1, 1, 6).astype(F32)
    ),
    "gather_scalar_index": lambda x: mb.mul(
        x=x, y=mb.cast(x=mb.gather(x=mb.shape(x=x), indices=np.int32(2), axis=0), dtype="fp32")
    ),
    "gather_negative": lambda x: mb.gather(x=x, indices=C([[2, 0], [1, -1]], I32), axis=3),
    "gather_batch_dims": lambda x: mb.gather(x=x, indices=C([[2, 0], [1, 1]], I32), axis=1, batch_dims=1),
    "gather_along_axis": lambda x: mb.gather_along_axis(
        x=x, indices=np.tile(C([0, 3, 1], I32).reshape(1, 1, 1, 3), (2, 3, 4, 1)), axis=3
    ),
    "scatter_along_axis": lambda x: mb.scatter_along_axis(
        data=x, indices=np.full((2, 3, 1, 6), 2, I32), updates=np.ones((2, 3, 1, 6), F32), axis=2, mode="update"
    ),
    "slice_by_size": lambda x: mb.slice_by_size(x=x, begin=[1, 0, 1, 2], size=[1, -1, 2, 3]),
    "slice_negative_stride": lambda x: mb.slice_by_index(
        x=x,
        begin=[0, 2, -1, 1],
        end=[2, 0, 0, 5],
        stride=[1, -1, -2, 2],
        begin_mask=[True, False, False, False],
        end_mask=[False, True, True, False],
    ),
    "slice_squeeze": lambda x: mb.slice_by_index(
        x=x, begin=[1, 0, 2, 0], end=[2, 3, 3, 6], squeeze_mask=[True, False, True, False]
    ),
    "flatten2d": lambda x: mb.flatten2d(x=x, axis=2),
    "range_1d": lambda x: mb.range_1d(start=1.0, end=4.0, step=0.5),
    "shape": lambda x: mb.shape(x=x),
    "tile": lambda x: mb.tile(x=x, reps=[1, 2, 1, 3]),
    "split_sizes": lambda x: mb.split(x=x, split_sizes=[1, 5], axis=3)[1],
    "split_num": lambda x: mb.split(x=x, num_splits=2, axis=2)[0],
    "stack": lambda x: mb.stack(values=[x, x], axis=2),
    "squeeze": lambda x: mb.squeeze(x=mb.expand_dims(x=x, axes=[-2]), axes=[3]),
    "reverse": lambda x: mb.reverse(x=x, axes=[1, -1]),
    "topk_ascending": lambda x: mb.topk(x=x, k=2, axis=1, ascending=True)[0],
    "argsort_ascending": lambda x: mb.argsort(x=x, axis=-1, ascending=True),
    "band_part": lambda x: mb.band_part(x=x, lower=0, upper=2),
    "select": lambda x: mb.select(cond=mb.greater(x=x, y=0.0), a=x, b=mb.mul(x=x, y=-3.0)),
    "cast_int": lambda x: mb.cast(x=mb.mul(x=x, y=3.0), dtype="int32"),
    "matmul_transpose_x": lambda x: mb.matmul(x=x, y=x, transpose_x=True),
    "matmul_transpose_y": lambda x: mb.matmul(x=x, y=x, transpose_y=True),
    "einsum": lambda x: mb.einsum(values=(x, mb.transpose(x=x, perm=[0, 3, 2, 1])), equation="nchw,nwhu->nchu"),
    "pad_constant": lambda x: mb.pad(x=x, pad=[0, 1, 2, 0], mode="constant", constant_val=1.5),
    "pad_replicate_3d": lambda x: mb.pad(x=x, pad=[1, 0, 1, 1, 2, 1], mode="replicate"),
    "pad_reflect": lambda x: mb.pad(x=x, pad=[2, 1], mode="reflect"),
    "reshape_zero": lambda x: mb.reshape(x=x, shape=[0, -1, 6]),
    "sdpa_bool_mask": lambda x: mb.scaled_dot_product_attention(
        query=x, key=x, value=x, attn_mask=np.tril(np.ones((4, 4), bool))
    ),
    "sdpa_float_mask": lambda x: mb.scaled_dot_product_attention(
        query=x, key=x, value=x, attn_mask=np.triu(np.full((4, 4), -1e4, F32), 1)
    ),
    "fill": lambda x: mb.fill(shape=[2, 3], value=2.5),
}

T = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731


def depth_to_space(x, b):  # TF DCR order, written as loops over the block
    n, c, h, w = x.shape
    out = np.zeros((n, c // (b * b), h * b, w * b), x.dtype)
    for i in range(b):
        for j in range(b):
            out[:, :, i::b, j::b] = x[:, (i * b + j) * (c // (b * b)) : (i * b + j + 1) * (c // (b * b))]
    return out


def space_to_batch(x, bs, pads):
    x = np.pad(x, [(0, 0), (0, 0), tuple(pads[0]), tuple(pads[1])])
    return np.concatenate([x[:, :, i :: bs[0], j :: bs[1]] for i in range(bs[0]) for j in range(bs[1])], 0)


def reverse_sequence(x, lengths):
    out = x.copy()
    for b, n in enumerate(lengths):
        out[b, :, :n] = x[b, :, :n][:, ::-1]
    return out


def scatter_expected(mode):
    out = X.copy()
    if mode == "update":
        out[:, :, [3, 0]] = 1.0
    elif mode == "add":
        out[:, 1] += 2.0
    elif mode == "mul":
        out[1] *= 2.0
    else:
        out[..., [5, 2]] = np.maximum(out[..., [5, 2]], 0)
    return out


# checked against independent numpy / torch code (no coremltools value inference for these)
EXPECT = {
    "batch_norm": (
        lambda x: mb.batch_norm(
            x=x,
            mean=C([0.1, -0.2, 0.3], F32),
            variance=C([1, 2, 0.5], F32),
            gamma=C([1, 0.5, 2], F32),
            beta=C([0, 0.1, -0.1], F32),
            epsilon=1e-3,
        ),
        lambda x: F.batch_norm(
            T(x),
            T(C([0.1, -0.2, 0.3], F32)),
            T(C([1, 2, 0.5], F32)),
            T(C([1, 0.5, 2], F32)),
            T(C([0, 0.1, -0.1], F32)),
            eps=1e-3,
        ).numpy(),
    ),
    "instance_norm": (
        lambda x: mb.instance_norm(x=x, gamma=C([1, 0.5, 2], F32), beta=C([0, 0.1, -0.1], F32), epsilon=1e-3),
        lambda x: F.instance_norm(
            T(x), weight=T(C([1, 0.5, 2], F32)), bias=T(C([0, 0.1, -0.1], F32)), eps=1e-3
        ).numpy(),
    ),
    # rank 3 in an ML Program is MIL's [n, C, W]: normalised over W only (a NeuralNetwork (C, H, W) blob is not)
    "instance_norm_rank3": (
        lambda x: mb.instance_norm(x=mb.reshape(x=x, shape=[6, 4, 6]), epsilon=1e-3),
        lambda x: (
            (x.reshape(6, 4, 6) - x.reshape(6, 4, 6).mean(-1, keepdims=True))
            / np.sqrt(x.reshape(6, 4, 6).var(-1, keepdims=True) + 1e-3)
        ),
    ),
    "local_response_norm": (
        lambda x: mb.local_response_norm(x=x, size=3, alpha=0.2, beta=0.6, k=1.5),
        lambda x: F.local_response_norm(T(x), 3, 0.2, 0.6, 1.5).numpy(),
    ),
    "gather_nd": (
        lambda x: mb.gather_nd(x=x, indices=C([[0, 1], [1, 2]], I32)),
        lambda x: np.stack([x[0, 1], x[1, 2]]),
    ),
    "gather_nd_batch_dims": (
        lambda x: mb.gather_nd(x=x, indices=C([[[0, 1]], [[2, 3]]], I32), batch_dims=1),
        lambda x: np.stack([x[0, 0, 1], x[1, 2, 3]])[:, None],
    ),
    "scatter_update": (
        lambda x: mb.scatter(data=x, indices=C([3, 0], I32), updates=np.ones((2, 3, 2, 6), F32), axis=2, mode="update"),
        lambda x: scatter_expected("update"),
    ),
    "scatter_add_duplicates": (
        lambda x: mb.scatter(data=x, indices=C([1, 1], I32), updates=np.ones((2, 2, 4, 6), F32), axis=1, mode="add"),
        lambda x: scatter_expected("add"),
    ),
    "scatter_mul": (
        lambda x: mb.scatter(data=x, indices=C([1], I32), updates=np.full((1, 3, 4, 6), 2.0, F32), axis=0, mode="mul"),
        lambda x: scatter_expected("mul"),
    ),
    "scatter_max": (
        lambda x: mb.scatter(data=x, indices=C([5, 2], I32), updates=np.zeros((2, 3, 4, 2), F32), axis=3, mode="max"),
        lambda x: scatter_expected("max"),
    ),
    "scatter_nd": (
        lambda x: mb.scatter_nd(
            data=x, indices=C([[0, 1], [1, 2], [0, 1]], I32), updates=np.ones((3, 4, 6), F32), mode="add"
        ),
        lambda x: (
            x
            + np.add.reduce(
                [
                    np.eye(2)[i][:, None, None, None] * np.eye(3)[j][None, :, None, None]
                    for i, j in [(0, 1), (1, 2), (0, 1)]
                ]
            ).astype(F32)
        ),
    ),
    "concat_interleave": (
        lambda x: mb.concat(values=[x, mb.mul(x=x, y=2.0)], axis=1, interleave=True),
        lambda x: np.stack([x, 2 * x], 2).reshape(2, 6, 4, 6),
    ),
    "depth_to_space": (
        lambda x: mb.depth_to_space(
            x=mb.concat(values=[x, mb.mul(x=x, y=-1.0), mb.mul(x=x, y=2.0), x], axis=1), block_size=2
        ),
        lambda x: depth_to_space(np.concatenate([x, -x, 2 * x, x], 1), 2),
    ),
    "space_to_depth": (
        lambda x: mb.space_to_depth(x=x, block_size=2),
        lambda x: np.concatenate([x[:, :, i::2, j::2] for i in range(2) for j in range(2)], 1),
    ),
    "pixel_unshuffle": (
        lambda x: mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2)),
        lambda x: F.pixel_unshuffle(T(x), 2).numpy(),
    ),
    "pixel_shuffle": (
        lambda x: mb.pixel_shuffle(x=mb.concat(values=[x, x, mb.mul(x=x, y=-1.0), x], axis=1), upscale_factor=2),
        lambda x: F.pixel_shuffle(T(np.concatenate([x, x, -x, x], 1)), 2).numpy(),
    ),
    "space_to_batch": (
        lambda x: mb.space_to_batch(x=x, block_shape=[2, 2], paddings=C([[0, 0], [1, 1]], I32)),
        lambda x: space_to_batch(x, (2, 2), [(0, 0), (1, 1)]),
    ),
    "batch_to_space": (
        lambda x: mb.batch_to_space(
            x=mb.space_to_batch(x=x, block_shape=[2, 2], paddings=C([[0, 0], [1, 1]], I32)),
            block_shape=[2, 2],
            crops=C([[0, 0], [1, 1]], I32),
        ),
        lambda x: x,
    ),
    "reverse_sequence": (
        lambda x: mb.reverse_sequence(x=x, lengths=C([2, 4], I32), seq_axis=2, batch_axis=0),
        lambda x: reverse_sequence(x, [2, 4]),
    ),
    "sliding_windows": (
        lambda x: mb.sliding_windows(x=x, axis=3, size=3, stride=2),
        lambda x: np.stack([x[..., i : i + 3] for i in (0, 2)], 3),
    ),
    "one_hot": (
        lambda x: mb.one_hot(
            indices=C([[0, 2], [1, 3]], I32), one_hot_vector_size=4, axis=1, on_value=5.0, off_value=-1.0
        ),
        lambda x: np.where(np.eye(4)[C([[0, 2], [1, 3]])].transpose(0, 2, 1) > 0, 5.0, -1.0),
    ),
    "cumsum_exclusive_reverse": (
        lambda x: mb.cumsum(x=x, axis=2, exclusive=True, reverse=True),
        lambda x: np.flip(np.cumsum(np.flip(x, 2), 2), 2) - x,
    ),
    "crop": (lambda x: mb.crop(x=x, crop_height=[1, 2], crop_width=[0, 3]), lambda x: x[:, :, 1:2, 0:3]),
    "resize_bilinear_align": (
        lambda x: mb.resize_bilinear(x=x, target_size_height=7, target_size_width=9, sampling_mode="ALIGN_CORNERS"),
        lambda x: F.interpolate(T(x), (7, 9), mode="bilinear", align_corners=True).numpy(),
    ),
    "resize_bilinear_half_pixel": (
        lambda x: mb.resize_bilinear(x=x, target_size_height=7, target_size_width=9, sampling_mode="UNALIGN_CORNERS"),
        lambda x: F.interpolate(T(x), (7, 9), mode="bilinear", align_corners=False).numpy(),
    ),
    "upsample_bilinear_align": (
        lambda x: mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=3, align_corners=True),
        lambda x: F.interpolate(T(x), (8, 18), mode="bilinear", align_corners=True).numpy(),
    ),
    "resize_nearest": (
        lambda x: mb.resize_nearest_neighbor(x=x, target_size_height=6, target_size_width=4),
        lambda x: F.interpolate(T(x), (6, 4), mode="nearest").numpy(),
    ),
    "upsample_nearest_fraction": (
        lambda x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=1.5, scale_factor_width=2.0),
        lambda x: F.interpolate(T(x), scale_factor=(1.5, 2.0), mode="nearest").numpy(),
    ),
    "max_pool_same": (
        lambda x: mb.max_pool(x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="same"),
        lambda x: F.max_pool2d(F.pad(T(x), (0, 1, 0, 1), value=-np.inf), 3, 2).numpy(),
    ),
    "max_pool_ceil": (
        lambda x: mb.max_pool(x=x, kernel_sizes=[3, 2], strides=[2, 2], pad_type="valid", ceil_mode=True),
        lambda x: F.max_pool2d(T(x), (3, 2), 2, ceil_mode=True).numpy(),
    ),
    "avg_pool_same_exclude": (
        lambda x: mb.avg_pool(
            x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same", exclude_padding_from_average=True
        ),
        lambda x: F.avg_pool2d(T(x), 3, 1, 1, count_include_pad=False).numpy(),
    ),
    "l2_pool": (
        lambda x: mb.l2_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
        lambda x: F.lp_pool2d(T(x), 2, 2, 2).numpy(),
    ),
    "conv_same_stride2": (
        lambda x: mb.conv(
            x=x, weight=np.linspace(-1, 1, 54).astype(F32).reshape(2, 3, 3, 3), strides=[2, 2], pad_type="same"
        ),
        lambda x: F.conv2d(
            F.pad(T(x), (0, 1, 0, 1)), T(np.linspace(-1, 1, 54).astype(F32).reshape(2, 3, 3, 3)), stride=2
        ).numpy(),
    ),
    "conv_same_lower_dilated": (
        lambda x: mb.conv(
            x=x, weight=np.linspace(-1, 1, 24).astype(F32).reshape(2, 3, 2, 2), dilations=[1, 2], pad_type="same_lower"
        ),
        lambda x: F.conv2d(
            F.pad(T(x), (1, 1, 1, 0)), T(np.linspace(-1, 1, 24).astype(F32).reshape(2, 3, 2, 2)), dilation=(1, 2)
        ).numpy(),
    ),
    "conv_transpose_output_shape": (
        lambda x: mb.conv_transpose(
            x=x,
            weight=np.linspace(-1, 1, 54).astype(F32).reshape(3, 2, 3, 3),
            strides=[2, 2],
            pad_type="custom",
            pad=[1, 1, 1, 1],
            output_shape=[2, 2, 8, 12],
        ),
        lambda x: F.conv_transpose2d(
            T(x), T(np.linspace(-1, 1, 54).astype(F32).reshape(3, 2, 3, 3)), stride=2, padding=1, output_padding=1
        ).numpy(),
    ),
    "linear_no_bias": (
        lambda x: mb.linear(x=x, weight=np.linspace(-1, 1, 30).astype(F32).reshape(5, 6)),
        lambda x: x @ np.linspace(-1, 1, 30).astype(F32).reshape(5, 6).T,
    ),
    "quantize_roundtrip": (
        lambda x: mb.dequantize(
            input=mb.quantize(input=x, scale=F32(0.05), zero_point=np.int8(3), output_dtype="int8"),
            scale=F32(0.05),
            zero_point=np.int8(3),
        ),
        lambda x: (np.clip(np.round(x / 0.05) + 3, -128, 127) - 3) * F32(0.05),
    ),
}


def build_reference(cases):
    out = {}

    @mb.program(input_specs=[mb.TensorSpec(shape=(1,))], opset_version=ct.target.iOS18)
    def holder(d):
        for k, f in cases.items():
            out[k] = np.asarray(f(X.copy()).val)
        return d

    return out


def outputs_of(cases):
    def build(x):
        return tuple(mb.identity(x=f(x), name=k) for k, f in cases.items())

    return build


@pytest.fixture(scope="module")
def op_models(tmp):
    """Two programs holding every single-op case as one output each, and their expected values."""
    oracle = build_reference(ORACLE)
    models = {}
    for label, cases in (("oracle", ORACLE), ("numpy", {k: v[0] for k, v in EXPECT.items()})):
        models[label] = program_model(
            tmp / f"ops_{label}.mlpackage", outputs_of(cases), [X.shape], target=ct.target.iOS18
        )
    expected = {**oracle, **{k: v[1](X.copy()) for k, v in EXPECT.items()}}
    return models, expected


@pytest.mark.parametrize("label", ["oracle", "numpy"])
def test_single_ops_match_reference_semantics(label, op_models):
    models, expected = op_models
    res = run(models[label], {"x": X})
    bad = []
    for name, got in res.outputs.items():
        want = expected[name]
        if got.shape != want.shape:
            bad.append(f"{name}: shape {got.shape} != {want.shape}")
        elif want.dtype.kind in "biu" and not np.array_equal(got, want):
            bad.append(f"{name}: values differ")
        elif want.dtype.kind == "f" and rel(got, want) > 1e-5:
            bad.append(f"{name}: rel err {rel(got, want):.2e}")
    assert not bad, bad


@pytest.mark.parametrize("accumulator", ["fp32", "fp16"])
def test_single_ops_run_in_fp16_emulation(accumulator, op_models):
    """Every op also runs through its ANE path; smooth ops stay within fp16 error of fp32."""
    models, _ = op_models
    rough = {
        "mod",
        "floor_div",
        "cast_int",
        "argsort_ascending",
        "reduce_argmax",
        "logical",
        "logical_not",
        "quantize_roundtrip",
        "inverse",
        "tan",
        "reduce_prod",
    }  # discontinuous, or amplify input rounding
    for label in models:
        ref = run(models[label], {"x": X}).outputs
        emu = run(models[label], {"x": X}, precision="fp16", devices="ane", accumulator=accumulator).outputs
        errors = {k: rel(emu[k], v) for k, v in ref.items() if k not in rough and v.dtype.kind == "f"}
        assert max(errors.values()) < 2e-2, sorted(errors.items(), key=lambda kv: -kv[1])[:3]


def test_recurrent_ops_match_torch(tmp):
    """MIL lstm (gates i, f, o, z), gru (r, o, z; reset_after) and rnn against torch.nn with permuted weights."""
    torch.manual_seed(0)
    lstm, gru, rnn = torch.nn.LSTM(4, 5, bidirectional=True), torch.nn.GRU(4, 5), torch.nn.RNN(4, 5)
    x = torch.randn(6, 2, 4)
    sd = {
        k: v.detach().numpy()
        for k, v in {
            **{f"l.{k}": v for k, v in lstm.state_dict().items()},
            **{f"g.{k}": v for k, v in gru.state_dict().items()},
            **{f"r.{k}": v for k, v in rnn.state_dict().items()},
        }.items()
    }

    def ifoz(w):  # torch gate order i, f, g, o -> MIL i, f, o, z
        i, f, g, o = np.split(w, 4)
        return np.concatenate([i, f, o, g])

    def roz(w):  # torch r, z, n -> MIL r, o, z
        r, z, n = np.split(w, 3)
        return np.concatenate([r, n, z])

    def build(x):
        zeros = np.zeros((2, 10), F32)
        ly, lh, lc = mb.lstm(
            x=x,
            initial_h=zeros,
            initial_c=zeros,
            direction="bidirectional",
            output_sequence=True,
            weight_ih=ifoz(sd["l.weight_ih_l0"]),
            weight_hh=ifoz(sd["l.weight_hh_l0"]),
            bias=ifoz(sd["l.bias_ih_l0"] + sd["l.bias_hh_l0"]),
            weight_ih_back=ifoz(sd["l.weight_ih_l0_reverse"]),
            weight_hh_back=ifoz(sd["l.weight_hh_l0_reverse"]),
            bias_back=ifoz(sd["l.bias_ih_l0_reverse"] + sd["l.bias_hh_l0_reverse"]),
        )
        gy, gh = mb.gru(
            x=x,
            initial_h=zeros[:, :5],
            weight_ih=roz(sd["g.weight_ih_l0"]),
            weight_hh=roz(sd["g.weight_hh_l0"]),
            bias=roz(sd["g.bias_hh_l0"]),
            input_bias=roz(sd["g.bias_ih_l0"]),
            reset_after=True,
            output_sequence=True,
        )
        ry, rh = mb.rnn(
            x=x,
            initial_h=zeros[:, :5],
            weight_ih=sd["r.weight_ih_l0"],
            weight_hh=sd["r.weight_hh_l0"],
            bias=sd["r.bias_ih_l0"] + sd["r.bias_hh_l0"],
            output_sequence=True,
        )
        return ly, lh, gy, ry

    path = program_model(tmp / "recurrent.mlpackage", build, [(6, 2, 4)], target=ct.target.iOS18)
    got = list(run(path, {"x": x.numpy()}).outputs.values())
    with torch.no_grad():
        ly, (lh, _) = lstm(x)
        want = [ly, torch.cat([lh[0], lh[1]], -1), gru(x)[0], rnn(x)[0]]
    for g, w in zip(got, want):
        assert rel(g, w.numpy()) < 1e-5


def test_control_flow_and_state(tmp):
    """cond, while_loop and read/write state (an accumulator kept across calls)."""

    def build(x, s):
        positive = mb.greater(x=mb.reduce_sum(x=x), y=0.0)
        branch = mb.cond(pred=positive, _true_fn=lambda: mb.mul(x=x, y=2.0), _false_fn=lambda: mb.sub(x=x, y=1.0))
        _, looped = mb.while_loop(
            _cond=lambda i, v: mb.less(x=i, y=5),
            _body=lambda i, v: (mb.add(x=i, y=1), mb.mul(x=v, y=1.5)),
            loop_vars=(np.int32(0), x),
        )
        total = mb.add(x=mb.cast(x=mb.read_state(input=s), dtype="fp32"), y=x)
        mb.coreml_update_state(state=s, value=mb.cast(x=total, dtype="fp16"))
        return branch, looped, total

    path = program_model(tmp / "flow.mlpackage", build, [(2, 3)], target=ct.target.iOS18, states=[(2, 3)])
    x = np.array([[1, 2, 3], [-1, 0.5, 0]], F32)
    res = run(path, {"x": x})
    branch, looped, total = res.outputs.values()
    assert np.allclose(branch, x * 2) and np.allclose(looped, x * 1.5**5) and np.allclose(total, x)
    assert np.allclose(res.states["s"], x, atol=1e-3)
    again = run(path, {"x": -x, "s": res.states["s"]})  # state carried over by the caller
    assert np.allclose(list(again.outputs.values())[0], -x - 1) and np.allclose(again.states["s"], 0, atol=1e-3)


@pytest.fixture(scope="module")
def resnet_path(tmp):
    from zoo import convert

    folder = tmp / "resnet"
    folder.mkdir()
    return {t: convert("resnet", (folder / t).mkdir() or folder / t, target=t) for t in ("iOS16", "iOS18")}


COMPRESSIONS = {
    "lut4_ios16": ("iOS16", "palettize_weights", dict(mode="uniform", nbits=4)),
    "affine8_ios16": ("iOS16", "linear_quantize_weights", dict(mode="linear_symmetric")),
    "sparse_ios16": ("iOS16", "prune_weights", dict(target_sparsity=0.5)),
    "blockwise_int4_ios18": (
        "iOS18",
        "linear_quantize_weights",
        dict(mode="linear", dtype="int4", granularity="per_block", block_size=8),
    ),
    "lut3_grouped_ios18": (
        "iOS18",
        "palettize_weights",
        dict(mode="uniform", nbits=3, granularity="per_grouped_channel", group_size=4),
    ),
    "sparse_ios18": ("iOS18", "prune_weights", dict(target_sparsity=0.5)),
}


@pytest.mark.parametrize("name", list(COMPRESSIONS))
def test_compressed_weights_decompress_exactly(name, resnet_path, tmp):
    """constexpr_* dequantisation matches coremltools' decompress_weights (weights materialised)."""
    import coremltools.optimize.coreml as cto

    target, fn, kw = COMPRESSIONS[name]
    config = {
        "palettize_weights": cto.OpPalettizerConfig,
        "linear_quantize_weights": cto.OpLinearQuantizerConfig,
        "prune_weights": cto.OpMagnitudePrunerConfig,
    }[fn](weight_threshold=64, **kw)
    ml = ct.models.MLModel(str(resnet_path[target]), skip_model_load=True)
    with contextlib.redirect_stderr(io.StringIO()):
        compressed = getattr(cto, fn)(ml, cto.OptimizationConfig(global_config=config))
        dense = cto.decompress_weights(compressed)
    compressed.save(str(tmp / f"{name}.mlpackage"))
    dense.save(str(tmp / f"{name}_dense.mlpackage"))
    assert any(o.type.startswith("constexpr_") for o in load(tmp / f"{name}.mlpackage").ops)
    x = {"x": RNG.standard_normal((1, 3, 64, 64)).astype(F32)}
    a, b = run(tmp / f"{name}.mlpackage", x).outputs, run(tmp / f"{name}_dense.mlpackage", x).outputs
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # two plans of the graph sharing constants (numerics' fp32 and fp16 runs) decompress and hold each weight once
    graph, shared = load(tmp / f"{name}.mlpackage").graphs[0], {}
    first, second = Plan(graph, constants=shared), Plan(graph, "fp16", constants=shared)
    weights = [i for i, t in enumerate(first.init) if isinstance(t, torch.Tensor) and t.numel() > 64]
    assert weights and all(second.init[i] is first.init[i] for i in weights)
    arrays = check_inputs(graph, x)
    alone, together = Plan(graph, "fp16").run(arrays), second.run(arrays)
    assert all(np.array_equal(alone[k], together[k]) for k in alone)


# ---------------------------------------------------------------- fp16 emulation mechanics


def test_fp16_emulation_rounds_and_overflows_per_device(tmp):
    path = program_model(tmp / "scale.mlpackage", lambda x: mb.mul(x=x, y=1000.0, name="big"), [(4,)])
    x = np.array([1.0, 60.0, 70.0, 1e-3], F32)
    ane = run(path, {"x": x}, precision="fp16", devices="ane").outputs
    cpu = run(path, {"x": x}, precision="fp16", devices="cpu").outputs
    out = next(iter(ane.values()))
    assert out[0] == 1000 and out[1] == 60000 and np.isposinf(out[2])  # 70000 > 65504 overflows
    assert out[3] == np.float16(np.float16(1e-3) * np.float32(1000))  # input and output rounded
    assert np.array_equal(next(iter(cpu.values())), x * 1000)


def test_fp16_emulation_honours_casts_but_fp32_ignores_them(tmp):
    def build(x):
        return mb.cast(x=mb.cast(x=x, dtype="fp16"), dtype="fp32")

    path = program_model(tmp / "casts.mlpackage", build, [(3,)])
    x = np.array([0.1, 1e5, 3.14159], F32)
    assert np.array_equal(next(iter(run(path, {"x": x}).outputs.values())), x)
    emu = next(iter(run(path, {"x": x}, precision="fp16", devices="cpu").outputs.values()))
    assert np.array_equal(emu, x.astype(np.float16).astype(F32))


def test_fp16_accumulator_setting_changes_long_sums(tmp):
    """A 4096-term dot product: a wide accumulator is exact up to the output rounding, an fp16 one drifts."""
    w = np.ones((1, 4096), F32)
    path = program_model(tmp / "dot.mlpackage", lambda x: mb.linear(x=x, weight=w), [(1, 4096)])
    x = np.full((1, 4096), 0.1, F32)
    exact = float(x.astype(np.float16).astype(np.float64).sum())
    wide = next(iter(run(path, {"x": x}, precision="fp16", devices="ane").outputs.values()))[0, 0]
    narrow = next(iter(run(path, {"x": x}, precision="fp16", devices="ane", accumulator="fp16").outputs.values()))[0, 0]
    assert abs(wide - exact) <= exact * 2**-10 < abs(narrow - exact)


def test_side_by_side_hands_each_op_both_runs_values_and_keeps_none(tmp):
    """The second model drives: each of its ops gets its own outputs and the first model's values of the same name
    (none for a name only it makes), equal to separate runs' intermediates; no value is held after its visit."""

    def first(x):
        return mb.relu(x=mb.add(x=mb.mul(x=x, y=2.0, name="a"), y=-1.0, name="b"), name="c")

    def second(x):
        extra = mb.mul(x=x, y=0.0, name="only_here")
        return mb.relu(x=mb.add(x=mb.add(x=mb.mul(x=x, y=2.0, name="a"), y=-1.0, name="b"), y=extra), name="c")

    one = program_model(tmp / "first.mlpackage", first, [(8,)])
    two = program_model(tmp / "second.mlpackage", second, [(8,)])
    x = {"x": RNG.standard_normal(8).astype(F32)}
    seen, held = [], []

    def visit(step, values, other_values):
        seen.append((step.op.name, sorted(values), sorted(other_values)))
        held.extend(weakref.ref(a) for a in values.values())
        for name, a in values.items():
            assert np.array_equal(a, alone[name]) and np.array_equal(other_values[name], alone_other[name])

    alone = run(one, x, keep_intermediates=True).intermediates
    alone_other = run(two, x, keep_intermediates=True).intermediates
    reference, result = side_by_side(one, two, x, visit)
    assert [name for name, _, _ in seen] == [op.name for op in load(two).ops if op.type != "const"]
    assert ("only_here", [], ["only_here"]) in seen and ("a", ["a"], ["a"]) in seen
    assert all(ref() is None for ref in held)
    assert np.array_equal(reference.outputs["c"], result.outputs["c"])


def test_devices_mapping_and_report(zoo_models):
    model = load(zoo_models("vae_decoder", fp16=True))
    conv = [o for o in model.ops if o.type == "conv"]
    res = run(model, precision="fp16", devices={conv[-2]: "ane"})
    assert res.devices[conv[-2].name] == "ane" and {d for n, d in res.devices.items() if n != conv[-2].name} == {"cpu"}
    assert "unlisted ops on cpu" in res.placement
    with pytest.raises(ModelError, match="unknown device"):
        run(model, precision="fp16", devices="npu")


# ---------------------------------------------------------------- inputs and outputs


def test_generated_inputs_follow_the_description(zoo_models, tmp):
    bert = load(zoo_models("bert"))
    feeds = generate_inputs(bert, seed=3)
    assert feeds["ids"].dtype == np.int32 and feeds["ids"].max() < 100  # bounded by the embedding it indexes
    assert np.array_equal(
        run(bert, seed=3).outputs[next(iter(bert.graphs[0].outputs)).name],
        run(bert, feeds).outputs[next(iter(bert.graphs[0].outputs)).name],
    )
    module, (x,) = ZOO["mobilenetv2"]()
    with torch.no_grad():
        traced = torch.jit.trace(module, (x,))
    with contextlib.redirect_stderr(io.StringIO()):
        ml = ct.convert(
            traced, inputs=[ct.ImageType(name="image", shape=x.shape, scale=1 / 255)], convert_to="mlprogram"
        )
    ml.save(str(tmp / "image.mlpackage"))
    image = generate_inputs(tmp / "image.mlpackage")["image"]
    assert (
        image.shape == (1, 3, 64, 64) and image.min() >= 0 and image.max() <= 255 and np.all(image == np.round(image))
    )
    assert run(tmp / "image.mlpackage").outputs


def test_npz_inputs_and_atomic_outputs(tmp):
    np.savez(tmp / "in.npz", x=X, extra=np.zeros(2))
    np.save(tmp / "y.npy", X[0])
    loaded = load_inputs(tmp / "in.npz", f"y={tmp / 'y.npy'}")
    assert set(loaded) == {"x", "extra", "y"} and np.array_equal(loaded["y"], X[0])
    out = save_outputs(tmp / "out.npz", {"a": X})
    assert np.array_equal(np.load(out)["a"], X) and [p.name for p in tmp.glob(".out.npz*")] == []
    with pytest.raises(ModelError, match="missing.npz: cannot read"):
        load_inputs(tmp / "missing.npz")
    with pytest.raises(ModelError, match="name it"):
        load_inputs(tmp / "y.npy")


def test_torch_module_runs_through_the_converter():
    module, inputs = ZOO["mlp_mixer"]()
    res = run(module, example_inputs=inputs)
    with torch.no_grad():
        want = module(*inputs).numpy()
    assert rel(next(iter(res.outputs.values())), want) < 1e-2  # the converter stores fp16 weights


# ---------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small(zoo_models):
    return zoo_models("resnet")


@pytest.mark.parametrize(
    "inputs,message",
    [
        ({"y": X}, "unknown input 'y'; the model's inputs are: x"),
        (
            {"x": np.zeros((1, 3, 32, 32), F32)},
            "input 'x': shape (1, 3, 32, 32) does not match the model's fp32[1,3,64,64]",
        ),
        (
            {"x": np.zeros((1, 3, 64, 64), np.complex64)},
            "input 'x': dtype complex64 does not fit the model's fp32 input",
        ),
        ({"x": np.array([["a"]])}, "dtype <U1 does not fit"),
        ({}, "missing input 'x'"),
    ],
)
def test_bad_inputs_are_one_line_model_errors(small, inputs, message):
    with pytest.raises(ModelError) as e:
        run(small, inputs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_int_input_rejects_floats(zoo_models):
    with pytest.raises(ModelError, match="dtype float32 does not fit the model's int32 input"):
        run(zoo_models("gpt"), {"ids": np.zeros((1, 16), F32)})


def test_missing_weight_file(small, tmp):
    broken = tmp / "broken.mlpackage"
    shutil.copytree(small, broken)
    next(broken.rglob("weight.bin")).unlink()
    with pytest.raises(
        ModelError, match=r"op '.*' \(conv\), input '(weight|bias)': .*weight.bin: cannot read (the )?weight file"
    ):
        run(broken)


def test_unsupported_op_is_named(small):
    model = load(small)
    model.graphs[0].ops[3].type = "fancy_new_op"
    with pytest.raises(
        ModelError,
        match=rf"op '{model.graphs[0].ops[3].name}': the executor does not support op type 'ios18.fancy_new_op'",
    ):
        run(model)


def test_runtime_failure_and_wrong_shapes_name_the_op(small):
    model = load(small)
    lin = next(o for o in model.ops if o.type == "linear")
    lin.outputs[0].type = type(lin.outputs[0].type)("fp32", (1, 11))
    with pytest.raises(
        ModelError, match=rf"op '{lin.name}' \(linear\) produced shape \(1, 10\) where the model declares \(1, 11\)"
    ):
        run(model)
    model = load(small)
    model.graphs[0].ops[0].inputs["weight"].const = np.zeros((16, 4, 7, 7), F32)  # wrong channel count
    with pytest.raises(ModelError, match=rf"op '{model.graphs[0].ops[0].name}' \(conv\) failed: "):
        run(model)


def test_bad_precision_arguments(small):
    with pytest.raises(ModelError, match="unknown precision"):
        run(small, precision="bf16")
    with pytest.raises(ModelError, match="unknown accumulator"):
        run(small, precision="fp16", accumulator="int8", devices="ane")


def test_compiled_models_run_or_name_the_missing_weights():
    """Real .mlmodelc compiler outputs (model.mil text) from tests/data: run where complete."""
    from pathlib import Path

    data = Path(__file__).parent / "data" / "mlmodelc"
    res = run(data / "fluidaudio_argmax_ios16.mlmodelc")
    assert set(res.outputs) == {"index", "score"} and res.outputs["index"].dtype == np.int32
    with pytest.raises(ModelError, match=r"constexpr_lut_to_dense\): .*weight.bin: cannot read (the )?weight file"):
        run(data / "silero_vad_palette4_ios16.mlmodelc")


def test_a_pipelines_intermediates_are_kept_per_stage(tmp_path):
    """run(keep_intermediates=True) keys a pipeline's values by stage (both stages name their conv's output t0):
    each stage's relu reads its own stage's t0, and the last stage's output is the model's."""
    import nn_models
    from test_fix_nn import pipeline_of, save

    path = save(pipeline_of(nn_models.conv_chain(2), nn_models.conv_chain(3)), tmp_path / "pipe.mlmodel")
    result = run(path, keep_intermediates=True)
    kept = result.intermediates
    first, second = (g.name for g in load(path).graphs)  # both stages make t0 (conv0), then relu it (l1)
    assert np.array_equal(kept[f"{first}/t"], np.maximum(kept[f"{first}/t0"], 0))
    assert np.array_equal(kept[f"{second}/t1"], np.maximum(kept[f"{second}/t0"], 0))
    assert not np.array_equal(kept[f"{first}/t0"], kept[f"{second}/t0"])
    assert np.array_equal(kept[f"{second}/y"], result.outputs["y"])
