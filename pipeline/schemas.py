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

import io
import json
import os
from collections.abc import Iterator
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
    """How to decode one writer fingerprint: writer schema, reader schema (None: same), result name."""

    full_name: str
    writer: dict[str, Any]
    reader: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class _Registry:
    versions: dict[str, tuple[SchemaVersion, ...]]
    current: dict[str, SchemaVersion]
    headers: dict[str, bytes]
    readers: dict[bytes, _Reader]


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
    buf = io.BytesIO()
    buf.write(header)
    try:
        schemaless_writer(buf, reg.current[full_name].parsed, datum)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        raise ValueError(f"{full_name}: datum does not fit the schema: {exc!r}") from exc
    return buf.getvalue()


def decode(data: bytes | None, expected: str | None = None) -> tuple[str, dict[str, Any]]:
    """Decode an Avro single-object value into ``(record full name, datum)`` in the current schema.

    The writer schema is found by fingerprint, current or historical; historical data is resolved
    into the current schema. With ``expected``, a value of any other record is rejected. Every
    malformed input (None, bad marker, unknown fingerprint, truncated or corrupt body, trailing
    bytes) raises EnvelopeError E101 and nothing else. KeyError if ``expected`` is not a known record.
    """
    reg = _registry()
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
            readers[v.fingerprint] = _Reader(name, v.parsed, None if v.current else vs[-1].parsed)
    headers = {name: MAGIC + v.fingerprint for name, v in current_by_name.items() if v.is_record}
    return _Registry(by_name, current_by_name, headers, readers)


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
