"""Route stage: which exchanges receive an accepted record, and the output records.

`route` keeps exchanges where the investor has a trading code and a licensed subscriber
exists. The builders shape ExchangeRecord (trading code in place of the internal
investor ID, nothing about other exchanges), Feedback and DeadLetter dicts.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from pipeline.errors import RejectError
from pipeline.profile import codes

# The exchange sees its own trading code only: internal IDs and other exchanges' codes stay here.
_WITHHELD_FROM_EXCHANGES = ("investor_id", "user_id", "broker_id", "trading_codes", "source", "suite")


def route(record: dict[str, Any], licensed: Set[str]) -> list[tuple[str, str]]:
    """(exchange, trading code) pairs the record goes to, in exchange order."""
    return sorted((ex, code) for ex, code in record["trading_codes"].items() if ex in licensed)


def exchange_record(record: dict[str, Any], exchange: str, trading_code: str) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in _WITHHELD_FROM_EXCHANGES}
    out["exchange"] = exchange
    out["trading_code"] = trading_code
    out["member_id"] = record["broker_id"]
    return out


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
