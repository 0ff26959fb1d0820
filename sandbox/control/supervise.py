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
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from sandbox.config import SandboxError
from sandbox.control import airflow_env
from sandbox.control.names import AI_DAG

STOP_ORDER = ("scheduler", "dag-processor", "triggerer", "log-server", "api-server")
STOP_TIMEOUT_S = 60.0
WATCH_EVERY_S = 0.5
CUT = "make airflow stopped: this task was cut short and is marked failed"


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


def record(processes: dict[str, subprocess.Popen], url: str, watchdog: int | None) -> None:
    """Write the pid file: the supervisor, the watchdog and each component (PID, start time)."""
    entries = {name: [p.pid, _started_at(p.pid)] for name, p in processes.items()}
    me = [os.getpid(), _started_at(os.getpid())]
    guard = [watchdog, _started_at(watchdog)] if watchdog else None
    data = {"url": url, "supervisor": me, "watchdog": guard, "components": entries}
    pid_file().write_text(json.dumps(data, indent=1))


def _recorded() -> dict:
    try:
        return json.loads(pid_file().read_text())
    except (OSError, ValueError):
        return {}


def members(sessions: set[int], since: float = 0.0) -> list[int]:
    """PIDs of the processes in the given sessions (each component leads its own, and its
    workers and tasks stay in it), started at ``since`` or later."""
    import psutil

    found = []
    for proc in psutil.process_iter(["create_time"]):
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(proc.pid) in sessions and proc.info["create_time"] >= since:
                found.append(proc.pid)
    return [pid for pid in found if pid != os.getpid()]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM a process group, wait for all of it, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _group_alive(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)  # reap our own child, so its group can empty
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, 0)


def close_unfinished(url: str) -> list[str]:
    """Through the REST API: mark every run still running failed, with a line in the log of
    each task it cuts short, and give each such AI run its ``ops.pipeline_runs`` row."""
    from sandbox.control.rest import api, api_token

    token = api_token(url)
    lines = []
    runs = api(url, "/api/v2/dags/~/dagRuns?state=running&limit=100", token)["dag_runs"]
    for run in runs:
        dag_id, run_id = run["dag_id"], run["dag_run_id"]
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
        tis = api(url, f"{path}/taskInstances?limit=100", token)["task_instances"]
        cut = [ti for ti in tis if ti["state"] not in ("success", "skipped", "failed",
                                                       "upstream_failed", "removed")]  # fmt: skip
        for ti in cut:  # a line in its log, where the UI shows it
            attempt = max(1, int(ti.get("try_number") or 1))
            log = airflow_env.attempt_log(dag_id, run_id, ti["task_id"], attempt)
            event = {"timestamp": datetime.now(UTC).isoformat(), "level": "error", "event": CUT}
            with contextlib.suppress(OSError):
                log.parent.mkdir(parents=True, exist_ok=True)
                with log.open("a") as out:
                    out.write(json.dumps(event) + "\n")
        # every task ended: the scheduler stopped before it closed the run, so close it
        ended = "failed" if cut or any(ti["state"] == "failed" for ti in tis) else "success"
        api(url, path, token, {"state": ended}, method="PATCH")
        lines.append(f"marked {dag_id} {run_id} {ended} (the scheduler stopped before it did)")
        if dag_id == AI_DAG and ended == "failed":
            _record_stopped(run)
    return lines


def _record_stopped(run: dict) -> None:
    """Give a stopped AI run its ``ops.pipeline_runs`` row, unless a callback wrote one."""
    from sandbox.control import runs

    if runs.read(run["dag_run_id"]) is not None:
        return
    started = run.get("start_date")
    runs.write(
        {"execution_date": datetime.fromisoformat(run["logical_date"]).date(),
         "dag_run_id": run["dag_run_id"], "status": "failed", "rows_written": 0, "failures": 0,
         "rows_pending": 0, "detail": "stopped by make airflow's Ctrl-C / SIGTERM"},
        since=datetime.fromisoformat(started) if started else None,
    )  # fmt: skip


def stop_recorded(say=print, intro: str | None = None) -> list[int]:
    """Stop the components the pid file records that still run, in :data:`STOP_ORDER` (then
    SIGKILL any straggler), and remove the file; ``intro`` is said first. Returns their PIDs."""
    data = _recorded()
    components = data.get("components") or {}
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
            if name == "scheduler" and pid is not None and data.get("url"):
                # what the scheduler left unfinished is closed before the api-server stops
                with contextlib.suppress(Exception):
                    for line in close_unfinished(data["url"]):
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
    if sys.argv[1:2] == ["--watch"]:
        airflow_env.configure()
        sys.exit(watch(int(sys.argv[2])))
    print(f"stopped: {stop_leftovers()}")
