"""Concurrency: a second pipeline step started while one is writing fails fast, naming the PID
that holds the warehouse, and the first one finishes with its data intact.

The first step runs in a child that pauses *while it writes* (inside an inference commit, or
while dbt holds the warehouse mid-build: see :mod:`tests.reliability.paused_child`), so the
second step always meets a writer. "Intact" is checked with ``sandbox.warehouse.checksum``
against the same step run alone.

A step (build, infer, run) holds ``<warehouse>.lock`` for its whole duration, so a second
writer is refused even between two commits of the first; inside a step, each connection
waits its turn while a reader holds the file.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from sandbox.decision import infer
from sandbox.warehouse import checksum, connect
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import (
    PausedChild,
    Requests,
    rows,
    sandbox_cli,
    start_sandbox_cli,
    tables,
)

pytestmark = [
    pytest.mark.slow,  # builds and inference runs racing each other
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only"),
]

USERS = 40
INFER = ("infer", "--date", str(DAY), "--workers", "4", "--no-progress")
# the columns of each decision table that do not depend on when or in which run a row was made
STABLE = {
    "decision.inference_inputs": "execution_date, user_id, plan_tier, user_summary_for_llm, "
    "input_sha, source_as_of_date, source_model",
    "decision.recommendations_staging": "execution_date, user_id, recommendation_type, "
    "recommendation_text, confidence_score, reasoning, model, prompt_version, mode, escalated, "
    "input_tokens, output_tokens, cost_usd, input_sha",
    "marts.user_recommendations": "user_id, execution_date, recommendation_type, "
    "recommendation_text, confidence_score, reasoning, model, prompt_version, escalated, "
    "input_tokens, output_tokens, cost_usd",
    "decision.llm_calls": "execution_date, user_id, model, mode, purpose, status, attempts, "
    "input_tokens, output_tokens, cost_usd, prompt_version",
    "marts.fct_user_features_for_ai": "*",
}


def fingerprints(names) -> dict[str, str]:
    with connect(read_only=True) as con:
        return {
            name: checksum(con, f"(select {STABLE.get(name, '*')} from {name})") for name in names
        }


def second_steps(holder_pid: int, tmp_path: Path, *commands: tuple[str, ...]) -> None:
    """Start each command while the holder writes; each must fail fast naming the holder."""
    env = {"SANDBOX_AIRFLOW_HOME": str(tmp_path / "airflow")}  # `sandbox run` never gets far
    procs = [(cmd, start_sandbox_cli(*cmd, env=env)) for cmd in commands]
    for cmd, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, f"sandbox {' '.join(cmd)}: {out}{err}"
        assert f"warehouse is in use by PID {holder_pid} " in err, err
        assert "Traceback" not in err


def test_steps_started_while_inference_commits_fail_fast_and_it_finishes_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_mart(USERS)
    alone = tmp_path / "alone.duckdb"
    shutil.copyfile(tmp_path / "warehouse" / "sandbox.duckdb", alone)
    mart_before = fingerprints(["marts.fct_user_features_for_ai"])
    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))

    first = PausedChild("commit:2", INFER, tmp_path / "first").start()
    try:
        first.wait_paused()  # inside its second commit: the warehouse is open for writing
        second_steps(
            first.pid,
            tmp_path,
            INFER,
            ("build", "--date", str(DAY)),
            ("run", "--date", str(DAY)),
        )
        assert {e["pid"] for e in log.entries()} == {first.pid}  # no request from the others
    finally:
        code = first.finish()
    assert code == 0, first.output()
    assert "status ok" in first.stdout()

    after = fingerprints(STABLE)
    assert after["marts.fct_user_features_for_ai"] == mart_before["marts.fct_user_features_for_ai"]
    # the same inference, run alone on a copy of the warehouse, gives the same tables
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(alone))
    monkeypatch.delenv("SANDBOX_MOCK_REQUEST_LOG")
    infer(DAY, workers=4, progress=False)
    assert fingerprints(STABLE) == after


def test_steps_started_while_dbt_builds_fail_fast_and_the_build_finishes_intact(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbt_tables = [t for t in tables() if t.split(".")[0] in ("staging", "intermediate", "marts")]
    before = fingerprints(dbt_tables)
    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))

    build = PausedChild("dbt-node", ("build", "--date", str(DAY)), tmp_path / "build").start()
    try:
        build.wait_paused()  # dbt has run its first node and holds the warehouse
        second_steps(build.pid, tmp_path, INFER, ("build", "--date", str(DAY)))
    finally:
        code = build.finish()
    assert code == 0, build.output()
    assert log.entries() == []
    # the build rebuilt the same data: every table it owns is as it was, row for row
    assert fingerprints(dbt_tables) == before


def test_a_second_inference_started_between_commits_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_mart(USERS)
    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))
    first = PausedChild("before-commit:2", INFER, tmp_path / "first").start()
    try:
        first.wait_paused()  # between two commits: running, holding no connection
        second = sandbox_cli(*INFER)
    finally:
        code = first.finish()
    assert code == 0, first.output()
    twice = sum(1 for n in log.pairs().values() if n > 1)
    assert second.returncode == 2 and f"in use by PID {first.pid}" in second.stderr, (
        f"the second run was not refused (exit {second.returncode}); "
        f"{twice} (user, model) requests were sent twice"
    )


def test_a_brief_reader_does_not_break_a_running_inference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_mart(USERS)
    first = PausedChild("before-commit:2", INFER, tmp_path / "first").start()
    try:
        first.wait_paused()
        with connect(read_only=True) as con:  # a notebook cell reading the warehouse
            con.execute("select count(*) from marts.fct_user_features_for_ai").fetchone()
            first.resume()
            deadline = time.monotonic() + 5
            while first.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)  # the reader is done within 5 s; the writer should wait
    finally:
        code = first.finish()
    staged = rows("select count(*) from decision.recommendations_staging")[0][0]
    assert code == 0, first.stderr()
    assert staged == USERS
