"""`lookthrough acl plan|apply|clickhouse`: Kafka users and ACLs from reference data; ClickHouse read access.

`plan` prints the users and ACLs to add and remove so the cluster matches the reference data
(brokers → reporters; subscribers → exchanges with read access while licensed and valid);
`apply` makes those changes idempotently, generating a password file for every new user in the
credentials directory; `apply --watch S` keeps doing so as reference data changes and licences
expire. `clickhouse` writes the analyst and per-exchange ClickHouse users. The client running
these commands authenticates from LT_KAFKA_* settings (the broker admin the first time, the
operator principal afterwards); no password is ever taken from or printed to the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.acl import Desired, Plan, Principals, desired, diff
from pipeline.arguments import non_negative_float, positive_float
from pipeline.config import Settings
from pipeline.credentials import CredentialStore
from pipeline.errors import ConfigError
from pipeline.refdata import ReferenceData


def register(subparsers: Any) -> None:
    acl = subparsers.add_parser("acl", help="Kafka users and ACLs from reference data; ClickHouse read access")
    sub = acl.add_subparsers(dest="acl_command", required=True)
    for name, text in (("plan", "show the users and ACLs to add and remove"),
                       ("apply", "make the cluster's users and ACLs match the reference data")):  # fmt: skip
        cmd = sub.add_parser(name, help=text)
        _common(cmd)
        cmd.add_argument("--json", action="store_true", help="print the plan as JSON")
        if name == "apply":
            cmd.add_argument("--rotate", nargs="+", default=[], metavar="USER",
                             help="also give these managed users new passwords (files are replaced)")  # fmt: skip
            cmd.add_argument("--watch", type=non_negative_float, default=0.0, metavar="SECONDS",
                             help="keep applying: follow reference topics and re-check every SECONDS")  # fmt: skip
        cmd.set_defaults(handler=_apply if name == "apply" else _plan)

    ch = sub.add_parser("clickhouse", help="ClickHouse users: an analyst (read only) and one per exchange (own rows)")
    ch.add_argument("--format", choices=("users-xml", "mirror-sql", "sql"), default="users-xml",
                    help="users.d fragment for the Debian server (18.16); the per-exchange mirror DDL it needs; "
                         "or SQL with row policies for current ClickHouse")  # fmt: skip
    ch.add_argument("--out", type=Path, help="file to write (owner-only; default stdout)")
    ch.add_argument("--mirrors", action="store_true",
                    help="create the per-exchange mirror databases on the server (LT_CLICKHOUSE_HOST, _PORT, "
                         "_USER, _PASSWORD)")  # fmt: skip
    ch.add_argument("--table", action="append", default=[], metavar="NAME[:COLUMN]",
                    help="a table exchange users may read, rows filtered on COLUMN (default exchange)")  # fmt: skip
    ch.add_argument("--hidden-table", action="append", default=[], metavar="NAME",
                    help="a table exchange users must not read (analysts still may)")  # fmt: skip
    ch.add_argument("--from-server", action="store_true",
                    help="take the tables from the server: with an exchange column they are exchange-scoped, "
                         "without one hidden from exchanges")  # fmt: skip
    ch.add_argument("--exchanges", help="comma-separated (default: the profile's exchange list)")
    ch.add_argument("--network", action="append", default=[], metavar="CIDR",
                    help="networks the users may connect from (default loopback); repeatable")  # fmt: skip
    ch.add_argument("--credentials", type=Path, default=_default_credentials(),
                    help="directory of owner-only password files (default $LT_RUN_DIR/credentials)")  # fmt: skip
    ch.set_defaults(handler=_clickhouse)


def _default_credentials() -> Path:
    return Path(os.environ.get("LT_ACL_CREDENTIALS_DIR") or Path(os.environ.get("LT_RUN_DIR", ".run")) / "credentials")


def _common(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--ref-dir", type=Path,
                     help="read brokers.json and subscribers.json here instead of the lt.ref.* topics")  # fmt: skip
    cmd.add_argument("--credentials", type=Path, default=_default_credentials(),
                     help="directory of owner-only password files, one per user (default $LT_RUN_DIR/credentials; "
                          "or LT_ACL_CREDENTIALS_DIR)")  # fmt: skip
    cmd.add_argument(
        "--exchange-reporters", help="comma-separated exchanges that report for their members (default: every exchange)"
    )
    cmd.add_argument("--principal-prefix", default="lt-", help="prefix of every managed user name (default lt-)")
    cmd.add_argument("--timeout", type=positive_float, default=30.0, help="seconds to wait for each admin request")


@dataclass
class AclContext:
    settings: Settings
    principals: Principals
    exchanges: tuple[str, ...]
    exchange_reporters: tuple[str, ...]

    @classmethod
    def from_args(cls, args: argparse.Namespace, settings: Settings | None = None) -> AclContext:
        from pipeline.profile import limits

        exchanges = tuple(limits().exchanges)
        reporters = exchanges if args.exchange_reporters is None else _split(args.exchange_reporters)
        return cls(settings or Settings.from_env(), Principals(args.principal_prefix), exchanges, reporters)

    def desired(self, ref: ReferenceData, now_ms: int | None = None) -> Desired:
        # The sink's group setting belongs to the store (LT_CLICKHOUSE_SINK_GROUP); read it if present.
        store_group = str(getattr(self.settings.clickhouse, "sink_group", "") or "") or None
        return desired(
            ref, self.settings.topics, group=self.settings.kafka.group, store_group=store_group,
            exchanges=self.exchanges,
            exchange_reporters=self.exchange_reporters, principals=self.principals,
            now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        )  # fmt: skip


def _split(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def load_reference(settings: Settings, ref_dir: Path | None) -> ReferenceData:
    """Brokers and subscribers from files in `ref_dir`, or from the reference topics."""
    from pipeline.refstore import read_records

    ref = ReferenceData()
    if ref_dir is not None:
        for kind in ("brokers", "subscribers"):
            path = next((ref_dir / f"{kind}{ext}" for ext in (".json", ".jsonl", ".csv")
                         if (ref_dir / f"{kind}{ext}").is_file()), None)  # fmt: skip
            if path is None:
                raise ConfigError(f"no {kind}.json, .jsonl or .csv in {ref_dir}")
            ref.load(kind, read_records(kind, path))
        return ref
    from pipeline.refstore import ReferenceFollower

    follower = ReferenceFollower(settings, ref)
    try:
        follower.catch_up()
    finally:
        follower.close()
    return ref


def _access(settings: Settings, timeout: float) -> Any:
    from confluent_kafka.admin import AdminClient

    from pipeline.acl_admin import KafkaAccess

    return KafkaAccess(AdminClient({**settings.kafka.client_config(), "log_level": 3}), timeout)


def compute(context: AclContext, ref: ReferenceData, access: Any) -> tuple[Desired, Plan]:
    want = context.desired(ref)
    return want, diff(want, access.users(), access.grants(), context.principals, access.topics())


def _topic_creator(context: AclContext, access: Any) -> Any:
    """Creates the parties' missing topics with the pipeline's layout (partitions, exchange retention)."""
    from pipeline.topics import TopicSpec, ensure_topics, output_topics

    settings = context.settings
    t = settings.topics

    def spec(name: str) -> TopicSpec:
        if name.startswith(t.exchange_prefix):
            exchange = name.removeprefix(t.exchange_prefix)
            return next(s for s in output_topics(settings, [exchange]) if s.name == name)  # keeps the retention
        return TopicSpec(name, settings.kafka.partitions, {})

    def create(names: Any) -> None:
        ensure_topics(access.admin, settings, [spec(name) for name in names])

    return create


def _print_plan(plan: Plan, want: Desired, as_json: bool) -> None:
    if as_json:
        print(plan.as_json())
        return
    if plan.empty:
        print("no changes: topics, users and ACLs match the reference data")
        return
    for line in plan.lines():
        print(line)
    licensed = ", ".join(sorted(want.licensed)) or "none"
    print(f"{len(plan.add_topics)} topics and {len(plan.add_users)} users to create, "
          f"{len(plan.remove_users)} users to delete; {len(plan.add_grants)} ACLs to add, "
          f"{len(plan.remove_grants)} to remove (licensed exchanges: {licensed})")  # fmt: skip


def _plan(args: argparse.Namespace) -> int:
    context = AclContext.from_args(args)
    ref = load_reference(context.settings, args.ref_dir)
    want, plan = compute(context, ref, _access(context.settings, args.timeout))
    _print_plan(plan, want, args.json)
    return 0


def _apply(args: argparse.Namespace) -> int:
    context = AclContext.from_args(args)
    store = CredentialStore(args.credentials)
    access = _access(context.settings, args.timeout)
    for user in args.rotate:
        if not context.principals.managed(user):
            raise ConfigError(f"{user} is not a managed user (prefix {context.principals.prefix!r})")
    if args.watch > 0:
        return _watch(args, context, store, access)
    ref = load_reference(context.settings, args.ref_dir)
    want, plan = compute(context, ref, access)
    _print_plan(plan, want, args.json)
    access.apply(plan, store.password, _topic_creator(context, access))
    if args.rotate:
        access.upsert_users(args.rotate, store.rotate)
        print(f"rotated: {', '.join(args.rotate)}")
    if plan.add_users or args.rotate:
        print(f"password files in {store.directory}: hand each party its own file (owner-only)", file=sys.stderr)
    return 0


def _watch(args: argparse.Namespace, context: AclContext, store: CredentialStore, access: Any) -> int:
    """Re-apply whenever reference data changes, and every --watch seconds (licences expire by time)."""
    if args.ref_dir is not None:
        raise ConfigError("--watch follows the reference topics; it cannot be combined with --ref-dir")
    from pipeline.refstore import ReferenceFollower

    ref = ReferenceData()
    follower = ReferenceFollower(context.settings, ref)
    try:
        follower.catch_up()
        while True:
            want, plan = compute(context, ref, access)
            if not plan.empty:
                _print_plan(plan, want, args.json)
                access.apply(plan, store.password, _topic_creator(context, access))
                sys.stdout.flush()
            deadline = time.monotonic() + args.watch
            while time.monotonic() < deadline and not follower.poll(timeout=min(1.0, args.watch)):
                pass
    except KeyboardInterrupt:
        return 0
    finally:
        follower.close()


def _clickhouse_client(settings: Settings) -> Any:
    from clickhouse_driver import Client

    if not settings.clickhouse.host:
        raise ConfigError("set LT_CLICKHOUSE_HOST (and _PORT, _USER, _PASSWORD) to reach the server")
    return Client(host=settings.clickhouse.host, port=settings.clickhouse.port,
                  user=os.environ.get("LT_CLICKHOUSE_USER", "default"),
                  password=os.environ.get("LT_CLICKHOUSE_PASSWORD", ""))  # fmt: skip


def _clickhouse(args: argparse.Namespace) -> int:
    from pipeline import clickhouse_access as cha
    from pipeline.crypto.files import write_owner_only
    from pipeline.profile import limits

    settings = Settings.from_env()
    tables = [cha.TableAccess.parse(spec) for spec in args.table]
    tables += [cha.TableAccess(name, None) for name in args.hidden_table]
    from clickhouse_driver.errors import Error as ClickHouseError

    client = _clickhouse_client(settings) if args.from_server or args.mirrors else None
    try:
        if client is not None and args.from_server:
            tables += cha.discover_tables(client, settings.clickhouse.database)
        if not tables:
            raise ConfigError("name the store's tables (--table, --hidden-table) or use --from-server")
        exchanges = _split(args.exchanges) if args.exchanges else tuple(limits().exchanges)
        access = cha.AccessSpec(settings.clickhouse.database, tuple(tables), exchanges,
                                tuple(args.network) or cha.LOOPBACK)  # fmt: skip
        access.check()
        if client is not None and args.mirrors:
            statements = cha.apply_mirrors(client, access)
            print(f"ran {len(statements)} statements: per-exchange databases "
                  f"{', '.join(cha.exchange_database(access.database, ex) for ex in exchanges)}",
                  file=sys.stderr)  # fmt: skip
    except (ClickHouseError, OSError, EOFError) as exc:
        raise ConfigError(f"ClickHouse: {str(exc).strip().splitlines()[0]}") from None
    finally:
        if client is not None:
            client.disconnect()
    store = CredentialStore(args.credentials)
    if args.format == "users-xml":
        text = cha.users_xml(access, store.password)
    elif args.format == "mirror-sql":
        text = ";\n".join(cha.mirror_statements(access)) + ";\n"
    else:
        text = cha.sql(access, store.password)
    if args.out:
        write_owner_only(args.out, text.encode())
        print(f"wrote {args.out}; users: {', '.join(access.users())}; passwords in {store.directory}", file=sys.stderr)
    elif not args.mirrors:
        sys.stdout.write(text)
    return 0
