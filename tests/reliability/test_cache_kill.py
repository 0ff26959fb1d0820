"""The sandbox's cache (a migrated Airflow DB, dbt's saved parse) never holds a half-written
entry: a writer SIGKILLed after writing its part file, just before the rename, leaves the
previous entry whole (or none), and its part file is swept once it is stale."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.config import ROOT
from sandbox.control import airflow_env

dbt_runner = importlib.import_module("sandbox.data.dbt_runner")

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

KILLED_AT_RENAME = """
import importlib, os, signal, sys
from pathlib import Path
module = importlib.import_module(sys.argv[1])
def killed(src, dst):  # the part file is written; the rename never happens
    os.kill(os.getpid(), signal.SIGKILL)
os.replace = killed
getattr(module, sys.argv[2])(*map(Path, sys.argv[3:5]), **({"changed": True} if sys.argv[2] == "_keep_parse" else {}))
"""


def _killed(module: str, function: str, source: Path, target: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT_RENAME, module, function, str(source), str(target)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_saved_parse_killed_at_its_rename_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    folder = tmp_path / "dbt-parse"
    folder.mkdir()
    saved, mine = folder / "abc.msgpack", tmp_path / "partial_parse.msgpack"
    saved.write_bytes(b"the previous, whole parse")
    mine.write_bytes(b"a newer parse")
    _killed("sandbox.data.dbt_runner", "_keep_parse", mine, saved)
    assert saved.read_bytes() == b"the previous, whole parse"
    (part,) = folder.glob(".*.part")
    assert part.read_bytes() == b"a newer parse"  # whole, but never renamed into place
    dbt_runner._keep_parse(mine, saved, changed=False)  # a later parse, within the hour
    assert part.exists()  # a writer may still be at work on a recent part file
    _age(part, 7200)
    dbt_runner._keep_parse(mine, saved, changed=False)
    assert not part.exists() and saved.read_bytes() == b"the previous, whole parse"


def test_an_airflow_template_killed_at_its_rename_is_never_copied(tmp_path: Path) -> None:
    db = tmp_path / "home" / "airflow.db"
    db.parent.mkdir()
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("create table alembic_version (version_num varchar(32) not null)")
        conn.execute("insert into alembic_version values ('d2f4e1b3c5a7')")
    template = tmp_path / "airflow" / "airflow-x.db"
    template.parent.mkdir()
    _killed("sandbox.control.airflow_env", "_keep_template", db, template)
    assert not template.exists()
    (part,) = template.parent.glob(".*.part")
    assert not airflow_env._copy_db(template, tmp_path / "new" / "airflow.db")  # nothing there
    airflow_env._keep_template(db, template)  # the next migration's, alive
    assert airflow_env._copy_db(template, tmp_path / "copy.db")
    assert part.exists()  # recent: left alone
    _age(part, 7200)
    airflow_env._keep_template(db, template)
    assert not part.exists()


def test_a_copy_that_fails_leaves_no_part_file_and_the_target_as_it_was(tmp_path: Path) -> None:
    from sandbox.config import copy_into_place

    source = tmp_path / "entry"
    source.write_bytes(b"new")
    target = tmp_path / "taken"
    target.mkdir()
    (target / "kept").write_text("x")  # a rename cannot replace a folder that holds a file
    with pytest.raises(OSError):
        copy_into_place(source, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry", "taken"]
    assert (target / "kept").read_text() == "x"
    copy_into_place(source, tmp_path / "free")
    assert (tmp_path / "free").read_bytes() == b"new"
