"""Helpers for the notebooks: one set-up call, and the checks behind each exercise.

The notebooks call the real planes (``sandbox.data``, ``sandbox.decision``, ``sandbox.control``);
this module only prepares the environment and turns a learner's answer into a clear verdict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import ROOT, SHIPPED_AS_OF_DATE, warehouse_path

SCRATCH_ENV = "SANDBOX_NOTEBOOK_SCRATCH"
"""When set (``make test``, ``make notebooks``), each notebook gets its own scratch warehouse
and Airflow home under this folder, so notebooks never share state or lock each other out."""

AS_OF = SHIPPED_AS_OF_DATE


@dataclass(frozen=True)
class Verdict:
    """The result of an exercise check; prints as one friendly line."""

    ok: bool
    message: str

    def __repr__(self) -> str:
        return ("✅ Correct: " if self.ok else "❌ Not yet: ") + self.message

    def __bool__(self) -> bool:
        return self.ok


def setup(notebook: str) -> None:
    """Prepare the environment for one notebook and print what it will use.

    Offline (mock LLM) unless ``SANDBOX_LLM=anthropic`` was set before the kernel started.
    """
    scratch = os.environ.get(SCRATCH_ENV)
    if scratch:
        folder = Path(scratch) / notebook
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["SANDBOX_WAREHOUSE"] = str(folder / "sandbox.duckdb")
        os.environ["SANDBOX_AIRFLOW_HOME"] = str(folder / "airflow")
        os.environ.pop("SANDBOX_RAW_DIR", None)
    os.environ.setdefault("SANDBOX_LLM", "mock")
    os.environ.setdefault("SANDBOX_SENSOR_TIMEOUT_S", "20")
    os.environ.setdefault("SANDBOX_SENSOR_POKE_S", "2")

    import pandas as pd

    pd.set_option("display.max_colwidth", 140)
    pd.set_option("display.width", 160)
    path = warehouse_path()
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else "a scratch file for this notebook"
    llm = os.environ["SANDBOX_LLM"]
    mode = "offline: a deterministic fake of the Messages API" if llm == "mock" else "the real API"
    print(f"LLM: {llm} ({mode})")
    print(f"warehouse: {where}")
    print(f"as-of date of the shipped data: {AS_OF}")


def _rows(sql: str) -> list[tuple]:
    from sandbox.warehouse import connect

    with connect(read_only=True) as con:
        return con.execute(sql).fetchall()


# --- 01 · data plane -----------------------------------------------------------------------

FADING_SQL = """
select user_id
from marts.fct_user_features_for_ai
where event_count_7d = 0
  and days_since_last_event between 8 and 30
order by user_id
"""


def check_fading_users(answer_sql: str | None) -> Verdict:
    """Exercise 01.1: users active in the last 30 days but not in the last 7."""
    if not answer_sql:
        return Verdict(False, "write your query in `answer_sql` above, then run this cell again.")
    try:
        got = _rows(answer_sql)
    except Exception as exc:  # a learner's SQL error is an answer to explain, not a crash
        return Verdict(False, f"the query did not run: {str(exc).splitlines()[0]}")
    expected = [r[0] for r in _rows(FADING_SQL)]
    ids = sorted(str(r[0]) for r in got)
    if ids == expected:
        return Verdict(True, f"{len(ids)} fading users, exactly the right ones.")
    missing, extra = set(expected) - set(ids), set(ids) - set(expected)
    return Verdict(
        False,
        f"{len(ids)} rows; expected {len(expected)} ({len(missing)} missing, {len(extra)} that "
        "should not be there). Hint: last event between 8 and 30 days ago, none in the last 7.",
    )


def check_predicted_summary(user_id: str, predicted: str | None) -> Verdict:
    """Exercise 01.2: predict a user's ``user_summary_for_llm`` from their feature columns."""
    if not predicted:
        return Verdict(False, "write the sentence you expect in `predicted` above.")
    actual = _rows(
        "select user_summary_for_llm from marts.fct_user_features_for_ai "
        f"where user_id = '{user_id.replace(chr(39), '')}'"
    )
    if not actual:
        return Verdict(False, f"there is no user {user_id!r} in the mart.")
    if predicted.strip() == actual[0][0]:
        return Verdict(True, "character for character — the SQL is that predictable.")
    return Verdict(False, f"the mart says: {actual[0][0]!r}")


# --- 02 · quality gate ---------------------------------------------------------------------


def check_gate_explanation(drill_name: str | None, failing_check: str | None) -> Verdict:
    """Exercise 02.1: pick a drill and name the check that stops it."""
    from sandbox.data.drills import DRILLS

    if not drill_name or not failing_check:
        return Verdict(False, "set `drill_name` and `failing_check` above.")
    if drill_name not in DRILLS:
        return Verdict(False, f"{drill_name!r} is not a drill; pick one of {', '.join(DRILLS)}.")
    expected = DRILLS[drill_name].expect
    if failing_check.strip() == expected:
        return Verdict(True, f"{drill_name} is stopped by {expected}.")
    return Verdict(False, f"{drill_name} is not stopped by {failing_check!r}: run it and read the message.")


def check_custom_break(break_raw) -> Verdict:
    """Exercise 02.2: a function that breaks the raw files so ``event_at``'s not_null test fails."""
    import shutil
    import tempfile

    from sandbox.config import DEFAULT_RAW_DIR
    from sandbox.data import GateFailed, build

    if break_raw is None:
        return Verdict(False, "define `break_raw(raw_dir)` above.")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw"
        shutil.copytree(DEFAULT_RAW_DIR, raw)
        break_raw(raw)
        saved = os.environ.get("SANDBOX_RAW_DIR")
        os.environ["SANDBOX_RAW_DIR"] = str(raw)
        try:
            build(AS_OF)
        except GateFailed as exc:
            names = [f"{f.test} on {f.model}.{f.column}" for f in exc.failures]
            if "not_null on staging.stg_user_events.event_at" in names:
                return Verdict(True, f"the gate said: {'; '.join(names)}.")
            return Verdict(False, f"the gate failed, but on {'; '.join(names)} instead.")
        finally:
            if saved is None:
                os.environ.pop("SANDBOX_RAW_DIR", None)
            else:
                os.environ["SANDBOX_RAW_DIR"] = saved
    return Verdict(False, "the build passed: your change did not break anything the gate checks.")
