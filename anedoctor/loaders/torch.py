"""PyTorch module -> ML Program spec, with coremltools' own converter."""
from __future__ import annotations

import atexit
import contextlib
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ModelError


def convert_module(module: Any, example_inputs: Any, deployment_target: str = "ios18"):
    """Trace ``module`` on ``example_inputs`` and convert it to an fp16 ML Program.

    Returns ``(spec, source_label, weights_dir)``. The weights folder lives in a temporary
    directory removed when the process exits (weights are read lazily)."""
    import torch

    from . import quiet_coremltools

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
        raise ModelError(f"{type(module).__name__}: coremltools could not convert the module: {str(e).splitlines()[0][:160]}") from None
    folder = Path(tempfile.mkdtemp(prefix="anedoctor-"))
    package = folder / f"{type(module).__name__}.mlpackage"
    mlmodel.save(str(package))
    atexit.register(shutil.rmtree, folder, True)
    spec_path = next((package / "Data").rglob("model.mlmodel"))
    from . import parse_spec

    return parse_spec(spec_path), f"<torch {type(module).__name__}>", spec_path.parent / "weights"

