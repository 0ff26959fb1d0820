"""Verdicts: a check returns what it praises, or raises :class:`Blank` or :class:`Miss` with a
hint (never the answer); misses are counted on disk, so a kernel restart does not reset them."""

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

from sandbox.course.notebook import notebook_base

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


def require(answer, hint: str) -> None:
    """Raise :class:`Blank` with ``hint`` when ``answer`` is blank."""
    if blank(answer):
        raise Blank(hint)


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
