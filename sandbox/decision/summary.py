"""What one inference run did: :class:`InferenceSummary` and its printed form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

EXIT_OK = 0
EXIT_INCOMPLETE = 3
"""Exit code of ``sandbox infer`` when rows failed, the budget stopped it, or a batch is still running."""


@dataclass
class InferenceSummary:
    """Counts, tokens, cost and time of one run (a plain dataclass: easy to log or XCom).

    ``done`` rows were staged by this run, ``failed`` rows ended as failure rows,
    ``skipped`` rows were already staged before it started, ``pending_left`` rows were not
    attempted (budget, ``batch_size``, or waiting in a Message Batch). ``requests`` counts
    Messages API requests (one per item of a Message Batch).

    ``status`` is ``ok``, ``partial`` (some rows failed), ``budget`` (the budget stopped
    it with rows left) or ``waiting`` (a Message Batch is still processing: run again).
    """

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
    failures_by_class: dict[str, int] = field(default_factory=dict)
    batch_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when the run finished cleanly, 3 otherwise (see the class docstring)."""
        return EXIT_OK if self.status == "ok" else EXIT_INCOMPLETE

    def render(self) -> str:
        """A short human summary (a few lines) for the CLI and notebooks."""
        tiers = self.model + (
            f" -> {self.escalation_model} for high-stakes" if self.escalation_model else ""
        )
        rate = f", {self.done / self.wall_s:,.0f} rows/s" if self.done and self.wall_s > 0 else ""
        cost = f"${self.cost_usd:.4f}"
        if self.estimated_cost_usd is not None:
            cost += f" (estimated ${self.estimated_cost_usd:.4f})"
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
        if self.failures_by_class:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.failures_by_class.items()))
            lines.append(
                f"  failures: {kinds} (see decision.inference_failures; a re-run retries them)"
            )
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()
