"""Verdicts: a check returns what it praises, or raises :class:`Blank` or :class:`Miss` with a
hint (never the answer); misses are counted on disk, so a kernel restart does not reset them.
Below them, the checks of what a learner found out (planes, gate checks, re-runs, a trace, a
drill of their own), compared with hashes or with what the notebook's own warehouse recorded."""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import SHIPPED_AS_OF_DATE
from sandbox.course.notebook import has_table, notebook_base

MAX_ATTEMPTS = 5  # misses allowed per exercise before the check stops judging (blanks are free)

GRADES_ENV = "SANDBOX_COURSE_GRADES"
ATTEMPTS_ENV = "SANDBOX_COURSE_ATTEMPTS"


@dataclass(frozen=True)
class Verdict:
    """The result of an exercise check; prints as one friendly line."""

    ok: bool
    message: str

    def __repr__(self) -> str:
        return ("✅ Correct: " if self.ok else "❌ Not yet: ") + self.message

    def __bool__(self) -> bool:
        return self.ok


class Miss(Exception):
    """A wrong or unreadable answer; its message is the hint, never the answer."""


class Blank(Exception):
    """No answer yet; its message says what to fill in (not counted as an attempt)."""


def digest(exercise: str, answer: object) -> str:
    """A short salted hash of a normalized answer: how checks keep answers they must not show."""
    text = " ".join(str(answer).split()).lower()
    return hashlib.sha256(f"{exercise}|{text}".encode()).hexdigest()[:16]


def _misses(exercise: str, add: int = 0) -> int:
    path = Path(os.environ.get(ATTEMPTS_ENV) or notebook_base() / "attempts.json")
    try:
        counts = json.loads(path.read_text())
    except (OSError, ValueError):
        counts = {}
    if add:
        counts[exercise] = counts.get(exercise, 0) + add
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(counts, indent=1, sort_keys=True))
    return counts.get(exercise, 0)


def exercise(name: str) -> Callable:
    """Make a check an exercise: its praise or hint becomes a :class:`Verdict`, misses count."""

    def wrap(check: Callable[..., str]) -> Callable[..., Verdict]:
        @functools.wraps(check)
        def judged(*args, **kwargs) -> Verdict:
            blank = False
            if _misses(name) >= MAX_ATTEMPTS:
                verdict = Verdict(False, f"{MAX_ATTEMPTS} misses on exercise {name}: no more "
                                  "attempts. Re-read the steps it builds on and talk it over "
                                  "with your instructor.")  # fmt: skip
            else:
                try:
                    verdict = Verdict(True, check(*args, **kwargs))
                except Blank as exc:
                    verdict, blank = Verdict(False, str(exc)), True
                except Miss as exc:
                    left = MAX_ATTEMPTS - _misses(name, add=1)
                    verdict = Verdict(False, f"{exc} ({left} attempt(s) left)")
            if os.environ.get(GRADES_ENV):
                line = {"exercise": name, "ok": verdict.ok, "blank": blank}
                with open(os.environ[GRADES_ENV], "a", encoding="utf-8") as out:
                    out.write(json.dumps(line) + "\n")
            return verdict

        judged.exercise = name
        return judged

    return wrap


def scalar(answer):
    """One value from an answer: a 1×1 DataFrame, a one-item Series/list, a numpy scalar."""
    import pandas as pd

    if isinstance(answer, pd.DataFrame):
        if answer.shape != (1, 1):
            raise Miss(
                f"your answer is a table of {answer.shape[0]} row(s) × {answer.shape[1]} "
                "column(s): give the one value (e.g. `query_df(...).iloc[0, 0]`)."
            )
        answer = answer.iloc[0, 0]
    if isinstance(answer, pd.Series | list | tuple):
        if len(answer) != 1:
            raise Miss(f"your answer holds {len(answer)} values: give the one value.")
        answer = answer.iloc[0] if isinstance(answer, pd.Series) else answer[0]
    if hasattr(answer, "item") and not isinstance(answer, str):
        answer = answer.item()  # numpy scalars
    return answer


def blank(answer) -> bool:
    """True for no answer yet: ``None``, blank text, an empty container."""
    import pandas as pd

    if isinstance(answer, str):
        return not answer.strip()
    if isinstance(answer, pd.DataFrame | pd.Series | list | tuple | dict):
        return len(answer) == 0
    return answer is None


def text(answer) -> str:
    """A name-like answer, compared without case, quotes or surrounding blanks."""
    return str(scalar(answer)).strip().strip("'\"`").strip().lower()


def number(answer) -> float:
    """A number, also from text such as ``"$0.5006"`` or ``"1,234"``."""
    value = scalar(answer)
    if isinstance(value, str):
        value = value.strip().replace("$", "").replace(",", "").replace("_", "")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Miss(f"{value!r} is not a number.") from None


def same_money(answer: float, expected: float) -> bool:
    """Equal to four decimals (the precision the notebooks display), or to 1 part in 10⁶."""
    return abs(answer - expected) <= max(0.00005 + 1e-12, 1e-6 * abs(expected))


@contextmanager
def scratch_copy(folder: Path, setting: str) -> Iterator[Path]:
    """A scratch copy of ``folder``, with the variable ``setting`` pointing at it."""
    from sandbox.config import environment

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("target", "logs"))
        with environment({setting: str(copy)}):
            yield copy


def call_each(fn: Callable, cases: Iterable[tuple], name: str, *helpers: str) -> list:
    """``fn(*case)`` for every case, with the shipped ``helpers`` (modules, or ``module:function``)
    switched off: calling one (methods of its classes aside) or raising is a miss; ``None`` for
    every case is a blank."""
    watched, classes = {}, set()
    for helper in helpers:
        module_name, _, only = helper.partition(":")
        module = importlib.import_module(module_name)
        watched[module.__file__] = watched[os.path.realpath(module.__file__)] = (module_name, only)
        classes |= {k for k, v in vars(module).items() if isinstance(v, type)}
    used: list[str] = []

    def watch(frame, event, _arg):  # a sys.setprofile hook: Python's public hook for profilers
        code = frame.f_code
        module_name, only = watched.get(code.co_filename, ("", ""))
        if event == "call" and module_name and only in ("", code.co_name):
            if code.co_qualname.split(".")[0] not in classes:
                used.append(f"{module_name}.{code.co_name}")

    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        got = [fn(*case) for case in cases]
    except Exception as exc:  # the learner's error is an answer to explain
        raise Miss(f"{name} raised {type(exc).__name__}: {exc}") from None
    finally:
        sys.setprofile(previous)
    if used:
        raise Miss(f"your code called {used[0]}(), the helper this exercise asks you to replace: "
                   "the check runs without it. Write the steps yourself.")  # fmt: skip
    if all(x is None for x in got):
        raise Blank(f"`{name}` returns None: write its body, then run this cell again.")
    return got


PLANES = ("control", "data", "decision")
# exercise 00.1: digest("00.1", "<responsibility>=<plane>") of each right pair
PLANE_DIGESTS = {
    "decides when the dbt build runs": "4383fb36aa20e831",
    "computes days_since_last_event": "6739f24c694584f3",
    "chooses between Haiku and Sonnet": "65b9eb40a295cf62",
    "refuses a duplicated user id": "a8bdce2e98f927e8",
    "retries a 429 from the API": "44e6ffc5a12180bb",
    "blocks inference until the tests passed": "44b14e4715638ab3",
}


@exercise("00.1")
def check_planes(answers: dict | None) -> str:
    """Exercise 00.1: which plane owns each responsibility?"""
    if not isinstance(answers, dict) or any(blank(answers.get(k)) for k in PLANE_DIGESTS):
        raise Blank("fill in every value of `answers` with control, data or decision.")
    picked = {k: text(answers[k]) for k in PLANE_DIGESTS}
    odd = [v for v in picked.values() if v not in PLANES]
    if odd:
        raise Miss(f"{odd[0]!r} is not a plane: use control, data or decision.")
    wrong = sum(digest("00.1", f"{k}={v}") != PLANE_DIGESTS[k] for k, v in picked.items())
    if wrong:
        raise Miss(f"{wrong} of {len(picked)} to rethink: ask of each \"is this when, what the "
                   "data is, or what the model does?\"")  # fmt: skip
    return "every responsibility sits in exactly one plane."


_EXAMPLE_DRILL = ("unknown_plan_tier", "accepted_values")
_SAME_CHECK = {
    "model": {"contract", "constraint", "check", "check constraint"},
    "handled": {"none", "nothing", "handled (build passes)", "handled by design"},
}


@exercise("02.1")
def check_gate_explanation(drill_name: str | None, failing_check: str | None) -> str:
    """Exercise 02.1: pick a drill (not the example) and name the check that stops it."""
    from sandbox.data.drills import DRILLS

    if blank(drill_name) or blank(failing_check):
        raise Blank("set `drill_name` and `failing_check` above.")
    name, check = text(drill_name), text(failing_check)
    if name not in DRILLS:
        raise Miss(f"{name!r} is not a drill; pick one of {', '.join(DRILLS)}.")
    if (name, check) == _EXAMPLE_DRILL:
        raise Miss("that is the example in the comment: pick another drill.")
    expected = DRILLS[name].expect
    if check not in _SAME_CHECK.get(expected, set()) | {expected}:
        raise Miss(f"{name} is not stopped by {check!r}: run it with the widget in Step 4 and "
                   "read the first line of the gate's message.")  # fmt: skip
    return f"{name} is stopped by {expected}."


@exercise("02.2")
def check_custom_break(break_raw) -> str:
    """Exercise 02.2: ``break_raw(raw_dir)`` makes ``event_at``'s not_null fail, no drill used."""
    from sandbox.config import DEFAULT_RAW_DIR
    from sandbox.data import GateFailed, build

    if not callable(break_raw):
        raise Blank("define `break_raw(raw_dir)` above.")
    with scratch_copy(DEFAULT_RAW_DIR, "SANDBOX_RAW_DIR") as raw:
        try:
            call_each(break_raw, [(raw,)], "break_raw", "sandbox.data.drills")
        except Blank:  # returning None is what a break does
            pass
        try:
            build(SHIPPED_AS_OF_DATE)
        except GateFailed as exc:
            names = [f"{f.test} on {f.model}.{f.column}" for f in exc.failures]
            if "not_null on staging.stg_user_events.event_at" in names:
                return f"the gate said: {'; '.join(names)}."
            raise Miss(f"the gate failed, but on {'; '.join(names)} instead.") from None
    raise Miss("the build passed: your change did not break anything the gate checks.")


RERUN_DATE = "2026-10-29"  # the date exercise 04.2 asks about: not one the lesson runs


@exercise("04.2")
def check_rerun_requests(execution_date, answer) -> str:
    """Exercise 04.2: the LLM requests of a date's first run and of its re-run, in that order."""
    import pandas as pd

    from sandbox.warehouse import query_df

    if blank(answer):
        raise Blank("set `requests_per_run` to the two numbers, first run first.")
    found = query_df("select llm_requests from ops.pipeline_runs where execution_date = ? and "
                     "status = 'success' order by recorded_at", [str(execution_date)],
                     ).llm_requests.tolist() if has_table("ops.pipeline_runs") else []  # fmt: skip
    if len(found) < 2:
        raise Blank(f"run {execution_date} twice first (as in Steps 3 and 5), then look.")
    if isinstance(answer, pd.DataFrame):
        answer = answer.iloc[:, -1]
    if not isinstance(answer, pd.Series | list | tuple) or len(answer) != 2:
        raise Miss("give two numbers, e.g. `[first, second]` (or the query's frame).")
    mine, want = [int(number(x)) for x in answer], [found[0], found[-1]]
    if mine != want and mine[::-1] == want:
        raise Miss("right numbers, wrong order: order the runs by recorded_at.")
    if mine != want:
        raise Miss(f"read llm_requests of the ops.pipeline_runs rows for {execution_date}.")
    return f"{mine[0]} then {mine[1]}: the re-run found nothing pending, so paid nothing."


TRACED_AFTER = "u000003"  # 05.1 traces the first escalated user after the lesson's one

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


@exercise("05.1")
def check_trace(execution_date, answer: dict | None) -> str:
    """Exercise 05.1: trace the first escalated user after ``TRACED_AFTER``, every request paid."""
    from sandbox.warehouse import query_df

    keys = ("user_id", "prompt_version", "user_summary_for_llm", "cost_usd")
    if not isinstance(answer, dict) or all(blank(answer.get(k)) for k in keys):
        raise Blank("fill in the four values of `trace` above.")
    found = query_df(_TRACE_SQL, [str(execution_date), TRACED_AFTER]).values.tolist()
    if not found:
        raise Blank(f"no escalated recommendation after {TRACED_AFTER} on {execution_date}: "
                    "run Step 1.")  # fmt: skip
    user, version, summary, cost = found[0]
    if blank(answer.get("user_id")) or text(answer["user_id"]) != user:
        raise Miss(f"user_id: find the first user after {TRACED_AFTER} (by user_id) with a "
                   "request of purpose 'escalation' in decision.llm_calls.")  # fmt: skip
    problems = []
    if blank(answer.get("prompt_version")) or text(answer["prompt_version"]) != version:
        problems.append("prompt_version (marts.user_recommendations)")
    given = answer.get("user_summary_for_llm")
    if blank(given) or " ".join(str(scalar(given)).split()) != summary:
        problems.append("user_summary_for_llm (decision.inference_inputs)")
    if blank(answer.get("cost_usd")) or not same_money(number(answer["cost_usd"]), cost):
        problems.append("cost_usd (every ok request of that user and date, both models)")
    if problems:
        raise Miss("check " + ", ".join(problems) + ".")
    return f"{user}: prompt {version}, every request paid for, traced."
