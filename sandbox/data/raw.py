"""The raw files: which format a folder holds, and whether each CSV file can be read at all.

A CSV file is read with an explicit dialect and columns, never a guess; an error names the
file, line and fix, never the row's text (raw text is user-controlled).
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from pathlib import Path

from sandbox.config import SandboxError

RAW_COLUMNS = {
    "users": ("id", "plan_tier", "signed_up_at", "country"),
    "events": ("id", "user_id", "event_type", "created_at", "properties"),
}  # the columns each raw table must have (the sources of models/staging/_sources.yml)
# DuckDB's read_csv options for a raw file: RFC 4180, as the export writes it
CSV_DIALECT = (
    "header=true, auto_detect=false, delim=',', quote='\"', escape='\"', comment='', skip=0, "
    "strict_mode=true, encoding='utf-8', max_line_size=33554432"
)
_SNIFFED = CSV_DIALECT.replace("auto_detect=false", "auto_detect=true")  # a checked file's names
CSV_FIX = (
    "write it as UTF-8 CSV with a header line, one comma-separated row per line, and values "
    'holding a comma, a quote or a line break in double quotes (a quote inside doubled: "")'
)


def raw_format(folder: Path) -> str:
    """``parquet`` or ``csv``: which raw files ``folder`` holds, with a clear error if neither
    (about the path, never the data: the gate only judges files it could open)."""
    problem = None
    if not folder.exists():
        problem = "does not exist"
    elif not folder.is_dir():
        problem = "is a file, not a folder"
    elif not os.access(folder, os.R_OK | os.X_OK):
        problem = "cannot be read by this user (fix its permissions)"
    if problem:
        raise SandboxError(
            f"the raw data path {folder} {problem}: point SANDBOX_RAW_DIR at the folder holding "
            "users.csv and events.csv (or write one with `sandbox generate --out DIR`)."
        )
    for fmt in ("parquet", "csv"):
        if (folder / f"users.{fmt}").is_file() and (folder / f"events.{fmt}").is_file():
            return fmt
    raise SandboxError(
        f"no raw data in {folder}: it needs users.csv and events.csv (or users.parquet and "
        "events.parquet). Point SANDBOX_RAW_DIR at such a folder, or write one with "
        "`sandbox generate --out DIR`."
    )


def csv_problem(path: Path, columns: tuple[str, ...]) -> str | None:
    """Why ``path`` cannot be read as a raw file with ``columns`` (None: it reads cleanly).
    DuckDB reads every row once; its error becomes a message of ours (DuckDB's quotes the row)."""
    import duckdb

    names = _header(path, columns)
    if isinstance(names, str):
        return names
    struct = ", ".join(f"'c{n}': 'VARCHAR'" for n in range(len(names)))
    counts = ", ".join(f"count(c{n})" for n in range(len(names)))  # every value is decoded
    try:
        with duckdb.connect() as con:
            con.execute(
                f"select {counts} from read_csv(?, columns={{{struct}}}, {CSV_DIALECT})",
                [str(path)],
            )
            return None
    except duckdb.Error as exc:
        error = str(exc).lower()
    if "not utf-8" in error:
        return _not_utf8(path, names)
    record = re.search(r"csv error on line: (\d+)", error)  # DuckDB counts records, header = 1
    fields = re.search(r"expected number of columns: (\d+) found: (\d+)", error)
    if fields:
        cause = (
            f"expected {fields.group(1)} fields, found {fields.group(2)} (a field is missing, "
            "or an unquoted comma splits a value)"
        )
    elif "unterminated quote" in error:
        cause = "a quoted value is never closed"
    elif "maximum line size" in error:
        cause = "a row is longer than 32 MB"
    else:
        cause = "it cannot be read as CSV"
    where = f"line {_physical_line(path, int(record.group(1)))} of " if record else ""
    return f"{where}{path.name}: {cause}; {CSV_FIX}"


def _header(path: Path, columns: tuple[str, ...]) -> list[str] | str:
    """The header's column names, or what is wrong with line 1."""
    with path.open("rb") as fh:
        first = fh.readline(1 << 20)
    try:
        names = next(csv.reader([first.decode("utf-8-sig").rstrip("\r\n")]), [])
    except UnicodeDecodeError:
        return _not_utf8(path, [])
    except csv.Error:
        return f"line 1 (the header) of {path.name} is not valid CSV: {CSV_FIX}"
    missing = [c for c in columns if c not in names]
    twice = [c for c in columns if names.count(c) > 1]
    if len(names) == 1:
        return (
            f"line 1 (the header) of {path.name} holds a single field: the file is not "
            f"comma-separated; it needs the columns {', '.join(columns)}, separated by commas"
        )
    if twice:
        return f"the header (line 1) of {path.name} names column {', '.join(twice)} twice: name each once"
    if missing:
        return (
            f"the header (line 1) of {path.name} lacks column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}: it needs {', '.join(columns)} (in any order; other columns are ignored)"
        )
    return names


def _not_utf8(path: Path, names: list[str]) -> str:
    """Where the first byte that is not UTF-8 is: its line, column (a header name) and offset."""
    offset = 0
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                quoted = re.compile(rb'"[^"]*"?')  # a comma inside quotes splits no field
                field = quoted.sub(b"", line[: exc.start]).count(b",")
                column = f", column {names[field]}" if field < len(names) else ""
                return (
                    f"line {number} of {path.name}{column}: byte offset {offset + exc.start} is "
                    "not UTF-8 (the file is in another encoding, e.g. Latin-1 or Windows-1252); "
                    f"re-export it as UTF-8, or convert it: iconv -f latin1 -t utf-8 {path.name}"
                )
            offset += len(line)
    return f"{path.name} is not UTF-8; re-export it as UTF-8"


def _physical_line(path: Path, record: int) -> int:
    """The line a CSV record starts on (a quoted value may hold line breaks)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader, previous = csv.reader(fh), 0
        with contextlib.suppress(csv.Error):
            for number, _ in enumerate(reader, start=1):
                if number == record:
                    return previous + 1
                previous = reader.line_num
    return record


def unreadable_timestamps(path: Path, column: str, fmt: str) -> str:
    """Name the raw column, how many of its values are unreadable and where the first ones are
    (not the values: raw text is user-controlled)."""
    import duckdb

    reader = "read_parquet(?)" if fmt == "parquet" else f"read_csv(?, all_varchar=true, {_SNIFFED})"
    try:
        with duckdb.connect() as con:
            con.execute("set TimeZone = 'UTC'")
            count, first = con.execute(
                f"select count(*), list(n order by n)[1:3] from ("
                f'select row_number() over () as n, "{column}" as v from {reader}) '
                "where v is not null and try_cast(v as timestamptz) is null",
                [str(path)],
            ).fetchone()
    except duckdb.Error:
        count, first = 0, []
    if not count:
        return f"column {column} of {path.name} has empty values"
    values = f"{count} values that are" if count > 1 else "1 value that is"
    rows = f"row{'s' if len(first) > 1 else ''} {', '.join(map(str, first))}"
    return (
        f"column {column} of {path.name} holds {values} not a timestamp or name an unknown time "
        f"zone (data {rows}); write ISO 8601, e.g. 2026-10-31 23:58:01, with an optional Z, "
        "+02:00 or zone name such as Europe/Berlin"
    )
