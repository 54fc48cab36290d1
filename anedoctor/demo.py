"""The built-in example: a small image model with the usual ways of losing the ANE."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .util import quiet_coremltools


def build_demo_model(path: str | Path) -> Path:
    """Write ``demo.mlpackage`` (an ML Program, iOS 17) to ``path`` and return its location.

    A conv backbone that the ANE runs well, then three classic problems: a conv with a large
    dilation (PA-11), a 9x9 max pool (PA-6) and an int32 argmax head (DT-4), plus a
    transformer-style block (layer_norm, linear, softmax) that stays eligible."""
    ct = quiet_coremltools()
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(0)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 256, 256))], opset_version=ct.target.iOS17)
    def demo(image):
        x = mb.relu(
            x=mb.conv(x=image, weight=w(32, 3, 3, 3), strides=[2, 2], pad_type="same", name="stem_conv"),
            name="stem_relu",
        )
        for i in range(4):
            x = mb.relu(
                x=mb.conv(x=x, weight=w(32, 32, 3, 3), pad_type="same", name=f"block{i}_conv"), name=f"block{i}_relu"
            )
        x = mb.conv(x=x, weight=w(64, 32, 3, 3), dilations=[8, 8], pad_type="same", name="context_dilated_conv")
        x = mb.max_pool(x=x, kernel_sizes=[9, 9], strides=[1, 1], pad_type="same", name="context_pool_9x9")
        for i in range(3):
            x = mb.relu(
                x=mb.conv(x=x, weight=w(64, 64, 3, 3), pad_type="same", name=f"head{i}_conv"), name=f"head{i}_relu"
            )
        x = mb.conv(x=x, weight=w(64, 64, 4, 4), strides=[4, 4], name="patchify")  # (1,64,32,32)
        t = mb.transpose(x=mb.reshape(x=x, shape=[1, 64, 1024]), perm=[0, 2, 1], name="to_tokens")  # (1,1024,64)
        t = mb.layer_norm(
            x=t, axes=[-1], gamma=np.ones(64, np.float32), beta=np.zeros(64, np.float32), name="attn_norm"
        )
        q = mb.linear(x=t, weight=w(64, 64), name="q_proj")
        k = mb.linear(x=t, weight=w(64, 64), name="k_proj")
        v = mb.linear(x=t, weight=w(64, 64), name="v_proj")
        a = mb.softmax(x=mb.matmul(x=q, y=k, transpose_y=True, name="attn_scores"), axis=-1, name="attn_softmax")
        t = mb.add(
            x=t, y=mb.linear(x=mb.matmul(x=a, y=v, name="attn_mix"), weight=w(64, 64), name="out_proj"), name="residual"
        )
        logits = mb.linear(x=mb.reduce_mean(x=t, axes=[1], name="pool_tokens"), weight=w(10, 64), name="classifier")
        return mb.reduce_argmax(x=logits, axis=-1, name="predicted_class")

    out = Path(path) / "demo.mlpackage"
    model = ct.convert(demo, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17)
    model.save(str(out))
    return out
