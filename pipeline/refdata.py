"""Reference data held by the pipeline: vendors, apps, brokers, accounts, subscribers.

Records arrive per kind (shaped like the lookthrough.<Kind> schemas) and are applied
with `apply`; a record with `deleted: true` removes its entity. Lookups are plain dict
reads so the enrich and route stages stay pure and fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError

KINDS = {
    "vendors": ("lookthrough.Vendor", ("vendor_id",)),
    "apps": ("lookthrough.App", ("app_id",)),
    "brokers": ("lookthrough.Broker", ("broker_id",)),
    "accounts": ("lookthrough.Account", ("broker_id", "investor_id")),
    "subscribers": ("lookthrough.Subscriber", ("subscriber_id",)),
}


def entity_key(kind: str, record: Mapping[str, Any]) -> str:
    """The compacted-topic key of a reference record: its ID fields joined by ':'."""
    try:
        fields = KINDS[kind][1]
    except KeyError:
        raise ConfigError(f"unknown reference kind {kind!r}; known: {', '.join(KINDS)}") from None
    return ":".join(str(record[name]) for name in fields)


@dataclass
class ReferenceData:
    """In-memory reference tables keyed by entity key; they change through `apply` (and `load`)."""

    vendors: dict[str, dict[str, Any]] = field(default_factory=dict)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    brokers: dict[str, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscribers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The last `licensed_exchanges` answer, (now_ms, answer); `apply` drops it. A worker asks once per
    # record with the same now_ms for a whole consumed batch.
    _licensed: tuple[int, frozenset[str]] | None = field(default=None, init=False, repr=False, compare=False)

    def table(self, kind: str) -> dict[str, dict[str, Any]]:
        if kind not in KINDS:
            raise ConfigError(f"unknown reference kind {kind!r}; known: {', '.join(KINDS)}")
        table: dict[str, dict[str, Any]] = getattr(self, kind)
        return table

    def apply(self, kind: str, key: str, record: Mapping[str, Any] | None) -> None:
        """Upsert `record` under `key`, or delete the entity when `record` is None (a tombstone)."""
        table = self.table(kind)
        self._licensed = None
        if record is None:
            table.pop(key, None)
        else:
            table[key] = dict(record)

    def load(self, kind: str, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.apply(kind, entity_key(kind, record), record)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Iterable[Mapping[str, Any]]]) -> ReferenceData:
        ref = cls()
        for kind, records in data.items():
            ref.load(kind, records)
        return ref

    def trading_codes(self, broker_id: str, investor_id: str) -> dict[str, str]:
        account = self.accounts.get(f"{broker_id}:{investor_id}")
        return dict(account["trading_codes"]) if account else {}

    def licensed_exchanges(self, now_ms: int) -> frozenset[str]:
        """Exchanges with at least one subscriber licensed and within its validity at `now_ms`."""
        last = self._licensed
        if last is not None and last[0] == now_ms:
            return last[1]
        licensed = frozenset(
            sub["exchange"]
            for sub in self.subscribers.values()
            if sub["licensed"]
            and sub["valid_from"] <= now_ms
            and (sub.get("valid_to") is None or now_ms <= sub["valid_to"])
        )
        self._licensed = (now_ms, licensed)
        return licensed
