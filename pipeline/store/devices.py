"""Physical devices behind device fingerprints, for the device-centric analytics queries.

A device fingerprint (`pipeline.stages.enrich.device_fingerprint`) hashes every stable identifier
of a terminal together, so a device whose BIOS serial (or disk serial, or IMEI) fails to be
collected on some logins yields a second fingerprint for those logins. `link` puts the
fingerprints back together, from the identifiers the store keeps beside each fingerprint:

* an *observation* is one fingerprint with its terminal kind and the non-empty stable identifiers
  of that kind (`enrich._STABLE_IDS`, the same names the fingerprint hashes);
* observations that carry the same value of the same identifier of the same terminal kind are one
  device (union-find), so a login without its BIOS serial joins the logins with it through the
  disk or CPU serial;
* unless that value is evidently not unique: when two observations carrying it disagree on another
  identifier (two different disks with one CPU serial — Windows reports the same ProcessorId for
  every CPU of a model), they are two devices, and the value links nothing. Two complete
  observations of one kind always disagree somewhere, so they are never one device;
* a linked group that would still hold two values of one identifier (possible only through a
  chain of partial observations) is not linked at all: each of its fingerprints stays a device.
  Linking never merges more than the identifiers prove; at worst it leaves a split as it was.

A device is named by its most complete fingerprint (the most identifiers; the smallest of equals),
which stays its name when more partial observations join. The result depends only on the set of
observations, never on their order. The `*_rows` functions turn the rows of `OBSERVATIONS_SQL`
into the results of the `shared-devices` and `multi-device-investors` queries; `link_days` links
a period of days for the periodic reports, so that a period never counts more than its days.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.stages.enrich import _STABLE_IDS as STABLE_IDS
from pipeline.store.backend import QueryResult

# Every column of `reports` that holds a stable identifier of some terminal kind.
IDENTIFIER_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(name for names in STABLE_IDS.values() for name in names))

# A fingerprint's identifiers: any() is exact, the fingerprint is a hash of them.
_ANY_IDENTIFIERS = ", ".join(f"any({c}) AS {c}" for c in IDENTIFIER_COLUMNS)

# One row per fingerprint and investor in the range: the fingerprint's identifiers and the
# investor's reports from it. `{where}` is the filter.
OBSERVATIONS_SQL = f"""
SELECT
    device_fingerprint,
    any(terminal_kind) AS terminal_kind,
    {_ANY_IDENTIFIERS},
    broker_id,
    investor_id,
    count() AS reports,
    min(login_time) AS first_login,
    max(login_time) AS last_login
FROM {{db}}.reports FINAL
WHERE {{where}} AND device_fingerprint != ''
GROUP BY device_fingerprint, broker_id, investor_id
"""

# One row per fingerprint of the reports that `{where}` selects: its identifiers, from `reports`
# (kept as long as the exchanges' daily aggregates). No FINAL: a replayed row has the same values.
IDENTIFIERS_SQL = f"""
SELECT device_fingerprint, {_ANY_IDENTIFIERS}
FROM {{db}}.reports
WHERE {{where}} AND device_fingerprint != ''
GROUP BY device_fingerprint
"""


@dataclass(frozen=True, slots=True)
class Observation:
    fingerprint: str
    terminal_kind: str
    identifiers: Mapping[str, str]  # non-empty stable identifiers of the kind: name → value

    @classmethod
    def of(cls, fingerprint: str, terminal_kind: str, values: Mapping[str, Any]) -> Observation:
        """The observation of a fingerprint from its identifier columns (other columns ignored)."""
        names = STABLE_IDS.get(terminal_kind, ())
        return cls(fingerprint, terminal_kind, {n: str(values[n]) for n in names if values.get(n)})


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {item: item for item in items}

    def find(self, item: str) -> str:
        parent = self.parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _consistent(observations: Iterable[Observation]) -> bool:
    """No identifier has two different values among `observations`."""
    seen: dict[str, str] = {}
    for o in observations:
        for name, value in o.identifiers.items():
            if seen.setdefault(name, value) != value:
                return False
    return True


def link(observations: Iterable[Observation]) -> dict[str, str]:
    """Fingerprint → the fingerprint naming its device (itself when nothing links it).

    A fingerprint given more than once keeps its first observation (a fingerprint is a hash of
    its identifiers, so every observation of it carries the same ones).
    """
    by_fingerprint = _first_observations(observations)
    carriers: dict[tuple[str, str, str], list[Observation]] = defaultdict(list)
    for o in by_fingerprint.values():
        for name, value in o.identifiers.items():
            carriers[(o.terminal_kind, name, value)].append(o)
    sets = _UnionFind(by_fingerprint)
    for group in carriers.values():
        if len(group) > 1 and _consistent(group):
            for o in group[1:]:
                sets.union(group[0].fingerprint, o.fingerprint)
    device: dict[str, str] = {}
    for members in _components(sets, by_fingerprint.values()):
        if len(members) == 1 or not _consistent(members):
            device.update((o.fingerprint, o.fingerprint) for o in members)
        else:
            device.update(_named(members))
    return device


def link_days(days: Iterable[Iterable[Observation]]) -> dict[str, str]:
    """Fingerprint → device over a period, given the observations of each of its days.

    Two fingerprints are one device when `link` makes them one over the whole period (a device
    seen partially on Monday and completely on Tuesday is one device of the week) or over any one
    of its days. The days' links are kept because a wider period may undo one (a value that
    another device of the week turns out to carry links nothing there): with them, each day's
    devices lie within the period's, so a period never counts more devices than its days
    together. For a single day this is `link`; devices are named as by `link`.
    """
    per_day = [list(day) for day in days]
    every = [o for day in per_day for o in day]
    by_fingerprint = _first_observations(every)
    sets = _UnionFind(by_fingerprint)
    for found in (link(every), *(link(day) for day in per_day)):
        for fingerprint, name in found.items():
            sets.union(fingerprint, name)
    device: dict[str, str] = {}
    for members in _components(sets, by_fingerprint.values()):
        device.update(_named(members))
    return device


def _first_observations(observations: Iterable[Observation]) -> dict[str, Observation]:
    by_fingerprint: dict[str, Observation] = {}
    for o in observations:
        by_fingerprint.setdefault(o.fingerprint, o)
    return by_fingerprint


def _components(sets: _UnionFind, observations: Iterable[Observation]) -> list[list[Observation]]:
    components: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        components[sets.find(o.fingerprint)].append(o)
    return list(components.values())


def _named(members: list[Observation]) -> Iterator[tuple[str, str]]:
    """(fingerprint, name) for one device: named by its most complete fingerprint, the smallest of equals."""
    name = min(members, key=lambda o: (-len(o.identifiers), o.fingerprint)).fingerprint
    return ((o.fingerprint, name) for o in members)


def link_rows(result: QueryResult) -> dict[str, str]:
    """`link` over the rows of `OBSERVATIONS_SQL`."""
    return link(Observation.of(r["device_fingerprint"], r["terminal_kind"], r) for r in result.dicts())


@dataclass
class _Group:
    terminal_kinds: set[str]
    investors: set[str]
    brokers: set[str]
    devices: set[str]
    fingerprints: set[str]
    reports: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None

    @classmethod
    def empty(cls) -> _Group:
        return cls(set(), set(), set(), set(), set())

    def add(self, row: Mapping[str, Any], device: str) -> None:
        self.terminal_kinds.add(row["terminal_kind"])
        self.investors.add(f"{row['broker_id']}:{row['investor_id']}")
        self.brokers.add(row["broker_id"])
        self.devices.add(device)
        self.fingerprints.add(row["device_fingerprint"])
        self.reports += row["reports"]
        self.first = row["first_login"] if self.first is None else min(self.first, row["first_login"])
        self.last = row["last_login"] if self.last is None else max(self.last, row["last_login"])


def shared_devices_rows(result: QueryResult, min_accounts: int, min_brokers: int) -> QueryResult:
    """一机多户: devices with at least `min_accounts` investors at `min_brokers` brokers or more."""
    device = link_rows(result)
    groups: dict[str, _Group] = defaultdict(_Group.empty)
    for row in result.dicts():
        name = device[row["device_fingerprint"]]
        groups[name].add(row, name)
    rows = [
        (name, min(g.terminal_kinds), len(g.investors), len(g.brokers), sorted(g.investors), g.reports,
         g.first, g.last, sorted(g.fingerprints))
        for name, g in groups.items()
        if len(g.investors) >= min_accounts and len(g.brokers) >= min_brokers
    ]  # fmt: skip
    rows.sort(key=lambda r: (-r[2], -r[3], r[0]))
    columns = ["device", "terminal_kind", "investors", "brokers", "investor_list", "reports", "first_login",
               "last_login", "fingerprints"]  # fmt: skip
    return QueryResult(columns, rows)


def multi_device_investors_rows(result: QueryResult, min_devices: int) -> QueryResult:
    """一户多机: investors who reported from at least `min_devices` devices."""
    device = link_rows(result)
    groups: dict[tuple[str, str], _Group] = defaultdict(_Group.empty)
    for row in result.dicts():
        groups[(row["broker_id"], row["investor_id"])].add(row, device[row["device_fingerprint"]])
    rows = [
        (broker, investor, len(g.devices), sorted(g.terminal_kinds), sorted(g.devices), g.reports,
         sorted(g.fingerprints))
        for (broker, investor), g in groups.items()
        if len(g.devices) >= min_devices
    ]  # fmt: skip
    rows.sort(key=lambda r: (-r[2], r[0], r[1]))
    columns = ["broker_id", "investor_id", "devices", "terminal_kinds", "device_list", "reports", "fingerprints"]
    return QueryResult(columns, rows)
