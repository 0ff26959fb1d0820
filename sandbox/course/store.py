"""The notebooks as stored: outputs kept clean (``python -m sandbox.course.store FILES``), or
cleared for the student copy, which asks for a prediction before each output: learners who
write down what a cell will print remember more."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PREDICT = (
    "**Predict** what the next cell prints before you run it: write your guess down, then compare."
)


def _write(nb: dict, path: Path) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def clean(path: Path) -> int:
    """Clean one ``.ipynb`` in place; return how many outputs were dropped."""
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
    out.mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        _write(student_notebook(json.loads(path.read_text(encoding="utf-8"))), out / path.name)
    return [out / path.name for path in notebooks]


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {clean(Path(name))} widget view(s) dropped")
