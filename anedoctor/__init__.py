"""anedoctor: predict, explain and fix where a Core ML model runs on Apple silicon.

    >>> import anedoctor
    >>> report = anedoctor.check("model.mlpackage", chip="m4")
    >>> report.summary["ane_fraction"]
    >>> anedoctor.numerics("model.mlpackage").first   # where emulated ANE fp16 first breaks the model
"""
__version__ = "0.1.0"

from .api import check, load  # noqa: E402
from .errors import ModelError  # noqa: E402

__all__ = ["check", "load", "run", "numerics", "ModelError", "__version__"]


def __getattr__(name: str):
    """``run`` and ``numerics`` import torch: load them only when asked for."""
    if name == "run":
        from .execute import run

        return run
    if name == "numerics":
        from .fp16 import numerics

        return numerics
    raise AttributeError(f"module 'anedoctor' has no attribute {name!r}")
