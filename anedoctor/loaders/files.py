"""How loaders reach the files of a model: paths kept inside the model, JSON read without surprises."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def resolve_inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` with links resolved, or None when it escapes ``root`` (absolute, ``..``, symlink)."""
    path = (root / rel).resolve()
    return path if not Path(rel).is_absolute() and path.is_relative_to(root.resolve()) else None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
