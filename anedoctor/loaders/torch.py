"""PyTorch -> ML Program with coremltools' own converter: a module (traced on example inputs), a saved
torch.export program (``.pt2``, which carries its example inputs) or a TorchScript file (``.pt``, with
input shapes). Each is saved as an ``.mlpackage`` in a temporary folder removed at exit."""

from __future__ import annotations

import atexit
import contextlib
import io
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..util import quiet_coremltools
from .files import checked_file


def convert_module(module: Any, example_inputs: Any, deployment_target: str = "ios18"):
    """Trace ``module`` on ``example_inputs`` and convert it to an fp16 ML Program.

    Returns the saved ``.mlpackage``, in a temporary directory removed when the process exits
    (weights are read lazily)."""
    import torch

    ct = quiet_coremltools()
    if example_inputs is None:
        raise ModelError("a torch module needs example_inputs (a tensor or a tuple of tensors) to be traced")
    examples = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    target = getattr(ct.target, deployment_target.replace("ios", "iOS").replace("macos", "macOS"), None)
    if target is None:
        raise ModelError(f"unknown deployment target {deployment_target!r} for conversion")
    try:
        with torch.no_grad():
            traced = torch.jit.trace(module.eval(), tuple(examples))
        with contextlib.redirect_stderr(io.StringIO()):
            mlmodel = ct.convert(
                traced,
                inputs=[ct.TensorType(name=f"input_{i}", shape=tuple(x.shape)) for i, x in enumerate(examples)],
                convert_to="mlprogram",
                minimum_deployment_target=target,
            )
    except Exception as e:  # the converter raises many types; report the first line
        raise ModelError(
            f"{type(module).__name__}: coremltools could not convert the module: {str(e).splitlines()[0][:160]}"
        ) from None
    return saved(mlmodel, type(module).__name__)


def convert_file(path: Path, example_inputs: Any = None, deployment_target: str = "ios18") -> Path:
    """Convert a saved ``.pt2`` (torch.export) or TorchScript ``.pt`` / ``.pth`` file. TorchScript needs its
    input shapes: ``example_inputs`` as {name: shape} (CLI ``--input-shape x=1x3x224x224``) or tensors."""
    checked_file(path, None, "torch", "torch file")  # a FIFO or device would block torch's reader
    import torch

    ct = quiet_coremltools()
    target = getattr(ct.target, deployment_target.replace("ios", "iOS").replace("macos", "macOS"), None)
    if path.suffix == ".pt2":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.load(str(path))
        except Exception as e:  # torch raises many types for a foreign or damaged archive
            raise ModelError(f"{path}: not a torch.export program ({str(e).splitlines()[0][:120]})") from None
        source, inputs = program.run_decompositions({}), None
    else:
        try:
            source = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as e:
            raise ModelError(
                f"{path}: not a TorchScript file ({type(e).__name__}); a state_dict or pickled module "
                "cannot be converted: save it with torch.jit.save, or with torch.export.save as .pt2"
            ) from None
        inputs = tensor_types(ct, path, example_inputs)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            mlmodel = ct.convert(source, inputs=inputs, convert_to="mlprogram", minimum_deployment_target=target)
    except Exception as e:  # the converter raises many types; report the first line
        raise ModelError(f"{path}: coremltools could not convert it: {str(e).splitlines()[0][:160]}") from None
    return saved(mlmodel, path.stem)


def tensor_types(ct, path: Path, example_inputs: Any) -> list:
    """coremltools input types for a TorchScript file, from {name: shape} or example tensors."""
    if example_inputs is None:
        raise ModelError(
            f"{path}: a TorchScript file does not record its input shapes; give them with "
            "--input-shape NAME=1x3x224x224 (repeatable), or example_inputs=... from Python"
        )
    if isinstance(example_inputs, dict):
        return [ct.TensorType(name=name, shape=tuple(shape)) for name, shape in example_inputs.items()]
    examples = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    return [ct.TensorType(name=f"input_{i}", shape=tuple(x.shape)) for i, x in enumerate(examples)]


def saved(mlmodel: Any, stem: str) -> Path:
    """Save a converted MLModel to a temporary package (removed at exit) and return its path."""
    folder = Path(tempfile.mkdtemp(prefix="anedoctor-"))
    package = folder / f"{stem}.mlpackage"
    mlmodel.save(str(package))
    atexit.register(shutil.rmtree, folder, True)
    return package
