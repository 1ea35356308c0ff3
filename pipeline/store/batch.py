"""A batch of records read from Kafka but not yet in the store, with the offsets it covers.

Per table, a batch holds single-object values read but not decoded yet: `raw` ones (decoded
inside ClickHouse, into `decoded` columns or a `native` block) and `pending` ones (decoded in
Python into `rows`). `first`/`last` record, per
topic partition, the offsets the batch read (records that produced no row included), so offsets
are committed for exactly what was inserted. `token(part)` is a deterministic identity of one
insert: the same offset ranges always give the same token, which ClickHouse uses (where it can)
to drop a repeated insert. `done` remembers the parts already inserted, so a retry after a
partial failure skips them. The sink fills the dicts directly in its hot loop.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.store.backend import NativeTypes
from pipeline.store.tables import Row


@dataclass
class Batch:
    rows: dict[str, list[Row]] = field(default_factory=dict)
    raw: dict[str, list[bytes]] = field(default_factory=dict)
    pending: dict[str, list[bytes]] = field(default_factory=dict)
    decoded: dict[str, list[list[Any]]] = field(default_factory=dict)  # raw values once decoded, kept for retries
    native: dict[str, tuple[NativeTypes, bytes]] = field(default_factory=dict)  # or decoded as a Native block
    first: dict[tuple[str, int], int] = field(default_factory=dict)
    last: dict[tuple[str, int], int] = field(default_factory=dict)
    records: int = 0
    started: float = field(default_factory=time.monotonic)
    done: set[str] = field(default_factory=set)

    def age(self) -> float:
        return time.monotonic() - self.started if self.records else 0.0

    def token(self, part: str) -> str:
        """Identity of the insert of `part` (e.g. 'reports/raw') of this batch."""
        spans = ";".join(f"{t}:{p}:{self.first[(t, p)]}-{b}" for (t, p), b in sorted(self.last.items()))
        return part.replace("/", "-") + "-" + hashlib.sha256(spans.encode()).hexdigest()[:32]

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """What to commit once every table is inserted: the offset after the last one read."""
        return {key: last + 1 for key, last in self.last.items()}

    def counts(self) -> dict[str, int]:
        """Rows per table (once decoded: `pending` values that did not decode are not rows)."""
        out: dict[str, int] = {}
        for part in (self.rows, self.raw):
            for table, items in part.items():
                out[table] = out.get(table, 0) + len(items)
        return out
