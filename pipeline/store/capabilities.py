"""What a ClickHouse server supports, decided once from `SELECT version()`.

The Debian server (18.16) lacks TTL, DateTime64, column codecs, production LowCardinality and
insert deduplication tokens for non-replicated tables; current ClickHouse (chdb, any recent
server) has them all. Only these switches differ between the two dialects the store speaks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.store.errors import StoreError


@dataclass(frozen=True, slots=True)
class Capabilities:
    version: str
    ttl: bool  # table TTL clauses (19.6)
    datetime64: bool  # DateTime64(3): millisecond timestamps (20.1)
    low_cardinality: bool  # LowCardinality(String) without an experimental setting (20.1, to be safe)
    codecs: bool  # per-column CODEC(...) (20.1, to be safe)
    dedup_token: bool  # insert_deduplication_token + non_replicated_deduplication_window (22.2)

    @classmethod
    def from_version(cls, version: str) -> Capabilities:
        """Parse 'major.minor[.patch…]'; StoreError when the text is not a version."""
        match = re.match(r"\s*(\d+)\.(\d+)", version)
        if match is None:
            raise StoreError(f"cannot parse ClickHouse version {version!r}")
        v = (int(match[1]), int(match[2]))
        modern = v >= (20, 1)
        return cls(version.strip(), v >= (19, 6), modern, modern, modern, v >= (22, 2))

    @property
    def dialect(self) -> str:
        """'current' or 'legacy', for messages and tests."""
        return "current" if self.datetime64 else "legacy"
