"""The instructor's tools: grade learners' notebooks, write the student copy, clean the stored
notebooks. Run ``python instructor/tools.py grade|student|clean`` (or ``make grade``,
``make student``, ``make notebooks``); learners never need them."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sandbox.config import ROOT, SandboxError, environment
from sandbox.course import EXERCISES, SCRATCH_ENV
from sandbox.course.verdicts import ATTEMPTS_ENV, GRADES_ENV

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PREDICT = (
    "**Predict** what the next cell prints before you run it: write your guess down, then compare."
)


def _execute(path: Path, scratch: Path, timeout_s: int) -> list[dict]:
    """Run one notebook in a fresh kernel and its own scratch folder, errors allowed; return the
    verdicts its checks recorded."""
    import nbclient
    import nbformat

    grades = scratch / "grades.jsonl"
    settings = {
        SCRATCH_ENV: str(scratch / "notebooks"),
        GRADES_ENV: str(grades),
        ATTEMPTS_ENV: str(scratch / "attempts.json"),
    }
    with environment(settings):
        nbclient.NotebookClient(
            nbformat.read(path, as_version=4), timeout=timeout_s, allow_errors=True,
            kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
        ).execute()  # fmt: skip
    lines = grades.read_text(encoding="utf-8").splitlines() if grades.exists() else []
    return [json.loads(line) for line in lines]


def _scores(stem: str, verdicts: list[dict]) -> list[dict]:
    """One row per exercise of notebook ``stem``: 1 when one of its checks said right, else 0."""
    expected = [check.exercise for check in EXERCISES.get(stem, ())]
    rows = []
    for name in [*expected, *sorted({v["exercise"] for v in verdicts} - set(expected))]:
        mine = [v for v in verdicts if v["exercise"] == name]
        if any(v["ok"] for v in mine):
            status = "right"
        elif any(not v["blank"] for v in mine):
            status = "missed"  # answered, not right
        else:
            status = "blank" if mine else "not run"
        rows.append({"notebook": stem, "exercise": name, "score": int(status == "right"),
                     "status": status})  # fmt: skip
    return rows


def grade(notebooks: list[Path], out: Path, *, timeout_s: int = 900) -> list[dict]:
    """Grade ``notebooks``; write ``out/grades.json`` and ``out/grades.csv``; return the scores."""
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:
        raise SandboxError(f"no notebook at {', '.join(missing)}: give .ipynb files to grade")
    scores: list[dict] = []
    for path in notebooks:
        with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
            scores += _scores(path.stem, _execute(path.resolve(), Path(scratch), timeout_s))
    out.mkdir(parents=True, exist_ok=True)
    report = {"score": sum(s["score"] for s in scores), "out_of": len(scores), "exercises": scores}
    (out / "grades.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    with (out / "grades.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["notebook", "exercise", "score", "status"])
        writer.writeheader()
        writer.writerows(scores)
    return scores


def _write(nb: dict, path: Path) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def clean(path: Path) -> int:
    """Clean one stored ``.ipynb`` in place (no widget views, colour codes or execution
    timestamps); return how many outputs were dropped."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    dropped = 0
    for cell in nb["cells"]:
        if "outputs" in cell:
            kept = [o for o in cell["outputs"] if WIDGET_VIEW not in o.get("data", {})]
            dropped += len(cell["outputs"]) - len(kept)
            for output in kept:
                if output["output_type"] == "stream":  # text: a string or a list of lines
                    text = _ANSI.sub("", "".join(output["text"]))
                    output["text"] = text.splitlines(keepends=True)
            cell["outputs"] = kept
        cell.get("metadata", {}).pop("execution", None)  # timestamps: the machine's clock
    nb.get("metadata", {}).pop("widgets", None)
    _write(nb, path)
    return dropped


def student_notebook(nb: dict) -> dict:
    """One notebook, cleared: no outputs, no counts, no test tags; a prediction before each
    output (learners who write down what a cell will print remember more)."""
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            if cell.get("outputs"):
                cells.append({"cell_type": "markdown", "metadata": {"tags": ["predict"]},
                              "source": PREDICT})  # fmt: skip
            tags = [
                t for t in cell.get("metadata", {}).get("tags", []) if not t.startswith("nbval")
            ]
            cell = {**cell, "outputs": [], "execution_count": None,
                    "metadata": {**cell.get("metadata", {}), "tags": tags}}  # fmt: skip
        cells.append({k: v for k, v in cell.items() if k != "id"})
    metadata = {k: v for k, v in nb.get("metadata", {}).items() if k != "widgets"}
    return {**nb, "cells": cells, "metadata": metadata, "nbformat_minor": 4}


def _run(args: argparse.Namespace) -> None:
    if args.action == "grade":
        scores = grade([Path(p) for p in args.files], Path(args.out), timeout_s=args.timeout)
        for s in scores:
            print(f"{s['notebook']:<22} {s['exercise']:<6} {s['score']}  {s['status']}")
        total = sum(s["score"] for s in scores)
        print(f"score {total} / {len(scores)}: {args.out}/grades.json and grades.csv")
    elif args.action == "student":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        sources = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
        for path in sources:
            _write(student_notebook(json.loads(path.read_text(encoding="utf-8"))), out / path.name)
        print(f"{len(sources)} notebooks written to {out} "
              "(outputs cleared, a prediction before each output)")  # fmt: skip
    else:
        for name in args.files:
            print(f"{name}: {clean(Path(name))} widget view(s) dropped")


def main(argv: Sequence[str] | None = None) -> int:
    """``grade FILE... [--out DIR] [--timeout S]``, ``student [--out DIR]`` or ``clean FILE...``."""
    parser = argparse.ArgumentParser(prog="instructor/tools.py", description=__doc__)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    grd = actions.add_parser("grade", help="run every check of the notebooks again; score each")
    grd.add_argument("files", nargs="+", metavar="NOTEBOOK", help="the learner's .ipynb files")
    grd.add_argument("--out", default="grades", help="folder for grades.json and grades.csv")
    grd.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    std = actions.add_parser("student", help="write the student copy of the notebooks")
    std.add_argument("--out", default="student", help="folder to write (default student/)")
    cln = actions.add_parser("clean", help="clean stored notebooks in place")
    cln.add_argument("files", nargs="+", metavar="NOTEBOOK")
    args = parser.parse_args(argv)
    try:
        _run(args)
    except SandboxError as exc:
        print(f"instructor/tools.py {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
