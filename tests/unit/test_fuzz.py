"""Fuzzing: arbitrary input may only ever raise RejectError from a stage, and never escape Processor.

Also: every output the Processor writes must decode and fit its Avro schema strictly (ints in
the 32-bit range of an Avro int, longs in 64 bits), since consumers in other languages check it.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from fastavro.validation import validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import schemas
from pipeline.codec import parse_report_line, split_terminal_info
from pipeline.crypto.suites import Suite
from pipeline.errors import RejectError
from pipeline.generate import PlanConfig, PlannedReport, plan_reports
from pipeline.process import Processor, Result
from pipeline.profile import codes
from pipeline.stages.decode import decode

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
NOW_MS = 1_763_600_405_000
INT64 = st.integers(-(2**63), 2**63 - 1)
SAMPLE_FIELDS = st.sampled_from([
    "", " ", "2025-11-20 08:59:30", "2025-02-30 00:00:00", "09:00:00", "192.168.1.1", "fe80::1%eth0",
    "24008888000000000000000000000001", "AA-BB-CC-DD-EE-FF", "AA-BB:CC-DD-EE-FF", "31.2,121.4", "nan,1",
    "1e999,0", "0", "4294967295", "18446744073709551616", "-1", "\x00", "\u0085", "\ud7ff", "x" * 200,
])  # fmt: skip
FIELD = st.one_of(SAMPLE_FIELDS, st.text(max_size=40), st.text(alphabet=string.digits + ":-. ,", max_size=25))


def only_reject_errors(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except RejectError as error:
        assert error.code in codes(), error.code


# --- stages -----------------------------------------------------------------------------------


@FUZZ
@given(value=st.binary(max_size=300))
def test_decode_arbitrary_bytes(value: bytes) -> None:
    only_reject_errors(decode, value, "0101")


@FUZZ
@given(body=st.binary(max_size=300))
def test_decode_arbitrary_body_behind_a_valid_header(body: bytes) -> None:
    header = schemas.encode("lookthrough.ReportEnvelope", _envelope_dict())[:10]
    only_reject_errors(decode, header + body, "0101")


def _envelope_dict(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "report_id": "R1", "reporter_type": "FUTURES_COMPANY", "reporter_id": "0101", "broker_id": "0101",
        "investor_id": "000000000001", "user_id": "000000000001", "trading_day": "20251120",
        "received_at": NOW_MS, "report": "", "correction_of": None,
    }  # fmt: skip
    base.update(over)
    return base


ENVELOPE = st.fixed_dictionaries({
    "report_id": st.one_of(st.just("R1"), st.text(max_size=70)),
    "reporter_type": st.sampled_from(["FUTURES_COMPANY", "EXCHANGE"]),
    "reporter_id": st.one_of(st.just("0101"), st.text(max_size=12)),
    "broker_id": st.one_of(st.just("0101"), st.text(max_size=12)),
    "investor_id": st.one_of(st.just("000000000001"), st.text(max_size=14)),
    "user_id": st.one_of(st.just("000000000001"), st.text(max_size=17)),
    "trading_day": st.one_of(st.just("20251120"), st.text(max_size=10), st.text(string.digits, max_size=9)),
    "received_at": INT64,
    "report": st.one_of(st.text(max_size=200), st.lists(FIELD, min_size=9, max_size=9).map("@".join)),
    "correction_of": st.one_of(st.none(), st.text(max_size=70)),
})  # fmt: skip


@FUZZ
@given(envelope=ENVELOPE)
def test_decode_arbitrary_envelopes(envelope: dict[str, Any]) -> None:
    only_reject_errors(decode, schemas.encode("lookthrough.ReportEnvelope", envelope), "0101")


@FUZZ
@given(line=st.one_of(st.text(max_size=300), st.lists(FIELD, min_size=7, max_size=11).map("@".join)))
def test_parse_report_line_arbitrary_text(line: str) -> None:
    only_reject_errors(parse_report_line, line)


@FUZZ
@given(plaintext=st.one_of(
    st.binary(max_size=300),
    st.lists(FIELD, min_size=1, max_size=15).map(lambda parts: "@".join(parts).encode("utf-8", "surrogatepass")),
))  # fmt: skip
def test_split_terminal_info_arbitrary_bytes(plaintext: bytes) -> None:
    only_reject_errors(split_terminal_info, plaintext)


@st.composite
def plaintexts(draw: st.DrawFn, layouts: dict[int, tuple[str, ...]]) -> bytes:
    """Arbitrary bytes, or the right number of fields for a layout with arbitrary contents."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=1024))
    code = draw(st.sampled_from(sorted(layouts)))
    head = draw(st.one_of(st.just(str(code)), FIELD))
    body = [draw(FIELD) for _ in layouts[code][1:]]
    data = "@".join([head, *body]).encode("utf-8", "surrogatepass")
    return data[:1024]


LINE_FIELDS = st.fixed_dictionaries({
    "app_type": st.sampled_from([1, 2, 3, 4]),
    "public_ip": st.one_of(st.just("58.20.30.40"), FIELD),
    "public_port": st.one_of(st.just("51234"), FIELD),
    "login_time": st.one_of(st.just("2025-11-20 09:00:00"), st.just("23:59:59"), st.just("00:00:00"), FIELD),
    "relay_app_id": st.sampled_from(["", "CT_RELAY_V1.0.0"]),
})  # fmt: skip


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_normalize_arbitrary_plaintext(kit: Any, data: st.DataObject) -> None:
    plaintext = data.draw(plaintexts(kit.spec_layouts))
    line = kit.line(**data.draw(LINE_FIELDS))
    envelope = kit.envelope(received_at=data.draw(st.one_of(st.just(NOW_MS), INT64)))
    only_reject_errors(lambda: kit.normalize(plaintext, line=line, envelope=envelope))


@pytest.mark.parametrize("suite", [Suite.RSA, Suite.X25519, Suite.SM4])
def test_keyring_decrypt_arbitrary_blobs(kit: Any, suite: Suite) -> None:
    version = kit.versions[suite]

    @settings(max_examples=30 if suite is Suite.RSA else 150, deadline=None, derandomize=True)
    @given(blob=st.one_of(st.binary(max_size=400), st.binary(max_size=400).map(lambda b: bytes([suite]) + b)))
    def check(blob: bytes) -> None:
        only_reject_errors(kit.keyring.decrypt, kit.vendor_id, version, blob, NOW_MS)

    check()


# --- the processor ----------------------------------------------------------------------------------


def check_result(result: Result, value: bytes | None) -> None:
    """A Result is well formed: a known code, the right outputs, every output strictly valid Avro."""
    assert isinstance(result, Result)
    topics = sorted(o.topic for o in result.outputs)
    if result.code is not None:
        assert result.code in codes() and codes()[result.code].kind == "reject"
        assert len(topics) == 2 and topics[0] == "lt.dlq" and topics[1].startswith("lt.feedback.")
    else:
        assert "lt.reports" in topics and sum(t.startswith("lt.feedback.") for t in topics) == 1
        assert set(result.warnings) <= set(codes())
    for output in result.outputs:
        name, datum = schemas.decode(output.value)
        assert validate(datum, schemas.parsed(name), raise_errors=False), (output.topic, name)
        if name == "lookthrough.DeadLetter":
            assert datum["original_value"] == value if value is not None else datum["original_value"] in (None, b"")


def process(proc: Processor, topic: str, value: Any, key: bytes | None = None, offset: int = 0) -> Result:
    try:
        result = proc.process(topic, 0, offset, key, value, NOW_MS)
    except Exception as exc:  # the point of these tests: nothing escapes
        pytest.fail(f"Processor.process raised {type(exc).__name__}: {exc}")
    check_result(result, value)
    return result


@pytest.fixture(scope="module")
def proc(kit: Any) -> Processor:
    return kit.processor()


@FUZZ
@given(value=st.binary(max_size=400), reporter=st.text(max_size=12), key=st.one_of(st.none(), st.binary(max_size=20)))
def test_processor_arbitrary_bytes(proc: Processor, value: bytes, reporter: str, key: bytes | None) -> None:
    process(proc, "lt.ingress." + reporter, value, key)


@FUZZ
@given(envelope=ENVELOPE)
def test_processor_arbitrary_envelopes(proc: Processor, envelope: dict[str, Any]) -> None:
    process(proc, "lt.ingress.0101", schemas.encode("lookthrough.ReportEnvelope", envelope))


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_processor_arbitrary_sealed_reports(kit: Any, proc: Processor, data: st.DataObject) -> None:
    plaintext = data.draw(plaintexts(kit.spec_layouts))
    line = data.draw(LINE_FIELDS)
    line["vendor_id"] = data.draw(st.sampled_from(["CTP", "ESUNNY", "NOBODY"]))
    envelope = {"received_at": data.draw(st.one_of(st.just(NOW_MS), st.integers(0, 2**41)))}
    value = kit.value(plaintext, line=line, envelope=envelope)
    process(proc, kit.topic(), value)


def test_processor_survives_a_null_value(proc: Processor) -> None:
    # A Kafka record may carry no value (a tombstone); decode() accepts None and says E101.
    result = process(proc, "lt.ingress.0101", None)
    assert result.code == "E101"


def _bare_time_of(ms: int) -> str:
    seconds = (ms + 8 * 3_600_000) % 86_400_000 // 1000  # China time of day
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


LONG_MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("received_at", "login"),
    [
        (-(2**63), "00:00:00"),  # China midnight of that day is before the smallest long
        # Two minutes after received_at (within the 5-minute tolerance) is past the largest long.
        (LONG_MAX - 60_000, _bare_time_of(LONG_MAX + 60_000)),
    ],
)
def test_processor_survives_extreme_received_at(kit: Any, proc: Processor, received_at: int, login: str) -> None:
    # received_at is the reporter's clock, any Avro long; a bare login time is dated from it.
    value = kit.value(kit.plaintext(1), line={"login_time": login}, envelope={"received_at": received_at})
    process(proc, kit.topic(), value)


@pytest.mark.parametrize("flags", ["2147483648", "4294967295"])
def test_accepted_record_fits_its_schema(kit: Any, proc: Processor, flags: str) -> None:
    process(proc, kit.topic(), kit.value(kit.plaintext(1, flags)))


# --- mutated valid reports ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_reports(kit: Any) -> list[PlannedReport]:
    planned = plan_reports(kit.market, kit.keys, PlanConfig(reports=60, defect_rate=0.0, seed=11))
    return [p for p in planned if p.truth.outcome == "accepted"]


def test_unmutated_reports_are_accepted(kit: Any, valid_reports: list[PlannedReport]) -> None:
    proc = kit.processor()
    assert len(valid_reports) == 60
    for i, report in enumerate(valid_reports):
        assert process(proc, report.topic, report.value, report.key, i).code is None


MUTATION = st.one_of(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3).map(lambda f: ("flip", f)),
    st.integers(0, 10**6).map(lambda n: ("truncate", n)),
    st.binary(min_size=1, max_size=8).map(lambda b: ("append", b)),
)


def mutate(value: bytes, mutation: tuple[str, Any]) -> bytes:
    kind, arg = mutation
    if kind == "truncate":
        return value[: arg % len(value)]
    if kind == "append":
        return value + arg
    data = bytearray(value)
    for position, mask in arg:
        data[position % len(data)] ^= mask
    return bytes(data)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 59), mutation=MUTATION)
def test_mutated_reports_never_escape(
    proc: Processor, valid_reports: list[PlannedReport], index: int, mutation: tuple[str, Any]
) -> None:
    report = valid_reports[index]
    mutated = mutate(report.value, mutation)
    result = process(proc, report.topic, mutated, report.key, index)
    if mutation[0] == "truncate" or mutation[0] == "append":
        assert result.code == "E101"  # a single-object value with missing or trailing bytes
