"""Element types: bytes per element and the numpy dtype of each MIL dtype name."""

import numpy as np

DTYPE_BYTES = {
    "fp16": 2,
    "bf16": 2,
    "fp32": 4,
    "fp64": 8,
    "int4": 0.5,
    "uint4": 0.5,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "bool": 1,
    "uint1": 0.125,
    "uint2": 0.25,
    "uint3": 0.375,
    "uint6": 0.75,
    "int2": 0.25,
    "int3": 0.375,
    "int6": 0.75,
    "fp8e4m3fn": 1,
    "fp8e5m2": 1,
}
NUMPY_DTYPES = {
    "fp16": np.float16,
    "fp32": np.float32,
    "fp64": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "bool": np.bool_,
}

FP16_MAX = 65504.0  # the largest finite fp16


def below_fp16(values) -> bool:
    """Whether every value is a float under fp16's lowest (-inf, or a -3.4e38 that becomes -inf in fp16): the fill of
    a masked_fill(-inf). Checked in its own dtype, first element first: a constant that is no fill is turned down
    without a scan or a copy."""
    values = np.asarray(values)
    return (
        values.dtype.kind == "f"
        and values.size > 0
        and bool(values.flat[0] < -FP16_MAX)
        and bool((values < -FP16_MAX).all())
    )
