"""The course package reads in one sitting: small modules, no import circle, no plane depends on it."""

from __future__ import annotations

import ast
from pathlib import Path

from sandbox.config import ROOT

COURSE = ROOT / "sandbox" / "course"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_modules_and_functions_stay_small() -> None:
    for path in COURSE.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 400, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno < 60, f"{path.name}:{node.name}"


def test_no_import_circle_inside_the_course() -> None:
    graph = {
        f"sandbox.course.{p.stem}": {m for m in _imports(p) if m.startswith("sandbox.course.")}
        for p in COURSE.glob("*.py")
        if p.stem != "__init__"
    }

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    assert not [m for m in graph if reaches(m, m, set())]


def test_no_plane_imports_the_course() -> None:
    for plane in ("data", "decision", "control", "evals"):
        for path in (ROOT / "sandbox" / plane).rglob("*.py"):
            assert not {m for m in _imports(path) if m.startswith("sandbox.course")}, path
