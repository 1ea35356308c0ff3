"""One DDL and one query, run on the Debian ClickHouse server (18.16, via clickhouse-driver's
native protocol) and on chdb (current ClickHouse, in process): same rows in, same figures out.

Expected figures are computed in Python from the rows themselves (sums, lengths, an MD5-based
checksum), never by asking ClickHouse; cityHash64 has no Python twin, so for it the two engines
check each other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROWS = 100_000
MASK64 = (1 << 64) - 1

# Valid on 18.16 and on current ClickHouse: no TTL, no DateTime64, no LowCardinality.
DDL = """
CREATE TABLE {table}
(
    day      Date,
    ts       DateTime('UTC'),
    id       UInt64,
    investor String,
    amount   Int64,
    price    Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (investor, day, id)
"""

CHECK_QUERY = """
SELECT
    count(),
    sum(id),
    sum(amount),
    sum(length(investor)),
    uniqExact(investor),
    uniqExact(toYYYYMM(day)),
    sum(reinterpretAsUInt64(MD5(investor))),
    sum(cityHash64(investor)),
    min(ts),
    max(ts),
    round(sum(price), 2)
FROM {table}
"""

EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _columns() -> dict[str, list[Any]]:
    ids = list(range(ROWS))
    # 123 days span several monthly partitions; 997 distinct investors with multibyte names.
    ts = [EPOCH + dt.timedelta(seconds=i * 97) for i in ids]
    return {
        "day": [t.date() for t in ts],
        "ts": ts,  # aware UTC; clickhouse-driver returns DateTime('UTC') values aware as well
        "id": ids,
        "investor": [f"投资者-{i % 997:04d}" for i in ids],
        "amount": [(i * 7919) % 200_003 - 100_000 for i in ids],
        "price": [(i % 1000) * 0.25 for i in ids],
    }


def _expected(cols: dict[str, list[Any]]) -> tuple[Any, ...]:
    """The CHECK_QUERY row, computed in Python."""

    def md5_u64(s: str) -> int:
        # reinterpretAsUInt64(MD5(s)): the first 8 digest bytes as a little-endian integer.
        return int.from_bytes(hashlib.md5(s.encode()).digest()[:8], "little")

    investors = cols["investor"]
    return (
        ROWS,
        sum(cols["id"]),
        sum(cols["amount"]),
        sum(len(s.encode()) for s in investors),  # length() counts bytes
        len(set(investors)),
        len({(d.year, d.month) for d in cols["day"]}),
        sum(md5_u64(s) for s in investors) & MASK64,  # UInt64 sums wrap
        None,  # cityHash64: compared between the engines instead
        min(cols["ts"]),
        max(cols["ts"]),
        round(sum(cols["price"]), 2),
    )


@pytest.fixture(scope="module")
def columns() -> dict[str, list[Any]]:
    return _columns()


def _assert_matches(row: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    for i, (got, want) in enumerate(zip(row, expected, strict=True)):
        if want is None:
            continue
        assert got == want, f"column {i} of CHECK_QUERY: got {got!r}, expected {want!r}"


def _server_figures(client: Any, columns: dict[str, list[Any]]) -> tuple[Any, ...]:
    table = f"lt_test_roundtrip_{uuid.uuid4().hex[:10]}"
    client.execute(DDL.format(table=table))
    try:
        inserted = client.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES", list(columns.values()), columnar=True
        )
        assert inserted == ROWS
        [row] = client.execute(CHECK_QUERY.format(table=table))
    finally:
        client.execute(f"DROP TABLE IF EXISTS {table}")
    return tuple(row)


def _chdb_figures(columns: dict[str, list[Any]]) -> tuple[Any, ...]:
    from chdb import session

    sess = session.Session()  # private temporary directory, removed on close
    try:
        sess.query("CREATE DATABASE IF NOT EXISTS lt")
        table = "lt.roundtrip"
        sess.query(DDL.format(table=table))
        tsv = "\n".join(
            f"{d.isoformat()}\t{t:%Y-%m-%d %H:%M:%S}\t{i}\t{inv}\t{amt}\t{p!r}"
            for d, t, i, inv, amt, p in zip(*columns.values(), strict=True)
        )
        sess.query(f"INSERT INTO {table} ({', '.join(columns)}) FORMAT TabSeparated\n{tsv}\n")
        out = str(sess.query(CHECK_QUERY.format(table=table), "TabSeparated")).rstrip("\n")
    finally:
        sess.close()
    fields = out.split("\t")
    assert len(fields) == 11, out
    return (
        *(int(f) for f in fields[:8]),
        dt.datetime.fromisoformat(fields[8]).replace(tzinfo=dt.UTC),
        dt.datetime.fromisoformat(fields[9]).replace(tzinfo=dt.UTC),
        float(fields[10]),
    )


def test_server_and_chdb_agree_on_the_same_ddl_and_query(clickhouse_client: Any, columns: dict[str, list[Any]]) -> None:
    [(version,)] = clickhouse_client.execute("SELECT version()")
    expected = _expected(columns)

    server = _server_figures(clickhouse_client, columns)
    _assert_matches(server, expected)

    embedded = _chdb_figures(columns)
    _assert_matches(embedded, expected)

    assert embedded == server, f"server {version} and chdb disagree"
