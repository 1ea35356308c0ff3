"""Kafka principals and ACLs from reference data (pipeline.acl), credentials, ClickHouse access.

Access decisions are checked with `allows`, a transcription of Kafka's StandardAuthorizer
rules written from the Kafka documentation (LITERAL is exact or "*", PREFIXED is a string
prefix; READ, WRITE, DELETE and ALTER imply DESCRIBE; ALL is every operation), not with
the code under test.
"""

from __future__ import annotations

import json
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import clickhouse_access as cha
from pipeline.acl import Desired, Grant, Principals, desired, diff
from pipeline.acl_admin import from_binding, to_binding, to_filter
from pipeline.cli import main
from pipeline.config import TopicNames
from pipeline.credentials import CredentialStore
from pipeline.errors import ConfigError
from pipeline.refdata import ReferenceData

NOW = 1_763_600_000_000
DAY = 86_400_000
EXCHANGES = ("SHFE", "INE", "DCE", "CZCE", "CFFEX", "GFEX")
IMPLIES_DESCRIBE = {"READ", "WRITE", "DELETE", "ALTER"}


def allows(grants: Iterable[Grant], user: str, resource_type: str, name: str, operation: str) -> bool:
    """Kafka's ALLOW semantics (no DENY bindings are ever created here)."""
    for g in grants:
        if g.principal not in (f"User:{user}", "User:*") or g.resource_type != resource_type:
            continue
        if g.pattern == "LITERAL" and g.name not in (name, "*"):
            continue
        if g.pattern == "PREFIXED" and not name.startswith(g.name):
            continue
        if g.operation in (operation, "ALL") or (operation == "DESCRIBE" and g.operation in IMPLIES_DESCRIBE):
            return True
    return False


def subscriber(exchange: str, *, licensed: bool = True, valid_from: int = NOW - 365 * DAY,
               valid_to: int | None = None) -> dict[str, Any]:  # fmt: skip
    return {"subscriber_id": f"{exchange}-DATA", "exchange": exchange, "licence_no": f"LIC-{exchange}",
            "licensed": licensed, "tier": "full", "valid_from": valid_from, "valid_to": valid_to,
            "updated_at": NOW}  # fmt: skip


def reference(
    subscribers: list[dict[str, Any]] | None = None, brokers: Iterable[str] = ("0101", "0202")
) -> ReferenceData:
    ref = ReferenceData()
    ref.load("brokers", [{"broker_id": b, "name": b, "kind": "FUTURES_COMPANY", "updated_at": NOW} for b in brokers])
    ref.load("brokers", [{"broker_id": "MSH01", "name": "member", "kind": "EXCHANGE_MEMBER", "updated_at": NOW}])
    ref.load("subscribers", subscribers if subscribers is not None else [subscriber(ex) for ex in EXCHANGES[:-1]])
    return ref


def want(ref: ReferenceData, *, topics: TopicNames | None = None, now: int = NOW,
         exchange_reporters: Iterable[str] = ("SHFE",), prefix: str = "lt-") -> Desired:  # fmt: skip
    return desired(ref, topics or TopicNames(), group="lookthrough-pipeline", exchanges=EXCHANGES,
                   exchange_reporters=exchange_reporters, now_ms=now, principals=Principals(prefix))  # fmt: skip


def test_users_one_per_party() -> None:
    d = want(reference())
    assert set(d.users) == {
        "lt-operator", "lt-pipeline", "lt-store", "lt-reporter-0101", "lt-reporter-0202", "lt-reporter-SHFE",
        *(f"lt-exchange-{ex}" for ex in EXCHANGES),
    }  # fmt: skip
    assert "lt-reporter-MSH01" not in d.users, "an exchange member reports through its exchange"
    assert d.licensed == frozenset(EXCHANGES[:-1])


def test_reporter_writes_only_its_own_ingress_and_reads_only_its_own_feedback() -> None:
    g = want(reference()).grants
    t = TopicNames()
    assert allows(g, "lt-reporter-0101", "TOPIC", t.ingress("0101"), "WRITE")
    assert allows(g, "lt-reporter-0101", "TOPIC", t.ingress("0101"), "READ")  # send's resume read-back
    assert allows(g, "lt-reporter-0101", "TOPIC", t.feedback("0101"), "READ")
    assert allows(g, "lt-reporter-0101", "GROUP", "feedback-0101", "READ")
    assert allows(g, "lt-reporter-0101", "TRANSACTIONAL_ID", "lt-send.0101.3f2a", "WRITE")
    assert allows(g, "lt-reporter-0101", "GROUP", "lt-send.0101.readback-1", "READ")
    for topic in (t.ingress("0202"), t.feedback("0202"), t.exchange("SHFE"), t.reports, t.dlq, t.ref("brokers")):
        for op in ("WRITE", "READ", "DESCRIBE"):
            assert not allows(g, "lt-reporter-0101", "TOPIC", topic, op), (topic, op)
    assert not allows(g, "lt-reporter-0101", "TOPIC", t.feedback("0101"), "WRITE")
    assert not allows(g, "lt-reporter-0101", "TRANSACTIONAL_ID", "lt-send.0202.3f2a", "WRITE")
    assert not allows(g, "lt-reporter-0101", "GROUP", "feedback-0202", "READ")
    assert not allows(g, "lt-reporter-0101", "CLUSTER", "kafka-cluster", "ALTER")


def test_exchange_reads_only_its_own_topic_and_groups() -> None:
    g = want(reference()).grants
    t = TopicNames()
    assert allows(g, "lt-exchange-SHFE", "TOPIC", t.exchange("SHFE"), "READ")
    assert allows(g, "lt-exchange-SHFE", "GROUP", "exchange-SHFE", "READ")
    assert allows(g, "lt-exchange-SHFE", "GROUP", "exchange-SHFE.backup", "READ")
    assert not allows(g, "lt-exchange-SHFE", "TOPIC", t.exchange("SHFE"), "WRITE")
    assert not allows(g, "lt-exchange-SHFE", "TOPIC", t.exchange("INE"), "READ")
    assert not allows(g, "lt-exchange-SHFE", "GROUP", "exchange-INE", "READ")
    assert not allows(g, "lt-exchange-SHFE", "TOPIC", t.reports, "READ")
    assert not allows(g, "lt-exchange-SHFE", "TOPIC", t.ingress("SHFE"), "WRITE"), "reporting is another principal"


def test_group_prefix_needs_the_separator() -> None:
    """A group grant for exchange `SH` must not cover exchange `SHFE`'s groups."""
    ref = reference([subscriber("SH"), subscriber("SHFE")])
    g = want(ref).grants
    assert allows(g, "lt-exchange-SH", "GROUP", "exchange-SH.x", "READ")
    assert not allows(g, "lt-exchange-SH", "GROUP", "exchange-SHFE", "READ")
    assert not allows(g, "lt-exchange-SH", "GROUP", "exchange-SHFE.x", "READ")


@pytest.mark.parametrize(
    ("sub", "has_access"),
    [
        (subscriber("DCE"), True),
        (subscriber("DCE", licensed=False), False),
        (subscriber("DCE", valid_to=NOW - 1), False),  # expired
        (subscriber("DCE", valid_from=NOW + DAY), False),  # not yet valid
        (subscriber("DCE", valid_to=NOW), True),  # valid_to is inclusive, as in routing
    ],
)
def test_licence_and_validity_decide_read_access(sub: dict[str, Any], has_access: bool) -> None:
    d = want(reference([sub]))
    assert allows(d.grants, "lt-exchange-DCE", "TOPIC", TopicNames().exchange("DCE"), "READ") is has_access
    assert "lt-exchange-DCE" in d.users, "the user stays; only its access follows the licence"
    # The same rule routing uses: pipeline.refdata.ReferenceData.licensed_exchanges.
    assert ("DCE" in reference([sub]).licensed_exchanges(NOW)) is has_access


def test_one_licensed_subscriber_is_enough() -> None:
    ref = reference([subscriber("DCE", licensed=False), {**subscriber("DCE"), "subscriber_id": "DCE-VENDOR"}])
    assert allows(want(ref).grants, "lt-exchange-DCE", "TOPIC", TopicNames().exchange("DCE"), "READ")


def test_pipeline_can_do_what_the_worker_does_and_nothing_else() -> None:
    t = TopicNames(ingress_prefix="ns.ingress.", exchange_prefix="ns.exchange.", reports="ns.reports",
                   sharing_state="ns.state", feedback_prefix="ns.feedback.", dlq="ns.dlq",
                   ref_prefix="ns.ref.")  # fmt: skip
    g = want(reference(), topics=t).grants
    p = "lt-pipeline"
    assert allows(g, p, "TOPIC", "ns.ingress.0101", "READ")
    assert allows(g, p, "TOPIC", "ns.ref.subscribers", "READ")
    for topic in ("ns.exchange.SHFE", "ns.reports", "ns.dlq", "ns.feedback.0707", "ns.state"):
        assert allows(g, p, "TOPIC", topic, "WRITE") and allows(g, p, "TOPIC", topic, "CREATE"), topic
    assert allows(g, p, "GROUP", "lookthrough-pipeline", "READ")
    assert allows(g, p, "TRANSACTIONAL_ID", "lookthrough-pipeline-worker-1", "WRITE")
    assert not allows(g, p, "TOPIC", "ns.ingress.0101", "WRITE"), "the pipeline never writes as a reporter"
    assert not allows(g, p, "TOPIC", "ns.ref.subscribers", "WRITE"), "reference data is the operator's"
    assert not allows(g, p, "TOPIC", "lt.exchange.SHFE", "WRITE"), "other namespaces are out of reach"
    assert not allows(g, p, "CLUSTER", "kafka-cluster", "ALTER")


def test_store_sink_reads_the_outputs_it_stores_and_writes_nothing() -> None:
    g = want(reference()).grants
    t = TopicNames()
    for topic in (t.reports, t.dlq, t.exchange("SHFE"), t.ref("subscribers")):
        assert allows(g, "lt-store", "TOPIC", topic, "READ"), topic
        assert not allows(g, "lt-store", "TOPIC", topic, "WRITE"), topic
    assert allows(g, "lt-store", "GROUP", "lookthrough-pipeline.store", "READ")
    assert not allows(g, "lt-store", "TOPIC", t.ingress("0101"), "READ")
    assert not allows(g, "lt-store", "TOPIC", t.feedback("0101"), "READ")


def test_operator_administers_everything() -> None:
    g = want(reference()).grants
    for resource_type, name in (("CLUSTER", "kafka-cluster"), ("TOPIC", "lt.ref.subscribers"),
                                ("GROUP", "exchange-SHFE"), ("TRANSACTIONAL_ID", "x")):  # fmt: skip
        assert allows(g, "lt-operator", resource_type, name, "ALTER")


def test_diff_is_empty_when_the_cluster_matches() -> None:
    d = want(reference())
    assert diff(d, d.users, d.grants).empty


def test_revoking_a_licence_removes_only_that_exchanges_grants() -> None:
    before = want(reference())
    revoked = reference([subscriber(ex, licensed=ex != "DCE") for ex in EXCHANGES[:-1]])
    plan = diff(want(revoked), before.users, before.grants)
    assert not plan.add_users and not plan.remove_users and not plan.add_grants
    assert plan.remove_grants and {g.user for g in plan.remove_grants} == {"lt-exchange-DCE"}
    assert not allows(set(before.grants) - set(plan.remove_grants), "lt-exchange-DCE", "TOPIC",
                      TopicNames().exchange("DCE"), "READ")  # fmt: skip
    assert any(line.startswith("- allow lt-exchange-DCE: READ on TOPIC") for line in plan.lines())


def test_diff_adds_the_parties_missing_topics() -> None:
    d = want(reference())
    t = TopicNames()
    have = {t.ingress("0101"), t.feedback("0101"), t.exchange("SHFE"), "unrelated"}
    plan = diff(d, d.users, d.grants, current_topics=have)
    assert t.ingress("0202") in plan.add_topics and t.feedback("SHFE") in plan.add_topics
    assert t.exchange("GFEX") in plan.add_topics, "an unlicensed exchange's topic exists; it just cannot read it"
    assert not have & set(plan.add_topics)
    assert "+ topic lt.ingress.0202" in plan.lines()
    assert diff(d, d.users, d.grants).add_topics == (), "topics are only planned when the current ones are known"


def test_diff_leaves_unmanaged_principals_alone_and_removes_stale_managed_ones() -> None:
    d = want(reference())
    foreign = Grant("User:someone-else", "TOPIC", "LITERAL", "lt.reports", "READ")
    stale = Grant("User:lt-reporter-0101", "TOPIC", "LITERAL", "lt.ingress.0202", "WRITE")
    plan = diff(d, {*d.users, "admin", "someone-else", "lt-reporter-0909"}, {*d.grants, foreign, stale})
    assert plan.remove_grants == (stale,)
    assert plan.remove_users == ("lt-reporter-0909",), "an offboarded company loses its user"


def test_principal_prefixes_keep_deployments_apart() -> None:
    a = want(reference(), prefix="blue-")
    b = want(reference(), prefix="green-")
    plan = diff(b, set(a.users) | set(b.users), a.grants | b.grants, Principals("green-"))
    assert plan.empty


def test_overlapping_reporter_ids_are_refused() -> None:
    """Reporter IDs may contain '.': `01`'s prefix lt-send.01. would cover `01.x`'s transactional IDs."""
    with pytest.raises(ConfigError, match=r"lt-reporter-01's .* covers lt-reporter-01\.x's"):
        want(reference(brokers=("01", "01.x")))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True), min_size=2, max_size=6, unique=True))
def test_no_reporter_reaches_another(ids: list[str]) -> None:
    g = want(reference([], brokers=ids), exchange_reporters=()).grants
    t = TopicNames()
    for a in ids:
        for b in ids:
            if a == b:
                continue
            assert not allows(g, f"lt-reporter-{a}", "TOPIC", t.ingress(b), "WRITE")
            assert not allows(g, f"lt-reporter-{a}", "TOPIC", t.feedback(b), "READ")
            assert not allows(g, f"lt-reporter-{a}", "TRANSACTIONAL_ID", f"lt-send.{b}.0", "WRITE")
            assert not allows(g, f"lt-reporter-{a}", "GROUP", f"feedback-{b}", "READ")


def test_plan_json_lists_every_change() -> None:
    d = want(reference())
    plan = diff(d, set(), set())
    data = json.loads(plan.as_json())
    assert len(data["add_users"]) == len(d.users) and len(data["add_grants"]) == len(d.grants)


def test_admin_api_bindings_round_trip() -> None:
    for grant in want(reference()).grants:
        binding = to_binding(grant)
        assert from_binding(binding) == grant
        assert to_filter(grant).name == grant.name


# --- credentials --------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_are_generated_owner_only_and_reused(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "creds")
    first = store.password("lt-reporter-0101")
    assert len(first) >= 40 and store.password("lt-reporter-0101") == first
    assert _mode(tmp_path / "creds") == 0o700 and _mode(store.path("lt-reporter-0101")) == 0o600
    rotated = store.rotate("lt-reporter-0101")
    assert rotated != first and store.password("lt-reporter-0101") == rotated
    assert _mode(store.path("lt-reporter-0101")) == 0o600


def test_credentials_readable_by_others_are_refused(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    secret = store.password("lt-pipeline")
    store.path("lt-pipeline").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as info:
        store.password("lt-pipeline")
    assert secret not in str(info.value)
    with pytest.raises(ConfigError):
        store.path("../etc/passwd")


# --- command line -------------------------------------------------------------------------


def test_no_command_takes_a_secret_as_an_argument() -> None:
    """Passwords and keys come from files or the environment, never from argv (visible in /proc)."""
    import argparse

    from pipeline.cli import build_parser

    def options(parser: argparse.ArgumentParser) -> Iterable[str]:
        for action in parser._actions:
            yield from action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from options(sub)

    found = [o for o in options(build_parser()) if any(w in o.lower() for w in ("password", "secret", "token"))]
    assert not found, f"options that would put a secret on the command line: {found}"


def test_the_repository_holds_no_credentials_or_private_keys() -> None:
    """Secrets live in owner-only files under the run directory (ignored by git), never in the tree."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                            capture_output=True, check=True).stdout.split(b"\0")  # fmt: skip
    files = [root / name.decode() for name in listed if name]
    named = [f.name for f in files if f.suffix in (".password", ".pem", ".key", ".p12", ".jks", ".hex")]
    assert not named, f"credential or key files in the tree: {named}"
    marker = b"PRIVATE " + b"KEY-----"  # split so this file does not match itself
    holding = [str(f.relative_to(root)) for f in files if f.is_file() and marker in f.read_bytes()]
    assert not holding, f"private keys in the tree: {holding}"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".run/credentials/lt-operator.password"], cwd=root)
    assert ignored.returncode == 0, "the default credentials directory must be ignored by git"


def test_acl_plan_from_files_needs_a_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Without a reachable broker the command fails with one readable line, not a traceback."""
    (tmp_path / "brokers.json").write_text(json.dumps([{"broker_id": "0101", "name": "x", "kind": "FUTURES_COMPANY"}]))
    (tmp_path / "subscribers.json").write_text(json.dumps([subscriber("SHFE")]))
    monkeypatch.setenv("LT_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    code = main(["acl", "plan", "--ref-dir", str(tmp_path), "--credentials", str(tmp_path / "c"), "--timeout", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "failed" in err and "Traceback" not in err


# --- ClickHouse ---------------------------------------------------------------------------

TABLES = (cha.TableAccess("exchange_records"), cha.TableAccess("terminal_records", None))


def test_users_xml_gives_analysts_read_only_and_exchanges_their_own_database(tmp_path: Path) -> None:
    import hashlib

    store = CredentialStore(tmp_path)
    spec = cha.AccessSpec("lookthrough", TABLES, ("SHFE", "DCE"))
    text = cha.users_xml(spec, store.password)
    root = ET.fromstring(text)
    assert root.findtext("profiles/lt_readonly/readonly") == "1"
    users = root.find("users")
    assert users is not None
    assert [u.tag for u in users] == ["lt_analyst", "lt_exchange_shfe", "lt_exchange_dce"]
    for user in users:
        assert user.findtext("profile") == "lt_readonly"
        assert [ip.text for ip in user.iterfind("networks/ip")] == ["127.0.0.1", "::1"]
        password = store.password(user.tag)
        assert password not in text
        assert user.findtext("password_sha256_hex") == hashlib.sha256(password.encode()).hexdigest()
    databases = {u.tag: [d.text for d in u.iterfind("allow_databases/database")] for u in users}
    assert databases == {"lt_analyst": ["lookthrough"], "lt_exchange_shfe": ["lookthrough_shfe"],
                         "lt_exchange_dce": ["lookthrough_dce"]}  # fmt: skip


def test_mirrors_copy_only_the_exchanges_rows_of_scoped_tables() -> None:
    spec = cha.AccessSpec("lookthrough", TABLES, ("SHFE", "DCE"))
    statements = cha.mirror_statements(spec, existing={"lookthrough_dce.exchange_records"})
    assert "CREATE DATABASE IF NOT EXISTS lookthrough_shfe" in statements
    assert "CREATE TABLE IF NOT EXISTS lookthrough_shfe.exchange_records AS lookthrough.exchange_records" in statements
    assert ("CREATE MATERIALIZED VIEW IF NOT EXISTS lookthrough.lt_mirror_exchange_records_shfe TO "
            "lookthrough_shfe.exchange_records AS SELECT * FROM lookthrough.exchange_records "
            "WHERE exchange = 'SHFE'") in statements  # fmt: skip
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert inserts == ["INSERT INTO lookthrough_shfe.exchange_records SELECT * FROM lookthrough.exchange_records "
                       "WHERE exchange = 'SHFE'"], "existing mirrors are not backfilled twice"  # fmt: skip
    assert not any("terminal_records" in s for s in statements), "unscoped tables are never mirrored"


def test_discovered_tables_skip_mirrors() -> None:
    tables = cha.tables_from_rows([("deliveries", True), ("reports", False), ("lt_mirror_deliveries_shfe", True)])
    assert tables == [cha.TableAccess("deliveries"), cha.TableAccess("reports", None)]


def test_sql_uses_grants_and_row_policies(tmp_path: Path) -> None:
    text = cha.sql(cha.AccessSpec("lookthrough", TABLES, ("SHFE",)), CredentialStore(tmp_path).password)
    assert "GRANT SELECT ON lookthrough.* TO lt_analyst;" in text
    assert "GRANT SELECT ON lookthrough.exchange_records TO lt_exchange_shfe;" in text
    assert "terminal_records TO lt_exchange_shfe" not in text
    assert "USING exchange = 'SHFE' TO lt_exchange_shfe;" in text
    assert "USING 1 TO ALL EXCEPT lt_exchange_shfe;" in text
    assert "readonly = 1" in text


@pytest.mark.parametrize("bad", ["SH'FE", "shfe", "SHFE OR 1=1"])
def test_exchange_names_cannot_inject_filters(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError):
        cha.users_xml(cha.AccessSpec("lookthrough", TABLES, (bad,)), CredentialStore(tmp_path).password)


def test_clickhouse_command_writes_an_owner_only_fragment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "users.d" / "lookthrough-security.xml"
    out.parent.mkdir()
    code = main(["acl", "clickhouse", "--table", "exchange_records", "--hidden-table", "terminal_records",
                 "--exchanges", "SHFE", "--credentials", str(tmp_path / "c"), "--out", str(out)])  # fmt: skip
    assert code == 0 and _mode(out) == 0o600
    assert ET.parse(out).getroot().find("users/lt_exchange_shfe") is not None  # also: valid XML (no "--" in comments)
    assert "lt_analyst" in capsys.readouterr().err
