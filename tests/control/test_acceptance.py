"""The article's acceptance test, automated.

"Can you swap the LLM provider without touching the Data Plane? Can you add a new dbt model
without touching the Control Plane? If yes, you have planes."
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.config import DBT_PROJECT_DIR, ROOT
from sandbox.decision.fake import FakeMessagesAPI, FakeServer
from sandbox.warehouse import connect
from tests.control.conftest import (  # noqa: F401  (fixtures)
    airflow_home_fixture,
    migrated_home_fixture,
    sandbox_run,
    tree_digest,
)

pytestmark = pytest.mark.slow

DAY = "2026-11-01"
DATA_PLANE = (ROOT / "dbt_project", ROOT / "sandbox" / "data")
CONTROL_PLANE = (ROOT / "dags", ROOT / "sandbox" / "control")
DBT_RUNTIME_FILES = (".user.yml",)  # dbt's own id file, written into the profiles dir


@pytest.fixture
def anthropic_server(tmp_path: Path) -> Iterator[FakeServer]:
    """The decision plane's fake behind a local socket, so ``--llm anthropic`` runs the
    real-API code path offline."""
    with FakeServer(FakeMessagesAPI(state_dir=tmp_path / "batches")) as server:
        yield server


def test_swapping_the_llm_provider_touches_no_data_plane_file(
    airflow_home: Path, anthropic_server: dict
) -> None:
    before = tree_digest(*DATA_PLANE, skip=DBT_RUNTIME_FILES)
    env = {
        "ANTHROPIC_BASE_URL": anthropic_server.url,
        "ANTHROPIC_API_KEY": "test-key-not-a-secret",
    }

    result = sandbox_run("--date", DAY, "--llm", "anthropic", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert anthropic_server.requests > 0  # the anthropic client really was used...
    assert anthropic_server.api_keys == {"test-key-not-a-secret"}
    with connect(read_only=True) as con:
        written = con.execute("select count(*) from marts.user_recommendations").fetchone()[0]
        users = con.execute("select count(*) from marts.fct_user_features_for_ai").fetchone()[0]
    assert written == users
    assert tree_digest(*DATA_PLANE, skip=DBT_RUNTIME_FILES) == before  # ...and nothing else


NEW_MODEL_SQL = """\
with features as (
    select * from {{ ref('fct_user_features_for_ai') }}
),

final as (
    select plan_tier, count(*) as users
    from features
    group by plan_tier
)

select * from final
"""

NEW_MODEL_YML = """\
version: 2

models:
  - name: agg_users_by_plan
    description: Users per plan tier (added by the acceptance test).
    columns:
      - name: plan_tier
        data_tests:
          - not_null
          - unique
"""


def test_a_new_dbt_model_flows_through_sandbox_run_without_control_plane_changes(
    airflow_home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(
        DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml")
    )
    (project / "models" / "marts" / "agg_users_by_plan.sql").write_text(NEW_MODEL_SQL)
    (project / "models" / "marts" / "agg_users_by_plan.yml").write_text(NEW_MODEL_YML)
    before = tree_digest(*CONTROL_PLANE)

    result = sandbox_run("--date", DAY, env={"SANDBOX_DBT_PROJECT_DIR": str(project)})

    assert result.returncode == 0, result.stdout + result.stderr
    with connect(read_only=True) as con:
        by_plan = con.execute("select sum(users) from marts.agg_users_by_plan").fetchone()[0]
        users = con.execute("select count(*) from marts.fct_user_features_for_ai").fetchone()[0]
        written = con.execute("select count(*) from marts.user_recommendations").fetchone()[0]
    assert by_plan == users == written
    assert tree_digest(*CONTROL_PLANE) == before
