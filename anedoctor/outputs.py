"""What one command writes: every output path checked before any work, never an input, all or nothing.

    outputs = Outputs(inputs=[model_path])
    outputs.claim("--json", json_path)          # refuses an input, a path inside an input, a 2nd stdout
    ... the work ...
    outputs.put("--json", text)                 # staged beside its target
    outputs.commit()                            # renamed into place together; stdout written last

``-`` means standard output for any flag, and only one flag may claim it. A failure while
staging removes every staged file, so a command leaves either all its outputs or none.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable

from .errors import ModelError
from .util import staged

STDOUT = "-"


class Outputs:
    """The output files of one command."""

    def __init__(self, inputs: Iterable[str | Path | None] = (), models: dict[str, str | Path | None] | None = None):
        self.inputs = [Path(p) for p in inputs if p is not None and str(p) != STDOUT]
        self.models = {flag: Path(p) for flag, p in (models or {}).items() if p is not None}  # written by the command
        self.paths: dict[str, str] = {}
        self.staged: list[tuple[Path, Path]] = []
        self.stdout: list[str | bytes] = []

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is not None:  # the command failed: leave no staged file behind
            self.discard()

    def claim(self, flag: str, path: str | Path | None) -> str | None:
        """Register ``path`` for ``flag`` (None: not asked for); ModelError when it cannot be written."""
        if path is None:
            return None
        path = str(path)
        if path == STDOUT:
            other = next((f for f, p in self.paths.items() if p == STDOUT), None)
            if other:
                raise ModelError(f"{flag} -: only one output can go to standard output, and {other} already does")
        else:
            check_writable(flag, Path(path), self.inputs)
            for model_flag, model in self.models.items():
                if same_path(Path(path), model) or inside(Path(path), model):
                    raise ModelError(f"{flag} {path}: {model_flag} writes the model there")
            other = next((f for f, p in self.paths.items() if p != STDOUT and same_path(Path(p), Path(path))), None)
            if other:
                raise ModelError(f"{flag} {path}: {other} writes the same file")
        self.paths[flag] = path
        return path

    def put(self, flag: str, data: str | bytes) -> None:
        """Stage the content of ``flag``'s output (written for real by :meth:`commit`)."""
        path = self.paths[flag]
        if path == STDOUT:
            self.stdout.append(data)
            return
        try:
            self.staged.append((staged(Path(path), data), Path(path)))
        except OSError as e:
            self.discard()
            raise ModelError(f"{flag} {path}: cannot write ({e.strerror or type(e).__name__})") from None

    def discard(self) -> None:
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged.clear()

    def commit(self) -> None:
        """Move every staged file into place, then write what goes to standard output."""
        for tmp, path in self.staged:
            try:
                os.replace(tmp, path)
            except OSError as e:
                self.discard()
                raise ModelError(f"{path}: cannot write ({e.strerror or type(e).__name__})") from None
        self.staged.clear()
        for data in self.stdout:
            if isinstance(data, bytes):
                sys.stdout.buffer.write(data)
            else:
                sys.stdout.write(data if data.endswith("\n") else data + "\n")
        sys.stdout.flush()


def same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b) or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies inside the folder ``folder`` (links resolved)."""
    try:
        real = Path(os.path.realpath(folder))
        return real.is_dir() and Path(os.path.realpath(path)).is_relative_to(real)
    except OSError:
        return False


def check_writable(flag: str, path: Path, inputs: list[Path]) -> None:
    """ModelError (naming the flag and the user's path) unless ``path`` can be a new or replaced output file."""
    try:
        _check_writable(flag, path, inputs)
    except OSError as e:  # a name too long, a loop of links ...
        raise ModelError(f"{flag} {path}: unusable output path ({e.strerror or type(e).__name__})") from None


def _check_writable(flag: str, path: Path, inputs: list[Path]) -> None:
    for source in inputs:
        if same_path(path, source):
            raise ModelError(f"{flag} {path}: this is an input ({source}); refusing to write over it")
        if inside(path, source):
            raise ModelError(f"{flag} {path}: this is inside the input {source}; refusing to write into a model")
    if path.is_dir():
        raise ModelError(f"{flag} {path}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ModelError(f"{flag} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ModelError(f"{flag} {path}: the folder {parent} is not writable")


def check_package_output(source: Path, output: str | Path | None, command: str, suffix: str = ".mlpackage") -> Path:
    """Where a command that writes a model folder (``fix``, ``compress``) may put it: a ``suffix`` path
    (``.mlpackage``, or ``.aimodel`` for Core AI) that is not the input, not inside it, not a folder
    holding it, in an existing folder, and not some other file."""
    if output is None:
        raise ModelError(f"{command} needs an output path (-o OUT{suffix})")
    try:
        return _check_package_output(Path(source), Path(output), suffix)
    except OSError as e:  # a name too long for the file system, a folder we may not search ...
        raise ModelError(f"{output}: unusable output path ({e.strerror or type(e).__name__})") from None


def _check_package_output(source: Path, output: Path, suffix: str) -> Path:
    out, src = output.resolve(), source.resolve()
    if out == src or src in out.parents:
        raise ModelError(f"{output}: the output must not be the input {source} or lie inside it")
    if out in src.parents:
        raise ModelError(f"{output}: the output would replace the folder that holds the input {source}")
    if out.suffix != suffix:
        raise ModelError(f"{output}: the output must be an {suffix} path")
    if not out.parent.is_dir():
        raise ModelError(f"{output}: the folder {out.parent} does not exist")
    if out.exists() and not out.is_dir():
        raise ModelError(f"{output}: exists and is a file, not an {suffix} folder; not overwriting it")
    return out


def publish_package(package: Path, out: Path, work: Path) -> None:
    """Move a finished package (in ``work``, beside ``out``) into place with renames, so ``out`` is always
    either the old package or the complete new one."""
    if out.exists() or out.is_symlink():
        os.replace(out, work / "previous-output")
    os.replace(package, out)
