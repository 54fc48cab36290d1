"""Read one weight from a Core ML blob file (``weights/weight.bin``).

Layout (coremltools MILBlob ``StorageFormat.hpp``): a 64-byte file header, then at each
blob's offset a 64-byte metadata record: uint32 sentinel 0xDEADBEEF, uint32 dtype,
uint64 size in bytes, uint64 offset of the data, ... The data is read with a memory map,
so only the bytes of the weights an analysis touches are paged in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..ir import LazyConst
from ..ir.dtypes import NUMPY_DTYPES
from .files import checked_file


@dataclass
class BlobRef(LazyConst):
    """A weight stored in a Core ML blob file (``weight.bin``), read on demand."""

    path: Path
    offset: int
    dtype: str
    shape: tuple[int, ...]
    name: str = field(default="", compare=False)  # the constant it holds, for messages

    def load(self) -> np.ndarray:
        return read_blob(self)


SENTINEL = 0xDEADBEEF
SUB_BYTE_BITS = {"uint1": 1, "uint2": 2, "uint3": 3, "uint4": 4, "uint6": 6, "int4": 4, "int2": 2, "int3": 3, "int6": 6}


def read_blob(ref: BlobRef) -> np.ndarray:
    """Return the array a BlobRef points at; ModelError when the file or record is bad."""
    real = checked_file(ref.path, None, "weights", "weight file")
    try:
        mm = np.memmap(real, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:
        raise ModelError(f"{ref.path}: cannot read weight file ({e.__class__.__name__})") from None
    const = f"const {ref.name!r}: " if ref.name else ""
    if ref.offset + 64 > mm.size:
        raise ModelError(f"{ref.path}: {const}weight offset {ref.offset} is past the end of the file ({mm.size} bytes)")
    sentinel, _dtype = (int(x) for x in mm[ref.offset : ref.offset + 8].view("<u4"))
    size, data_offset = (int(x) for x in mm[ref.offset + 8 : ref.offset + 24].view("<u8"))
    if sentinel != SENTINEL or data_offset + size > mm.size:
        raise ModelError(f"{ref.path}: {const}corrupt weight record at offset {ref.offset}")
    raw = mm[data_offset : data_offset + size]
    count = math.prod(ref.shape)
    if ref.dtype not in SUB_BYTE_BITS and ref.dtype not in NUMPY_DTYPES:
        raise ModelError(f"{ref.path}: {const}weight dtype {ref.dtype} is not supported")
    bits = SUB_BYTE_BITS.get(ref.dtype) or 8 * np.dtype(NUMPY_DTYPES[ref.dtype]).itemsize
    if count * bits > size * 8:
        raise ModelError(
            f"{ref.path}: {const}shape {ref.shape} needs {-(-count * bits // 8):,} bytes of {ref.dtype} "
            f"but its blob at offset {ref.offset} holds {size:,}"
        )
    if ref.dtype in SUB_BYTE_BITS:
        return unpack_sub_byte(raw, ref.dtype, count).reshape(ref.shape)
    arr = np.frombuffer(raw, dtype=NUMPY_DTYPES[ref.dtype], count=count)
    return arr.reshape(ref.shape)


def unpack_sub_byte(raw: np.ndarray, dtype: str, count: int) -> np.ndarray:
    """Unpack little-endian packed 1..6-bit integers (palettization indices, int4 weights)."""
    nbits = SUB_BYTE_BITS[dtype]
    bits = np.unpackbits(np.asarray(raw), bitorder="little")[: count * nbits].reshape(count, nbits)
    values = (bits.astype(np.int16) << np.arange(nbits, dtype=np.int16)).sum(axis=1)
    if dtype.startswith("int"):
        values = np.where(values >= 1 << (nbits - 1), values - (1 << nbits), values)
    return values.astype(np.int8 if dtype.startswith("int") else np.uint8)
