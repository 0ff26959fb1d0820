"""Notebook 03's fault storm and notebook 05's local Messages API: the offline fake, watched."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

LOCAL_API_KEY = "local-fake-key"  # what notebook 05 sends to local_messages_api: not a real key


def local_messages_api():
    """The offline fake served over real HTTP on 127.0.0.1 (use it in a ``with``): with
    ``ANTHROPIC_BASE_URL`` at its ``url``, ``llm="anthropic"`` runs with no network."""
    from sandbox.decision.fake import FakeServer

    return FakeServer()


_STATUS_KIND = {
    200: "answered",
    429: "429 rate limit",
    529: "529 overloaded",
    500: "500 server error",
    504: "timeout",
}


@dataclass
class Storm:
    """One fault-storm run: the engine's summary and what went over the (fake) wire."""

    run: object
    http: dict[str, int]  # requests to /v1/messages by outcome: answered, or the fault retried

    @property
    def retries(self) -> int:
        return sum(v for k, v in self.http.items() if k != "answered")


def fault_storm(
    day: str, *, faults: str, latency_ms: int = 0, workers: int = 10, rows: int | None = None
) -> Storm:
    """Run the engine for ``day`` under ``SANDBOX_MOCK_FAULTS=faults`` and count the wire; the day's
    earlier answers, failures and ledger rows go first, so every storm starts from the same rows."""
    import json
    import tempfile

    from sandbox.config import environment
    from sandbox.decision import run_llm_inference
    from sandbox.warehouse import connect, table_exists

    with connect() as con:
        for table in ("recommendations_staging", "inference_failures", "llm_calls"):
            if table_exists(con, f"decision.{table}"):
                con.execute(f"delete from decision.{table} where execution_date = ?", [day])
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "requests.jsonl"
        settings = {
            "SANDBOX_MOCK_FAULTS": faults,
            "SANDBOX_MOCK_LATENCY_MS": str(latency_ms),
            "SANDBOX_MOCK_REQUEST_LOG": str(log),
        }
        with environment(settings):
            run = run_llm_inference(day, workers=workers, batch_size=rows, progress=False)
        lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    kinds = [_STATUS_KIND.get(x["status"], str(x["status"])) for x in lines
             if x.get("path", "").endswith("/v1/messages")]  # fmt: skip
    return Storm(run, dict(Counter(kinds)))


def plot_storm(storm: Storm, title: str = "") -> None:
    """Two bars: HTTP requests by outcome (what the SDK retried), and failed rows by kind."""
    import matplotlib.pyplot as plt

    fig, (wire, rows) = plt.subplots(1, 2, figsize=(10, 2.8))
    kinds = ["answered", *sorted(k for k in storm.http if k != "answered")]
    wire.barh(
        kinds,
        [storm.http.get(k, 0) for k in kinds],
        color=["#55A868"] + ["#DD8452"] * (len(kinds) - 1),
    )
    wire.invert_yaxis()
    wire.set_title(f"{sum(storm.http.values())} HTTP requests, {storm.retries} retried by the SDK")
    failed = storm.run.failures_by_class or {"none": 0}
    rows.barh(list(failed), list(failed.values()), color="#C44E52")
    rows.invert_yaxis()
    rows.set_title(f"{storm.run.done} rows done, {storm.run.failed} in the dead-letter table")
    if title:
        fig.suptitle(title)
    plt.tight_layout()
    plt.show()
