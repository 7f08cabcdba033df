"""The simulated state as data: an object graph written as msgpack, read back without running code.

A pickle stores instructions (call this, import that); loading one runs them. Here the state is a table
of nodes — dicts, lists, tuples, sets, numpy arrays (plain dtypes only), and the backend's own classes
named by module and class — and decoding only ever builds those: a class is accepted if it is defined in
``avala_mock.simulators`` (or listed in ``EXTRA_CLASSES``), and it is rebuilt by setting the attributes
the document holds, without calling its constructor. Shared references and cycles survive (a project
and its dataset's store point at the same ``Dataset``). Locks are created anew; random generators keep
their position; the clock keeps its anchor.

``encode(..., redact=True)`` leaves secrets out: string and byte values under a name that
``SECRET_NAME`` matches become a marker that ``decode`` replaces with a fresh random value of the same
shape, and a class's ``__redact__`` fields are dropped; so a shared snapshot holds no key, token or
signing secret, and the world it restores still works (with new secrets).
"""

from __future__ import annotations

import collections
import importlib
import itertools
import random
import re
import secrets
import threading
from typing import Any

import msgpack
import numpy as np

from avala_mock.simulators.errors import Invalid

_REF, _SECRET = 1, 2  # msgpack ext codes: a reference to a node; a redacted secret (its visible prefix)
ALLOWED_MODULE = "avala_mock.simulators."
EXTRA_CLASSES: set[str] = set()  # "module:qualname" of classes outside ALLOWED_MODULE that may be stored
SECRET_NAME = re.compile(r"secret|token|password|credential|private_key|auth_json|authorization|webhook_url|"
                         r"accept_url|copy_link|grant_key|signing|api_key", re.I)
_LOCKS = (type(threading.Lock()), type(threading.RLock()))
_RLOCK = type(threading.RLock())


class CodecError(Invalid):
    """A document that is not a snapshot of this format, or names something it may not (400)."""


def encode(root: Any, *, redact: bool = False) -> bytes:
    return _Encoder(redact).run(root)


def decode(data: bytes) -> Any:
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext)
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise CodecError(f"not a state document ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise CodecError("not a state document (no node table)")
    return _Decoder(doc["nodes"]).value(doc.get("root"))


class _Ref:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _Redacted:
    __slots__ = ("prefix", "length", "kind")

    def __init__(self, kind: str, prefix: str, length: int) -> None:
        self.kind, self.prefix, self.length = kind, prefix, length


def _ext(code: int, data: bytes) -> Any:
    if code == _REF:
        return _Ref(int.from_bytes(data, "big"))
    if code == _SECRET:
        kind, prefix, length = msgpack.unpackb(data, raw=False)
        return _Redacted(kind, prefix, length)
    raise CodecError(f"unknown extension type {code}")


class _Encoder:
    def __init__(self, redact: bool) -> None:
        self.redact = redact
        self.nodes: list[Any] = []
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # objects whose id() is memoised must outlive the encoding

    def run(self, root: Any) -> bytes:
        encoded_root = self.value(root)
        return msgpack.packb({"nodes": self.nodes, "root": encoded_root}, use_bin_type=True)

    def value(self, obj: Any, name: str | None = None) -> Any:
        if type(obj) is int and not -(2**63) <= obj < 2**64:  # generator states hold 128-bit integers
            self.nodes.append(["i", str(obj)])
            return msgpack.ExtType(_REF, (len(self.nodes) - 1).to_bytes(4, "big"))
        if obj is None or isinstance(obj, (bool, int, float, str)):
            if self.redact and name is not None and isinstance(obj, (str, bytes)) and SECRET_NAME.search(name):
                return self.secret(obj)
            return obj
        if isinstance(obj, bytes):
            if self.redact and name is not None and SECRET_NAME.search(name):
                return self.secret(obj)
            return obj
        if isinstance(obj, np.generic):
            return obj.item()
        found = self.memo.get(id(obj))
        if found is not None:
            return msgpack.ExtType(_REF, found.to_bytes(4, "big"))
        index = len(self.nodes)
        self.memo[id(obj)] = index
        self.keep.append(obj)
        self.nodes.append(None)
        self.nodes[index] = self.node(obj)
        return msgpack.ExtType(_REF, index.to_bytes(4, "big"))

    def secret(self, obj: str | bytes) -> msgpack.ExtType:
        if isinstance(obj, bytes):
            marker = ["bytes", "", len(obj)]
        else:
            head = re.match(r"^[a-z]{2,6}_", obj)
            marker = ["str", head.group(0) if head else "", len(obj) - (head.end() if head else 0)]
        return msgpack.ExtType(_SECRET, msgpack.packb(marker))

    def node(self, obj: Any) -> list[Any]:
        v = self.value
        if isinstance(obj, dict):
            flat: list[Any] = []
            for key, item in obj.items():
                flat += [v(key), v(item, key if isinstance(key, str) else None)]
            return ["d", flat]
        if isinstance(obj, list):
            return ["l", [v(x) for x in obj]]
        if isinstance(obj, tuple):
            return ["t", [v(x) for x in obj]]
        if isinstance(obj, (set, frozenset)):
            return ["s" if isinstance(obj, set) else "fs", [v(x) for x in obj]]
        if isinstance(obj, collections.deque):
            return ["q", obj.maxlen, [v(x) for x in obj]]
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise TypeError("arrays of Python objects are not state")
            arr = np.ascontiguousarray(obj)
            return ["a", arr.dtype.str, list(arr.shape), arr.tobytes()]
        if isinstance(obj, _LOCKS):
            return ["k", isinstance(obj, _RLOCK)]
        if isinstance(obj, random.Random):
            if type(obj) is not random.Random:
                raise TypeError(f"{type(obj).__name__} has no state to save")
            return ["r", v(obj.getstate())]
        if isinstance(obj, np.random.Generator):
            return ["g", v(obj.bit_generator.state)]
        if isinstance(obj, itertools.count):
            return ["c", int(repr(obj)[6:-1])]
        cls = type(obj)
        path = f"{cls.__module__}:{cls.__qualname__}"
        if not _allowed(cls.__module__, path):
            raise TypeError(f"{path} is not part of the simulated state")
        state = getattr(obj, "__getstate__", None)
        attrs = vars(obj) if hasattr(obj, "__dict__") else {}
        slots = [s for c in cls.__mro__ for s in getattr(c, "__slots__", ()) if hasattr(obj, s)]
        fields = {**attrs, **{s: getattr(obj, s) for s in slots}}
        if state is not None and cls.__dict__.get("__getstate__") is not None:
            fields = state()
        dropped = getattr(cls, "__redact__", ()) if self.redact else ()  # fields a shared snapshot leaves out
        flat = []
        for key, item in fields.items():
            flat += [key, None if key in dropped else v(item, key)]
        return ["o", path, flat]


def _allowed(module: str, path: str) -> bool:
    return module.startswith(ALLOWED_MODULE) or path in EXTRA_CLASSES


class _Decoder:
    def __init__(self, nodes: list[Any]) -> None:
        self.nodes = nodes
        self.built: dict[int, Any] = {}

    def value(self, item: Any) -> Any:
        if isinstance(item, _Ref):
            return self.build(item.index)
        if isinstance(item, _Redacted):
            return _fresh_secret(item)
        return item

    def build(self, index: int) -> Any:
        if index in self.built:
            return self.built[index]
        try:
            node = self.nodes[index]
            tag = node[0]
        except (IndexError, TypeError, KeyError):
            raise CodecError(f"node {index} is missing or malformed") from None
        v = self.value
        if tag == "d":
            out: dict = {}
            self.built[index] = out
            flat = node[1]
            for i in range(0, len(flat), 2):
                out[v(flat[i])] = v(flat[i + 1])
            return out
        if tag == "l":
            lst: list = []
            self.built[index] = lst
            lst.extend(v(x) for x in node[1])
            return lst
        if tag in ("t", "fs"):
            made = (tuple if tag == "t" else frozenset)(v(x) for x in node[1])
        elif tag == "s":
            made = set()
            self.built[index] = made
            made.update(v(x) for x in node[1])
            return made
        elif tag == "q":
            made = collections.deque((v(x) for x in node[2]), maxlen=node[1])
        elif tag == "a":
            dtype = np.dtype(node[1])
            if dtype.hasobject:
                raise CodecError("an array of Python objects is not state")
            made = np.frombuffer(node[3], dtype=dtype).reshape(node[2]).copy()
        elif tag == "k":
            made = threading.RLock() if node[1] else threading.Lock()
        elif tag == "r":
            made = random.Random()
            made.setstate(_tuples(v(node[1])))
        elif tag == "g":
            state = v(node[1])
            made = np.random.Generator(getattr(np.random, state["bit_generator"])())
            made.bit_generator.state = state
        elif tag == "c":
            made = itertools.count(node[1])
        elif tag == "i":
            made = int(node[1])
        elif tag == "o":
            return self.build_object(index, node[1], node[2])
        else:
            raise CodecError(f"node {index} has an unknown tag {tag!r}")
        self.built[index] = made
        return made

    def build_object(self, index: int, path: str, flat: list[Any]) -> Any:
        module_name, _, qualname = path.partition(":")
        if not _allowed(module_name, path):
            raise CodecError(f"{path} is not part of the simulated state")
        try:
            cls = getattr(importlib.import_module(module_name), qualname)
        except (ImportError, AttributeError):
            raise CodecError(f"{path} does not exist in this version") from None
        if not isinstance(cls, type):
            raise CodecError(f"{path} is not a class")
        obj = cls.__new__(cls)
        self.built[index] = obj
        fields = {flat[i]: self.value(flat[i + 1]) for i in range(0, len(flat), 2)}
        setstate = cls.__dict__.get("__setstate__")
        if setstate is not None:
            setstate(obj, fields)
            return obj
        for key, item in fields.items():
            object.__setattr__(obj, key, item)
        return obj


def _tuples(value: Any) -> Any:
    """``random.Random`` states are nested tuples; lists from older documents are turned back."""
    return tuple(_tuples(x) for x in value) if isinstance(value, (list, tuple)) else value


def _fresh_secret(marker: _Redacted) -> Any:
    if marker.kind == "bytes":
        return secrets.token_bytes(marker.length or 32)
    return marker.prefix + secrets.token_hex(max(8, marker.length) // 2 + 1)[: max(8, marker.length)]
