"""The compiled Avro fast path of pipeline.schemas against fastavro, its reference.

For every record schema, current and historical: the generated encoder writes exactly fastavro's
bytes, the generated decoder reads exactly fastavro's datum (same values, same key order), and on
anything else (wrong Python types, out-of-range numbers, corrupt or truncated bodies) the fast path
refuses, so `schemas.encode` / `schemas.decode` give fastavro's result or error.
"""

from __future__ import annotations

import io
import math
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline import schemas
from pipeline.errors import EnvelopeError

RECORDS = [n for n in schemas.names() if schemas.versions(n)[-1].is_record]
VERSIONS = [v for n in RECORDS for v in schemas.versions(n)]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REG = schemas._registry()

# Values around every varint width and the int/long limits, and text that is not plain ASCII.
EDGE_INTS = [0, 1, -1, 63, -64, 64, -65, 8191, 8192, 2**13, 2**14, 2**21, 2**27, 2**28, 2**35, 2**41, 2**42,
             2**62, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 1_763_600_400_279]  # fmt: skip
TEXT = st.text(max_size=20) | st.sampled_from(["", "é", "华为 Mate 60", "\U0001f600", "a" * 63, "b" * 64, "c" * 200])


def ints(bits: int) -> st.SearchStrategy[int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return st.integers(low, high) | st.sampled_from([i for i in EDGE_INTS if low <= i <= high])


def values(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid data for a self-contained JSON schema (raw values: timestamp-millis is an int)."""
    if isinstance(schema, list):
        return st.one_of(*[values(s, named) for s in schema])
    if isinstance(schema, str):
        if schema in named:
            return values(named[schema], named)
        schema = {"type": schema}
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return values(kind, named)
    if kind == "record":
        full = schema["name"] if "." in schema["name"] else f"{schema.get('namespace')}.{schema['name']}"
        named[full] = schema
        return st.fixed_dictionaries({f["name"]: values(f["type"], named) for f in schema["fields"]})
    if kind == "enum":
        named[schema["name"] if "." in schema["name"] else f"{schema['namespace']}.{schema['name']}"] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(values(schema["items"], named), max_size=4)
    if kind == "map":
        return st.dictionaries(TEXT, values(schema["values"], named), max_size=4)
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": ints(32),
        "long": ints(64),
        "double": st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, float("inf"), float("-inf")]),
        "bytes": st.binary(max_size=20),
        "string": TEXT,
    }[kind]


def fastavro_value(name: str, datum: Any) -> bytes:
    buf = io.BytesIO()
    buf.write(REG.headers[name])
    fastavro.schemaless_writer(buf, REG.current[name].parsed, datum)
    return buf.getvalue()


def encode_outcome(name: str, datum: Any) -> tuple[str, Any]:
    """fastavro's result through the original code path: bytes, or the ValueError message."""
    try:
        return "ok", fastavro_value(name, datum)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        return "error", f"{name}: datum does not fit the schema: {exc!r}"


def schemas_outcome(name: str, datum: Any) -> tuple[str, Any]:
    try:
        return "ok", schemas.encode(name, datum)
    except ValueError as exc:
        return "error", str(exc)


def ordered(value: Any) -> Any:
    """A comparable form that also sees the key order of every dict."""
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"  # a flipped byte can make a double NaN, and NaN != NaN
    return value


def fastavro_read(data: bytes) -> Any:
    reader = REG.readers[data[2:10]]
    buf = io.BytesIO(data)
    buf.seek(10)
    datum = fastavro.schemaless_reader(buf, reader.writer, reader.reader)
    assert buf.tell() == len(data), "trailing bytes"
    return datum


def test_every_record_schema_version_has_a_fast_path() -> None:
    assert all(REG.encoders[name] is not None for name in RECORDS)
    assert all(REG.readers[v.fingerprint].fast is not None for v in VERSIONS)


@pytest.mark.parametrize("name", RECORDS)
@SETTINGS
@given(data=st.data())
def test_encoder_writes_fastavros_bytes(name: str, data: st.DataObject) -> None:
    datum = data.draw(values(schemas.schema_json(name), {}))
    expected = fastavro_value(name, datum)
    assert REG.encoders[name](datum) == expected  # the fast path itself, not the fallback
    assert schemas.encode(name, datum) == expected


@pytest.mark.parametrize("name", RECORDS)
@SETTINGS
@given(data=st.data())
def test_omitted_fields_are_written_like_fastavro(name: str, data: st.DataObject) -> None:
    datum = data.draw(values(schemas.schema_json(name), {}))
    for field in data.draw(st.lists(st.sampled_from([f["name"] for f in schemas.schema_json(name)["fields"]]))):
        datum.pop(field, None)
    assert schemas_outcome(name, datum) == encode_outcome(name, datum)


TERMINAL, EXCHANGE = "lookthrough.TerminalRecord", "lookthrough.ExchangeRecord"
VARYING = frozenset({"exchange", "trading_code", "member_id"})


def view_variants(data: st.DataObject) -> list[dict[str, Any]]:
    variant = st.fixed_dictionaries({"exchange": TEXT, "trading_code": TEXT, "member_id": TEXT})
    return data.draw(st.lists(variant, max_size=4))


def view_fields(datum: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    """fastavro's view of ``{**datum, **variant}``: only the ExchangeRecord's own fields."""
    names = [f["name"] for f in schemas.schema_json(EXCHANGE)["fields"]]
    merged = {**datum, **variant}
    return {n: merged[n] for n in names if n in merged}


@SETTINGS
@given(data=st.data())
def test_view_encoder_writes_fastavros_bytes(data: st.DataObject) -> None:
    encoder = schemas.view_encoder(TERMINAL, EXCHANGE, VARYING)
    datum = data.draw(values(schemas.schema_json(TERMINAL), {}))
    variants = view_variants(data)
    expected = (fastavro_value(TERMINAL, datum), [fastavro_value(EXCHANGE, view_fields(datum, w)) for w in variants])
    assert encoder._fast is not None and encoder._fast(datum, variants) == expected  # the compiled path itself
    assert encoder(datum, variants) == expected


@SETTINGS
@given(data=st.data())
def test_view_encoder_falls_back_like_encode(data: st.DataObject) -> None:
    """Odd values, a variant with other keys, or a field too long for the fast path: fastavro's outcome."""
    encoder = schemas.view_encoder(TERMINAL, EXCHANGE, VARYING)
    datum = data.draw(values(schemas.schema_json(TERMINAL), {}))
    variants = view_variants(data)
    change = data.draw(st.sampled_from(["odd", "extra key", "long"]))
    if change == "odd":
        datum[data.draw(st.sampled_from(sorted(datum)))] = data.draw(st.sampled_from(ODD_VALUES))
    elif change == "extra key" and variants:
        variants[0]["device_name"] = "別の名前"
    else:
        datum["app_id"] = "a" * 9000
    expected = [encode_outcome(TERMINAL, datum), *(encode_outcome(EXCHANGE, {**datum, **w}) for w in variants)]
    if all(kind == "ok" for kind, _ in expected):
        assert encoder(datum, variants) == (expected[0][1], [value for _, value in expected[1:]])
    else:
        with pytest.raises(ValueError):
            encoder(datum, variants)


def test_view_encoder_knows_its_fields() -> None:
    with pytest.raises(KeyError):
        schemas.view_encoder(TERMINAL, EXCHANGE, frozenset({"exchange", "no_such_field"}))
    assert "investor_id" not in schemas.view_encoder(TERMINAL, EXCHANGE, VARYING).fields()


ODD_VALUES = [None, True, False, 0, -1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 1.5, float("nan"), "", "x",
              "\ud800", b"x", bytearray(b"x"), [], ["x"], [1], ("x",), {}, {"k": "v"}, {1: "v"}, ("string", "x"),
              ("null", None), "EXCHANGE", "NOPE", "y" * 9000]  # fmt: skip


class Text(str):
    """A str subclass: fastavro takes it as a string."""


@pytest.mark.parametrize("name", RECORDS)
@SETTINGS
@given(data=st.data())
def test_any_odd_value_gets_fastavros_result_or_error(name: str, data: st.DataObject) -> None:
    datum = data.draw(values(schemas.schema_json(name), {}))
    fields = [f["name"] for f in schemas.schema_json(name)["fields"]]
    for field in data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3)):
        datum[field] = data.draw(st.sampled_from([*ODD_VALUES, Text("t")]))
    assert schemas_outcome(name, datum) == encode_outcome(name, datum)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v.full_name}-v{v.version}")
@SETTINGS
@given(data=st.data())
def test_decoder_reads_fastavros_datum(version: schemas.SchemaVersion, data: st.DataObject) -> None:
    datum = data.draw(values(version.schema, {}))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, version.parsed, datum)
    value = schemas.MAGIC + version.fingerprint + buf.getvalue()
    expected = fastavro_read(value)
    fast = REG.readers[version.fingerprint].fast
    assert fast is not None
    assert ordered(fast(value)) == ordered(expected)  # the fast path itself, not the fallback
    assert ordered(schemas.decode(value)[1]) == ordered(expected)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v.full_name}-v{v.version}")
@SETTINGS
@given(data=st.data())
def test_decoder_accepts_only_what_fastavro_reads_the_same(version: schemas.SchemaVersion, data: st.DataObject) -> None:
    datum = data.draw(values(version.schema, {}))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, version.parsed, datum)
    body = bytearray(buf.getvalue())
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["flip", "cut", "append", "insert"]))
        pos = data.draw(st.integers(0, len(body)))
        if action == "flip" and pos < len(body):
            body[pos] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del body[pos:]
        elif action == "append":
            body += data.draw(st.binary(min_size=1, max_size=4))
        else:
            body[pos:pos] = data.draw(st.binary(min_size=1, max_size=2))
    value = schemas.MAGIC + version.fingerprint + bytes(body)
    fast = REG.readers[version.fingerprint].fast
    assert fast is not None
    try:
        got = fast(value)
    except Exception:  # refused: schemas.decode falls back to fastavro
        got = None
    try:
        expected: Any = ordered(fastavro_read(value))
    except Exception:
        expected = "E101"
    if got is not None:
        assert ordered(got) == expected
    try:
        out: Any = ordered(schemas.decode(value)[1])
    except EnvelopeError as exc:
        assert exc.code == "E101"
        out = "E101"
    assert out == expected


@example(b"")
@example(b"\x00" * 9)
@given(st.binary(max_size=12))
@SETTINGS
def test_short_values_keep_their_errors(tail: bytes) -> None:
    for version in VERSIONS:
        value = schemas.MAGIC + version.fingerprint + tail
        try:
            expected: Any = ordered(fastavro_read(value))
        except Exception:
            expected = "E101"
        try:
            out: Any = ordered(schemas.decode(value)[1])
        except EnvelopeError as exc:
            assert exc.code == "E101"
            out = "E101"
        assert out == expected


@SETTINGS
@given(data=st.data())
def test_historical_defaults_are_fresh_objects(data: st.DataObject) -> None:
    old = schemas.versions("lookthrough.TerminalRecord")[0]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old.parsed, data.draw(values(old.schema, {})))
    value = schemas.MAGIC + old.fingerprint + buf.getvalue()
    # fastavro alone hands out the schema's own default list to every record it reads.
    first, second = schemas.decode(value)[1], schemas.decode(value)[1]
    assert first["flags"] == [] and first["flags"] is not second["flags"]
    first["flags"].append("changed")
    assert schemas.decode(value)[1]["flags"] == []
    # The fastavro fallback (a memoryview skips the fast path) hands out copies as well.
    third = schemas.decode(memoryview(value))[1]  # type: ignore[arg-type]
    third["flags"].append("changed")
    assert schemas.decode(memoryview(value))[1]["flags"] == []  # type: ignore[arg-type]


def test_refused_values_still_round_trip_through_fastavro() -> None:
    name = "lookthrough.DeadLetter"
    datum = {"original_key": None, "original_value": b"v" * 20_000, "topic": "t", "partition": 0, "offset": 2**62,
             "stage": "decode", "error_code": "E101", "error_message": "m" * 9000, "reporter_id": None,
             "report_id": None, "failed_at": 0, "processing_system": "lookthrough"}  # fmt: skip
    data = schemas.encode(name, datum)
    assert data == fastavro_value(name, datum)
    assert schemas.decode(data) == (name, datum)


def sample(schema: Any, named: dict[str, Any], seed: int) -> Any:
    """A deterministic valid datum; ``seed`` varies lengths, numbers and union branches."""
    if isinstance(schema, list):
        return sample(schema[seed % len(schema)], named, seed)
    if isinstance(schema, str):
        if schema in named:
            return sample(named[schema], named, seed)
        schema = {"type": schema}
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return sample(kind, named, seed)
    if kind == "record":
        named[schema["name"] if "." in schema["name"] else f"{schema.get('namespace')}.{schema['name']}"] = schema
        return {f["name"]: sample(f["type"], named, seed + i) for i, f in enumerate(schema["fields"])}
    if kind == "enum":
        named[schema["name"] if "." in schema["name"] else f"{schema['namespace']}.{schema['name']}"] = schema
        return schema["symbols"][seed % len(schema["symbols"])]
    if kind == "array":
        return [sample(schema["items"], named, seed + i) for i in range(seed % 3)]
    if kind == "map":
        return {f"k{i}": sample(schema["values"], named, seed + i) for i in range(seed % 3)}
    return {
        "null": None,
        "boolean": seed % 2 == 1,
        "int": (-1) ** seed * 37**seed % 2**31,
        "long": (-1) ** seed * 1_763_600_400_279 * seed % 2**63,
        "double": seed / 7,
        "bytes": bytes(range(seed % 5)),
        "string": "sé"[: seed % 3] * (seed % 5),
    }[kind]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v.full_name}-v{v.version}")
def test_every_single_byte_change_reads_like_fastavro(version: schemas.SchemaVersion) -> None:
    """Exhaustive over positions: each byte of two sample bodies replaced by values around the
    varint, boolean and index boundaries."""
    fast = REG.readers[version.fingerprint].fast
    assert fast is not None
    for seed in (1, 2):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, version.parsed, sample(version.schema, {}, seed))
        value = schemas.MAGIC + version.fingerprint + buf.getvalue()
        for pos in range(10, len(value)):
            for byte in (0, 1, 2, 3, 4, 0x3F, 0x7E, 0x7F, 0x80, 0x81, 0xFE, 0xFF):
                changed = value[:pos] + bytes([byte]) + value[pos + 1 :]
                try:
                    got: Any = ordered(fast(changed))
                except Exception:
                    continue  # refused: fastavro decides, as the hypothesis tests check
                assert got == ordered(fastavro_read(changed)), (pos, byte)


def test_ints_and_longs_around_every_varint_width() -> None:
    name = "lookthrough.SourcePosition"
    edges = {s * (2**k + d) for k in range(64) for d in (-1, 0, 1) for s in (1, -1)} | set(range(-300, 300))
    for number in sorted(edges):
        datum = {"topic": "t", "partition": number, "offset": number}
        if -(2**31) <= number < 2**31:
            assert REG.encoders[name](datum) == fastavro_value(name, datum), number
        if -(2**63) <= number < 2**63:
            datum["partition"] = 0
            data = REG.encoders[name](datum)
            assert data == fastavro_value(name, datum), number
            assert REG.readers[data[2:10]].fast(data) == datum  # type: ignore[misc]
