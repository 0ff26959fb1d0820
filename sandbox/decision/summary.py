"""What one inference run did: the :class:`InferenceSummary` it counts into and prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

SIMULATED_COST = "simulated: offline fake at list prices"  # said next to every offline cost


@dataclass
class InferenceSummary:
    """Counts, tokens, cost and time of one run (a plain dataclass: easy to log or XCom);
    ``status``: ``ok``, ``partial``, ``budget``, ``waiting``, ``pending`` or ``interrupted``."""

    execution_date: date
    llm: str
    mode: str
    model: str
    escalation_model: str | None
    prompt_version: str
    run_id: str
    inputs: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    pending_left: int = 0
    requests: int = 0
    escalated: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    estimated_cost_usd: float | None = None
    max_cost_usd: float | None = None
    wall_s: float = 0.0
    status: str = "ok"
    interrupted_by: str | None = None
    resent: int = 0
    recovered: int = 0
    failures_open: int = 0
    held_back: int = 0
    failures_by_class: dict[str, int] = field(default_factory=dict)
    batch_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, *, results: list[dict], failures: list[dict], calls: list[dict]) -> None:
        """Add a set of committed rows to the totals."""
        self.done += len(results)
        self.escalated += sum(1 for r in results if r["escalated"])
        self.failed += len(failures)
        for kind in (f["error_class"] for f in failures):
            self.failures_by_class[kind] = self.failures_by_class.get(kind, 0) + 1
        self.requests += len(calls)
        self.input_tokens += sum(c["input_tokens"] for c in calls)
        self.output_tokens += sum(c["output_tokens"] for c in calls)
        self.cost_usd += sum(c["cost_usd"] for c in calls)

    @property
    def exit_code(self) -> int:
        """0 when the run finished cleanly, 3 when rows are left, 130/143 when interrupted."""
        if self.status == "interrupted":  # 128 + the signal number, as shells report it
            return 143 if self.interrupted_by == "SIGTERM" else 130
        return 0 if self.status == "ok" else 3

    def render(self) -> str:
        """A short human summary (a few lines) for the CLI and notebooks."""
        tiers = self.model + (
            f" -> {self.escalation_model} for high-stakes" if self.escalation_model else ""
        )
        rate = f", {self.done / self.wall_s:,.0f} rows/s" if self.done and self.wall_s > 0 else ""
        notes = [SIMULATED_COST] if self.llm == "mock" else []
        if self.estimated_cost_usd is not None:
            notes.append(f"estimated ${self.estimated_cost_usd:.4f}")
        cost = f"${self.cost_usd:.4f}" + (f" ({'; '.join(notes)})" if notes else "")
        if self.max_cost_usd is not None:
            cost += f", budget ${self.max_cost_usd:g}"
        lines = [
            f"infer {self.execution_date} [{self.llm}, {self.mode}] {tiers}, prompt {self.prompt_version}",
            f"  rows: {self.done:,} done, {self.failed:,} failed, {self.skipped:,} already done, "
            f"{self.pending_left:,} left pending (of {self.inputs:,} inputs); {self.escalated:,} escalated",
            f"  requests: {self.requests:,}, tokens {self.input_tokens:,} in / {self.output_tokens:,} out, "
            f"cost {cost}",
            f"  wall {self.wall_s:.1f}s{rate}; status {self.status}",
        ]
        if self.resent or self.recovered:
            lines.append(
                f"  re-sent {self.resent:,} requests for rows sent before (why: notes); "
                f"{self.recovered:,} ledger rows recovered from the journal"
            )
        if self.failures_by_class:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.failures_by_class.items()))
            lines.append(
                f"  failures: {kinds} (see decision.inference_failures where resolved_at is null; "
                "a re-run retries all but invalid requests)"
            )
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    __str__ = render
