"""The planes talk through tables, never through imports (the article's acceptance test).

An AST walk over every import statement, including the ones inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sandbox"

FORBIDDEN = {
    "data": ("sandbox.decision", "sandbox.control", "anthropic", "httpx2", "airflow"),
    "decision": ("sandbox.data", "sandbox.control", "dbt", "airflow"),
    "evals": ("sandbox.control", "airflow"),
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _violations(plane: str) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / plane).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[plane]):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return bad


@pytest.mark.parametrize("plane", sorted(FORBIDDEN))
def test_plane_does_not_import_the_other_planes(plane: str) -> None:
    assert (PACKAGE / plane / "__init__.py").exists()
    assert _violations(plane) == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from sandbox.decision import engine\n    import dbt.cli\n")
    assert _imports(source) == {"sandbox.decision", "dbt.cli"}
