"""Drill: ``sandbox reset`` while another process holds the warehouse for a step."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sandbox.cli import main
from sandbox.config import ROOT, warehouse_path

HOLDER = """
import sys, time
from sandbox.warehouse import connect, step_lock
with step_lock("sandbox run"):
    with connect() as con:
        con.execute("create table if not exists t (x int)")
    print("holding", flush=True)
    time.sleep(120)
"""


def test_reset_refuses_while_a_step_holds_the_warehouse(isolated_env: Path, capsys) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        path = warehouse_path()
        assert path.exists()

        code = main(["reset"])

        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith("sandbox reset: warehouse is in use by PID ")
        assert f"PID {holder.pid} (sandbox run)" in err and "Traceback" not in err
        assert path.exists()  # nothing was deleted under the running step
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 30
    while main(["reset"]) != 0:  # the OS released the lock with the process
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not path.exists()
