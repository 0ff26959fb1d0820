"""Helpers for the notebooks: one set-up call, and the checks behind each exercise.

The notebooks call the real planes (``sandbox.data``, ``sandbox.decision``, ``sandbox.control``);
this module only prepares the environment and turns a learner's answer into a clear verdict.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.config import ROOT, SHIPPED_AS_OF_DATE, warehouse_path
from sandbox.decision.summary import SIMULATED_COST

if TYPE_CHECKING:
    from sandbox.decision.fake import FakeServer

SCRATCH_ENV = "SANDBOX_NOTEBOOK_SCRATCH"
"""When set (``make test``, ``make notebooks``), each notebook's state goes under this folder
instead of ``warehouse/notebooks/``."""

AS_OF = SHIPPED_AS_OF_DATE

SIMULATED = SIMULATED_COST
"""How every cost printed in offline mode is labelled (the decision plane's own label): no
money was spent."""

__all__ = [
    "AS_OF",
    "SCRATCH_ENV",
    "SIMULATED",
    "Verdict",
    "cost_note",
    "LOCAL_API_KEY",
    "local_messages_api",
    "fault_storm",
    "plot_storm",
    "notebook_home",
    "setup",
]

_BASE: Path | None = None


@dataclass(frozen=True)
class Verdict:
    """The result of an exercise check; prints as one friendly line."""

    ok: bool
    message: str

    def __repr__(self) -> str:
        return ("✅ Correct: " if self.ok else "❌ Not yet: ") + self.message

    def __bool__(self) -> bool:
        return self.ok


def notebook_home(notebook: str) -> Path:
    """The folder that holds one notebook's own warehouse, Airflow home and generated files.

    ``<SANDBOX_NOTEBOOK_SCRATCH>/<notebook>`` when that is set, else
    ``warehouse/notebooks/<notebook>`` next to the warehouse the kernel started with
    (``SANDBOX_WAREHOUSE``'s folder; by default the repository's git-ignored ``warehouse/``).
    """
    global _BASE
    scratch = os.environ.get(SCRATCH_ENV)
    if scratch:
        return Path(scratch).expanduser().resolve() / notebook
    if _BASE is None:  # remembered before setup() points SANDBOX_WAREHOUSE at the notebook's own
        _BASE = warehouse_path().parent
    return _BASE / "notebooks" / notebook


def setup(notebook: str, *, reset: bool = True) -> Path:
    """Give this notebook its own, fresh warehouse and Airflow home, and print what it uses.

    Nothing another notebook (or ``make pipeline``) wrote is read or changed, so the notebooks
    run in any order, and Restart & Run All gives the same lesson every time: ``reset`` empties
    the notebook's own folder first (only when Airflow is not yet loaded in this kernel: it
    cannot be re-pointed, so restart the kernel to start fresh). Offline (mock LLM) unless
    ``SANDBOX_LLM=anthropic`` was set before the kernel started. Returns the folder.
    """
    import shutil
    import sys

    home = notebook_home(notebook)
    fresh = reset and "airflow.configuration" not in sys.modules
    if fresh and home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SANDBOX_WAREHOUSE"] = str(home / "sandbox.duckdb")
    os.environ["SANDBOX_AIRFLOW_HOME"] = str(home / "airflow")
    for name in ("SANDBOX_RAW_DIR", "SANDBOX_DBT_PROJECT_DIR", "SANDBOX_MOCK_FAULTS"):
        os.environ.pop(name, None)
    os.environ.setdefault("SANDBOX_LLM", "mock")

    import pandas as pd

    pd.set_option("display.max_colwidth", 140)
    pd.set_option("display.width", 160)
    path = warehouse_path()
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else f"…/{notebook}/{path.name}"
    llm = os.environ["SANDBOX_LLM"]
    mode = "offline: a deterministic fake of the Messages API" if llm == "mock" else "the real API"
    state = "emptied now" if fresh else "kept: restart the kernel to start fresh"
    print(f"LLM: {llm} ({mode})")
    print(f"warehouse: {where} (this notebook's own; {state})")
    print(f"as-of date of the shipped data: {AS_OF}")
    return home


def cost_note(llm: str | None = None) -> str:
    """``"(simulated: offline fake at list prices)"`` offline, ``""`` with the real API."""
    return f"({SIMULATED})" if (llm or os.environ.get("SANDBOX_LLM", "mock")) == "mock" else ""


# --- reading a learner's answer ------------------------------------------------------------


class _Unreadable(Exception):
    """An answer in a shape no check can read; its message is the hint."""


def _scalar(answer):
    """One value from an answer: a 1×1 DataFrame, a one-item Series/list, a numpy scalar."""
    import pandas as pd

    if isinstance(answer, pd.DataFrame):
        if answer.shape != (1, 1):
            raise _Unreadable(
                f"your answer is a table of {answer.shape[0]} row(s) × {answer.shape[1]} "
                "column(s): give the one value (e.g. `query_df(...).iloc[0, 0]`)."
            )
        answer = answer.iloc[0, 0]
    if isinstance(answer, pd.Series | list | tuple):
        if len(answer) != 1:
            raise _Unreadable(f"your answer holds {len(answer)} values: give the one value.")
        answer = answer.iloc[0] if isinstance(answer, pd.Series) else answer[0]
    if hasattr(answer, "item") and not isinstance(answer, str):
        answer = answer.item()  # numpy scalars
    return answer


def _blank(answer) -> bool:
    import pandas as pd

    if answer is None:
        return True
    if isinstance(answer, str):
        return not answer.strip()
    if isinstance(answer, pd.DataFrame | pd.Series | list | tuple | dict):
        return len(answer) == 0
    return False


def _text(answer) -> str:
    """A name-like answer, compared without case, quotes or surrounding blanks."""
    return str(_scalar(answer)).strip().strip("'\"`").strip().lower()


def _number(answer) -> float:
    """A number, also from text such as ``"$0.5006"`` or ``"1,234"``."""
    value = _scalar(answer)
    if isinstance(value, str):
        value = value.strip().replace("$", "").replace(",", "").replace("_", "")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _Unreadable(f"{value!r} is not a number.") from None


def _same_money(answer: float, expected: float) -> bool:
    """Equal to four decimals (the precision the notebooks display), or to 1 part in 10⁶."""
    return abs(answer - expected) <= 0.00005 + 1e-12 or abs(answer - expected) <= 1e-6 * abs(
        expected
    )


def _checked(check):
    """Turn an unreadable answer into a hint instead of an exception inside the check."""
    import functools

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        try:
            return check(*args, **kwargs)
        except _Unreadable as exc:
            return Verdict(False, str(exc))

    return wrapper


def _rows(sql: str, params: list | None = None) -> list[tuple]:
    from sandbox.warehouse import connect

    with connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


# --- 01 · data plane -----------------------------------------------------------------------

FADING_SQL = """
select user_id
from marts.fct_user_features_for_ai
where event_count_7d = 0
  and days_since_last_event between 8 and 30
order by user_id
"""


@_checked
def check_fading_users(answer_sql: str | None) -> Verdict:
    """Exercise 01.1: users active in the last 30 days but not in the last 7."""
    if _blank(answer_sql):
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


@_checked
def check_predicted_summary(user_id: str, predicted: str | None) -> Verdict:
    """Exercise 01.2: predict a user's ``user_summary_for_llm`` from their feature columns.

    A miss says which sentence differs first, never what the mart wrote.
    """
    if _blank(predicted):
        return Verdict(False, "write the sentence you expect in `predicted` above.")
    actual = _rows(
        "select user_summary_for_llm from marts.fct_user_features_for_ai where user_id = ?",
        [user_id],
    )
    if not actual:
        return Verdict(False, f"there is no user {user_id!r} in the mart.")
    mine, theirs = " ".join(str(_scalar(predicted)).split()), actual[0][0]
    if mine == theirs:
        return Verdict(True, "character for character — the SQL is that predictable.")
    if mine.lower() == theirs.lower():
        return Verdict(False, "the words are right; check upper and lower case.")
    expected_sentences = [x.strip() for x in theirs.split(".") if x.strip()]
    my_sentences = [x.strip() for x in mine.split(".") if x.strip()]
    for n, sentence in enumerate(expected_sentences, start=1):
        if n > len(my_sentences) or my_sentences[n - 1] != sentence:
            return Verdict(
                False,
                f"sentence {n} of {len(expected_sentences)} differs. Hint: re-read the mart's "
                "`case` branches in fct_user_features_for_ai.sql (Step 5) for this user's numbers.",
            )
    return Verdict(False, f"the mart writes {len(expected_sentences)} sentences; yours has more.")


# --- 02 · quality gate ---------------------------------------------------------------------

_EXAMPLE_DRILL = ("unknown_plan_tier", "accepted_values")
_CHECK_SYNONYMS = {
    "model": {"model", "contract", "constraint", "check", "check constraint", "the contract"},
}


@_checked
def check_gate_explanation(drill_name: str | None, failing_check: str | None) -> Verdict:
    """Exercise 02.1: pick a drill (not the example) and name the check that stops it."""
    from sandbox.data.drills import DRILLS

    if _blank(drill_name) or _blank(failing_check):
        return Verdict(False, "set `drill_name` and `failing_check` above.")
    name, check = _text(drill_name), _text(failing_check)
    if name not in DRILLS:
        return Verdict(False, f"{name!r} is not a drill; pick one of {', '.join(DRILLS)}.")
    if (name, check) == _EXAMPLE_DRILL:
        return Verdict(False, "that is the example in the comment: pick another drill.")
    expected = DRILLS[name].expect
    accepted = _CHECK_SYNONYMS.get(expected, set()) | {expected}
    if expected == "handled":
        accepted |= {"none", "nothing", "handled (build passes)", "handled by design"}
    if check in accepted:
        return Verdict(True, f"{name} is stopped by {expected}.")
    return Verdict(
        False,
        f"{name} is not stopped by {check!r}: run it with the widget in Step 4 and read the "
        "first line of the gate's message.",
    )


def check_custom_break(break_raw) -> Verdict:
    """Exercise 02.2: a function that breaks the raw files so ``event_at``'s not_null test fails."""
    import shutil
    import tempfile

    from sandbox.config import DEFAULT_RAW_DIR, environment
    from sandbox.data import GateFailed, build

    if break_raw is None or not callable(break_raw):
        return Verdict(False, "define `break_raw(raw_dir)` above.")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw"
        shutil.copytree(DEFAULT_RAW_DIR, raw)
        try:
            break_raw(raw)
        except Exception as exc:
            return Verdict(False, f"`break_raw` raised {type(exc).__name__}: {exc}")
        with environment({"SANDBOX_RAW_DIR": str(raw)}):
            try:
                build(AS_OF)
            except GateFailed as exc:
                names = [f"{f.test} on {f.model}.{f.column}" for f in exc.failures]
                if "not_null on staging.stg_user_events.event_at" in names:
                    return Verdict(True, f"the gate said: {'; '.join(names)}.")
                return Verdict(False, f"the gate failed, but on {'; '.join(names)} instead.")
    return Verdict(False, "the build passed: your change did not break anything the gate checks.")


# --- 03 · decision plane -------------------------------------------------------------------


@_checked
def check_predicted_type(summary: str, predicted_type: str | None) -> Verdict:
    """Exercise 03.1: predict the offline fake's recommendation type for a summary.

    A miss names the rule to re-read only when it is not the one that decides.
    """
    from sandbox.decision.fake import recommend

    if _blank(predicted_type):
        return Verdict(False, "set `predicted_type` to one of the four recommendation types.")
    types = ("upgrade_prompt", "re_engagement", "feature_discovery", "churn_risk")
    guess = _text(predicted_type)
    if guess not in types:
        return Verdict(False, f"{guess!r} is not a type: use one of {', '.join(types)}.")
    actual = recommend(summary)
    if guess == actual.recommendation_type:
        return Verdict(
            True, f"{actual.recommendation_type} (confidence {actual.confidence_score})."
        )
    return Verdict(
        False,
        "not that one. Hint: the fake applies the *first* rule that matches, top to bottom; "
        "read the summary's 'Last active' part before its 7-day counts.",
    )


@_checked
def check_escalation_cost(execution_date, answer_usd) -> Verdict:
    """Exercise 03.2: the total cost of the escalation requests of a date, from the ledger."""
    if _blank(answer_usd):
        return Verdict(False, "set `escalation_cost_usd` to the number your query returns.")
    got = _number(answer_usd)
    (expected,) = _rows(
        "select coalesce(sum(cost_usd), 0) from decision.llm_calls "
        "where purpose = 'escalation' and execution_date = ?",
        [str(execution_date)],
    )[0]
    if _same_money(got, expected):
        return Verdict(True, f"${expected:.4f} went to the capable model.")
    (everything,) = _rows(
        "select coalesce(sum(cost_usd), 0) from decision.llm_calls where execution_date = ?",
        [str(execution_date)],
    )[0]
    if _same_money(got, everything):
        return Verdict(False, "that is every request of the date: keep only the escalations.")
    return Verdict(
        False, f"not {got}: sum cost_usd over purpose = 'escalation' for {execution_date}."
    )


_STATUS_KIND = {
    429: "429 rate limit",
    529: "529 overloaded",
    500: "500 server error",
    504: "timeout",
    "timeout": "timeout",
}


@dataclass
class Storm:
    """One fault-storm run: the engine's summary and what went over the (fake) wire."""

    run: object
    http: dict[str, int]
    """HTTP requests to ``/v1/messages`` by outcome: ``answered`` or the fault that was retried."""

    @property
    def retries(self) -> int:
        return sum(v for k, v in self.http.items() if k != "answered")


def fault_storm(
    day: str, *, faults: str, latency_ms: int = 0, workers: int = 10, rows: int | None = None
) -> Storm:
    """Run the engine for ``day`` under ``SANDBOX_MOCK_FAULTS=faults`` and count the wire.

    The day's earlier answers, failures and ledger rows are deleted first (it is a scratch day
    in this notebook's own warehouse), so every storm starts from the same pending rows.
    ``rows`` sends only the first so many (``batch_size``).
    """
    import json
    import tempfile

    from sandbox.config import environment
    from sandbox.decision import run_llm_inference
    from sandbox.warehouse import connect

    with connect() as con:
        for table in ("recommendations_staging", "inference_failures", "llm_calls"):
            if con.execute(
                "select count(*) from information_schema.tables where table_catalog = "
                "current_database() and table_schema = 'decision' and table_name = ?",
                [table],
            ).fetchone()[0]:
                con.execute(f"delete from decision.{table} where execution_date = ?", [day])
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "requests.jsonl"
        settings = {
            "SANDBOX_MOCK_FAULTS": faults,
            "SANDBOX_MOCK_LATENCY_MS": str(latency_ms),
            "SANDBOX_MOCK_REQUEST_LOG": str(log),
        }
        with environment(settings):
            run = run_llm_inference(day, workers=workers, batch_size=rows, progress=False)
        lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    http: dict[str, int] = {}
    for line in lines:
        if line.get("path", "").endswith("/v1/messages"):
            kind = (
                "answered"
                if line["status"] == 200
                else _STATUS_KIND.get(line["status"], str(line["status"]))
            )
            http[kind] = http.get(kind, 0) + 1
    return Storm(run, http)


def plot_storm(storm: Storm, title: str = "") -> None:
    """Two bars: HTTP requests by outcome (what the SDK retried), and failed rows by kind."""
    import matplotlib.pyplot as plt

    fig, (wire, rows) = plt.subplots(1, 2, figsize=(10, 2.8))
    kinds = ["answered", *sorted(k for k in storm.http if k != "answered")]
    wire.barh(
        kinds,
        [storm.http.get(k, 0) for k in kinds],
        color=["#55A868"] + ["#DD8452"] * (len(kinds) - 1),
    )
    wire.invert_yaxis()
    wire.set_title(f"{sum(storm.http.values())} HTTP requests, {storm.retries} retried by the SDK")
    failed = storm.run.failures_by_class or {"none": 0}
    rows.barh(list(failed), list(failed.values()), color="#C44E52")
    rows.invert_yaxis()
    rows.set_title(f"{storm.run.done} rows done, {storm.run.failed} in the dead-letter table")
    if title:
        fig.suptitle(title)
    plt.tight_layout()
    plt.show()


# --- 04 · control plane --------------------------------------------------------------------

RERUN_DATE = "2026-10-29"
"""The date exercise 04.2 asks about: not one the lesson runs."""


@_checked
def check_rerun_requests(execution_date, answer) -> Verdict:
    """Exercise 04.2: the LLM requests of a date's first run and of its re-run, in that order."""
    import pandas as pd

    if _blank(answer):
        return Verdict(False, "set `requests_per_run` to the two numbers, first run first.")
    rows = (
        _rows(
            "select llm_requests from ops.pipeline_runs where execution_date = ? and status = 'success' "
            "order by recorded_at",
            [str(execution_date)],
        )
        if _has_table("ops.pipeline_runs")
        else []
    )
    if len(rows) < 2:
        return Verdict(False, f"run {execution_date} twice first (as in Steps 3 and 5), then look.")
    if isinstance(answer, pd.DataFrame):
        answer = answer.iloc[:, -1].tolist() if answer.shape[1] >= 1 else []
    if isinstance(answer, pd.Series):
        answer = answer.tolist()
    if not isinstance(answer, list | tuple) or len(answer) != 2:
        return Verdict(False, "give two numbers, e.g. `[first, second]` (or the query's frame).")
    first, second = (int(_number(x)) for x in answer)
    want = (rows[0][0], rows[-1][0])
    if (first, second) == want:
        return Verdict(
            True, f"{first} then {second}: the re-run found nothing pending, so paid nothing."
        )
    if (second, first) == want:
        return Verdict(False, "right numbers, wrong order: order the runs by recorded_at.")
    return Verdict(False, f"read llm_requests of the ops.pipeline_runs rows for {execution_date}.")


check_backfill_requests = check_rerun_requests
"""The earlier name of :func:`check_rerun_requests`."""


@_checked
def check_sensor_target(dag_id: str | None, task_id: str | None) -> Verdict:
    """Which DAG and task does the gate sensor wait for? (Kept for older copies of 04.)"""
    if _blank(dag_id) or _blank(task_id):
        return Verdict(False, "set `sensor_dag_id` and `sensor_task_id` above.")
    if (_text(dag_id), _text(task_id)) == ("dbt_production", "dbt_run"):
        return Verdict(
            True, "the sensor waits for dbt_production.dbt_run of the same logical date."
        )
    return Verdict(False, "look at the sensor's external_dag_id and external_task_id.")


def _has_table(name: str) -> bool:
    from sandbox.warehouse import connect, table_exists

    with connect(read_only=True) as con:
        return table_exists(con, name)


# --- 00 · start here / 05 · end to end -----------------------------------------------------

PLANE_OF = {
    "decides when the dbt build runs": "control",
    "computes days_since_last_event": "data",
    "chooses between Haiku and Sonnet": "decision",
    "refuses a duplicated user id": "data",
    "retries a 429 from the API": "decision",
    "blocks inference until the tests passed": "control",
}


def check_planes(answers: dict | None) -> Verdict:
    """Exercise 00.1: which plane owns each responsibility?"""
    if not answers or any(_blank(v) for v in answers.values()):
        return Verdict(False, "fill in every value of `answers` with control, data or decision.")
    wrong = [k for k, v in PLANE_OF.items() if str(answers.get(k, "")).strip().lower() != v]
    if not wrong:
        return Verdict(True, "every responsibility sits in exactly one plane.")
    return Verdict(False, f"{len(wrong)} to rethink, e.g. {wrong[0]!r}.")


@_checked
def check_top_recommendation(execution_date, answer) -> Verdict:
    """Exercise 00.2: the most frequent recommendation type of a date."""
    if _blank(answer):
        return Verdict(False, "set `top_type` to the type your query returns first.")
    top = _rows(
        "select recommendation_type from marts.user_recommendations where execution_date = ? "
        "group by 1 order by count(*) desc limit 1",
        [str(execution_date)],
    )[0][0]
    if _text(answer) == top:
        return Verdict(True, f"{top} is the most common recommendation on {execution_date}.")
    return Verdict(False, "group marts.user_recommendations by recommendation_type and count.")


TRACED_AFTER = "u000003"
"""Exercise 05.1 traces the first escalated user after the one the lesson traced."""

_TRACE_SQL = """
select r.user_id, r.prompt_version, i.user_summary_for_llm,
       (select sum(c.cost_usd) from decision.llm_calls c
         where c.execution_date = r.execution_date and c.user_id = r.user_id
           and c.status = 'ok' and c.purpose <> 'estimate') as cost_usd
from marts.user_recommendations r
join decision.inference_inputs i using (execution_date, user_id)
where r.execution_date = ? and r.user_id > ?
  and exists (select 1 from decision.llm_calls c where c.execution_date = r.execution_date
              and c.user_id = r.user_id and c.purpose = 'escalation' and c.status = 'ok')
order by r.user_id
limit 1
"""


@_checked
def check_trace(execution_date, answer: dict | str | None, legacy: dict | None = None) -> Verdict:
    """Exercise 05.1: trace the first escalated user after ``TRACED_AFTER``, every request paid.

    (The older form ``check_trace(date, user_id, answer)`` is still accepted.)
    """
    if isinstance(answer, str) and isinstance(legacy, dict):
        answer = {**legacy, "user_id": answer}
    keys = ("user_id", "prompt_version", "user_summary_for_llm", "cost_usd")
    if not isinstance(answer, dict) or all(_blank(answer.get(k)) for k in keys):
        return Verdict(False, "fill in the four values of `trace` above.")
    row = _rows(_TRACE_SQL, [str(execution_date), TRACED_AFTER])
    if not row:
        return Verdict(
            False,
            f"no escalated recommendation after {TRACED_AFTER} on {execution_date}: run Step 1.",
        )
    user, version, summary, cost = row[0]
    if _blank(answer.get("user_id")) or _text(answer["user_id"]) != user:
        return Verdict(
            False,
            f"user_id: find the first user after {TRACED_AFTER} (by user_id) with a request of "
            "purpose 'escalation' in decision.llm_calls.",
        )
    problems = []
    if _blank(answer.get("prompt_version")) or _text(answer["prompt_version"]) != version:
        problems.append("prompt_version (marts.user_recommendations)")
    if (
        _blank(answer.get("user_summary_for_llm"))
        or " ".join(str(_scalar(answer["user_summary_for_llm"])).split()) != summary
    ):
        problems.append("user_summary_for_llm (decision.inference_inputs)")
    if _blank(answer.get("cost_usd")):
        problems.append("cost_usd")
    else:
        got = _number(answer["cost_usd"])
        if not _same_money(got, cost):
            (primary,) = _rows(
                "select coalesce(sum(cost_usd), 0) from decision.llm_calls where execution_date = ? "
                "and user_id = ? and purpose = 'primary' and status = 'ok'",
                [str(execution_date), user],
            )[0]
            hint = (
                " — that is the cheap model's request alone; add the escalation"
                if _same_money(got, primary)
                else ""
            )
            problems.append(f"cost_usd (every ok request of that user and date{hint})")
    if not problems:
        return Verdict(True, f"{user}: prompt {version}, ${cost:.6f} over its two requests.")
    return Verdict(False, "check " + ", ".join(problems) + ".")


LOCAL_API_KEY = "local-fake-key"
"""The key notebook 05 sends to :func:`local_messages_api`: obviously not a real one."""


@contextlib.contextmanager
def local_messages_api() -> Iterator[FakeServer]:
    """Serve the offline fake over real HTTP on 127.0.0.1, for the ``anthropic`` client.

    With ``ANTHROPIC_BASE_URL`` pointing at its ``url`` (and ``ANTHROPIC_API_KEY`` set to
    :data:`LOCAL_API_KEY`), ``llm="anthropic"`` runs the real-API code path (the SDK's own
    HTTP transport, a socket, an API key) with no network and no spend.
    """
    from sandbox.decision.fake import FakeServer

    with FakeServer() as server:
        yield server


LESSON_MODELS = {"fct_users_per_plan"}
"""Models the lessons create: an exercise asks for one of your own."""


@_checked
def check_new_model(project_dir, model_name: str | None) -> Verdict:
    """Exercise 05.2: your own dbt model, with a data test, run by the unchanged DAGs.

    Judged from what the pipeline's last dbt build recorded (``run_results.json`` and the
    manifest): the model built and at least one data test on it passed.
    """
    import json

    from sandbox.config import DBT_PROJECT_DIR
    from sandbox.data import target_dir

    if _blank(model_name):
        return Verdict(False, "set `new_model` to the name of the model you added.")
    name = _text(model_name).removesuffix(".sql")
    if name in LESSON_MODELS or list(DBT_PROJECT_DIR.rglob(f"{name}.sql")):
        return Verdict(
            False,
            f"{name} is not yours: the lesson (or the shipped project) made it. Add a new one.",
        )
    if not list((Path(project_dir) / "models").rglob(f"{name}.sql")):
        return Verdict(False, f"no file {name}.sql under the copied project's models/.")
    try:
        manifest = json.loads((target_dir() / "manifest.json").read_text())
        results = json.loads((target_dir() / "run_results.json").read_text())["results"]
    except (OSError, ValueError):
        return Verdict(False, "no dbt build recorded yet: run the pipeline with your project.")
    status = {r["unique_id"]: r["status"] for r in results}
    model_id = next(
        (
            k
            for k, n in manifest["nodes"].items()
            if n["resource_type"] == "model" and n["name"] == name
        ),
        None,
    )
    if model_id is None or status.get(model_id) != "success":
        return Verdict(
            False,
            f"the last build did not build {name}: run the pipeline for a date with SANDBOX_DBT_PROJECT_DIR set to the copy.",
        )
    tests = [
        k
        for k, n in manifest["nodes"].items()
        if n["resource_type"] == "test" and model_id in n["depends_on"]["nodes"]
    ]
    if not tests:
        return Verdict(
            False,
            f"{name} has no data test: add a .yml next to it with at least one (e.g. not_null).",
        )
    if not all(status.get(t) == "pass" for t in tests):
        return Verdict(False, f"{name}'s tests did not all pass in the last build.")
    return Verdict(
        True,
        f"{name} was built and {len(tests)} data test(s) passed — and dags/ was never touched.",
    )


# --- 06 · scale and cost -------------------------------------------------------------------


def build_phases(result) -> dict[str, float]:
    """Split a build's wall time into dbt's fixed start-up and its SQL phase.

    The SQL phase runs from the first node's start to the last node's end in dbt's
    ``run_results.json`` (what the warehouse did, plus dbt's work around each node);
    everything else (parsing the project, the graph, the connection, writing artifacts)
    is start-up, about the same at any size.
    """
    import json
    from datetime import datetime

    from sandbox.data import target_dir

    results = json.loads((target_dir() / "run_results.json").read_text())["results"]
    stamps = [
        (
            datetime.fromisoformat(t["started_at"].rstrip("Z")),
            datetime.fromisoformat(t["completed_at"].rstrip("Z")),
        )
        for r in results
        for t in r["timing"]
    ]
    sql = (max(end for _, end in stamps) - min(start for start, _ in stamps)).total_seconds()
    return {
        "total_s": result.elapsed_s,
        "startup_s": max(0.0, result.elapsed_s - sql),
        "sql_s": sql,
    }


BATCH_USERS = 2_500_000
"""Exercise 06.1 prices this many users: not a size the lesson's tables show."""


@_checked
def check_million_user_batch_cost(profile, answer_usd, users: int = BATCH_USERS) -> Verdict:
    """Exercise 06.1: price ``users`` rows on the cheap model in batch mode, by hand."""
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.projection import TIERS, project

    if _blank(answer_usd):
        return Verdict(False, "set `batch_cost` to your number (USD).")
    got = _number(answer_usd)
    expected = project(
        profile, users, book=load_price_book(), tier=TIERS["tier 2"], plan="cheap", mode="batch"
    ).cost_usd
    if abs(got - expected) <= 0.005 * expected:
        return Verdict(
            True, f"${expected:,.2f}: tokens x list price x the batch discount, nothing more."
        )
    if abs(got - 2 * expected) <= 0.01 * expected:
        return Verdict(
            False, "that is the realtime price: the Batches API bills half (batch_discount)."
        )
    if abs(got - expected * 1_000_000 / users) <= 0.005 * expected:
        return Verdict(False, f"that is the price of 1,000,000 users: the question is {users:,}.")
    return Verdict(
        False,
        f"not ${got:,.2f}: (input tokens x input price + output tokens x output "
        f"price) per row, per million tokens, x {users:,} rows x batch_discount.",
    )


@_checked
def check_workers_for_tier(profile, tier, answer: int | None, latency_s: float = 2.0) -> Verdict:
    """Exercise 06.2: workers that keep ``tier``'s tightest Haiku limit busy at ``latency_s``."""
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.projection import workers_to_saturate

    if _blank(answer):
        return Verdict(False, "set `workers_needed` to a whole number of workers.")
    answer = _number(answer)
    book = load_price_book()
    expected = workers_to_saturate(profile, book=book, tier=tier, latency_s=latency_s, plan="cheap")
    if abs(int(answer) - expected) <= 1:
        return Verdict(
            True,
            f"{expected} workers: the tightest limit, per second, times {latency_s:g} s per request.",
        )
    limits = tier.for_model(book.get(book.primary).id)
    if abs(int(answer) - limits.requests_per_minute / 60 * latency_s) <= 1:
        return Verdict(
            False,
            "that keeps requests/min busy, but a token limit binds first: divide it by tokens per request.",
        )
    return Verdict(
        False,
        "take the tightest of requests/min, input tokens/min / input tokens per request and "
        "output tokens/min / output tokens per request; per second, times the latency.",
    )


from sandbox.course_build import (  # noqa: E402  (re-exported: the build-it checks need Verdict)
    check_dbt_model,
    check_one_request,
    check_pipeline_task,
    recording_client,
)

__all__ += [
    "check_dbt_model",
    "check_one_request",
    "check_pipeline_task",
    "recording_client",
]
