"""Enrich stage: reference lookups, device fingerprint, and the device-sharing signal.

Input is a normalized TerminalRecord dict; output is the same dict with `trading_codes`,
`device_fingerprint` and reference warnings added: W402 AppID not registered, W403 not
authorized for the broker, W405 no trading code anywhere, W409 device on more than N
investors within the window. An unknown vendor raises `EnrichError` E401.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import EnrichError
from pipeline.refdata import ReferenceData

# Identifiers that survive reinstalls and network changes, per terminal family; MACs and
# IPs are left out on purpose because they are easy to spoof or change.
_STABLE_IDS = {
    "WINDOWS": ("disk_serial", "cpu_serial", "bios_serial"),
    "LINUX": ("disk_serial", "cpu_serial", "bios_serial"),
    "MACOS": ("disk_serial", "cpu_serial", "device_serial"),
    "ANDROID": ("imei", "device_id"),
    "IOS": ("idfv",),
    "HARMONYOS": ("device_id",),
    "OTHER": ("device_id",),  # the platform name alone ("web") would merge every web client
}


@dataclass(frozen=True, slots=True)
class EnrichSettings:
    fingerprint_key: bytes
    sharing_max_investors: int
    sharing_window_ms: int


def device_fingerprint(record: dict[str, Any], key: bytes) -> str | None:
    """Keyed HMAC-SHA256 over the stable hardware identifiers; None when all are missing."""
    names = _STABLE_IDS[record["terminal_kind"]]
    values = [record.get(name) or "" for name in names]
    if not any(values):
        return None
    message = "\x1f".join([record["terminal_kind"], *values]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def observe_sharing(
    seen: MutableMapping[str, int], investor: str, at_ms: int, window_ms: int
) -> int:
    """Record that `investor` used the device at `at_ms`; return distinct investors in the window.

    `seen` maps investor → last time seen and is the device's state (a faust table value).
    """
    if seen.get(investor, -1) < at_ms:
        seen[investor] = at_ms
    # Sightings merged from other workers may be later than this report: count both sides.
    count = sum(1 for t in seen.values() if abs(t - at_ms) <= window_ms)
    horizon = max(seen.values()) - window_ms
    for other in [k for k, t in seen.items() if t < horizon]:
        del seen[other]
    return count


def enrich(record: dict[str, Any], ref: ReferenceData, settings: EnrichSettings) -> dict[str, Any]:
    """Add reference data and reference warnings (without the sharing signal, see `sharing_warning`)."""
    if record["vendor_id"] not in ref.vendors:
        raise EnrichError("E401", "vendor_id is not registered")
    warnings: list[str] = record["warnings"]
    broker = record["broker_id"]
    unregistered = unauthorized = False
    for app_id in (record["app_id"], record["relay_app_id"]):
        if not app_id:
            continue
        app = ref.apps.get(app_id)
        if app is None:
            unregistered = True
        elif broker not in app["authorized_brokers"]:
            unauthorized = True
    if unregistered:
        warnings.append("W402")
    if unauthorized:
        warnings.append("W403")
    codes = ref.trading_codes(broker, record["investor_id"])
    if not codes:
        warnings.append("W405")
    record["trading_codes"] = codes
    record["device_fingerprint"] = device_fingerprint(record, settings.fingerprint_key)
    return record


def sharing_warning(
    record: dict[str, Any], seen: MutableMapping[str, int], settings: EnrichSettings
) -> None:
    """Update the device's sharing state and add W409 when too many investors share it."""
    investor = f"{record['broker_id']}:{record['investor_id']}"
    count = observe_sharing(seen, investor, record["login_time"], settings.sharing_window_ms)
    if count > settings.sharing_max_investors:
        record["warnings"].append("W409")
