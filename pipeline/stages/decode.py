"""Decode stage: Kafka value bytes → checked `ReportEnvelope` dict and parsed `ReportLine`.

Raises `EnvelopeError`: E101 not a known single-object ReportEnvelope, E102 a required
field empty, E103/E104 report-line structure, E104 over-long or illegal identifiers,
E105 the envelope names another reporter than the ingress topic it arrived on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pipeline import schemas
from pipeline.codec import ReportLine, check_identifier, parse_report_line
from pipeline.errors import EnvelopeError
from pipeline.profile import limits

ENVELOPE = "lookthrough.ReportEnvelope"
_REQUIRED = ("report_id", "reporter_id", "broker_id", "investor_id", "user_id", "trading_day", "report")
_IDENTIFIERS = ("report_id", "reporter_id", "broker_id", "investor_id", "user_id")


@dataclass(frozen=True, slots=True)
class Decoded:
    envelope: dict[str, Any]
    line: ReportLine
    schema_fingerprint: str


_set_envelope, _set_line, _set_schema_fingerprint = (getattr(Decoded, name).__set__ for name in Decoded.__slots__)

# Trading days already seen valid (bounded); a repeat skips the digit checks and date() (~0.7 µs).
_VALID_DAYS: set[str] = set()
_VALID_DAYS_LIMIT = 4096


def check_envelope(envelope: dict[str, Any], topic_reporter: str) -> None:
    """Field presence, identifier syntax, trading day, and the topic/reporter match."""
    if not all(map(envelope.get, _REQUIRED)):
        for name in _REQUIRED:
            if not envelope.get(name):
                raise EnvelopeError("E102", f"envelope field {name} is missing or empty")
    # check_identifier for each, fast for the valid case: the values are non-empty (E102 above), so one
    # match over them joined settles the characters of all five; anything wrong takes the full checks.
    lim = limits()
    ids = [envelope["report_id"], envelope["reporter_id"], envelope["broker_id"], envelope["investor_id"],
           envelope["user_id"]]  # fmt: skip  # _IDENTIFIERS
    joined = lim.ids_pattern
    try:
        all_match = joined is not None and joined.fullmatch("".join(ids))
    except TypeError:  # not all text: the full checks below fail as they always did
        all_match = False
    max_length = lim.max_length
    if not all_match or (
        len(ids[0]) > max_length["report_id"] or len(ids[1]) > max_length["reporter_id"]
        or len(ids[2]) > max_length["broker_id"] or len(ids[3]) > max_length["investor_id"]
        or len(ids[4]) > max_length["user_id"]
    ):  # fmt: skip
        for name in _IDENTIFIERS:
            check_identifier(name, envelope[name])
    day = envelope["trading_day"]
    if type(day) is not str or day not in _VALID_DAYS:
        if len(day) != 8 or not day.isascii() or not day.isdigit():
            raise EnvelopeError("E104", "trading_day is not YYYYMMDD")
        try:
            date(int(day[:4]), int(day[4:6]), int(day[6:]))
        except ValueError:
            raise EnvelopeError("E104", "trading_day is not a calendar date") from None
        if len(_VALID_DAYS) >= _VALID_DAYS_LIMIT:
            _VALID_DAYS.clear()
        _VALID_DAYS.add(day)
    if envelope["correction_of"] is not None:
        check_identifier("report_id", envelope["correction_of"])
    if envelope["reporter_id"] != topic_reporter:
        raise EnvelopeError("E105", "envelope reporter_id differs from the ingress topic's reporter")


def decode(value: bytes | None, topic_reporter: str) -> Decoded:
    """Decode one ingress value; see the module docstring for the errors."""
    _, envelope = schemas.decode(value, expected=ENVELOPE)
    check_envelope(envelope, topic_reporter)
    line = parse_report_line(envelope["report"])
    # Decoded(...) without the frozen-dataclass __init__ (one object.__setattr__ per field, ~0.2 µs);
    # as for ReportLine in pipeline.codec, valid while Decoded has no __post_init__.
    decoded = object.__new__(Decoded)
    _set_envelope(decoded, envelope)
    _set_line(decoded, line)
    _set_schema_fingerprint(decoded, schemas.writer_fingerprint_hex(value))  # type: ignore[arg-type]
    return decoded
