"""The reporter SDK (pipeline.reporter), the batch file parser (pipeline.batch) and the send
command's Kafka-free parts (state file, transaction bookkeeping, dry run).

Round trips go through the pipeline's own stages: `decode` → `Keyring.decrypt` → `normalize`,
with the session market keyring of tests/unit/conftest.py (`create_market_keyring`).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline import cli
from pipeline.batch import BatchEntry, count_reports, detect_format, parse_record, read_batch
from pipeline.crypto.admin import export_public
from pipeline.crypto.keyring import Keyring
from pipeline.errors import ConfigError
from pipeline.generate import KeySet
from pipeline.reporter import (
    DeliveryError,
    InvalidReport,
    OutgoingRecord,
    Report,
    Reporter,
    TerminalInfo,
    producer_config,
)
from pipeline.send import BatchSender, Progress, SendState, Summary
from pipeline.stages.decode import decode
from pipeline.stages.normalize import NormalizeSettings, normalize

REPORTER = "0101"
LOGIN = "2025-11-20 09:00:00"
LOGIN_MS = 1_763_600_400_000  # 2025-11-20 01:00:00 UTC
RECEIVED_MS = LOGIN_MS + 2_000

# Raw terminal values per layout as a collector sends them, and what normalize makes of them.
TERMINALS: dict[int, dict[str, str]] = {
    1: {"collect_time": "2025-11-20 08:59:30", "private_ip1": "192.168.1.10", "private_ip2": "10.0.0.7",
        "mac1": "aa-bb-cc-dd-ee-01", "mac2": "AA:BB:CC:DD:EE:02", "device_name": "DESKTOP-ABC1234",
        "os_version": "Windows 10 Pro 22H2", "disk_serial": "WD-WX1234567890", "cpu_serial": "bfebfbff000906ea",
        "bios_serial": "C02ABCDEF1", "system_disk_partition": "C:^ABCD1234^NTFS^256G"},
    4: {"collect_time": "2025-11-20 08:59:30", "private_ip": "192.168.1.20", "mac": "a1b2c3d4e5f6",
        "device_model": "Mi 14", "os_version": "Android 14", "imei": "861234567890123",
        "device_id": "abcd1234efgh5678", "phone": "13812345678", "location": "31.23040,121.47370"},
    7: {"collect_time": "2025-11-20 08:59:30", "platform": "web", "device_model": "Chrome 131",
        "os_version": "macOS 15", "device_id": "web-8f2a", "location": "22.54310,114.05790"},
}  # fmt: skip
NORMALIZED: dict[int, dict[str, Any]] = {
    1: {"private_ips": ["192.168.1.10", "10.0.0.7"], "macs": ["AABBCCDDEE01", "AABBCCDDEE02"],
        "device_name": "DESKTOP-ABC1234", "os_version": "Windows 10 Pro 22H2", "disk_serial": "WD-WX1234567890",
        "cpu_serial": "BFEBFBFF000906EA", "bios_serial": "C02ABCDEF1",
        "system_disk_partition": "C:^ABCD1234^NTFS^256G", "terminal_kind": "WINDOWS"},
    4: {"private_ips": ["192.168.1.20"], "macs": ["A1B2C3D4E5F6"], "device_model": "Mi 14",
        "os_version": "Android 14", "imei": "861234567890123", "device_id": "abcd1234efgh5678",
        "phone": "13812345678", "latitude": 31.2304, "longitude": 121.4737, "terminal_kind": "ANDROID"},
    7: {"private_ips": [], "macs": [], "platform": "web", "device_model": "Chrome 131", "os_version": "macOS 15",
        "device_id": "web-8f2a", "latitude": 22.5431, "longitude": 114.0579, "terminal_kind": "OTHER"},
}  # fmt: skip


def make_report(type_code: int = 1, **overrides: Any) -> Report:
    fields: dict[str, Any] = {
        "report_id": "0101-20251120-000001",
        "investor_id": "00012345",
        "user_id": "00012345u",
        "trading_day": "20251120",
        "terminal": TerminalInfo(type_code, dict(TERMINALS[type_code]), 0),
        "vendor_id": "CTP",
        "app_type": 1,
        "public_ip": "58.20.30.40",
        "public_port": 51234,
        "login_time": LOGIN,
        "app_id": "CT_Q7_V1.0.0",
        "received_at": RECEIVED_MS,
    }
    fields.update(overrides)
    return Report(**fields)


def _no_producer(config: dict[str, Any]) -> Any:
    raise AssertionError("build must not create a producer")


@pytest.fixture(scope="module")
def keys(market_keys: tuple[Path, KeySet]) -> KeySet:
    return market_keys[1]


@pytest.fixture
def reporter(keys: KeySet) -> Reporter:
    return Reporter("127.0.0.1:1", REPORTER, keys.reporter, producer_factory=_no_producer)  # type: ignore[arg-type]


def open_report(value: bytes, keyring: Keyring) -> dict[str, Any]:
    """What the pipeline makes of an ingress value: decode, decrypt, normalize."""
    decoded = decode(value, REPORTER)
    plaintext = keyring.decrypt(decoded.line.vendor_id, decoded.line.key_version, decoded.line.terminal_info)
    return normalize(decoded.envelope, decoded.line, plaintext, NormalizeSettings.from_profile())


# --- build ------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_code", sorted(TERMINALS))
def test_build_round_trips_through_the_pipeline_stages_for_every_suite(
    reporter: Reporter, keys: KeySet, production_keyring: Keyring, type_code: int
) -> None:
    for version in keys.active:
        topic, key, value = reporter.build(make_report(type_code, key_version=version))
        assert (topic, key) == (f"lt.ingress.{REPORTER}", b"00012345")
        record = open_report(value, production_keyring)
        expected = {
            "report_id": "0101-20251120-000001", "reporter_type": "FUTURES_COMPANY", "reporter_id": REPORTER,
            "broker_id": REPORTER, "investor_id": "00012345", "user_id": "00012345u", "trading_day": "20251120",
            "received_at": RECEIVED_MS, "correction_of": None, "vendor_id": "CTP", "key_version": version,
            "app_type": 1, "public_ip": "58.20.30.40", "public_port": 51234, "login_time": LOGIN_MS,
            "app_id": "CT_Q7_V1.0.0", "relay_app_id": None, "terminal_type": type_code,
            "collect_time": LOGIN_MS - 30_000, "collect_flags": 0, "warnings": [], "flags": [],
            **NORMALIZED[type_code],
        }  # fmt: skip
        assert {name: record[name] for name in expected} == expected


def test_the_plaintext_is_the_input_in_profile_order(reporter: Reporter, keys: KeySet, production_keyring: Keyring):
    _, _, value = reporter.build(make_report(7, key_version=keys.active[0]))
    line = decode(value, REPORTER).line
    plaintext = production_keyring.decrypt(line.vendor_id, line.key_version, line.terminal_info)
    t = TERMINALS[7]
    assert plaintext.decode() == "@".join(
        ["7", t["collect_time"], t["platform"], t["device_model"], t["os_version"], t["device_id"], t["location"], "0"]
    )


def test_missing_items_travel_empty_with_their_bits(reporter: Reporter, keys: KeySet, production_keyring: Keyring):
    fields = dict(TERMINALS[1])
    del fields["bios_serial"], fields["disk_serial"]
    report = make_report(key_version=keys.active[0], terminal=TerminalInfo(1, fields, 1 << 8 | 1 << 6))
    record = open_report(reporter.build(report).value, production_keyring)
    assert record["bios_serial"] is None and record["disk_serial"] is None
    assert record["collect_flags"] == 320 and record["warnings"] == []


def test_default_key_version_is_the_newest_usable_key_of_the_environment(keys: KeySet) -> None:
    for environment in ("production", "test"):
        rep = Reporter("x:1", REPORTER, keys.reporter, environment=environment)
        line = decode(rep.build(make_report()).value, REPORTER).line
        assert line.key_version == keys.reporter.current_version(environment, RECEIVED_MS)
    assert decode(Reporter("x:1", REPORTER, keys.reporter, environment="test").build(make_report()).value,
                  REPORTER).line.key_version == keys.test  # fmt: skip


def test_a_ready_report_line_travels_verbatim(reporter: Reporter, keys: KeySet) -> None:
    sealed = decode(reporter.build(make_report(key_version=keys.active[0])).value, REPORTER).envelope["report"]
    ready = Report("0101-2", "00012345", "00012345u", "20251120", report_line=sealed, correction_of="0101-1")
    envelope = decode(reporter.build(ready).value, REPORTER).envelope
    assert envelope["report"] == sealed and envelope["correction_of"] == "0101-1"


def test_exchange_reports_need_the_member_broker_id(keys: KeySet) -> None:
    shfe = Reporter("x:1", "SHFE", keys.reporter, reporter_type="EXCHANGE")
    with pytest.raises(InvalidReport) as info:
        shfe.build(make_report(key_version=keys.active[0]))
    assert info.value.code == "E102"
    envelope = decode(shfe.build(make_report(key_version=keys.active[0], broker_id="M042")).value, "SHFE").envelope
    assert (envelope["reporter_type"], envelope["reporter_id"], envelope["broker_id"]) == ("EXCHANGE", "SHFE", "M042")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"app_id": "XY Q7 V1.0"}, "E104"),
        ({"app_id": "A" * 33}, "E104"),
        ({"vendor_id": ""}, "E104"),
        ({"investor_id": ""}, "E102"),
        ({"trading_day": "2025-11-20"}, "E104"),
        ({"report_id": "has space"}, "E104"),
        ({"public_ip": "1.2.3.4@5"}, "E103"),
        ({"app_type": 9}, "E104"),
        ({"relay_app_id": "CT_Q7_V1.0.0", "app_type": 2}, "E104"),
        ({"terminal": TerminalInfo(9, {})}, "E301"),
        ({"terminal": TerminalInfo(7, {"platform": "we@b"})}, "E302"),
        ({"terminal": TerminalInfo(7, {**TERMINALS[7], "collect_time": "2025-13-45 99:99:99"})}, "E303"),
        ({"terminal": TerminalInfo(1, {**TERMINALS[1], "mac1": "not-a-mac"})}, "E303"),
        ({"public_ip": "999.1.1.1"}, "E303"),
        ({"public_port": 70000}, "E303"),
        ({"login_time": "yesterday"}, "E303"),
        ({"terminal": TerminalInfo(7, {"device_model": "x" * 1100})}, "E104"),
        ({"terminal": TerminalInfo(7, {"bogus": "1"})}, None),
        ({"key_version": 999}, None),
        ({"report_line": "a@b"}, None),
        ({"terminal": None}, None),
    ],
)
def test_reports_the_pipeline_would_reject_are_refused_with_its_code(
    reporter: Reporter, overrides: dict[str, Any], code: str | None
) -> None:
    with pytest.raises(InvalidReport) as info:
        reporter.build(make_report(**overrides))
    assert info.value.code == code
    for secret in ("not-a-mac", "2025-13-45", "DESKTOP-ABC1234", "we@b"):
        assert secret not in str(info.value)


def test_prepare_returns_the_warnings_the_pipeline_will_attach(reporter: Reporter) -> None:
    assert reporter.prepare(make_report(app_type=2)).warnings == ("W404",)
    assert reporter.prepare(make_report(public_ip="10.1.2.3")).warnings == ("W408",)
    assert reporter.prepare(make_report()).warnings == ()


def test_terminal_values_never_show_in_reprs(reporter: Reporter) -> None:
    report = make_report()
    for text in (repr(report), repr(report.terminal), str(report), repr(reporter)):
        assert "DESKTOP-ABC1234" not in text and "192.168.1.10" not in text


def test_a_bad_reporter_identity_is_a_config_error(keys: KeySet) -> None:
    with pytest.raises(ConfigError):
        Reporter("x:1", "bad id", keys.reporter)
    with pytest.raises(ConfigError):
        Reporter("x:1", "0101", keys.reporter, reporter_type="BANK")


def test_producer_config_keeps_idempotence_and_acks_all() -> None:
    config = producer_config("b:1", {"linger.ms": 20, "sasl.mechanism": "PLAIN"}, "lt-send.0101.x")
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert config["compression.type"] in ("lz4", "zstd") and config["linger.ms"] == 20
    assert config["transactional.id"] == "lt-send.0101.x" and config["sasl.mechanism"] == "PLAIN"
    for weaker in ({"acks": "1"}, {"enable.idempotence": False}, {"enable.idempotence": "false"}):
        with pytest.raises(ConfigError):
            producer_config("b:1", weaker)


# --- delivery tracking (a fake producer stands in for librdkafka) -------------------------------


class FakeProducer:
    """Queues records; `poll`/`flush` deliver them, failing those whose key is in `fail`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.queue: list[tuple[str, bytes, bytes, Callable[..., None]]] = []
        self.log: list[Any] = []
        self.fail: dict[bytes, KafkaError] = {}
        self.commit_errors: list[KafkaError] = []
        self.full_times = 0

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None]) -> None:
        if self.full_times:
            self.full_times -= 1
            raise BufferError("queue full")
        self.queue.append((topic, key, value, on_delivery))
        self.log.append(("produce", key))

    def poll(self, timeout: float) -> int:
        served, self.queue = self.queue, []
        for _, key, _, callback in served:
            callback(self.fail.get(key), None)
        return len(served)

    def flush(self, timeout: float) -> int:
        self.poll(timeout)
        return 0

    def __len__(self) -> int:
        return len(self.queue)

    def init_transactions(self, timeout: float) -> None:
        self.log.append("init")

    def begin_transaction(self) -> None:
        self.log.append("begin")

    def commit_transaction(self, timeout: float) -> None:
        self.flush(timeout)
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))
        self.log.append("commit")

    def abort_transaction(self, timeout: float) -> None:
        for *_, callback in self.queue:
            callback(KafkaError(KafkaError._PURGE_QUEUE), None)
        self.queue = []
        self.log.append("abort")


def fake_reporter(keys: KeySet, transactional_id: str | None = None) -> tuple[Reporter, FakeProducer]:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config))
        return made[0]

    rep = Reporter("b:1", REPORTER, keys.reporter, transactional_id=transactional_id, producer_factory=factory)
    rep.producer  # noqa: B018 - create it
    return rep, made[0]


def test_send_counts_deliveries_and_never_drops_a_failure(keys: KeySet) -> None:
    rep, fake = fake_reporter(keys)
    fake.fail[b"BAD"] = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    seen: list[tuple[str, KafkaError | None]] = []
    fake.full_times = 2  # the local queue is full twice: send waits instead of failing
    rep.send(make_report(report_id="r1"), on_delivery=lambda rid, err: seen.append((rid, err)))
    rep.send(make_report(report_id="r2", investor_id="BAD"))
    assert rep.flush(1) == 0
    assert rep.delivered == 1 and [f.report_id for f in rep.failures] == ["r2"]
    assert rep.failures[0].error == "MSG_SIZE_TOO_LARGE" and not rep.failures[0].retriable
    assert seen == [("r1", None)]
    assert fake.config["enable.idempotence"] is True and callable(fake.config["error_cb"])
    with pytest.raises(DeliveryError, match="1 record"):
        rep.raise_for_failures()
    rep.raise_for_failures()  # reported once


def test_a_fatal_producer_error_stops_sending(keys: KeySet) -> None:
    rep, fake = fake_reporter(keys)
    fake.config["error_cb"](KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    with pytest.raises(DeliveryError) as info:
        rep.send(make_report())
    assert info.value.fatal


def test_transactions_need_a_transactional_id(keys: KeySet) -> None:
    rep, _ = fake_reporter(keys)
    with pytest.raises(ConfigError):
        rep.begin()


# --- batch file parser ------------------------------------------------------------------------


GOOD = {
    "report_id": "0101-20251120-000001", "investor_id": "00012345", "user_id": "00012345u",
    "trading_day": "20251120", "vendor_id": "CTP", "app_type": 1, "public_ip": "58.20.30.40",
    "public_port": 51234, "login_time": LOGIN, "app_id": "CT_Q7_V1.0.0", "received_at": RECEIVED_MS,
    "terminal": {"type": 7, "fields": TERMINALS[7], "collect_flags": 0}, "correction_of": None,
}  # fmt: skip


def test_a_good_json_line_is_the_report_it_describes() -> None:
    assert parse_record(GOOD) == make_report(7, public_port="51234")
    ready = parse_record({k: GOOD[k] for k in ("report_id", "investor_id", "user_id", "trading_day")} | {"report": "L"})
    assert ready.report_line == "L" and ready.terminal is None


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


BAD_LINES: list[tuple[str, str | None, str]] = [
    ("{not json", None, "invalid JSON"),
    ("[1, 2]", None, "JSON object"),
    (json.dumps({**GOOD, "investor": "x"}), None, "unknown field"),
    (json.dumps({**GOOD, "report_id": ""}), "E102", "report_id"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "user_id"}), "E102", "user_id"),
    (json.dumps({**GOOD, "report": "a@b"}), None, "must not also carry"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "terminal"}), None, "either report or terminal"),
    (json.dumps({**GOOD, "terminal": {"type": "seven"}}), None, "terminal.type"),
    (json.dumps({**GOOD, "terminal": {"type": 7, "fields": ["a"]}}), None, "terminal.fields"),
    (json.dumps({**GOOD, "terminal": {"type": 7, "fields": {"platform": 5}}}), None, "platform"),
    (json.dumps({**GOOD, "terminal": {"type": 7, "os": "x"}}), None, "unknown terminal key"),
    (json.dumps({**GOOD, "public_port": "80a"}), "E303", "public_port"),
    (json.dumps({**GOOD, "app_type": True}), "E104", "app_type"),
    (json.dumps({**GOOD, "investor_id": 12345}), None, "investor_id must be a string"),
]


def test_the_jsonl_reader_reports_bad_lines_with_numbers_and_codes(tmp_path: Path) -> None:
    lines = [json.dumps(GOOD), "", *(text for text, _, _ in BAD_LINES), "   ", json.dumps({**GOOD, "report_id": "b"})]
    path = write_lines(tmp_path / "batch.jsonl", lines)
    (tmp_path / "raw.jsonl").write_bytes(path.read_bytes() + b'{"report_id": "\xff"}\n')
    entries = list(read_batch(tmp_path / "raw.jsonl", "json"))
    assert [e.line for e in entries] == [1, *range(3, 3 + len(BAD_LINES)), len(lines), len(lines) + 1]
    assert entries[0].report == make_report(7, public_port="51234") and entries[0].problem is None
    assert entries[-2].report is not None and entries[-2].report.report_id == "b"
    assert entries[-1].problem is not None and "UTF-8" in entries[-1].problem.message
    for entry, (_, code, text) in zip(entries[1:-2], BAD_LINES, strict=True):
        assert entry.report is None and entry.problem is not None
        assert (entry.problem.code, text in entry.problem.message) == (code, True), entry.problem
    assert count_reports(path, "json") == len(BAD_LINES) + 2


def test_csv_rows_parse_to_the_same_reports_as_json_lines(tmp_path: Path) -> None:
    terminal_columns = [f"terminal.{name}" for name in TERMINALS[7]]
    header = ["report_id", "investor_id", "user_id", "trading_day", "vendor_id", "app_type", "public_ip",
              "public_port", "login_time", "app_id", "received_at", "report", "terminal.type",
              "terminal.collect_flags", *terminal_columns]  # fmt: skip
    good = [GOOD[c] for c in header[:11]] + ["", "7", "0", *TERMINALS[7].values()]
    ready = ["r2", "00012345", "u", "20251120", *[""] * 7, "L", *[""] * (2 + len(terminal_columns))]
    bad_port = [*good[:7], "80x", *good[8:]]
    with (tmp_path / "b.csv").open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerows([header, good, ready, [""] * len(header), bad_port, good[:3]])
    entries = list(read_batch(tmp_path / "b.csv", detect_format(tmp_path / "b.csv", None)))
    assert [e.line for e in entries] == [2, 3, 5, 6]
    assert entries[0].report == make_report(7, public_port="51234")
    assert entries[1].report == Report("r2", "00012345", "u", "20251120", report_line="L")
    assert entries[2].problem is not None and entries[2].problem.code == "E303"
    assert entries[3].problem is not None and "cells" in entries[3].problem.message
    (tmp_path / "dup.csv").write_text("report_id,report_id\n1,2\n")
    with pytest.raises(ConfigError):
        list(read_batch(tmp_path / "dup.csv", "csv"))
    assert detect_format(tmp_path / "x.jsonl", None) == "json"
    with pytest.raises(ConfigError):
        detect_format(tmp_path / "x", "xml")


# --- state file -------------------------------------------------------------------------------


def test_state_file_snapshot_journal_and_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl.sent-state"
    state = SendState.load_or_new(path, REPORTER, "lt.ingress.0101")
    assert state.scan_from is None and state.transactional_id.startswith("lt-send.0101.")
    state.write_snapshot({0: 5, 2: 7})
    state.append_sent(["a", "b"])
    state.append_sent(["c"])
    again = SendState.load_or_new(path, REPORTER, "lt.ingress.0101")
    assert (again.sent, again.scan_from, again.closed) == ({"a", "b", "c"}, {0: 5, 2: 7}, False)
    assert again.transactional_id == state.transactional_id
    with path.open("a") as fh:
        fh.write('{"sent": ["d"')  # a crash in the middle of an append
    torn = SendState.load_or_new(path, REPORTER, "lt.ingress.0101")
    assert torn.sent == {"a", "b", "c"} and not torn.closed
    torn.write_snapshot({0: 9})  # every run starts so: the torn bytes go, the journal is compacted
    assert path.read_text().count("\n") == 1
    torn.mark_closed()
    closed = SendState.load_or_new(path, REPORTER, "lt.ingress.0101")
    assert (closed.sent, closed.scan_from, closed.closed) == ({"a", "b", "c"}, {0: 9}, True)
    with pytest.raises(ConfigError, match="belongs to"):
        SendState.load_or_new(path, "0202", "lt.ingress.0202")
    head = path.read_text().splitlines()[0]
    path.write_text(head + "\nnot json\n" + '{"closed": true}\n')
    with pytest.raises(ConfigError, match="corrupt"):
        SendState.load_or_new(path, REPORTER, "lt.ingress.0101")
    path.write_text('{"format": "lookthrough-send-state/1", "reporter": "0101", "topic": "lt.ingress.0101"}\n')
    with pytest.raises(ConfigError, match="snapshot"):
        SendState.load_or_new(path, REPORTER, "lt.ingress.0101")


# --- transaction bookkeeping, without Kafka ----------------------------------------------------


def run_sender(keys: KeySet, tmp_path: Path, entries: list[BatchEntry], fake_setup: Callable[[FakeProducer], None],
               batch_size: int = 2) -> tuple[Summary, SendState, FakeProducer]:  # fmt: skip
    rep, fake = fake_reporter(keys, "lt-send.0101.test")
    fake_setup(fake)
    state = SendState.load_or_new(tmp_path / "s", REPORTER, rep.topic)
    state.write_snapshot({})
    state.append_sent(["already"])
    summary = Summary("f", rep.topic)
    with open(os.devnull, "w") as devnull:
        progress = Progress(10, devnull, enabled=False)
        BatchSender(rep, state, summary, progress, batch_size=batch_size, timeout_s=1).run(iter(entries))
    return summary, SendState.load_or_new(tmp_path / "s", REPORTER, rep.topic), fake


def entry(line: int, report_id: str, **overrides: Any) -> BatchEntry:
    return BatchEntry(line, make_report(report_id=report_id, investor_id=f"I{line}", **overrides))


def test_sender_commits_in_batches_skips_sent_and_reports_bad_lines(keys: KeySet, tmp_path: Path) -> None:
    entries = [entry(1, "a"), entry(2, "already"), entry(3, "b"), entry(4, "a"), entry(5, "c", app_id="X Y"),
               entry(6, "d"), entry(7, "e", app_type=2)]  # fmt: skip
    summary, state, fake = run_sender(keys, tmp_path, entries, lambda f: None)
    assert (summary.sent, summary.skipped, summary.exit_code()) == (4, 1, 1)
    assert [(f.line, f.code) for f in summary.failed] == [(4, None), (5, "E104")]
    assert "duplicate report_id (first on line 1)" in summary.failed[0].message
    assert summary.warnings == [(7, "e", ("W404",))]
    assert state.sent == {"already", "a", "b", "d", "e"} and state.closed
    assert [x for x in fake.log if isinstance(x, str)] == ["begin", "commit", "begin", "commit"]


def test_sender_retries_an_aborted_transaction_without_the_refused_record(keys: KeySet, tmp_path: Path) -> None:
    def setup(fake: FakeProducer) -> None:
        fake.fail[b"I2"] = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
        fake.commit_errors.append(KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True))

    summary, state, fake = run_sender(keys, tmp_path, [entry(1, "a"), entry(2, "b"), entry(3, "c")], setup)
    fake.fail.clear()
    assert [(f.line, f.report_id) for f in summary.failed] == [(2, "b")]
    assert "MSG_SIZE_TOO_LARGE" in summary.failed[0].message
    assert state.sent == {"already", "a", "c"} and summary.sent == 2
    assert [x for x in fake.log if isinstance(x, str)] == ["begin", "abort", "begin", "commit", "begin", "commit"]


def test_sender_stops_on_a_fatal_error_and_leaves_the_state_open(keys: KeySet, tmp_path: Path) -> None:
    def setup(fake: FakeProducer) -> None:
        fake.commit_errors.append(KafkaError(KafkaError._FENCED, "fenced", fatal=True))

    summary, state, _ = run_sender(keys, tmp_path, [entry(1, "a"), entry(2, "b"), entry(3, "c")], setup)
    assert summary.stopped is not None and "fenced" in summary.stopped and summary.exit_code() == 3
    assert state.sent == {"already"} and not state.closed  # the next run reads the topic back


# --- the command, in dry-run mode ---------------------------------------------------------------


def test_send_dry_run_checks_every_line(market_keys: tuple[Path, KeySet], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    public = tmp_path / "public.json"
    public.write_text(json.dumps(export_public(market_keys[0], include_psk=True)))
    public.chmod(0o600)
    good = {**GOOD, "key_version": market_keys[1].active[0]}
    batch = write_lines(tmp_path / "b.jsonl", [
        json.dumps(good), json.dumps({**good, "report_id": "2", "app_id": "XY Q7 V1.0"}), "{",
    ])  # fmt: skip
    code = cli.main(["send", str(batch), "--reporter", REPORTER, "--keys", str(public), "--dry-run", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and summary["sent"] == 1 and summary["dry_run"]
    assert [(f["line"], f["code"]) for f in summary["failed"]] == [(2, "E104"), (3, None)]
    assert not (tmp_path / "b.jsonl.sent-state").exists()
    assert cli.main(["send", str(batch), "--reporter", REPORTER, "--keys", str(public), "--dry-run"]) == 1
    text = capsys.readouterr().out
    assert "line 2 (2): E104 app_id has illegal characters" in text and "valid (dry run" in text


def test_outgoing_record_unpacks_as_topic_key_value() -> None:
    topic, key, value = OutgoingRecord("t", b"k", b"v")
    assert (topic, key, value) == ("t", b"k", b"v")
