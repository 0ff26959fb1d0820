"""A run killed with SIGKILL part-way, then resumed: one row per user, few requests twice."""

# ruff: noqa: F811 (the fixtures imported from tests.decision_fixtures are test arguments)

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
from tests.decision_fixtures import (
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
    assert 0 < staged_at_kill < 120

    summary = run_llm_inference(DAY, workers=WORKERS, escalate=False, progress=False)
    assert summary.skipped == staged_at_kill
    assert summary.done == 120 - staged_at_kill

    assert scalar("select count(*) from decision.recommendations_staging") == 120
    assert scalar("select count(distinct user_id) from decision.recommendations_staging") == 120
    assert scalar("select count(*) from decision.llm_calls where purpose = 'primary'") == 120

    per_user = Counter(e["user"] for e in requests_log.messages())
    assert set(per_user) == {opaque_user_id(u["user_id"]) for u in users}
    sent_twice = sum(1 for n in per_user.values() if n > 1)
    # sent but not committed when killed: the rows in flight, plus the rows that finished
    # while the writer was committing (a commit takes tens of ms, rows take 100 ms here)
    assert sent_twice <= 3 * WORKERS
    assert max(per_user.values()) <= 2
