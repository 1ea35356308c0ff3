"""One ingress record through every stage: decode → decrypt → normalize → enrich → route.

`Processor.process` is pure apart from the device-sharing state it updates: it returns
the output records (topic, key, Avro single-object value) instead of producing them, so
the stream app, the benchmarks and the tests share exactly this code. Every input yields
exactly one feedback record, plus either the accepted outputs or one dead letter.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

from pipeline import schemas
from pipeline.config import PROCESSING_SYSTEM, Settings
from pipeline.crypto.suites import blob_suite
from pipeline.errors import RejectError
from pipeline.refdata import ReferenceData
from pipeline.stages import decode, enrich, normalize, route

REPORTS = "lookthrough.TerminalRecord"
EXCHANGE = "lookthrough.ExchangeRecord"
FEEDBACK = "lookthrough.Feedback"
DEAD_LETTER = "lookthrough.DeadLetter"


class Decrypting(Protocol):
    def decrypt(self, vendor_id: str, key_version: int, blob: bytes, now_ms: int | None = None) -> bytes: ...


class Output(NamedTuple):
    """One record to produce. A named tuple: an accepted report makes three or four of them, and a
    tuple is built in a third of a frozen dataclass's time (~0.2 µs against ~0.6)."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Opened:
    """A record's first stage, done ahead of the others (`Processor.open`): the decoded record or
    the RejectError decoding raised, and possibly a call that returns its plaintext (decrypted
    elsewhere, `pipeline.ahead`) or raises the decryption's RejectError."""

    decoded: decode.Decoded | None
    error: RejectError | None = None
    plaintext: Callable[[], bytes] | None = None

    def with_plaintext(self, plaintext: Callable[[], bytes]) -> Opened:
        return replace(self, plaintext=plaintext)

    def decoded_or_raise(self) -> decode.Decoded:
        if self.decoded is None:
            assert self.error is not None, "an Opened holds a decoded record or its error"
            raise self.error
        return self.decoded


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one input: `code` is None when accepted."""

    outputs: list[Output]
    code: str | None
    warnings: tuple[str, ...] = ()


class Processor:
    def __init__(
        self,
        settings: Settings,
        keyring: Decrypting,
        ref: ReferenceData,
        sharing: MutableMapping[str, dict[str, int]] | None = None,
    ) -> None:
        self.settings = settings
        self.keyring = keyring
        self.ref = ref
        self.sharing: MutableMapping[str, dict[str, int]] = {} if sharing is None else sharing
        p = settings.pipeline
        self.normalize_settings = normalize.NormalizeSettings(
            p.time_skew_seconds * 1000, normalize.NormalizeSettings.from_profile().login_future_tolerance_ms
        )
        # One pass writes the TerminalRecord and every exchange's ExchangeRecord copy of it.
        self.encode_with_views = schemas.view_encoder(REPORTS, EXCHANGE, route.EXCHANGE_VARYING)
        route.check_exchange_fields(self.encode_with_views.fields())
        self.enrich_settings = enrich.EnrichSettings(
            p.fingerprint_key, p.sharing_max_investors, p.sharing_window_seconds * 1000
        )
        self._provenance: dict[tuple[str, str], dict[str, Any]] = {}

    def provenance(self, schema_fingerprint: str, now_ms: int, source: str) -> dict[str, Any]:
        # All but the time repeat for every record of a reporter and writer schema (decoding admits
        # known schemas only, so there are few): copied from a template, not built field by field.
        template = self._provenance.get((schema_fingerprint, source))
        if template is None:
            template = self._provenance[(schema_fingerprint, source)] = {
                "source": source,
                "processing_system": PROCESSING_SYSTEM,
                "pipeline_instance": self.settings.pipeline.instance,
                "pipeline_version": self.settings.pipeline.version,
                "schema_fingerprint": schema_fingerprint,
            }
        return {**template, "processed_at": now_ms}

    def open(self, topic: str, value: bytes | None) -> Opened:
        """The decode stage alone, for `process(..., opened=)` later."""
        try:
            return Opened(decode.decode(value, self.settings.topics.reporter_of(topic)))
        except RejectError as error:
            return Opened(None, error)

    def accept(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, now_ms: int,
        opened: Opened | None = None,
    ) -> dict[str, Any]:
        """Run the stages (from `opened` on, if given); return the enriched TerminalRecord dict or
        raise RejectError."""
        return self._accept(self.settings.topics.reporter_of(topic), topic, partition, offset, value, now_ms, opened)

    def _accept(
        self, reporter: str, topic: str, partition: int, offset: int, value: bytes | None, now_ms: int,
        opened: Opened | None,
    ) -> dict[str, Any]:
        decoded = decode.decode(value, reporter) if opened is None else opened.decoded_or_raise()
        line = decoded.line
        if opened is not None and opened.plaintext is not None:
            plaintext = opened.plaintext()
        else:
            plaintext = self.keyring.decrypt(line.vendor_id, line.key_version, line.terminal_info, now_ms)
        record = normalize.normalize(decoded.envelope, line, plaintext, self.normalize_settings)
        record["suite"] = blob_suite(line.terminal_info).label
        enrich.enrich(record, self.ref, self.enrich_settings)
        # W409: the sharing state is kept per unique identifier of the device (see enrich).
        enrich.sharing_warning(record, self.sharing, self.enrich_settings)
        record["source"] = {"topic": topic, "partition": partition, "offset": offset}
        record["provenance"] = self.provenance(decoded.schema_fingerprint, now_ms, reporter)
        return record

    def process(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, now_ms: int,
        opened: Opened | None = None,
    ) -> Result:
        """Every stage of one record (from `opened` on, if given: see `open`)."""
        topics = self.settings.topics
        reporter = topics.reporter_of(topic)
        try:
            record = self._accept(reporter, topic, partition, offset, value, now_ms, opened)
        except RejectError as error:
            report_id, correction_of = _identity(value)
            original = value if value is not None else b""  # a tombstone on an ingress topic
            dlq = route.dead_letter(
                key=key, value=original, topic=topic, partition=partition, offset=offset, error=error,
                reporter_id=reporter, report_id=report_id, failed_at=now_ms,
                processing_system=PROCESSING_SYSTEM,
            )  # fmt: skip
            # Input we cannot even read still gets feedback, named by its position.
            feedback_id = report_id or f"{topic}/{partition}/{offset}"
            feedback = route.rejected_feedback(feedback_id, reporter, error, correction_of, now_ms)
            return Result(
                [
                    Output(topics.dlq, key, schemas.encode(DEAD_LETTER, dlq)),
                    Output(topics.feedback(reporter), feedback_id.encode(), schemas.encode(FEEDBACK, feedback)),
                ],
                error.code,
            )
        routes = route.route(record, self.ref.licensed_exchanges(now_ms))
        value, views = self.encode_with_views(record, [route.exchange_variant(record, ex, code) for ex, code in routes])
        outputs = [Output(topics.reports, f"{record['reporter_id']}:{record['investor_id']}".encode(), value)]
        for (exchange, trading_code), view in zip(routes, views, strict=True):
            outputs.append(Output(topics.exchange(exchange), trading_code.encode(), view))
        feedback = route.accepted_feedback(record, now_ms)
        outputs.append(
            Output(topics.feedback(reporter), record["report_id"].encode(), schemas.encode(FEEDBACK, feedback))
        )
        return Result(outputs, None, tuple(sorted(set(record["warnings"]))))


def _identity(value: bytes | None) -> tuple[str | None, str | None]:
    """Best-effort report_id and correction_of of a rejected value, for feedback and the DLQ."""
    try:
        _, envelope = schemas.decode(value, expected=decode.ENVELOPE)
    except RejectError:
        return None, None
    report_id = envelope.get("report_id") or None
    return report_id, envelope.get("correction_of")
