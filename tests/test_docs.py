"""The docs cannot drift: every target, command, flag, link, variable and number they name exists.

README.md and docs/*.md are read as a newcomer would use them. Make targets come from the
Makefile, `sandbox` commands and flags from the CLI's own argparse parsers, measured numbers
from bench/RESULTS.md (through bench/quote.py's blocks). A stale claim fails the build.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import subprocess
from pathlib import Path

import pytest

import sandbox.cli
from sandbox.control import ui

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^ *```.*?^ *```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
RESULTS_BLOCK = re.compile(r"<!-- results:.+? -->.*?<!-- /results -->", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _quote():
    spec = importlib.util.spec_from_file_location("quote", ROOT / "bench" / "quote.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code(text: str) -> list[str]:
    """Every piece of code a reader may copy: fenced blocks (line by line) and inline spans."""
    pieces = [line for block in FENCE.findall(text) for line in block.splitlines()[1:-1]]
    return pieces + SPAN.findall(FENCE.sub("", text))


def _mentions(pattern: str) -> list[tuple[str, str, str]]:
    """(page, match, rest of the command) for every code piece matching ``pattern``."""
    found = []
    for page in DOCS:
        for piece in _code(page.read_text()):
            for m in re.finditer(pattern, piece):
                rest = re.split(r"[#|;&]", piece[m.end() :], maxsplit=1)[0]
                found.append((page.relative_to(ROOT).as_posix(), m.group(1), rest))
    return found


def _sandbox_parser() -> argparse.ArgumentParser:
    """The `sandbox` command's parser, built by sandbox.cli as the command builds it."""
    for name in dir(sandbox.cli):
        candidate = getattr(sandbox.cli, name)
        if callable(candidate) and "parser" in name.lower() and not isinstance(candidate, type):
            parser = candidate()
            if isinstance(parser, argparse.ArgumentParser):
                return parser
    raise AssertionError("sandbox.cli builds no ArgumentParser")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_the_readme_is_a_front_door() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for needed in ("make pipeline", "make test", "How to Design a Modern Data + AI System"):
        assert needed in text
    assert "MIT" in (ROOT / "LICENSE").read_text()


def test_every_make_target_mentioned_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", makefile, re.M))
    missing = sorted(
        {f"{page}: make {target}" for page, target, _ in _mentions(r"(?:^|[\s(])make ([a-z][a-z-]*)")
         if target not in targets}
    )  # fmt: skip
    assert not missing, "targets the Makefile does not have:\n" + "\n".join(missing)


def test_every_sandbox_command_and_flag_mentioned_exists() -> None:
    commands = _subcommands(_sandbox_parser())
    wrong = []
    for page, command, rest in _mentions(r"(?:^|[\s/(])sandbox ([a-z][a-z-]*)"):
        if command not in commands:
            wrong.append(f"{page}: sandbox {command} (no such command)")
            continue
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
            if flag not in _flags(commands[command]):
                wrong.append(f"{page}: sandbox {command} {flag} (no such flag)")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_every_ui_flag_mentioned_exists() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        ui.main(["--help"])
    flags = set(re.findall(r"(--[a-z][a-z-]*)", out.getvalue()))
    wrong = [
        f"{page}: python -m sandbox.control.ui {flag}"
        for page, _, rest in _mentions(r"-m (sandbox\.control\.ui)")
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest)
        if flag not in flags
    ]
    assert not wrong, "\n".join(wrong)


def _slugs(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", markdown), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in DOCS:
        for target in LINK.findall(COMMENT.sub("", page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not resolved.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _slugs(resolved.read_text()):
                broken.append(f"{where} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_notebooks_links_into_docs_resolve() -> None:
    """A notebook's link to a docs page (a glossary term, say) lands on a real heading."""
    import json

    broken = []
    for notebook in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        for target in LINK.findall(text):
            path, _, anchor = target.partition("#")
            if re.match(r"[a-z]+:", target) or not path.endswith(".md"):
                continue
            resolved = (notebook.parent / path).resolve()
            if not resolved.exists():
                broken.append(f"{notebook.name}: {target} (no such file)")
            elif anchor and anchor not in _slugs(resolved.read_text()):
                broken.append(f"{notebook.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_repository_path_named_exists() -> None:
    """A path in code such as `sandbox/decision/outcome.py` or `data/golden/` is really there."""
    top = r"(?:sandbox|tests|dags|data|dbt_project|bench|notebooks|docs)/"
    generated = ("bench/out", "data/big", "data/generated")  # made by make bench, sandbox generate
    missing = sorted(
        {
            f"{page.relative_to(ROOT)}: {span}"
            for page in DOCS
            for span in SPAN.findall(page.read_text())
            if re.fullmatch(top + r"[\w./-]*", span)
            and not span.startswith(generated)
            and not (ROOT / span).exists()
        }
    )
    assert not missing, "no such path:\n" + "\n".join(missing)


def test_every_quoted_number_matches_results() -> None:
    quote = _quote()
    stale = quote.stale(quote.measurements(quote.RESULTS.read_text()))
    assert not stale, "run .venv/bin/python bench/quote.py:\n" + "\n".join(stale)


def test_no_measured_number_is_retyped() -> None:
    """A timing or a memory size in prose must come through a results block, not by hand."""
    measured = re.compile(r"\b\d+\.\d+ ?(?:s|ms|µs|us|GiB|MiB|min|h)\b|\b\d+\.\d+ ?×")
    retyped = []
    for page in DOCS:
        prose = SPAN.sub("", FENCE.sub("", RESULTS_BLOCK.sub("", page.read_text())))
        retyped += [f"{page.relative_to(ROOT)}: {m}" for m in measured.findall(prose)]
    assert not retyped, "quote these from bench/RESULTS.md (bench/quote.py):\n" + "\n".join(retyped)


def test_every_guarantee_names_an_existing_drill() -> None:
    text = (ROOT / "docs" / "guarantees.md").read_text()
    bullets = re.findall(r"^- \*\*(.+?)\*\*(.*?)(?=^- \*\*|^#|^<!--|\Z)", text, re.S | re.M)
    assert len(bullets) >= 15
    for title, body in bullets:
        drills = [t for t in LINK.findall(body) if re.search(r"tests/.+\.py$", t)]
        assert drills, f"guarantee {title!r} names no drill"
        for drill in drills:
            assert (ROOT / "docs" / drill).resolve().is_file(), f"{title!r}: {drill} does not exist"


def test_every_sandbox_variable_is_documented_and_exists() -> None:
    sources = [
        *ROOT.glob("sandbox/**/*.py"),
        *ROOT.glob("dags/*.py"),
        ROOT / "dbt_project" / "profiles.yml",
    ]
    read = {
        v for path in sources for v in re.findall(r"SANDBOX_[A-Z0-9_]*[A-Z0-9]", path.read_text())
    }
    documented = (ROOT / "docs" / "configuration.md").read_text()
    undocumented = sorted(v for v in read if v not in documented)
    assert not undocumented, f"docs/configuration.md does not list {', '.join(undocumented)}"
    known = read | {
        v for path in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]
        for v in re.findall(r"SANDBOX_[A-Z0-9_]*[A-Z0-9]", path.read_text())
    }  # fmt: skip
    named = {
        v for page in DOCS for v in re.findall(r"SANDBOX_[A-Z0-9_]*[A-Z0-9]", page.read_text())
    }
    assert not sorted(named - known), f"documented but read nowhere: {sorted(named - known)}"


GLOSSARY_TERMS = (
    "PSI", "golden set", "write-audit-publish", "backfill", "as-of date", "logical date", "Asset",
    "escalation", "upsert", "prompt_version", "DAG", "sensor", "reschedule", "XCom", "contract",
    "data test", "unit test", "dead letter", "idempotency", "Little's law", "drift", "baseline",
)  # fmt: skip


def test_the_glossary_defines_the_terms_the_notebooks_use() -> None:
    headings = " | ".join(
        re.findall(r"^### (.+)$", (ROOT / "docs" / "glossary.md").read_text(), re.M)
    )
    missing = [term for term in GLOSSARY_TERMS if term.lower() not in headings.lower()]
    assert not missing, f"docs/glossary.md has no entry for {missing}"


def test_make_help_prints_real_values() -> None:
    done = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "$(" not in done.stdout, f"make help prints an unexpanded variable:\n{done.stdout}"
    documented = re.findall(r"^([a-z][\w-]*):.*## ", (ROOT / "Makefile").read_text(), re.M)
    assert all(f"make {target}" in done.stdout for target in documented)
