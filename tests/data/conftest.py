"""Fixtures of the data plane's tests: the published feature mart, read back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox.warehouse import connect

MART = "marts.fct_user_features_for_ai"


@pytest.fixture
def mart_rows() -> Callable[[], list[tuple]]:
    """A function returning the published feature mart's rows, ordered by user."""

    def read() -> list[tuple]:
        with connect(read_only=True) as con:
            return con.execute(f"select * from {MART} order by user_id").fetchall()

    return read
