"""The grader and the student copy: a blank, a half-done and a solved set, scored without failing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest

from instructor.tools import PREDICT, main, student_notebook
from tests.course.conftest import solution

pytestmark = pytest.mark.slow  # a Jupyter kernel per notebook


def _notebook(folder: Path, planes: dict | None, top_sql: str | None) -> Path:
    """A notebook named like 00 holding its two exercises, answered as given."""
    cells = [
        nbformat.v4.new_code_cell("from sandbox import course"),
        nbformat.v4.new_code_cell(f"answers = {planes!r}\ncourse.check_planes(answers)"),
        nbformat.v4.new_code_cell(
            "raise RuntimeError('a broken cell costs only its own exercise')"
        ),
        nbformat.v4.new_code_cell(
            f"top_sql = {top_sql!r}\ncourse.check_top_recommendation(top_sql)"
        ),
    ]
    path = folder / "00_start_here.ipynb"
    folder.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


@pytest.mark.parametrize(
    ("name", "answered", "expected"),
    [
        ("blank", (False, False), {"00.1": (0, "blank"), "00.2": (0, "blank")}),
        ("half", (True, False), {"00.1": (1, "right"), "00.2": (0, "blank")}),
        ("solved", (True, True), {"00.1": (1, "right"), "00.2": (1, "right")}),
        ("wrong", ("wrong", "wrong"), {"00.1": (0, "missed"), "00.2": (0, "missed")}),
    ],
)
def test_grade_scores_each_exercise_and_never_fails(
    tmp_path: Path, capsys, name, answered, expected
) -> None:
    right = solution("00_start_here")
    planes = {True: right["answers"], False: None, "wrong": {k: "data" for k in right["answers"]}}
    top = {True: right["top_sql"], False: None, "wrong": "select 'churn_risk'"}
    path = _notebook(tmp_path / name, planes[answered[0]], top[answered[1]])
    out = tmp_path / "grades"
    assert main(["grade", str(path), "--out", str(out)]) == 0
    report = json.loads((out / "grades.json").read_text())
    got = {e["exercise"]: (e["score"], e["status"]) for e in report["exercises"]}
    assert got == expected
    assert report["score"] == sum(s for s, _ in expected.values()) and report["out_of"] == 2
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [(r["exercise"], int(r["score"])) for r in rows] == [
        (k, v[0]) for k, v in expected.items()
    ]


def test_grade_names_a_missing_notebook(tmp_path: Path, capsys) -> None:
    assert main(["grade", str(tmp_path / "nope.ipynb")]) == 2
    assert "no notebook" in capsys.readouterr().err


def test_student_copy_clears_outputs_and_asks_for_predictions(tmp_path: Path) -> None:
    from sandbox.config import ROOT

    assert main(["student", "--out", str(tmp_path / "student")]) == 0
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(source.read_text())
        copy = json.loads((tmp_path / "student" / source.name).read_text())
        codes = [c for c in copy["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in codes)
        with_output = sum(1 for c in nb["cells"] if c["cell_type"] == "code" and c.get("outputs"))
        asks = [i for i, c in enumerate(copy["cells"]) if c["source"] == PREDICT]
        assert len(asks) == with_output
        assert all(copy["cells"][i + 1]["cell_type"] == "code" for i in asks)
        assert "nbval" not in json.dumps(copy) and "solutions/" not in json.dumps(copy)
    assert student_notebook({"cells": [], "metadata": {"widgets": {}}})["metadata"] == {}
