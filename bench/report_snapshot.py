"""Snapshot the JSON reports of a fixed corpus, to prove a refactor changed no prediction.

    python bench/report_snapshot.py build DIR      # build the corpus models once into DIR/models
    python bench/report_snapshot.py snap DIR NAME  # write DIR/NAME/<model>-<chip>-<units>.json
    python bench/report_snapshot.py diff DIR A B [--ignore key,..]   # compare two snapshots

The corpus: the test zoo (fp32 and fp16), the NeuralNetwork builders, the .mlmodelc samples
in tests/data and the demo, each checked on three chips under two compute-unit settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
CHIPS = ("a14", "a17", "m4")
UNITS = ("all", "cpu_and_ne")


def build(folder: Path) -> None:
    """Convert every corpus model into ``folder`` (skips what is already there)."""
    import nn_models
    import zoo

    from anedoctor.demo import build_demo_model

    folder.mkdir(parents=True, exist_ok=True)
    for name in zoo.ZOO:
        for fp16 in (False, True):
            if not (folder / f"{name}{'_fp16' if fp16 else ''}.mlpackage").exists():
                zoo.convert(name, folder, fp16)
    for name in (
        "legacy_classifier",
        "legacy_ops",
        "nd_ops",
        "recurrent",
        "custom_layer",
        "quantized",
        "flexible",
        "flexible_image",
    ):
        built = getattr(nn_models, name)()
        spec = built[0] if isinstance(built, tuple) else built
        (folder / f"nn_{name}.mlmodel").write_bytes(spec.SerializeToString())
    if not (folder / "demo.mlpackage").exists():
        build_demo_model(folder)


def corpus(folder: Path) -> list[Path]:
    models = sorted(folder.glob("*.mlpackage")) + sorted(folder.glob("*.mlmodel"))
    return models + sorted((ROOT / "tests" / "data" / "mlmodelc").glob("*.mlmodelc"))


def snap(folder: Path, name: str) -> None:
    import anedoctor

    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    for model in corpus(folder / "models"):
        for chip in CHIPS:
            for units in UNITS:
                target = out / f"{model.stem}-{chip}-{units}.json"
                try:
                    text = anedoctor.check(model, chip=chip, compute_units=units).to_json()
                except Exception as e:  # a refactor must not change which models fail either
                    text = json.dumps({"error": f"{type(e).__name__}: {e}"})
                target.write_text(text.replace(str(folder), "<corpus>"))
    print(f"{len(list(out.glob('*.json')))} reports in {out}")


def strip(d, ignore: set[str]):
    if isinstance(d, dict):
        return {k: strip(v, ignore) for k, v in d.items() if k not in ignore}
    if isinstance(d, list):
        return [strip(v, ignore) for v in d]
    return d


def diff(folder: Path, a: str, b: str, ignore: set[str]) -> int:
    """Print the reports that differ (byte-identical, or equal apart from ``ignore`` keys)."""
    differ = 0
    names = sorted(p.name for p in (folder / a).glob("*.json"))
    for n in names:
        left, right = (folder / a / n).read_text(), (folder / b / n)
        if not right.exists():
            print(f"missing in {b}: {n}")
            differ += 1
        elif left != right.read_text() and strip(json.loads(left), ignore) != strip(
            json.loads(right.read_text()), ignore
        ):
            print(f"differs: {n}")
            differ += 1
    print(
        f"{len(names) - differ} of {len(names)} reports identical" + (f" (ignoring {sorted(ignore)})" if ignore else "")
    )
    return 1 if differ else 0


if __name__ == "__main__":
    cmd, folder = sys.argv[1], Path(sys.argv[2]).resolve()
    if cmd == "build":
        build(folder / "models")
    elif cmd == "snap":
        snap(folder, sys.argv[3])
    else:
        ignore = set(sys.argv[6].split(",")) if len(sys.argv) > 6 and sys.argv[5] == "--ignore" else set()
        sys.exit(diff(folder, sys.argv[3], sys.argv[4], ignore))
