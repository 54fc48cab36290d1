"""Builders for rule references: links a user can follow, pinned to the copy that was read where
its commit is known. A reference is a URL optionally followed by a note (which part, which rows)."""

from __future__ import annotations

M6 = "751K/Apple-Neural-Engine-Microarchitecture-Study-M6"  # M4/M6 MLComputePlan sweep (MIT), notes + data
M6_DATA = "5cb462be36795a9c4feb26e8263ae4e453ae7653"  # commit of the opdispatch TSVs
GUIDE = "sbryngelson/ane-guide"  # arXiv 2606.22283
SMPANARO = "smpanaro/more-ane-transformers"
HOLLANCE = "hollance/neural-engine"
COREAI = "apple/coreai-models"
COREMLTOOLS = "apple/coremltools"
COMMITS = {  # the copy read, per repository (HEAD where none was recorded)
    GUIDE: "9eb1afe",
    SMPANARO: "14ef84f",
    HOLLANCE: "d0bb530",
    COREAI: "86b363d",
    COREMLTOOLS: "e0e2f42b",
    "apple/ml-stable-diffusion": "e12202c",
    "Anemll/Anemll": "6ecb10d",
    "Anemll/anemll-profile": "821c301",
    "eiln/ane": "0dcea99",
    "freedomtan/coreml_modelc_profling": "0c699ce",
    M6: "HEAD",
}
WEIGHT = 'BLOBFILE(path = "@model_path/weights/weight.bin", offset = uint64(64))'  # a weight in MIL examples
DOCS = "https://apple.github.io/coremltools/docs-guides/source/"


def _join(link: str, note: str) -> str:
    return f"{link} {note}" if note else link


def file(repo: str, path: str, note: str = "", commit: str | None = None) -> str:
    """A file in a GitHub repository."""
    return _join(f"https://github.com/{repo}/blob/{commit or COMMITS.get(repo, 'HEAD')}/{path}", note)


def folder(repo: str, path: str, note: str = "") -> str:
    """A folder in a GitHub repository."""
    return _join(f"https://github.com/{repo}/tree/{COMMITS.get(repo, 'HEAD')}/{path}", note)


def issue(repo: str, number: int, note: str = "") -> str:
    return _join(f"https://github.com/{repo}/issues/{number}", note)


def pull(repo: str, number: int, note: str = "") -> str:
    return _join(f"https://github.com/{repo}/pull/{number}", note)


def docs(page: str, note: str = "") -> str:
    """A page of the coremltools guide (apple/coremltools docs-guides/source/<page>.md)."""
    return _join(f"{DOCS}{page}.html", note)


def m6(path: str, note: str = "") -> str:
    """The 751K M4/M6 study: ``notes/...`` or a TSV under data/03_compile/opdispatch/."""
    if path.endswith(".tsv"):
        return file(M6, f"data/03_compile/opdispatch/{path}", note, M6_DATA)
    return file(M6, path, note)


def guide(path: str, note: str = "") -> str:
    return file(GUIDE, path, note)


def notes(note: str) -> str:
    """smpanaro's experiment log (M1 Max, macOS 13-14)."""
    return file(SMPANARO, "src/experiments/NOTES.md", note)


def ne_rules(note: str) -> str:
    """Apple's 2026 Neural Engine authoring rules (apple/coreai-models)."""
    return file(COREAI, "skills/skills/model-authoring/references/neural_engine_rules.md", note)


def hollance(path: str, note: str = "") -> str:
    return file(HOLLANCE, path, note)
