"""Fill the measured numbers in README.md and docs/ from bench/RESULTS.md, the one source.

A quoted number is a block ``<!-- results:NAME -->54.8 s<!-- /results -->`` where NAME is
a piece of one measurement's name in RESULTS.md (it must match exactly one).

    .venv/bin/python bench/quote.py          # rewrite every block from RESULTS.md
    .venv/bin/python bench/quote.py --check  # exit 1 when a block disagrees (tests/test_docs.py)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
BLOCK = re.compile(r"<!-- results:(?P<name>.+?) -->(?P<shown>.*?)<!-- /results -->", re.S)
ROW = re.compile(
    r"^\| (?P<name>.+?)(?: <br><sub>.*?</sub>)? \| (?P<value>[^|]+) \| (?P<unit>[^|]*) \|"
)


def documents() -> list[Path]:
    """The pages whose numbers come from RESULTS.md: README.md and docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def measurements(results: str) -> dict[str, str]:
    """Every measurement of RESULTS.md's tables, by name, rendered as the docs show it."""
    found, in_table = {}, False
    for line in results.splitlines():
        if line.startswith("| measurement | value | unit |"):
            in_table = True
        in_table = in_table and line.startswith("|")
        row = ROW.match(line) if in_table else None
        if not row or row["value"].strip() in {"value", "---:"}:
            continue
        value, unit = row["value"].strip(), row["unit"].strip()
        if unit == "x":
            found[row["name"].strip()] = f"{value}×"
        elif unit == "USD":
            found[row["name"].strip()] = f"${value}"
        else:
            found[row["name"].strip()] = f"{value} {unit}".strip()
    return found


def lookup(name: str, table: dict[str, str]) -> str:
    """The one measurement whose name contains ``name``; ValueError if none or several."""
    hits = [key for key in table if name in key]
    if len(hits) != 1:
        raise ValueError(
            f"results:{name} matches {len(hits)} measurements of bench/RESULTS.md"
            f"{': ' + '; '.join(hits) if hits else ''}: name exactly one"
        )
    return table[hits[0]]


def fill(text: str, table: dict[str, str]) -> str:
    """``text`` with every results block showing RESULTS.md's value."""
    return BLOCK.sub(
        lambda m: f"<!-- results:{m['name']} -->{lookup(m['name'], table)}<!-- /results -->", text
    )


def stale(table: dict[str, str]) -> list[str]:
    """One line per block whose shown number is not RESULTS.md's."""
    lines = []
    for path in documents():
        for m in BLOCK.finditer(path.read_text()):
            wanted = lookup(m["name"], table)
            if m["shown"] != wanted:
                lines.append(
                    f"{path.relative_to(ROOT)}: {m['name']!r} shows {m['shown']!r}, RESULTS.md {wanted!r}"
                )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale blocks, change nothing")
    args = parser.parse_args()
    table = measurements(RESULTS.read_text())
    if args.check:
        lines = stale(table)
        print("\n".join(lines) or "every quoted number matches bench/RESULTS.md")
        return 1 if lines else 0
    for path in documents():
        text = path.read_text()
        if (new := fill(text, table)) != text:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
