"""Project the cost and the time of inference at scale from the ledger of a sample run:
:func:`profile_ledger` condenses a sample's ledger, :func:`project` prices a plan under a
tier's limits. No prompt-cache discount is assumed (:func:`cache_report` says why).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import anthropic
import pandas as pd

from sandbox.config import MODES, SandboxError
from sandbox.decision.clients import make_client
from sandbox.decision.pricing import PriceBook, load_price_book
from sandbox.decision.prompt import approx_count, count_tokens

# every row on the primary model; every row on the escalation model; the primary model plus
# the escalation model for the share of rows the sample escalated (the engine's default)
PLANS = ("cheap", "capable", "escalation")

BATCH_TYPICAL_HOURS = 1.0  # Anthropic: most Message Batches finish within an hour
BATCH_MAX_HOURS = 24.0  # a batch's unfinished requests expire 24 hours after creation


@dataclass(frozen=True)
class RateLimits:
    """One model class's per-minute limits on one API tier."""

    requests_per_minute: float
    input_tokens_per_minute: float
    output_tokens_per_minute: float


@dataclass(frozen=True)
class Tier:
    """An API tier: limits per model class (``"haiku"``, ...) and batch requests that may wait."""

    name: str
    limits: dict[str, RateLimits]
    batch_queue_requests: int

    def for_model(self, model_id: str) -> RateLimits:
        """The limits of the first class whose name ``model_id`` contains."""
        for family, limits in self.limits.items():
            if family in model_id:
                return limits
        raise SandboxError(
            f"tier {self.name!r} has no rate limits for {model_id!r} (it knows "
            f"{', '.join(self.limits)}): add the model class to the Tier you pass"
        )


def _tier(name: str, haiku: tuple, sonnet: tuple, queue: int) -> Tier:
    return Tier(name, {"haiku": RateLimits(*haiku), "sonnet": RateLimits(*sonnet)}, queue)


# illustrative limits (Anthropic's Tier 1-4 table of early 2026; tiers have been revised since):
# read your organisation's in the Claude Console and pass your own Tier
TIERS: dict[str, Tier] = {
    tier.name: tier
    for tier in (
        _tier("tier 1", (50, 50_000, 10_000), (50, 30_000, 8_000), 100_000),
        _tier("tier 2", (1_000, 450_000, 90_000), (1_000, 450_000, 90_000), 200_000),
        _tier("tier 3", (2_000, 1_000_000, 200_000), (2_000, 800_000, 160_000), 300_000),
        _tier("tier 4", (4_000, 4_000_000, 800_000), (4_000, 2_000_000, 400_000), 500_000),
    )
}


@dataclass(frozen=True)
class LedgerProfile:
    """What one row costs in requests and tokens (means over answered requests) in a sample's
    ledger; ``retry_share``: extra attempts per request, not billed but rate-limited."""

    rows: int
    requests: int
    primary_model: str
    escalation_model: str | None
    primary_input_tokens: float
    primary_output_tokens: float
    escalation_input_tokens: float
    escalation_output_tokens: float
    escalation_share: float
    retry_share: float


def profile_ledger(calls: pd.DataFrame) -> LedgerProfile:
    """Condense ``decision.llm_calls`` rows into a :class:`LedgerProfile` (the ``estimate``
    row, the pre-run ``count_tokens`` call, does not count)."""
    needed = {"user_id", "model", "purpose", "status", "attempts", "input_tokens", "output_tokens"}
    if missing := needed - set(calls.columns):
        raise SandboxError(
            f"the ledger lacks column(s) {', '.join(sorted(missing))}: pass rows of "
            "decision.llm_calls (select * from decision.llm_calls)"
        )
    work = calls[calls["purpose"].isin(["primary", "escalation"])]
    primary = work[work["purpose"] == "primary"]
    if primary.empty:
        raise SandboxError(
            "the ledger has no primary requests: run a sample first, e.g. "
            "run_llm_inference(date, batch_size=500), then read decision.llm_calls"
        )
    answered = work[work["status"].isin(["ok", "invalid", "unsafe"])]
    first = answered[answered["purpose"] == "primary"]
    second = answered[answered["purpose"] == "escalation"]
    if first.empty:
        raise SandboxError("no primary request of the sample was answered: nothing to project")
    rows = int(primary["user_id"].nunique())
    escalation = work[work["purpose"] == "escalation"]
    p_in, p_out = float(first["input_tokens"].mean()), float(first["output_tokens"].mean())
    return LedgerProfile(
        rows=rows,
        requests=len(work),
        primary_model=str(primary["model"].mode().iloc[0]),
        escalation_model=str(escalation["model"].mode().iloc[0]) if len(escalation) else None,
        primary_input_tokens=p_in,
        primary_output_tokens=p_out,
        escalation_input_tokens=float(second["input_tokens"].mean()) if len(second) else p_in,
        escalation_output_tokens=float(second["output_tokens"].mean()) if len(second) else p_out,
        escalation_share=len(escalation) / rows,
        retry_share=float((work["attempts"] - 1).clip(lower=0).sum()) / len(work),
    )


@dataclass(frozen=True)
class Projection:
    """The projected cost and time of one plan and mode for ``users`` rows; ``bound`` names
    what sets ``hours`` (batch: ``waves`` rounds of about an hour, ``max_hours`` at 24 h each)."""

    users: int
    plan: str
    mode: str
    requests: dict[str, float]
    input_tokens: dict[str, float]
    output_tokens: dict[str, float]
    cost_usd: float
    hours: float
    max_hours: float
    bound: str
    waves: int = 1

    def as_row(self) -> dict:
        """A flat dict (one row of a projection table)."""
        row = {name: getattr(self, name) for name in ("users", "plan", "mode")}
        for name in ("requests", "input_tokens", "output_tokens"):
            row[name] = round(sum(getattr(self, name).values()))
        for name in ("cost_usd", "hours", "max_hours"):
            row[name] = round(getattr(self, name), 2)
        return {**row, "bound": self.bound}


def _plan_models(
    profile: LedgerProfile, book: PriceBook, plan: str
) -> list[tuple[str, float, float, float]]:
    """(model id, requests per row, input tokens, output tokens per request) for a plan."""
    primary = book.get(profile.primary_model).id
    capable = book.get(profile.escalation_model or book.escalation).id
    p = (profile.primary_input_tokens, profile.primary_output_tokens)
    e = (profile.escalation_input_tokens, profile.escalation_output_tokens)
    if plan == "cheap":
        return [(primary, 1.0, *p)]
    if plan == "capable":
        return [(capable, 1.0, *p)]
    if plan == "escalation":
        return [(primary, 1.0, *p), (capable, profile.escalation_share, *e)]
    raise SandboxError(f"unknown plan {plan!r}: use one of {', '.join(PLANS)}")


def project(
    profile: LedgerProfile,
    users: int,
    *,
    book: PriceBook,
    tier: Tier,
    plan: str = "escalation",
    mode: str = "realtime",
    workers: int = 10,
    latency_s: float = 2.0,
) -> Projection:
    """Cost and time of ``plan`` in ``mode`` for ``users`` rows: realtime at most ``workers /
    latency_s`` requests per second and what the tier's limits allow (retries count, unbilled)."""
    if mode not in MODES:
        raise SandboxError(f"unknown mode {mode!r}: use realtime or batch")
    if users < 0 or workers < 1 or latency_s < 0:
        raise SandboxError("users must be >= 0, workers >= 1 and latency_s >= 0")
    discount = book.batch_discount if mode == "batch" else 1.0
    requests, tokens_in, tokens_out = Counter(), Counter(), Counter()
    cost = 0.0
    for model, per_row, t_in, t_out in _plan_models(profile, book, plan):
        n = users * per_row
        requests[model] += n
        tokens_in[model] += n * t_in
        tokens_out[model] += n * t_out
        cost += book.get(model).cost(n * t_in, n * t_out, discount=discount)
    if mode == "batch":
        # the engine sends every row to the primary model first, then escalates in a second
        # round; each round is split into waves that fit the tier's queue
        waves = sum(
            max(1, math.ceil(n / tier.batch_queue_requests)) for n in requests.values() if n > 0
        )
        bound = f"{waves} wave(s) of batches, at most {tier.batch_queue_requests:,} requests queued"
        return Projection(
            users, plan, mode, requests, tokens_in, tokens_out, cost,
            waves * BATCH_TYPICAL_HOURS, waves * BATCH_MAX_HOURS, bound, waves,
        )  # fmt: skip
    attempts = 1.0 + profile.retry_share
    minutes: dict[str, float] = {}  # what each of the tier's limits needs for the work
    for model, n in requests.items():
        limits, name = tier.for_model(model), book.get(model).label
        minutes[f"{name} requests/min"] = n * attempts / limits.requests_per_minute
        minutes[f"{name} input tokens/min"] = tokens_in[model] / limits.input_tokens_per_minute
        minutes[f"{name} output tokens/min"] = tokens_out[model] / limits.output_tokens_per_minute
    bound, slowest = max(minutes.items(), key=lambda kv: kv[1])
    concurrency = sum(requests.values()) * attempts * latency_s / workers / 60
    if concurrency > slowest * 1.001:  # too few workers to reach the limits
        bound, slowest = f"{workers} workers at {latency_s:g} s per request", concurrency
    hours = slowest / 60
    return Projection(users, plan, mode, requests, tokens_in, tokens_out, cost, hours, hours, bound)


def projection_table(
    profile: LedgerProfile, users: int, *, plans=PLANS, modes=MODES, **options
) -> pd.DataFrame:
    """Every plan x mode for ``users`` rows, one row each; ``options`` go to :func:`project`."""
    rows = [
        project(profile, users, plan=p, mode=m, **options).as_row() for p in plans for m in modes
    ]
    return pd.DataFrame(rows)


def workers_to_saturate(
    profile: LedgerProfile, *, book: PriceBook, tier: Tier, latency_s: float, plan: str = "cheap"
) -> int:
    """Concurrent requests that keep the tier's tightest limit busy (Little's law): at ``r``
    requests per second, ``r x latency_s`` in flight. More workers only collect 429s."""
    rates, requests_per_row = [], 0.0
    for model, per_row, t_in, t_out in _plan_models(profile, book, plan):
        if per_row <= 0:
            continue
        limits = tier.for_model(model)
        per_minute = min(
            limits.requests_per_minute,
            limits.input_tokens_per_minute / max(t_in, 1e-9),
            limits.output_tokens_per_minute / max(t_out, 1e-9),
        )
        rates.append(per_minute / 60 / per_row)  # rows per second this model allows
        requests_per_row += per_row
    return max(1, math.ceil(min(rates) * requests_per_row * latency_s))


def cache_report(book: PriceBook, prefix_tokens: int | Mapping[str, int]) -> pd.DataFrame:
    """Per model: the shared prompt prefix, the minimum it caches, and whether caching applies
    (below the minimum a ``cache_control`` marker is silently ignored: no discount, no error)."""
    rows = []
    for model in book.models.values():
        minimum = model.min_cacheable_prompt_tokens
        prefix = prefix_tokens if isinstance(prefix_tokens, int) else prefix_tokens[model.id]
        why = "prefix long enough; estimates still use list price"
        if prefix < minimum:
            why = f"prefix is {minimum - prefix:,} tokens short of the minimum"
        rows.append({"model": model.label, "shared_prefix_tokens": prefix,
                     "min_cacheable_tokens": minimum, "caching_applies": prefix >= minimum,
                     "why": why})  # fmt: skip
    return pd.DataFrame(rows)


def shared_prefix_tokens(
    book: PriceBook | None = None, client: anthropic.Anthropic | None = None
) -> dict[str, int]:
    """Per model id, the tokens every request shares (system prompt, schema, template), from
    the (free) count endpoint; characters / 4 when it fails."""

    client = client or make_client()
    counts = {}
    for model in (book or load_price_book()).models.values():
        try:
            counts[model.id] = count_tokens(client, model, "").prefix_tokens
        except (anthropic.APIStatusError, anthropic.APIConnectionError):
            counts[model.id] = approx_count().prefix_tokens
    return counts
