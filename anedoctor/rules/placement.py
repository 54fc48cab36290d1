"""Placement rules (SEG-*, CU-1): reasons the segmenter attaches to ANE-eligible ops it keeps off the ANE.

They hold documentation only; :func:`anedoctor.placement.explain_off_ane` decides when they apply."""
from __future__ import annotations

from .base import rule


@rule("SEG-1", family="placement", confidence="M", level="placement",
      source="751K notes/coreml_dispatch.md §0, §2.2-2.3 (E5 analytics.mil, M4 macOS 27); vx-lang/Vx #435-#437; ane-rules.md SEG-1..SEG-6",
      fix="Give the ANE more contiguous work: remove the CPU-only ops that split the graph, batch or enlarge the work, or use compute_units=cpu_and_ne and measure.")
def segment_too_small(graph, ctx):
    """An ANE-eligible op the segmenter is predicted to keep off the ANE.

    Opening an ANE segment costs 0.125 ms, each switch 0.125 ms and an output on the ANE
    another 0.125 ms: a segment at the edge of the graph must save >= 0.25 ms, one in the middle
    >= 0.375 ms, or Core ML keeps the work where it is."""


@rule("SEG-2", family="placement", confidence="C", level="placement",
      source="apple/ml-stable-diffusion#122 (Apple engineer on .all choosing GPU); hollance docs/other.md; segmenter cost anchors (ane-guide ch. 18, R); ane-rules.md SEG-9",
      fix="Load with compute_units=cpu_and_ne if the ANE should win, and measure.")
def gpu_preferred(graph, ctx):
    """An ANE-eligible op predicted to run on the GPU under compute units 'all'.

    With GPU allowed, the segmenter compares the ANE with the GPU: a GPU segment that already
    runs the ops Core ML cannot put on the ANE often absorbs their eligible neighbours too, to
    avoid extra switches ("ANE -> GPU just once")."""


@rule("CU-1", family="placement", confidence="A", level="placement",
      source="Core ML MLComputeUnits documentation (apple/coremltools docs-guides, compute units)",
      fix="Load the model with compute_units=all or cpu_and_ne.")
def compute_units_exclude_ane(graph, ctx):
    """The chosen compute units exclude the Neural Engine."""
