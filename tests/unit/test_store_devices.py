"""Linking device fingerprints into physical devices (pipeline.store.devices), and the device queries'
Python step over hand-made observation rows. Fingerprints are the real keyed ones of the enrich stage."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.stages.enrich import _STABLE_IDS, device_fingerprint
from pipeline.store import devices, queries
from pipeline.store.backend import QueryResult
from pipeline.store.devices import IDENTIFIER_COLUMNS, Observation, link
from pipeline.store.sqltext import literal

KEY = b"unit-fingerprint-key"


def obs(kind: str, **ids: str) -> Observation:
    fingerprint = device_fingerprint({"terminal_kind": kind, **ids}, KEY)
    assert fingerprint is not None
    return Observation.of(fingerprint, kind, ids)


def devices_of(observations: list[Observation]) -> list[set[str]]:
    """The linked groups, as sets of fingerprints, in a canonical order."""
    groups: dict[str, set[str]] = {}
    for fp, name in link(observations).items():
        groups.setdefault(name, set()).add(fp)
    return sorted(groups.values(), key=sorted)


def same(*observations: Observation) -> set[str]:
    return {o.fingerprint for o in observations}


def test_identifier_columns_are_the_enrich_stage_names() -> None:
    assert set(IDENTIFIER_COLUMNS) == {n for names in _STABLE_IDS.values() for n in names}
    assert all(c in devices.OBSERVATIONS_SQL for c in IDENTIFIER_COLUMNS)


def test_an_observation_keeps_only_the_non_empty_stable_identifiers_of_its_kind() -> None:
    o = Observation.of("f", "ANDROID", {"imei": "", "device_id": "d1", "disk_serial": "x", "phone": "1"})
    assert dict(o.identifiers) == {"device_id": "d1"}
    assert dict(Observation.of("f", "NEWKIND", {"device_id": "d1"}).identifiers) == {}


def test_a_login_without_an_item_joins_the_device_through_the_others() -> None:
    full = obs("WINDOWS", disk_serial="D1", cpu_serial="C1", bios_serial="B1")
    no_bios = obs("WINDOWS", disk_serial="D1", cpu_serial="C1")
    linux = obs("LINUX", disk_serial="D2", cpu_serial="C2", bios_serial="B2")
    linux_cpu_only = obs("LINUX", cpu_serial="C2")  # BIOS and disk serial both missing
    phone = obs("ANDROID", imei="860000000000001", device_id="a1")
    phone_no_imei = obs("ANDROID", device_id="a1")
    other = obs("WINDOWS", disk_serial="D9", cpu_serial="C9", bios_serial="B9")
    found = link([full, no_bios, linux, linux_cpu_only, phone, phone_no_imei, other])
    assert found[no_bios.fingerprint] == found[full.fingerprint] == full.fingerprint  # the most complete names it
    assert found[linux_cpu_only.fingerprint] == linux.fingerprint
    assert found[phone_no_imei.fingerprint] == phone.fingerprint
    assert found[other.fingerprint] == other.fingerprint
    assert len(set(found.values())) == 4


def test_partial_observations_alone_are_named_by_the_most_complete_then_the_smallest() -> None:
    a = obs("WINDOWS", disk_serial="D1", cpu_serial="C1")
    b = obs("WINDOWS", cpu_serial="C1", bios_serial="B1")
    c = obs("WINDOWS", cpu_serial="C1")
    assert devices_of([a, b, c]) == [same(a, b, c)]
    assert set(link([a, b, c]).values()) == {min(a.fingerprint, b.fingerprint)}


def test_one_cpu_serial_on_many_machines_links_nothing() -> None:
    """Windows reports one ProcessorId for every CPU of a model: machines that differ in their disk
    or BIOS serial stay apart, and a login that only has the CPU serial cannot be attributed."""
    one = obs("WINDOWS", disk_serial="D1", cpu_serial="BFEBFBFF000906EA", bios_serial="B1")
    two = obs("WINDOWS", disk_serial="D2", cpu_serial="BFEBFBFF000906EA", bios_serial="B2")
    one_no_bios = obs("WINDOWS", disk_serial="D1", cpu_serial="BFEBFBFF000906EA")
    cpu_only = obs("WINDOWS", cpu_serial="BFEBFBFF000906EA")
    assert devices_of([one, two, one_no_bios, cpu_only]) == sorted(
        [same(one, one_no_bios), same(two), same(cpu_only)], key=sorted
    )


def test_two_complete_observations_of_a_kind_are_never_one_device() -> None:
    a = obs("WINDOWS", disk_serial="D1", cpu_serial="C1", bios_serial="B1")
    b = obs("WINDOWS", disk_serial="D1", cpu_serial="C1", bios_serial="B2")  # a new motherboard: a new device
    assert devices_of([a, b]) == sorted([same(a), same(b)], key=sorted)


def test_a_chain_that_would_join_two_disks_is_left_unlinked() -> None:
    f = obs("WINDOWS", disk_serial="D1", cpu_serial="C1")
    g = obs("WINDOWS", cpu_serial="C1", bios_serial="B1")
    h = obs("WINDOWS", disk_serial="D2", bios_serial="B1")
    assert devices_of([f, g, h]) == sorted([same(f), same(g), same(h)], key=sorted)


def test_only_the_same_identifier_of_the_same_kind_links() -> None:
    android = obs("ANDROID", device_id="X1")
    harmony = obs("HARMONYOS", device_id="X1")
    other = obs("OTHER", device_id="X1")
    disk = obs("WINDOWS", disk_serial="X1", cpu_serial="C", bios_serial="B")
    cpu = obs("WINDOWS", cpu_serial="X1", disk_serial="D", bios_serial="B7")
    assert len(set(link([android, harmony, other, disk, cpu]).values())) == 5


def test_a_fingerprint_given_twice_is_one_observation() -> None:
    a = obs("IOS", idfv="I1")
    assert link([a, a]) == {a.fingerprint: a.fingerprint}
    assert link([]) == {}


# --- properties -----------------------------------------------------------------------------

KINDS = sorted(_STABLE_IDS)


@st.composite
def market_observations(draw: st.DrawFn) -> tuple[list[Observation], dict[str, int]]:
    """Devices with unique identifiers, each seen complete and with random items missing."""
    out: list[Observation] = []
    device_of: dict[str, int] = {}
    for n in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(KINDS))
        names = _STABLE_IDS[kind]
        full = {name: f"{name}-{n}" for name in names}
        seen = [full]
        for _ in range(draw(st.integers(0, 4))):
            kept = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
            seen.append({name: full[name] for name in kept})
        for ids in seen:
            o = obs(kind, **ids)
            out.append(o)
            device_of[o.fingerprint] = n
    return out, device_of


@settings(max_examples=200, deadline=None)
@given(market_observations(), st.randoms(use_true_random=False))
def test_devices_with_unique_identifiers_are_recovered_exactly(
    drawn: tuple[list[Observation], dict[str, int]], rnd: random.Random
) -> None:
    observations, device_of = drawn
    found = link(observations)
    for a, da in device_of.items():
        for b, db in device_of.items():
            assert (found[a] == found[b]) == (da == db)
    for fp, name in found.items():  # named by the complete observation
        complete = next(o for o in observations if o.fingerprint == name)
        kind = complete.terminal_kind
        assert len(complete.identifiers) == len(_STABLE_IDS[kind]) and device_of[name] == device_of[fp]
    shuffled = list(observations)
    rnd.shuffle(shuffled)
    assert link(shuffled) == found


@st.composite
def colliding_observations(draw: st.DrawFn) -> list[Observation]:
    """Any observations over a tiny alphabet, so identifier values collide across devices."""
    out = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["WINDOWS", "ANDROID"]))
        ids = {name: draw(st.sampled_from(["", "a", "b"])) for name in _STABLE_IDS[kind]}
        if any(ids.values()):
            out.append(obs(kind, **ids))
    return out


@settings(max_examples=300, deadline=None)
@given(colliding_observations(), st.randoms(use_true_random=False))
def test_a_device_never_holds_two_values_of_an_identifier(observations: list[Observation], rnd: random.Random) -> None:
    found = link(observations)
    by_fp = {o.fingerprint: o for o in observations}
    values: dict[tuple[str, str], str] = {}
    for fp, name in found.items():
        assert found[name] == name and by_fp[name].terminal_kind == by_fp[fp].terminal_kind
        for ident, value in by_fp[fp].identifiers.items():
            assert values.setdefault((name, ident), value) == value
    shuffled = list(observations)
    rnd.shuffle(shuffled)
    assert link(shuffled) == found


# --- periods of days (the periodic reports) -------------------------------------------------


def test_a_period_links_a_device_seen_partially_one_day_and_completely_another() -> None:
    full = obs("WINDOWS", disk_serial="D1", cpu_serial="C1", bios_serial="B1")
    no_bios = obs("WINDOWS", disk_serial="D1", cpu_serial="C1")
    found = devices.link_days([[no_bios], [full]])
    assert found == {no_bios.fingerprint: full.fingerprint, full.fingerprint: full.fingerprint}
    assert devices.link_days([]) == {}


def test_a_period_keeps_the_links_of_its_days() -> None:
    """Monday links a CPU-only login to the one PC with that CPU serial; on Tuesday a second PC
    with the same serial shows the value is not unique, so linking the week alone would split
    Monday's device and the week would count three devices where its days count two."""
    one = obs("WINDOWS", disk_serial="D1", cpu_serial="C1", bios_serial="B1")
    cpu_only = obs("WINDOWS", cpu_serial="C1")
    two = obs("WINDOWS", disk_serial="D2", cpu_serial="C1", bios_serial="B2")
    monday, tuesday = [one, cpu_only], [two]
    assert devices_of([*monday, *tuesday]) == sorted([same(one), same(cpu_only), same(two)], key=sorted)
    found = devices.link_days([monday, tuesday])
    assert found[cpu_only.fingerprint] == found[one.fingerprint] == one.fingerprint
    assert found[two.fingerprint] == two.fingerprint


def count(found: dict[str, str], fingerprints: set[str]) -> int:
    return len({found[fp] for fp in fingerprints})


@settings(max_examples=300, deadline=None)
@given(colliding_observations(), st.randoms(use_true_random=False))
def test_a_period_never_counts_more_devices_than_its_days(observations: list[Observation], rnd: random.Random) -> None:
    days: list[list[Observation]] = [[] for _ in range(rnd.randint(1, 4))]
    for o in observations:  # a fingerprint may be seen on several days
        for day in rnd.sample(days, rnd.randint(1, len(days))):
            day.append(o)
    period = devices.link_days(days)
    assert devices.link_days([observations]) == link(observations)  # one day: `link`
    by_fp = {o.fingerprint: o for o in observations}
    for fp, name in period.items():
        assert period[name] == name and by_fp[name].terminal_kind == by_fp[fp].terminal_kind
    subset = {o.fingerprint for o in rnd.sample(observations, len(observations) // 2)}  # a member's line
    per_day = [link(day) for day in days]
    assert count(period, subset) <= sum(count(d, subset & set(d)) for d in per_day)
    for day in per_day:  # each day's devices lie within the period's
        assert all(period[fp] == period[name] for fp, name in day.items())


# --- the queries' Python step ---------------------------------------------------------------


def at(hour: int) -> dt.datetime:
    return dt.datetime(2025, 11, 20, hour, tzinfo=dt.UTC)


def rows(*observed: tuple[Observation, str, str, int, int, int]) -> QueryResult:
    """OBSERVATIONS_SQL-shaped rows: (observation, broker, investor, reports, first hour, last hour)."""
    columns = ["device_fingerprint", "terminal_kind", *IDENTIFIER_COLUMNS, "broker_id", "investor_id", "reports",
               "first_login", "last_login"]  # fmt: skip
    out: list[tuple[Any, ...]] = []
    for o, broker, investor, n, first, last in observed:
        ids = [o.identifiers.get(c, "") for c in IDENTIFIER_COLUMNS]
        out.append((o.fingerprint, o.terminal_kind, *ids, broker, investor, n, at(first), at(last)))
    return QueryResult(columns, out)


FULL = obs("WINDOWS", disk_serial="D1", cpu_serial="C1", bios_serial="B1")
NO_BIOS = obs("WINDOWS", disk_serial="D1", cpu_serial="C1")
PHONE = obs("ANDROID", imei="860000000000001", device_id="a1")
PHONE_NO_IMEI = obs("ANDROID", device_id="a1")
LAPTOP = obs("LINUX", disk_serial="D3", cpu_serial="C3", bios_serial="B3")

OBSERVED = rows(
    (FULL, "0101", "A", 3, 9, 10),
    (NO_BIOS, "0202", "B", 1, 8, 8),  # B used the PC only while its BIOS serial failed
    (NO_BIOS, "0101", "A", 1, 11, 11),
    (PHONE, "0101", "A", 2, 9, 9),
    (PHONE_NO_IMEI, "0101", "C", 4, 9, 12),
    (LAPTOP, "0303", "D", 1, 9, 9),
    (LAPTOP, "0303", "E", 1, 9, 9),
    (LAPTOP, "0404", "F", 1, 9, 9),
)


def test_shared_devices_count_investors_per_device() -> None:
    result = devices.shared_devices_rows(OBSERVED, 2, 1)
    assert result.columns == ["device", "terminal_kind", "investors", "brokers", "investor_list", "reports",
                              "first_login", "last_login", "fingerprints"]  # fmt: skip
    assert result.rows == [
        (LAPTOP.fingerprint, "LINUX", 3, 2, ["0303:D", "0303:E", "0404:F"], 3, at(9), at(9), [LAPTOP.fingerprint]),
        *sorted([
            (FULL.fingerprint, "WINDOWS", 2, 2, ["0101:A", "0202:B"], 5, at(8), at(11),
             sorted([FULL.fingerprint, NO_BIOS.fingerprint])),
            (PHONE.fingerprint, "ANDROID", 2, 1, ["0101:A", "0101:C"], 6, at(9), at(12),
             sorted([PHONE.fingerprint, PHONE_NO_IMEI.fingerprint])),
        ], key=lambda r: (-r[3], r[0])),
    ]  # fmt: skip
    assert [r[0] for r in devices.shared_devices_rows(OBSERVED, 3, 1).rows] == [LAPTOP.fingerprint]
    assert {r[0] for r in devices.shared_devices_rows(OBSERVED, 2, 2).rows} == {LAPTOP.fingerprint, FULL.fingerprint}
    assert devices.shared_devices_rows(rows(), 2, 1).rows == []


def test_multi_device_investors_count_devices_not_fingerprints() -> None:
    result = devices.multi_device_investors_rows(OBSERVED, 2)
    assert result.columns == ["broker_id", "investor_id", "devices", "terminal_kinds", "device_list", "reports",
                              "fingerprints"]  # fmt: skip
    assert result.rows == [
        ("0101", "A", 2, ["ANDROID", "WINDOWS"], sorted([FULL.fingerprint, PHONE.fingerprint]), 6,
         sorted([FULL.fingerprint, NO_BIOS.fingerprint, PHONE.fingerprint])),
    ]  # fmt: skip
    assert len(devices.multi_device_investors_rows(OBSERVED, 1).rows) == 6


class ObservationsOnly:
    """A backend answering every SELECT with the same observation rows (the shared-ips step asks one)."""

    database = "db"

    def __init__(self, result: QueryResult) -> None:
        self.result = result
        self.asked: list[str] = []

    def query(self, sql: str) -> QueryResult:
        self.asked.append(sql)
        return self.result


def test_shared_ips_count_linked_devices() -> None:
    fingerprints = [FULL.fingerprint, NO_BIOS.fingerprint, PHONE_NO_IMEI.fingerprint, "unseen"]
    found = QueryResult(["public_ip", "investors", "brokers", "fingerprints", "investor_list", "reports"],
                        [("1.2.3.4", 3, 2, fingerprints, ["0101:A", "0101:C", "0202:B"], 9)])  # fmt: skip
    backend = ObservationsOnly(OBSERVED)
    params = queries.Params(dt.date(2025, 11, 20), dt.date(2025, 11, 21), exchange="SHFE")
    post = queries.QUERIES["shared-ips"].post
    assert post is not None
    result = post(found, queries.Context(backend, params, 2))  # type: ignore[arg-type]
    assert result.columns == ["public_ip", "investors", "brokers", "devices", "investor_list", "reports"]
    assert result.rows == [("1.2.3.4", 3, 2, 3, ["0101:A", "0101:C", "0202:B"], 9)]
    (sql,) = backend.asked  # the linking reads the same range and exchange as the query
    span = f"trading_day >= {literal(params.date_from)} AND trading_day <= {literal(params.date_to)}"
    assert span in sql and "has(trading_exchanges, 'SHFE')" in sql
    empty = QueryResult(found.columns, [])
    assert post(empty, queries.Context(ObservationsOnly(OBSERVED), params, 2)).rows == []  # type: ignore[arg-type]


def test_device_queries_render_to_observation_sql() -> None:
    params = queries.Params(dt.date(2025, 11, 20), dt.date(2025, 11, 20), exchange="DCE", min_accounts=3)
    for name in ("shared-devices", "multi-device-investors"):
        sql = queries.render_sql(queries.QUERIES[name], "lt", params)
        assert "FROM lt.reports FINAL" in sql and "has(trading_exchanges, 'DCE')" in sql
        assert "{" not in sql and all(f"any({c})" in sql for c in IDENTIFIER_COLUMNS)
