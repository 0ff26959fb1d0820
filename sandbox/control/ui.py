"""``python -m sandbox.control.ui``: Airflow's own UI on 127.0.0.1, with or without a scheduler.

``make airflow-ui`` (``--port``): the api-server alone, to browse what ``sandbox run`` recorded.
``make airflow`` (``--scheduler``): all components, supervised; ``admin`` (password shown).
``--trigger DATE``: trigger both DAGs for DATE in the Airflow running on ``--port``, then exit."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sandbox.config import SHIPPED_AS_OF_DATE, SandboxError, parse_date
from sandbox.control import airflow_env
from sandbox.control.names import AI_DAG, DAG_IDS
from sandbox.control.pipeline import logical_date

HOST = "127.0.0.1"
AIRFLOW = [sys.executable, "-m", "airflow"]
STARTUP_TIMEOUT_S = 300
QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"
USER = "admin"
API_RETRY_DELAYS_S = (1, 2, 4, 8, 16)  # a busy metadata DB: see api()


def loopback() -> str:
    """The host name every component reports (``[core] hostname_callable``): 127.0.0.1, where
    the log server listens, so the UI reads a running task's log from it."""
    return HOST


def scheduler_environ(port: int) -> dict[str, str]:
    """Settings that turn the UI's home into a small production-like Airflow on one laptop."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{port}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "sandbox.control.ui.loopback",
        "AIRFLOW__API__PORT": str(port),
        # one log server on 127.0.0.1 (Airflow's own binds every interface, so it is skipped)
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port + 1),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(port + 1),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        # dbt's locks live as long as the task process; the OS frees them when it ends, so
        # the tracker's "leaked semaphore" warning at exit is noise, not an error
        "PYTHONWARNINGS": ",".join(
            w for w in (os.environ.get("PYTHONWARNINGS"), QUIET_TRACKER) if w
        ),
        # a learner watches: poke every 10 s, give up on a blocked gate after 5 min
        **airflow_env.waits(poke_s=10, timeout_s=300, retry_s=30),
    }


def commands(port: int, scheduler: bool) -> dict[str, list[str]]:
    """Each component's command line (every listener on 127.0.0.1)."""
    found = {"api-server": [*AIRFLOW, "api-server", "--host", HOST, "--port", str(port)]}
    if scheduler:
        found |= {
            "scheduler": [*AIRFLOW, "scheduler", "--skip-serve-logs"],
            "dag-processor": [*AIRFLOW, "dag-processor"],
            "triggerer": [*AIRFLOW, "triggerer", "--skip-serve-logs"],
            "log-server": [sys.executable, "-m", "uvicorn", "--factory",
                           "airflow.utils.serve_logs:create_app", "--host", HOST,
                           "--port", str(port + 1), "--no-access-log"],
        }  # fmt: skip
    return found


def _prepare(port: int, scheduler: bool) -> tuple[dict, Path]:
    """Stop leftovers, check the ports, sync and (un)pause the DAGs; return env and logs."""
    from sandbox.control.supervise import stop_leftovers

    home = airflow_env.configure()
    airflow_env.migrate_home(home)
    stop_leftovers()
    for busy in (port, port + 1) if scheduler else (port,):
        with socket.socket() as sock:
            if sock.connect_ex((HOST, busy)) == 0:
                raise SandboxError(
                    f"port {busy} on {HOST} is already in use (another Airflow?): stop it, or "
                    "pick another port with PORT=... (make) or --port"
                )
    env = {**os.environ, **airflow_env.airflow_environ(home)}
    if scheduler:
        env.update(scheduler_environ(port))
        os.environ.update({k: v for k, v in env.items() if k.startswith("SANDBOX_")})
    logs = airflow_env.log_dir() / "components"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "setup.log").open("w") as out:
        airflow = functools.partial(subprocess.run, env=env, stdout=out, stderr=subprocess.STDOUT)
        print("syncing the DAG files into the metadata DB...", flush=True)
        airflow([*AIRFLOW, "dags", "reserialize"])
        for dag_id in DAG_IDS:
            if airflow([*AIRFLOW, "dags", "unpause" if scheduler else "pause", dag_id]).returncode:
                raise SandboxError(f"could not (un)pause {dag_id}: see {logs / 'setup.log'}")
    return env, logs


def _healthy(url: str, scheduler: bool) -> bool:
    """True once the API server reports every started component healthy."""
    wanted = ("scheduler", "dag_processor", "triggerer") if scheduler else ()
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
            report = json.loads(response.read())
        return all((report.get(c) or {}).get("status") == "healthy" for c in wanted)
    return False


def serve(port: int = 8080, scheduler: bool = False) -> int:
    """Start the API server (and, with ``scheduler``, the other components); wait for Ctrl-C
    or SIGTERM (or the end of the parent ``make``), then stop them in order."""
    from sandbox.control import supervise

    env, logs = _prepare(port, scheduler)
    processes: dict[str, subprocess.Popen] = {}
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:  # both raise KeyboardInterrupt: the ``finally`` below stops all in order
        signal.signal(sig, signal.default_int_handler)
    url, parent = f"http://{HOST}:{port}", os.getppid()
    watchdog = supervise.start_watchdog()
    try:
        for name, command in commands(port, scheduler).items():
            # each in its own process group, which the supervisor stops in order
            with (logs / f"{name}.log").open("w") as out:
                processes[name] = subprocess.Popen(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            supervise.record(processes, watchdog)
        print(f"starting {', '.join(processes)} on {url} (logs: {logs})", flush=True)
        deadline, ready = time.monotonic() + STARTUP_TIMEOUT_S, False
        # one loop from start to stop: the ready message once all is healthy, then watch
        while not (gone := [name for name, p in processes.items() if p.poll() is not None]):
            if not ready and (ready := _healthy(url, scheduler)):
                print(ready_message(url, scheduler), flush=True)
                if scheduler:
                    print("\n".join(first_view(port)), flush=True)
            if not ready and time.monotonic() > deadline:
                raise SandboxError(f"Airflow did not become healthy in time: see {logs}")
            if os.getppid() != parent:  # make was killed: stop as for SIGTERM
                raise KeyboardInterrupt
            time.sleep(0.5)
        code = processes[gone[0]].returncode
        raise SandboxError(f"Airflow's {gone[0]} exited ({code}): see {logs / gone[0]}.log")
    except KeyboardInterrupt:
        return 0
    finally:
        for sig in signals:  # a second Ctrl-C or SIGTERM must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        print(f"\nstopping {', '.join(n for n in supervise.STOP_ORDER if n in processes)} "
              "(in that order)...", flush=True)  # fmt: skip
        supervise.stop_recorded()
        with contextlib.suppress(ProcessLookupError):
            os.kill(watchdog, signal.SIGTERM)
        print("every Airflow component has stopped.", flush=True)


def first_view(port: int) -> list[str]:
    """Trigger both DAGs for the shipped date unless it already has a run, so the learner's
    first view of the grid is a run whose data can be fresh; the lines to show."""
    url, when = f"http://{HOST}:{port}", _utc(SHIPPED_AS_OF_DATE)
    path = f"/api/v2/dags/{AI_DAG}/dagRuns?logical_date_gte={when}&logical_date_lte={when}"
    if api(url, path, api_token(url))["dag_runs"]:
        return [f"{SHIPPED_AS_OF_DATE} (the shipped date) has a run already: see the grid."]
    return [f"triggered {dag_id} for {SHIPPED_AS_OF_DATE} (the shipped date): {run_id}"
            for dag_id, run_id in trigger(SHIPPED_AS_OF_DATE, port)]  # fmt: skip


def _utc(as_of) -> str:
    """The logical date (02:00 UTC) of ``as_of`` as the REST API writes it."""
    return logical_date(as_of).isoformat().replace("+00:00", "Z")


def ready_message(url: str, scheduler: bool) -> str:
    """What the learner needs once everything answers: address, login, what to do next."""
    password = read_password() or f"(see {password_file()})"
    lines = [
        f"\nAirflow UI: {url}",
        f"  user:     {USER}",
        f"  password: {password}",
        f"  (generated by Airflow's SimpleAuthManager into {password_file()})",
    ]
    if scheduler:
        lines += [
            "Scheduler (LocalExecutor), dag-processor, triggerer and api-server are running; the",
            "DAGs are unpaused. Trigger a date from the UI (Trigger -> logical date 02:00 UTC) or:",
            f"  .venv/bin/python -m sandbox.control.ui --trigger 2026-11-01 --port {url.rsplit(':', 1)[1]}",
            "Stop everything with Ctrl-C.",
        ]
    else:
        lines += [
            "It shows the runs `sandbox run` recorded. No scheduler runs here: the DAGs are",
            "paused, a triggered run would wait forever, and the Scheduler, Triggerer and Dag",
            "Processor badges are red for that reason. For the real thing: make airflow.",
            "Stop it with Ctrl-C.",
        ]
    return "\n".join(lines)


def trigger(as_of, port: int) -> list[tuple[str, str]]:
    """Trigger both DAGs for ``as_of`` through the running API server; each (dag_id, run_id)."""
    url = f"http://{HOST}:{port}"
    token, body = api_token(url), {"logical_date": _utc(parse_date(as_of))}
    return [(dag_id, api(url, f"/api/v2/dags/{dag_id}/dagRuns", token, body)["dag_run_id"])
            for dag_id in DAG_IDS]  # fmt: skip


def password_file() -> Path:
    """Where SimpleAuthManager writes the generated passwords (JSON: user -> password)."""
    return airflow_env.airflow_home() / "simple_auth_manager_passwords.json.generated"


def read_password() -> str | None:
    """The generated password of ``admin``, once the server has written it."""
    try:
        return json.loads(password_file().read_text() or "{}").get(USER)
    except (OSError, ValueError):
        return None


def api_token(url: str) -> str:
    """A JWT for the REST API from SimpleAuthManager's ``/auth/token``."""
    password = read_password()
    if password is None:
        raise SandboxError(f"no generated password in {password_file()}: is Airflow running?")
    return api(url, "/auth/token", None, {"username": USER, "password": password})["access_token"]


def api(url: str, path: str, token: str | None, body: dict | None = None) -> dict:
    """One REST call (GET, or POST with a JSON ``body``); the decoded answer. A 500
    "Database error" (SQLite busy, rolled back) or a 503 is retried after 1 to 16 s."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}{path}", data=data, headers=headers)
    delays = iter(API_RETRY_DELAYS_S)
    while True:
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            busy = exc.code == 503 or (exc.code == 500 and '"Database error"' in detail)
            if not busy or (delay := next(delays, None)) is None:
                raise SandboxError(f"Airflow answered {exc.code} to {path}: {detail}") from None
        except OSError as exc:
            why = f"Airflow at {url} does not answer ({exc}): start it with make airflow"
            raise SandboxError(why) from exc
        time.sleep(delay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.control.ui", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    parser.add_argument("--scheduler", action="store_true", help="all components (make airflow)")
    parser.add_argument("--trigger", metavar="DATE", help="trigger both DAGs for DATE, then exit")
    args = parser.parse_args(argv)
    try:
        if args.trigger:
            for dag_id, run_id in trigger(args.trigger, args.port):
                print(f"triggered {dag_id} for {args.trigger}: {run_id}")
            return 0
        return serve(args.port, scheduler=args.scheduler)
    except SandboxError as exc:
        print(f"airflow: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
