"""Bodies written by fastavro read with Apache avro, and the reverse, including timestamp-millis.

Apache avro turns timestamp-millis into aware UTC datetimes; pipeline.schemas keeps int epoch
milliseconds. Both describe the same long on the wire.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import avro.io
import avro.schema
import pytest

from pipeline import schemas

ENVELOPE = "lookthrough.ReportEnvelope"
TERMINAL = "lookthrough.TerminalRecord"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ENVELOPE_DATUM: dict[str, Any] = {
    "report_id": "0101-20250102-000001", "reporter_type": "FUTURES_COMPANY", "reporter_id": "0101",
    "broker_id": "0101", "investor_id": "8800001", "user_id": "8800001", "trading_day": "20250103",
    "received_at": 1735822800123,
    "report": "XYSOFT@3@AQIDBA==@1@203.0.113.7@50123@2025-01-02 21:00:00@XY_Q7_V1.0.0@",
    "correction_of": "0101-20250102-000000",
}
TERMINAL_DATUM: dict[str, Any] = {
    **{k: v for k, v in ENVELOPE_DATUM.items() if k != "report"},
    "vendor_id": "XYSOFT", "key_version": 3, "suite": "RSA2048-OAEP-SHA256/AES-256-GCM",
    "app_type": 1, "public_ip": "2001:db8::7", "public_port": 50123, "login_time": 1735822800000,
    "app_id": "XY_Q7_V1.0.0", "relay_app_id": None, "terminal_type": 4, "terminal_kind": "ANDROID",
    "collect_time": 1735822799000, "collect_flags": 64, "private_ips": ["10.0.0.5"],
    "macs": ["020000000000"], "device_name": None, "device_model": "华为 Mate 60", "os_version": "14",
    "disk_serial": None, "cpu_serial": None, "bios_serial": None, "device_serial": None,
    "system_disk_partition": None, "imei": None, "device_id": "a1b2c3", "idfv": None,
    "phone": "13800000000", "platform": None, "latitude": 31.2304, "longitude": 121.4737,
    "flags": ["mac_placeholder"], "warnings": ["W406"], "device_fingerprint": "fp:9f2c",
    "trading_codes": {"SHFE": "12345678", "DCE": "87654321"},
    "source": {"topic": "lt.ingress.0101", "partition": 3, "offset": 2**40},
    "provenance": {"source": "0101", "processing_system": "lookthrough", "pipeline_instance": "lt-1",
                   "pipeline_version": "0.1.0", "schema_fingerprint": "2ed2d04e8af57f8c",
                   "processed_at": 1735822800456},
}
TIMESTAMPS = {("received_at",), ("login_time",), ("collect_time",), ("provenance", "processed_at")}


def apache(name: str) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(schemas.schema_json(name)))


def to_datetimes(datum: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``datum`` as Apache avro presents it: timestamp-millis fields as aware UTC datetimes."""
    out: dict[str, Any] = {}
    for key, value in datum.items():
        if isinstance(value, dict) and key != "trading_codes":
            out[key] = to_datetimes(value, (*path, key))
        elif (*path, key) in TIMESTAMPS:
            out[key] = EPOCH + timedelta(milliseconds=value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(("name", "datum"), [(ENVELOPE, ENVELOPE_DATUM), (TERMINAL, TERMINAL_DATUM)])
def test_fastavro_written_reads_with_apache_avro(name: str, datum: dict[str, Any]) -> None:
    data = schemas.encode(name, datum)
    reader = avro.io.DatumReader(apache(name))
    out = reader.read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert out == to_datetimes(datum)
    assert out["received_at"] == datetime(2025, 1, 2, 13, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(("name", "datum"), [(ENVELOPE, ENVELOPE_DATUM), (TERMINAL, TERMINAL_DATUM)])
def test_apache_avro_written_reads_with_fastavro(name: str, datum: dict[str, Any]) -> None:
    buf = io.BytesIO()
    avro.io.DatumWriter(apache(name)).write(to_datetimes(datum), avro.io.BinaryEncoder(buf))
    decoded_name, out = schemas.decode(b"\xc3\x01" + schemas.fingerprint(name) + buf.getvalue(), name)
    assert (decoded_name, out) == (name, datum)
    assert type(out["received_at"]) is int


def test_historical_envelope_written_by_apache_avro_decodes_as_current() -> None:
    old = schemas.versions(ENVELOPE)[0]
    datum = {k: v for k, v in to_datetimes(ENVELOPE_DATUM).items() if k != "correction_of"}
    buf = io.BytesIO()
    avro.io.DatumWriter(avro.schema.parse(json.dumps(old.schema))).write(datum, avro.io.BinaryEncoder(buf))
    assert schemas.decode(b"\xc3\x01" + old.fingerprint + buf.getvalue(), ENVELOPE) == (
        ENVELOPE, {**ENVELOPE_DATUM, "correction_of": None},
    )


def without_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [without_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


@pytest.mark.parametrize("name", schemas.names())
def test_fingerprints_agree_with_apache_avro(name: str) -> None:
    # Apache avro's Python canonical form keeps {"type":"long"} for a logical type where the spec
    # ([PRIMITIVES], [STRIP]) and Java write "long"; so compare on the schema without logical types,
    # whose canonical form is the same by the spec.
    stripped = avro.schema.parse(json.dumps(without_logical_types(schemas.schema_json(name))))
    assert stripped.fingerprint() == schemas.fingerprint(name)
