"""What every benchmark shares: measurements, machine facts, child processes, RESULTS.md.

A benchmark returns a list of :class:`Measurement`; ``bench/run_all.py`` collects them from
every script and writes ``bench/RESULTS.md``. Ratios are what to read: absolute seconds
move with the machine and with whatever else runs on it (the load average is recorded).
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("BENCH_OUT") or ROOT / "bench" / "out")
"""Big generated data and scratch warehouses (``bench/out``: git-ignored, removed by
``make clean``; ``BENCH_OUT`` moves it, e.g. for the smoke test)."""
RESULTS = ROOT / "bench" / "RESULTS.md"
AS_OF = "2026-11-01"

if str(ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


@dataclass
class Measurement:
    """One number a benchmark measured, with its target when it has one."""

    area: str
    name: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None
    note: str = ""

    def line(self) -> str:
        """One printed line: name, value, target and verdict."""
        verdict = {True: "PASS", False: "FAIL", None: ""}[self.passed]
        target = f"  (target {self.target}) {verdict}" if self.target else ""
        note = f"  [{self.note}]" if self.note else ""
        return f"  {self.name:<58} {fmt(self.value):>12} {self.unit:<10}{target}{note}"


def fmt(value: float) -> str:
    """A number with sensible digits (1,234 / 12.3 / 0.123)."""
    if value is None or value != value:
        return "-"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def report(area: str, measurements: list[Measurement]) -> None:
    """Print one benchmark's measurements."""
    print(f"\n== {area}")
    for m in measurements:
        print(m.line())


def load_average() -> str:
    """The 1/5/15-minute load average (other work on the machine skews timings)."""
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    """Facts that explain the numbers: CPU, cores, memory, versions, load."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("duckdb", "dbt-core", "dbt-duckdb", "anthropic", "apache-airflow"):
        try:  # metadata only: importing airflow would reconfigure logging for the whole run
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **versions,
        "load average at start": load_average(),
    }


PEAK_ENV = "BENCH_PEAK_FILE"


def vm_hwm_gib() -> float | None:
    """This process's peak resident memory (``VmHWM``), or None where /proc has no such line.

    ``VmHWM`` belongs to the process's own address space, created at ``exec``. The
    ``ru_maxrss`` of ``getrusage``/``wait4`` (and so ``/usr/bin/time``) does not: on Linux a
    child starts from the resident size of the parent it was forked from, so a child of a
    3.9 GiB benchmark process reports at least 3.9 GiB whatever it does itself.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def _write_peak() -> None:
    peak = vm_hwm_gib()
    if peak is not None:
        Path(os.environ[PEAK_ENV]).write_text(str(peak))


if os.environ.get(PEAK_ENV):  # a child started by run_child: leave its peak on exit
    atexit.register(_write_peak)


@dataclass
class ChildRun:
    """A finished child process: exit status, wall and CPU seconds, peak memory, output."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_gib: float
    stdout: str
    stderr: str


def run_child(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> ChildRun:
    """Run a Python child and measure it: wall, CPU (``wait4``) and peak memory (``VmHWM``).

    ``args`` is a Python command (``[sys.executable, script, ...]`` or, for a module such as
    the ``sandbox`` CLI, ``[sys.executable, "-m", "sandbox", ...]``); it runs under
    ``bench/peak.py``, which reports the child's own ``VmHWM`` when it exits (see
    :func:`vm_hwm_gib` for why not ``ru_maxrss``).
    """
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    out_path, err_path, peak_path = (OUT / f".child-{tag}.{x}" for x in ("out", "err", "peak"))
    if args[0] == sys.executable:
        args = [sys.executable, str(ROOT / "bench" / "peak.py"), *args[1:]]
    started = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        child = subprocess.Popen(
            args, env={**os.environ, **(env or {}), PEAK_ENV: str(peak_path)}, cwd=cwd,
            stdout=out, stderr=err,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    stdout, stderr = out_path.read_text(), err_path.read_text()
    peak = float(peak_path.read_text()) if peak_path.exists() else usage.ru_maxrss / 1024 / 1024
    for path in (out_path, err_path, peak_path):
        path.unlink(missing_ok=True)
    return ChildRun(
        returncode=child.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_gib=peak,
        stdout=stdout,
        stderr=stderr,
    )


def last_json(text: str) -> dict:
    """The last line of ``text`` that parses as a JSON object (a child's result)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise RuntimeError(f"no JSON result in the child's output:\n{text[-2000:]}")


def save(key: str, measurements: list[Measurement], extra: dict | None = None) -> Path:
    """Keep one benchmark's results as ``bench/out/results-<key>.json`` (see :func:`load`)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"results-{key}.json"
    payload = {
        "measured": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average then {load_average()}",
        "measurements": [asdict(m) for m in measurements],
        **(extra or {}),
    }
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path


def load(key: str) -> tuple[list[Measurement], dict]:
    """The measurements (and the rest of the payload) a full run of one benchmark saved."""
    path = OUT / f"results-{key}.json"
    if not path.exists():
        raise SystemExit(f"no saved results at {path}: run that benchmark first (drop --only)")
    payload = json.loads(path.read_text())
    return [Measurement(**m) for m in payload.pop("measurements")], payload


def pct(ok: bool | None) -> str:
    return {True: "pass", False: "**fail**", None: "-"}[ok]


def measured(key: str) -> str:
    """When a benchmark's saved results were measured, and the load then ('' if unknown)."""
    path = OUT / f"results-{key}.json"
    return json.loads(path.read_text()).get("measured", "") if path.exists() else ""


def markdown(
    facts: dict[str, str],
    sections: list[tuple[str, list[Measurement], str, str]],
    preface: str = "",
) -> str:
    """RESULTS.md: machine facts, then one table per benchmark with targets and verdicts."""
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`bench/run_all.py`); do not edit by hand. Ratios are measured",
        "within one run: absolute seconds depend on the machine and on what else was running on",
        "it (see the load average).",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in facts.items()],
        "",
    ]
    if preface:
        lines += [preface.strip(), ""]
    for title, measurements, notes, when in sections:
        lines += [f"## {title}", ""]
        if when:
            lines += [f"*Measured {when}.*", ""]
        lines += [
            "| measurement | value | unit | target | result |",
            "|---|---:|---|---|---|",
        ]
        for m in measurements:
            name = m.name + (f" <br><sub>{m.note}</sub>" if m.note else "")
            lines.append(
                f"| {name} | {fmt(m.value)} | {m.unit} | {m.target or '-'} | {pct(m.passed)} |"
            )
        lines.append("")
        if notes:
            lines += [notes.strip(), ""]
    return "\n".join(lines)
