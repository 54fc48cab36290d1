"""Small helpers shared by every layer: atomic writes, JSON rows, pausing the garbage collector."""
from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building or walking a big IR (also a decorator).

    A 10,000-op program makes a few hundred thousand objects that all stay alive; the
    collector's repeated full passes over them took about half of `check`'s time and most of
    the report's. Cycles made meanwhile are collected once it is re-enabled."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def json_rows(d: dict[str, Any]) -> str:
    """JSON with a line per top-level field and per element of a list field: readable, diffable,
    and written by json's C encoder (an indented dump runs in pure Python, ~4x slower)."""
    fields = []
    for key, value in d.items():
        if isinstance(value, list) and value:
            rows = ",\n  ".join(json.dumps(row) for row in value)
            fields.append(f" {json.dumps(key)}: [\n  {rows}\n ]")
        else:
            fields.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write a file so readers never see a half-written one (temp file in the same folder + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
