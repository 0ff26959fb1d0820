"""Run one ``sandbox`` command in this process, pausing at a chosen point so a test can act.

    python -m tests.reliability.paused_child POINT CONTROL_DIR -- infer --date 2026-11-01 ...

The drills start this as a child process, wait for the pause, then kill it (SIGKILL) or start
a second command against the same warehouse, and finally let it go on. Nothing here changes
what the pipeline does; the hooks only *wait* at one point:

``commit:N``
    inside the N-th commit that stages results (the warehouse is open, the rows are inserted,
    the transaction is not committed yet);
``commit-rows:N``
    inside the first such commit after which at least N rows would be staged;
``before-commit:N``
    at the start of the N-th commit that stages results, before the warehouse is opened
    (between two commits: the child holds no lock);
``write-results``
    inside ``write_results``' transaction (the final write of ``sandbox infer``);
``dbt-node``
    after dbt finished its first node (dbt holds the warehouse for the whole build);
``none``
    no pause.

While paused, ``CONTROL_DIR/paused`` holds JSON (``pid``, ``point``, and for a commit
``results`` = rows in the open transaction, ``staged_total`` = rows staged once it commits),
and the fake Messages API holds back new answers, so the set of requests answered before a
kill is fixed at the pause. ``CONTROL_DIR/go`` lets the child go on (it writes
``CONTROL_DIR/resumed`` first). A child left paused for 180 s exits with status 99, so a
broken drill never hangs the test run.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

PAUSE_LIMIT_S = 180.0


class _Pause:
    def __init__(self, point: str, control: Path):
        kind, _, arg = point.partition(":")
        self.kind, self.arg = kind, int(arg or 0)
        self.control = control
        self.done = False
        self.active = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, info: dict) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        self.active.set()
        tmp = self.control / "paused.tmp"
        tmp.write_text(json.dumps({"pid": os.getpid(), "point": self.kind, **info}))
        os.replace(tmp, self.control / "paused")
        deadline = time.monotonic() + PAUSE_LIMIT_S
        while not (self.control / "go").exists():
            if time.monotonic() > deadline:
                os._exit(99)
            time.sleep(0.01)
        (self.control / "resumed").write_text("")
        self.active.clear()


SMALL_COMMIT_ROWS = 4
"""Rows per group commit in a paused child (production commits up to 500 at a time)."""


def install(point: str, control: Path) -> _Pause:
    """Install the hooks for ``point`` (see the module docstring)."""
    pause = _Pause(point, control)
    if pause.kind == "none":
        return pause
    if pause.kind not in ("commit", "commit-rows", "before-commit", "write-results", "dbt-node"):
        raise SystemExit(f"paused_child: unknown point {point!r}")

    if pause.kind == "dbt-node":
        import importlib

        build_module = importlib.import_module("sandbox.data.build")

        real_invoke = build_module.invoke

        def invoke(args, callbacks=None, manifest=None, **options):
            def on_event(event) -> None:
                if event.info.name == "NodeFinished":
                    pause({"node": getattr(event.data.node_info, "unique_id", "")})

            return real_invoke(args, [*(callbacks or []), on_event], manifest, **options)

        build_module.invoke = invoke
        return pause

    from sandbox.decision import fake, realtime, steps, store

    # Small group commits, so "the N-th commit" exists however fast or slow the machine is:
    # a run's answers would otherwise all land in one commit when the commit thread is late.
    realtime.MAX_ROWS_PER_COMMIT = SMALL_COMMIT_ROWS
    real_commit, real_write, real_connect = store.commit, steps.write_results, store.connect
    real_handle = fake.FakeMessagesAPI.handle
    local = threading.local()
    totals = {"commits": 0, "staged": 0}

    def handle(self, request):
        while pause.active.is_set():  # hold back new answers while the test acts
            time.sleep(0.01)
        return real_handle(self, request)

    class Connection:
        """The real connection, with a pause before ``commit()`` when the point says so."""

        def __init__(self, con):
            self._con = con

        def __getattr__(self, name):
            return getattr(self._con, name)

        def commit(self):
            info = getattr(local, "info", None)
            if info is not None and info.pop("pause_inside", False):
                pause(info)
            return self._con.commit()

    @contextmanager
    def connect(*args, **kwargs):
        with real_connect(*args, **kwargs) as con:
            yield Connection(con)

    def commit(**kwargs):
        results = list(kwargs.get("results") or ())
        if not results:
            return real_commit(**kwargs)
        totals["commits"] += 1
        totals["staged"] += len(results)
        info = {
            "commit": totals["commits"],
            "results": len(results),
            "staged_total": totals["staged"],
        }
        if pause.kind == "before-commit" and totals["commits"] == pause.arg:
            pause(info)
        inside = (pause.kind == "commit" and totals["commits"] == pause.arg) or (
            pause.kind == "commit-rows" and totals["staged"] >= pause.arg
        )
        local.info = {**info, "pause_inside": inside}
        try:
            return real_commit(**kwargs)
        finally:
            local.info = None

    def write_results(execution_date):
        local.info = {"pause_inside": pause.kind == "write-results"}
        try:
            return real_write(execution_date)
        finally:
            local.info = None

    fake.FakeMessagesAPI.handle = handle
    store.connect, store.commit = connect, commit
    steps.connect, steps.write_results = connect, write_results
    return pause


def main(argv: list[str]) -> int:
    point, control, sep, *command = argv
    if sep != "--":
        raise SystemExit("usage: paused_child POINT CONTROL_DIR -- sandbox-args...")
    install(point, Path(control))
    from sandbox.cli import main as sandbox_main

    return sandbox_main(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
