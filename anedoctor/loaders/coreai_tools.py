"""Core AI's own tools around an ``.aimodel``: coreai-torch converts a torch module into one, and
coreai-core's bundled CPU runtime runs it (anedoctor's second opinion on its own executor)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..ir import Model
from .coreai import INSTALL_HINT, _first_line, bindings, load_aimodel


def convert_module(module: Any, example_inputs: Any, folder: Path | None = None) -> tuple[Path, dict[str, str]]:
    """Convert a torch module with coreai-torch (torch.export with its decomposition table) into
    ``folder`` (default: a temporary folder removed at exit). Returns the ``.aimodel`` path and the map
    from Core AI's module names (``Conv2d$2``) to attribute paths (``encoder.conv``)."""
    bindings()
    if example_inputs is None:
        raise ModelError("a torch module needs example_inputs (a tensor or a tuple of tensors) to be converted")
    examples = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    try:
        import torch

        with warnings.catch_warnings():  # "validated with torch<=2.13.0; found 2.13.0+cpu" (+cpu sorts higher)
            warnings.simplefilter("ignore")
            from coreai_torch import TorchConverter, get_decomp_table
    except ImportError as e:
        raise ModelError(f"converting a torch module to Core AI needs coreai-torch ({e}): {INSTALL_HINT}") from None
    name = type(module).__name__
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="anedoctor-coreai-"))
        import atexit

        atexit.register(shutil.rmtree, folder, True)
    target = folder / f"{name}.aimodel"
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            exported = torch.export.export(module.eval(), examples).run_decompositions(get_decomp_table())
            converter = TorchConverter()
            converter.add_pytorch_module(
                module, export_fn=lambda _: exported, input_names=[f"input_{i}" for i in range(len(examples))]
            )
            converter.to_coreai().save_asset(target)
    except Exception as e:  # noqa: BLE001  (torch.export and the converter raise many types)
        raise ModelError(f"{name}: coreai-torch could not convert the module: {_first_line(e)}") from None
    return target, module_paths(exported)


def module_paths(exported: Any) -> dict[str, str]:
    """Core AI's ``Type$n`` module names -> torch attribute paths, numbered as coreai-torch numbers them
    (per type, in order of first appearance in the exported graph: ``_ModuleInstanceRegistry``)."""
    counts: dict[str, int] = {}
    labelled: set[tuple[str, str]] = set()
    paths: dict[str, str] = {}
    for node in exported.graph.nodes:
        for key, (path, type_name) in (node.meta.get("nn_module_stack") or {}).items():
            short = str(type_name).rsplit(".", 1)[-1]
            if (key, short) not in labelled:
                labelled.add((key, short))
                counts[short] = counts.get(short, 0) + 1
                paths[f"{short}${counts[short]}"] = path
    return paths


def load_module(module: Any, example_inputs: Any) -> Model:
    """Convert a torch module with coreai-torch and load the result, module paths named as in the module."""
    path, paths = convert_module(module, example_inputs)
    return load_aimodel(path, paths)


def run_coreai(source: str | Path | Model, inputs: dict[str, Any], function: str = "main") -> dict[str, np.ndarray]:
    """Run a ``.aimodel`` with coreai-core's bundled CPU runtime (on Linux it lowers the program to
    ODIX in a temporary folder first) and return its outputs by name."""
    bindings()
    from coreai.authoring.asset import AIModelAsset
    from coreai.runtime import NDArray

    path = Path(source.path if isinstance(source, Model) else source)
    try:
        asset = AIModelAsset.load(path)
    except RuntimeError as e:
        raise ModelError(f"{path}: coreai-core cannot open the asset: {_first_line(e)}") from None

    async def execute() -> dict[str, np.ndarray]:
        async with asset.executable() as model:
            fn = model.load_function(function)
            desc = fn.desc
            feeds = {}
            for name in desc.input_names:
                if name not in inputs:
                    raise ModelError(
                        f"{path}: input {name!r} is missing (the function takes {', '.join(desc.input_names)})"
                    )
                dtype = np.dtype(desc.input_descriptor(name).dtype)  # numpy names: "float32", "int32" ...
                feeds[name] = NDArray(np.ascontiguousarray(np.asarray(inputs[name]).astype(dtype)))
            return {k: np.array(v.numpy()) for k, v in (await fn(feeds)).items()}

    try:
        return _run_coroutine(execute())
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: coreai-core's runtime failed: {_first_line(e)}") from None


def _run_coroutine(coroutine: Any) -> Any:
    """asyncio.run, also from inside a running event loop (a notebook): then in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass
class CrossCheck:
    """anedoctor's reference executor against coreai-core's CPU runtime on the same inputs."""

    reference: dict[str, np.ndarray]
    coreai: dict[str, np.ndarray]

    @property
    def max_abs_diff(self) -> dict[str, float]:
        return {
            k: float(np.max(np.abs(self.reference[k].astype(np.float64) - np.asarray(v, np.float64)), initial=0.0))
            for k, v in self.coreai.items()
            if k in self.reference
        }


def compare_with_coreai(model: Model, result: Any) -> CrossCheck:
    """Run ``model`` (a loaded ``.aimodel``) with coreai-core's runtime on the inputs of ``result``
    (an ``anedoctor.run`` result of the same model) and pair the two sets of outputs."""
    return CrossCheck(dict(result.outputs), run_coreai(model, result.inputs, model.graphs[0].name))
