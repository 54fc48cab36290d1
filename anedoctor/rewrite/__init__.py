"""``anedoctor.fix``: rewrite an ML Program so more of it runs on the Neural Engine, and verify it.

Passes live in this package, one documented class each (``Given:`` / ``Result:``, exact or not,
source), registered in priority order in :data:`PASSES`; :mod:`.coreml_io` is the only module
that reaches into coremltools internals.
"""

from . import spatial, shapes, layout, dtypes  # noqa: F401, I001  (registration order is priority order)
from . import coreai_passes  # noqa: F401  (registers the Core AI implementations beyond coreai.py's own)
from .base import PASSES, Pass, PassResult, register
from .driver import fix
from .report import FixReport

__all__ = ["PASSES", "FixReport", "Pass", "PassResult", "fix", "register"]
