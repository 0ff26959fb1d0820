"""Bad input, the decision and control half: a failed gate means zero LLM requests.

``test_bad_input.py`` proves the data half (each drill fails the gate naming the check, the
model/column and the raw file, or is handled, and the mart keeps its rows). Here every gate
drill's broken inputs are run through the pipeline and the fake Messages API's request log
must stay empty:

- every drill through the cheap path, the CLI chain, on a warehouse whose marts were
  published for the day before: ``sandbox build`` for the drill's date exits 2 with the
  gate's message (so ``sandbox build && sandbox infer`` stops there), and a learner who
  runs ``sandbox infer`` anyway is refused too, because only audited, published rows are
  read and the mart's history holds the last good date only;
- one drill end to end through Airflow (``sandbox run``): a rebuild of a date whose good
  mart already exists, where only the control plane's gate (the sensor on ``dbt_run``)
  stands between the broken build and the LLM. ``test_control_pipeline.py`` does this for a
  duplicate key (a staging test); this drill uses ``runaway_summary``, the one failure that
  happens in the mart model itself.
"""

# ruff: noqa: F811 (the fixtures imported from tests.control_fixtures are test arguments)

from __future__ import annotations

import shutil
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
from tests.reliability.harness import Requests, rows

DAY_BEFORE = AS_OF - timedelta(days=1)
# what the decision plane reads, and what it and the control plane write
GUARDED = ("marts.fct_user_features_for_ai", "decision.", "ops.", "marts.user_recommendations")
GATE_DRILLS = [name for name, drill in DRILLS.items() if drill.expect != "handled"]


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Requests:
    path = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(path))
    return Requests(path)


@pytest.fixture(scope="session")
def built_day_before(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse whose marts were published for the day before the shipped date."""
    from sandbox.data import build

    path = tmp_path_factory.mktemp("built-day-before") / "sandbox.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SANDBOX_WAREHOUSE", str(path))
        mp.delenv("SANDBOX_RAW_DIR", raising=False)
        mp.delenv("SANDBOX_DBT_PROJECT_DIR", raising=False)
        build(DAY_BEFORE)
    return path


@pytest.fixture
def published_day_before(isolated_env: Path, built_day_before: Path) -> Path:
    """This test's own copy of the warehouse published for the day before."""
    isolated_env.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built_day_before, isolated_env)
    return isolated_env


def relations() -> list[str]:
    """Every table and view (the published marts are views of their history)."""
    return [
        f"{s}.{t}"
        for s, t in rows(
            "select table_schema, table_name from information_schema.tables order by 1, 2"
        )
    ]


def fingerprint(prefixes: tuple[str, ...] = GUARDED) -> dict[str, str]:
    with connect(read_only=True) as con:
        return {t: checksum(con, t) for t in relations() if t.startswith(prefixes)}


def test_every_gate_drill_is_covered() -> None:
    assert len(GATE_DRILLS) >= 10


@pytest.mark.parametrize("name", GATE_DRILLS)
def test_a_failed_gate_sends_no_request(name: str, published_day_before: Path, log, capsys) -> None:
    day = DRILLS[name].as_of
    before = fingerprint()
    assert {"marts.fct_user_features_for_ai", "marts.fct_user_features_for_ai_history"} <= set(
        before
    ), "the published mart and its history are guarded"
    with broken_inputs(name):
        built = main(["build", "--date", str(day)])
        out, err = capsys.readouterr()
        assert built == 2, out + err
        assert err.startswith(f"sandbox build: the quality gate failed for {day}")
        assert (
            "nothing was published (marts.fct_user_features_for_ai and marts.dim_users still "
            f"hold {DAY_BEFORE}, as before this build)"
        ) in err
        assert "Traceback" not in err
        expect = DRILLS[name]
        assert (expect.where or expect.expect).split(".")[-1] in err

        inferred = main(["infer", "--date", str(day), "--no-progress"])
        out, err = capsys.readouterr()
    assert inferred == 2, out + err
    assert f"holds {DAY_BEFORE}, not {day}" in err and f"sandbox build --date {day}" in err
    assert log.entries() == []  # not one request, not even count_tokens
    assert fingerprint() == before  # the AI mart, its history and the decision tables as they were


def test_a_failed_gate_leaves_every_published_mart_as_it_was(published_day_before: Path) -> None:
    before = fingerprint(("marts.",))
    with broken_inputs("orphan_event"):
        assert main(["build", "--date", str(AS_OF)]) == 2
    assert rows("select distinct as_of_date from marts.dim_users") == [(DAY_BEFORE,)]
    assert rows("select distinct as_of_date from marts.fct_user_features_for_ai") == [(DAY_BEFORE,)]
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
