"""Coverage-guided fuzzing of anedoctor's readers with atheris (libFuzzer for Python).

The first byte of each input picks the file it becomes, the rest is that file's content:
0 a ``.mlmodel`` spec, 1 ``model.mil`` of a compiled model, 2 its ``metadata.json``,
3 ``model.espresso.net``, 4 a package's ``Manifest.json``, 5 a ``--input`` ``.npz``.
The file is put into a copy of a seed model and loaded and checked in process (inputs: loaded
and checked against the model). A ModelError is the expected answer to a bad file; any other
exception is a finding (libFuzzer saves the input as ``crash-*``); so are a timeout
(``-timeout``) and memory over ``-rss_limit_mb``.

    pip install atheris
    python -m tests.fuzz.atheris_loader --make-corpus corpus/       # seed inputs from the seed models
    python -m tests.fuzz.atheris_loader corpus/ -runs=20000 -timeout=30 -rss_limit_mb=2048
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

SLOTS = ["spec", "mil", "metadata", "espresso", "manifest", "npz"]


def seed_files(seeds: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """slot -> (seed model to copy, path of the fuzzed file inside it)."""
    return {
        "spec": (seeds["mlmodel"], ""),
        "mil": (seeds["mlmodelc:fluidaudio_argmax_ios16"], "model.mil"),
        "metadata": (seeds["mlmodelc:fluidaudio_transpose_flex_ios16"], "metadata.json"),
        "espresso": (seeds["mlmodelc:chiron_parkinson_wave_nn"], "model.espresso.net"),
        "manifest": (seeds["mlpackage"], "Manifest.json"),
        "npz": (seeds["inputs"], ""),
    }


def make_corpus(folder: Path, seeds: dict[str, Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, (model, inner) in seed_files(seeds).items():
        data = (model / inner).read_bytes() if inner else model.read_bytes()
        (folder / f"seed-{k}").write_bytes(bytes([SLOTS.index(k)]) + data)


class Target:
    """One fuzz input -> a file in a fresh copy of its seed model -> load + check (or load_inputs)."""

    def __init__(self, seeds: dict[str, Path], work: Path):
        self.files, self.work, self.seeds = seed_files(seeds), work, seeds

    def __call__(self, data: bytes) -> None:
        import anedoctor
        from anedoctor.errors import ModelError
        from anedoctor.execute import check_inputs, load_inputs

        if not data:
            return
        slot = SLOTS[data[0] % len(SLOTS)]
        model, inner = self.files[slot]
        case = Path(tempfile.mkdtemp(dir=self.work))
        try:
            if slot == "npz":
                (case / "in.npz").write_bytes(data[1:])
                graph = anedoctor.load(self.seeds["mlpackage"]).graphs[0]
                check_inputs(graph, load_inputs(case / "in.npz"))
                return
            target = case / model.name
            if model.is_dir():
                shutil.copytree(model, target)
            (target / inner if inner else target).write_bytes(data[1:])
            anedoctor.check(str(target)).to_dict()
        except ModelError:
            pass
        finally:
            shutil.rmtree(case, ignore_errors=True)


def main() -> None:
    import atheris

    from .seeds import build_seeds

    work = Path(tempfile.mkdtemp(prefix="anedoctor-atheris-"))
    seeds = build_seeds(Path(tempfile.gettempdir()) / "anedoctor-fuzz-seeds")
    if len(sys.argv) > 2 and sys.argv[1] == "--make-corpus":
        make_corpus(Path(sys.argv[2]), seeds)
        return
    with atheris.instrument_imports(include=["anedoctor"]):
        import anedoctor  # noqa: F401
        import anedoctor.execute  # noqa: F401
        import anedoctor.loaders.mil_text  # noqa: F401
        import anedoctor.loaders.mlmodelc  # noqa: F401
        import anedoctor.loaders.neuralnetwork  # noqa: F401
    target = Target(seeds, work)
    for slot, (model, inner) in seed_files(seeds).items():  # warm up: imports and caches outside the timeout
        target(bytes([SLOTS.index(slot)]) + ((model / inner).read_bytes() if inner else model.read_bytes()))
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
