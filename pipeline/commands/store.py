"""`lookthrough store migrate|retention|sink`, `lookthrough query <name>`, `lookthrough report <period>`.

The store is the ClickHouse server of LT_CLICKHOUSE_HOST/PORT/DATABASE, or embedded chdb in
LT_CLICKHOUSE_PATH when no host is set; `--store DIR` picks an embedded store explicitly (the
demo prints such a command). `store sink` applies pending migrations before it consumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any

from pipeline.arguments import positive_int
from pipeline.config import Settings
from pipeline.profile import limits


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, metavar="DIR",
                        help="embedded chdb store directory (instead of the configured store)")  # fmt: skip


def register(subparsers: Any) -> None:
    from pipeline.store.output import FORMATS
    from pipeline.store.periods import KINDS
    from pipeline.store.queries import QUERIES

    store = subparsers.add_parser("store", help="the analytics store: migrations, retention, the Kafka sink")
    actions = store.add_subparsers(dest="store_command", required=True)
    migrate = actions.add_parser("migrate", help="apply pending schema migrations")
    _store_option(migrate)
    migrate.set_defaults(handler=_migrate)
    retention = actions.add_parser("retention", help="drop partitions past their retention period")
    retention.add_argument("--today", help="reference date, YYYY-MM-DD or YYYYMMDD (default: today in China "
                           "Standard Time, the calendar the store's trading days and dead-letter dates use)")
    retention.add_argument("--dry-run", action="store_true", help="print what would be dropped")
    _store_option(retention)
    retention.set_defaults(handler=_retention)
    sink = actions.add_parser("sink", help="consume lt.reports, lt.dlq, lt.exchange.* into the store")
    sink.add_argument("--group", help="consumer group (default LT_CLICKHOUSE_SINK_GROUP or <kafka group>.store)")
    sink.add_argument("--exit-when-caught-up", action="store_true",
                      help="stop once every partition is stored to its end")  # fmt: skip
    sink.add_argument("--decode-in-python", action="store_true",
                      help="decode every record in Python: slower, but no embedded ClickHouse in the process "
                           "(about 250 MB less resident memory with a server)")  # fmt: skip
    _store_option(sink)
    sink.set_defaults(handler=_sink)

    query = subparsers.add_parser("query", help="run a named look-through analytics query",
                                  description="\n".join(f"{q.name}: {q.title}" for q in QUERIES.values()),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    query.add_argument("name", choices=list(QUERIES))
    query.add_argument("--from", dest="date_from", required=True, help="first trading day (YYYY-MM-DD)")
    query.add_argument("--to", dest="date_to", required=True, help="last trading day, inclusive")
    query.add_argument("--exchange", choices=limits().exchanges,
                       help="only investors holding a trading code at this exchange")  # fmt: skip
    query.add_argument("--min-accounts", type=positive_int, metavar="N",
                       help="minimum group: investors per device or IP, devices per investor (default 2)")  # fmt: skip
    query.add_argument("--min-brokers", type=positive_int, default=1, help="shared-devices: minimum distinct brokers")
    query.add_argument("--format", choices=FORMATS, default="table")
    query.add_argument("--out", type=Path, help="write to this file instead of stdout")
    _store_option(query)
    query.set_defaults(handler=_query)

    report = subparsers.add_parser("report", help="an exchange's daily, weekly or monthly table")
    report.add_argument("period", choices=KINDS)
    report.add_argument("--exchange", required=True, choices=limits().exchanges)
    report.add_argument("--date", required=True, help="a day of the period (YYYY-MM-DD)")
    report.add_argument("--format", choices=("csv", "xlsx", "html"), default="csv")
    report.add_argument("--out", type=Path, help="file to write (html: the PNG chart goes beside it)")
    _store_option(report)
    report.set_defaults(handler=_report)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "store", None) is not None:
        settings = dataclasses.replace(settings, clickhouse=dataclasses.replace(
            settings.clickhouse, host=None, path=args.store))  # fmt: skip
    return settings


def _backend(settings: Settings) -> Any:
    from pipeline.store.backend import connect

    return connect(settings.clickhouse)


def _reading_backend(settings: Settings) -> Any:
    """The store for a command that only reads it. A store that was never migrated is a ConfigError
    that says how to make one, not a new empty chdb directory (a mistyped --store) nor ClickHouse's
    UNKNOWN_DATABASE."""
    from pipeline.errors import ConfigError

    ch = settings.clickhouse
    where = f"embedded store {ch.path}" if ch.host is None else f"database {ch.database} at {ch.host}:{ch.port}"
    hint = (f"no lookthrough store in the {where}: "
            "create it with `lookthrough store migrate`, fill it with `lookthrough store sink`")
    if ch.host is None and not ch.path.is_dir():
        raise ConfigError(hint)
    backend = _backend(settings)
    try:
        found = backend.query("SELECT count() FROM system.tables "
                              f"WHERE database = '{ch.database}' AND name = 'schema_migrations'")
    except BaseException:
        backend.close()
        raise
    if not found.rows or not found.rows[0][0]:
        backend.close()
        raise ConfigError(hint)
    return backend


def _migrate(args: argparse.Namespace) -> int:
    from pipeline.store.migrations import migrate
    from pipeline.store.policy import Retention

    settings = _settings(args)
    backend = _backend(settings)
    try:
        applied = migrate(backend, Retention.from_settings(settings.clickhouse))
        caps = backend.capabilities
        done = ", ".join(f"{v:03d}" for v in applied) if applied else "nothing (up to date)"
        print(f"ClickHouse {caps.version} ({caps.dialect} dialect), database {backend.database}: applied {done}")
    finally:
        backend.close()
    return 0


def _retention(args: argparse.Namespace) -> int:
    from pipeline.store import retention
    from pipeline.store.periods import parse_day
    from pipeline.store.policy import Retention
    from pipeline.store.tables import china_today

    settings = _settings(args)
    today = parse_day(args.today) if args.today else china_today()
    policy = Retention.from_settings(settings.clickhouse)
    backend = _backend(settings)
    try:
        run = retention.plan if args.dry_run else retention.enforce
        actions = run(backend, policy, today)
    finally:
        backend.close()
    verb = "would run" if args.dry_run else "ran"
    for action in actions:
        print(f"{verb}: ALTER TABLE {action.table} {action.what}")
    if not actions:
        print(f"nothing past retention on {today} (records {policy.records} d, deliveries {policy.deliveries} d, "
              f"subscribers {policy.subscribers} d)")  # fmt: skip
    return 0


def _sink(args: argparse.Namespace) -> int:
    from pipeline import logs
    from pipeline.store.migrations import migrate
    from pipeline.store.policy import Retention
    from pipeline.store.sink import Sink

    settings = _settings(args)
    logs.setup()
    backend = _backend(settings)
    try:
        migrate(backend, Retention.from_settings(settings.clickhouse))
        sink = Sink(settings, backend, group=args.group, decode_in_clickhouse=not args.decode_in_python)
        signal.signal(signal.SIGTERM, sink.stop)
        signal.signal(signal.SIGINT, sink.stop)
        stats = sink.run(until_caught_up=args.exit_when_caught_up)
    finally:
        backend.close()
    print(f"stored {stats.total_rows} rows {stats.rows} in {stats.flushes} flushes; "
          f"{stats.skipped} records skipped, {stats.retries} retries", file=sys.stderr)  # fmt: skip
    return 0


def _write(data: bytes, out: Path | None) -> None:
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        out.write_bytes(data)


def _query(args: argparse.Namespace) -> int:
    from pipeline.store import queries
    from pipeline.store.output import render
    from pipeline.store.periods import parse_day

    params = queries.Params(parse_day(args.date_from), parse_day(args.date_to), args.exchange,
                            args.min_accounts, args.min_brokers)  # fmt: skip
    backend = _reading_backend(_settings(args))
    try:
        result = queries.run(backend, args.name, params)
    finally:
        backend.close()
    _write(render(result, args.format).encode("utf-8"), args.out)
    return 0


def _report(args: argparse.Namespace) -> int:
    from pipeline.errors import ConfigError
    from pipeline.store import chart, periodic, report_output
    from pipeline.store.periods import parse_day

    if args.format == "xlsx" and args.out is None and sys.stdout.isatty():
        raise ConfigError("xlsx is binary: give --out FILE or redirect stdout")
    backend = _reading_backend(_settings(args))
    try:
        report = periodic.build(backend, args.exchange, args.period, parse_day(args.date))
    finally:
        backend.close()
    if args.format == "csv":
        data = report_output.to_csv(report)
    elif args.format == "xlsx":
        data = report_output.to_xlsx(report)
    else:
        image = chart.png(report)
        data = report_output.to_html(report, image)
        if args.out is not None:
            args.out.with_suffix(".png").write_bytes(image)
    _write(data, args.out)
    if args.out is not None:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
