"""The student copy: the notebooks with outputs cleared and a prediction asked before each output.

Learners who write down what a cell will print before running it remember more (fastbook's
clean notebooks do the same). Solutions and the answer key live in ``instructor/``, never here.
"""

from __future__ import annotations

from pathlib import Path

PREDICT = (
    "**Predict** what the next cell prints before you run it: write your guess down, then compare."
)


def student_notebook(nb: dict) -> dict:
    """One notebook, cleared: no outputs, no counts, no test tags; a prediction before each output."""
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


def write_student_copy(notebooks: list[Path], out: Path) -> list[Path]:
    """Write the student copy of ``notebooks`` into ``out``; returns the files written."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        target = out / Path(path).name
        text = json.dumps(student_notebook(nb), indent=1, ensure_ascii=False) + "\n"
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
