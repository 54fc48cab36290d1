"""Compress a Core ML model with coremltools.optimize and see, before shipping, what it does to size,
Neural Engine placement, estimated latency and accuracy.

    >>> from anedoctor.compress import compress, sweep
    >>> report = compress("model.mlpackage", "small.mlpackage", palettize=4, chip="m4")
    >>> print(report.render())
    >>> print(sweep("model.mlpackage", chip="m4").render())
"""

from .core import CompressReport, compress
from .recipe import Recipe
from .sweep import SWEEP, SweepReport, sweep

__all__ = ["SWEEP", "CompressReport", "Recipe", "SweepReport", "compress", "sweep"]
