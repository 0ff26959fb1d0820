"""The raw files: which format a folder holds, and whether each CSV file can be read at all.

A CSV file is read with an explicit dialect and columns, never a guess; an error names the
file, line and fix, never the row's text (raw text is user-controlled).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from sandbox.config import SandboxError

RAW_COLUMNS = {
    "users": ("id", "plan_tier", "signed_up_at", "country"),
    "events": ("id", "user_id", "event_type", "created_at", "properties"),
}
"""The columns each raw table must have (the sources of ``models/staging/_sources.yml``)."""
CSV_DIALECT = (
    "header=true, auto_detect=false, delim=',', quote='\"', escape='\"', comment='', skip=0, "
    "strict_mode=true, encoding='utf-8', max_line_size=33554432"
)
"""DuckDB's ``read_csv`` options for a raw file: RFC 4180, as the export writes it."""
_SNIFFED = CSV_DIALECT.replace("auto_detect=false", "auto_detect=true")  # a checked file's names
CSV_FIX = (
    "write it as UTF-8 CSV with a header line, one comma-separated row per line, and values "
    'holding a comma, a quote or a line break in double quotes (a quote inside doubled: "")'
)


def raw_format(folder: Path) -> str:
    """``parquet`` or ``csv``: which raw files ``folder`` holds, with a clear error if neither
    (about the path, never the data: the gate only judges files it could open)."""
    if not folder.exists():
        raise SandboxError(
            f"the raw data folder {folder} does not exist: point SANDBOX_RAW_DIR at the folder "
            "holding users.csv and events.csv (or write one with `sandbox generate --out DIR`)."
        )
    if not folder.is_dir():
        raise SandboxError(
            f"the raw data path {folder} is a file, not a folder: point SANDBOX_RAW_DIR at the "
            "folder holding users.csv and events.csv."
        )
    if not os.access(folder, os.R_OK | os.X_OK):
        raise SandboxError(
            f"the raw data folder {folder} cannot be read by this user: fix its permissions "
            "or point SANDBOX_RAW_DIR elsewhere."
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
    read = [name if name in columns else f"column_{n + 1}" for n, name in enumerate(names)]
    struct = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in read) + "}"
    counts = ", ".join(f'count("{name}")' for name in read)
    try:
        with duckdb.connect() as con:
            con.execute(
                f"select {counts} from read_csv(?, columns={struct}, {CSV_DIALECT})", [str(path)]
            )
    except duckdb.Error as exc:
        return _read_problem(path, str(exc), names)
    return None


def _header(path: Path, columns: tuple[str, ...]) -> list[str] | str:
    """The header's column names, or what is wrong with the first line."""
    with path.open("rb") as fh:
        first = fh.readline(1 << 20)
    bom = 3 if first.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = first[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        return _encoding_message(path, 1, bom + exc.start, None)
    if not text.strip():
        return f"{path.name} has no header line: line 1 must name the columns; {CSV_FIX}"
    try:
        names = next(csv.reader([text.rstrip("\r\n")]))
    except csv.Error:
        return f"line 1 (the header) of {path.name} is not valid CSV: {CSV_FIX}"
    expected = ", ".join(columns)
    missing = [c for c in columns if c not in names]
    twice = [c for c in columns if names.count(c) > 1]
    if len(names) == 1:
        return (
            f"line 1 (the header) of {path.name} holds a single field: the file is not "
            f"comma-separated; it needs the columns {expected}, separated by commas"
        )
    if twice:
        return f"the header (line 1) of {path.name} names column {', '.join(twice)} twice: name each once"
    if missing:
        return (
            f"the header (line 1) of {path.name} lacks column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}: it needs {expected} (in any order; other columns are ignored)"
        )
    return names


def _read_problem(path: Path, error: str, names: list[str]) -> str:
    """DuckDB's read error in our words: its numbers are kept, its quote of the row is not."""
    if "Invalid unicode" in error or "not utf-8" in error:
        line, offset, column = _first_bad_byte(path, names)
        return _encoding_message(path, line, offset, column)
    found = re.search(r"CSV Error on Line: (\d+)", error)
    line = _physical_line(path, int(found.group(1))) if found else None
    where = f"line {line} of {path.name}" if line else path.name
    counts = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", error)
    if counts:
        return (
            f"{where}: expected {counts.group(1)} fields, found {counts.group(2)} (a field is "
            f"missing, or an unquoted comma splits a value); {CSV_FIX}"
        )
    if "unterminated quote" in error.lower():
        return f"{where}: a quoted value is never closed; {CSV_FIX}"
    if "maximum line size" in error.lower():
        return f"{where}: a row is longer than 32 MB; {CSV_FIX}"
    return f"{where} cannot be read as CSV; {CSV_FIX}"


def _encoding_message(path: Path, line: int, offset: int, column: str | None) -> str:
    field = f", column {column}" if column else ""
    return (
        f"line {line} of {path.name}{field}: byte offset {offset} is not UTF-8 (the file is "
        "in another encoding, e.g. Latin-1 or Windows-1252); re-export it as UTF-8, or convert "
        f"it: iconv -f latin1 -t utf-8 {path.name}"
    )


def _first_bad_byte(path: Path, names: list[str]) -> tuple[int, int, str | None]:
    """(line, byte offset, column) of the first byte that is not UTF-8."""
    number, offset = 0, 0
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, offset + exc.start, _column_at(line[: exc.start], names)
            offset += len(line)
    return number, offset, None


def _column_at(before: bytes, names: list[str]) -> str | None:
    """The header name of the field ``before`` (a line up to a byte) ends in."""
    field, quoted = 0, False
    for byte in before:
        if byte == ord('"'):
            quoted = not quoted
        elif byte == ord(",") and not quoted:
            field += 1
    return names[field] if field < len(names) else None


def _physical_line(path: Path, record: int) -> int:
    """The line a CSV record starts on (DuckDB counts records; a quoted value may hold line breaks)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        previous = 0
        try:
            for number, _ in enumerate(reader, start=1):
                if number == record:
                    return previous + 1
                previous = reader.line_num
        except csv.Error:
            pass
    return record


def unreadable_timestamps(path: Path, column: str, fmt: str) -> str:
    """Name the raw column, how many of its values are unreadable and where the first ones are
    (not the values: raw text is user-controlled)."""
    import duckdb

    reader = "read_parquet(?)" if fmt == "parquet" else f"read_csv(?, all_varchar=true, {_SNIFFED})"
    try:
        with duckdb.connect() as con:
            con.execute("set TimeZone = 'UTC'")
            found = con.execute(
                f"select count(*), list(n order by n)[1:3] from ("
                f'select row_number() over () as n, "{column}" as v from {reader}) '
                "where v is not null and try_cast(v as timestamptz) is null",
                [str(path)],
            ).fetchone()
    except duckdb.Error:
        found = (0, [])
    count, first = found[0], found[1] or []
    if not count:
        return f"column {column} of {path.name} has empty values"
    where = ", ".join(str(n) for n in first)
    return (
        f"column {column} of {path.name} holds {count} value{'s' if count != 1 else ''} that "
        f"{'are' if count != 1 else 'is'} not a timestamp or name an unknown time zone "
        f"(data row{'s' if len(first) != 1 else ''} {where}); write ISO 8601, e.g. "
        "2026-10-31 23:58:01, with an optional Z, +02:00 or zone name such as Europe/Berlin"
    )
