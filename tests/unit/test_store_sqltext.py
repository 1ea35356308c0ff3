"""Query parameters are inlined as literals: whatever the text, ClickHouse reads back exactly it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.store.embedded import ChdbBackend
from pipeline.store.sqltext import literal, quote


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbBackend]:
    backend = ChdbBackend(tmp_path_factory.mktemp("chdb-sqltext"), "lt_unit_sqltext")
    try:
        yield backend
    finally:
        backend.close()


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_text_round_trips(chdb: ChdbBackend, text: str) -> None:
    assert chdb.query(f"SELECT {quote(text)} AS v").scalar() == text


def test_injection_stays_a_string(chdb: ChdbBackend) -> None:
    evil = "SHFE') OR 1=1 --"
    assert chdb.query(f"SELECT has(['SHFE'], {literal(evil)}) AS v").scalar() == 0


def test_literals(chdb: ChdbBackend) -> None:
    row = chdb.query(
        f"SELECT {literal(7)} AS i, {literal(True)} AS b, {literal(dt.date(2025, 11, 20))} AS d, "
        f"{literal(['a', 'b'])} AS l, {literal(0.25)} AS f"
    ).rows[0]
    assert row == (7, 1, dt.date(2025, 11, 20), ["a", "b"], 0.25)
    with pytest.raises(TypeError):
        literal(object())
