"""Seeded mutants of every input anedoctor reads, one family per format.

Families cover the model formats, ``.npz`` inputs, output paths and the filesystem, and (``profile``,
``ingest``, ``measured``, ``fix_out``) the calibration inputs, measurements and fix's output paths. A family
is a function ``(rng, seeds, case_dir) -> Case``: it copies a seed into the case folder, damages one thing,
and says which command to run. Everything in the case folder before the run is an input (hashed before and
after); ``Case.outputs`` lists what the command may create (or write inside, for a model folder)."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

HOSTILE_STRINGS = [
    "",
    "../../../../etc/passwd",
    "/etc/passwd",
    "weights/../../../x.bin",
    "@model_path/../../x",
    "\x1b[31mred\x1b[0m\x1b]0;title\x07",
    "[bold red]markup[/]",
    "a\nb",
    "x" * 5000,
    "\u202eevil",
    "allow_pickle",
    "file",
    "a/b",
    "\x00nul",
    "名前",
    "..",
    ".",
]
HOSTILE_INTS = [0, -1, 1, 2**31 - 1, 2**31, 2**32 + 1, 2**40 + 1, 2**53 + 1, 2**62, 2**63 - 1, 2**64 - 1, -(2**63)]
HOSTILE_NUMBERS = [
    "0",
    "-1",
    "99999999999999999999999",
    "9" * 400,
    "1e999",
    "-1e999",
    "nan",
    "inf",
    "-0",
    "1e-400",
    "0x1p99999",
    "4294967297",
    "18446744073709551617",
    "3.5",
    "-2147483649",
]


@dataclass
class Case:
    family: str
    what: str
    argv: list[str]  # anedoctor's arguments, relative to the case folder
    outputs: list[str] = field(default_factory=list)  # files the command may create


def copy_seed(seed: Path, case_dir: Path, name: str | None = None) -> Path:
    target = case_dir / (name or seed.name)
    if seed.is_dir():
        shutil.copytree(seed, target, symlinks=True)
    else:
        shutil.copyfile(seed, target)
    return target


def command(rng: random.Random, model: str, runnable: bool) -> tuple[list[str], list[str]]:
    """``check`` (sometimes with --json/--html/-v), or ``run`` when the model can execute."""
    if runnable and rng.random() < 0.35:
        return ["run", model, "--out", "out.npz"], ["out.npz"]
    extra = rng.choice([[], ["-v"], ["--json", "r.json"], ["--html", "r.html"], ["--json", "-"]])
    return ["check", model, *extra], [a for a in extra if a.endswith((".json", ".html"))]


# ------------------------------------------------------------------ bytes


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    buf = bytearray(data)
    kind = rng.choice(["flip", "truncate", "insert", "zero", "duplicate", "empty", "splice_int"])
    if not buf or kind == "empty":
        return b"", "empty"
    at = rng.randrange(len(buf))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del buf[at:]
    elif kind == "insert":
        buf[at:at] = rng.randbytes(rng.randint(1, 64))
    elif kind == "zero":
        buf[at : at + rng.randint(1, 256)] = bytes(min(len(buf) - at, 256))
    elif kind == "duplicate":
        n = rng.randint(1, 512)
        buf[at:at] = buf[at : at + n]
    else:
        buf[at : at + 8] = struct.pack("<q", rng.choice(HOSTILE_INTS[:-3]))[: len(buf) - at]
    return bytes(buf), f"{kind} at byte {at}"


# ------------------------------------------------------------------ protobuf fields


def set_fields(msg, found: list, depth: int = 0) -> None:
    """Every (message, field, index) set in ``msg``, depth first."""
    if depth > 40:
        return
    for fd, value in msg.ListFields():
        if fd.is_repeated:
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                for key in list(value)[:50]:
                    item = value[key]
                    if hasattr(item, "ListFields"):
                        found.append((msg, fd, key))
                        set_fields(item, found, depth + 1)
                continue
            for i, item in enumerate(list(value)[:200]):
                found.append((msg, fd, i))
                if fd.cpp_type == fd.CPPTYPE_MESSAGE:
                    set_fields(item, found, depth + 1)
        else:
            found.append((msg, fd, None))
            if fd.cpp_type == fd.CPPTYPE_MESSAGE:
                set_fields(value, found, depth + 1)


def hostile_scalar(rng: random.Random, fd) -> Any:
    t = fd.cpp_type
    if t == fd.CPPTYPE_STRING:
        return rng.choice(HOSTILE_STRINGS).encode() if fd.type == fd.TYPE_BYTES else rng.choice(HOSTILE_STRINGS)
    if t == fd.CPPTYPE_BOOL:
        return rng.random() < 0.5
    if t in (fd.CPPTYPE_FLOAT, fd.CPPTYPE_DOUBLE):
        big = 3e38 if t == fd.CPPTYPE_FLOAT else 1e308
        return rng.choice([float("nan"), float("inf"), -float("inf"), 1e38, -1.0, 0.0, big])
    if t == fd.CPPTYPE_ENUM:
        return rng.choice([v.number for v in fd.enum_type.values] + [0, 999])
    lo, hi = {
        fd.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
        fd.CPPTYPE_UINT32: (0, 2**32 - 1),
        fd.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
        fd.CPPTYPE_UINT64: (0, 2**64 - 1),
    }[t]
    return min(max(rng.choice(HOSTILE_INTS + [rng.randint(0, 64)]), lo), hi)


def mutate_spec(rng: random.Random, spec) -> str:
    """Damage one field of a parsed Core ML spec: a hostile scalar, a cleared message, a dropped or doubled element."""
    found: list = []
    set_fields(spec, found)
    msg, fd, index = rng.choice(found)
    container = getattr(msg, fd.name)
    where = f"{msg.DESCRIPTOR.name}.{fd.name}" + (f"[{index}]" if index is not None else "")
    action = rng.choice(["scalar", "scalar", "clear", "drop", "double"])
    is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
    if index is not None and action in ("drop", "double") and not is_map:
        if action == "drop":
            del container[index]
        else:
            if fd.cpp_type == fd.CPPTYPE_MESSAGE:
                container.add().CopyFrom(container[index])
            else:
                container.append(container[index])
        return f"{action} {where}"
    if is_map:
        if action == "clear":
            del container[index]
            return f"delete {where}"
        target = container[index]
        sub: list = []
        set_fields(target, sub)
        if not sub:
            return f"kept {where}"
        msg, fd, index = rng.choice(sub)
        container = getattr(msg, fd.name)
        where = f"{msg.DESCRIPTOR.name}.{fd.name}"
    if fd.cpp_type == fd.CPPTYPE_MESSAGE:
        item = container[index] if index is not None else container
        item.Clear()
        return f"clear {where}"
    value = hostile_scalar(rng, fd)
    try:
        if index is not None:
            container[index] = value
        else:
            setattr(msg, fd.name, value)
    except (ValueError, TypeError):
        return f"kept {where} (refused {value!r})"
    return f"set {where} = {str(value)[:40]!r}"


def spec_path_of(model: Path) -> Path:
    return next(model.rglob("model.mlmodel")) if model.is_dir() else model


def fam_spec_bytes(rng, seeds, case_dir) -> Case:
    model = copy_seed(seeds[rng.choice(["mlpackage", "mlmodel"])], case_dir)
    spec = spec_path_of(model)
    data, what = mutate_bytes(rng, spec.read_bytes())
    spec.write_bytes(data)
    argv, outs = command(rng, model.name, True)
    return Case("spec_bytes", f"{spec.name}: {what}", argv, outs)


def fam_spec_fields(rng, seeds, case_dir) -> Case:
    from coremltools.proto import Model_pb2

    model = copy_seed(seeds[rng.choice(["mlpackage", "mlmodel"])], case_dir)
    spec_file = spec_path_of(model)
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    whats = [mutate_spec(rng, spec) for _ in range(rng.choice([1, 1, 2, 3]))]
    spec_file.write_bytes(spec.SerializeToString())
    argv, outs = command(rng, model.name, True)
    return Case("spec_fields", f"{spec_file.name}: {'; '.join(whats)}", argv, outs)


def fam_names(rng, seeds, case_dir) -> Case:
    """Hostile op / tensor / output names (escapes, markup, npz-reserved words) in a valid model."""
    from coremltools.proto import Model_pb2

    model = copy_seed(seeds["mlmodel"], case_dir)
    spec = Model_pb2.Model()
    spec.ParseFromString(model.read_bytes())
    new = rng.choice(HOSTILE_STRINGS[5:])
    layers = spec.neuralNetwork.layers
    if rng.random() < 0.5:
        layer = layers[rng.randrange(len(layers))]
        layer.name, what = new, f"layer {layer.name!r} renamed"
    else:
        old = spec.description.output[0].name
        spec.description.output[0].name = new
        for layer in layers:
            layer.output[:] = [new if o == old else o for o in layer.output]
        what = f"output {old!r} renamed"
    model.write_bytes(spec.SerializeToString())
    argv, outs = command(rng, model.name, True)
    return Case("names", f"{what} to {new[:30]!r}", argv, outs)


# ------------------------------------------------------------------ weight.bin


def fam_weight_bin(rng, seeds, case_dir) -> Case:
    model = copy_seed(seeds["mlpackage"], case_dir)
    blob = next(model.rglob("weight.bin"))
    data = bytearray(blob.read_bytes())
    records = [i for i in range(64, len(data) - 24, 64) if data[i : i + 4] == b"\xef\xbe\xad\xde"]
    at = rng.choice(records)
    field_at, fmt = rng.choice([(0, "<I"), (4, "<I"), (8, "<Q"), (16, "<Q")])
    if rng.random() < 0.7:
        value, width = rng.choice(HOSTILE_INTS[:11]), struct.calcsize(fmt)
        data[at + field_at : at + field_at + width] = struct.pack(fmt, value % (1 << 8 * width))
        what = f"record at {at}: field +{field_at} = {value}"
    else:
        data, what = bytearray(mutate_bytes(rng, bytes(data))[0]), "bytes"
    blob.write_bytes(bytes(data))
    argv = ["run", model.name, "--out", "out.npz"] if rng.random() < 0.8 else ["check", model.name]
    return Case("weight_bin", what, argv, ["out.npz"])


# ------------------------------------------------------------------ JSON files


def json_nodes(value: Any, path: tuple = ()) -> list[tuple]:
    nodes = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            nodes += json_nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:100]):
            nodes += json_nodes(v, path + (i,))
    return nodes


HOSTILE_JSON = [
    None,
    True,
    0,
    -1,
    1e308,
    2**70,
    "1",
    "",
    "[1e999]",
    "nan",
    [],
    {},
    [[1, 2]],
    {"a": 1},
    "../../etc/passwd",
    "/etc/passwd",
    [None],
    ["x", None, 3.5],
    "[9999999999, 9999999999, 9999999999]",
    "\x1b[2J[bold]x[/]",
]


def mutate_json_text(rng: random.Random, text: str) -> tuple[str, str]:
    kind = rng.random()
    if kind < 0.1:
        depth = rng.choice([200, 5000, 100000])
        return "[" * depth + "]" * depth, f"nested {depth} deep"
    if kind < 0.2:
        data, what = mutate_bytes(rng, text.encode("utf-8", "surrogateescape"))
        return data.decode("utf-8", "surrogateescape"), what
    value = json.loads(text)
    path = rng.choice(json_nodes(value))
    new = rng.choice(HOSTILE_JSON)
    if not path:
        return json.dumps(new), f"whole file = {new!r}"
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    if rng.random() < 0.2 and isinstance(parent, (dict, list)):
        del parent[path[-1]]
        return json.dumps(value), f"deleted {'/'.join(map(str, path))}"
    parent[path[-1]] = new
    return json.dumps(value), f"{'/'.join(map(str, path))} = {str(new)[:30]!r}"


def write_mutant_json(path: Path, rng: random.Random) -> str:
    text, what = mutate_json_text(rng, path.read_text())
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return what


def fam_manifest(rng, seeds, case_dir) -> Case:
    model = copy_seed(seeds["mlpackage"], case_dir)
    what = write_mutant_json(model / "Manifest.json", rng)
    argv, outs = command(rng, model.name, True)
    return Case("manifest", what, argv, outs)


def compiled_seed(rng, seeds, case_dir, want: str) -> Path:
    names = [k for k in seeds if k.startswith("mlmodelc:") and (seeds[k] / want).exists()]
    return copy_seed(seeds[rng.choice(names)], case_dir)


def fam_metadata(rng, seeds, case_dir) -> Case:
    model = compiled_seed(rng, seeds, case_dir, "metadata.json")
    what = write_mutant_json(model / "metadata.json", rng)
    argv, outs = command(rng, model.name, "espresso" not in str(list(model.iterdir())))
    return Case("metadata", what, argv, outs)


def fam_espresso(rng, seeds, case_dir) -> Case:
    model = compiled_seed(rng, seeds, case_dir, "model.espresso.net")
    target = model / rng.choice(["model.espresso.net", "model.espresso.net", "model.espresso.shape"])
    what = write_mutant_json(target, rng)
    argv, outs = command(rng, model.name, False)
    return Case("espresso", f"{target.name}: {what}", argv, outs)


# ------------------------------------------------------------------ model.mil text


def mutate_mil(rng: random.Random, text: str) -> tuple[str, str]:
    import re

    kind = rng.choice(["number", "number", "dim", "line", "dup", "truncate", "name", "nest", "blobfile", "bytes"])
    if not text:
        return "program(1.0)\n{\n}\n" if kind == "dup" else text, "empty file"
    if kind in ("number", "dim"):
        pattern = r"(?<=[\[, ])\d+(?=[\],])" if kind == "dim" else r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
        hits = list(re.finditer(pattern, text))
        if hits:
            m = rng.choice(hits)
            new = rng.choice(HOSTILE_NUMBERS)
            return text[: m.start()] + new + text[m.end() :], f"{kind} {m.group()!r} -> {new!r} at {m.start()}"
    lines = text.split("\n")
    at = rng.randrange(len(lines))
    if kind == "line":
        del lines[at]
        return "\n".join(lines), f"deleted line {at + 1}"
    if kind == "dup":
        lines.insert(at, lines[at])
        return "\n".join(lines), f"doubled line {at + 1}"
    if kind == "truncate":
        cut = rng.randrange(len(text))
        return text[:cut], f"truncated at {cut}"
    if kind == "name":
        hits = list(re.finditer(r'"[A-Za-z_][\w]*"', text))
        if hits:
            m = rng.choice(hits)
            new = json.dumps(rng.choice(HOSTILE_STRINGS[5:]))[1:-1].replace("\\u001b", "\x1b")
            return text[: m.start()] + '"' + new + '"' + text[m.end() :], f"string {m.group()} -> {new[:20]!r}"
    if kind == "nest":
        depth = rng.choice([100, 3000, 50000])
        lines.insert(at, f"tensor<fp32, [1]> deep = const()[val = {'[' * depth}1{']' * depth}];")
        return "\n".join(lines), f"list nested {depth} deep at line {at + 1}"
    if kind == "blobfile" and "BLOBFILE" in text:
        new = rng.choice(
            [
                '"/etc/passwd"',
                '"@model_path/../../../etc/passwd"',
                '"@model_path/weights/nothing.bin"',
                '"@model_path/weights/\\u0000.bin"',
                '"@model_path/."',
            ]
        )
        pattern = r'(BLOBFILE\(path = (?:tensor<string, \[\]>|string)\()"[^"]*"'
        return re.sub(pattern, lambda m: m.group(1) + new, text, count=1), f"BLOBFILE path -> {new}"
    data, what = mutate_bytes(rng, text.encode("utf-8", "surrogateescape"))
    return data.decode("utf-8", "surrogateescape"), what


def fam_mil_text(rng, seeds, case_dir) -> Case:
    model = compiled_seed(rng, seeds, case_dir, "model.mil")
    mil = model / "model.mil"
    text, what = mutate_mil(rng, mil.read_text())
    if rng.random() < 0.3:
        text, second = mutate_mil(rng, text)
        what += "; " + second
    mil.write_bytes(text.encode("utf-8", "surrogateescape"))
    argv, outs = command(rng, model.name, True)
    return Case("mil_text", what, argv, outs)


# ------------------------------------------------------------------ .npz inputs


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz with any member names (np.savez refuses names such as ``file``)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name, arr in arrays.items():
            with z.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, arr)


NPZ_KINDS = ["truncated", "not_zip", "object", "bomb", "shape", "dtype", "names", "huge_header", "nan", "bytes"]


def npz_mutant(kind: str, rng: random.Random, seeds: dict[str, Path], target: Path) -> str:
    """Write a hostile ``.npz`` of ``kind`` (one of :data:`NPZ_KINDS`) to ``target``; returns what it did."""
    good = dict(np.load(seeds["inputs"]))
    if kind == "truncated":
        data = seeds["inputs"].read_bytes()
        target.write_bytes(data[: rng.randrange(len(data))])
    elif kind == "not_zip":
        target.write_bytes(rng.randbytes(rng.randint(0, 300)))
    elif kind == "object":
        np.savez(target, x=np.array([{"a": 1}, None], dtype=object), y=good["y"])
    elif kind == "bomb":
        shutil.copyfile(seeds["bomb"], target)
    elif kind == "shape":
        shape = rng.choice([(1, 3, 9, 8), (3, 8, 8), (0,), (1, 3, 8, 8, 1)])
        np.savez(target, x=np.zeros(shape, np.float32), y=good["y"])
    elif kind == "dtype":
        dtype = rng.choice([np.complex64, np.str_, np.bool_, np.float16, np.int64])
        np.savez(target, x=good["x"].astype(dtype), y=good["y"])
    elif kind == "names":
        write_npz(target, {rng.choice(["z", "allow_pickle", "file", "x\x1b[31m", "../x"]): good["x"], "y": good["y"]})
    elif kind == "huge_header":
        import zipfile

        shape = rng.choice([(2**40,), (1, 64, 2048, 2048), (2**31, 2**31)])
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        with zipfile.ZipFile(target, "w") as z, z.open("x.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(bytes(64))
    elif kind == "nan":
        np.savez(target, x=np.full((1, 3, 8, 8), rng.choice([np.nan, np.inf, 1e38]), np.float32), y=good["y"])
    else:
        data, kind = mutate_bytes(rng, seeds["inputs"].read_bytes())
        target.write_bytes(data)
    return kind


def fam_npz(rng, seeds, case_dir) -> Case:
    model = copy_seed(seeds["mlpackage"], case_dir)
    if rng.random() < 0.1:  # .npy files and NAME=FILE arguments
        np.save(case_dir / "x.npy", np.load(seeds["inputs"])["x"])
        np.savez(case_dir / "in2.npz", y=np.load(seeds["inputs"])["y"])
        first = rng.choice(["x.npy", "x=x.npy", "nope=x.npy", "x=in2.npz"])
        return Case("npz", f"--input {first}", ["run", model.name, "--input", first, "--input", "y=in2.npz"], [])
    what = npz_mutant(rng.choice(NPZ_KINDS), rng, seeds, case_dir / "in.npz")
    return Case("npz", what, ["run", model.name, "--input", "in.npz", "--out", "out.npz"], ["out.npz"])


# ------------------------------------------------------------------ output paths


def fam_out_path(rng, seeds, case_dir) -> Case:
    model = copy_seed(seeds[rng.choice(["mlpackage", "mlmodel"])], case_dir)
    (case_dir / "adir").mkdir()
    (case_dir / "keep.npz").write_bytes(seeds["inputs"].read_bytes())
    os.symlink("keep.npz", case_dir / "link.npz")
    target = rng.choice(
        [
            "adir",
            "missing/out.npz",
            model.name,
            "keep.npz",
            "link.npz",
            "/dev/full",
            "adir/",
            "out.npz/x",
            "",
            "\x1b[31m.npz",
            f"{model.name}/x.npz",
        ]
    )
    allowed = [] if target.startswith(model.name) else [target.rstrip("/")]  # never the model itself
    if rng.random() < 0.5:
        return Case("out_path", f"--out {target!r}", ["run", model.name, "--out", target], allowed)
    flag = rng.choice(["--json", "--html"])
    other = ["--html", "r.html"] if flag == "--json" else ["--json", "r.json"]
    return Case(
        "out_path", f"{flag} {target!r} with {other}", ["check", model.name, flag, target, *other], allowed + [other[1]]
    )


# ------------------------------------------------------------------ links, FIFOs, devices


def replace_with(rng: random.Random, path: Path, case_dir: Path) -> str:
    """Put a FIFO, socket, device link, outside link, loop or folder where ``path`` was."""
    kind = rng.choice(["fifo", "fifo", "dev_zero", "outside", "loop", "dangling", "folder", "socket", "dev_null"])
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        os.symlink("/dev/zero", path)
    elif kind == "dev_null":
        os.symlink("/dev/null", path)
    elif kind == "outside":
        secret = case_dir.parent / "outside-secret.txt"
        secret.write_text("SECRET-OUTSIDE-THE-MODEL\n") if not secret.exists() else None
        os.symlink(secret, path)
    elif kind == "loop":
        os.symlink(path.name, path)
    elif kind == "dangling":
        os.symlink("nothing-here", path)
    elif kind == "folder":
        path.mkdir()
    else:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(path))
        except OSError:  # path too long for a socket name
            os.mkfifo(path)
            kind = "fifo"
        finally:
            sock.close()
    return kind


def fam_filesystem(rng, seeds, case_dir) -> Case:
    choice = rng.choice(["mlpackage", "mlmodel", "mlmodelc", "mlmodelc", "loops", "inputs"])
    if choice == "loops":
        model = compiled_seed(rng, seeds, case_dir, "metadata.json")
        for name in ("a", "b"):
            os.symlink(".", model / name)
        if rng.random() < 0.5:
            (model / "model.mil").unlink(missing_ok=True)
            (model / "model.espresso.net").unlink(missing_ok=True)
        return Case("filesystem", "links a -> ., b -> . in the folder", ["check", model.name])
    if choice == "inputs":
        model = copy_seed(seeds["mlpackage"], case_dir)
        kind = replace_with(rng, case_dir / "in.npz", case_dir)
        return Case("filesystem", f"--input is a {kind}", ["run", model.name, "--input", "in.npz"], [])
    if choice == "mlmodel":
        model = copy_seed(seeds["mlmodel"], case_dir)
        target = model
    elif choice == "mlpackage":
        model = copy_seed(seeds["mlpackage"], case_dir)
        target = rng.choice(
            [
                model / "Manifest.json",
                spec_path_of(model),
                next(model.rglob("weight.bin")),
                next(model.rglob("weights")),
            ]
        )
    else:
        model = compiled_seed(rng, seeds, case_dir, "metadata.json")
        files = [p for p in model.iterdir()] + list(model.rglob("weights/*"))
        target = rng.choice(files)
    kind = replace_with(rng, target, case_dir)
    argv = ["run", model.name] if rng.random() < 0.4 else ["check", model.name]
    return Case("filesystem", f"{target.relative_to(case_dir)} is a {kind}", argv)


# ------------------------------------------------------------------ calibration: profiles, measurements, manifests


def hostile_file(rng: random.Random, path: Path, case_dir: Path) -> str:
    """A mutated copy of the JSON file at ``path`` (mostly), else a FIFO, link, folder ... in its place."""
    if rng.random() < 0.85:
        return write_mutant_json(path, rng)
    return "a " + replace_with(rng, path, case_dir)


def fam_profile(rng, seeds, case_dir) -> Case:
    """A mutated profile (as `probes ingest` writes it) given to check, estimate or fix --dry-run."""
    model = copy_seed(seeds["mlpackage"], case_dir)
    profile = copy_seed(seeds["profile"], case_dir)
    what = hostile_file(rng, profile, case_dir)
    command_ = rng.choice([["check"], ["check"], ["check", "--json", "r.json"], ["estimate"], ["fix", "--dry-run"]])
    argv = [command_[0], model.name, "--profile", profile.name, *command_[1:]]
    if rng.random() < 0.15:
        argv += rng.choice([["--chip", "m4"], ["--chip", "a17"], ["--os", "ios17"]])
    return Case("profile", f"{profile.name}: {what}", argv, ["r.json"])


def fam_ingest(rng, seeds, case_dir) -> Case:
    """Mutated measurement JSONs or probe manifest given to `probes ingest`."""
    measured = copy_seed(seeds["measured"], case_dir)
    manifest = copy_seed(seeds["probes"] / "manifest.json", case_dir)
    if rng.random() < 0.4:
        target = manifest
    else:
        target = rng.choice(sorted(measured.iterdir()))
    what = f"{target.relative_to(case_dir)}: {hostile_file(rng, target, case_dir)}"
    if rng.random() < 0.2:  # a second damaged file
        other = rng.choice([p for p in [manifest, *sorted(measured.iterdir())] if p != target])
        what += f"; {other.relative_to(case_dir)}: {write_mutant_json(other, rng)}"
    sources = (
        [measured.name] if rng.random() < 0.7 else [str(p.relative_to(case_dir)) for p in sorted(measured.iterdir())]
    )
    extra = ["--manifest", manifest.name] if rng.random() < 0.85 else []
    return Case("ingest", what, ["probes", "ingest", *sources, *extra, "-o", "profile.json"], ["profile.json"])


def fam_measured(rng, seeds, case_dir) -> Case:
    """A mutated measurement of the model held against its prediction: `check MODEL --measured M` or `compare`."""
    model = copy_seed(seeds["mlpackage"], case_dir)
    measured = copy_seed(seeds["measurement"], case_dir)
    what = hostile_file(rng, measured, case_dir)
    if rng.random() < 0.5:
        argv = ["check", model.name, "--measured", measured.name]
    else:
        argv = ["compare", copy_seed(seeds["prediction"], case_dir).name, measured.name]
    extra = rng.choice([[], [], ["--json", "c.json"], ["--html", "c.html"]])
    return Case("measured", f"{measured.name}: {what}", argv + extra, extra[1:])


def fam_fix_out(rng, seeds, case_dir) -> Case:
    """`fix nn.mlmodel -o TARGET` (or `fix m.aimodel -o TARGET` when that seed was built) with hostile output
    paths: the input, inside it, over a file, a link, a missing folder, the wrong suffix ..."""
    core_ai = "aimodel" in seeds and rng.random() < 0.3
    model = copy_seed(seeds["aimodel" if core_ai else "fixable"], case_dir)
    suffix, other = (".aimodel", ".mlpackage") if core_ai else (".mlpackage", ".aimodel")
    (case_dir / "adir").mkdir()
    (case_dir / "keep.npz").write_bytes(seeds["inputs"].read_bytes())
    (case_dir / f"old{suffix}").mkdir()
    (case_dir / f"old{suffix}" / "keep.txt").write_text("an earlier output\n")
    os.symlink("keep.npz", case_dir / f"link{suffix}")
    os.symlink("adir", case_dir / f"dirlink{suffix}")
    target = rng.choice(
        [
            f"out{suffix}",
            f"adir/out{suffix}",
            f"old{suffix}",
            "adir",
            f"missing/out{suffix}",
            model.name,
            f"{model.name}/x{suffix}",
            "keep.npz",
            f"link{suffix}",
            f"dirlink{suffix}",
            "/dev/full",
            "adir/",
            f"out{suffix}/",
            f"out{other}",
            "out.mlmodel",
            "",
            ".",
            "..",
            f"\x1b[31m{suffix}",
            "x" * 300 + suffix,
        ]
    )
    argv = ["fix", model.name, "-o", target]
    if rng.random() < 0.3:
        argv += rng.choice([["--json", "fix.json"], ["--json", target], ["--html", "fix.html"], ["--dry-run"]])
    rooted = target.rstrip("/")
    allowed = [] if rooted.startswith(model.name) or not rooted else [rooted, "fix.json", "fix.html"]
    return Case("fix_out", f"{model.suffix}: -o {target[:40]!r}", argv, allowed)


FAMILIES: dict[str, Callable[..., Case]] = {
    "spec_bytes": fam_spec_bytes,
    "spec_fields": fam_spec_fields,
    "names": fam_names,
    "weight_bin": fam_weight_bin,
    "manifest": fam_manifest,
    "metadata": fam_metadata,
    "espresso": fam_espresso,
    "mil_text": fam_mil_text,
    "npz": fam_npz,
    "out_path": fam_out_path,
    "filesystem": fam_filesystem,
    "profile": fam_profile,
    "ingest": fam_ingest,
    "measured": fam_measured,
    "fix_out": fam_fix_out,
}
