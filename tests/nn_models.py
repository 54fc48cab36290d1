"""Small NeuralNetwork specs built with coremltools' NeuralNetworkBuilder, for loader tests.

Each function returns ``(spec, extras)``: the ``Model`` protobuf and the numpy weights the
test compares against. Building is pure Python (no Core ML runtime needed)."""

from __future__ import annotations

import numpy as np
from coremltools.models import datatypes
from coremltools.models.neural_network import NeuralNetworkBuilder, flexible_shape_utils
from coremltools.proto import NeuralNetwork_pb2

RNG = np.random.default_rng(0)


def weights(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def add_conv3x3(b, name: str, cin: int, cout: int, src: str, dst: str, dilation: int = 1, scale: float = 0.05) -> None:
    """A 3x3 'same' convolution with a bias, random weights (times ``scale``) and dilation ``dilation``."""
    b.add_convolution(
        name,
        kernel_channels=cin,
        output_channels=cout,
        height=3,
        width=3,
        stride_height=1,
        stride_width=1,
        border_mode="same",
        groups=1,
        W=weights(3, 3, cin, cout) * scale,
        b=weights(cout) * scale,
        has_bias=True,
        input_name=src,
        output_name=dst,
        dilation_factors=[dilation, dilation],
    )


def legacy_classifier():
    """Rank-5 era image classifier: preprocessing, conv, batchnorm, leaky ReLU, pool, flatten,
    inner product, softmax, 4 class labels."""
    b = NeuralNetworkBuilder([("image", datatypes.Array(3, 16, 16))], [("probs", None)], mode="classifier")
    b.set_pre_processing_parameters(
        image_input_names=["image"], is_bgr=True, image_scale=1 / 255.0, red_bias=-1.0, green_bias=-2.0, blue_bias=-3.0
    )
    conv_w = weights(3, 3, 3, 8)  # builder layout: (kh, kw, Cin, Cout)
    b.add_convolution(
        "conv",
        kernel_channels=3,
        output_channels=8,
        height=3,
        width=3,
        stride_height=2,
        stride_width=2,
        border_mode="same",
        groups=1,
        W=conv_w,
        b=weights(8),
        has_bias=True,
        input_name="image",
        output_name="c",
    )
    b.add_batchnorm(
        "bn",
        8,
        gamma=weights(8),
        beta=weights(8),
        mean=weights(8),
        variance=np.ones(8),
        input_name="c",
        output_name="n",
    )
    b.add_activation("act", "LEAKYRELU", "n", "a", params=[0.1])
    b.add_pooling(
        "pool",
        height=2,
        width=2,
        stride_height=2,
        stride_width=2,
        layer_type="MAX",
        padding_type="VALID",
        input_name="a",
        output_name="p",
    )
    b.add_pooling(
        "gap",
        height=1,
        width=1,
        stride_height=1,
        stride_width=1,
        layer_type="AVERAGE",
        padding_type="VALID",
        input_name="a",
        output_name="gap",
        is_global=True,
    )
    b.add_flatten("flat", mode=0, input_name="p", output_name="f")
    fc_w = weights(4, 128)
    b.add_inner_product(
        "fc",
        W=fc_w,
        b=weights(4),
        input_channels=128,
        output_channels=4,
        has_bias=True,
        input_name="f",
        output_name="logits",
    )
    b.add_softmax("softmax", "logits", "probs")
    b.set_class_labels(["cat", "dog", "fish", "bird"])
    return b.spec, {"conv_w": conv_w, "fc_w": fc_w}


def legacy_ops():
    """Rank-5 era layers on a (C, H, W) array: elementwise, concat, split, slice, reshape, permute,
    padding, upsample, crop, unary, reduce, reorganize, l2 norm, lrn, mvn, scale, bias."""
    b = NeuralNetworkBuilder([("x", datatypes.Array(4, 6, 6)), ("v", datatypes.Array(4))], [("out", None)])
    b.add_elementwise("add", ["x", "x"], "sum", "ADD")
    b.add_elementwise("scalar_mul", ["x"], "scaled", "MULTIPLY", alpha=2.0)
    b.add_elementwise("avg", ["x", "sum", "scaled"], "avg", "AVE")
    b.add_elementwise("add3", ["x", "sum", "scaled"], "add3", "ADD")
    b.add_elementwise("cat", ["x", "sum"], "cat", "CONCAT")
    b.add_split("split", "cat", ["s0", "s1"])
    b.add_slice("slice", "x", "sl", axis="width", start_index=1, end_index=5, stride=2)
    b.add_reshape("reshape", "x", "rs", target_shape=(2, 12, 6), mode=0)
    b.add_permute("permute", (0, 2, 3, 1), "x", "perm")
    b.add_padding(
        "pad", left=1, right=2, top=3, bottom=0, input_name="x", output_name="padded", padding_type="reflection"
    )
    b.add_upsample("up", 2, 3, "x", "up", mode="BILINEAR")
    b.add_crop("crop", left=1, right=1, top=2, bottom=0, offset=[0, 0], input_names=["x"], output_name="crop")
    b.add_unary("rsqrt", "x", "rsqrt", mode="rsqrt", epsilon=1e-4)
    b.add_reduce("reduce", "x", "red", axis="HW", mode="avg")
    b.add_reorganize_data("s2d", "x", "s2d", mode="SPACE_TO_DEPTH", block_size=2)
    b.add_l2_normalize("l2", "x", "l2")
    b.add_lrn("lrn", "x", "lrn", alpha=1e-4, beta=0.75, local_size=3)
    b.add_mvn("mvn", "x", "mvn", across_channels=False, normalize_variance=True)
    b.add_scale(
        "scale",
        W=weights(4),
        b=weights(4),
        has_bias=True,
        input_name="x",
        output_name="scl",
        shape_scale=[4],
        shape_bias=[4],
    )
    b.add_bias("bias", b=weights(4, 6, 6), input_name="x", output_name="out", shape_bias=[4, 6, 6])
    b.add_inner_product(
        "vec_fc",
        W=weights(3, 4),
        b=None,
        input_channels=4,
        output_channels=3,
        has_bias=False,
        input_name="v",
        output_name="vfc",
    )
    b.add_softmax("vec_softmax", "vfc", "vsm")
    return b.spec


def nd_ops():
    """Spec-4+ ND layers with exact rank mapping."""
    b = NeuralNetworkBuilder(
        [("a", datatypes.Array(2, 3, 4)), ("m", datatypes.Array(4, 5)), ("ids", datatypes.Array(7, 1))],
        [("out", None)],
        disable_rank5_shape_mapping=True,
    )
    b.add_batched_mat_mul("mm", ["a", "m"], "mm")
    mm_w = weights(4, 6)  # (X1, X2)
    b.add_batched_mat_mul("mm_w", ["a"], "mmw", W=mm_w, bias=weights(6), weight_matrix_rows=4, weight_matrix_columns=6)
    b.add_load_constant_nd("const", "k", constant_value=weights(3, 1), shape=[3, 1])
    b.add_add_broadcastable("badd", ["mm", "k"], "badd")
    b.add_multiply_broadcastable("bmul", ["a", "k"], "bmul")
    b.add_concat_nd("cat", ["a", "bmul"], "cat", axis=-1)
    b.add_split_nd("split", "cat", ["sp0", "sp1", "sp2"], axis=2, split_sizes=[2, 2, 4])
    b.add_reshape_static("rs", "a", "rs", output_shape=(6, -1))
    b.add_transpose("tr", [2, 0, 1], "a", "tr")
    b.add_slice_static(
        "ss",
        "a",
        "ss",
        begin_ids=[0, 1, 0],
        end_ids=[2, 3, 4],
        strides=[1, 1, 2],
        begin_masks=[True, False, False],
        end_masks=[True, False, True],
        squeeze_masks=[False, False, False],
    )
    b.add_reduce_mean("rm", "a", "rm", axes=[1], keepdims=False)
    b.add_softmax_nd("smx", "a", "smx", axis=-1)
    b.add_expand_dims("ed", "a", "ed", axes=[0, -1])
    b.add_squeeze("sq", "ed", "sq", axes=[0])
    emb_w = weights(8, 10)  # builder layout: (embedding_size, vocab_size)
    b.add_embedding_nd("emb", "ids", "emb", vocab_size=10, embedding_size=8, W=emb_w)
    b.add_gather("gather", ["a", "ids"], "gat", axis=1)
    b.add_flatten_to_2d("f2d", "a", "f2d", axis=1)
    b.add_tile("tile", "a", "tile", reps=[2, 1])
    b.add_topk("topk", ["a"], ["tkv", "tki"], k=2, axis=-1)
    b.add_argmax("argmax", "a", "am", axis=1, keepdims=False)
    b.add_constant_pad("cpad", ["a"], "cp", pad_amounts=[0, 0, 1, 1, 2, 0])
    b.add_layer_normalization("ln", "a", "ln", normalized_shape=[3, 4], gamma=weights(3, 4), beta=weights(3, 4))
    b.add_where_broadcastable("where", ["a", "a", "k"], "where")
    b.add_one_hot("onehot", ["ids"], "oh", one_hot_vector_size=10, axis=-1)
    b.add_slice_dynamic(
        "sd", ["a", "ids"], "sd", end_ids=[2, 3, 4], begin_masks=[False, True, True], end_masks=[True, True, True]
    )
    b.add_activation("out", "RELU", "mm", "out")
    return b.spec, {"mm_w": mm_w, "emb_w": emb_w}


def recurrent():
    """Uni- and bi-directional LSTM, GRU and simple RNN on a rank-5 (Seq, B, I, 1, 1) input."""
    i, h = 3, 5
    b = NeuralNetworkBuilder([("seq", datatypes.Array(i))], [("y", None)])
    wx, wh, bias = [weights(h, i) for _ in range(4)], [weights(h, h) for _ in range(4)], [weights(h) for _ in range(4)]
    b.add_unilstm(
        "lstm",
        W_h=wh,
        W_x=wx,
        b=bias,
        hidden_size=h,
        input_size=i,
        input_names=["seq", "h0", "c0"],
        output_names=["y", "hn", "cn"],
        output_all=True,
        peep=[weights(h) for _ in range(3)],
    )
    b.add_bidirlstm(
        "bilstm",
        W_h=wh,
        W_x=wx,
        b=bias,
        W_h_back=wh,
        W_x_back=wx,
        b_back=bias,
        hidden_size=h,
        input_size=i,
        input_names=["seq"],
        output_names=["by", "bh", "bc", "bhb", "bcb"],
    )
    b.add_gru(
        "gru",
        W_h=wh[:3],
        W_x=wx[:3],
        b=bias[:3],
        hidden_size=h,
        input_size=i,
        input_names=["seq"],
        output_names=["gy", "gh"],
    )
    b.add_simple_rnn(
        "rnn",
        W_h=wh[0],
        W_x=wx[0],
        b=bias[0],
        hidden_size=h,
        input_size=i,
        activation="TANH",
        input_names=["seq"],
        output_names=["ry", "rh"],
    )
    return b.spec, {"wx": wx, "wh": wh, "bias": bias}


def custom_layer():
    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 4, 8, 8))], [("y", None)], disable_rank5_shape_mapping=True)
    params = NeuralNetwork_pb2.CustomLayerParams()
    params.className = "MyFancyOp"
    params.parameters["gain"].doubleValue = 2.5
    params.weights.add().floatValue.extend([1.0, 2.0, 3.0])
    b.add_custom("fancy", ["x"], ["c"], custom_proto_spec=params)
    b.add_activation("relu", "RELU", "c", "y")
    return b.spec


def quantized():
    """Inner products with 8-bit linear and 4-bit look-up-table quantized weights."""
    b = NeuralNetworkBuilder([("x", datatypes.Array(6))], [("y", None)], disable_rank5_shape_mapping=True)
    q8 = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    scale, qbias = np.array([0.5, 1, 2, 4], np.float32), np.array([-1, 0, 1, 2], np.float32)
    b.add_inner_product(
        "lin8",
        W=q8.tobytes(),
        b=None,
        input_channels=6,
        output_channels=4,
        has_bias=False,
        input_name="x",
        output_name="h",
        is_quantized_weight=True,
        quantization_type="linear",
        nbits=8,
        quant_scale=scale,
        quant_bias=qbias,
    )
    q4 = RNG.integers(0, 16, (3, 4), dtype=np.uint8)
    packed = np.packbits(np.unpackbits(q4.reshape(-1, 1), axis=1)[:, 4:].ravel()).tobytes()
    lut = np.linspace(-1, 1, 16).astype(np.float32)
    b.add_inner_product(
        "lut4",
        W=packed,
        b=None,
        input_channels=4,
        output_channels=3,
        has_bias=False,
        input_name="h",
        output_name="y",
        is_quantized_weight=True,
        quantization_type="lut",
        nbits=4,
        quant_lut=lut,
    )
    return b.spec, {"lin8": q8 * scale[:, None] + qbias[:, None], "lut4": lut[q4]}


def flexible():
    """One input with a shape range, one with enumerated shapes, an image with a size range."""
    b = NeuralNetworkBuilder(
        [("r", datatypes.Array(1, 8, 16)), ("e", datatypes.Array(2, 3))],
        [("y", None), ("z", None)],
        disable_rank5_shape_mapping=True,
    )
    b.add_activation("y", "RELU", "r", "y")
    b.add_activation("z", "SIGMOID", "e", "z")
    spec = b.spec
    flexible_shape_utils.set_multiarray_ndshape_range(spec, "r", lower_bounds=[1, 8, 1], upper_bounds=[1, 8, -1])
    flexible_shape_utils.add_multiarray_ndshape_enumeration(spec, "e", [(4, 3), (6, 3)])
    return spec


def flexible_image():
    b = NeuralNetworkBuilder([("img", datatypes.Array(1, 32, 32))], [("y", None)])
    b.add_activation("y", "RELU", "img", "y")
    b.set_pre_processing_parameters(image_input_names=["img"], gray_bias=-0.5, image_scale=2.0)
    spec = b.spec
    flexible_shape_utils.update_image_size_range(
        spec, "img", flexible_shape_utils.NeuralNetworkImageSizeRange(height_range=(32, 32), width_range=(16, 64))
    )
    return spec


def conv_chain(n: int):
    """``n`` layers alternating 1x1 convolution and ReLU, written straight into the protobuf."""
    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 8, 32, 32))], [("y", None)], disable_rank5_shape_mapping=True)
    b.add_convolution(
        "conv0",
        kernel_channels=8,
        output_channels=8,
        height=1,
        width=1,
        stride_height=1,
        stride_width=1,
        border_mode="valid",
        groups=1,
        W=weights(1, 1, 8, 8),
        b=None,
        has_bias=False,
        input_name="x",
        output_name="t0",
    )
    layers = b.spec.neuralNetwork.layers
    template = layers[0]
    for i in range(1, n):
        layer = layers.add()
        if i % 2:
            layer.activation.ReLU.SetInParent()
        else:
            layer.CopyFrom(template)
        layer.name = f"l{i}"
        layer.input[:] = [f"t{i - 1}"]
        layer.output[:] = [f"t{i}" if i < n - 1 else "y"]
    return b.spec
