"""NeuralNetwork weights: protobuf WeightParams read lazily (fp32, fp16, quantized, lookup tables)."""

from __future__ import annotations

from math import prod

import numpy as np

from ..ir import LazyConst
from ..ir.dtypes import DTYPE_BYTES


class NNWeights(LazyConst):
    """``WeightParams`` (several are concatenated, e.g. LSTM gates) decoded on demand.

    ``shape`` is the stored row-major shape; ``transpose`` swaps a stored 2-D matrix;
    linear-quantization scales apply along ``qaxis`` of each part."""

    def __init__(self, parts: list, shape: tuple[int, ...], transpose: bool = False, qaxis: int = 0):
        self.parts, self.shape, self.transpose, self.qaxis = parts, tuple(shape), transpose, qaxis
        self.dtype = storage_dtype(parts[0][0])

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.shape[::-1] if self.transpose else self.shape

    def load(self) -> np.ndarray:
        arrays = [decode_weights(wp, shape, self.qaxis).ravel() for wp, shape in self.parts]
        arr = (arrays[0] if len(arrays) == 1 else np.concatenate(arrays)).reshape(self.shape)
        return arr.T if self.transpose else arr


def storage_dtype(wp) -> str:
    if len(wp.floatValue):
        return "fp32"
    if wp.float16Value:
        return "fp16"
    if wp.int8RawValue:
        return "int8"
    bits = f"uint{wp.quantization.numberOfBits or 8}"
    return bits if bits in DTYPE_BYTES else "uint8"


def stored_count(wp) -> int:
    """Number of values a WeightParams holds (for sub-byte quantization: at most)."""
    if len(wp.floatValue):
        return len(wp.floatValue)
    if wp.float16Value:
        return len(wp.float16Value) // 2
    if wp.int8RawValue:
        return len(wp.int8RawValue)
    return len(wp.rawValue) * 8 // (wp.quantization.numberOfBits or 8)


def decode_weights(wp, shape: tuple[int, ...], qaxis: int = 0) -> np.ndarray:
    """One WeightParams -> numpy array of ``shape`` (quantized values dequantized to fp32)."""
    if len(wp.floatValue):
        return np.array(wp.floatValue, np.float32).reshape(shape)
    if wp.float16Value:
        return np.frombuffer(wp.float16Value, np.float16).reshape(shape)
    n, q = prod(shape), wp.quantization
    bits = q.numberOfBits or 8
    if wp.int8RawValue:
        ints = np.frombuffer(wp.int8RawValue, np.int8)
    elif bits == 8:
        ints = np.frombuffer(wp.rawValue, np.uint8)
    else:  # packed most significant bit first
        bit_arr = np.unpackbits(np.frombuffer(wp.rawValue, np.uint8))[: n * bits].reshape(n, bits)
        ints = bit_arr @ (1 << np.arange(bits - 1, -1, -1))
    ints = ints[:n].reshape(shape)
    if q.WhichOneof("QuantizationType") == "lookupTableQuantization":
        return np.asarray(q.lookupTableQuantization.floatValue, np.float32)[ints]

    def per_channel(vals):
        arr = np.asarray(vals, np.float32)
        if arr.size <= 1:
            return arr.reshape(()) if arr.size else np.float32(0)
        return arr.reshape([-1 if i == qaxis else 1 for i in range(len(shape))])

    return ints * per_channel(q.linearQuantization.scale) + per_channel(q.linearQuantization.bias)
