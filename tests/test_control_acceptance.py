"""The article's acceptance test, automated.

"Can you swap the LLM provider without touching the Data Plane? Can you add a new dbt model
without touching the Control Plane? If yes, you have planes."
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sandbox.config import DBT_PROJECT_DIR, ROOT
from sandbox.warehouse import connect
from tests.control_fixtures import (  # noqa: F401  (fixtures)
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def anthropic_server(tmp_path: Path) -> Iterator[dict]:
    """A local HTTP server speaking the Messages API (the decision plane's fake behind a
    socket), so ``--llm anthropic`` runs the real-API code path offline."""
    import httpx2

    from sandbox.decision.fake import FakeMessagesAPI

    fake = FakeMessagesAPI(state_dir=tmp_path / "batches")
    seen: dict = {"requests": 0, "api_keys": set()}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            request = httpx2.Request(
                self.command, f"http://fake{self.path}", headers=dict(self.headers), content=body
            )
            seen["requests"] += 1
            key = self.headers.get("x-api-key") or self.headers.get("authorization", "")
            seen["api_keys"].add(key.removeprefix("Bearer "))
            response = fake.handle(request)
            content = response.read()
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "content-encoding"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:  # keep pytest's output clean
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_swapping_the_llm_provider_touches_no_data_plane_file(
    airflow_home: Path, anthropic_server: dict
) -> None:
    before = tree_digest(*DATA_PLANE, skip=DBT_RUNTIME_FILES)
    env = {
        "ANTHROPIC_BASE_URL": anthropic_server["url"],
        "ANTHROPIC_API_KEY": "sk-ant-test-only",
    }

    result = sandbox_run("--date", DAY, "--llm", "anthropic", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert anthropic_server["requests"] > 0  # the anthropic client really was used...
    assert anthropic_server["api_keys"] == {"sk-ant-test-only"}
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
