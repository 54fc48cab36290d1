"""Core ML's own words, read from text: Espresso unified-log lines and lldb breakpoint logs.

* ``log stream/show --predicate 'subsystem == "com.apple.espresso"'`` (with ``OS_ACTIVITY_DT_MODE=YES`` and the
  E5 bundle cache removed, else cached loads log nothing): ``Unsupported op <idx> (<type>): <reason>`` and
  ``[CostModelFeature],<name>,?,<type>,key,value,...`` records. Layout as parsed by Anemll/anemll-profile
  ``anemll_profile.m`` (R: private, undocumented strings; ``<private>`` when the log masks them).
* lldb: the seeds' symbolic breakpoints (hollance/neural-engine ``docs/is-model-using-ane.md``: ``-[_ANEModel
  program]``, ``Espresso::ANERuntimeEngine``, ``Espresso::MPSEngine::context::__launch_kernel``,
  ``Espresso::BNNSEngine::convolution_kernel::__launch``), auto-continuing, each printing a tag we count.
  Symbol names change between OS versions (the same doc says so): zero hits is "not seen", not "not used".
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

UNSUPPORTED = re.compile(r"Unsupported op (?P<index>\d+) \((?P<type>[^)]*)\): (?P<reason>.+?)\s*$")
COST_FEATURE = "[CostModelFeature],"
NUMERIC_KEYS = {
    "gFlopCnt",
    "totalMB",
    "mbKernel",
    "mbInputTensors",
    "mbOutputTensors",
    "opsPerByte",
    "workUnitEfficiency16",
    "GFLOP/s",
    "GB/s",
    "Runtime",
    "isL2Resident",
    "inputChannelCount",
    "outputChannelCount",
    "kernelX",
    "kernelY",
    "inputTensorX",
    "inputTensorY",
    "outputTensorX",
    "outputTensorY",
}
ENGINE_BREAKPOINTS = {  # tag -> (device, lldb breakpoint arguments)
    "ANE_PROGRAM": ("ane", "-n '-[_ANEModel program]'"),
    "ANE_ENGINE": ("ane", "-r 'Espresso::ANERuntimeEngine::'"),
    "MPS_ENGINE": ("gpu", "-n 'Espresso::MPSEngine::context::__launch_kernel'"),
    "BNNS_ENGINE": ("cpu", "-n 'Espresso::BNNSEngine::convolution_kernel::__launch'"),
    "CPU_ELEMENTWISE": ("cpu", "-r 'Espresso::elementwise_kernel_cpu::__launch'"),
}
HIT = re.compile(r"ANEDOCTOR_HIT (?P<tag>[A-Z_]+)\b")


def parse_espresso_log(text: str) -> dict[str, Any]:
    """Rejections (``Unsupported op``) and cost-model records from captured com.apple.espresso lines."""
    rejections, costs, masked = [], {}, 0
    for line in text.splitlines():
        if m := UNSUPPORTED.search(line):
            rejections.append({"index": int(m["index"]), "type": m["type"], "reason": m["reason"]})
        elif COST_FEATURE in line:
            fields = line.split(COST_FEATURE, 1)[1].strip().split(",")
            if len(fields) < 3:
                continue
            name, op_type, rest = fields[0], fields[2], fields[3:]
            masked += "<private>" in name
            record: dict[str, Any] = {"name": name, "type": op_type}
            i = 0
            while i < len(rest):
                key = rest[i]
                if key.startswith("Bound:"):
                    record["bound"] = key[len("Bound:") :]
                    i += 1
                    continue
                if i + 1 < len(rest):
                    value = rest[i + 1]
                    record[key] = float(value) if key in NUMERIC_KEYS and _is_number(value) else value
                i += 2
            costs.setdefault(name, record)  # the first record of an op counts, as anemll-profile does
    return {"rejections": rejections, "cost_features": list(costs.values()), "masked": masked}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def attach_reasons(ops: list[dict[str, Any]], log: dict[str, Any]) -> int:
    """Put Core ML's rejection messages on the measured ops they name; returns how many ops got one.

    A rejection names the op's index in the program and its type: it is attached to the op with that
    index when the types agree, else to every op of that type that Core ML kept off the ANE."""
    attached = 0
    by_index = {op.get("plan_index", op.get("index")): op for op in ops}
    for rej in log["rejections"]:
        op_type = rej["type"].rpartition(".")[2]
        target = by_index.get(rej["index"])
        targets = (
            [target]
            if target is not None and target.get("type") == op_type
            else [op for op in ops if op.get("type") == op_type and op.get("device") != "ane"]
        )
        for op in targets:
            reason = {
                "rule": "COREML",
                "title": "Core ML's ANE rejection message",
                "message": rej["reason"],
                "apple_message": rej["reason"],
                "confidence": "M",
                "fix": None,
                "source": "com.apple.espresso unified log (the technique of Anemll/anemll-profile)",
            }
            if reason not in op["reasons"]:
                op["reasons"].append(reason)
                attached += 1
    return attached


def attach_log(ops: list[dict[str, Any]], log: dict[str, Any]) -> str:
    """Attach rejections (as reasons) and E5 cost-model records (as ``extra`` columns, matched by op name) to the
    measured ops; returns a one-line note saying what was captured."""
    attached = attach_reasons(ops, log)
    by_name = {op.get("name"): op for op in ops}
    costed = 0
    for record in log["cost_features"]:
        op = by_name.get(record["name"])
        if op is not None:
            op["extra"].update({f"E5 {k}": v for k, v in record.items() if k in ("Runtime", "gFlopCnt", "bound")})
            costed += 1
    if not log["rejections"] and not log["cost_features"]:
        return (
            "Core ML's log: no Espresso line captured (a cached compile logs nothing; /usr/bin/log may need "
            "an admin user)"
        )
    return (
        f"Core ML's log: {len(log['rejections'])} rejection(s), {attached} attached to ops; cost-model records "
        f"for {costed} op(s)" + ("; names masked as <private>" if log["masked"] else "")
    )


def lldb_commands() -> str:
    """An lldb command file: the seeds' breakpoints, auto-continuing, each printing a tag counted later."""
    lines = [
        "# anedoctor: where Core ML runs a model, by breakpoints on Espresso's engines (seeds 000/002).",
        "# Usage: lldb -s THIS_FILE -- python your_predict_script.py > lldb.log 2>&1",
        "#        then: anedoctor measure MODEL --lldb-log lldb.log   (counts hits per engine)",
        "# Symbols change between OS versions; 'image lookup -r -n ANERuntimeEngine' lists what exists.",
        "settings set target.process.stop-on-exec false",
    ]
    lines += [
        f"breakpoint set {args} -N anedoctor_{tag.lower()} -G true -C \"script print('ANEDOCTOR_' + 'HIT {tag}')\""
        for tag, (_, args) in ENGINE_BREAKPOINTS.items()
    ]
    return "\n".join([*lines, "run", "quit"]) + "\n"


def parse_lldb_log(text: str) -> dict[str, Any]:
    """Breakpoint hits per tag and per device from an lldb session run with :func:`lldb_commands`."""
    hits = Counter(m["tag"] for m in HIT.finditer(text) if m["tag"] in ENGINE_BREAKPOINTS)
    devices = Counter()
    for tag, n in hits.items():
        devices[ENGINE_BREAKPOINTS[tag][0]] += n
    return {
        "hits": dict(hits),
        "devices": {d: devices.get(d, 0) for d in ("ane", "gpu", "cpu")},
        "engines_seen": sorted(d for d, n in devices.items() if n),
    }
