"""What learners read: the course map, the links, the endings, the labels and the imports.

These read the stored notebooks (no kernel): a map that forgets a notebook, a cost shown bare
in mock mode, a test marker in a cell, a random temporary path in an output, an answer left in
the learner's tree — each fails here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from sandbox.config import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
INSTRUCTOR = ROOT / "instructor"


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def _outputs(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        data = output.get("text") or output.get("data", {}).get("text/plain", "")
        parts.append("".join(data) if isinstance(data, list) else data)
    return "\n".join(parts)


def _markdown(path: Path) -> str:
    return "\n".join(_text(c) for c in _cells(path) if c["cell_type"] == "markdown")


def test_the_course_map_lists_every_notebook() -> None:
    (map_cell,) = [c for c in _cells(NOTEBOOKS[0]) if "## The course map" in _text(c)]
    rows = [line for line in _text(map_cell).splitlines() if re.match(r"\| \d\d · ", line)]
    assert [row[2:4] for row in rows] == [p.name[:2] for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_links_the_next_and_only_the_last_says_it_is_last(path: Path) -> None:
    text = _markdown(path)
    is_last = path == NOTEBOOKS[-1]
    assert ("This is the last notebook" in text) == is_last
    if not is_last:
        following = NOTEBOOKS[NOTEBOOKS.index(path) + 1].name
        assert f"]({following})" in text, f"{path.name} does not link {following}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_ends_with_questions_research_and_glossary_links(path: Path) -> None:
    end = _text([c for c in _cells(path) if c["cell_type"] == "markdown"][-1])
    heads = [
        h for h in ("## Check your understanding", "## Further research", "## Glossary") if h in end
    ]
    assert len(heads) == 3, f"{path.name} ends without {heads}"
    questions = re.findall(
        r"^\d\. ", end.split("## Check your understanding")[1].split("##")[0], re.M
    )
    assert len(questions) >= 3
    assert len(re.findall(r"\]\(\.\./docs/glossary\.md#[a-z0-9_-]+\)", end)) >= 4


def test_the_answer_key_answers_every_question() -> None:
    key = (INSTRUCTOR / "answer_key.md").read_text()
    for path in NOTEBOOKS:
        end = _markdown(path).split("## Check your understanding")[1].split("##")[0]
        asked = len(re.findall(r"^\d\. ", end, re.M))
        section = key.split(f"## {path.name[:2]} · ")[1].split("\n## ")[0]
        assert len(re.findall(r"^\d\. ", section, re.M)) == asked, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_test_machinery_or_random_paths_in_what_learners_read(path: Path) -> None:
    for cell in _cells(path):
        assert "NBVAL" not in _text(cell), (
            f"{path.name}: use the cell tags nbval-ignore-output / nbval-skip"
        )
        assert "mkdtemp" not in _text(cell)
        out = _outputs(cell)
        assert not re.search(r"/tmp/|/var/folders/|\\Temp\\|tmp[a-z0-9_]{8}", out), (
            f"{path.name}: {out[:200]}"
        )
        assert str(ROOT) not in out
        assert "attempt(s) left" not in out, f"{path.name}: a stored check counted a miss"


COST = re.compile(r"\$\d|\bcost_usd\b|\busd_per_row\b")
FAKE = re.compile(r"claude-[a-z0-9-]+")
ANSWER = re.compile(r"recommendation_type|recommendation_text|confidence_score|\"reasoning\"")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_simulated_cost_and_fake_answer_says_so(path: Path) -> None:
    for n, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "code" or "%%writefile" in _text(cell):
            continue
        out = _outputs(cell)
        shown = COST.search(out) or (FAKE.search(out) and ANSWER.search(out))
        if shown and "❌" not in out:
            assert "simulated" in out, f"{path.name} cell {n} shows {shown.group(0)!r} unlabelled"


def _sandbox_modules(path: Path) -> set[str]:
    found = set()
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        code = "\n".join(
            x for x in _text(cell).splitlines() if not x.lstrip().startswith(("%", "!"))
        )
        for node in ast.walk(ast.parse(code)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])  # fmt: skip
            found |= {n for n in names if n == "sandbox" or n.startswith("sandbox.")}
    return found


def test_notebooks_import_from_at_most_eight_sandbox_modules() -> None:
    modules = set().union(*(_sandbox_modules(p) for p in NOTEBOOKS))
    assert len(modules) <= 8, sorted(modules)
    assert not {
        m for m in modules if m.count(".") > 1 or m.endswith((".tasks", ".prompt", ".golden"))
    }


def test_the_learners_tree_holds_no_solutions_or_answers() -> None:
    assert not (ROOT / "notebooks" / "solutions").exists()
    shipped = [*(ROOT / "sandbox" / "course").glob("*.py"), *NOTEBOOKS]
    text = "\n".join(p.read_text(encoding="utf-8") for p in shipped)
    assert "solutions/" not in "\n".join(p.read_text() for p in NOTEBOOKS)
    for answer in (
        "days_since_last_event between 8 and 30",  # 01.1's query
        '"decides when the dbt build runs": "control"',  # 00.1's answers in clear
        "fct_quiet_users_per_plan",  # the worked dbt model
        "def summarize(plan_tier, days_since_signup, days_since_last_event, event_count_7d, distinct_event_types_7d):\n    head",
    ):
        assert answer not in text, answer


def test_scale_prose_takes_its_numbers_from_the_outputs() -> None:
    text = _markdown(ROOT / "notebooks" / "06_scale_and_cost.ipynb")
    for retyped in (
        "about a second",
        "about sixteen times",
        "1,024 tokens on Sonnet",
        "about 440 tokens",
        "two weeks",
    ):
        assert retyped not in text


NOT_MEASURED = {
    "00": {"15", "40", "45"},  # the course map's reading times
    "03": {"170", "24"},  # an out-of-range confidence; the Batches API's 24-hour window
    "04": {"127.0", "8080"},  # the UI's address
    "06": {"429", "64", "500"},  # an HTTP status; the benchmark's most workers; shipped users
    "07": {"0.1"},  # PSI's usual threshold, in further research
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_numbers_in_prose_come_from_the_cells(path: Path) -> None:
    cells = _cells(path)
    code = " ".join(_text(c) + _outputs(c) for c in cells if c["cell_type"] == "code")
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        prose = re.sub(r"```.*?```|`[^`]*`|\]\([^)]*\)", " ", _text(cell), flags=re.S)
        for n in re.findall(
            r"(?<![\w.-])(\d[\d,]*\.\d+|\d{1,3}(?:,\d{3})+|\d{2,})(?![\w-])", prose
        ):
            if re.fullmatch(r"20\d\d|0\d", n) or n in NOT_MEASURED.get(path.name[:2], ()):
                continue
            assert n in code or n.replace(",", "") in code or n.replace(",", "_") in code, (
                f"{path.name}: {n} in the prose is not in any cell or output"
            )
