"""Windows logins of hand-built reports through a Processor, and a sharing table's changelog, for the W409 tests."""

from __future__ import annotations

import json
from typing import Any

from pipeline.process import Processor, Result
from pipeline.sharing import SharingTable

BIOS_BIT, DISK_BIT = 1 << 8, 1 << 6  # profile §5: PC item bits 6 disk_serial, 8 bios_serial


def login_text(i: int) -> str:
    """The i-th login: 2025-11-20 09:0i:10 China time (at most 60 logins)."""
    return f"2025-11-20 09:{i:02d}:10"


def windows_login(kit: Any, proc: Processor, i: int, who: int, values: dict[str, str], flags: int = 0) -> Result:
    """Login `i` of investor `who` (0 is kit.investor, 1… kit.other_investors) on the kit's Windows
    terminal with these identifier overrides; checks it is accepted with no warning but W409."""
    inv = [kit.investor, *kit.other_investors][who]
    plaintext = kit.plaintext(1, flags, collect_time=f"2025-11-20 09:{i:02d}:00", **values)
    value = kit.value(plaintext, investor=inv, line={"login_time": login_text(i)}, envelope={"report_id": f"P-{i}"})
    result = proc.process(kit.topic(inv), 0, i, inv.investor_id.encode(), value, 1_763_600_405_000)
    assert (result.code, set(result.warnings) - {"W409"}) == (None, set()), result
    return result


def drained(table: SharingTable) -> dict[str, dict[str, int] | None]:
    """The table's changelog records for one transaction, decoded (None: a tombstone), and committed."""
    out = {key: None if value is None else json.loads(value) for key, value in table.drain_changes()}
    table.confirm_changes()
    return out
