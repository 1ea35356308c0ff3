"""Collection quality: which terminal items fail to be collected, per vendor and AppID.

Input: rows (vendor_id, app_id, terminal_type, collect_flags, reports, inconsistent) grouped by
the `collection-quality` query. Output: one row per vendor and AppID with the reports, those with
any item missing, its share, the W406 count, and `failed_items` {item: reports}, each collect_flags
bit named from the terminal layout tables (profile §5), so the names follow the data files.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache

from pipeline.profile import layouts
from pipeline.store.backend import QueryResult


@cache
def item_names() -> dict[tuple[int, int], str]:
    """(terminal type, bit) → item name: the item's first field, slot digits dropped (mac1 → mac)."""
    names = {}
    for code, layout in layouts().items():
        for bit, positions in layout.items:
            names[(code, bit)] = re.sub(r"\d+$", "", layout.fields[positions[0]])
    return names


def collection_quality(result: QueryResult) -> QueryResult:
    names = item_names()
    totals: dict[tuple[str, str], list[int]] = {}
    failed: dict[tuple[str, str], Counter[str]] = {}
    for vendor, app, terminal_type, flags, reports, inconsistent in result.rows:
        key = (vendor, app)
        total = totals.setdefault(key, [0, 0, 0])
        total[0] += reports
        total[1] += reports if flags else 0
        total[2] += inconsistent
        items = failed.setdefault(key, Counter())
        for bit in range(32):
            if flags >> bit & 1:
                items[names.get((terminal_type, bit), f"bit{bit}")] += reports
    rows = [
        (vendor, app, n, incomplete, round(incomplete / n, 4) if n else 0.0, inconsistent,
         dict(sorted(failed[(vendor, app)].items(), key=lambda kv: (-kv[1], kv[0]))))
        for (vendor, app), (n, incomplete, inconsistent) in sorted(totals.items())
    ]  # fmt: skip
    columns = ["vendor_id", "app_id", "reports", "incomplete", "incomplete_share", "w406", "failed_items"]
    return QueryResult(columns, rows)
