"""A run killed with SIGKILL at a random moment, then resumed: one row per user, the journal
keeps what was answered, so a request is sent twice only if the kill fell between its answer
arriving and the journal write (microseconds)."""

# ruff: noqa: F811 (the fixtures imported from tests.decision.conftest are test arguments)

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from sandbox.decision import prepare_features, run_llm_inference
from sandbox.decision.prompt import opaque_user_id
from tests.decision.conftest import (
    DAY,
    create_mart,
    requests_log,  # noqa: F401 (pytest fixtures)
    scalar,
)

WORKERS = 4
CHILD = (
    "from sandbox.decision import run_llm_inference\n"
    f"run_llm_inference('{DAY}', workers={WORKERS}, escalate=False, progress=False)\n"
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_killed_run_then_resumed_gives_one_row_per_user(requests_log, monkeypatch) -> None:
    users = create_mart(120)
    prepare_features(DAY)
    env = {**os.environ, "SANDBOX_MOCK_LATENCY_MS": "100"}
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(requests_log.messages()) < 30:
            assert child.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline, "the child never got going"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    staged_at_kill = scalar("select count(*) from decision.recommendations_staging")
    answered_at_kill = Counter(e["user"] for e in requests_log.messages())
    assert staged_at_kill < 120

    summary = run_llm_inference(DAY, workers=WORKERS, escalate=False, progress=False)
    # the journal held answers that were not committed at the kill: committed first, not re-sent
    assert summary.skipped >= staged_at_kill
    assert summary.done == 120 - summary.skipped

    assert scalar("select count(*) from decision.recommendations_staging") == 120
    assert scalar("select count(distinct user_id) from decision.recommendations_staging") == 120

    per_user = Counter(e["user"] for e in requests_log.messages())
    assert set(per_user) == {opaque_user_id(u["user_id"]) for u in users}
    sent_twice = sum(1 for user, n in per_user.items() if n > 1)
    ledger = scalar("select count(*) from decision.llm_calls where purpose = 'primary'")
    # only a kill between an answer arriving and its journal write can lose it: at most the
    # requests in flight, and then the ledger misses exactly those
    assert sent_twice <= WORKERS and max(per_user.values()) <= 2
    assert ledger == sum(per_user.values()) - sent_twice
    print(
        f"{sum(answered_at_kill.values())} answered at the kill, {staged_at_kill} committed, "
        f"{summary.skipped - staged_at_kill} recovered from the journal, {sent_twice} sent twice"
    )
