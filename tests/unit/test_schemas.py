"""Schemas in schemas/ and the single-object wire format of pipeline.schemas."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import load_schema, to_parsing_canonical_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import schemas
from pipeline.errors import ConfigError, EnvelopeError

CJK = re.compile(r"[\u4e00-\u9fff]")
ENVELOPE = "lookthrough.ReportEnvelope"
TERMINAL = "lookthrough.TerminalRecord"
RECORDS = [n for n in schemas.names() if schemas.versions(n)[-1].is_record]
HISTORICAL = [v for n in schemas.names() for v in schemas.versions(n) if not v.current]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- a hypothesis strategy for any Avro schema (raw values: timestamp-millis is a long) -----------


def from_schema(schema: Any, named: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Strategy producing data for a self-contained Avro JSON schema."""
    named = {} if named is None else named
    if isinstance(schema, list):
        return st.one_of(*[from_schema(s, named) for s in schema])
    if isinstance(schema, str):
        if schema in named:
            return from_schema(named[schema], named)
        schema = {"type": schema}
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return from_schema(kind, named)
    if kind == "record":
        full = schema["name"] if "." in schema["name"] else f"{schema.get('namespace')}.{schema['name']}"
        named[full] = schema
        return st.fixed_dictionaries({f["name"]: from_schema(f["type"], named) for f in schema["fields"]})
    if kind == "enum":
        named[f"{schema['namespace']}.{schema['name']}"] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(from_schema(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), from_schema(schema["values"], named), max_size=3)
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "double": st.floats(allow_nan=False),
        "bytes": st.binary(max_size=16),
        "string": st.text(max_size=16),
    }[kind]


def body(parsed: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, datum)
    return buf.getvalue()


def resolved(datum: dict[str, Any], reader: dict[str, Any]) -> dict[str, Any]:
    """What a reader schema makes of ``datum``: dropped fields gone, new fields at their defaults."""
    return {f["name"]: datum[f["name"]] if f["name"] in datum else f["default"] for f in reader["fields"]}


# --- the files ------------------------------------------------------------------------------------


def schema_files() -> list[Path]:
    base = schemas.schema_dir()
    return sorted(base.glob("*.avsc")) + sorted(base.glob("history/*/*.avsc"))


def named_types(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, list):
        for s in schema:
            yield from named_types(s)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed"):
            yield schema
        for key in ("type", "items", "values"):
            yield from named_types(schema.get(key))
        for field in schema.get("fields", []):
            yield from named_types(field["type"])


def test_schema_set() -> None:
    expected = {"ReportEnvelope", "TerminalRecord", "ExchangeRecord", "DeadLetter", "Feedback", "Vendor",
                "App", "Broker", "Account", "Subscriber", "Exchange", "ReporterType", "FeedbackStatus",
                "SourcePosition", "Provenance"}
    assert set(schemas.names()) == {f"lookthrough.{n}" for n in expected}
    assert {v.full_name for v in HISTORICAL} >= {ENVELOPE, TERMINAL}


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: str(p.relative_to(schemas.schema_dir())))
def test_file_parses_is_named_and_documented(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["namespace"] == "lookthrough"
    full = f"{raw['namespace']}.{raw['name']}"
    assert full == (path.stem if path.parent == schemas.schema_dir() else path.parent.name)
    for named in named_types(raw):
        assert CJK.search(named.get("doc", "")), f"{named['name']} lacks a Chinese doc"
        assert " / " in named["doc"]
        for field in named.get("fields", []):
            assert CJK.search(field.get("doc", "")), f"{named['name']}.{field['name']} lacks a Chinese doc"
            assert " / " in field["doc"]
    if path.parent == schemas.schema_dir():
        # fastavro's own loader resolves references to <full name>.avsc and agrees on the fingerprint.
        loaded = load_schema(str(path))
        digest = fastavro_fingerprint(to_parsing_canonical_form(loaded), "CRC-64-AVRO")
        assert digest == schemas.fingerprint_hex(full)
    else:
        fastavro.parse_schema(raw, named_schemas={})  # history files are self-contained


def test_exchange_record_hides_investor() -> None:
    fields = {f["name"] for f in schemas.schema_json("lookthrough.ExchangeRecord")["fields"]}
    assert not fields & {"investor_id", "user_id"}
    assert {"exchange", "trading_code", "member_id", "provenance", "device_fingerprint"} <= fields


def test_wire_schema_has_no_logical_types_but_files_do() -> None:
    assert "timestamp-millis" in json.dumps(schemas.schema_json(TERMINAL))
    assert "logicalType" not in json.dumps(schemas.parsed(TERMINAL), default=str)


# --- fingerprints, encode, decode ---------------------------------------------------------------------


def test_fingerprint_and_header() -> None:
    fp = schemas.fingerprint(ENVELOPE)
    assert len(fp) == 8 and schemas.fingerprint_hex(ENVELOPE) == fp.hex()
    datum = {"report_id": "r1", "reporter_type": "FUTURES_COMPANY", "reporter_id": "0101",
             "broker_id": "0101", "investor_id": "8800001", "user_id": "8800001", "trading_day": "20250102",
             "received_at": 1735779600123, "report": "V@1@x@1@1.2.3.4@1@2025-01-02 09:00:00@A@",
             "correction_of": None}
    data = schemas.encode(ENVELOPE, datum)
    assert data[:10] == b"\xc3\x01" + fp
    assert schemas.writer_fingerprint_hex(data) == fp.hex()
    name, out = schemas.decode(data, ENVELOPE)
    assert (name, out) == (ENVELOPE, datum)
    assert type(out["received_at"]) is int
    del datum["correction_of"]  # nullable fields may be omitted
    assert schemas.decode(schemas.encode(ENVELOPE, datum))[1]["correction_of"] is None


def test_encode_and_decode_misuse() -> None:
    with pytest.raises(ValueError):
        schemas.encode(ENVELOPE, {"report_id": "r1"})
    with pytest.raises(KeyError):
        schemas.encode("lookthrough.Nope", {})
    with pytest.raises(KeyError):
        schemas.encode("lookthrough.ReporterType", {})  # not a record
    with pytest.raises(KeyError):
        schemas.decode(b"", "lookthrough.Nope")
    with pytest.raises(KeyError):
        schemas.fingerprint("lookthrough.Nope")


def envelopes() -> st.SearchStrategy[dict[str, Any]]:
    ids = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=64)
    return st.fixed_dictionaries({
        "report_id": ids, "reporter_type": st.sampled_from(["FUTURES_COMPANY", "EXCHANGE"]),
        "reporter_id": ids, "broker_id": ids, "investor_id": ids, "user_id": ids,
        "trading_day": st.dates().map(lambda d: d.strftime("%Y%m%d")),
        "received_at": st.integers(0, 2**45), "report": st.text(max_size=300),
        "correction_of": st.none() | ids,
    })


@SETTINGS
@given(envelopes())
def test_envelope_round_trip(datum: dict[str, Any]) -> None:
    assert schemas.decode(schemas.encode(ENVELOPE, datum), ENVELOPE) == (ENVELOPE, datum)


@pytest.mark.parametrize("name", RECORDS)
@SETTINGS
@given(data=st.data())
def test_every_record_round_trips(name: str, data: st.DataObject) -> None:
    datum = data.draw(from_schema(schemas.schema_json(name)))
    encoded = schemas.encode(name, datum)
    assert schemas.decode(encoded) == (name, datum)
    with pytest.raises(EnvelopeError):
        schemas.decode(encoded, ENVELOPE if name != ENVELOPE else TERMINAL)


@pytest.mark.parametrize("old", HISTORICAL, ids=lambda v: f"{v.full_name}-v{v.version}")
@SETTINGS
@given(data=st.data())
def test_historical_data_reads_as_current(old: schemas.SchemaVersion, data: st.DataObject) -> None:
    current = schemas.versions(old.full_name)[-1]
    datum = data.draw(from_schema(old.schema))
    payload = body(old.parsed, datum)
    expected = resolved(datum, current.schema)
    assert fastavro.schemaless_reader(io.BytesIO(payload), old.parsed, current.parsed) == expected
    single = b"\xc3\x01" + old.fingerprint + payload
    assert schemas.decode(single) == (old.full_name, expected)
    assert schemas.decode(single, old.full_name) == (old.full_name, expected)


@pytest.mark.parametrize("old", HISTORICAL, ids=lambda v: f"{v.full_name}-v{v.version}")
def test_current_schema_can_read_every_historical_one(old: schemas.SchemaVersion) -> None:
    current = schemas.versions(old.full_name)[-1]
    assert old.fingerprint != current.fingerprint
    result = ReaderWriterCompatibilityChecker().get_compatibility(  # type: ignore[no-untyped-call]
        avro.schema.parse(json.dumps(current.schema)), avro.schema.parse(json.dumps(old.schema))
    )
    assert result.compatibility is SchemaCompatibilityType.compatible, result.messages


# --- hostile input: only E101 ---------------------------------------------------------------------------


def assert_e101_or_record(data: bytes) -> None:
    try:
        name, datum = schemas.decode(data)
    except EnvelopeError as exc:
        assert exc.code == "E101"
    else:
        assert name in RECORDS and isinstance(datum, dict)


KNOWN_FPS = sorted({v.fingerprint for n in RECORDS for v in schemas.versions(n)})


@SETTINGS
@given(st.binary(max_size=300) | st.builds(lambda fp, b: b"\xc3\x01" + fp + b, st.sampled_from(KNOWN_FPS),
                                           st.binary(max_size=300)))
def test_decode_arbitrary_bytes_raises_only_e101(data: bytes) -> None:
    assert_e101_or_record(data)


@SETTINGS
@given(data=st.data())
def test_decode_mutated_records_raises_only_e101(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from([ENVELOPE, TERMINAL]))
    valid = schemas.encode(name, data.draw(from_schema(schemas.schema_json(name))))
    cut = data.draw(st.integers(0, len(valid) - 1))
    with pytest.raises(EnvelopeError, match="E101"):
        schemas.decode(valid[:cut])
    with pytest.raises(EnvelopeError, match="E101"):
        schemas.decode(valid + data.draw(st.binary(min_size=1, max_size=8)))
    pos = data.draw(st.integers(0, len(valid) - 1))
    flipped = bytes([valid[pos] ^ data.draw(st.integers(1, 255))])
    assert_e101_or_record(valid[:pos] + flipped + valid[pos + 1 :])


GARBAGE = [None, "str", b"", b"\xc3\x01", b"\xc3\x02" + bytes(8), b"\xc3\x01" + bytes(8), bytearray(12)]


@pytest.mark.parametrize("value", GARBAGE)
def test_decode_specific_garbage(value: Any) -> None:
    with pytest.raises(EnvelopeError) as info:
        schemas.decode(value)
    assert info.value.code == "E101"


# --- loader and data files ----------------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(schemas.SCHEMA_DIR_ENV, str(tmp_path))
    schemas._registry.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    schemas._registry.cache_clear()


def write(path: Path, schema: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema), encoding="utf-8")


POINT = {"type": "record", "name": "Point", "namespace": "t", "doc": "点 / point",
         "fields": [{"name": "x", "type": "int", "doc": "横 / x"}]}


def test_loader_ignores_data_and_checks_names(scratch: Path) -> None:
    write(scratch / "t.Point.avsc", POINT)
    write(scratch / "profile" / "codes.json", {"E101": "bad"})
    write(scratch / "profile" / "t.Other.avsc", POINT)
    assert schemas.names() == ("t.Point",)
    assert schemas.read_data_file("profile/codes.json") == {"E101": "bad"}
    with pytest.raises(ConfigError):
        schemas.read_data_file("../outside.json")
    with pytest.raises(ConfigError):
        schemas.read_data_file("profile/missing.json")
    write(scratch / "t.Wrong.avsc", POINT)
    schemas._registry.cache_clear()
    with pytest.raises(ConfigError, match=r"not t\.Wrong"):
        schemas.names()


def test_loader_rejects_history_gaps_and_references(scratch: Path) -> None:
    write(scratch / "t.Point.avsc", POINT)
    write(scratch / "history" / "t.Point" / "2.avsc", POINT)
    with pytest.raises(ConfigError, match="without gaps"):
        schemas.names()
    (scratch / "history" / "t.Point" / "2.avsc").unlink()
    write(scratch / "history" / "t.Point" / "1.avsc",
          dict(POINT, fields=[{"name": "x", "type": "t.Shared", "doc": "横 / x"}]))
    schemas._registry.cache_clear()
    with pytest.raises(ConfigError, match="unknown type"):
        schemas.names()
