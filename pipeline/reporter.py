"""Reporter SDK: what a futures company's trading system calls to report one login (profile §2–§4).

Contract:

* `Report` is one login to report: envelope fields, and either a `TerminalInfo` (the collected
  terminal fields, encrypted here) plus the plaintext report-line fields, or a ready `report_line`
  (already sealed elsewhere).
* `Reporter.build(report)` is pure (no network; it reads the clock only when `received_at` is not
  given): terminal fields → `build_terminal_info` → `ReporterKeys.encrypt` under the report's key
  version or the newest usable key of the reporter's environment → `build_report_line` →
  `ReportEnvelope` dict → Avro single-object value. It returns `(topic, key, value)` with topic
  `lt.ingress.<reporter_id>` and key the investor ID. Before returning it checks the result the
  way the pipeline will (`check_envelope`, `parse_report_line`, and `normalize` on the plaintext),
  so a report the pipeline would reject raises `InvalidReport` carrying the profile §7 code.
  `prepare` does the same and also returns the warnings (W404, W406, W407, W408) the report will get.
* `Reporter.send(report)` builds and produces asynchronously with an idempotent producer
  (acks=all, lz4 compression, murmur2_random partitioner so a key lands on the same partition as
  with the Java client and aiokafka). Every delivery outcome is counted: `delivered`, `failures`
  (one `DeliveryFailure` per record, never dropped), and a fatal producer error makes the next
  `send`/`flush` raise `DeliveryError`. `flush(timeout)` returns how many records are still
  undelivered; `raise_for_failures()` turns recorded failures into a `DeliveryError`.
* With `transactional_id`, the producer is transactional: call `init_transactions` once, then
  `begin`, `send`…, `commit` (or `abort`). `lookthrough send` uses this for resumable batches.
* Plaintext terminal information is never logged or put in an exception message; `TerminalInfo`'s
  repr hides the values.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pipeline import schemas
from pipeline.codec import build_report_line, build_terminal_info, check_identifier, parse_report_line
from pipeline.config import TopicNames
from pipeline.crypto.reporter_keys import ReporterKeys
from pipeline.errors import ConfigError, LookthroughError, RejectError
from pipeline.profile import layouts, limits
from pipeline.stages.decode import ENVELOPE, check_envelope
from pipeline.stages.normalize import NormalizeSettings, normalize

log = logging.getLogger(__name__)

REPORTER_TYPES = ("FUTURES_COMPANY", "EXCHANGE")
PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "partitioner": "murmur2_random",
}
"""Producer settings every reporter uses; `config` may add to them but not weaken the guarded ones."""
_GUARDED = {"enable.idempotence": True, "acks": "all"}
_QUEUE_FULL_WAIT_S = 30.0


class InvalidReport(LookthroughError):
    """The SDK refuses to send a report. `code` is the profile §7 code the pipeline would give, if any.

    The message names fields, never their values.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code
        self.message = message


class DeliveryError(LookthroughError):
    """Kafka did not take records: a fatal producer error, a failed transaction, or failed deliveries."""

    def __init__(self, message: str, *, retriable: bool = False, abortable: bool = False, fatal: bool = False):
        super().__init__(message)
        self.retriable = retriable
        self.abortable = abortable
        self.fatal = fatal


@dataclass(frozen=True, slots=True, repr=False)
class TerminalInfo:
    """Collected terminal information: layout code (profile §5), field name → text, collect_flags."""

    type_code: int
    fields: Mapping[str, str] = field(default_factory=dict)
    collect_flags: int = 0

    def __repr__(self) -> str:  # the values are personal data: never show them
        return f"TerminalInfo(type_code={self.type_code}, fields=<{len(self.fields)} hidden>, " \
               f"collect_flags={self.collect_flags})"


@dataclass(frozen=True, slots=True)
class Report:
    """One login to report. Give `terminal` and the report-line fields, or a ready `report_line`.

    `broker_id` defaults to the reporter's ID for a futures company; `received_at` (UTC epoch ms)
    to the clock at build time; `key_version` to the newest usable key of the environment.
    """

    report_id: str
    investor_id: str
    user_id: str
    trading_day: str
    terminal: TerminalInfo | None = None
    vendor_id: str = ""
    app_type: int = 1
    public_ip: str = ""
    public_port: int | str = ""
    login_time: str = ""
    app_id: str = ""
    relay_app_id: str = ""
    key_version: int | None = None
    report_line: str | None = None
    broker_id: str | None = None
    correction_of: str | None = None
    received_at: int | None = None


class OutgoingRecord(NamedTuple):
    topic: str
    key: bytes
    value: bytes


class Prepared(NamedTuple):
    record: OutgoingRecord
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """A record Kafka did not accept: its report ID and the client's error name and text."""

    report_id: str
    error: str
    reason: str
    retriable: bool
    fatal: bool


DeliveryCallback = Callable[[str, KafkaError | None], None]
"""Called once per record with its report ID and None (delivered) or the error."""


class ProducerLike(Protocol):
    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None]) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...
    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...
    def __len__(self) -> int: ...


def producer_config(
    bootstrap: str, config: Mapping[str, Any] | None = None, transactional_id: str | None = None
) -> dict[str, Any]:
    """The confluent-kafka producer configuration: defaults, then `config`, then the transactional ID."""
    merged: dict[str, Any] = {"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS, **(config or {})}
    for key, required in _GUARDED.items():
        if str(merged[key]).lower() != str(required).lower():
            raise ConfigError(f"producer setting {key} must stay {required}")
    if transactional_id is not None:
        merged["transactional.id"] = transactional_id
    return merged


class Reporter:
    """Builds, seals and produces reports for one reporter; see the module docstring for the contract."""

    def __init__(
        self,
        bootstrap: str,
        reporter_id: str,
        keys: ReporterKeys,
        *,
        reporter_type: str = "FUTURES_COMPANY",
        environment: str = "production",
        config: Mapping[str, Any] | None = None,
        topics: TopicNames | None = None,
        transactional_id: str | None = None,
        producer_factory: Callable[[dict[str, Any]], ProducerLike] | None = None,
    ) -> None:
        """No I/O: the producer is created on first use. ConfigError for a bad identity or config."""
        try:
            check_identifier("reporter_id", reporter_id)
        except RejectError as exc:
            raise ConfigError(f"reporter: {exc.message}") from None
        if reporter_type not in REPORTER_TYPES:
            raise ConfigError(f"reporter type must be one of {REPORTER_TYPES}")
        self.reporter_id = reporter_id
        self.reporter_type = reporter_type
        self.environment = environment
        self.topic = (topics or TopicNames()).ingress(reporter_id)
        self.transactional_id = transactional_id
        self._keys = keys
        self._config = producer_config(
            bootstrap, {"client.id": f"lookthrough-reporter-{reporter_id}", **(config or {})}, transactional_id
        )
        self._factory = producer_factory or _kafka_producer
        self._producer: ProducerLike | None = None
        self._normalize = NormalizeSettings.from_profile()
        self._fatal: KafkaError | None = None
        self.delivered = 0
        self._failures: list[DeliveryFailure] = []

    # --- building (pure) ---------------------------------------------------------------------

    def build(self, report: Report, *, now_ms: int | None = None) -> OutgoingRecord:
        """`(topic, key, value)` for `report`; raises InvalidReport (with the profile code) if it is bad."""
        return self.prepare(report, now_ms=now_ms).record

    def prepare(self, report: Report, *, now_ms: int | None = None) -> Prepared:
        """Like `build`, plus the warnings the pipeline will attach to the report."""
        received_at = report.received_at
        if received_at is None:
            received_at = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        broker_id = report.broker_id
        if broker_id is None:
            if self.reporter_type == "EXCHANGE":
                raise InvalidReport("broker_id (the member's ID) is required in an exchange's report", "E102")
            broker_id = self.reporter_id
        plaintext: bytes | None = None
        if report.terminal is not None:
            if report.report_line is not None:
                raise InvalidReport("give either terminal information or a ready report line, not both")
            plaintext = _terminal_plaintext(report.terminal)
            line = self._sealed_line(report, plaintext, received_at)
        elif report.report_line is not None:
            line = report.report_line
        else:
            raise InvalidReport("terminal information or a ready report line is required")
        envelope: dict[str, Any] = {
            "report_id": report.report_id,
            "reporter_type": self.reporter_type,
            "reporter_id": self.reporter_id,
            "broker_id": broker_id,
            "investor_id": report.investor_id,
            "user_id": report.user_id,
            "trading_day": report.trading_day,
            "received_at": received_at,
            "report": line,
            "correction_of": report.correction_of,
        }
        warnings: tuple[str, ...] = ()
        try:
            check_envelope(envelope, self.reporter_id)
            parsed = parse_report_line(line)
            if plaintext is not None:
                warnings = tuple(normalize(envelope, parsed, plaintext, self._normalize)["warnings"])
        except RejectError as exc:
            raise InvalidReport(exc.message, exc.code) from None
        try:
            value = schemas.encode(ENVELOPE, envelope)
        except ValueError:
            raise InvalidReport("envelope does not fit the ReportEnvelope schema (check field types)") from None
        return Prepared(OutgoingRecord(self.topic, report.investor_id.encode("utf-8"), value), warnings)

    def _sealed_line(self, report: Report, plaintext: bytes, received_at: int) -> str:
        version = report.key_version
        if version is None:
            version = self._keys.current_version(self.environment, received_at)
        vendor = report.vendor_id
        try:
            check_identifier("vendor_id", vendor)  # before sealing: it is the associated data
        except RejectError as exc:
            raise InvalidReport(exc.message, exc.code) from None
        try:
            blob = self._keys.encrypt(vendor, version, plaintext)
        except ConfigError as exc:
            raise InvalidReport(f"cannot seal: {exc}") from None
        try:
            return build_report_line(
                vendor_id=vendor, key_version=version, terminal_info=blob, app_type=report.app_type,
                public_ip=report.public_ip, public_port=report.public_port, login_time=report.login_time,
                app_id=report.app_id, relay_app_id=report.relay_app_id,
            )  # fmt: skip
        except ValueError:
            raise InvalidReport("a report-line field contains '@'", "E103") from None

    # --- producing ---------------------------------------------------------------------------

    @property
    def producer(self) -> ProducerLike:
        """The Kafka producer, created on first use."""
        if self._producer is None:
            self._producer = self._factory({**self._config, "error_cb": self._on_error})
        return self._producer

    @property
    def failures(self) -> list[DeliveryFailure]:
        """Every record Kafka did not take so far (a copy)."""
        return list(self._failures)

    def send(self, report: Report, *, on_delivery: DeliveryCallback | None = None) -> str:
        """Build and produce `report`; returns its report ID. InvalidReport before anything is produced."""
        record = self.build(report)
        self.produce(report.report_id, record, on_delivery=on_delivery)
        return report.report_id

    def produce(self, report_id: str, record: OutgoingRecord, *, on_delivery: DeliveryCallback | None = None) -> None:
        """Produce an already built record; waits (serving callbacks) while the local queue is full."""
        self._check_fatal()
        producer = self.producer

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            self._on_delivery(report_id, err)
            if on_delivery is not None:
                on_delivery(report_id, err)

        deadline = time.monotonic() + _QUEUE_FULL_WAIT_S
        while True:
            try:
                producer.produce(record.topic, value=record.value, key=record.key, on_delivery=delivered)
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise DeliveryError(f"producer queue stayed full for {_QUEUE_FULL_WAIT_S:g} s") from None
                producer.poll(0.1)
            except KafkaException as exc:
                raise _delivery_error("produce", exc) from None
        producer.poll(0)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks; returns how many were served."""
        return self.producer.poll(timeout) if self._producer is not None else 0

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to `timeout` s for outstanding deliveries; returns how many are still undelivered."""
        if self._producer is None:
            return 0
        remaining = self._producer.flush(timeout)
        self._check_fatal()
        return remaining

    def raise_for_failures(self) -> None:
        """DeliveryError if any record failed so far (and forget them)."""
        if self._failures:
            failures, self._failures = self._failures, []
            first = failures[0]
            raise DeliveryError(
                f"{len(failures)} record(s) not delivered; first: report {first.report_id}: {first.reason}",
                retriable=all(f.retriable for f in failures),
            )

    # --- transactions ------------------------------------------------------------------------

    def init_transactions(self, timeout: float = 60.0) -> None:
        """Register the transactional ID, fencing any earlier producer with it and aborting its open transaction."""
        self._transactional("init_transactions", lambda p: p.init_transactions(timeout))

    def begin(self) -> None:
        self._transactional("begin_transaction", lambda p: p.begin_transaction())

    def commit(self, timeout: float = 60.0) -> None:
        """Flush and commit; DeliveryError(retriable | abortable | fatal) if the transaction did not commit."""
        self._transactional("commit_transaction", lambda p: p.commit_transaction(timeout))

    def abort(self, timeout: float = 60.0) -> None:
        self._transactional("abort_transaction", lambda p: p.abort_transaction(timeout))

    def _transactional(self, what: str, call: Callable[[ProducerLike], None]) -> None:
        if self.transactional_id is None:
            raise ConfigError(f"{what} needs a Reporter built with transactional_id")
        try:
            call(self.producer)
        except KafkaException as exc:
            raise _delivery_error(what, exc) from None

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> int:
        """Flush and release the producer; returns how many records stayed undelivered."""
        if self._producer is None:
            return 0
        producer, self._producer = self._producer, None
        remaining = producer.flush(timeout)
        close = getattr(producer, "close", None)
        if callable(close):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                close()  # aborts an open transaction, if any; when it cannot, the next run's fencing does
            for warning in caught:
                log.info("closing the producer: %s", warning.message)
        return int(remaining)

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        transactional = self.transactional_id is not None
        return f"Reporter({self.reporter_id!r}, topic={self.topic!r}, transactional={transactional})"

    # --- callbacks ---------------------------------------------------------------------------

    def _on_delivery(self, report_id: str, err: KafkaError | None) -> None:
        if err is None:
            self.delivered += 1
            return
        self._failures.append(DeliveryFailure(report_id, err.name(), err.str(), err.retriable(), err.fatal()))

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
            log.error("kafka producer fatal error: %s", err.str())
        else:
            log.warning("kafka producer: %s", err.str())

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            raise DeliveryError(f"producer failed fatally: {self._fatal.name()}: {self._fatal.str()}", fatal=True)


def _kafka_producer(config: dict[str, Any]) -> ProducerLike:
    return cast(ProducerLike, Producer(config))


def _terminal_plaintext(terminal: TerminalInfo) -> bytes:
    """The §5 plaintext; InvalidReport with the code the pipeline would give."""
    if terminal.type_code not in layouts():
        raise InvalidReport(f"unknown terminal type {terminal.type_code}", "E301")
    layout = layouts()[terminal.type_code]
    unknown = sorted(set(terminal.fields) - set(layout.fields[1:-1]))
    if unknown:
        raise InvalidReport(f"terminal fields not in layout {layout.code} ({layout.kind}): {unknown}")
    if any(not isinstance(v, str) for v in terminal.fields.values()):
        raise InvalidReport("terminal field values must be text")
    if type(terminal.collect_flags) is not int or terminal.collect_flags < 0:
        raise InvalidReport("collect_flags must be a non-negative integer", "E303")
    try:
        plaintext = build_terminal_info(terminal.type_code, terminal.fields, terminal.collect_flags)
    except ValueError:
        raise InvalidReport("a terminal field contains '@'", "E302") from None
    if len(plaintext) > limits().plaintext_max_bytes:
        raise InvalidReport(f"terminal information longer than {limits().plaintext_max_bytes} bytes", "E104")
    return plaintext


def _delivery_error(what: str, exc: KafkaException) -> DeliveryError:
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return DeliveryError(f"{what} failed: {exc}")
    return DeliveryError(
        f"{what} failed: {err.name()}: {err.str()}",
        retriable=err.retriable(),
        abortable=err.txn_requires_abort(),
        fatal=err.fatal(),
    )
