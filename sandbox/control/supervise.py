"""``make airflow``'s components: what was started, stopping them in order, cleaning up.

Recorded in ``<airflow home>/components.json``, stopped scheduler first, api-server last;
a watchdog stops them if the supervisor is killed, and the next start stops any left over.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sandbox.config import SandboxError
from sandbox.control import airflow_env, runs

STOP_ORDER = ("scheduler", "dag-processor", "triggerer", "log-server", "api-server")
STOP_TIMEOUT_S = 60.0
WATCH_EVERY_S = 0.5


def pid_file() -> Path:
    """Where ``make airflow`` records what it started (JSON)."""
    return airflow_env.airflow_home() / "components.json"


def _started_at(pid: int) -> float | None:
    """The process's start time (it tells it from a later one with its PID); None once ended."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc.create_time()
    except psutil.Error:
        return None


def record(processes: dict[str, subprocess.Popen], watchdog: int) -> None:
    """Write the pid file: the supervisor, the watchdog and each component (PID, start time)."""
    entries = {name: [p.pid, _started_at(p.pid)] for name, p in processes.items()}
    me, guard = [os.getpid(), _started_at(os.getpid())], [watchdog, _started_at(watchdog)]
    data = {"supervisor": me, "watchdog": guard, "components": entries}
    pid_file().write_text(json.dumps(data, indent=1))


def _recorded() -> dict:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(pid_file().read_text())
    return {}


def members(sessions: set[int], since: float = 0.0) -> list[int]:
    """PIDs of the processes in ``sessions`` (each component leads its own, where its workers
    and tasks stay), started at ``since`` or later."""
    import psutil

    found = []
    for proc in psutil.process_iter(["create_time"]):
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(proc.pid) in sessions and proc.info["create_time"] >= since:
                found.append(proc.pid)
    return [pid for pid in found if pid != os.getpid()]


def stop_group(pgid: int) -> None:
    """SIGTERM a process group, wait for all of it, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)  # reap our own child, so its group can empty
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, 0)


def stop_recorded(say=print, intro: str | None = None) -> list[int]:
    """Stop the components the pid file records that still run, in :data:`STOP_ORDER` (then
    SIGKILL any straggler), and remove the file; ``intro`` is said first. Returns their PIDs."""
    components = _recorded().get("components") or {}
    since = min((started or 0 for _, started in components.values()), default=0.0)
    sessions = {pid for pid, _ in components.values()}
    left = members(sessions, since)
    if left:
        if intro:
            say(f"{intro} (PIDs {left})...")
        for name in STOP_ORDER:
            pid = components.get(name, (None,))[0]
            if pid is not None and members({pid}, since):
                stop_group(pid)
            if name == "scheduler" and pid is not None:
                # what the scheduler left unfinished is closed before the api-server stops
                with contextlib.suppress(Exception):
                    for line in runs.close_unfinished("make airflow"):
                        say(line)
        for pid in members(sessions, since):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    pid_file().unlink(missing_ok=True)
    return left


def stop_leftovers(say=print) -> list[int]:
    """Stop the components an earlier ``make airflow`` on this home left running (it was
    killed), and its watchdog; refuse while that ``make airflow`` still runs."""
    data = _recorded()
    supervisor, since = data.get("supervisor") or (None, None)
    if supervisor and supervisor != os.getpid() and _started_at(supervisor) == since:
        raise SandboxError(
            f"make airflow is already running on this home (PID {supervisor}): use it, or stop "
            f"it with Ctrl-C in its terminal (or `kill {supervisor}`), then start again"
        )
    watchdog, started = data.get("watchdog") or (None, None)
    if watchdog and watchdog != os.getpid() and _started_at(watchdog) == started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(watchdog, signal.SIGTERM)
    return stop_recorded(say, "stopping Airflow components left by an earlier make airflow")


def start_watchdog() -> int:
    """Start the watchdog (its own session) that stops everything if this process dies."""
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.control.supervise", "--watch", str(os.getpid())],
        stdin=subprocess.DEVNULL, start_new_session=True,
    ).pid  # fmt: skip


def watch(pid: int) -> int:
    """Wait for the supervisor ``pid`` to end; if it left its components, stop them."""
    started = _started_at(pid)
    while started is not None and _started_at(pid) == started:
        time.sleep(WATCH_EVERY_S)
    if _recorded().get("supervisor", [None])[0] == pid:
        stop_leftovers(say=lambda line: None)
    return 0


if __name__ == "__main__":
    airflow_env.configure()  # closing unfinished runs reads Airflow's metadata DB
    if sys.argv[1:2] == ["--watch"]:
        sys.exit(watch(int(sys.argv[2])))
    print(f"stopped: {stop_leftovers()}")
