"""Bad input, the decision and control half: a failed gate means zero LLM requests.

``test_bad_input.py`` proves the data half (each drill fails the gate naming the check, the
model/column and the raw file, or is handled, and the mart keeps its rows). Here every gate
drill's broken inputs are run through the pipeline and the fake Messages API's request log
must stay empty:

- every drill through the cheap path, the CLI chain: ``sandbox build`` for the next day
  exits 2 with the gate's message (so ``sandbox build && sandbox infer`` stops there), and a
  learner who runs ``sandbox infer`` anyway is refused too, because the mart still holds
  the last good date;
- one drill end to end through Airflow (``sandbox run``): a rebuild of a date whose good
  mart already exists, where only the control plane's gate (the sensor on ``dbt_run``)
  stands between the broken build and the LLM. ``test_control_pipeline.py`` does this for a
  duplicate key (a staging test); this drill uses ``runaway_summary``, the one failure that
  happens in the mart model itself.
"""

# ruff: noqa: F811 (the fixtures imported from tests.control_fixtures are test arguments)

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sandbox.cli import main
from sandbox.config import SHIPPED_AS_OF_DATE as AS_OF
from sandbox.data.drills import DRILLS, broken_inputs
from sandbox.warehouse import checksum, connect
from tests.control_fixtures import (  # noqa: F401 (pytest fixtures)
    airflow_home_fixture,
    migrated_home_fixture,
    sandbox_run,
    task_states,
)
from tests.reliability.harness import Requests, rows, tables

NEXT_DAY = AS_OF + timedelta(days=1)
# what the decision plane reads, and what it and the control plane write
GUARDED = ("marts.fct_user_features_for_ai", "decision.", "ops.", "marts.user_recommendations")
GATE_DRILLS = [name for name, drill in DRILLS.items() if drill.expect != "handled"]


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Requests:
    path = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(path))
    return Requests(path)


def fingerprint(prefixes: tuple[str, ...] = GUARDED) -> dict[str, str]:
    with connect(read_only=True) as con:
        return {t: checksum(con, t) for t in tables() if t.startswith(prefixes)}


def test_every_gate_drill_is_covered() -> None:
    assert len(GATE_DRILLS) >= 10


@pytest.mark.parametrize("name", GATE_DRILLS)
def test_a_failed_gate_sends_no_request(name: str, warehouse: Path, log, capsys) -> None:
    before = fingerprint()
    with broken_inputs(name):
        built = main(["build", "--date", str(NEXT_DAY)])
        out, err = capsys.readouterr()
        assert built == 2, out + err
        assert err.startswith(f"sandbox build: the quality gate failed for {NEXT_DAY}")
        assert "Traceback" not in err
        expect = DRILLS[name]
        assert (expect.where or expect.expect).split(".")[-1] in err

        inferred = main(["infer", "--date", str(NEXT_DAY), "--no-progress"])
        out, err = capsys.readouterr()
    assert inferred == 2, out + err
    assert f"holds {AS_OF}, not {NEXT_DAY}" in err and f"sandbox build --date {NEXT_DAY}" in err
    assert log.entries() == []  # not one request, not even count_tokens
    assert fingerprint() == before  # the AI mart and the decision tables as they were


def test_a_failed_gate_leaves_every_published_mart_as_it_was(warehouse: Path) -> None:
    before = fingerprint(("marts.",))
    with broken_inputs("orphan_event"):
        assert main(["build", "--date", str(NEXT_DAY)]) == 2
    assert rows("select distinct as_of_date from marts.dim_users") == [(AS_OF,)]
    assert fingerprint(("marts.",)) == before


@pytest.mark.slow
def test_airflow_blocks_inference_when_the_mart_model_fails_its_contract(
    warehouse: Path, airflow_home: Path, log
) -> None:
    mart = "marts.fct_user_features_for_ai"
    before = fingerprint()
    with broken_inputs("runaway_summary"):
        run = sandbox_run("--date", str(AS_OF))
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"gate blocked inference for {AS_OF}: model {mart} did not build" in run.stdout
    assert "contract constraint failed before the swap" in run.stdout
    assert "no LLM request was made for this date." in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    ai = task_states(airflow_home, "ai_recommendation_pipeline")
    assert ai["wait_for_dbt_completion"] == "failed"
    assert [ai[t] for t in ("prepare_features", "run_llm_inference", "write_results")] == [
        "upstream_failed"
    ] * 3
    assert log.entries() == []
    after = fingerprint()
    assert after[mart] == before[mart]  # the good rows of the date are still published
    assert rows("select status, llm_requests from ops.pipeline_runs") == [("gate_blocked", 0)]
