"""Secrets: a dummy ``ANTHROPIC_API_KEY`` is used, and never written anywhere.

The offline mock never reads the key, so these drills run the *real* client
(``--llm anthropic``) against the fake Messages API served over HTTP on 127.0.0.1
(``ANTHROPIC_BASE_URL``): the server checks that every request really carried the key, and
the drills then grep everything the runs left — captured stdout and stderr (with the SDK's
debug logging on), error messages, every warehouse table dumped to text, every file next to
the warehouse (the DuckDB file itself, dbt's target and logs), the Airflow home (task logs
and the SQLite metadata DB with its XComs) — and the notebooks' stored outputs.
"""

# ruff: noqa: F811 (the fixtures imported from tests.control.conftest are test arguments)

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sandbox.config import ROOT
from sandbox.decision import prepare_features, run_llm_inference
from sandbox.decision.fake import FakeMessagesAPI, FakeServer, Faults
from tests.control.conftest import (  # noqa: F401 (pytest fixtures)
    airflow_home_fixture,
    migrated_home_fixture,
)
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import dummy_api_key, dump_text, grep_files, sandbox_cli

KEY_SHAPE = re.compile(r"sk-ant-[A-Za-z0-9_-]{12,}")


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = dummy_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", value)
    return value


def carried(server: FakeServer, key: str) -> bool:
    """True when the server saw requests and every one carried the key."""
    return bool(server.seen) and all(key in " ".join(s.headers.values()) for s in server.seen)


def assert_nowhere(key: str, folder: Path, *texts: str) -> None:
    needle = key.encode()
    assert grep_files(folder, needle) == []
    assert key not in dump_text()
    for text in texts:
        assert key not in text
    # nor a recognisable part of it (a log that cuts or masks only the end)
    assert key[:24] not in "".join(texts)


@pytest.mark.slow  # a whole pipeline run
def test_the_key_stays_out_of_output_errors_and_the_warehouse(
    key: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_mart(12)
    args = ("infer", "--date", str(DAY), "--llm", "anthropic", "--no-progress")

    # unreachable API: every row fails, and the failure rows hold the error messages
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # the discard port: refused
    prepare_features(DAY)
    unreachable = run_llm_inference(DAY, llm="anthropic", max_retries=0, progress=False)
    assert unreachable.failures_by_class == {"APIConnectionError": 12}

    # a rejected key: the run stops with a message that names the variable, not its value
    with FakeServer(FakeMessagesAPI(faults=Faults.parse("auth=1"))) as server:
        rejected = sandbox_cli(*args, env={"ANTHROPIC_BASE_URL": server.url})
    assert rejected.returncode == 2
    assert "401" in rejected.stderr and "check ANTHROPIC_API_KEY" in rejected.stderr
    assert carried(server, key)

    # a good run, with the SDK's debug logging on
    with FakeServer(FakeMessagesAPI()) as server:
        ok = sandbox_cli(*args, env={"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_LOG": "debug"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert carried(server, key)
    assert "DEBUG] Request options" in ok.stderr  # the SDK logged every request

    assert_nowhere(
        key,
        isolated_env.parent,
        unreachable.render(),
        rejected.stdout,
        rejected.stderr,
        ok.stdout,
        ok.stderr,
    )


@pytest.mark.slow
def test_the_key_stays_out_of_airflow_logs_and_metadata(
    key: str, airflow_home: Path, isolated_env: Path
) -> None:
    with FakeServer(FakeMessagesAPI()) as server:
        run = sandbox_cli(
            "run", "--date", str(DAY), "--llm", "anthropic", env={"ANTHROPIC_BASE_URL": server.url}
        )
    assert run.returncode == 0, run.stdout + run.stderr
    assert carried(server, key) and len(server.message_bodies()) >= 500
    logs = list((airflow_home / "logs").rglob("*.log"))
    assert logs and (airflow_home / "airflow.db").exists()
    assert grep_files(airflow_home, key.encode()) == []
    assert list((isolated_env.parent / "dbt_target").iterdir())
    assert_nowhere(key, isolated_env.parent, run.stdout, run.stderr)


def test_no_notebook_stores_an_api_key() -> None:
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        text = path.read_text(encoding="utf-8")
        assert not KEY_SHAPE.search(text), f"{path.name} holds something shaped like an API key"
        for cell in json.loads(text)["cells"]:
            for output in cell.get("outputs", []):
                blob = json.dumps(output)
                assert "ANTHROPIC_API_KEY=" not in blob.replace(" ", ""), path.name
