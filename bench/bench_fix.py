"""Benchmark ``anedoctor.fix`` over a zoo of models with real Neural Engine blockers.

For each model (``tests/fix_zoo.py``): the ANE share of ops and FLOPs, segments, switches and
the estimated latency (when the check report has one) before and after ``fix``, the largest output
error of the rewrites against the original (fp32 reference executor for exact rewrites, ANE fp16
emulation for approximate ones), the rewrites applied, what is left, and the time ``fix`` took.
Target (issue 10): >= 95% of ops on the ANE after ``fix`` on every model whose blockers are all
graph-fixable, with exact rewrites within 1e-4.

    python bench/bench_fix.py [--chip m4] [--compute-units all,cpu_and_ne] [--json out.json] [MODEL ...]

Each model is fixed once per compute-unit setting: under ``all`` the predicted segmenter often keeps
memory-bound models on the GPU even when every op is ANE-eligible, so ``cpu_and_ne`` (the ANE as
the only accelerator) shows what the rewrites make possible.

Besides the zoo: ``nn_context_net``, a NeuralNetwork ``.mlmodel`` (spec 1, an image input with
scale/bias preprocessing, a dilation-8 conv and a 9x9 max pool) that ``fix`` converts to an ML Program
first; and the ml-ane-transformers-style BERT next to its Hugging Face original (``bert_ane`` /
``bert_hf``: bench/published/models_seq.py, 2 layers x 256 wide, 4 heads, 128 tokens, random weights),
to show what ``fix`` gains on the Hugging Face layout and what still needs Apple's source-level rewrite.
Then the pass cases whose rules fire only on another chip / OS or with a measured profile, each fixed under
its own options (the chip/os column): ``enumerated_encoder`` (DY-4, a15/ios16), ``avg_pool_net`` (PA-5, a12)
``gather_net`` (MS-1, m4/macos15 with a profile whose gather probes ran off the ANE) and ``masked_runtime`` /
``masked_causal`` (OP-19, a15/ios16: attention masked with masked_fill by an int32 input or a constant causal
mask). ``--chip``/``--os`` apply to the models without options of their own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from fix_zoo import ZOO, avg_pool_net, enumerated_encoder, gather_net, gather_profile, masked_attention  # noqa: E402

from anedoctor.rewrite import fix  # noqa: E402
from anedoctor.rewrite.coreml_io import coremltools, quiet  # noqa: E402

BERT = {"layers": 2, "dim": 256, "heads": 4, "ffn": 1024}  # a small config of both layouts
TOKENS = 128


def nn_context_net(folder: Path) -> Path:
    """A spec-1 NeuralNetwork: image (3x128x128, scale/bias), conv stem, dilation-8 conv (PA-11), 9x9 max pool
    (PA-6), conv head; fp32 arrays out."""
    ct = coremltools()
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    rng = np.random.default_rng(0)
    b = NeuralNetworkBuilder([("image", datatypes.Array(3, 128, 128))], [("y", None)])
    b.set_pre_processing_parameters(image_input_names=["image"], image_scale=1 / 255, red_bias=-0.5, blue_bias=-0.5)
    layers = [("stem", 3, 32, 1), ("body", 32, 32, 1), ("context", 32, 32, 8), ("head", 32, 8, 1)]
    src = "image"
    for name, cin, cout, dilation in layers:
        weight = (rng.standard_normal((3, 3, cin, cout)) * 0.05).astype(np.float32)
        shape = {"kernel_channels": cin, "output_channels": cout, "height": 3, "width": 3, "stride_height": 1}
        b.add_convolution(
            name, **shape, stride_width=1, border_mode="same", groups=1, W=weight, b=None, has_bias=False,
            input_name=src, output_name=name, dilation_factors=[dilation, dilation],
        )  # fmt: skip
        src = "y" if name == "head" else f"{name}_r"
        b.add_activation(f"{name}_relu", "RELU", name, src)
        if name == "context":
            b.add_pooling("pool", 9, 9, 1, 1, layer_type="MAX", padding_type="SAME", input_name=src, output_name="pool")
            src = "pool"
    b.spec.description.output[0].type.multiArrayType.dataType = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    path = folder / "nn_context_net.mlmodel"
    ct.models.utils.save_spec(b.spec, str(path))
    return path


def bert(layout: str):
    """Builder of the BERT pair member ``layout`` ('ane' or 'hf'), traced and converted as an fp16 ML Program."""

    def build(folder: Path) -> Path:
        import torch

        from bench.published.models_seq import BertANE, DistilBertHF

        ct = coremltools()
        torch.manual_seed(0)
        module = BertANE(seq=TOKENS, **BERT) if layout == "ane" else DistilBertHF(seq=TOKENS, **BERT)
        example = (torch.randint(0, 30522, (1, TOKENS)), torch.ones(1, TOKENS, dtype=torch.long))
        with torch.no_grad():
            traced = torch.jit.trace(module.eval(), example)
        inputs = [ct.TensorType(name=n, shape=(1, TOKENS), dtype=np.int32) for n in ("input_ids", "attention_mask")]
        path = folder / f"bert_{layout}.mlpackage"
        with quiet():
            ct.convert(traced, inputs=inputs, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17).save(
                str(path)
            )
        return path

    return build


# name -> (builder, whether fix can cure every blocker on the graph, check options); the BERT pair's int32 ids and
# embedding lookup need the source model (embeddings outside, fp16 inputs). The last five are the pass cases whose
# rules fire only on an older chip / OS or with a measured profile (tests/test_fix_passes.py CASES); the runtime
# mask's int32 comparison (DT-4) stays on the CPU.
MODELS = {
    **{name: (build, fixable, {}) for name, (build, fixable) in ZOO.items()},
    "nn_context_net": (nn_context_net, True, {}),
    "bert_ane": (bert("ane"), False, {}),
    "bert_hf": (bert("hf"), False, {}),
    "enumerated_encoder": (enumerated_encoder, True, {"chip": "a15", "os": "ios16"}),
    "avg_pool_net": (avg_pool_net, True, {"chip": "a12"}),
    "gather_net": (gather_net, True, {"chip": "m4", "os": "macos15", "profile": gather_profile()}),
    "masked_runtime": (masked_attention, False, {"chip": "a15", "os": "ios16"}),
    "masked_causal": (lambda folder: masked_attention(folder, causal=True), True, {"chip": "a15", "os": "ios16"}),
}


def pct(x: float) -> str:
    return f"{x:6.1%}"


def setting(options: dict) -> str:
    """The check options of a model, short: 'a15/ios16', 'm4/macos15+profile', or 'default'."""
    where = "/".join(options[k] for k in ("chip", "os") if options.get(k))
    return (where or "default") + ("+profile" if options.get("profile") else "")


def row_text(name: str, units: str, options: dict, fixable: bool, r, seconds: float) -> str:
    b, a = r.before, r.after
    errors = [x.error for x in r.applied if x.error is not None]
    lat = f"{b['latency_ms']:7.3f}->{a['latency_ms']:7.3f}" if "latency_ms" in b and "latency_ms" in a else "n/a"
    applied = ", ".join(x.pass_name for x in r.applied) or "none"
    left = ", ".join(u.rule for u in r.unfixed) or "-"
    return (
        f"{name:<18} {units:<10} {setting(options):<18} {'yes' if fixable else 'no':>7} "
        f"{pct(b['ane_fraction'])}->{pct(a['ane_fraction'])} "
        f"{pct(b['ane_flops_fraction'])}->{pct(a['ane_flops_fraction'])} {b['segments']:>3}->{a['segments']:<3} "
        f"{b['switches']:>3}->{a['switches']:<3} {lat:>17} {max(errors, default=0.0):9.2g} {seconds:6.1f}  "
        f"{applied} / left: {left}{'' if r.written else ' (nothing written)'}"
    )


def pair_line(ane: dict, hf: dict) -> str:
    """The ANE-layout BERT against the Hugging Face one before and after fix: ANE share of ops, latency."""

    def fig(summary: dict) -> str:
        lat = f", {summary['latency_ms']:.3f} ms" if "latency_ms" in summary else ""
        return f"{summary['ane_fraction']:.1%} of ops on the ANE{lat}"

    left = sorted({u["rule"] for u in hf["unfixed"]})
    return (
        f"ml-ane-transformers layout {fig(ane['before'])}; Hugging Face layout {fig(hf['before'])} -> after fix "
        f"{fig(hf['after'])} ({len(hf['applied'])} rewrite(s); left for the source: {', '.join(left) or 'nothing'})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help=f"subset of {', '.join(MODELS)}")
    ap.add_argument("--chip", help="chip for the models without their own (default: check's)")
    ap.add_argument("--os", help="OS for the models without their own")
    ap.add_argument("--compute-units", default="all,cpu_and_ne", help="comma-separated settings to fix under")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()
    names = args.models or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}")
    rows = []
    settings = [u.strip() for u in args.compute_units.split(",") if u.strip()]
    head = (
        f"{'model':<18} {'units':<10} {'chip/os':<18} {'fixable':>7} {'ANE ops':>15} {'ANE FLOPs':>15} "
        f"{'seg':>7} {'sw':>7} {'latency ms':>17} {'max err':>9} {'fix s':>6}  rewrites / left"
    )
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            build, fixable, own = MODELS[name]
            options = own or {"chip": args.chip, "os": args.os}
            folder = Path(tmp) / name
            folder.mkdir()
            src = build(folder)
            for units in settings:
                start = time.perf_counter()
                r = fix(src, folder / f"fixed-{units}.mlpackage", compute_units=units, **options)
                seconds = time.perf_counter() - start
                print(row_text(name, units, options, fixable, r, seconds))
                for x in r.dropped:
                    print(f"{'':<18} dropped {x.pass_name}: {x.reason}")
                rows.append(
                    {
                        "model": name,
                        "compute_units": units,
                        "chip_os": setting(options),
                        "graph_fixable": fixable,
                        "seconds": round(seconds, 2),
                        **r.to_dict(),
                    }
                )
    exact_ok = all(x["error"] is not None and x["error"] <= 1e-4 for row in rows for x in row["applied"] if x["exact"])
    for units in settings:
        met = [row for row in rows if row["compute_units"] == units and row["graph_fixable"]]
        hit = [row["model"] for row in met if row["after"]["ane_fraction"] >= 0.95]
        print(
            f"compute units {units}: >= 95% of ops on the ANE after fix on {len(hit)} of {len(met)} graph-fixable "
            f"models ({', '.join(hit) or 'none'})"
        )
    print(f"exact rewrites within 1e-4 relative: {'yes' if exact_ok else 'NO'}")
    for units in settings:
        pair = {row["model"]: row for row in rows if row["compute_units"] == units and row["model"].startswith("bert_")}
        if len(pair) == 2:
            print(f"BERT pair ({units}): {pair_line(pair['bert_ane'], pair['bert_hf'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
