"""Helpers the reliability drills share: child processes, the request log, table dumps, a
local HTTP server in front of the fake Messages API, and a dummy API key.

Kept out of ``tests/conftest.py`` (other planes own it); each drill imports what it uses.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.config import ROOT
from sandbox.warehouse import connect

CHILD_TIMEOUT_S = 240


# -- the fake's request log ------------------------------------------------------------------


@dataclass
class Requests:
    """The fake's request log (``SANDBOX_MOCK_REQUEST_LOG``), read tolerantly.

    A child killed with SIGKILL may leave half a line at the end; it is skipped (a request
    whose log line was not written was not answered).
    """

    path: Path

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def messages(self, entries: list[dict] | None = None) -> list[dict]:
        """``POST /v1/messages`` requests (each SDK attempt is one)."""
        return [
            e
            for e in (self.entries() if entries is None else entries)
            if e["method"] == "POST" and e["path"].endswith("/v1/messages")
        ]

    def pairs(self, entries: list[dict] | None = None) -> Counter:
        """(opaque user, model) -> requests answered."""
        return Counter((e["user"], e["model"]) for e in self.messages(entries))


# -- child processes -------------------------------------------------------------------------


def sandbox_cli(*args: str, env: dict | None = None, timeout: float = CHILD_TIMEOUT_S):
    """``sandbox ARGS`` in a child process; returns the CompletedProcess (text, captured)."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox.cli", *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_sandbox_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """``sandbox ARGS`` started in a child process (stdout/stderr piped, text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class PausedChild:
    """``sandbox ARGS`` in a child that pauses at ``point`` (see :mod:`paused_child`)."""

    point: str
    args: tuple[str, ...]
    control: Path
    env: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> PausedChild:
        self.control.mkdir(parents=True, exist_ok=True)
        self._out = open(self.control / "stdout", "w")  # closed by finish() or kill()
        self._err = open(self.control / "stderr", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.paused_child",
                self.point,
                str(self.control),
                "--",
                *self.args,
            ],
            env={**os.environ, **self.env},
            cwd=ROOT,
            stdout=self._out,
            stderr=self._err,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_paused(self, timeout: float = CHILD_TIMEOUT_S) -> dict:
        """Wait until the child pauses; returns what it wrote (fails if it exits first)."""
        marker = self.control / "paused"
        deadline = time.monotonic() + timeout
        while not marker.exists():
            code = self.proc.poll()
            if code is not None:
                self._close()
                raise AssertionError(
                    f"the child exited ({code}) before pausing at {self.point}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the child never paused at {self.point}:\n{self.output()}")
            time.sleep(0.01)
        return json.loads(marker.read_text())

    def resume(self) -> None:
        (self.control / "go").write_text("")

    def finish(self, timeout: float = CHILD_TIMEOUT_S) -> int:
        """Let it go on and wait for its exit status."""
        self.resume()
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._close()

    def kill(self) -> int:
        """SIGKILL it and wait; returns the exit status (-9)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(timeout=60)
        self._close()
        return code

    def _close(self) -> None:
        for handle in (self._out, self._err):
            if not handle.closed:
                handle.close()

    def output(self) -> str:
        for handle in (self._out, self._err):
            if not handle.closed:
                handle.flush()
        out = (self.control / "stdout").read_text(errors="replace")
        err = (self.control / "stderr").read_text(errors="replace")
        return f"--- stdout\n{out}\n--- stderr\n{err}"

    def stderr(self) -> str:
        return (self.control / "stderr").read_text(errors="replace")

    def stdout(self) -> str:
        return (self.control / "stdout").read_text(errors="replace")


# -- warehouse -------------------------------------------------------------------------------


def rows(sql: str, params: list | None = None) -> list[tuple]:
    with connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def scalar(sql: str, params: list | None = None):
    return rows(sql, params)[0][0]


def tables() -> list[str]:
    """Every base table of the warehouse, as ``schema.table``."""
    return [
        f"{s}.{t}"
        for s, t in rows(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by 1, 2"
        )
    ]


def dump_text() -> str:
    """Every row of every table (views too) as text: what a leak check greps."""
    with connect(read_only=True) as con:
        names = [
            f'"{s}"."{t}"'
            for s, t in con.execute(
                "select table_schema, table_name from information_schema.tables order by 1, 2"
            ).fetchall()
        ]
        parts = []
        for name in names:
            for row in con.execute(f"select * from {name}").fetchall():
                parts.append(name + "\t" + "\t".join(map(str, row)))
    return "\n".join(parts)


def grep_files(folder: Path, needle: bytes) -> list[Path]:
    """Files under ``folder`` (binary too: the DuckDB file, SQLite DBs) containing ``needle``."""
    hits = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and needle in path.read_bytes():
            hits.append(path)
    return hits


# -- a dummy API key -------------------------------------------------------------------------


def dummy_api_key() -> str:
    """A fresh key-shaped dummy (built at run time, so no key-like literal is committed)."""
    return "-".join(["sk", "ant", "test", "DUMMY" + secrets.token_hex(20)])


# -- the fake Messages API over real HTTP: sandbox.decision.fake.FakeServer --------------------
