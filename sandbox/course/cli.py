"""``sandbox course``: grade a learner's notebooks, write the student copy."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.config import ROOT


def _grade(args: argparse.Namespace) -> int:
    from sandbox.course.grade import grade

    scores = grade([Path(p) for p in args.notebooks], Path(args.out), timeout_s=args.timeout)
    for s in scores:
        print(f"{s['notebook']:<22} {s['exercise']:<6} {s['score']}  {s['status']}")
    total = sum(s["score"] for s in scores)
    print(f"score {total} / {len(scores)}: {args.out}/grades.json and grades.csv")
    return 0


def _student(args: argparse.Namespace) -> int:
    from sandbox.course.store import write_student_copy

    written = write_student_copy(sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb")), Path(args.out))
    print(f"{len(written)} notebooks written to {args.out} "
          "(outputs cleared, a prediction before each output)")  # fmt: skip
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sandbox course grade`` and ``sandbox course student``."""
    course = sub.add_parser("course", help="grade a learner's notebooks; write the student copy")
    actions = course.add_subparsers(dest="action", required=True, metavar="ACTION")
    grd = actions.add_parser(
        "grade", help="run every check of the notebooks again; score each exercise"
    )
    grd.add_argument("notebooks", nargs="+", help="the learner's .ipynb files")
    grd.add_argument("--out", default="grades", help="folder for grades.json and grades.csv")
    grd.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    grd.set_defaults(func=_grade)
    std = actions.add_parser("student", help="write the student copy of the notebooks")
    std.add_argument("--out", default="student", help="folder to write (default student/)")
    std.set_defaults(func=_student)
