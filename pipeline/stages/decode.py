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

ENVELOPE = "lookthrough.ReportEnvelope"
_REQUIRED = ("report_id", "reporter_id", "broker_id", "investor_id", "user_id", "trading_day", "report")
_IDENTIFIERS = ("report_id", "reporter_id", "broker_id", "investor_id", "user_id")


@dataclass(frozen=True, slots=True)
class Decoded:
    envelope: dict[str, Any]
    line: ReportLine
    schema_fingerprint: str


def check_envelope(envelope: dict[str, Any], topic_reporter: str) -> None:
    """Field presence, identifier syntax, trading day, and the topic/reporter match."""
    for name in _REQUIRED:
        if not envelope.get(name):
            raise EnvelopeError("E102", f"envelope field {name} is missing or empty")
    for name in _IDENTIFIERS:
        check_identifier(name, envelope[name])
    day = envelope["trading_day"]
    if len(day) != 8 or not day.isascii() or not day.isdigit():
        raise EnvelopeError("E104", "trading_day is not YYYYMMDD")
    try:
        date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        raise EnvelopeError("E104", "trading_day is not a calendar date") from None
    if envelope["correction_of"] is not None:
        check_identifier("report_id", envelope["correction_of"])
    if envelope["reporter_id"] != topic_reporter:
        raise EnvelopeError("E105", "envelope reporter_id differs from the ingress topic's reporter")


def decode(value: bytes | None, topic_reporter: str) -> Decoded:
    """Decode one ingress value; see the module docstring for the errors."""
    _, envelope = schemas.decode(value, expected=ENVELOPE)
    check_envelope(envelope, topic_reporter)
    line = parse_report_line(envelope["report"])
    return Decoded(envelope, line, schemas.writer_fingerprint_hex(value))  # type: ignore[arg-type]
