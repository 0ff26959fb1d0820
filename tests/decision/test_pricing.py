"""Prices, the cost estimate and the budget guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.config import SandboxError
from sandbox.decision.pricing import (
    Budget,
    TokenCount,
    approx_tokens,
    cache_note,
    estimate_cost,
    load_price_book,
)

HAIKU = "claude-haiku-4-5-20251001"
HAIKU_5_5 = "claude-haiku-5-5"
SONNET = "claude-sonnet-5-5"


def test_the_price_file_names_the_default_tiers() -> None:
    book = load_price_book()
    assert book.get(book.primary).id == HAIKU_5_5
    assert book.get(book.escalation).id == SONNET
    assert book.batch_discount == 0.5


def test_list_prices_per_million_tokens() -> None:
    book = load_price_book()
    assert book.get(HAIKU_5_5).cost(1_000_000, 0) == pytest.approx(0.10)
    assert book.get(HAIKU_5_5).cost(0, 1_000_000) == pytest.approx(0.50)
    assert book.get(HAIKU_5_5).cost(600, 150, discount=book.batch_discount) == pytest.approx(
        (60e-6 + 75e-6) / 2
    )
    assert book.get(HAIKU).cost(1_000_000, 0) == pytest.approx(1.0)
    assert book.get(HAIKU).cost(0, 1_000_000) == pytest.approx(5.0)
    assert book.get(SONNET).cost(1_000_000, 1_000_000) == pytest.approx(12.0)
    assert book.get(HAIKU).cost(400, 100) == pytest.approx(400e-6 + 500e-6)


def test_the_former_primary_stays_legacy_so_old_rows_keep_their_prices() -> None:
    book = load_price_book()
    assert book.get("claude-haiku-4-5").status == "legacy"
    assert book.get(HAIKU_5_5).status == "active"
    assert book.get(HAIKU_5_5).request == {"thinking": {"type": "disabled"}}
    assert [book.get(m).min_cacheable_prompt_tokens for m in (HAIKU, HAIKU_5_5, SONNET)] == [
        4096,
        4096,
        512,
    ]


def test_a_token_count_is_a_prefix_plus_a_rate_per_character() -> None:
    guess = TokenCount(prefix_tokens=441)
    assert not guess.counted and guess.tokens("x" * 100) == 441 + 25
    counted = TokenCount(prefix_tokens=573, tokens_per_char=0.325, counted=True)
    assert counted.tokens("x" * 40) == 573 + 13  # no float noise: 40 x 0.325 is 13


def test_batch_price_is_half() -> None:
    book = load_price_book()
    assert book.get(SONNET).cost(2000, 300, discount=book.batch_discount) == pytest.approx(
        book.get(SONNET).cost(2000, 300) / 2
    )


def test_aliases_resolve_and_unknown_models_say_where_prices_live() -> None:
    book = load_price_book()
    assert book.get("claude-haiku-4-5").id == HAIKU
    with pytest.raises(SandboxError, match=r"models\.json"):
        book.get("claude-imaginary-9")


def test_a_broken_price_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": {}}))
    with pytest.raises(SandboxError, match="cannot read the price file"):
        load_price_book(path)


def test_approx_tokens_rounds_up() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("abcd") == 1
    assert approx_tokens("abcde") == 2


def test_estimate_arithmetic() -> None:
    book = load_price_book()
    est = estimate_cost(
        book,
        primary=HAIKU,
        escalation=SONNET,
        input_tokens=[500, 500],
        expected_output_tokens=100,
        max_output_tokens=300,
        batch=False,
        prefix_tokens=450,
        escalation_share=0.5,
    )
    haiku_expected = (1000 * 1 + 200 * 5) / 1e6
    sonnet_expected = (1000 * 2 + 200 * 10) / 1e6
    assert est.expected_usd == pytest.approx(haiku_expected + 0.5 * sonnet_expected)
    assert est.worst_usd == pytest.approx((1000 * 1 + 600 * 5 + 1000 * 2 + 600 * 10) / 1e6)
    batch = estimate_cost(
        book,
        primary=HAIKU,
        escalation=None,
        input_tokens=[500, 500],
        expected_output_tokens=100,
        max_output_tokens=300,
        batch=True,
        prefix_tokens=450,
    )
    assert batch.expected_usd == pytest.approx(haiku_expected / 2)
    assert "no prompt-cache discount" in batch.render()


def test_cache_note_names_the_minimum() -> None:
    haiku = load_price_book().get(HAIKU)
    assert "4,096" in cache_note(haiku, 450)
    assert "long enough" in cache_note(haiku, 5000)


def test_budget_admits_work_while_the_worst_case_fits() -> None:
    budget = Budget(1.0)
    assert budget.reserve(0.4) and budget.reserve(0.4)
    assert not budget.reserve(0.4)  # 0.8 reserved + 0.4 > 1.0
    assert budget.refused
    budget.settle(0.4, 0.1)  # finished for less than its worst case
    assert budget.reserve(0.4)  # 0.1 spent + 0.4 + 0.4 reserved <= 1.0
    assert budget.spent_usd == pytest.approx(0.1)


def test_no_budget_admits_everything() -> None:
    budget = Budget(None)
    assert all(budget.reserve(100.0) for _ in range(5))


def test_estimate_above_the_budget_is_refused_before_sending() -> None:
    book = load_price_book()
    est = estimate_cost(
        book,
        primary=HAIKU,
        escalation=None,
        input_tokens=[500] * 1000,
        expected_output_tokens=100,
        max_output_tokens=300,
        batch=False,
        prefix_tokens=450,
    )
    Budget(1.01).check_estimate(est)
    with pytest.raises(SandboxError, match=r"exceeds --max-cost-usd 0\.5.*--mode batch"):
        Budget(0.5).check_estimate(est)


def test_negative_budget_is_an_error() -> None:
    with pytest.raises(SandboxError):
        Budget(-1)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 0.0, -0.5], ids=str)
def test_a_budget_that_is_not_a_positive_number_is_refused(value: float) -> None:
    with pytest.raises(SandboxError, match="must be a positive number of dollars"):
        Budget(value)


def test_every_model_in_the_file_is_current_or_marked_legacy() -> None:
    from sandbox.decision.pricing import MODELS_FILE

    raw = json.loads(MODELS_FILE.read_text())
    assert raw["checked"] and raw["source"].startswith("https://")
    book = load_price_book()
    assert book.get(book.escalation).status == "active"  # never a legacy escalation model
    for model in book.models.values():
        assert model.status in ("active", "legacy")
        assert model.max_tokens >= 300
