"""`lookthrough send FILE`: submit a batch file of reports, resumable after interruption without duplicates.

File format: `pipeline.batch.FORMAT_DOC`. Every valid line is built, sealed and checked by
`pipeline.reporter.Reporter`; invalid lines are reported with their line number and profile code
and are not sent. Exit status: 0 every line sent or already sent; 1 some lines failed; 2 nothing
sent (bad arguments, keys, state); 3 stopped early on a Kafka error (rerun to resume); 130 interrupted.

Resume design (report_id is the idempotence key):

1. Transactions. Records go out in Kafka transactions of `--batch-size` records under a
   transactional ID that is stable for the batch (`lt-send.<reporter>.<random>`, created with the
   state file and kept in it). `init_transactions` at start fences any earlier process of the same
   batch and aborts its open transaction, so an interrupted run's unconfirmed records are never
   visible to `read_committed` consumers and a zombie cannot add more.
2. State file (default `FILE.sent-state`). Line 1 is a snapshot: reporter, topic, transactional ID,
   the report IDs known sent, and `scan_from` (each partition's end offset when this run started,
   before it produced anything). After every committed transaction one line `{"sent": [...]}` is
   appended and fsynced; `{"closed": true}` is appended when a run ends with nothing in doubt. A
   torn last line (a crash while appending) is ignored. The snapshot is rewritten atomically
   (temporary file, fsync, rename) at the start of each run, compacting the journal.
3. Read-back. The one gap left is a crash after a commit and before its journal line. So when the
   state was not closed, the next run, after fencing, reads the topic from `scan_from` to its end
   with a `read_committed` consumer and adds every report ID found to the sent set. Every record
   the interrupted run committed has an offset ≥ `scan_from`, and fencing guarantees nothing more
   of it can appear, so the sent set is then exact. Lines whose report ID is in the set are skipped.

Because the state holds report IDs rather than line numbers, a file fixed after a run (a bad line
corrected, lines reordered) resumes correctly. Downstream consumers of `lt.ingress.*` must read
with `isolation.level=read_committed`, or they would also see the aborted records. Two runs on
the same file or state file are refused (file locks).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipeline import schemas
from pipeline.arguments import positive_float, positive_int
from pipeline.batch import BatchEntry, LineProblem, count_reports, detect_format, read_batch
from pipeline.config import Settings
from pipeline.crypto.reporter_keys import ReporterKeys
from pipeline.errors import ConfigError, EnvelopeError
from pipeline.reporter import REPORTER_TYPES, DeliveryError, InvalidReport, OutgoingRecord, Reporter
from pipeline.stages.decode import ENVELOPE

STATE_FORMAT = "lookthrough-send-state/1"
EXIT_OK, EXIT_FAILED_LINES, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 3, 130
_PURGED = {KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT}
_MAX_ATTEMPTS = 3


# --- state file ------------------------------------------------------------------------------


@dataclass
class SendState:
    """The state file of one batch; see the module docstring (point 2)."""

    path: Path
    reporter: str
    topic: str
    transactional_id: str
    scan_from: dict[int, int] | None
    sent: set[str] = field(default_factory=set)
    closed: bool = False

    @classmethod
    def load_or_new(cls, path: Path, reporter: str, topic: str) -> SendState:
        """Read `path`, or start a new state (not yet written) when it does not exist."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls(path, reporter, topic, f"lt-send.{reporter}.{uuid.uuid4().hex[:16]}", None)
        except OSError as exc:
            raise ConfigError(f"cannot read state file {path}: {exc.strerror}") from None
        lines = data.split(b"\n")
        complete, torn = lines[:-1], lines[-1]  # the part after the last newline was never finished
        if not complete:
            raise ConfigError(f"state file {path} has no complete snapshot; remove it only if nothing was sent")
        head = _json_line(path, 1, complete[0])
        if head.get("format") != STATE_FORMAT:
            raise ConfigError(f"state file {path} is not a {STATE_FORMAT} file")
        if head.get("reporter") != reporter or head.get("topic") != topic:
            owner = f"reporter {head.get('reporter')!r}, topic {head.get('topic')!r}"
            raise ConfigError(f"state file {path} belongs to {owner}")
        try:
            scan_from = head["scan_from"]
            state = cls(
                path, reporter, topic, str(head["transactional_id"]),
                None if scan_from is None else {int(p): int(o) for p, o in scan_from.items()},
                {str(report_id) for report_id in head["sent"]},
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(f"state file {path}: the snapshot on line 1 is incomplete") from None
        for number, raw in enumerate(complete[1:], start=2):
            entry = _json_line(path, number, raw)
            state.sent.update(entry.get("sent", []))
            state.closed = bool(entry.get("closed", False))
        del torn  # a crash while appending: covered by the read-back
        return state

    def write_snapshot(self, scan_from: dict[int, int]) -> None:
        """Atomically replace the file with a compacted snapshot starting a new run at `scan_from`."""
        self.scan_from = dict(scan_from)
        self.closed = False
        head = {
            "format": STATE_FORMAT,
            "reporter": self.reporter,
            "topic": self.topic,
            "transactional_id": self.transactional_id,
            "scan_from": {str(p): o for p, o in sorted(self.scan_from.items())},
            "sent": sorted(self.sent),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(json.dumps(head, separators=(",", ":")) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            raise ConfigError(f"cannot write state file {self.path}: {exc.strerror}") from None

    def append_sent(self, report_ids: list[str]) -> None:
        """Record committed report IDs (one journal line, fsynced)."""
        self._append({"sent": report_ids})
        self.sent.update(report_ids)

    def mark_closed(self) -> None:
        """Record that nothing is in doubt: the next run need not read the topic back."""
        self._append({"closed": True})
        self.closed = True

    def _append(self, entry: dict[str, Any]) -> None:
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # the next run reads the topic back, so nothing is sent twice
            raise ConfigError(f"cannot append to state file {self.path}: {exc.strerror}") from None


def _json_line(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(f"state file {path}: line {number} is corrupt")
    return value


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(*paths: Path) -> Iterator[None]:
    """Exclusive advisory locks on `paths` (created if missing), or ConfigError if another run holds one."""
    with contextlib.ExitStack() as stack:
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
            except OSError as exc:
                raise ConfigError(f"cannot open {path}: {exc.strerror}") from None
            stack.callback(os.close, fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"another lookthrough send is using {path}") from None
        yield


# --- reading the topic back --------------------------------------------------------------------


class IngressReader:
    """A read_committed view of one ingress topic: end offsets, and report IDs written since given offsets."""

    def __init__(self, bootstrap: str, topic: str, reporter: str, config: dict[str, str], timeout_s: float) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap,
            **config,
            # Required though assign() never joins it; under the reporter's own prefix so its ACLs allow it.
            "group.id": f"lt-send.{reporter}.readback-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        })

    def partitions(self) -> list[int]:
        """The topic's partitions; empty if the topic does not exist yet."""
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=self.timeout_s)
        except KafkaException as exc:
            raise DeliveryError(f"cannot read metadata of {self.topic}: {exc}") from None
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return []
        return sorted(topic.partitions)

    def end_offsets(self) -> dict[int, int]:
        """Each partition's high watermark: every record produced later has a higher offset."""
        return {p: self._watermarks(p)[1] for p in self.partitions()}

    def report_ids_since(self, scan_from: dict[int, int]) -> set[str]:
        """Report IDs of committed ReportEnvelopes at offsets ≥ `scan_from` (partitions not named: all)."""
        targets: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for p in self.partitions():
            low, high = self._watermarks(p)
            start = max(scan_from.get(p, low), low)
            if high > start:
                targets[p] = high
                starts.append(TopicPartition(self.topic, p, start))
        found: set[str] = set()
        if not targets:
            return found
        self._consumer.assign(starts)
        deadline = time.monotonic() + self.timeout_s
        while targets:
            if time.monotonic() > deadline:
                raise DeliveryError(
                    f"could not read {self.topic} back to its end within {self.timeout_s:g} s "
                    "(another producer's transaction may be open; retry later)"
                )
            for msg in self._consumer.consume(1000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise DeliveryError(f"reading {self.topic} back failed: {err.str()}")
                    continue
                try:
                    _, envelope = schemas.decode(msg.value(), expected=ENVELOPE)
                except EnvelopeError:
                    continue  # not ours to judge; the pipeline dead-letters it
                found.add(envelope["report_id"])
            for tp in self._consumer.position([TopicPartition(self.topic, p) for p in targets]):
                if tp.offset >= targets[tp.partition]:
                    del targets[tp.partition]
        self._consumer.unassign()
        return found

    def close(self) -> None:
        self._consumer.close()

    def _watermarks(self, partition: int) -> tuple[int, int]:
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=self.timeout_s
            )
        except KafkaException as exc:
            raise DeliveryError(f"cannot read offsets of {self.topic}: {exc}") from None
        return int(low), int(high)


# --- progress and summary ---------------------------------------------------------------------


class Progress:
    """A progress bar on a terminal; elsewhere a plain line every `interval_s` seconds."""

    def __init__(self, total: int, stream: TextIO, *, enabled: bool = True, interval_s: float = 5.0) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.interval_s = 0.1 if self.tty else interval_s
        self.started = time.monotonic()
        self._last = 0.0 if self.tty else self.started

    def update(self, summary: Summary, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self.interval_s):
            return
        self._last = now
        done = summary.processed
        rate = summary.sent / max(now - self.started, 1e-6)
        counts = f"sent {summary.sent} skipped {summary.skipped} failed {len(summary.failed)}"
        if self.tty:
            filled = min(30, 30 * done // self.total)
            eta = f"{(self.total - done) / rate:.0f}s" if rate > 0 and done <= self.total else "?"
            bar = "#" * filled + "." * (30 - filled)
            self.stream.write(f"\r[{bar}] {done}/{self.total} {counts} {rate:.0f}/s ETA {eta}  ")
        else:
            self.stream.write(f"send: {done}/{self.total} lines, {counts}, {rate:.0f} records/s\n")
        self.stream.flush()

    def finish(self, summary: Summary) -> None:
        self.update(summary, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class Failure:
    line: int
    report_id: str | None
    code: str | None
    message: str


@dataclass
class Summary:
    file: str
    topic: str
    dry_run: bool = False
    sent: int = 0
    skipped: int = 0
    found_on_topic: int = 0
    processed: int = 0
    failed: list[Failure] = field(default_factory=list)
    warnings: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    stopped: str | None = None
    last_line: int = 0

    def exit_code(self) -> int:
        if self.stopped == "interrupted":
            return EXIT_INTERRUPTED
        if self.stopped is not None:
            return EXIT_STOPPED
        return EXIT_FAILED_LINES if self.failed else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file, "topic": self.topic, "dry_run": self.dry_run, "sent": self.sent,
            "skipped": self.skipped, "found_on_topic": self.found_on_topic,
            "failed": [vars(f) for f in self.failed],
            "warnings": [{"line": n, "report_id": r, "codes": list(c)} for n, r, c in self.warnings],
            "stopped": self.stopped, "last_line": self.last_line, "exit_code": self.exit_code(),
        }  # fmt: skip

    def print(self, out: TextIO) -> None:
        verb = "valid (dry run, nothing sent)" if self.dry_run else "sent"
        out.write(f"{self.file} → {self.topic}\n")
        out.write(f"  {verb}: {self.sent}\n  skipped (already sent): {self.skipped}")
        found = f" ({self.found_on_topic} found on the topic after an interruption)" if self.found_on_topic else ""
        out.write(found + "\n")
        out.write(f"  failed: {len(self.failed)}\n")
        for f in self.failed:
            rid = f" ({f.report_id})" if f.report_id else ""
            out.write(f"    line {f.line}{rid}: {f.code + ' ' if f.code else ''}{f.message}\n")
        if self.warnings:
            out.write(f"  accepted with warnings: {len(self.warnings)}\n")
            for number, rid, codes in self.warnings[:50]:
                out.write(f"    line {number} ({rid}): {' '.join(codes)}\n")
            if len(self.warnings) > 50:
                out.write(f"    … and {len(self.warnings) - 50} more (see --json)\n")
        if self.stopped:
            out.write(f"  STOPPED after line {self.last_line}: {self.stopped}; rerun the same command to resume\n")


# --- sending ----------------------------------------------------------------------------------


@dataclass
class _Pending:
    line: int
    report_id: str
    record: OutgoingRecord


class BatchSender:
    """Sends a file's entries in transactions and keeps the state file; see the module docstring."""

    def __init__(
        self, reporter: Reporter, state: SendState | None, summary: Summary, progress: Progress,
        *, batch_size: int, timeout_s: float, recovered: set[str] | None = None,
    ) -> None:  # fmt: skip
        self.reporter = reporter
        self.state = state
        self.summary = summary
        self.progress = progress
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.recovered = recovered or set()
        self._batch: list[_Pending] = []
        self._first_line: dict[str, int] = {}
        self._errors: dict[str, KafkaError] = {}
        self._in_transaction = False  # True from begin until the commit is recorded or the abort is done

    def run(self, entries: Iterator[BatchEntry]) -> None:
        """Process every entry; `summary.stopped` says why it ended early, if it did."""
        try:
            for entry in entries:
                self._take(entry)
                self.summary.last_line = entry.line
                self.summary.processed += 1
                self.progress.update(self.summary)
            if self._batch:
                self._commit()
        except KeyboardInterrupt:
            self.summary.stopped = "interrupted"
            self._abort_quietly()
        except DeliveryError as exc:
            self.summary.stopped = str(exc)
            if exc.fatal:
                return  # fenced or broken producer: leave the state open, the next run reads back
            self._abort_quietly()
        # Closed only when no transaction is in doubt (open, or committed but not yet recorded).
        if self.state is not None and not self._in_transaction:
            self.state.mark_closed()

    def _take(self, entry: BatchEntry) -> None:
        if entry.report is None:
            problem = entry.problem or LineProblem(None, "unreadable line")
            self.summary.failed.append(Failure(entry.line, None, problem.code, problem.message))
            return
        report_id = entry.report.report_id
        first = self._first_line.setdefault(report_id, entry.line)
        if first != entry.line:
            message = f"duplicate report_id (first on line {first})"
            self.summary.failed.append(Failure(entry.line, report_id, None, message))
            return
        if self.state is not None and report_id in self.state.sent:
            self.summary.skipped += 1
            self.summary.found_on_topic += report_id in self.recovered
            return
        try:
            prepared = self.reporter.prepare(entry.report)
        except InvalidReport as exc:
            self.summary.failed.append(Failure(entry.line, report_id, exc.code, exc.message))
            return
        if prepared.warnings:
            self.summary.warnings.append((entry.line, report_id, prepared.warnings))
        if self.state is None:  # dry run
            self.summary.sent += 1
            return
        if not self._in_transaction:
            self.reporter.begin()
            self._in_transaction = True
        pending = _Pending(entry.line, report_id, prepared.record)
        self._batch.append(pending)
        self.reporter.produce(report_id, pending.record, on_delivery=self._on_delivery)
        if len(self._batch) >= self.batch_size:
            self._commit()

    def _on_delivery(self, report_id: str, err: KafkaError | None) -> None:
        if err is not None and err.code() not in _PURGED:
            self._errors[report_id] = err

    def _commit(self) -> None:
        """Commit the open transaction, retrying it without records Kafka refuses for good."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                self.reporter.commit(self.timeout_s)
            except DeliveryError as exc:
                if exc.fatal or attempt == _MAX_ATTEMPTS or not (exc.retriable or exc.abortable):
                    raise
                if not exc.abortable:
                    continue  # e.g. a timeout: the outcome is unknown, so commit again (librdkafka's rule)
                self.reporter.abort(self.timeout_s)
                self._in_transaction = False
                self._drop_refused()
                if not self._batch:
                    return
                self._errors.clear()
                self.reporter.begin()
                self._in_transaction = True
                for pending in self._batch:
                    self.reporter.produce(pending.report_id, pending.record, on_delivery=self._on_delivery)
                continue
            self._committed([p.report_id for p in self._batch])
            self._in_transaction = False
            self.summary.sent += len(self._batch)
            self._batch.clear()
            self._errors.clear()
            return

    def _committed(self, report_ids: list[str]) -> None:
        """Called after a transaction committed: record it. (Tests interpose here to crash in the gap.)"""
        assert self.state is not None
        self.state.append_sent(report_ids)

    def _drop_refused(self) -> None:
        """After an abort: fail the lines Kafka refused for good; DeliveryError if it refused them all."""
        refused = {rid: err for rid, err in self._errors.items() if not err.retriable()}
        if refused and len(refused) == len(self._batch):
            first = next(iter(refused.values()))
            raise DeliveryError(f"Kafka refused every record of the transaction: {first.name()}: {first.str()}")
        for pending in [p for p in self._batch if p.report_id in refused]:
            err = refused[pending.report_id]
            message = f"Kafka refused it: {err.name()}"
            self.summary.failed.append(Failure(pending.line, pending.report_id, None, message))
        self._batch = [p for p in self._batch if p.report_id not in refused]

    def _abort_quietly(self) -> None:
        if not self._in_transaction:
            return
        try:
            self.reporter.abort(min(self.timeout_s, 10.0))
            self._in_transaction = False
        except (DeliveryError, KafkaException):
            pass  # the next run's init_transactions aborts it
        self._batch.clear()


# --- command ----------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `send` command to the top-level CLI."""
    cmd = subparsers.add_parser(
        "send", help="submit a batch file of reports (resumable)",
        description="Submit a batch file of reports to lt.ingress.<reporter>; rerun to resume after an interruption.",
    )  # fmt: skip
    cmd.add_argument("file", metavar="FILE", type=Path, help="JSON lines or CSV, one report per line")
    cmd.add_argument("--reporter", required=True, help="reporter ID (the broker ID of a futures company)")
    cmd.add_argument("--keys", required=True, type=Path, metavar="PUBLIC_KEYRING.json", help="public keyring")
    cmd.add_argument("--bootstrap", help="Kafka bootstrap servers (default: $LT_KAFKA_BOOTSTRAP or 127.0.0.1:19092)")
    cmd.add_argument("--format", choices=("json", "csv"), help="file format (default: csv for *.csv, else json)")
    cmd.add_argument("--state", type=Path, help="state file (default: FILE.sent-state)")
    cmd.add_argument("--reporter-type", choices=REPORTER_TYPES, default="FUTURES_COMPANY")
    cmd.add_argument("--environment", choices=("production", "test"), default="production",
                     help="which keys to seal with when a line names no key version")  # fmt: skip
    cmd.add_argument("-X", dest="kafka_config", action="append", default=[], metavar="KEY=VALUE",
                     help="extra librdkafka setting (e.g. SASL) for producer and read-back consumer; repeatable")
    cmd.add_argument("--batch-size", type=positive_int, default=500, help="records per Kafka transaction")
    cmd.add_argument("--timeout", type=positive_float, default=120.0, help="seconds to wait for Kafka operations")
    cmd.add_argument("--dry-run", action="store_true", help="check and seal every line; send nothing")
    cmd.add_argument("--json", action="store_true", help="print the summary as JSON")
    cmd.add_argument("--quiet", action="store_true", help="no progress output")
    cmd.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    path: Path = args.file
    if not path.is_file():
        raise ConfigError(f"{path} is not a file")
    fmt = detect_format(path, args.format)
    state_path: Path = args.state or path.with_name(path.name + ".sent-state")
    bootstrap = args.bootstrap or settings.kafka.bootstrap
    # Security comes from LT_KAFKA_* (password from a file or the environment); -X adds tuning only.
    security = {k: v for k, v in settings.kafka.client_config().items() if k != "bootstrap.servers"}
    config = {**security, **_kafka_config(args.kafka_config)}
    keys = ReporterKeys.load(args.keys)

    def reporter(transactional_id: str | None) -> Reporter:
        return Reporter(
            bootstrap, args.reporter, keys, reporter_type=args.reporter_type, environment=args.environment,
            config=config, topics=settings.topics, transactional_id=transactional_id,
        )  # fmt: skip

    topic = reporter(None).topic
    summary = Summary(str(path), topic, dry_run=args.dry_run)
    progress = Progress(count_reports(path, fmt), sys.stderr, enabled=not args.quiet)
    if args.dry_run:
        dry = BatchSender(reporter(None), None, summary, progress, batch_size=args.batch_size, timeout_s=args.timeout)
        dry.run(read_batch(path, fmt))
        return _finish(summary, progress, args.json, sys.stdout)

    with _locked(path, state_path.with_name(state_path.name + ".lock")):
        state = SendState.load_or_new(state_path, args.reporter, topic)
        producer = reporter(state.transactional_id)
        try:
            try:
                reader = IngressReader(bootstrap, topic, args.reporter, config, args.timeout)
                recovered = _start_run(producer, state, reader)
            except KeyboardInterrupt:
                print("lookthrough send: interrupted before sending; nothing changed", file=sys.stderr)
                return EXIT_INTERRUPTED
            sender = BatchSender(producer, state, summary, progress, batch_size=args.batch_size,
                                 timeout_s=args.timeout, recovered=recovered)  # fmt: skip
            sender.run(read_batch(path, fmt))
        finally:
            producer.close(args.timeout)
    return _finish(summary, progress, args.json, sys.stdout)


def _start_run(producer: Reporter, state: SendState, reader: IngressReader) -> set[str]:
    """Fence earlier runs, recover what they committed unrecorded, and snapshot the state.

    Returns the report IDs found on the topic that the state file did not know.
    """
    try:
        try:
            producer.init_transactions(reader.timeout_s)  # aborts an interrupted run's open transaction
        except DeliveryError as exc:
            raise DeliveryError(f"{exc} (is Kafka reachable, and may this client use its transactional ID?)") from None
        recovered: set[str] = set()
        if state.scan_from is not None and not state.closed:
            recovered = reader.report_ids_since(state.scan_from) - state.sent
            state.sent |= recovered
        state.write_snapshot(reader.end_offsets())  # before the first record of this run
        return recovered
    finally:
        reader.close()


def _finish(summary: Summary, progress: Progress, as_json: bool, out: TextIO) -> int:
    progress.finish(summary)
    if as_json:
        out.write(json.dumps(summary.as_json(), ensure_ascii=False) + "\n")
    else:
        summary.print(out)
    out.flush()
    return summary.exit_code()


_SECRET_KEYS = frozenset(
    {"sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret"}
)


def _kafka_config(items: list[str]) -> dict[str, str]:
    config: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-X expects KEY=VALUE, not {item!r}")
        if key.strip() in _SECRET_KEYS:
            raise ConfigError(
                f"-X {key.strip()}=… would put a secret on the command line; use LT_KAFKA_SASL_PASSWORD_FILE"
            )
        config[key.strip()] = value
    return config
