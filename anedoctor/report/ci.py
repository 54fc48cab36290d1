"""Report formats CI systems read: SARIF 2.1.0 (code-scanning tabs), JUnit XML, GitHub Actions annotations.

Each renders one or more report dicts (the JSON schema) plus the gate failures of each model.
Findings are predictions: every message says so, and SARIF carries the rule's confidence.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree as ET

from .._version import __version__
from ..rules import RULES

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
Checked = tuple[dict[str, Any], list[str]]  # a report dict and the gate failures of its model


def finding_results(d: dict[str, Any]) -> list[dict[str, Any]]:
    """One SARIF result per cause of work off the Neural Engine, located at the model and its first op."""
    results = []
    for c in d["causes"]:
        op = next(
            (d["ops"][i] for i in c["op_indices"] if any(f["rule"] == c["rule"] for f in d["ops"][i]["reasons"])),
            d["ops"][c["op_indices"][0]],
        )
        message = next((f["message"] for f in op["reasons"] if f["rule"] == c["rule"]), c["title"])
        results.append(
            {
                "ruleId": c["rule"],
                "level": "warning",
                "message": {
                    "text": f"{c['ops']} op(s) predicted off the Neural Engine ({c['flops_fraction']:.1%} of FLOPs), "
                    f"e.g. {op['name']}: {message}. Fix: {c['fix']}"
                },
                "locations": [
                    {
                        "physicalLocation": {"artifactLocation": {"uri": d["model"]["path"]}},
                        "logicalLocations": [{"name": op["name"], "kind": "member"}],
                    }
                ],
                "properties": {
                    "ops": c["ops"],
                    "flops_fraction": c["flops_fraction"],
                    "switches": c["switches"],
                    "chip": d["chip"]["id"],
                    "compute_units": d["compute_units"],
                },
            }
        )
    return results


def to_sarif(checked: list[Checked]) -> str:
    """A SARIF 2.1.0 log: one run, the rules that fired as its rule catalogue, gate failures as errors."""
    fired = sorted({c["rule"] for d, _ in checked for c in d["causes"]})
    rules = [
        {
            "id": r.id,
            "name": r.name,
            "shortDescription": {"text": r.summary},
            "fullDescription": {"text": r.why or r.summary},
            "help": {"text": f"Fix: {r.fix} Source: {r.source}"},
            **({"helpUri": r.references[0].split()[0]} if r.references and r.references[0].startswith("http") else {}),
            "properties": {"confidence": r.confidence, "scope": r.scope, "tags": [r.family]},
        }
        for r in (RULES[i] for i in fired)
    ]
    results = []
    for d, failures in checked:
        results += finding_results(d)
        results += [
            {
                "ruleId": "gate",
                "level": "error",
                "message": {"text": f"gate failed: {f}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": d["model"]["path"]}}}],
            }
            for f in failures
        ]
    if any(f for _, f in checked):
        rules.append(
            {"id": "gate", "name": "ci-gate", "shortDescription": {"text": "A CI gate on the ANE share or latency"}}
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {"tool": {"driver": {"name": "anedoctor", "version": __version__, "rules": rules}}, "results": results}
        ],
    }
    return json.dumps(log, indent=1)


def to_junit(checked: list[Checked]) -> str:
    """JUnit XML: a test suite per model, a test case per gate (a passing 'placement' case when none is set)."""
    suites = ET.Element("testsuites", name="anedoctor")
    for d, failures in checked:
        name = d["model"]["name"]
        suite = ET.SubElement(suites, "testsuite", name=name, tests="1", failures=str(min(len(failures), 1)))
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"anedoctor.{name}",
            name=f"placement on {d['chip']['id']} ({d['compute_units']})",
        )
        if failures:
            ET.SubElement(case, "failure", message=failures[0]).text = "\n".join(failures)
        s = d["summary"]
        ET.SubElement(case, "system-out").text = "\n".join(
            [
                f"PREDICTION: {s['ane']} of {s['ops']} ops on the Neural Engine ({s['ane_fraction']:.1%}), "
                f"{s['ane_flops_fraction']:.1%} of FLOPs"
            ]
            + [
                f"{c['rule']}: {c['ops']} op(s), {c['flops_fraction']:.1%} of FLOPs. Fix: {c['fix']}"
                for c in d["causes"]
            ]
        )
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def github_annotations(checked: list[Checked]) -> str:
    """GitHub Actions workflow commands: a warning per cause, an error per failed gate, a notice per model."""

    def escape(text: str, prop: bool = False) -> str:
        text = str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    lines = []
    for d, failures in checked:
        path, s = escape(d["model"]["path"], True), d["summary"]
        lines.append(
            f"::notice file={path},title=anedoctor::{escape(d['model']['name'])}: predicted {s['ane']} of "
            f"{s['ops']} ops on the Neural Engine ({s['ane_fraction']:.1%})"
        )
        for c in d["causes"]:
            title = escape(f"{c['rule']} {RULES[c['rule']].name}", True)
            lines.append(
                f"::warning file={path},title={title}::{escape(c['title'])} {c['ops']} op(s), "
                f"{c['flops_fraction']:.1%} of FLOPs. Fix: {escape(c['fix'])}"
            )
        lines += [f"::error file={path},title=anedoctor gate::{escape(f)}" for f in failures]
    return "\n".join(lines) + "\n"
