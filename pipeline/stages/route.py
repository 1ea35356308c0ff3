"""Route stage: which exchanges receive an accepted record, and the output records.

`route` keeps exchanges where the investor has a trading code and a licensed subscriber
exists. The builders shape ExchangeRecord (trading code in place of the internal
investor ID, nothing about other exchanges), Feedback and DeadLetter dicts.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from pipeline.errors import ConfigError, RejectError
from pipeline.profile import codes

# The exchange sees its own trading code only: internal IDs and other exchanges' codes stay here.
_WITHHELD_FROM_EXCHANGES = ("investor_id", "user_id", "broker_id", "trading_codes", "source", "suite")


def route(record: dict[str, Any], licensed: Set[str]) -> list[tuple[str, str]]:
    """(exchange, trading code) pairs the record goes to, in exchange order."""
    return sorted((ex, code) for ex, code in record["trading_codes"].items() if ex in licensed)


EXCHANGE_VARYING = frozenset({"exchange", "trading_code", "member_id"})
"""The ExchangeRecord fields that are not the TerminalRecord's own (see `exchange_variant`)."""


def exchange_variant(record: dict[str, Any], exchange: str, trading_code: str) -> dict[str, Any]:
    """What one exchange's copy of a record adds: exactly the `EXCHANGE_VARYING` fields."""
    return {"exchange": exchange, "trading_code": trading_code, "member_id": record["broker_id"]}


def exchange_record(record: dict[str, Any], exchange: str, trading_code: str) -> dict[str, Any]:
    """The ExchangeRecord dict: the record without internal IDs, plus the exchange's variant."""
    out = {k: v for k, v in record.items() if k not in _WITHHELD_FROM_EXCHANGES}
    out.update(exchange_variant(record, exchange, trading_code))
    return out


def check_exchange_fields(fields: Set[str]) -> None:
    """ConfigError if an ExchangeRecord schema would carry a withheld field.

    The worker fills ExchangeRecords by field name straight from the TerminalRecord, so this
    check (not a dict copy) is what keeps internal IDs from reaching an exchange.
    """
    leaked = sorted(fields & set(_WITHHELD_FROM_EXCHANGES))
    if leaked:
        raise ConfigError(f"the ExchangeRecord schema must not carry {', '.join(leaked)}")


def accepted_feedback(record: dict[str, Any], processed_at: int) -> dict[str, Any]:
    warnings = sorted(set(record["warnings"]))
    texts = codes()
    return {
        "report_id": record["report_id"],
        "reporter_id": record["reporter_id"],
        "status": "WARNED" if warnings else "ACCEPTED",
        "codes": warnings,
        "messages": [texts[w].text for w in warnings],
        "correction_of": record.get("correction_of"),
        "processed_at": processed_at,
    }


def rejected_feedback(
    report_id: str, reporter_id: str, error: RejectError, correction_of: str | None, processed_at: int
) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "reporter_id": reporter_id,
        "status": "REJECTED",
        "codes": [error.code],
        "messages": [error.message],
        "correction_of": correction_of,
        "processed_at": processed_at,
    }


def dead_letter(
    *,
    key: bytes | None,
    value: bytes,
    topic: str,
    partition: int,
    offset: int,
    error: RejectError,
    reporter_id: str | None,
    report_id: str | None,
    failed_at: int,
    processing_system: str,
) -> dict[str, Any]:
    """The DLQ keeps the original bytes (still encrypted) and the error, never a plaintext."""
    return {
        "original_key": key,
        "original_value": value,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "stage": error.stage,
        "error_code": error.code,
        "error_message": error.message,
        "reporter_id": reporter_id,
        "report_id": report_id,
        "failed_at": failed_at,
        "processing_system": processing_system,
    }
