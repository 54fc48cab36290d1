"""anedoctor: predict, explain and fix where a Core ML model runs on Apple silicon.

    >>> import anedoctor
    >>> report = anedoctor.check("model.mlpackage", chip="m4")
    >>> report.summary["ane_fraction"]
"""
__version__ = "0.1.0"

from .api import check, load  # noqa: E402
from .ir import ModelError  # noqa: E402

__all__ = ["check", "load", "ModelError", "__version__"]
