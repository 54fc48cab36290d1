"""A compression recipe: what the user asked for, checked before any work, and applied with
coremltools.optimize.coreml (palettize_weights, linear_quantize_weights, prune_weights,
linear_quantize_activations). Nothing here re-implements a compression algorithm.

Which OS a format needs follows coremltools itself: its passes refuse older deployment targets
("The 4-bit quantization is supported since iOS18 ..."); int4, per-block scales, per-grouped-channel
LUTs and joint sparse+LUT / sparse+int are iOS 18 ops (coremltools
converters/mil/mil/ops/defs/iOS18/compression.py); per-tensor LUT, int8 and sparse weights are
iOS 16 ops (ops/defs/iOS16/constexpr_ops.py); quantize/dequantize for activations need iOS 17
(linear_quantize_activations converts to the iOS 17 specification).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ModelError
from ..ir import Model

PALETTE_BITS = (1, 2, 3, 4, 6, 8)
QUANT_DTYPES = ("int8", "int4")
WEIGHT_THRESHOLD = 2048  # coremltools' default: smaller constants stay uncompressed


@dataclass(frozen=True)
class Recipe:
    """One compression request (weights: palettize or quantize, optionally with pruning; W8A8 via calibration)."""

    palettize: int | None = None
    per_grouped_channel: int | None = None
    quantize: str | None = None
    block_size: int | None = None
    prune: float | None = None
    n_m: tuple[int, int] | None = None
    w8a8: bool = False

    @property
    def label(self) -> str:
        """A short human name, e.g. 'prune 50% + palettize 4-bit'."""
        parts = []
        if self.n_m:
            parts.append(f"prune {self.n_m[0]}:{self.n_m[1]}")
        elif self.prune is not None:
            parts.append(f"prune {self.prune:.0%}")
        if self.palettize:
            group = f" grouped {self.per_grouped_channel}" if self.per_grouped_channel else ""
            parts.append(f"palettize {self.palettize}-bit{group}")
        if self.quantize:
            parts.append(f"{self.quantize} " + (f"per-block {self.block_size}" if self.block_size else "per-channel"))
        if self.w8a8:
            parts.append("int8 activations")
        return " + ".join(parts)

    def needs_ios(self) -> tuple[int, str]:
        """The lowest iOS major version whose ops can hold this recipe, and the feature that needs it."""
        joint = self.pruning and (self.palettize or self.quantize)
        for needed, feature in (
            (self.quantize == "int4", "int4 weights"),
            (self.block_size, "per-block quantization"),
            (self.per_grouped_channel, "per-grouped-channel palettization"),
            (joint, "joint pruning + palettization/quantization"),
        ):
            if needed:
                return 18, feature
        if self.w8a8:
            return 17, "activation quantization (W8A8)"
        return 16, "compressed weights"

    @property
    def pruning(self) -> bool:
        return self.prune is not None or self.n_m is not None


def make_recipe(
    palettize: int | None = None,
    per_grouped_channel: int | None = None,
    quantize: str | None = None,
    block_size: int | None = None,
    prune: float | None = None,
    n_m: str | tuple[int, int] | None = None,
    w8a8: bool = False,
) -> Recipe:
    """Check that the options form one meaningful request; ModelError (one line) otherwise."""
    if palettize is not None and quantize is not None:
        raise ModelError("choose either --palettize or --quantize (pruning can join either)")
    if palettize is not None and palettize not in PALETTE_BITS:
        raise ModelError(f"--palettize {palettize}: coremltools palettizes to {', '.join(map(str, PALETTE_BITS))} bits")
    if per_grouped_channel is not None and (palettize is None or per_grouped_channel < 1):
        raise ModelError("--per-grouped-channel G needs --palettize and a group size G >= 1")
    if quantize is not None and quantize not in QUANT_DTYPES:
        raise ModelError(f"--quantize {quantize!r}: choose int8 or int4")
    if block_size is not None and (quantize is None or block_size < 1):
        raise ModelError("--block-size B needs --quantize and a block size B >= 1")
    if w8a8 and (quantize != "int8" or block_size):
        raise ModelError("calibration data (--activations) is for W8A8: use it with --quantize int8 (per-channel)")
    ratio = parse_n_m(n_m) if n_m is not None else None
    if prune is not None and not 0 < prune < 1:
        raise ModelError(f"--prune {prune}: the fraction of weights to zero must be between 0 and 1")
    if ratio and prune is not None and abs(prune - ratio[0] / ratio[1]) > 1e-9:
        raise ModelError(
            f"--n-m {ratio[0]}:{ratio[1]} zeroes {ratio[0] / ratio[1]:.0%} of the weights; "
            f"--prune {prune} contradicts it"
        )
    recipe = Recipe(palettize, per_grouped_channel, quantize, block_size, prune, ratio, w8a8)
    if not (palettize or quantize or recipe.pruning):
        raise ModelError("nothing to do: choose --palettize N, --quantize int8|int4 or --prune F")
    return recipe


def parse_n_m(text: str | tuple[int, int]) -> tuple[int, int]:
    """'2:4' -> (2, 4): zero N of every M consecutive weights."""
    try:
        n, m = (int(x) for x in (text.split(":") if isinstance(text, str) else text))
    except ValueError:
        raise ModelError(f"--n-m {text!r}: write it as N:M, e.g. 2:4") from None
    if not 0 < n < m:
        raise ModelError(f"--n-m {text!r}: need 0 < N < M")
    return n, m


# ------------------------------------------------------------------ checks against the model


def ios_major(target: str) -> int:
    """'ios18' / 'macos15' -> the iOS-equivalent major version (0 if unknown)."""
    from ..hardware import parse_os

    try:
        return parse_os(target).ios
    except ModelError:
        return 0


def check_target(recipe: Recipe, model: Model, os: str | None) -> None:
    """Refuse a recipe whose ops the model's deployment target or the chosen OS lacks."""
    need, feature = recipe.needs_ios()
    have = ios_major(model.deployment_target)
    if have < need:
        raise ModelError(
            f"{model.path}: {feature} needs an iOS {need} / macOS {need - 3} deployment target; the model "
            f"targets {model.deployment_target or 'an unknown OS'} (re-convert with "
            f"minimum_deployment_target=ct.target.iOS{need})"
        )
    if os is not None:
        from ..hardware import parse_os

        if parse_os(os).ios < need:
            raise ModelError(f"--os {os}: {feature} needs iOS {need} / macOS {need - 3} or later")


def compressible_weights(ct_model: Any, threshold: int = WEIGHT_THRESHOLD) -> Iterator[tuple[Any, np.ndarray]]:
    """(MIL const op, value) for every weight coremltools would compress (rank >= 2, above the size threshold)."""
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    prog = milproto_load(ct_model.get_spec(), ct_model.get_spec().specificationVersion, ct_model.weights_dir)
    for func in prog.functions.values():
        for op in func.find_ops(op_type="const"):
            val = op.outputs[0].val
            users = op.outputs[0].child_ops
            if (
                isinstance(val, np.ndarray)
                and val.ndim >= 2
                and val.size > threshold
                and users
                and not any(u.op_type.startswith("constexpr_") for u in users)
            ):
                yield op, val


def block_misfits(recipe: Recipe, weights: list[tuple[Any, np.ndarray]]) -> list[str]:
    """Weights (from :func:`compressible_weights`) whose axis the block / group size does not divide. coremltools
    skips such a weight with only a logged warning, so the model would come out partly compressed."""
    if not (recipe.block_size or recipe.per_grouped_channel):
        return []
    from coremltools.optimize import _utils as optimize_utils

    config = weight_config(recipe)
    what = (
        f"--block-size {recipe.block_size}"
        if recipe.block_size
        else f"--per-grouped-channel {recipe.per_grouped_channel}"
    )
    misfits = []
    for op, val in weights:
        sizes = optimize_utils.infer_block_sizes(op, config, val)
        misfits += [
            f"{what} does not divide axis {axis} ({val.shape[axis]}) of weight {op.outputs[0].name!r} {list(val.shape)}"
            for axis, size in enumerate(sizes or ())
            if size > 1 and val.shape[axis] % size
        ]
    return misfits


def check_blocks(misfits: list[str], path: Path) -> None:
    """Refuse a block / group size that does not divide every weight it would compress."""
    if misfits:
        more = f" (and {len(misfits) - 1} more)" if len(misfits) > 1 else ""
        raise ModelError(f"{path}: {misfits[0]}{more}")


def weight_misfits(recipes: tuple[Recipe, ...], ct_model: Any, model: Model, path: Path) -> list[list[str]]:
    """One read of the weights coremltools would compress: refuse a model with none (coremltools.optimize leaves
    weights compressed already as they are, so the output would be the input under a new name; int8 activations
    still change it), and list for each recipe the weights its block / group size does not divide."""
    weights = list(compressible_weights(ct_model))
    if not weights and not all(r.w8a8 for r in recipes):
        from collections import Counter

        from ..ir.compression import op_weight_formats

        formats = Counter(f for op in model.graphs[0].ops for f in op_weight_formats(op).values())
        held = "; ".join(f"{n} weights: {text}" for text, n in formats.most_common(3))
        raise ModelError(
            f"{path}: no weight to compress: coremltools.optimize compresses dense weights of more than "
            f"{WEIGHT_THRESHOLD} elements"
            + (f", and this model's are compressed already ({held})" if held else ", and this model has none")
        )
    return [block_misfits(r, weights) for r in recipes]


def load_calibration(source: str | Path | dict, model: Model) -> list[dict[str, np.ndarray]]:
    """Calibration samples from an .npz (or a dict): each array is one sample shaped like the model input,
    or a stack of samples along a new first axis. Names and shapes are checked against the model."""
    from ..execute import check_inputs, load_inputs

    where = str(source) if not isinstance(source, dict) else "calibration data"
    arrays = dict(source) if isinstance(source, dict) else load_inputs(str(source))
    graph = model.graphs[0]
    ranks = {v.name: v.type.rank for v in graph.inputs}
    stacked = bool(arrays) and all(ranks.get(k) is not None and np.ndim(a) == ranks[k] + 1 for k, a in arrays.items())
    samples = [arrays]
    if stacked:
        counts = {len(a) for a in arrays.values()}
        if len(counts) > 1:
            raise ModelError(f"{where}: the arrays stack different numbers of samples ({sorted(counts)})")
        samples = [{k: a[i] for k, a in arrays.items()} for i in range(counts.pop())]
    try:
        return [check_inputs(graph, s) for s in samples]
    except ModelError as e:
        raise ModelError(f"{where}: {e}") from None


# ------------------------------------------------------------------ applying it with coremltools


def weight_config(recipe: Recipe):
    """The coremltools op config for the recipe's weight format (None when it only prunes)."""
    import coremltools.optimize.coreml as cto

    if recipe.palettize:
        if recipe.per_grouped_channel:
            return cto.OpPalettizerConfig(
                nbits=recipe.palettize,
                granularity="per_grouped_channel",
                group_size=recipe.per_grouped_channel,
                weight_threshold=WEIGHT_THRESHOLD,
            )
        return cto.OpPalettizerConfig(nbits=recipe.palettize, weight_threshold=WEIGHT_THRESHOLD)
    if recipe.quantize:
        if recipe.block_size:
            return cto.OpLinearQuantizerConfig(
                dtype=recipe.quantize,
                granularity="per_block",
                block_size=recipe.block_size,
                weight_threshold=WEIGHT_THRESHOLD,
            )
        return cto.OpLinearQuantizerConfig(dtype=recipe.quantize, weight_threshold=WEIGHT_THRESHOLD)
    return None


@contextlib.contextmanager
def executor_calibration(model: Model) -> Iterator[None]:
    """Let coremltools' activation calibration read intermediates from anedoctor's reference executor.

    coremltools collects activation ranges by running the model with Core ML
    (ModelDebugger.step, through predict_intermediate_outputs), which exists only on macOS; this swaps
    that one step for a run of the same program in :func:`anedoctor.run` that hands each intermediate to
    coremltools' own range recorder as it is made (nothing is kept: a large model calibrates in the
    memory of one run). Range statistics, the concat adjustment and the quantize/dequantize insertion
    stay coremltools' own."""
    from coremltools.optimize.coreml.experimental._model_debugger import ModelDebugger

    from ..execute import arrays_of, run

    outputs = {v.name for g in model.graphs for v in g.outputs}

    def step(self, inputs, activation_stats_dict, intermediate_output_names=None, compute_units=None, **_):
        names = set(
            self.get_intermediate_output_names() if intermediate_output_names is None else intermediate_output_names
        )

        def record(executed, results) -> None:
            for name, value in arrays_of(executed, results).items():
                if name in names and name not in outputs:
                    self.record_intermediate_output(value, name, activation_stats_dict)

        run(model, inputs, trace=record)

    original = ModelDebugger.step
    ModelDebugger.step = step
    try:
        yield
    finally:
        ModelDebugger.step = original


def open_mlmodel(source: Path) -> Any:
    """The package as a coremltools MLModel (spec and weights only: Core ML cannot load models on Linux)."""
    from ..util import quiet_coremltools

    return quiet_coremltools().models.MLModel(str(source), skip_model_load=True)


@contextlib.contextmanager
def coremltools_errors(recipe: Recipe) -> Iterator[None]:
    """A coremltools refusal (or its missing optional k-means dependency) as a one-line ModelError."""
    try:
        yield
    except ModuleNotFoundError as e:  # scikit-learn: coremltools' k-means for small or grouped weights
        raise ModelError(f"{recipe.label}: {str(e).splitlines()[0]}") from None
    except (ValueError, NotImplementedError) as e:
        raise ModelError(f"{recipe.label}: coremltools refused: {str(e).splitlines()[0][:200]}") from None


def apply(recipe: Recipe, ml: Any, model: Model, calibration: list[dict[str, np.ndarray]] | None = None):
    """Compress an MLModel with coremltools.optimize.coreml; returns the compressed MLModel (not yet saved).
    ``model`` (the same package in anedoctor's IR) feeds W8A8 calibration."""
    import coremltools.optimize.coreml as cto

    with contextlib.redirect_stderr(io.StringIO()), coremltools_errors(recipe):
        if recipe.w8a8:
            act = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
            with executor_calibration(model):
                ml = cto.linear_quantize_activations(ml, act, [dict(s) for s in calibration or []])
        if recipe.pruning:
            pruner = cto.OpMagnitudePrunerConfig(
                target_sparsity=None if recipe.n_m else recipe.prune,
                n_m_ratio=recipe.n_m,
                weight_threshold=WEIGHT_THRESHOLD,
            )
            ml = cto.prune_weights(ml, cto.OptimizationConfig(global_config=pruner))
        config = weight_config(recipe)
        if config is not None:
            compress_fn = cto.palettize_weights if recipe.palettize else cto.linear_quantize_weights
            ml = compress_fn(ml, cto.OptimizationConfig(global_config=config), joint_compression=recipe.pruning)
    return ml
