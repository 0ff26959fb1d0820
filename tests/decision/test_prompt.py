"""The prompt, the answer schema and the validation of every answer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from sandbox.decision.pricing import ModelPrice, load_price_book
from sandbox.decision.prompt import (
    MAX_REASONING_CHARS,
    MAX_TEXT_CHARS,
    OUTPUT_SCHEMA,
    PROMPT_VERSION,
    RECOMMENDATION_TYPES,
    InvalidAnswer,
    build_params,
    opaque_user_id,
    parse_answer,
    validate_answer,
)

GOOD = {
    "recommendation_type": "churn_risk",
    "recommendation_text": "Send a personal check-in.",
    "confidence_score": 0.8,
    "reasoning": "Inactive for 40 days.",
}
SUMMARY = "User has been on the pro plan for 123 days. Last active 2 days ago."


def message(text: str, stop_reason: str = "end_turn"):
    """A stand-in for ``anthropic.types.Message`` with one text block."""
    blocks = [SimpleNamespace(type="text", text=text)] if text else []
    return SimpleNamespace(content=blocks, stop_reason=stop_reason)


def test_a_valid_answer_parses() -> None:
    answer = parse_answer(message(json.dumps(GOOD)))
    assert answer.recommendation_type == "churn_risk"
    assert answer.confidence_score == 0.8


def test_json_in_a_code_fence_is_accepted() -> None:
    answer = parse_answer(message("```json\n" + json.dumps(GOOD) + "\n```"))
    assert answer.reasoning == "Inactive for 40 days."


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"confidence_score": 1.5}, "confidence_score"),
        ({"confidence_score": -0.1}, "confidence_score"),
        ({"confidence_score": True}, "confidence_score"),
        ({"confidence_score": "0.5"}, "confidence_score"),
        ({"recommendation_type": "discount_offer"}, "recommendation_type"),
        ({"recommendation_text": "   "}, "recommendation_text"),
        ({"recommendation_text": "x" * (MAX_TEXT_CHARS + 1)}, "recommendation_text"),
        ({"reasoning": "y" * (MAX_REASONING_CHARS + 1)}, "reasoning"),
        ({"reasoning": "First sentence. Second sentence."}, "reasoning"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_answers_are_rejected_with_the_field_named(change: dict, field: str) -> None:
    with pytest.raises(InvalidAnswer) as err:
        validate_answer({**GOOD, **change})
    assert err.value.error_class == "validation_error"
    assert field in str(err.value)


def test_a_missing_field_is_rejected() -> None:
    data = dict(GOOD)
    del data["reasoning"]
    with pytest.raises(InvalidAnswer, match="reasoning"):
        validate_answer(data)


def test_numbers_with_decimals_are_one_sentence() -> None:
    assert validate_answer({**GOOD, "reasoning": "Usage grew 2.5 times this week."})


@pytest.mark.parametrize(
    ("text", "stop", "kind"),
    [
        ('{"recommendation_type": "churn', "max_tokens", "max_tokens"),
        ("", "refusal", "refusal"),
        ("Here you go: {}", "end_turn", "invalid_json"),
        ("", "end_turn", "empty_answer"),
        (json.dumps(GOOD), "tool_use", "stop_reason"),
    ],
)
def test_stop_reason_is_checked_before_parsing(text: str, stop: str, kind: str) -> None:
    with pytest.raises(InvalidAnswer) as err:
        parse_answer(message(text, stop))
    assert err.value.error_class == kind
    assert err.value.raw_text == text


def test_prompt_version_is_a_short_stable_hash() -> None:
    assert len(PROMPT_VERSION) == 12
    int(PROMPT_VERSION, 16)


def test_schema_lists_the_four_types_and_forbids_extra_keys() -> None:
    assert OUTPUT_SCHEMA["properties"]["recommendation_type"]["enum"] == list(RECOMMENDATION_TYPES)
    assert OUTPUT_SCHEMA["additionalProperties"] is False
    assert set(OUTPUT_SCHEMA["required"]) == set(GOOD)


def test_only_the_summary_reaches_the_prompt() -> None:
    model = load_price_book().get("claude-haiku-4-5")
    params = build_params(model, "u42", SUMMARY)
    assert params["messages"] == [
        {"role": "user", "content": f"<user_summary>{SUMMARY}</user_summary>"}
    ]
    assert "u42" not in json.dumps(params)
    assert params["metadata"] == {"user_id": opaque_user_id("u42")}
    assert params["output_config"]["format"] == {"type": "json_schema", "schema": OUTPUT_SCHEMA}


def test_models_without_structured_outputs_get_the_prompt_only() -> None:
    plain = ModelPrice("old-model", "Old", 1.0, 1.0, structured_outputs=False)
    assert "output_config" not in build_params(plain, "u1", SUMMARY)


@pytest.mark.parametrize("model_id", sorted(load_price_book().models))
def test_every_configured_model_request_is_accepted_by_the_fake(model_id: str) -> None:
    """Swapping a model is a change to models.json: its request must pass the strict fake."""
    from sandbox.decision.clients import make_client

    model = load_price_book().get(model_id)
    params = build_params(model, "u42", SUMMARY)
    assert params["max_tokens"] == model.max_tokens
    for name, value in model.request.items():
        if name == "output_config":
            assert value.items() <= params["output_config"].items()
        else:
            assert params[name] == value
    message = make_client("mock", max_retries=0).messages.create(**params)
    assert parse_answer(message).recommendation_type in RECOMMENDATION_TYPES


def test_the_primary_model_turns_adaptive_thinking_off() -> None:
    book = load_price_book()
    params = build_params(book.get(book.primary), "u1", SUMMARY)
    assert params["thinking"] == {"type": "disabled"}  # Claude Haiku 5.5 thinks by default
    assert params["max_tokens"] >= 300


def test_token_counts_come_from_the_count_endpoint_in_the_model_s_tokenizer() -> None:
    from sandbox.decision.clients import make_client
    from sandbox.decision.prompt import count_tokens, prefix_chars

    book = load_price_book()
    params = build_params(book.get(book.primary), "u1", SUMMARY)
    client = make_client("mock", max_retries=0)
    new = count_tokens(client, book.get(book.primary), SUMMARY)
    old = count_tokens(client, book.get("claude-haiku-4-5"), SUMMARY)
    assert new.counted and old.counted
    assert old.prefix_tokens == -(-prefix_chars() // 4)  # Haiku 4.5 in the fake: characters / 4
    assert new.prefix_tokens / old.prefix_tokens == pytest.approx(1.3, abs=0.01)
    billed = client.messages.create(**params).usage.input_tokens
    assert new.tokens(SUMMARY) == billed


def test_the_escalation_model_turns_adaptive_thinking_off() -> None:
    book = load_price_book()
    params = build_params(book.get(book.escalation), "u1", SUMMARY)
    assert params["thinking"] == {"type": "between_tools"}  # Sonnet 5.5 rejects "disabled"
    assert params["output_config"]["effort"] == "low"
    assert params["output_config"]["format"]["type"] == "json_schema"


REALISTIC = [
    "Active 3 days vs. 12 last month, e.g. reports and exports only.",
    "25 events in 7 days (approx. 3.6 a day) on the starter plan means they outgrew it.",
    "Usage grew 2.5x since Oct. 3, i.e. they rely on the product daily.",
    "Last seen 41 days ago on the pro plan, a strong churn signal.",
]
MULTI = [
    "They were active last month. Now they are gone.",
    "Idle for 40 days! Likely to churn.",
    "Usage fell 40%. Engagement e.g. dashboards dropped too.",
    "Two event types only.\nMore to explore.",
]


@pytest.mark.parametrize("reasoning", REALISTIC)
def test_ordinary_prose_is_one_sentence(reasoning: str) -> None:
    assert validate_answer({**GOOD, "reasoning": reasoning}).reasoning == reasoning


@pytest.mark.parametrize("reasoning", MULTI)
def test_multi_sentence_reasoning_is_still_rejected(reasoning: str) -> None:
    with pytest.raises(InvalidAnswer, match="one sentence"):
        validate_answer({**GOOD, "reasoning": reasoning})


@pytest.mark.parametrize("score", [1, 0, 0.5])
def test_integer_confidences_are_numbers(score) -> None:
    assert validate_answer({**GOOD, "confidence_score": score}).confidence_score == float(score)


@pytest.mark.parametrize(
    "text",
    [
        *REALISTIC,
        *MULTI,
        "Quiet since Oct.\t4 (two weeks).",
        'They said "done!" Then left.',
        "Stopped (see logs.) Back soon?",
        "Idle?!  'Maybe' not.",
        "  Active daily.  ",
        "No end mark here",
    ],
)
def test_the_quick_scan_misses_no_sentence_end(text: str) -> None:
    # sentences() answers 1 without the full scan when _MAYBE_END finds nothing
    from sandbox.decision.prompt import _MAYBE_END, _SENTENCE_END

    ends = list(_SENTENCE_END.finditer(text.strip()))
    assert bool(_MAYBE_END.search(text.strip())) or not ends
    assert all(_MAYBE_END.search(m.group(0)) for m in ends)
