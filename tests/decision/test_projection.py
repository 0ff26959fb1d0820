"""Projections from a ledger: the arithmetic, the rate limits, and where caching applies."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sandbox.config import SandboxError
from sandbox.decision import projection as pj
from sandbox.decision.pricing import load_price_book

BOOK = load_price_book()
HAIKU = BOOK.get(BOOK.primary)
SONNET = BOOK.get(BOOK.escalation)


def ledger(rows: int = 100, escalated: int = 40, retried: int = 10) -> pd.DataFrame:
    """A ledger like decision.llm_calls: an estimate row, one primary request per row,
    an escalation request for the first ``escalated`` rows; ``retried`` primaries took 2 attempts."""
    calls = [
        {"user_id": "u0000", "model": HAIKU.id, "purpose": "estimate", "status": "ok", "attempts": 1,
         "input_tokens": 999, "output_tokens": 0, "latency_ms": None}
    ]  # fmt: skip
    for i in range(rows):
        calls.append(
            {"user_id": f"u{i:04d}", "model": HAIKU.id, "purpose": "primary", "status": "ok",
             "attempts": 2 if i < retried else 1, "input_tokens": 400 + (i % 2) * 20,
             "output_tokens": 60, "latency_ms": 1500.0}
        )  # fmt: skip
        if i < escalated:
            calls.append(
                {"user_id": f"u{i:04d}", "model": SONNET.id, "purpose": "escalation",
                 "status": "ok", "attempts": 1, "input_tokens": 410, "output_tokens": 80,
                 "latency_ms": 2500.0}
            )  # fmt: skip
    return pd.DataFrame(calls)


@pytest.fixture
def profile() -> pj.LedgerProfile:
    return pj.profile_ledger(ledger())


def test_profile_condenses_the_ledger(profile: pj.LedgerProfile) -> None:
    assert profile.rows == 100 and profile.requests == 140  # the estimate row is not a request
    assert profile.primary_model == HAIKU.id and profile.escalation_model == SONNET.id
    assert profile.primary_input_tokens == 410 and profile.primary_output_tokens == 60
    assert profile.escalation_input_tokens == 410 and profile.escalation_output_tokens == 80
    assert profile.escalation_share == pytest.approx(0.4)
    assert profile.retry_share == pytest.approx(10 / 140)


def test_profile_without_escalations_prices_the_capable_model_like_the_primary() -> None:
    profile = pj.profile_ledger(ledger(escalated=0))
    assert profile.escalation_share == 0 and profile.escalation_model is None
    assert profile.escalation_input_tokens == profile.primary_input_tokens


def test_profile_refuses_what_is_not_a_ledger() -> None:
    with pytest.raises(SandboxError, match="lacks column"):
        pj.profile_ledger(pd.DataFrame({"user_id": ["u1"]}))
    with pytest.raises(SandboxError, match="no primary requests"):
        pj.profile_ledger(ledger().query("purpose == 'estimate'"))


def test_cost_is_tokens_times_list_price(profile: pj.LedgerProfile) -> None:
    tier = pj.TIERS["tier 2"]
    per_row_haiku = HAIKU.cost(410, 60)
    cheap = pj.project(profile, 1_000_000, book=BOOK, tier=tier, plan="cheap")
    assert cheap.cost_usd == pytest.approx(1_000_000 * per_row_haiku)
    capable = pj.project(profile, 1_000_000, book=BOOK, tier=tier, plan="capable")
    assert capable.cost_usd == pytest.approx(1_000_000 * SONNET.cost(410, 60))
    both = pj.project(profile, 1_000_000, book=BOOK, tier=tier, plan="escalation")
    assert both.cost_usd == pytest.approx(1_000_000 * (per_row_haiku + 0.4 * SONNET.cost(410, 80)))
    assert both.requests == {HAIKU.id: 1_000_000, SONNET.id: pytest.approx(400_000)}
    assert cheap.cost_usd < both.cost_usd < capable.cost_usd


def test_batch_bills_the_discount_and_grows_linearly(profile: pj.LedgerProfile) -> None:
    tier = pj.TIERS["tier 3"]
    for plan in pj.PLANS:
        realtime = pj.project(profile, 500_000, book=BOOK, tier=tier, plan=plan)
        batch = pj.project(profile, 500_000, book=BOOK, tier=tier, plan=plan, mode="batch")
        assert batch.cost_usd == pytest.approx(realtime.cost_usd * BOOK.batch_discount)
        double = pj.project(profile, 1_000_000, book=BOOK, tier=tier, plan=plan)
        assert double.cost_usd == pytest.approx(2 * realtime.cost_usd)
        assert pj.project(profile, 0, book=BOOK, tier=tier, plan=plan).cost_usd == 0


def test_realtime_time_is_the_tightest_limit(profile: pj.LedgerProfile) -> None:
    tier = pj.Tier("t", {"haiku": pj.RateLimits(1_000, 10_000_000, 10_000_000)}, 100_000)
    p = pj.project(
        profile, 600_000, book=BOOK, tier=tier, plan="cheap", workers=10_000, latency_s=1
    )
    attempts = 1 + profile.retry_share  # retried requests count against requests/min
    assert p.hours == pytest.approx(600_000 * attempts / 1_000 / 60)
    assert p.bound == f"{HAIKU.label} requests/min"
    tight = pj.Tier("t", {"haiku": pj.RateLimits(1_000_000, 41_000, 10_000_000)}, 100_000)
    p = pj.project(
        profile, 600_000, book=BOOK, tier=tight, plan="cheap", workers=10_000, latency_s=1
    )
    assert p.hours == pytest.approx(600_000 * 410 / 41_000 / 60)
    assert p.bound == f"{HAIKU.label} input tokens/min"


def test_too_few_workers_bind_before_the_limits(profile: pj.LedgerProfile) -> None:
    tier = pj.TIERS["tier 4"]
    p = pj.project(profile, 100_000, book=BOOK, tier=tier, plan="cheap", workers=2, latency_s=2)
    assert p.bound == "2 workers at 2 s per request"
    assert p.hours == pytest.approx(100_000 * (1 + profile.retry_share) * 2 / 2 / 3600)


def test_workers_to_saturate_is_littles_law(profile: pj.LedgerProfile) -> None:
    tier = pj.TIERS["tier 3"]  # Haiku: 2,000 requests/min bind (1,000,000 / 410 tokens is more)
    need = pj.workers_to_saturate(profile, book=BOOK, tier=tier, latency_s=3, plan="cheap")
    assert need == math.ceil(2_000 / 60 * 3)
    at = pj.project(
        profile, 1_000_000, book=BOOK, tier=tier, plan="cheap", workers=need, latency_s=3
    )
    more = pj.project(
        profile, 1_000_000, book=BOOK, tier=tier, plan="cheap", workers=4 * need, latency_s=3
    )
    fewer = pj.project(
        profile, 1_000_000, book=BOOK, tier=tier, plan="cheap", workers=need // 2, latency_s=3
    )
    assert "requests/min" in at.bound and at.hours == more.hours
    assert "workers" in fewer.bound and fewer.hours > at.hours


def test_batch_goes_in_waves_that_fit_the_queue(profile: pj.LedgerProfile) -> None:
    tier = pj.TIERS["tier 2"]  # 200,000 requests in the queue
    cheap = pj.project(profile, 1_000_000, book=BOOK, tier=tier, plan="cheap", mode="batch")
    assert cheap.waves == 5 and cheap.hours == 5 * pj.BATCH_TYPICAL_HOURS
    assert cheap.max_hours == 5 * pj.BATCH_MAX_HOURS
    both = pj.project(profile, 1_000_000, book=BOOK, tier=tier, plan="escalation", mode="batch")
    assert both.waves == 5 + 2  # escalations wait for their primary answers: a second round


def test_projection_table_has_every_plan_and_mode(profile: pj.LedgerProfile) -> None:
    table = pj.projection_table(profile, 10_000, book=BOOK, tier=pj.TIERS["tier 1"])
    assert len(table) == len(pj.PLANS) * len(pj.MODES)
    assert set(table.columns) >= {"plan", "mode", "requests", "cost_usd", "hours", "bound"}


def test_bad_inputs_name_the_fix(profile: pj.LedgerProfile) -> None:
    tier = pj.TIERS["tier 1"]
    with pytest.raises(SandboxError, match="unknown plan"):
        pj.project(profile, 10, book=BOOK, tier=tier, plan="cheapest")
    with pytest.raises(SandboxError, match="unknown mode"):
        pj.project(profile, 10, book=BOOK, tier=tier, mode="stream")
    with pytest.raises(SandboxError, match="no rate limits"):
        pj.Tier("only opus", {"opus": pj.RateLimits(1, 1, 1)}, 1).for_model(HAIKU.id)


def test_caching_applies_only_from_each_models_minimum() -> None:
    short = pj.cache_report(BOOK, 441).set_index("model")["caching_applies"]
    assert not short.any()
    middle = pj.cache_report(BOOK, 2_000).set_index("model")["caching_applies"]
    assert middle[SONNET.label] and not middle[HAIKU.label]  # 1,024 vs 4,096 tokens
    assert pj.cache_report(BOOK, 4_096)["caching_applies"].all()


def test_the_shared_prefix_is_counted_in_each_models_tokenizer() -> None:
    prefix = pj.shared_prefix_tokens(BOOK)
    assert set(prefix) == set(BOOK.models)
    # the 5.5 models' tokenizer counts ~30 % more tokens for the same text
    assert prefix[HAIKU.id] > prefix["claude-haiku-4-5-20251001"] > 100
    report = pj.cache_report(BOOK, prefix).set_index("model")
    assert report.loc[HAIKU.label, "shared_prefix_tokens"] == prefix[HAIKU.id]
    assert not report.loc[HAIKU.label, "caching_applies"]  # 4,096-token minimum
