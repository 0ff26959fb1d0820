"""Crash and resume: ``sandbox infer`` killed with SIGKILL at three points, then run again.

``tests/decision/test_kill.py`` kills a run at a random moment. These drills kill it at
chosen points *inside* the step's transactions — while the first group of answers is being
committed, in the middle of the run, and while ``write_results`` publishes — then re-run the
real CLI and check: exactly one result row per user and date, no row lost, the killed
transaction left nothing behind, and, because every answer was in the journal before the
kill, no request that was answered is sent again and ``decision.llm_calls`` equals the
requests the fake answered, exactly.
"""

# ruff: noqa: F811 (the fixtures imported from tests.decision.conftest are test arguments)

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from sandbox.decision.prompt import opaque_user_id
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import PausedChild, Requests, rows, sandbox_cli, scalar

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

USERS = 40
WORKERS = 4
ARGS = ("infer", "--date", str(DAY), "--workers", str(WORKERS), "--no-progress")

POINTS = {
    # the first commit of answers is open: nothing is committed yet
    "before-first-commit": "commit:1",
    # a commit in the middle of the run is open: some rows are committed, most are not
    "mid-run": f"commit-rows:{USERS // 3}",
    # every answer is staged; write_results' publishing transaction is open
    "during-final-write": "write-results",
}


def _staged() -> set[str]:
    return {r[0] for r in rows("select user_id from decision.recommendations_staging")}


@pytest.mark.slow  # a killed run at each point
@pytest.mark.parametrize("where", list(POINTS))
def test_killed_at_a_chosen_point_then_resumed(where: str, tmp_path: Path, monkeypatch) -> None:
    users = create_mart(USERS)
    by_opaque = {opaque_user_id(u["user_id"]): u["user_id"] for u in users}
    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "40")

    child = PausedChild(POINTS[where], ARGS, tmp_path / "child").start()
    info = child.wait_paused()
    time.sleep(0.5)  # answers already received reach the journal (microseconds each)
    assert child.kill() == -signal.SIGKILL

    # -- what the kill left ------------------------------------------------------------------
    before = log.entries()
    staged = _staged()
    published = scalar("select count(*) from marts.user_recommendations")
    if where == "during-final-write":
        assert staged == {u["user_id"] for u in users}  # inference had finished
        assert published == 0  # the publishing transaction left nothing half-written
    else:
        # the open transaction left nothing: only the rows of earlier commits are staged
        assert len(staged) == info["staged_total"] - info["results"]
        if where == "before-first-commit":
            assert staged == set()
        else:
            assert 0 < len(staged) < USERS
        assert published == 0

    answered = log.pairs(before)
    uncommitted = {by_opaque[user] for user, _ in answered} - staged

    # -- resume with the real CLI ------------------------------------------------------------
    again = sandbox_cli(*ARGS)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "status ok" in again.stdout

    # exactly one result row per user and date, none lost
    expected = sorted((u["user_id"], DAY) for u in users)
    assert sorted(rows("select user_id, execution_date from marts.user_recommendations")) == (
        expected
    )
    assert sorted(rows("select user_id, execution_date from decision.recommendations_staging")) == (
        expected
    )
    # the ledger is the bill: one row per request the fake answered, over both runs
    ledger = Counter(
        {
            (opaque_user_id(user), model): n
            for user, model, n in rows(
                "select user_id, model, sum(attempts) from decision.llm_calls "
                "where purpose <> 'estimate' group by all"
            )
        }
    )
    assert ledger == log.pairs()
    # no request that was answered before the kill is sent again
    after = log.pairs(log.entries()[len(before) :])
    assert not set(after) & set(answered), "an answered request was sent again"
    if where == "during-final-write":
        assert not uncommitted and not after  # the re-run only publishes
    else:
        assert uncommitted  # answered but not committed: the journal carried them over
        assert (
            "committed " in again.stdout and "journal entries an earlier run left" in again.stdout
        )
    print(
        f"{where}: {len(staged)} rows committed at the kill, {len(uncommitted)} rows answered "
        f"but not committed (kept by the journal), 0 answered requests sent again; ledger = "
        f"{sum(ledger.values())} = requests answered"
    )
