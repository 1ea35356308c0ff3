"""Normalize stage: envelope + report line + decrypted plaintext → a TerminalRecord dict.

Checks every field format of profile §3 and §5 (E301–E304, E303, E104) and adds the
warnings that need no reference data: W404 relay mismatch, W406 collect_flags
inconsistency, W407 login/collection skew, W408 non-global public IP. Output keys are
TerminalRecord field names; enrichment and provenance are added by later stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline import fields
from pipeline.codec import ReportLine, split_terminal_info
from pipeline.errors import TerminalInfoError
from pipeline.profile import field_formats, limits


@dataclass(frozen=True, slots=True)
class NormalizeSettings:
    time_skew_ms: int
    login_future_tolerance_ms: int

    @classmethod
    def from_profile(cls) -> NormalizeSettings:
        lim = limits()
        return cls(lim.time_skew_seconds * 1000, lim.login_time_future_tolerance_seconds * 1000)


_MAX_FLAGS = 2**31 - 1  # collect_flags is an Avro int

_TEXT_TARGETS = (
    "device_name", "device_model", "os_version", "disk_serial", "cpu_serial", "bios_serial",
    "device_serial", "system_disk_partition", "imei", "device_id", "idfv", "phone", "platform",
)  # fmt: skip


def _login_ms(line: ReportLine, received_at: int, settings: NormalizeSettings, flags: list[str]) -> int:
    text = line.login_time
    if len(text) == 8:
        flags.append("login_time_inferred")
        return fields.infer_login_ms("login_time", text, received_at, settings.login_future_tolerance_ms)
    return fields.china_datetime_ms("login_time", text)


def normalize(
    envelope: Mapping[str, Any], line: ReportLine, plaintext: bytes, settings: NormalizeSettings
) -> dict[str, Any]:
    """Build the normalized record; raises `TerminalInfoError` with the profile code."""
    if len(plaintext) > limits().plaintext_max_bytes:
        raise TerminalInfoError("E104", "terminal information longer than the profile allows")
    layout, raw = split_terminal_info(plaintext)
    formats = field_formats()
    warnings: list[str] = []
    flags: list[str] = []

    public_ip, is_global = fields.normalize_public_ip("public_ip", line.public_ip)
    if not is_global:
        warnings.append("W408")
    public_port = fields.parse_port("public_port", line.public_port)
    login_time = _login_ms(line, envelope["received_at"], settings, flags)
    if (line.app_type in limits().relay_app_types) != bool(line.relay_app_id) and line.app_type != 4:
        warnings.append("W404")

    flags_text = raw[-1].strip()
    if not fields.is_ascii_digits(flags_text) or len(flags_text) > 10 or int(flags_text) > _MAX_FLAGS:
        raise TerminalInfoError("E303", "collect_flags is not a decimal bitmask")
    collect_flags = int(flags_text)

    record: dict[str, Any] = dict.fromkeys(_TEXT_TARGETS)
    private_ips: list[str] = []
    macs: list[str] = []
    latitude = longitude = None
    collect_time: int | None = None
    present = [False] * len(raw)
    present[0] = True
    for position in range(1, len(raw) - 1):
        name = layout.fields[position]
        value = raw[position].strip()
        if not value:
            continue
        present[position] = True
        if name == "collect_time":
            collect_time = fields.china_datetime_ms(name, value)
            continue
        spec = formats[name]
        if spec.format == "ip":
            private_ips.append(fields.normalize_ip(name, value))
        elif spec.format == "mac":
            mac = fields.normalize_mac(name, value)
            macs.append(mac)
            special = limits().mac_flags.get(mac)
            if special and special not in flags:
                flags.append(special)
        elif spec.format == "location":
            latitude, longitude, in_range = fields.parse_location(name, value)
            if not in_range:
                flags.append("location_out_of_range")
        else:
            text = fields.clean_text(name, raw[position], spec.max_length or 64)
            if not text:
                present[position] = False
                continue
            record[spec.target] = text.upper() if spec.format == "upper_text" else text

    if _missing_mask(layout.items, present) != collect_flags:
        warnings.append("W406")
    if collect_time is None:
        # The collector could not read its clock; keep the record, timed by the login.
        flags.append("collect_time_missing")
        collect_time = login_time
    elif abs(login_time - collect_time) > settings.time_skew_ms:
        warnings.append("W407")

    record.update(
        report_id=envelope["report_id"],
        reporter_type=envelope["reporter_type"],
        reporter_id=envelope["reporter_id"],
        broker_id=envelope["broker_id"],
        investor_id=envelope["investor_id"],
        user_id=envelope["user_id"],
        trading_day=envelope["trading_day"],
        received_at=envelope["received_at"],
        correction_of=envelope.get("correction_of"),
        vendor_id=line.vendor_id,
        key_version=line.key_version,
        app_type=line.app_type,
        public_ip=public_ip,
        public_port=public_port,
        login_time=login_time,
        app_id=line.app_id,
        relay_app_id=line.relay_app_id or None,
        terminal_type=layout.code,
        terminal_kind=layout.kind,
        collect_time=collect_time,
        collect_flags=collect_flags,
        private_ips=private_ips,
        macs=macs,
        latitude=latitude,
        longitude=longitude,
        flags=flags,
        warnings=warnings,
    )
    return record


def _missing_mask(items: tuple[tuple[int, tuple[int, ...]], ...], present: list[bool]) -> int:
    """The collect_flags value profile §5 requires: the bit of every item whose fields are all empty.

    A report is consistent exactly when its collect_flags equal this mask: an empty item
    without its bit, a bit over a collected item, and an unknown bit all make them differ.
    """
    mask = 0
    for bit, positions in items:
        for p in positions:
            if present[p]:
                break
        else:
            mask |= 1 << bit
    return mask
