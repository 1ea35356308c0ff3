"""Avro schemas and the single-object wire format (profile §2, §6).

This is the only module that reads ``schemas/``. Contract:

* ``schemas/<full name>.avsc`` holds one named type; the file name is its full name. A schema may
  refer to a named type of another file by full name; the loader inlines the referenced definition at
  its first use, so every schema is self-contained and fingerprints match what Java or Apache
  ``avro`` compute for the same schema.
* ``schemas/history/<full name>/<n>.avsc`` are frozen earlier versions of a record (1 = oldest),
  already self-contained. Their fingerprints stay known, and data written with them is decoded into
  the current schema by Avro schema resolution.
* Values are raw Avro values: ``timestamp-millis`` fields are ``int`` epoch milliseconds both in
  :func:`encode` and :func:`decode` (the wire schemas drop ``logicalType``; the ``.avsc`` files keep it).
* Other files under ``schemas/`` (e.g. ``schemas/profile/*.json``) are data tables, read with
  :func:`read_data_file`.
"""

from __future__ import annotations

import copy
import io
import json
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from pipeline.errors import ConfigError, EnvelopeError

MAGIC = b"\xc3\x01"
"""Avro single-object encoding marker."""
HEADER_LEN = 10
"""Marker plus the 8-byte CRC-64-AVRO fingerprint."""
SCHEMA_DIR_ENV = "LOOKTHROUGH_SCHEMA_DIR"
"""Environment variable overriding the schema directory."""

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of a named schema.

    ``schema`` is the self-contained JSON as written (docs, logical types); ``parsed`` is the fastavro
    wire schema (logical types dropped); ``fingerprint`` is the 8-byte little-endian CRC-64-AVRO of the
    parsing canonical form. ``version`` counts from 1; the current schema has the highest.
    """

    full_name: str
    version: int
    current: bool
    schema: dict[str, Any]
    parsed: dict[str, Any]
    fingerprint: bytes

    @property
    def is_record(self) -> bool:
        """Whether this is a record schema (only records travel as single-object values)."""
        return bool(self.schema["type"] == "record")


@dataclass(frozen=True, slots=True)
class _Reader:
    """How to decode one writer fingerprint: writer schema, reader schema (None: same), result name.

    ``fast`` is the compiled decoder (None: fastavro only); ``filled`` the reader fields that take
    their default because the writer lacks them.
    """

    full_name: str
    writer: dict[str, Any]
    reader: dict[str, Any] | None
    fast: Callable[[bytes], dict[str, Any]] | None
    filled: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Registry:
    versions: dict[str, tuple[SchemaVersion, ...]]
    current: dict[str, SchemaVersion]
    headers: dict[str, bytes]
    readers: dict[bytes, _Reader]
    encoders: dict[str, Callable[[dict[str, Any]], bytes] | None]


def schema_dir() -> Path:
    """The schema directory: ``$LOOKTHROUGH_SCHEMA_DIR`` or ``schemas/`` next to the package."""
    override = os.environ.get(SCHEMA_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "schemas"


def read_data_file(relative_path: str) -> Any:
    """Load the JSON file ``schemas/<relative_path>``; ConfigError if missing, outside, or not JSON."""
    base = schema_dir().resolve()
    path = (base / relative_path).resolve()
    if not path.is_relative_to(base):
        raise ConfigError(f"data file {relative_path!r} is outside {base}")
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"data file {path}: {exc}") from exc


def names() -> tuple[str, ...]:
    """Full names of every current schema (records and shared named types), sorted."""
    return tuple(sorted(_registry().current))


def versions(full_name: str) -> tuple[SchemaVersion, ...]:
    """All versions of ``full_name``, oldest first; the last one is current. KeyError if unknown."""
    return _registry().versions[full_name]


def schema_json(full_name: str) -> dict[str, Any]:
    """The current self-contained JSON schema (references inlined), for Apache avro and other tools."""
    return _version(full_name).schema


def parsed(full_name: str) -> dict[str, Any]:
    """The current fastavro parsed wire schema (timestamp-millis as plain long)."""
    return _version(full_name).parsed


def fingerprint(full_name: str) -> bytes:
    """The current 8-byte CRC-64-AVRO fingerprint, little-endian as in the single-object header."""
    return _version(full_name).fingerprint


def fingerprint_hex(full_name: str) -> str:
    """:func:`fingerprint` as 16 lower-case hex digits (header byte order), for provenance."""
    return _version(full_name).fingerprint.hex()


def writer_fingerprint_hex(data: bytes) -> str:
    """Hex fingerprint of the schema a single-object value was written with; E101 on a bad header."""
    if type(data) is bytes and len(data) >= HEADER_LEN and data[:2] == MAGIC:  # the common case, quicker
        return data[2:HEADER_LEN].hex()
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) < HEADER_LEN or data[:2] != MAGIC:
        raise EnvelopeError("E101", "value is not an Avro single-object record")
    return bytes(data[2:HEADER_LEN]).hex()


def encode(full_name: str, datum: dict[str, Any]) -> bytes:
    """Encode ``datum`` as an Avro single-object value of the current ``full_name`` record.

    KeyError if ``full_name`` is not a known record; ValueError if ``datum`` does not fit the schema.
    Nullable fields may be omitted; other missing fields are errors; unknown keys are ignored.
    """
    reg = _registry()
    header = reg.headers[full_name]
    fast = reg.encoders[full_name]
    if fast is not None:
        try:
            return fast(datum)
        except Exception:  # whatever the compiled encoder refuses, fastavro decides (and words the error)
            pass
    buf = io.BytesIO()
    buf.write(header)
    try:
        schemaless_writer(buf, reg.current[full_name].parsed, datum)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        raise ValueError(f"{full_name}: datum does not fit the schema: {exc!r}") from exc
    return buf.getvalue()


class ViewEncoder:
    """Encodes a record and several views of it (records of another schema) in one pass.

    ``encoder(datum, variants)`` returns ``(encode(primary, datum), [encode(view, {**datum, **w})
    for w in variants])``, byte for byte, where each variant ``w`` holds exactly the ``varying``
    fields. Fields the view shares with the primary are written once, not once per view: the
    per-exchange copies of an accepted report cost little more than the report itself.
    """

    def __init__(self, primary: str, view: str, varying: frozenset[str]) -> None:
        reg = _registry()
        self.primary, self.view, self.varying = primary, view, varying
        self._fast: Callable[[dict[str, Any], list[dict[str, Any]]], tuple[bytes, list[bytes]]] | None = None
        try:
            builder = _EncoderBuilder()
            entry = builder.view_function(
                _fast_node(reg.current[primary]), reg.headers[primary],
                _fast_node(reg.current[view]), reg.headers[view], varying,
            )  # fmt: skip
            self._fast = builder.compile(entry)
        except _NoFastPath:
            pass
        missing = varying - {f["name"] for f in reg.current[view].schema["fields"]}
        if missing:
            raise KeyError(f"{view} has no field {sorted(missing)[0]}")

    def fields(self) -> frozenset[str]:
        """The view's field names."""
        return frozenset(f["name"] for f in _registry().current[self.view].schema["fields"])

    def __call__(self, datum: dict[str, Any], variants: list[dict[str, Any]]) -> tuple[bytes, list[bytes]]:
        if self._fast is not None:
            try:
                return self._fast(datum, variants)
            except Exception:  # as in `encode`: fastavro decides whatever the compiled code refuses
                pass
        return encode(self.primary, datum), [encode(self.view, {**datum, **w}) for w in variants]


@cache
def view_encoder(primary: str, view: str, varying: frozenset[str]) -> ViewEncoder:
    """The (cached) `ViewEncoder` of ``view`` records taken from ``primary`` records."""
    return ViewEncoder(primary, view, varying)


def decode(data: bytes | None, expected: str | None = None) -> tuple[str, dict[str, Any]]:
    """Decode an Avro single-object value into ``(record full name, datum)`` in the current schema.

    The writer schema is found by fingerprint, current or historical; historical data is resolved
    into the current schema. With ``expected``, a value of any other record is rejected. Every
    malformed input (None, bad marker, unknown fingerprint, truncated or corrupt body, trailing
    bytes) raises EnvelopeError E101 and nothing else. KeyError if ``expected`` is not a known record.
    """
    reg = _registry()
    if type(data) is bytes and data[:2] == MAGIC:
        # The common case first: a known fingerprint (so a full header) of the expected record.
        reader = reg.readers.get(data[2:HEADER_LEN])
        if reader is not None and reader.fast is not None and (expected is None or reader.full_name == expected):
            try:
                return reader.full_name, reader.fast(data)
            except Exception:  # whatever the compiled decoder refuses, fastavro decides below (E101 or not)
                pass
    if expected is not None and expected not in reg.headers:
        raise KeyError(f"{expected} is not a known record schema")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EnvelopeError("E101", f"value is {type(data).__name__}, not bytes")
    if len(data) < HEADER_LEN or data[:2] != MAGIC:
        raise EnvelopeError("E101", "value lacks the Avro single-object header")
    reader = reg.readers.get(bytes(data[2:HEADER_LEN]))
    if reader is None:
        raise EnvelopeError("E101", f"unknown schema fingerprint {bytes(data[2:HEADER_LEN]).hex()}")
    if expected is not None and reader.full_name != expected:
        raise EnvelopeError("E101", f"value is a {reader.full_name}, not a {expected}")
    buf = io.BytesIO(data)
    buf.seek(HEADER_LEN)
    try:
        datum = schemaless_reader(buf, reader.writer, reader.reader)
    except Exception as exc:  # fastavro raises many types on corrupt input; all mean E101
        raise EnvelopeError("E101", f"corrupt {reader.full_name} body: {type(exc).__name__}") from exc
    if buf.tell() != len(data):
        raise EnvelopeError("E101", f"{len(data) - buf.tell()} trailing bytes after the {reader.full_name}")
    if not isinstance(datum, dict):  # pragma: no cover - readers hold record schemas only
        raise EnvelopeError("E101", f"{reader.full_name} did not decode to a record")
    for name in reader.filled:
        # fastavro hands out the reader schema's own default object (one list shared by every
        # record it decodes); a copy keeps a caller's append from changing all later records.
        datum[name] = copy.deepcopy(datum[name])
    return reader.full_name, datum


# --- loading -----------------------------------------------------------------------------------------


def _version(full_name: str) -> SchemaVersion:
    try:
        return _registry().current[full_name]
    except KeyError:
        raise KeyError(f"unknown schema {full_name}") from None


@cache
def _registry() -> _Registry:
    """Load, check and parse every schema once."""
    base = schema_dir()
    sources = {path.stem: _read_json(path) for path in sorted(base.glob("*.avsc"))}
    by_name: dict[str, tuple[SchemaVersion, ...]] = {}
    for name, raw in sources.items():
        if _full_name(raw, None) != name:
            raise ConfigError(f"{base / (name + '.avsc')}: defines {_full_name(raw, None)}, not {name}")
        history = _history(base / "history" / name, name)
        current = _build(name, len(history) + 1, True, _Expander(sources).expand(raw, None))
        by_name[name] = (*history, current)
    for stray in sorted((base / "history").glob("*")):
        if stray.name not in by_name:
            raise ConfigError(f"{stray}: history of a schema that does not exist")
    current_by_name = {name: vs[-1] for name, vs in by_name.items()}
    readers: dict[bytes, _Reader] = {}
    for name, vs in by_name.items():
        if not vs[-1].is_record:
            continue
        for v in vs:
            if v.fingerprint in readers:
                raise ConfigError(f"{name} version {v.version}: fingerprint already used by another schema")
            reader = None if v.current else vs[-1]
            filled = () if reader is None else _filled(v.parsed, reader.parsed)
            fast = _fast_decoder(v, reader)
            readers[v.fingerprint] = _Reader(name, v.parsed, None if reader is None else reader.parsed, fast, filled)
    headers = {name: MAGIC + v.fingerprint for name, v in current_by_name.items() if v.is_record}
    encoders = {name: _fast_encoder(current_by_name[name], header) for name, header in headers.items()}
    return _Registry(by_name, current_by_name, headers, readers, encoders)


def _filled(writer: dict[str, Any], reader: dict[str, Any]) -> tuple[str, ...]:
    """Reader fields (with defaults) that a writer's data lacks."""
    written = {f["name"] for f in writer["fields"]}
    return tuple(f["name"] for f in reader["fields"] if f["name"] not in written and "default" in f)


def _history(folder: Path, name: str) -> tuple[SchemaVersion, ...]:
    if not folder.is_dir():
        return ()
    files = sorted(folder.glob("*.avsc"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
    if [p.stem for p in files] != [str(i) for i in range(1, len(files) + 1)]:
        raise ConfigError(f"{folder}: history files must be named 1.avsc, 2.avsc, ... without gaps")
    out = []
    for number, path in enumerate(files, start=1):
        raw = _read_json(path)
        if _full_name(raw, None) != name:
            raise ConfigError(f"{path}: defines {_full_name(raw, None)}, not {name}")
        out.append(_build(name, number, False, _Expander({}).expand(raw, None)))
    return tuple(out)


def _build(name: str, number: int, current: bool, schema: dict[str, Any]) -> SchemaVersion:
    try:
        wire = cast(dict[str, Any], parse_schema(_strip_logical(schema), named_schemas={}))
        canonical = to_parsing_canonical_form(schema)
    except Exception as exc:
        raise ConfigError(f"{name} version {number}: invalid schema: {exc}") from exc
    digest = bytes.fromhex(_avro_fingerprint(canonical, "CRC-64-AVRO"))
    return SchemaVersion(name, number, current, schema, wire, digest)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as fh:
            raw = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("type") not in _NAMED:
        raise ConfigError(f"{path}: not a named Avro schema")
    return raw


def _full_name(schema: dict[str, Any], namespace: str | None) -> str:
    name = str(schema.get("name", ""))
    if "." in name:
        return name
    space = schema.get("namespace", namespace)
    return f"{space}.{name}" if space else name


def _strip_logical(schema: Any) -> Any:
    """Copy of ``schema`` without ``logicalType`` annotations: the wire form uses raw values."""
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k != "logicalType"}
    if "fields" in out:
        out["fields"] = [dict(f, type=_strip_logical(f["type"])) for f in out["fields"]]
    for key in ("type", "items", "values"):
        if isinstance(out.get(key), dict | list):
            out[key] = _strip_logical(out[key])
    return out


class _Expander:
    """Inlines references to other files' named types at first use (Avro forbids redefinition)."""

    def __init__(self, sources: dict[str, dict[str, Any]]) -> None:
        self._sources = sources
        self._defined: set[str] = set()
        self._stack: list[str] = []

    def expand(self, schema: Any, namespace: str | None) -> Any:
        if isinstance(schema, str):
            return self._reference(schema, namespace)
        if isinstance(schema, list):
            return [self.expand(s, namespace) for s in schema]
        if not isinstance(schema, dict):
            raise ConfigError(f"unexpected schema element {schema!r}")
        kind = schema.get("type")
        out = dict(schema)
        if kind in _NAMED:
            full = _full_name(schema, namespace)
            if full in self._defined:
                raise ConfigError(f"{full} is defined twice")
            self._defined.add(full)
            space = full.rpartition(".")[0] or None
            if kind in ("record", "error"):
                out["fields"] = [dict(f, type=self.expand(f["type"], space)) for f in schema["fields"]]
        elif kind == "array":
            out["items"] = self.expand(schema["items"], namespace)
        elif kind == "map":
            out["values"] = self.expand(schema["values"], namespace)
        elif isinstance(kind, dict | list):
            out["type"] = self.expand(kind, namespace)
        return out

    def _reference(self, ref: str, namespace: str | None) -> Any:
        if ref in _PRIMITIVES:
            return ref
        for full in _candidates(ref, namespace):
            if full in self._defined:
                return full
            if full in self._sources:
                if full in self._stack:
                    raise ConfigError(f"recursive reference to {full} across files")
                self._stack.append(full)
                try:
                    return self.expand(self._sources[full], None)
                finally:
                    self._stack.pop()
        raise ConfigError(f"unknown type {ref!r}")


def _candidates(ref: str, namespace: str | None) -> Iterator[str]:
    if "." not in ref and namespace:
        yield f"{namespace}.{ref}"
    yield ref


# --- compiled fast path --------------------------------------------------------------------------------
#
# Why: fastavro's Cython code walks the parsed schema for every datum (field dicts, union validation by
# trial, a BytesIO and a parse_schema check per call): ~20 µs to encode a TerminalRecord and ~4-5 µs to
# read a ReportEnvelope, about half of the report path without decryption. At load time each record
# schema is compiled into straight-line Python instead: one local per output piece and a single join,
# precomputed varint tables for lengths and small ints, 14-bit chunk tables for timestamps, and latin-1
# text as the output buffer so ASCII strings need no encoding (see _EncoderBuilder). Measured with
# fastavro 1.13 on the bench's records: TerminalRecord encode 20 µs -> 6.6 µs, ReportEnvelope decode
# 4.2 µs -> 2.4 µs (schemas.decode 5 µs -> 2.8 µs).
#
# fastavro stays the reference. Generated code accepts only what it handles exactly as fastavro does
# (exact Python types, in-range ints, ints and lengths in at most 5 varint bytes and longs in 10,
# non-negative lengths and block counts, booleans 0/1, valid UTF-8, no truncation or trailing bytes)
# and raises on anything else; `encode` and `decode` then redo the value with fastavro, so every other
# result and every error is fastavro's. A schema using constructs the generator does not handle
# (float, fixed, recursion, unions other than null plus one type, resolution other than top-level
# fields added with defaults or dropped) simply has no fast path. tests/unit/test_schemas_fastpath.py
# checks byte identity with fastavro for every record schema, current and historical, and that odd or
# corrupt input gets fastavro's outcome.

_Node = tuple[Any, ...]
"""A resolved schema: ("string",), ("enum", name, symbols), ("array", item), ("map", value),
("union", branches), ("record", name, ((field, node, has_default, default, aliases), ...))."""

_FAST_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "double", "bytes", "string"})
_CHUNK = 1 << 14
# The encoder writes latin-1 text (see _EncoderBuilder), so its tables hold the bytes as characters.
# _VT[z]: varint of z < 2**14; _CT[z]: the same 14 bits as two bytes with continuation bits, so the
# varint of any z is _CT[z & 0x3FFF] + _CT[(z >> 14) & 0x3FFF] + ... + _VT[rest]. (~2.5 MB together.)
_VT = tuple(chr(z) if z < 128 else chr(z & 127 | 128) + chr(z >> 7) for z in range(_CHUNK))
_CT = tuple(chr(z & 127 | 128) + chr(z >> 7 | 128) for z in range(_CHUNK))
_LEN_TABLE = _CHUNK // 2
_LENT = tuple(_VT[n << 1] for n in range(_LEN_TABLE))
"""Avro long (zigzag varint) of a length or count n < _LEN_TABLE."""
_HALF = tuple(None if b & 1 else b >> 1 for b in range(128))
"""Non-negative Avro long of a one-byte varint (a short length or an index); None if negative."""
_INT32 = 1 << 31
_INT64 = 1 << 63
_DOUBLE = struct.Struct("<d")


class _Refuse(Exception):
    """Raised by generated code for anything it leaves to fastavro."""


class _NoFastPath(Exception):
    """The schema uses something the generator does not compile."""


def _varint(z: int) -> str:
    """Varint of a non-negative ``z`` (zigzag already applied), as latin-1 text."""
    out = []
    while z >= _CHUNK:
        out.append(_CT[z & 0x3FFF])
        z >>= 14
    out.append(_VT[z])
    return "".join(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(unsigned varint at ``pos``, position after it) for an int, length, count or index.

    Refuses more than 5 bytes or 32 bits: fastavro reads an int from 5 bytes at most into 32 bits,
    so only these are read alike by both.
    """
    z = shift = 0
    while True:
        b = data[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            if z >> 32:
                raise _Refuse
            return z, pos
        shift += 7
        if shift == 35:
            raise _Refuse


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """(unsigned varint at ``pos``, position after it) for a long: 10 bytes and 64 bits at most."""
    z = shift = 0
    while True:
        b = data[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            if z >> 64:
                raise _Refuse
            return z, pos
        shift += 7
        if shift == 70:
            raise _Refuse


def _node(schema: Any, named: dict[str, _Node], namespace: str | None, open_: set[str]) -> _Node:
    """Resolve a (logical-type-free) self-contained schema into nested tuples."""
    if isinstance(schema, list):
        return ("union", tuple(_node(s, named, namespace, open_) for s in schema))
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            if schema not in _FAST_PRIMITIVES:
                raise _NoFastPath(schema)
            return (schema,)
        for full in _candidates(schema, namespace):
            if full in open_:
                raise _NoFastPath(f"recursive {full}")
            if full in named:
                return named[full]
        raise _NoFastPath(f"unknown {schema}")
    if not isinstance(schema, dict):
        raise _NoFastPath(repr(schema))
    kind = schema.get("type")
    if isinstance(kind, dict | list) or (isinstance(kind, str) and kind not in _NAMED | {"array", "map"}):
        return _node(kind, named, namespace, open_)
    if kind == "array":
        return ("array", _node(schema["items"], named, namespace, open_))
    if kind == "map":
        return ("map", _node(schema["values"], named, namespace, open_))
    full = _full_name(schema, namespace)
    if kind == "enum":
        node: _Node = ("enum", full, tuple(schema["symbols"]))
    elif kind in ("record", "error"):
        open_.add(full)
        space = full.rpartition(".")[0] or None
        node = ("record", full, tuple(
            (f["name"], _node(f["type"], named, space, open_), "default" in f, f.get("default"),
             tuple(f.get("aliases", ())))
            for f in schema["fields"]
        ))  # fmt: skip
        open_.discard(full)
    else:
        raise _NoFastPath(str(kind))
    named[full] = node
    return node


def _check_node(node: _Node) -> None:
    """_NoFastPath for unions other than null + one type, and for zero-width array/map items."""
    kind = node[0]
    if kind == "union":
        branches = node[1]
        kinds = [b[0] for b in branches]
        if len(branches) != 2 or kinds.count("null") != 1 or "union" in kinds:
            raise _NoFastPath("union")
        for b in branches:
            _check_node(b)
    elif kind in ("array", "map"):
        if _min_width(node[1]) == 0:
            raise _NoFastPath("zero-width items")
        _check_node(node[1])
    elif kind == "record":
        for field in node[2]:
            _check_node(field[1])


def _min_width(node: _Node) -> int:
    kind = node[0]
    if kind == "null":
        return 0
    if kind == "record":
        return sum(_min_width(f[1]) for f in node[2])
    return 8 if kind == "double" else 1


class _Source:
    """Generated source and the constants it refers to."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {
            "_Refuse": _Refuse, "_VT": _VT, "_CT": _CT, "_LENT": _LENT, "_HALF": _HALF, "_varint": _varint,
            "_read_varint": _read_varint, "_read_long": _read_long, "_pack_double": _DOUBLE.pack,
            "_unpack_double": _DOUBLE.unpack_from, "_deepcopy": copy.deepcopy,
        }  # fmt: skip
        self.functions: list[str] = []
        self._count = 0

    def local(self, prefix: str = "t") -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def const(self, value: Any) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name

    def compile(self, entry: str) -> Any:
        namespace = dict(self.names)
        exec("\n\n".join(self.functions), namespace)  # generated from the schema files only
        return namespace[entry]


class _EncoderBuilder(_Source):
    """Generates an encoder that builds the value as latin-1 text and encodes it once at the end.

    Why text: a str of ASCII characters is its own UTF-8 and latin-1 encoding, so an ASCII string
    value goes into the output as it is (no .encode() and no bytes object per field); every other
    piece (varints, doubles, non-ASCII strings as UTF-8) is written as the latin-1 characters of its
    bytes. The one ``.encode("latin-1")`` at the end is a copy.
    """

    def record_function(self, node: _Node, header: bytes) -> str:
        body: list[str] = []
        slots = self.fields(node, "d", body, 1)
        return self.entry("_encode_", "d", [*body, f"    return {self.value_bytes(header, slots)}"])

    def entry(self, prefix: str, params: str, body: list[str]) -> str:
        """Add a function of ``params`` that refuses a ``d`` other than a dict, then runs ``body``."""
        name = self.local(prefix)
        head = [f"def {name}({params}):", "    if type(d) is not dict:", "        raise _Refuse"]
        self.functions.append("\n".join([*head, *body]))
        return name

    def value_bytes(self, header: bytes, slots: list[str]) -> str:
        """The expression joining ``header`` and the pieces in ``slots`` into the value's bytes."""
        return f"''.join(({self.const(header.decode('latin-1'))}, {', '.join(slots)})).encode('latin-1')"

    def fields(self, node: _Node, value: str, out: list[str], depth: int) -> list[str]:
        slots: list[str] = []
        for field in node[2]:
            slots += self.field(field, value, out, depth)
        return slots

    def field(self, field: tuple[Any, ...], value: str, out: list[str], depth: int) -> list[str]:
        """Statements reading one record field from the dict ``value`` and writing it."""
        pad = "    " * depth
        name, child, has_default, default, _ = field
        local = self.local("v")
        if has_default:
            out.append(f"{pad}{local} = {value}.get({name!r}, {self.const(default)})")
        elif child[0] == "null" or (child[0] == "union" and any(b[0] == "null" for b in child[1])):
            out.append(f"{pad}{local} = {value}.get({name!r})")
        else:
            out.append(f"{pad}{local} = {value}[{name!r}]")
        return self.value(child, local, out, depth)

    def view_function(self, primary: _Node, header: bytes, view: _Node, view_header: bytes,
                      varying: frozenset[str]) -> str:  # fmt: skip
        """``f(d, variants) -> (primary bytes, [view bytes per variant])``; see `ViewEncoder`.

        A view field also in the primary (same name, type and default) reuses the primary's
        pieces; fields named in ``varying`` are written once per variant; the rest once from ``d``.
        """
        body: list[str] = []
        primary_slots: dict[str, list[str]] = {}
        primary_fields = {f[0]: f[:4] for f in primary[2]}
        joined: list[str] = []
        for field in primary[2]:
            primary_slots[field[0]] = self.field(field, "d", body, 1)
            joined += primary_slots[field[0]]
        loop: list[str] = []
        pieces: list[tuple[bool, str]] = [(False, self.const(view_header.decode("latin-1")))]  # (varies?, local)
        for field in view[2]:
            if field[0] in varying:
                pieces += [(True, s) for s in self.field(field, "w", loop, 2)]
            elif primary_fields.get(field[0]) == field[:4]:
                pieces += [(False, s) for s in primary_slots[field[0]]]
            else:
                pieces += [(False, s) for s in self.field(field, "d", body, 1)]
        # Join each run of pieces that do not vary once, outside the loop.
        parts: list[str] = []
        run: list[str] = []
        for varies, local in [*pieces, (True, "")]:
            if not varies:
                run.append(local)
                continue
            if run:
                name = self.local("r")
                body.append(f"    {name} = ''.join(({', '.join(run)},))")
                parts.append(name)
                run = []
            if local:
                parts.append(local)
        return self.entry("_view_", "d, variants", [
            *body,
            f"    p = {self.value_bytes(header, joined)}",
            "    out = []",
            "    for w in variants:",
            f"        if type(w) is not dict or len(w) != {len(varying)}:",
            "            raise _Refuse",
            *loop,
            f"        out.append(''.join(({', '.join(parts)},)).encode('latin-1'))",
            "    return p, out",
        ])  # fmt: skip

    def value(self, node: _Node, v: str, out: list[str], depth: int) -> list[str]:
        """Statements writing ``v`` as ``node``; returns the locals holding the output pieces."""
        pad = "    " * depth
        kind = node[0]
        if kind == "null":
            out += [f"{pad}if {v} is not None:", f"{pad}    raise _Refuse"]
            return []
        if kind == "boolean":
            s = self.local("s")
            out += [f"{pad}if {v} is True:", f"{pad}    {s} = '\\x01'", f"{pad}elif {v} is False:",
                    f"{pad}    {s} = '\\x00'", f"{pad}else:", f"{pad}    raise _Refuse"]  # fmt: skip
            return [s]
        if kind in ("int", "long"):
            bound = _INT32 if kind == "int" else _INT64
            s1, s2, s3 = self.local("s"), self.local("s"), self.local("s")
            out += [
                f"{pad}if type({v}) is not int or not {-bound} <= {v} < {bound}:",
                f"{pad}    raise _Refuse",
                f"{pad}{v} = {v} << 1 if {v} >= 0 else ~({v} << 1)",  # zigzag
                f"{pad}if {v} < 16384:",
                f"{pad}    {s1} = _VT[{v}]; {s2} = ''" + ("" if kind == "int" else f"; {s3} = ''"),
                f"{pad}elif {v} < 268435456:",
                f"{pad}    {s1} = _CT[{v} & 16383]; {s2} = _VT[{v} >> 14]" + ("" if kind == "int" else f"; {s3} = ''"),
            ]  # fmt: skip
            if kind == "int":  # below 2**32 after zigzag: one more chunk at most
                out += [
                    f"{pad}else:",
                    f"{pad}    {s1} = _CT[{v} & 16383]; {s2} = _CT[{v} >> 14 & 16383] + _VT[{v} >> 28]",
                ]
                return [s1, s2]
            out += [
                f"{pad}elif {v} < 4398046511104:",  # 2**42: up to six bytes, e.g. every timestamp-millis
                f"{pad}    {s1} = _CT[{v} & 16383]; {s2} = _CT[{v} >> 14 & 16383]; {s3} = _VT[{v} >> 28]",
                f"{pad}else:",
                f"{pad}    {s1} = _varint({v}); {s2} = {s3} = ''",
            ]  # fmt: skip
            return [s1, s2, s3]
        if kind == "double":
            s = self.local("s")
            out += [f"{pad}if type({v}) is not float:", f"{pad}    raise _Refuse",
                    f"{pad}{s} = _pack_double({v}).decode('latin-1')"]  # fmt: skip
            return [s]
        if kind in ("string", "bytes"):
            s = self.local("s")
            if kind == "string":
                out += [f"{pad}if type({v}) is not str:", f"{pad}    raise _Refuse", f"{pad}if not {v}.isascii():",
                        f"{pad}    {v} = {v}.encode().decode('latin-1')"]  # fmt: skip
            else:
                out += [f"{pad}if type({v}) is not bytes:", f"{pad}    raise _Refuse",
                        f"{pad}{v} = {v}.decode('latin-1')"]  # fmt: skip
            # IndexError from 8 KiB on: such values go to fastavro.
            out.append(f"{pad}{s} = _LENT[len({v})]")
            return [s, v]
        if kind == "enum":
            s = self.local("s")
            table = self.const({symbol: _VT[2 * i] for i, symbol in enumerate(node[2])})
            out += [f"{pad}if type({v}) is not str:", f"{pad}    raise _Refuse", f"{pad}{s} = {table}[{v}]"]
            return [s]
        if kind in ("array", "map"):
            s = self.local("s")
            helper = self.block_function(node)
            py_type = "list" if kind == "array" else "dict"
            out += [f"{pad}if type({v}) is not {py_type}:", f"{pad}    raise _Refuse"]
            if node == ("array", ("string",)):
                # Inline the usual short arrays (IPs, MACs, flags, warnings: none or one), not a call.
                x, s2, s3 = self.local("x"), self.local("s"), self.local("s")
                out += [
                    f"{pad}if not {v}:",
                    f"{pad}    {s} = '\\x00'; {s2} = {x} = {s3} = ''",
                    f"{pad}elif len({v}) == 1 and type({x} := {v}[0]) is str and {x}.isascii():",
                    f"{pad}    {s} = '\\x02'; {s2} = _LENT[len({x})]; {s3} = '\\x00'",
                    f"{pad}else:",
                    f"{pad}    {s} = {helper}({v}); {s2} = {x} = {s3} = ''",
                ]  # fmt: skip
                return [s, s2, x, s3]
            out.append(f"{pad}{s} = {helper}({v}) if {v} else '\\x00'")
            return [s]
        if kind == "record":
            out += [f"{pad}if type({v}) is not dict:", f"{pad}    raise _Refuse"]
            return self.fields(node, v, out, depth)
        if kind == "union":
            null_index = [b[0] for b in node[1]].index("null")
            other = node[1][1 - null_index]
            branch: list[str] = []
            slots = self.value(other, v, branch, depth + 1)
            s = self.local("s")
            empty = "".join(f"{x} = " for x in slots)
            out += [f"{pad}if {v} is None:", f"{pad}    {s} = {self.const(_VT[2 * null_index])}"]
            if slots:
                out.append(f"{pad}    {empty}''")
            out += [f"{pad}else:", *branch, f"{pad}    {s} = {self.const(_VT[2 * (1 - null_index)])}"]
            return [s, *slots]
        raise _NoFastPath(kind)  # pragma: no cover - _node admits nothing else

    def block_function(self, node: _Node) -> str:
        """A function writing a non-empty list (array) or dict (map) as one block plus the end marker."""
        name = self.local("_block_")
        body: list[str] = []
        if node[0] == "array":
            slots = self.value(node[1], "x", body, 2)
            loop = ["    for x in v:"]
        else:
            key_slots = self.value(("string",), "k", body, 2)
            slots = key_slots + self.value(node[1], "x", body, 2)
            loop = ["    for k, x in v.items():"]
        self.functions.append("\n".join([
            f"def {name}(v):",
            "    n = len(v)",
            f"    out = [_LENT[n] if n < {_LEN_TABLE} else _varint(n << 1)]",
            *loop,
            *body,
            f"        out += ({', '.join(slots)},)" if slots else "        pass",
            "    out.append('\\x00')",
            "    return ''.join(out)",
        ]))  # fmt: skip
        return name


class _DecoderBuilder(_Source):
    def record_function(self, writer: _Node, reader: _Node | None, reader_parsed: dict[str, Any] | None) -> str:
        body: list[str] = []
        items: list[str] = []
        if reader is None:
            items = self.fields(writer, body, 1)
        else:
            if reader[0] != "record" or reader[1] != writer[1]:
                raise _NoFastPath("record names differ")
            assert reader_parsed is not None
            reader_fields = {f[0]: f for f in reader[2]}
            if any(f[4] for f in reader[2]):
                raise _NoFastPath("aliases")
            for name, child, *_ in writer[2]:
                local = self.local("v")
                self.value(child, local, body, 1)
                if name in reader_fields:
                    if reader_fields.pop(name)[1] != child:
                        raise _NoFastPath(f"{name} changed type")
                    items.append(f"{name!r}: {local}")
            defaults = {f["name"]: f.get("default") for f in reader_parsed["fields"]}
            for name, field in reader_fields.items():
                if not field[2]:
                    raise _NoFastPath(f"{name} has no default")
                items.append(f"{name!r}: {self.default(defaults[name])}")
        name = self.local("_decode_")
        self.functions.append("\n".join([
            f"def {name}(data):",
            f"    p = {HEADER_LEN}",
            "    end = len(data)",
            *body,
            "    if p != end:",
            "        raise _Refuse",
            f"    return {{{', '.join(items)}}}",
        ]))  # fmt: skip
        return name

    def default(self, value: Any) -> str:
        """A fresh copy per record: fastavro hands out the schema's own default object (one list shared
        by every record it decodes), so appending to one record's list would change all later ones."""
        if value is None or isinstance(value, bool | int | float | str | bytes):
            return self.const(value)
        if value == [] and isinstance(value, list):
            return "[]"
        if value == {} and isinstance(value, dict):
            return "{}"
        return f"_deepcopy({self.const(value)})"

    def fields(self, node: _Node, out: list[str], depth: int) -> list[str]:
        items = []
        for name, child, *_ in node[2]:
            local = self.local("v")
            self.value(child, local, out, depth)
            items.append(f"{name!r}: {local}")
        return items

    def length(self, target: str, out: list[str], pad: str) -> None:
        """Read a non-negative Avro long (a length or block count) into ``target``."""
        out += [
            f"{pad}{target} = data[p]",
            f"{pad}if {target} < 128:",
            f"{pad}    p += 1",
            f"{pad}else:",
            f"{pad}    {target}, p = _read_varint(data, p)",
            f"{pad}if {target} & 1:",
            f"{pad}    raise _Refuse",
            f"{pad}{target} >>= 1",
        ]  # fmt: skip

    def half(self, target: str, out: list[str], pad: str) -> None:
        """Read a length or index into ``target``, None for a negative one-byte value (so that any
        use of it fails); never use it for a block count, where None would read as the end."""
        out += [
            f"{pad}{target} = data[p]",
            f"{pad}if {target} < 128:",
            f"{pad}    p += 1",
            f"{pad}    {target} = _HALF[{target}]",
            f"{pad}else:",
            f"{pad}    {target}, p = _read_varint(data, p)",
            f"{pad}    if {target} & 1:",
            f"{pad}        raise _Refuse",
            f"{pad}    {target} >>= 1",
        ]  # fmt: skip

    def value(self, node: _Node, v: str, out: list[str], depth: int) -> None:
        """Statements reading a ``node`` at ``p`` into local ``v``."""
        pad = "    " * depth
        kind = node[0]
        if kind == "null":
            out.append(f"{pad}{v} = None")
        elif kind == "boolean":
            out += [f"{pad}{v} = data[p]", f"{pad}p += 1", f"{pad}if {v} > 1:", f"{pad}    raise _Refuse",
                    f"{pad}{v} = {v} == 1"]  # fmt: skip
        elif kind in ("int", "long"):
            out += [
                f"{pad}{v} = data[p]",
                f"{pad}if {v} < 128:",
                f"{pad}    p += 1",
                f"{pad}else:",
                f"{pad}    {v}, p = {'_read_varint' if kind == 'int' else '_read_long'}(data, p)",
                f"{pad}{v} = ({v} >> 1) ^ -({v} & 1)",
            ]  # fmt: skip
        elif kind == "double":
            out += [f"{pad}{v} = _unpack_double(data, p)[0]", f"{pad}p += 8"]
        elif kind in ("string", "bytes"):
            q = self.local("q")
            self.half(q, out, pad)
            # No bounds check: a slice past the end reads short, but then p > end, and the next read
            # (each reads a byte at least) or the final p == end check refuses the value.
            out.append(f"{pad}{q} += p")
            out.append(f"{pad}{v} = data[p:{q}].decode()" if kind == "string" else f"{pad}{v} = data[p:{q}]")
            out.append(f"{pad}p = {q}")
        elif kind == "enum":
            self.half(v, out, pad)
            out.append(f"{pad}{v} = {self.const(node[2])}[{v}]")
        elif kind in ("array", "map"):
            count, x = self.local("c"), self.local("x")
            body: list[str] = []
            if kind == "array":
                self.value(node[1], x, body, depth + 2)
                store = f"{pad}        {v}.append({x})"
                init = f"{pad}{v} = []"
            else:
                key = self.local("k")
                self.value(("string",), key, body, depth + 2)
                self.value(node[1], x, body, depth + 2)
                store = f"{pad}        {v}[{key}] = {x}"
                init = f"{pad}{v} = {{}}"
            out.append(init)
            out.append(f"{pad}while True:")
            self.length(count, out, pad + "    ")
            out += [
                f"{pad}    if not {count}:",
                f"{pad}        break",
                f"{pad}    if {count} > end - p:",  # every item takes a byte at least: truncated
                f"{pad}        raise _Refuse",
                f"{pad}    for _ in range({count}):",
                *body,
                store,
            ]  # fmt: skip
        elif kind == "record":
            items = self.fields(node, out, depth)
            out.append(f"{pad}{v} = {{{', '.join(items)}}}")
        elif kind == "union":
            index = self.local("i")
            self.half(index, out, pad)
            for i, branch in enumerate(node[1]):
                out.append(f"{pad}{'if' if i == 0 else 'elif'} {index} == {i}:")
                self.value(branch, v, out, depth + 1)
            out += [f"{pad}else:", f"{pad}    raise _Refuse"]
        else:  # pragma: no cover - _node admits nothing else
            raise _NoFastPath(kind)


def _fast_node(version: SchemaVersion) -> _Node:
    node = _node(_strip_logical(version.schema), {}, None, set())
    _check_node(node)
    return node


def _fast_encoder(version: SchemaVersion, header: bytes) -> Callable[[dict[str, Any]], bytes] | None:
    try:
        builder = _EncoderBuilder()
        entry = builder.record_function(_fast_node(version), header)
    except _NoFastPath:
        return None
    return cast(Callable[[dict[str, Any]], bytes], builder.compile(entry))


def _fast_decoder(writer: SchemaVersion, reader: SchemaVersion | None) -> Callable[[bytes], dict[str, Any]] | None:
    try:
        builder = _DecoderBuilder()
        entry = builder.record_function(
            _fast_node(writer),
            None if reader is None else _fast_node(reader),
            None if reader is None else reader.parsed,
        )
    except _NoFastPath:
        return None
    return cast(Callable[[bytes], dict[str, Any]], builder.compile(entry))
