"""Project defaults from the ``[tool.anedoctor]`` table of the nearest pyproject.toml.

    [tool.anedoctor]
    chip = "a17"
    os = "ios18"
    compute_units = "cpu_and_ne"
    min_ane = 0.95            # gates: the share of ops, of FLOPs, the estimated latency
    min_ane_flops = 0.99
    max_latency_ms = 8.0
    ignore = ["SEG-2", "DY"]  # rule ids, id prefixes or families
    select = ["DT", "PA"]

Command-line options win over the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ModelError

KEYS: dict[str, type | tuple[type, ...]] = {
    "chip": str,
    "os": str,
    "compute_units": str,
    "min_ane": (int, float),
    "min_ane_flops": (int, float),
    "max_latency_ms": (int, float),
    "select": list,
    "ignore": list,
    "output_format": str,
}


def find_pyproject(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        if (folder / "pyproject.toml").is_file():
            return folder / "pyproject.toml"
    return None


def load_config(start: str | Path | None = None) -> dict[str, Any]:
    """The ``[tool.anedoctor]`` settings of the pyproject.toml at or above ``start`` (default: the working
    folder); {} when there is none. A wrong key or type is a ModelError naming the file and the key."""
    path = find_pyproject(Path(start or Path.cwd()).resolve())
    if path is None:
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("anedoctor", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ModelError(f"{path}: cannot read [tool.anedoctor] ({str(e).splitlines()[0][:100]})") from None
    for key, value in table.items():
        if key.replace("-", "_") not in KEYS:
            raise ModelError(f"{path}: [tool.anedoctor] has no setting {key!r} (known: {', '.join(KEYS)})")
        want = KEYS[key.replace("-", "_")]
        if not isinstance(value, want) or isinstance(value, bool):
            raise ModelError(f"{path}: [tool.anedoctor] {key} = {value!r} has the wrong type")
    return {k.replace("-", "_"): v for k, v in table.items()}
