"""anedoctor: predict, explain and fix where a Core ML model runs on Apple silicon.

>>> import anedoctor
>>> report = anedoctor.check("model.mlpackage", chip="m4")
>>> report.summary["ane_fraction"]
>>> anedoctor.numerics("model.mlpackage").first   # where emulated ANE fp16 first breaks the model
"""

from ._version import __version__
from .api import check, gate, load, numerics, run
from .errors import ModelError, UnknownName
from .estimate import Estimate, estimate  # binds anedoctor.estimate to the function, not the module

__all__ = [
    "check",
    "gate",
    "load",
    "run",
    "numerics",
    "estimate",
    "Estimate",
    "fix",
    "ModelError",
    "UnknownName",
    "__version__",
]


def __getattr__(name: str):
    """``fix`` (the rewrite passes) is imported on first use."""
    if name == "fix":
        from .rewrite import fix

        return fix
    raise AttributeError(f"module 'anedoctor' has no attribute {name!r}")
