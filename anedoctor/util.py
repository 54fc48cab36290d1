"""Small helpers shared by every layer: atomic writes, JSON rows, pausing the garbage collector."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
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
    """Write a file so readers never see a half-written one (temp file in the same folder + rename).

    The file gets the mode an ordinary write would give it: an existing file keeps its mode, a new
    one gets 0666 less the umask (not the 0600 of a temp file)."""
    path = Path(path)
    os.replace(staged(path, data), path)
    return path


def staged(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to a hidden temp file beside ``path`` with the mode ``path`` should have; returns it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~current_umask())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def safe_text(text: object) -> str:
    """Untrusted text (names and notes from a model) made safe for a terminal: control characters,
    escape sequences included, are shown escaped (``\\x1b``) instead of being sent to the terminal."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in s)


def safe_lines(text: str) -> str:
    """A report's lines, each through :func:`safe_text`: what reaches a terminal from a model is shown, never obeyed."""
    return "\n".join(map(safe_text, text.split("\n")))


def quiet_coremltools():
    """Import coremltools without its Linux-only warnings (no native runtime here)."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import coremltools

    return coremltools


class Exportable:
    """``to_json`` and ``to_html`` for a result that has ``to_dict()`` and ``html()``: each returns the text
    and, given a path, also writes it atomically."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def html(self) -> str:
        raise NotImplementedError

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON: one line per top-level field and per element of a list (see :func:`json_rows`)."""
        return written(path, json_rows(self.to_dict()))

    def to_html(self, path: str | Path | None = None) -> str:
        """The self-contained HTML page."""
        return written(path, self.html())


def written(path: str | Path | None, text: str) -> str:
    if path is not None:
        write_atomic(path, text)
    return text
