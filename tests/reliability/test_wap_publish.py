"""Write-audit-publish drills: ``sandbox build`` killed with SIGKILL at each point of the
publish, a publish that fails half-way, and the history contract.

The warehouse starts published for the day before the shipped date; a child process builds
the shipped date and kills itself (SIGKILL, no clean-up) at a chosen point:

- right after dbt built the candidate ``fct_user_features_for_ai`` (before ``dim_users``
  and before fct's data tests ran: the case that used to leave the two marts on different
  dates);
- after dbt finished, before the publishing transaction began;
- inside the transaction, before each mart's first history statement, before its
  replacement, and right before the commit.

Each time both published marts and their histories must be exactly as before, both on the
day before; ``sandbox infer`` for the shipped date is refused with zero LLM requests; and a
second build publishes both marts on the new date.

Run as a module (``python -m tests.reliability.test_wap_publish POINT -- build ...``) this
file is that child.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from sandbox.config import ROOT, SHIPPED_AS_OF_DATE
from tests.reliability.harness import CHILD_TIMEOUT_S, Requests, rows

AS_OF = SHIPPED_AS_OF_DATE
DAY_BEFORE = AS_OF - timedelta(days=1)
MARTS = ("marts.fct_user_features_for_ai", "marts.dim_users")
GUARDED = (*MARTS, *(f"{m}_history" for m in MARTS))

POINTS = {
    "fct-candidate-built": "dbt:model.three_plane_sandbox.fct_user_features_for_ai",
    "checks-passed": "publish:start",
    "dim-history": "publish:create table if not exists marts.dim_users_history",
    "dim-replaced": "publish:create or replace view marts.dim_users ",
    "fct-history": "publish:create table if not exists marts.fct_user_features_for_ai_history",
    "fct-replaced": "publish:create or replace view marts.fct_user_features_for_ai ",
    "before-commit": "publish:commit",
}
"""Where a build kills itself: after a dbt node, or before the publish statement starting so."""

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


def _die(where: str) -> None:
    print(f"killing myself at {where}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


class _Interrupted:
    """A warehouse connection that calls ``act()`` before the statement starting with ``at``
    (``commit``: before the commit)."""

    def __init__(self, con, at: str, act: Callable[[], None]) -> None:
        self._con, self._at, self._act = con, at, act

    def execute(self, sql: str, *args):
        if sql.startswith(self._at):
            self._act()
        return self._con.execute(sql, *args)

    def commit(self):
        if self._at == "commit":
            self._act()
        return self._con.commit()

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def _interrupting(at: str, act: Callable[[], None]):
    """``sandbox.data.publish``'s ``connect``, handing out :class:`_Interrupted` connections."""
    real = importlib.import_module("sandbox.data.publish").connect

    @contextmanager
    def connect(*args, **kwargs):
        with real(*args, **kwargs) as con:
            yield _Interrupted(con, at, act)

    return connect


def _install(point: str) -> None:
    """Make this process SIGKILL itself at ``point`` (``dbt:<node id>`` or ``publish:<step>``)."""
    build_module = importlib.import_module("sandbox.data.build")  # the module, not build()
    kind, _, at = point.partition(":")
    if kind == "dbt":
        real_invoke = build_module.invoke

        def invoke(args, callbacks=None, manifest=None, **options):
            def on_event(event) -> None:
                if event.info.name == "NodeFinished":
                    if getattr(event.data.node_info, "unique_id", "") == at:
                        _die(point)

            return real_invoke(args, [*(callbacks or []), on_event], manifest, **options)

        build_module.invoke = invoke
    elif kind == "publish" and at == "start":

        def publish(as_of_date, candidates):
            _die(point)

        build_module.publish = publish
    elif kind == "publish":
        publish_module = importlib.import_module("sandbox.data.publish")
        publish_module.connect = _interrupting(at, lambda: _die(point))
    else:
        raise SystemExit(f"unknown point {point!r}")


# -- the tests ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_day_before(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sandbox.data import build

    path = tmp_path_factory.mktemp("wap") / "sandbox.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SANDBOX_WAREHOUSE", str(path))
        for name in ("SANDBOX_RAW_DIR", "SANDBOX_DBT_PROJECT_DIR"):
            mp.delenv(name, raising=False)
        build(DAY_BEFORE)
    return path


@pytest.fixture
def published(isolated_env: Path, built_day_before: Path) -> Path:
    isolated_env.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built_day_before, isolated_env)
    return isolated_env


def snapshot() -> dict[str, list[tuple]]:
    """Every row of the published marts and their histories, sorted."""
    return {t: sorted(rows(f"select * from {t}"), key=repr) for t in GUARDED}


def dates(table: str) -> list:
    return [r[0] for r in rows(f"select distinct as_of_date from {table} order by 1")]


@pytest.mark.slow  # a killed build at each point
@pytest.mark.parametrize("where", list(POINTS))
def test_sigkill_during_build_or_publish_leaves_the_published_marts(
    where: str, published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from sandbox.cli import main
    from sandbox.data import build

    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))
    before = snapshot()
    assert all(dates(t) == [DAY_BEFORE] for t in GUARDED)

    child = subprocess.run(
        [sys.executable, "-m", "tests.reliability.test_wap_publish", POINTS[where], "--",
         "build", "--date", str(AS_OF)],
        env=dict(os.environ), cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert f"killing myself at {POINTS[where]}" in child.stdout

    assert snapshot() == before, "a killed build changed the published marts"
    assert all(dates(t) == [DAY_BEFORE] for t in GUARDED)
    assert main(["infer", "--date", str(AS_OF), "--no-progress"]) == 2
    assert f"holds {DAY_BEFORE}, not {AS_OF}" in capsys.readouterr().err
    assert log.entries() == []

    build(AS_OF)  # the next build publishes both marts on the new date
    assert dates("marts.fct_user_features_for_ai") == dates("marts.dim_users") == [AS_OF]
    for mart in MARTS:
        assert dates(f"{mart}_history") == [DAY_BEFORE, AS_OF]
        history = f"{mart}_history"
        kept = sorted(rows(f"select * from {history} where as_of_date = ?", [DAY_BEFORE]), key=repr)
        assert kept == before[history], "publishing D+1 changed D's history rows"


def test_a_publish_that_fails_half_way_rolls_back(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.data.publish import PublishFailed

    build_module = importlib.import_module("sandbox.data.build")
    publish_module = importlib.import_module("sandbox.data.publish")

    def failing() -> None:
        raise RuntimeError("disk full (simulated)")

    replace_fct = "create or replace view marts.fct_user_features_for_ai "
    monkeypatch.setattr(publish_module, "connect", _interrupting(replace_fct, failing))
    before = snapshot()
    with pytest.raises(PublishFailed) as caught:
        build_module.build(AS_OF)
    assert "every check passed for 2026-11-01, but publishing failed and was rolled back" in str(
        caught.value
    )
    assert "disk full (simulated)" in str(caught.value)
    assert snapshot() == before


def test_building_the_next_day_never_changes_what_a_run_for_a_day_reads(published: Path) -> None:
    """The contract: a run for D freezes D's audited rows, whatever was published since."""
    from sandbox.data import build
    from sandbox.decision.steps import SOURCE_MART, prepare_features

    assert SOURCE_MART == "marts.fct_user_features_for_ai_history"
    expected = rows(
        "select user_id, user_summary_for_llm from marts.fct_user_features_for_ai order by 1"
    )
    build(AS_OF)
    assert dates("marts.fct_user_features_for_ai") == [AS_OF]
    assert prepare_features(DAY_BEFORE) == len(expected)
    frozen = rows(
        "select user_id, user_summary_for_llm from decision.inference_inputs "
        "where execution_date = ? order by 1",
        [DAY_BEFORE],
    )
    assert frozen == expected


def _candidates(con, as_of: str) -> None:
    con.execute("create schema if not exists marts_candidate")
    con.execute(
        "create or replace table marts_candidate.fct_user_features_for_ai as "
        f"select 'u' || i as user_id, date '{as_of}' as as_of_date from range(3) t(i)"
    )
    con.execute(
        "create or replace table marts_candidate.agg_users as select 3 as users"
    )  # a model a learner added, with no as_of_date


def test_publish_writes_the_rows_once_and_copies_models_without_a_date(isolated_env: Path) -> None:
    from sandbox.data.publish import publish
    from sandbox.warehouse import connect

    with connect() as con:
        _candidates(con, "2026-11-01")
    publish(AS_OF, ["marts_candidate.agg_users", "marts_candidate.fct_user_features_for_ai"])
    assert rows(
        "select (select count(*) from marts.agg_users), "
        "(select count(*) from marts.fct_user_features_for_ai)"
    ) == [(1, 3)]
    kinds = dict(
        rows(
            "select table_name, table_type from information_schema.tables "
            "where table_schema = 'marts' order by 1"
        )
    )
    assert kinds == {
        "agg_users": "BASE TABLE",
        "fct_user_features_for_ai": "VIEW",  # the last published date's rows of the history
        "fct_user_features_for_ai_history": "BASE TABLE",
    }


def test_publish_refuses_a_candidate_whose_rows_are_for_another_date(isolated_env: Path) -> None:
    from sandbox.data.publish import PublishFailed, publish
    from sandbox.warehouse import connect

    with connect() as con:
        _candidates(con, "2026-10-31")
    with pytest.raises(PublishFailed, match="rows whose as_of_date is not 2026-11-01"):
        publish(AS_OF, ["marts_candidate.agg_users", "marts_candidate.fct_user_features_for_ai"])
    assert rows("select count(*) from information_schema.tables where table_schema = 'marts'") == [
        (0,)
    ]


if __name__ == "__main__":
    point, separator, *command = sys.argv[1:]
    if separator != "--":
        raise SystemExit("usage: test_wap_publish POINT -- sandbox-args...")
    _install(point)
    from sandbox.cli import main

    sys.exit(main(command))
