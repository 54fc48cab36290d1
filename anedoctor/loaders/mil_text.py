"""Parse the MIL text of a compiled ML Program (``model.mil``) into the IR: iOS 15-17 and iOS 18 dialects,
several functions, state, control flow; weights stay references into the blob files."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..ir import Block, Graph, Op, TensorType, Value
from ..ir.dtypes import DTYPE_BYTES, NUMPY_DTYPES
from .blob import BlobRef
from .files import bounded_shape, resolve_inside
from .mlprogram import opset_to_target

SCALAR_TYPES = frozenset(DTYPE_BYTES) | {"string"}
COMPOUND_TYPES = frozenset({"tensor", "state", "list", "dict", "tuple"})
LITERAL_WORDS = {"true": True, "false": False, "inf": float("inf"), "nan": float("nan")}
NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
ESCAPE = re.compile(r"\\(.)")
MODEL_PATH = "@model_path/"
LFS_POINTER = "version https://git-lfs"
_LITERAL = r'(?:\((?:"(?:[^"\\]|\\.)*"|[^()\[\]{}<>"\s,=]+)\))?'

# The lexer: one match per token; whitespace is skipped because nothing matches it. Lexemes:
# punctuation; a simple type ``tensor<fp16, [1, ?, 64]>``; a name; a typed scalar literal such
# as ``uint64(64)`` or ``tensor<string, []>("x")`` (a type or name glued to a one-token
# literal in parentheses); a string; a number; ``->``.
TOKEN = re.compile(
    r"[()\[\]{},=;<>?]"
    r"|tensor<\w+,\s*\[[^\]\[<>]*\]>" + _LITERAL + r"|[A-Za-z_][\w.]*" + _LITERAL + r'|"(?:[^"\\]|\\.)*"'
    r"|[-+]?0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*[pP][-+]?\d+"
    r"|[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf\b|nan\b)"
    r"|->|\S"
)


def is_name(t: str) -> bool:
    """A name token (not a type or typed literal, which end in '>' / ')')."""
    return t[:1] in NAME_START and t[-1] not in ">)"


def simple_type(t: str) -> TensorType | None:
    """``tensor<fp16, [1, ?]>`` or a scalar dtype word -> TensorType; None for anything else."""
    if t in SCALAR_TYPES:
        return TensorType(t, ())
    if not (t.startswith("tensor<") and t.endswith("]>")):
        return None
    dtype, _, dims = t[7:-1].partition(",")
    inner = dims.strip()[1:-1]
    shape = tuple(dim(d) for d in inner.split(",")) if inner.strip() else ()
    return TensorType(dtype.strip(), bounded_shape(shape, "tensor type"))


def dim(token: str) -> int | None:
    """A dimension of a type: an integer, else unknown (``?``, ``is0``); over-long digit strings are refused."""
    token = token.strip()
    if not token.lstrip("-").isdigit():
        return None
    if len(token) > 19:
        raise ModelError(f"dimension {token[:24]}... is too large")
    return int(token)


def number(t: str) -> int | float | bool:
    """Number (decimal or C99 hex float), ``inf``/``nan`` or ``true``/``false``; ValueError otherwise."""
    if t in LITERAL_WORDS:
        return LITERAL_WORDS[t]
    if "x" in t or "X" in t:
        try:
            return float.fromhex(t)
        except OverflowError:
            raise ValueError(f"{t[:30]} is too large for a float") from None
    try:
        return int(t)
    except ValueError:
        return float(t)


def unquote(t: str) -> str:
    body = t[1:-1]
    return ESCAPE.sub(r"\1", body) if "\\" in body else body


class Blobfile:
    """A ``BLOBFILE(path = ..., offset = ...)`` literal, before its type is known."""

    __slots__ = ("path", "offset")

    def __init__(self, path: str, offset: int):
        self.path, self.offset = path, offset


class MilParser:
    """Recursive-descent parser over the token list of one ``model.mil``."""

    def __init__(self, text: str, path: Path, folder: Path):
        self.text, self.path, self.folder = text, path, folder
        self.toks: list[str] = TOKEN.findall(text)
        self.toks += [""] * 4  # end markers: look-ahead never runs off the list
        self.i = 0
        self.types: dict[str, TensorType] = {}  # type token -> type
        self.scalars: dict[str, tuple[TensorType, Any]] = {}  # numeric typed-scalar token -> (type, payload)
        self.weight_files: dict[str, Path] = {}
        self.attrs: dict[str, Any] = {}  # program attributes (buildInfo)
        self.flex: dict[str, dict[str, Any]] = {}  # function name -> FlexibleShapeInformation

    # -- tokens --------------------------------------------------------------------
    def fail(self, msg: str, at: int | None = None) -> ModelError:
        """ModelError naming the file, line and column of token ``at`` (default: current)."""
        at = self.i if at is None else at
        pos = len(self.text)
        for k, m in enumerate(TOKEN.finditer(self.text)):
            if k == at:
                pos = m.start()
                break
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        found = repr(self.toks[at][:40]) if self.toks[at] else "end of file"
        return ModelError(f"{self.path}:{line}:{col}: malformed MIL text: {msg}, found {found}")

    def expect(self, tok: str) -> None:
        if self.toks[self.i] != tok:
            raise self.fail(f"expected {tok!r}")
        self.i += 1

    def accept(self, tok: str) -> bool:
        if self.toks[self.i] == tok:
            self.i += 1
            return True
        return False

    def name(self) -> str:
        t = self.toks[self.i]
        if not is_name(t):
            raise self.fail("expected a name")
        self.i += 1
        return t

    def is_type_at(self, k: int) -> bool:
        t = self.toks[k]
        return t in self.types or simple_type(t) is not None or t in COMPOUND_TYPES and self.toks[k + 1] == "<"

    # -- program -------------------------------------------------------------------
    def program(self) -> list[Graph]:
        """All functions; every error names the line and column it was found at."""
        try:
            return self.functions()
        except RecursionError:
            raise self.fail("nested too deeply") from None
        except ModelError as e:
            if str(e).startswith(str(self.path)):
                raise
            raise self.fail(str(e)) from None

    def functions(self) -> list[Graph]:
        if self.toks[0].startswith("program("):  # program(1.0) is one lexeme
            self.i += 1
        if self.toks[self.i] == "[":
            self.attrs = self.attributes()
        self.expect("{")
        graphs = []
        while not self.accept("}"):
            graphs.append(self.function())
        if self.toks[self.i]:
            raise self.fail("unexpected text after the program")
        if not graphs:
            raise self.fail("the program has no functions")
        return graphs

    def function(self) -> Graph:
        self.expect("func")
        name = self.name()
        opset = ""
        if self.accept("<"):
            opset = opset_to_target(self.name())
            self.expect(">")
        scope: dict[str, Value] = {}
        inputs = self.params(scope)
        attrs = self.attributes() if self.toks[self.i] == "[" else {}
        ops, outputs = self.body(scope, opset)
        self.accept(";")
        self.flex[name] = flexible_shapes(attrs.get("FlexibleShapeInformation"))
        return Graph(name, ops, inputs, outputs, opset=opset, states=[v for v in inputs if v.type.kind == "state"])

    def params(self, scope: dict[str, Value]) -> list[Value]:
        """``(TYPE name, ...)`` -> new Values, added to ``scope``."""
        self.expect("(")
        values = []
        while not self.accept(")"):
            if values:
                self.expect(",")
            t = self.type_()
            v = Value(self.name(), t)
            scope[v.name] = v
            values.append(v)
        return values

    def body(self, scope: dict[str, Value], opset: str) -> tuple[list[Op], list[Value]]:
        """``{ statements } -> (outputs)``."""
        self.expect("{")
        ops: list[Op] = []
        toks = self.toks
        while toks[self.i] != "}":
            if not toks[self.i]:
                raise self.fail("expected '}'")
            self.statement(scope, ops, opset)
        self.i += 1
        outputs: list[Value] = []
        if self.accept("->"):
            self.expect("(")
            while not self.accept(")"):
                if outputs:
                    self.expect(",")
                outputs.append(self.lookup(scope))
        return ops, outputs

    def lookup(self, scope: dict[str, Value]) -> Value:
        at = self.i
        name = self.name()
        try:
            return scope[name]
        except KeyError:
            raise self.fail(f"value {name!r} is used before it is defined", at) from None

    # -- statements ----------------------------------------------------------------
    def statement(self, scope: dict[str, Value], ops: list[Op], opset: str) -> None:
        """``TYPE a[, TYPE b] = op(arg = v, ...)[name = ..., ...] [blocks];`` (also ``(TYPE a, ...) = ...``
        and ``op(...)[...];`` with no outputs). ``const`` defines a constant Value, not an op.
        Hot path: tokens are indexed directly, sub-parsers are called only for uncommon forms."""
        toks, types = self.toks, self.types
        declared: list[tuple[TensorType, str]] = []
        i = self.i
        if toks[i + 1] != "(":
            paren = toks[i] == "("
            i += paren
            while True:
                t = types.get(toks[i])
                if t is None:
                    self.i = i
                    t = self.type_()
                    i = self.i
                else:
                    i += 1
                if not is_name(toks[i]):
                    raise self.fail("expected a name", i)
                declared.append((t, toks[i]))
                i += 1
                if toks[i] != ",":
                    break
                i += 1
            if paren:
                if toks[i] != ")":
                    raise self.fail("expected ')'", i)
                i += 1
            if toks[i] != "=":
                raise self.fail("expected '='", i)
            i += 1
        op_at, op_type = i, toks[i]
        if not is_name(op_type) or toks[i + 1] != "(":
            raise self.fail("expected an operation", i)
        i += 2
        inputs: dict[str, Value | list[Value]] = {}
        while toks[i] != ")":
            if inputs:
                if toks[i] != ",":
                    raise self.fail("expected ',' or ')'", i)
                i += 1
            arg, ref = toks[i], scope.get(toks[i + 2])
            if toks[i + 1] != "=" or not is_name(arg):
                raise self.fail("expected 'argument = value'", i)
            if ref is not None and toks[i + 3] in (",", ")"):  # the common case: a value reference
                inputs[arg] = ref
                i += 3
            else:
                self.i = i + 2
                inputs[arg] = self.argument(scope)
                i = self.i
        self.i = i + 1
        attrs = self.attributes() if toks[self.i] == "[" else {}
        name = attrs.pop("name", declared[0][1] if declared else op_type)
        if op_type == "const":
            if len(declared) != 1:
                raise self.fail("a const must have exactly one output", op_at)
            t, var = declared[0]
            val = inputs["val"].const if isinstance(inputs.get("val"), Value) else attrs.get("val")  # type: ignore[union-attr]
            if isinstance(val, BlobRef):
                val = dataclasses.replace(val, name=var)
            scope[var] = Value(var, t, val if val is not None else np.zeros(0))
            self.expect(";")
            return
        prefix, _, bare = op_type.rpartition(".")
        op = Op(str(name), bare, inputs, [], prefix.lower() or opset, attrs)
        if toks[self.i] != ";":
            op.blocks = self.blocks(scope, opset)
        self.expect(";")
        for t, var in declared:
            v = Value(var, t, producer=op)
            op.outputs.append(v)
            scope[var] = v
        ops.append(op)

    def blocks(self, scope: dict[str, Value], opset: str) -> list[Block]:
        """Nested blocks of cond / while_loop: ``{ block0(...) {...} -> (..); ... }``, or unwrapped
        ``block0(...) {...} -> (..) ...``, ``(...) {...}`` or ``{...}`` before the closing ``;``."""
        out: list[Block] = []
        wrapped = self.toks[self.i] == "{" and self.block_header_at(self.i + 1)
        self.i += wrapped
        while True:
            if wrapped:
                while self.accept(";"):
                    pass
                if self.accept("}"):
                    break
            elif self.toks[self.i] == ";" and out and self.block_header_at(self.i + 1):
                self.i += 1
            elif self.toks[self.i] != "{" and not self.block_header_at(self.i):
                break
            inner = dict(scope)
            b_inputs: list[Value] = []
            if self.toks[self.i] != "{":
                if self.toks[self.i] != "(":
                    self.i += 1  # block name, e.g. block0
                b_inputs = self.params(inner)
            b_ops, b_outputs = self.body(inner, opset)
            out.append(Block(b_inputs, b_ops, b_outputs))
        return out

    def block_header_at(self, k: int) -> bool:
        """Does a block header (``name(TYPE x, ...) {`` or ``(...) {``) start at token ``k``?"""
        toks = self.toks
        if toks[k] != "(":
            if not (is_name(toks[k]) and toks[k + 1] == "("):
                return False
            k += 1
        if toks[k + 1] == ")":
            return toks[k + 2] == "{"
        return self.is_type_at(k + 1) and toks[k + 2] != "="

    def attributes(self) -> dict[str, Any]:
        """``[key = value, ...]`` -> {key: constant payload}."""
        toks = self.toks
        i = self.i + 1
        attrs: dict[str, Any] = {}
        while toks[i] != "]":
            if attrs:
                if toks[i] != ",":
                    raise self.fail("expected ',' or ']'", i)
                i += 1
            key, val = toks[i], toks[i + 2]
            if toks[i + 1] != "=" or not is_name(key):
                raise self.fail("expected 'key = value'", i)
            if len(val) > 1 and val[-1] == ")" and toks[i + 3] in (",", "]"):  # the common case: name = string("x")
                self.i = i + 2
                attrs[key] = self.scalar(val)[1]
                i += 3
            else:
                self.i = i + 2
                attrs[key] = self.literal()
                i = self.i
        self.i = i + 1
        return attrs

    def argument(self, scope: dict[str, Value]) -> Value | list[Value]:
        """A value reference, a typed immediate, or ``(a, b, ...)`` for variadic arguments."""
        t = self.toks[self.i]
        if t == "(":
            self.i += 1
            items: list[Value] = []
            while not self.accept(")"):
                if items:
                    self.expect(",")
                items.append(self.argument(scope))  # type: ignore[arg-type]
            return items
        ref = scope.get(t)
        if ref is not None:
            self.i += 1
            return ref
        if len(t) > 1 and t[-1] == ")":
            self.i += 1
            return Value("<immediate>", *self.scalar(t))
        if self.is_type_at(self.i):
            ttype = self.type_()
            self.expect("(")
            raw = self.literal()
            self.expect(")")
            return Value("<immediate>", ttype, self.convert(ttype, raw))
        if is_name(t) and t not in LITERAL_WORDS and t != "BLOBFILE":
            return self.lookup(scope)  # raises: undefined value
        raw = self.literal()
        return Value("<immediate>", infer_type(raw), raw)

    # -- types and literals --------------------------------------------------------
    def type_(self) -> TensorType:
        t = self.toks[self.i]
        self.i += 1
        cached = self.types.get(t)
        if cached is None:
            cached = simple_type(t)
            if cached is not None:
                self.types[t] = cached
        if cached is not None:
            return cached
        if t == "tensor":  # a spelling the lexer does not take whole, e.g. tensor<fp32, ?>
            self.expect("<")
            dtype = self.name()
            self.expect(",")
            shape: tuple[int | None, ...] | None = None
            if not self.accept("?"):
                self.expect("[")
                dims: list[int | None] = []
                while not self.accept("]"):
                    if dims:
                        self.expect(",")
                    d = self.toks[self.i]
                    self.i += 1
                    dims.append(dim(d))
                shape = bounded_shape(tuple(dims), "tensor type")
            self.expect(">")
            return TensorType(dtype, shape)
        if t in COMPOUND_TYPES:  # state<T>, list<T, n>, dict<K, V>, tuple<T, ...>
            self.expect("<")
            parts = []
            while True:
                parts.append(self.type_() if self.is_type_at(self.i) else self.skip())
                if not self.accept(","):
                    break
            self.expect(">")
            if t in ("state", "list"):
                return TensorType(parts[0].dtype, parts[0].shape, t)
            return TensorType(parts[-1].dtype if t == "dict" else "", None, t)
        self.i -= 1
        raise self.fail("expected a type")

    def skip(self) -> TensorType:
        """Skip one token (a list length such as ``?`` or ``3``)."""
        self.i += 1
        return TensorType("", None)

    def scalar(self, t: str) -> tuple[TensorType, Any]:
        """A one-token typed scalar (``uint64(64)``, ``tensor<string, []>("x")``) -> (type, payload)."""
        hit = self.scalars.get(t)
        if hit is not None:
            return hit
        k = t.index("(")
        ttype = self.types.get(t[:k])
        if ttype is None:
            ttype = simple_type(t[:k])
            if ttype is None:
                raise self.fail("expected a value")
            self.types[t[:k]] = ttype
        raw = t[k + 1 : -1]
        if raw[0] == '"':
            return ttype, unquote(raw)  # names are unique: not worth caching
        try:
            hit = self.scalars[t] = (ttype, self.convert(ttype, number(raw)))
        except ValueError:
            raise self.fail("malformed number") from None
        return hit

    def literal(self) -> Any:
        """A literal: number, string, bool, ``[list]``, ``(tuple)``, ``{{k, v}, ...}``, BLOBFILE, typed."""
        t = self.toks[self.i]
        c = t[:1]
        if not t:
            raise self.fail("expected a value")
        if len(t) > 1 and t[-1] == ")":
            self.i += 1
            return self.scalar(t)[1]
        if c == '"':
            self.i += 1
            return unquote(t)
        if c.isdigit() or c in "-+" or t in LITERAL_WORDS:
            try:
                val = number(t)
            except ValueError:
                raise self.fail("malformed number") from None
            self.i += 1
            return val
        if c == "[":  # fast path: a flat list of numbers
            toks, k, nums = self.toks, self.i + 1, []
            try:
                while toks[k] != "]":
                    if nums:
                        if toks[k] != ",":
                            raise ValueError
                        k += 1
                    nums.append(number(toks[k]))
                    k += 1
                self.i = k + 1
                return nums
            except ValueError:
                pass
        if c in "[(":
            close = "]" if c == "[" else ")"
            self.i += 1
            items = []
            while not self.accept(close):
                if items:
                    self.expect(",")
                items.append(self.literal())
            return items if c == "[" else tuple(items)
        if c == "{":
            self.i += 1
            out = {}
            while not self.accept("}"):
                if out:
                    self.expect(",")
                self.expect("{")
                key = self.literal()
                self.expect(",")
                out[tuple(key) if isinstance(key, list) else key] = self.literal()
                self.expect("}")
            return out
        if t == "BLOBFILE":
            self.i += 1
            self.expect("(")
            fields = {}
            while not self.accept(")"):
                if fields:
                    self.expect(",")
                key = self.name()
                self.expect("=")
                fields[key] = self.literal()
            path, offset = fields.get("path"), fields.get("offset")
            if not isinstance(path, str) or not isinstance(offset, (int, np.integer)) or offset < 0:
                raise self.fail("BLOBFILE needs a string path and a non-negative integer offset")
            return Blobfile(path, int(offset))
        if self.is_type_at(self.i):
            ttype = self.type_()
            self.expect("(")
            raw = self.literal()
            self.expect(")")
            return self.convert(ttype, raw)
        raise self.fail("expected a value")

    def convert(self, ttype: TensorType, raw: Any) -> Any:
        """Literal -> constant payload of type ``ttype`` (numpy for numeric tensors)."""
        if isinstance(raw, Blobfile):
            return BlobRef(
                self.weight_file(raw.path), raw.offset, ttype.dtype, tuple(d or 0 for d in ttype.shape or ())
            )
        np_dtype = NUMPY_DTYPES.get(ttype.dtype)
        if np_dtype is None or ttype.kind != "tensor" or isinstance(raw, (dict, tuple, str)):
            return raw
        try:
            arr = np.asarray(raw, dtype=np_dtype)
        except (ValueError, OverflowError, TypeError) as e:
            raise self.fail(f"a {ttype.dtype} value does not fit its type ({str(e).splitlines()[0][:60]})") from None
        shape = ttype.shape
        if shape == ():
            return arr.reshape(())[()] if arr.size == 1 else arr
        if shape and arr.shape != shape and None not in shape and arr.size == math.prod(shape):
            arr = arr.reshape(shape)
        return arr

    def weight_file(self, name: str) -> Path:
        """Resolve a BLOBFILE path inside the model folder; refuse one that escapes it."""
        path = self.weight_files.get(name)
        if path is None:
            path = resolve_inside(self.folder, name[len(MODEL_PATH) :] if name.startswith(MODEL_PATH) else name)
            if path is None:
                raise ModelError(f"{self.path}: weight path {name!r} points outside the model folder")
            self.weight_files[name] = path
        return path


def infer_type(raw: Any) -> TensorType:
    """Type of an untyped literal."""
    if isinstance(raw, bool):
        return TensorType("bool", ())
    if isinstance(raw, int):
        return TensorType("int32", ())
    if isinstance(raw, float):
        return TensorType("fp32", ())
    if isinstance(raw, str):
        return TensorType("string", ())
    return TensorType("", None, "list" if isinstance(raw, list) else "tensor")


def flexible_shapes(info: Any) -> dict[str, Any]:
    """A function's ``FlexibleShapeInformation`` attribute -> {"DefaultShapes": {...}, "RangeDims": {...}, ...}."""
    if not isinstance(info, tuple):
        return {}
    return {k: v for k, v in (p for p in info if isinstance(p, tuple) and len(p) == 2) if isinstance(v, dict)}
