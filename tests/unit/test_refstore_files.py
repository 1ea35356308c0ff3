"""Reference files (`lookthrough ref load`): typed values from CSV and JSON, and a ConfigError that
names the file, the row and the column for anything that is not what its schema says."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.refstore import encode_records, read_records

APPS_HEADER = "app_id,vendor_id,app_type,name,version,authorized_brokers,is_relay\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_cells_take_their_schema_types(tmp_path: Path) -> None:
    path = _write(tmp_path, "apps.csv", APPS_HEADER + 'XY_Q7_V1.0,XY,3,Q7,1.0,"[""0101"",""0202""]",yes\n'
                  "ZZ_R_V2,ZZ,1,R,2,,0\n")  # fmt: skip
    assert read_records("apps", path) == [
        {"app_id": "XY_Q7_V1.0", "vendor_id": "XY", "app_type": 3, "name": "Q7", "version": "1.0",
         "authorized_brokers": ["0101", "0202"], "is_relay": True},
        {"app_id": "ZZ_R_V2", "vendor_id": "ZZ", "app_type": 1, "name": "R", "version": "2",
         "authorized_brokers": [], "is_relay": False},
    ]  # fmt: skip


def test_optional_timestamps_and_maps_from_csv(tmp_path: Path) -> None:
    header = "subscriber_id,exchange,licence_no,licensed,tier,valid_from,valid_to\n"
    subscribers = _write(tmp_path, "subscribers.csv", header + "S1,SHFE,L-1,true,full,1700000000000,\n"
                         "S2,DCE,L-2,false,basic,1700000000000,1800000000000\n")  # fmt: skip
    rows = read_records("subscribers", subscribers)
    assert [(r["licensed"], r["valid_from"], r["valid_to"]) for r in rows] == [
        (True, 1_700_000_000_000, None), (False, 1_700_000_000_000, 1_800_000_000_000)]  # fmt: skip
    accounts = _write(tmp_path, "accounts.csv",
                      'broker_id,investor_id,trading_codes\n0101,00012345,"{""SHFE"": ""81234567""}"\n')  # fmt: skip
    assert read_records("accounts", accounts)[0]["trading_codes"] == {"SHFE": "81234567"}


def test_json_array_and_json_lines_read_the_same(tmp_path: Path) -> None:
    array = _write(tmp_path, "v.json", '[{"vendor_id": "XY", "name": "X", "status": "ACTIVE"}]')
    lines = _write(tmp_path, "v.jsonl", '{"vendor_id": "XY", "name": "X", "status": "ACTIVE"}\n\n')
    assert read_records("vendors", array) == read_records("vendors", lines) == [
        {"vendor_id": "XY", "name": "X", "status": "ACTIVE"}]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("apps.csv", APPS_HEADER + "A1,XY,1,n,1,[],false\nA2,XY,one,n,1,[],false\n",
         r"apps\.csv row 3: column 'app_type': not an integer: 'one'"),
        ("apps.csv", APPS_HEADER + "A1,XY,1,n,1,[x,false\n", r"row 2: column 'authorized_brokers': not a JSON array"),
        ("apps.csv", APPS_HEADER + "A1,XY,1,n,1,[],maybe\n", r"row 2: column 'is_relay': not a boolean"),
        ("apps.csv", APPS_HEADER + "A1,XY,1\n", r"row 2: no value for column 'name'"),
        ("apps.csv", "app_id,colour\nA1,red\n", r"column 'colour' is not a field"),
        ("apps.json", '{"app_id":\n', r"apps\.json: not JSON"),
        ("apps.json", '{"app_id": "A1"}\n[1]\n', r"expected a JSON array of objects or JSON lines"),
    ],
)
def test_bad_files_name_the_row_and_column(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_records("apps", _write(tmp_path, name, text))


def test_unreadable_files_and_unknown_kinds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.csv: No such file"):
        read_records("apps", tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="cannot read"):
        read_records("apps", _latin1(tmp_path))  # not UTF-8
    with pytest.raises(ConfigError, match="unknown reference kind 'planets'"):
        read_records("planets", tmp_path / "any.json")


def _latin1(tmp_path: Path) -> Path:
    path = tmp_path / "latin1.csv"
    path.write_bytes(APPS_HEADER.encode() + "A1,XY,1,caf\xe9,1,[],false\n".encode("latin-1"))
    return path


def test_a_record_missing_a_field_is_named_one_based(tmp_path: Path) -> None:
    records = [{"vendor_id": "XY", "name": "X", "status": "ACTIVE"}, {"name": "no id", "status": "ACTIVE"}]
    with pytest.raises(ConfigError, match=r"vendors record 2 does not fit lookthrough\.Vendor: field 'vendor_id' is"):
        encode_records("vendors", records)
