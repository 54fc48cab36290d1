"""Helpers for the HTML report tests and bench: a synthetic report generator and headless Chromium."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

_RULES = {
    "DT-4": (
        "int32 tensor op",
        "Op computes on int32 tensors; the ANE has no int32 datapath.",
        "Unsupported tensor data type: int32",
        "M",
        "Keep indices in fp16 or move the int math out of the model.",
    ),
    "OP-1": (
        "Recurrent op",
        "lstm/gru/rnn never reach the ANE.",
        None,
        "A",
        "Unroll the recurrence into matmuls, or run it outside Core ML.",
    ),
    "OP-2": ("Scatter op", "scatter ops run on CPU/GPU only.", None, "M", "Replace scatter with a mask multiply."),
    "SEG-1": (
        "Segment too small",
        "An ANE segment here would not pay back its 0.125 ms launch + switch cost.",
        None,
        "M",
        "Merge the surrounding non-ANE ops so the ANE segment grows.",
    ),
    "DT-1": (
        "fp32 op",
        "Op is typed fp32; the ANE only computes fp16/int8.",
        "Invalid output tensor format: fp32",
        "A",
        "Convert with compute_precision=ct.precision.FLOAT16.",
    ),
}
_SOURCE = "shared/knowledge/ane-rules.md"


def _reason(rule: str, op_name: str) -> dict:
    title, msg, apple, conf, fix = _RULES[rule]
    return {
        "rule": rule,
        "title": title,
        "message": msg,
        "apple_message": apple,
        "source": _SOURCE if rule != "OP-1" else "https://github.com/apple/coremltools/issues/1780",
        "confidence": conf,
        "fix": fix,
    }


def make_report(
    n_ops: int = 60, seed: int = 0, parts: tuple[str, ...] = ("main",), extra: bool = False, module_paths: bool = False
) -> dict:
    """A schema-1.0 report with a realistic mix of devices, reasons, segments and switches.
    ``module_paths``: ops carry ``source.module_path`` (torch scope names, 24 ops per layer, each an
    attention then an MLP block) and flat torch-style names (``conv_17``) that carry no structure."""
    rnd = random.Random(seed)
    ops: list[dict] = []
    per_part = [n_ops // len(parts)] * len(parts)
    per_part[-1] += n_ops - sum(per_part)
    pattern = [
        ("conv", "ane"),
        ("batch_norm", "ane"),
        ("relu", "ane"),
        ("linear", "ane"),
        ("softmax", "ane"),
        ("gather", "cpu"),
        ("lstm", "cpu"),
        ("scatter", "gpu"),
        ("add", "ane"),
        ("cast", "cpu"),
    ]
    for part, count in zip(parts, per_part):
        first = len(ops)
        for k in range(count):
            i = len(ops)
            typ, dev = pattern[rnd.randrange(len(pattern))] if rnd.random() < 0.35 else pattern[k % 5]
            layer = k // 24
            name = f"encoder.layers.{layer}.{typ}_{k % 24}" if layer % 3 else f"op_{i}_cast_fp16"
            if module_paths:
                name = f"{typ}_{i}"
            reasons = []
            if dev != "ane":
                rule = {"gather": "DT-4", "lstm": "OP-1", "scatter": "OP-2", "cast": "DT-1"}[typ]
                reasons = [_reason(rule, name)]
            elif rnd.random() < 0.05:
                dev = "cpu"
                reasons = [_reason("SEG-1", name)]
            shape = [1, 64, 32, 32] if typ in ("conv", "batch_norm", "relu", "add") else [1, 128, None]
            producers = [i - 1] if i > first else [None]
            if i - first > 3 and rnd.random() < 0.2:
                producers.append(i - rnd.randint(2, 3))
            inputs = [
                {
                    "name": f"t{p if p is not None else 'in'}",
                    "dtype": "fp16",
                    "shape": shape,
                    "producer": p,
                    "const": False,
                }
                for p in producers
            ]
            inputs.append(
                {"name": f"{name}_weight", "dtype": "fp16", "shape": [64, 64, 3, 3], "producer": None, "const": True}
            )
            flops = rnd.choice([0, 4096, 65536, 75_497_472]) if typ != "lstm" else 2_000_000
            op = {
                "index": i,
                "name": name,
                "type": typ,
                "part": part,
                "device": dev,
                "supported": {
                    "ane": dev == "ane" or (reasons and reasons[0]["rule"] == "SEG-1"),
                    "gpu": typ not in ("lstm",),
                    "cpu": True,
                },
                "reasons": reasons,
                "notes": [_reason("DT-1", name)] if typ == "softmax" and rnd.random() < 0.3 else [],
                "flops": flops,
                "bytes": 8192 + 2 * flops // 64,
                "inputs": inputs,
                "outputs": [{"name": f"t{i}", "dtype": "fp16", "shape": shape}],
                "cost_ms": {"ane": 0.004, "gpu": 0.01, "cpu": 0.1},
                "extra": {},
            }
            if extra:
                op["extra"] = {"psnr_db": round(rnd.uniform(30, 90), 1)}
            if module_paths:
                path = f"{part}.layers.{layer}.{'attn' if k % 24 < 12 else 'mlp'}"
                op["source"] = {
                    "file": "model.py",
                    "line": 40 + k % 24,
                    "module_path": path,
                    "text": f"model.py:{40 + k % 24} ({path})",
                }
            ops.append(op)
    return finish_report(ops, parts)


def finish_report(ops: list[dict], parts=("main",)) -> dict:
    """Derive segments, switches, causes and summary from ops."""
    segments, switches = [], []
    for op in ops:
        seg = segments[-1] if segments else None
        if seg and seg["part"] == op["part"] and seg["device"] == op["device"]:
            seg["end"], seg["ops"], seg["flops"] = op["index"], seg["ops"] + 1, seg["flops"] + op["flops"]
            continue
        if seg and seg["part"] == op["part"]:
            prev = ops[op["index"] - 1]
            switches.append(
                {
                    "part": op["part"],
                    "after": prev["index"],
                    "before": op["index"],
                    "from": prev["device"],
                    "to": op["device"],
                    "after_name": prev["name"],
                    "before_name": op["name"],
                }
            )
        segments.append(
            {
                "index": len(segments),
                "part": op["part"],
                "device": op["device"],
                "start": op["index"],
                "end": op["index"],
                "ops": 1,
                "flops": op["flops"],
            }
        )
    total = sum(o["flops"] for o in ops) or 1
    causes: dict[str, dict] = {}
    for op in ops:
        for r in op["reasons"][:1]:
            c = causes.setdefault(
                r["rule"],
                {
                    "rule": r["rule"],
                    "title": r["title"],
                    "fix": r["fix"],
                    "ops": 0,
                    "flops": 0,
                    "switches": 0,
                    "op_indices": [],
                },
            )
            c["ops"] += 1
            c["flops"] += op["flops"]
            c["op_indices"].append(op["index"])
            c["switches"] += sum(1 for s in switches if op["index"] in (s["after"], s["before"]))
    for c in causes.values():
        c["flops_fraction"] = c["flops"] / total
    count = {d: sum(o["device"] == d for o in ops) for d in ("ane", "gpu", "cpu")}
    return {
        "schema_version": "1.0",
        "kind": "prediction",
        "tool": {"name": "anedoctor", "version": "0.1.0"},
        "model": {
            "path": "/models/demo.mlpackage",
            "name": "demo.mlpackage",
            "format": "mlprogram",
            "deployment_target": "ios17",
            "spec_version": 8,
            "parts": list(parts),
            "notes": ["Synthetic report for tests <b>not</b> HTML."],
        },
        "chip": {"id": "m4", "name": "Apple M4", "ane_arch": "h16g", "assumed": True},
        "os": {"id": "macos15", "assumed": True},
        "compute_units": "all",
        "summary": {
            "ops": len(ops),
            **count,
            "segments": len(segments),
            "switches": len(switches),
            "ane_fraction": count["ane"] / max(len(ops), 1),
            "ane_flops_fraction": sum(o["flops"] for o in ops if o["device"] == "ane") / total,
            "flops": sum(o["flops"] for o in ops),
        },
        "ops": ops,
        "segments": segments,
        "switches": switches,
        "causes": sorted(causes.values(), key=lambda c: (-c["flops"], -c["switches"])),
        "notes": ["Placement is a prediction; run `anedoctor run` on a Mac to measure."],
    }


def chromium_path() -> str | None:
    """The Chromium executable to drive, or None."""
    for p in (
        os.environ.get("ANEDOCTOR_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if p and Path(p).exists():
            return p
    return None


def launch(playwright):
    """Launch headless Chromium with flags that work offline and as root."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


def png_pixels(page, png: bytes, points: list[tuple[float, float]]) -> list[tuple[int, int, int]]:
    """RGB of a PNG (a screenshot) at CSS-pixel points, decoded by the browser itself (no imaging library)."""
    import base64

    return [
        tuple(p)
        for p in page.evaluate(
            """async ([data, points]) => {
        const img = new Image(); img.src = "data:image/png;base64," + data; await img.decode();
        const c = document.createElement("canvas"); c.width = img.width; c.height = img.height;
        const g = c.getContext("2d"); g.drawImage(img, 0, 0);
        return points.map(([x, y]) => [...g.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3)]);
    }""",
            [base64.b64encode(png).decode(), points],
        )
    ]
