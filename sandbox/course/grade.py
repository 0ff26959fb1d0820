"""The grader: each notebook runs again in a fresh kernel (``nbclient``) and a scratch folder,
errors allowed; an exercise scores 1 when one of its checks said right, else 0."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from sandbox.config import SandboxError, environment
from sandbox.course.notebook import SCRATCH_ENV
from sandbox.course.verdicts import ATTEMPTS_ENV, GRADES_ENV


def _execute(path: Path, scratch: Path, timeout_s: int) -> list[dict]:
    """Run one notebook in a fresh kernel; the verdicts its checks recorded."""
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
    """One row per exercise of notebook ``stem``: 1 or 0, and what its checks saw."""
    from sandbox.course import EXERCISES

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
