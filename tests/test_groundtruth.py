"""The predictor against measured placement: GT-A (M4 per-op sweep) and GT-B (size thresholds).

Each probe is a single-op model rebuilt from the public sweep (see anedoctor/probes.py for the
source and conditions). README.md quotes the agreement these tests print."""

from __future__ import annotations

import pytest

from anedoctor.measure.probes import PROBES, agreement


@pytest.fixture(scope="module")
def rows():
    return agreement(chip="m4", os="macos27")


def test_eligibility_matches_the_m4_sweep(rows):
    wrong = [r.probe.name for r in rows if not r.eligibility_ok]
    print(f"\nGT-A eligibility: {len(rows) - len(wrong)}/{len(rows)} agree; disagree: {wrong}")
    assert len(rows) == len(PROBES) >= 190
    assert not wrong


def test_placement_in_context_matches_the_m4_sweep(rows):
    ctx = [r for r in rows if r.ctx_ok is not None]
    wrong = [(r.probe.name, r.probe.ctx, r.predicted_ctx) for r in ctx if not r.ctx_ok]
    print(f"\nGT-A placement in context: {len(ctx) - len(wrong)}/{len(ctx)} agree; disagree: {wrong}")
    assert len(ctx) >= 130 and len(wrong) <= len(ctx) // 20


def test_size_thresholds_match_gtb(rows):
    gtb = [r for r in rows if r.iso_ok is not None]
    wrong = [(r.probe.name, r.probe.iso_device, r.predicted_iso_device) for r in gtb if not r.iso_ok]
    print(f"\nGT-B size thresholds: {len(gtb) - len(wrong)}/{len(gtb)} agree; disagree: {wrong}")
    assert len(gtb) == 8 and not wrong
