"""Fixtures for the decision-plane tests: a small synthetic mart and a request counter.

Shared by the tests in this folder; the drills in ``tests/reliability/`` and ``bench/`` import its helpers.
The warehouse itself is the temporary one ``conftest.isolated_env`` points ``SANDBOX_WAREHOUSE`` at.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import anthropic
import pytest

from sandbox.decision.fake import http_client
from sandbox.warehouse import connect

DAY = date(2026, 11, 1)
PLANS = ("free", "starter", "pro", "enterprise")


def summary_for(plan: str, days_on_plan: int, last: int | None, events: int, types: int) -> str:
    """A summary in the data plane's format."""
    head = f"User has been on the {plan} plan for {days_on_plan} days."
    if last is None:
        return f"{head} No activity recorded since signing up."
    active = (
        "Last active today."
        if last == 0
        else f"Last active {last} day{'s' if last != 1 else ''} ago."
    )
    if events == 0:
        return f"{head} {active} No events in the last 7 days."
    return f"{head} {active} Performed {events} events of {types} types in the last 7 days."


def synthetic_users(n: int) -> list[dict]:
    """``n`` users whose summaries walk through every rule of the fake."""
    shapes = [
        (None, 0, 0, 5),  # new, never active            -> rule 1
        (None, 0, 0, 40),  # never active, long ago       -> rule 2
        (45, 0, 0, 90),  # gone 45 days                  -> rule 3
        (20, 0, 0, 60),  # gone 20 days                  -> rule 4
        (9, 0, 0, 30),  # quiet this week                -> rule 5
        (0, 25, 4, 30),  # busy on a small plan          -> rule 6 (free/starter)
        (2, 6, 2, 100),  # few event types               -> rule 7
        (1, 12, 5, 200),  # everything else              -> rule 8
    ]
    users = []
    for i in range(n):
        last, events, types, days = shapes[i % len(shapes)]
        plan = (
            PLANS[(i // len(shapes)) % len(PLANS)]
            if i % len(shapes) != 5
            else ("free", "starter")[i % 2]
        )
        users.append(
            {
                "user_id": f"u{i:04d}",
                "plan_tier": plan,
                "days_since_signup": days + i % 3,
                "event_count_7d": events,
                "distinct_event_types_7d": types,
                "days_since_last_event": last,
                "user_summary_for_llm": summary_for(plan, days + i % 3, last, events, types),
            }
        )
    return users


def create_mart(n: int = 40, as_of: date = DAY) -> list[dict]:
    """Create ``marts.fct_user_features_for_ai`` with ``n`` synthetic users for ``as_of``."""
    users = synthetic_users(n)
    with connect() as con:
        con.execute("create schema if not exists marts")
        con.execute(
            """
            create or replace table marts.fct_user_features_for_ai (
                user_id varchar primary key, plan_tier varchar, signed_up_at timestamp,
                days_since_signup bigint, event_count_7d bigint, distinct_event_types_7d bigint,
                days_since_last_event bigint, as_of_date date, user_summary_for_llm varchar)
            """
        )
        as_of_ts = datetime(as_of.year, as_of.month, as_of.day)
        con.executemany(
            "insert into marts.fct_user_features_for_ai values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    u["user_id"],
                    u["plan_tier"],
                    as_of_ts - timedelta(days=u["days_since_signup"]),
                    u["days_since_signup"],
                    u["event_count_7d"],
                    u["distinct_event_types_7d"],
                    u["days_since_last_event"],
                    as_of,
                    u["user_summary_for_llm"],
                )
                for u in users
            ],
        )
        # what `sandbox build` publishes beside the mart: every published date's rows
        con.execute(
            "create or replace view marts.fct_user_features_for_ai_history as "
            "select * from marts.fct_user_features_for_ai"
        )
    return users


def table(name: str, order: str = "user_id") -> list[tuple]:
    """All rows of a table, sorted (for equality checks)."""
    with connect() as con:
        return con.execute(f"select * from {name} order by {order}").fetchall()


def scalar(sql: str, params: list | None = None):
    """The first column of the first row of a query."""
    with connect() as con:
        return con.execute(sql, params or []).fetchone()[0]


@dataclass
class RequestLog:
    """The fake's request log: one dict per HTTP request it answered."""

    path: Path

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def messages(self, where: Callable[[dict], bool] = lambda e: True) -> list[dict]:
        """``POST /v1/messages`` requests (each SDK attempt is one)."""
        return [e for e in self.entries() if e["path"].endswith("/v1/messages") and where(e)]

    def count(self, suffix: str, method: str = "POST") -> int:
        return sum(
            1 for e in self.entries() if e["path"].endswith(suffix) and e["method"] == method
        )


@pytest.fixture
def mart() -> list[dict]:
    """A 40-user mart for DAY in this test's warehouse."""
    return create_mart(40)


@pytest.fixture
def requests_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RequestLog:
    """Make the fake log every request it answers to a file, and read it back."""
    path = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(path))
    return RequestLog(path)


class Clock:
    """A settable clock for the fake (epoch seconds)."""

    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def client_for(fake, max_retries: int = 0, timeout: float = 60.0):
    """The real SDK client with ``fake`` as its transport (no SDK retries by default)."""
    return anthropic.Anthropic(
        api_key="mock-key-offline",
        http_client=http_client(fake),
        max_retries=max_retries,
        timeout=timeout,
    )
