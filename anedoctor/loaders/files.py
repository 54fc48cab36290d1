"""How loaders reach the files of a model: every file is checked before it is opened.

A file anedoctor reads must be a regular file (a FIFO, device or socket would block or never
end), must lie inside the model (no absolute path, ``..`` or symlink leading out of it), and
must be within the size limit of its format. Folder walks never follow a symlink out of the
model or round a loop. Declared tensor shapes are bounded before anything is allocated.

Limits (bytes), each overridable by an environment variable ``ANEDOCTOR_MAX_<KIND>_BYTES``
(for example ``ANEDOCTOR_MAX_MIL_BYTES=2000000000``): see :data:`SIZE_LIMITS`. Shape limits:
``ANEDOCTOR_MAX_DIM``, ``ANEDOCTOR_MAX_RANK``, ``ANEDOCTOR_MAX_ELEMENTS`` (a declared tensor) and
``ANEDOCTOR_MAX_ALLOC_BYTES`` (one array made from a declared shape).
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any, Iterator

from ..errors import ModelError

GiB, MiB = 1 << 30, 1 << 20
SIZE_LIMITS = {
    "spec": 2 * GiB - 1,  # .mlmodel protobuf: protobuf itself cannot parse a bigger message
    "mil": 1 * GiB,  # model.mil text of a compiled ML Program
    "json": 256 * MiB,  # Manifest.json, metadata.json, model.espresso.net / .shape
    "weights": 64 * GiB,  # weight.bin: memory-mapped, only the bytes of touched weights are paged in
    "inputs": 16 * GiB,  # .npy / .npz inputs (each array is also bounded by ANEDOCTOR_MAX_ALLOC_BYTES)
    "torch": 64 * GiB,  # .pt / .pth / .pt2 files handed to torch's own reader
}
JSON_MAX_DEPTH = 100  # Core ML's JSON files nest a handful of levels; deeper input is hostile


def env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


MAX_DIM = env_int("ANEDOCTOR_MAX_DIM", 1 << 40)  # one tensor dimension
MAX_RANK = env_int("ANEDOCTOR_MAX_RANK", 32)
MAX_ELEMENTS = env_int("ANEDOCTOR_MAX_ELEMENTS", 1 << 48)  # elements of one declared tensor


def size_limit(kind: str) -> int:
    return env_int(f"ANEDOCTOR_MAX_{kind.upper()}_BYTES", SIZE_LIMITS[kind])


def plain(path: str | os.PathLike) -> str:
    """A path as text, refusing a NUL byte (the OS cannot open such a name)."""
    text = os.fspath(path)
    if "\0" in str(text):
        raise ModelError(f"{str(text)!r}: a path cannot contain a NUL byte")
    return str(text)


def resolved(path: Path) -> Path | None:
    """``path`` with its symlinks resolved; None on a symlink loop or an unusable name."""
    try:
        return path.resolve()
    except (RuntimeError, OSError, ValueError):  # RuntimeError: symlink loop (Python < 3.13)
        return None


def resolve_inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` with links resolved, or None when it escapes ``root`` (absolute, ``..``, symlink, loop)."""
    if "\0" in rel or Path(rel).is_absolute():
        return None
    path, top = resolved(root / rel), resolved(root)
    return path if path is not None and top is not None and path.is_relative_to(top) else None


def checked_file(path: Path, root: Path | None, kind: str, what: str = "file") -> Path:
    """The resolved ``path`` after checking it is a regular file inside ``root`` within the ``kind`` size limit."""
    plain(path)
    real = resolved(path)
    if real is None:
        raise ModelError(f"{path}: a symlink loop")
    if root is not None:
        top = resolved(root)
        if top is None or not real.is_relative_to(top):
            raise ModelError(f"{path}: the {what} is a link to {real}, outside the model {root}; refusing to read it")
    try:
        st = os.stat(real)
    except OSError as e:
        raise ModelError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{path}: the {what} is not a regular file ({file_kind(st.st_mode)}); refusing to read it")
    limit = size_limit(kind)
    if st.st_size > limit:
        raise ModelError(
            f"{path}: the {what} is {st.st_size:,} bytes, over the {limit:,}-byte limit for it "
            f"(set ANEDOCTOR_MAX_{kind.upper()}_BYTES to raise it)"
        )
    return real


def file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def read_bytes(path: Path, root: Path | None, kind: str, what: str = "file") -> bytes:
    """The bytes of a checked file; reads at most limit + 1 bytes, so a file that grows is still refused."""
    real = checked_file(path, root, kind, what)
    limit = size_limit(kind)
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):  # swapped for something else after the check
                raise ModelError(f"{path}: the {what} is not a regular file; refusing to read it")
            data = f.read(min(st.st_size, limit) + 1)  # one byte more shows a file that grew
    except OSError as e:
        raise ModelError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None
    if len(data) > limit:
        raise ModelError(f"{path}: the {what} is over the {limit:,}-byte limit for it")
    return data


def read_text(path: Path, root: Path | None, kind: str, what: str = "file") -> str:
    data = read_bytes(path, root, kind, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ModelError(f"{path}:{line}: the {what} is not UTF-8 text (byte {e.start})") from None


def read_json(path: Path, root: Path | None, what: str = "JSON file") -> Any:
    """Parsed JSON, or None when the file is absent or is not JSON (binary); ModelError when it is hostile:
    not a regular file, outside the model, too big, or nested deeper than :data:`JSON_MAX_DEPTH`."""
    try:
        if not os.path.lexists(plain(path)):
            return None
    except OSError:
        return None
    data = read_bytes(path, root, "json", what)
    try:
        return _json_value(data, path, what)
    except (UnicodeDecodeError, ValueError):
        return None


def read_json_document(path: str | os.PathLike, what: str) -> Any:
    """A JSON file the user names (profile, probe manifest, measurement): a regular file within the JSON size
    limit (a FIFO or device is refused, never read), UTF-8, nested at most :data:`JSON_MAX_DEPTH` levels;
    ModelError otherwise."""
    text = read_text(Path(plain(path)), None, "json", what)
    try:
        return _json_value(text, path, what)
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def _json_value(data: str | bytes, path: Any, what: str) -> Any:
    """``json.loads`` with the nesting guard (a ValueError for bad JSON passes through)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ModelError(f"{path}: the {what} nests deeper than Python can read") from None
    if json_depth(value) > JSON_MAX_DEPTH:
        raise ModelError(f"{path}: the {what} nests deeper than {JSON_MAX_DEPTH} levels")
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= JSON_MAX_DEPTH:
            children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def is_file(path: Path) -> bool:
    """Does ``path`` name something that is (or links to) a file? Never raises (loops, NUL, long names)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def walk_files(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` (sorted per folder); symlinks are followed only while they stay inside
    ``root``, and each real folder is visited once (no loops)."""
    for folder in walk_dirs(root):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            real = resolve_inside(root, str(path.relative_to(root)))
            if real is not None and entry.is_file():
                try:
                    if stat.S_ISREG(os.stat(real).st_mode):
                        yield path
                except OSError:
                    continue


def walk_dirs(root: Path, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    """``root`` and its sub-folders, depth first, sorted; links out of ``root`` and loops are not followed."""
    top = resolved(root)
    if top is None:
        return
    seen = {top}
    stack = [root]
    while stack:
        folder = stack.pop()
        yield folder
        try:
            subs = sorted((e for e in os.scandir(folder) if e.name not in skip), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in subs:
            path = Path(entry.path)
            real = resolved(path)
            if real is None or not real.is_relative_to(top) or real in seen or not is_dir(path):
                continue
            seen.add(real)
            stack.append(path)


def bounded_shape(shape: tuple[int | None, ...] | None, where: str) -> tuple[int | None, ...] | None:
    """A declared shape, refused (ModelError naming ``where``) when a dimension is negative or over
    :data:`MAX_DIM`, the rank over :data:`MAX_RANK`, or the element count over :data:`MAX_ELEMENTS`."""
    if shape is None:
        return None
    if len(shape) > MAX_RANK:
        raise ModelError(f"{where}: rank {len(shape)} is over the limit of {MAX_RANK} (ANEDOCTOR_MAX_RANK)")
    for d in shape:
        if d is not None and not 0 <= d <= MAX_DIM:
            raise ModelError(f"{where}: dimension {d} is outside 0..{MAX_DIM} (ANEDOCTOR_MAX_DIM)")
    numel = math.prod(d for d in shape if d is not None)
    if numel > MAX_ELEMENTS:
        raise ModelError(
            f"{where}: shape {tuple(shape)} has {numel:,} elements, over the limit of {MAX_ELEMENTS:,} "
            "(ANEDOCTOR_MAX_ELEMENTS)"
        )
    return shape


MAX_ALLOC_BYTES = env_int("ANEDOCTOR_MAX_ALLOC_BYTES", GiB)  # one array made from a declared shape


def allocatable(shape: tuple[int, ...], itemsize: int, what: str) -> tuple[int, ...]:
    """``shape`` when an array of it fits :data:`MAX_ALLOC_BYTES`; ModelError with the limit and the value otherwise."""
    nbytes = math.prod(shape) * itemsize
    if nbytes > MAX_ALLOC_BYTES:
        raise ModelError(
            f"{what} of shape {tuple(shape)} would take {nbytes:,} bytes, over the "
            f"{MAX_ALLOC_BYTES:,}-byte limit (ANEDOCTOR_MAX_ALLOC_BYTES)"
        )
    return shape
