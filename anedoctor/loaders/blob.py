"""Read one weight from a Core ML blob file (``weights/weight.bin``).

Layout (coremltools MILBlob ``StorageFormat.hpp``): a 64-byte file header, then at each
blob's offset a 64-byte metadata record: uint32 sentinel 0xDEADBEEF, uint32 dtype,
uint64 size in bytes, uint64 offset of the data, ... The data is read with a memory map,
so only the bytes of the weights an analysis touches are paged in.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..ir import LazyConst
from ..ir.dtypes import NUMPY_DTYPES


@dataclass
class BlobRef(LazyConst):
    """A weight stored in a Core ML blob file (``weight.bin``), read on demand."""

    path: Path
    offset: int
    dtype: str
    shape: tuple[int, ...]

    def load(self) -> np.ndarray:
        return read_blob(self)


SENTINEL = 0xDEADBEEF
SUB_BYTE_BITS = {"uint1": 1, "uint2": 2, "uint3": 3, "uint4": 4, "uint6": 6, "int4": 4, "int2": 2, "int3": 3, "int6": 6}


def read_blob(ref: BlobRef) -> np.ndarray:
    """Return the array a BlobRef points at; ModelError when the file or record is bad."""
    try:
        mm = np.memmap(ref.path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:
        raise ModelError(f"{ref.path}: cannot read weight file ({e.__class__.__name__})") from None
    if ref.offset + 64 > mm.size:
        raise ModelError(f"{ref.path}: weight offset {ref.offset} is past the end of the file")
    sentinel, _dtype = mm[ref.offset : ref.offset + 8].view("<u4")
    size, data_offset = mm[ref.offset + 8 : ref.offset + 24].view("<u8")
    if sentinel != SENTINEL or data_offset + size > mm.size:
        raise ModelError(f"{ref.path}: corrupt weight record at offset {ref.offset}")
    raw = mm[int(data_offset) : int(data_offset + size)]
    count = int(np.prod(ref.shape, dtype=np.int64)) if ref.shape else 1
    if ref.dtype in SUB_BYTE_BITS:
        return unpack_sub_byte(raw, ref.dtype, count).reshape(ref.shape)
    if ref.dtype not in NUMPY_DTYPES:
        raise ModelError(f"{ref.path}: weight dtype {ref.dtype} is not supported")
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
