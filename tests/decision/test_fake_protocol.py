"""The offline fake speaks the Messages API's contract: auth, headers, limits, strict params."""

from __future__ import annotations

import json
import math
from pathlib import Path

import anthropic
import httpx2
import pytest

from sandbox.config import SandboxError
from sandbox.decision.fake import FakeMessagesAPI, Faults
from sandbox.decision.fake import limits as fake_limits
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import OUTPUT_SCHEMA, build_params, parse_answer
from tests.decision.conftest import Clock, client_for, summary_for

BOOK = load_price_book()
HAIKU = BOOK.get("claude-haiku-4-5")
SUMMARY = summary_for("pro", 9, 1, 3, 2)


def raw_post(fake: FakeMessagesAPI, path: str, body: dict, headers: dict) -> httpx2.Response:
    """A POST without the SDK (to leave out headers it always sends)."""
    with httpx2.Client(transport=httpx2.MockTransport(fake.handle)) as raw:
        return raw.post(f"https://api.anthropic.com{path}", json=body, headers=headers)


def params(**changes) -> dict:
    return {**build_params(HAIKU, "u1", SUMMARY), **changes}


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- auth, version, request ids, error shape ------------------------------------------------


def test_without_an_api_key_the_answer_is_401_in_the_error_shape() -> None:
    response = raw_post(
        FakeMessagesAPI(), "/v1/messages", params(), {"anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert body["request_id"] == response.headers["request-id"]
    assert body["request_id"].startswith("req_")


@pytest.mark.parametrize("auth", [{"x-api-key": "k"}, {"authorization": "Bearer k"}])
def test_anthropic_version_is_required(auth: dict) -> None:
    fake = FakeMessagesAPI()
    response = raw_post(fake, "/v1/messages", params(), auth)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    ok = raw_post(fake, "/v1/messages", params(), {**auth, "anthropic-version": "2023-06-01"})
    assert ok.status_code == 200


def test_every_response_carries_a_request_id_and_rate_limit_headers() -> None:
    client = client_for(FakeMessagesAPI())
    raw = client.messages.with_raw_response.create(**params())
    ids = {raw.headers["request-id"]}
    assert raw.parse()._request_id == raw.headers["request-id"]
    for name in ("requests", "tokens", "input-tokens", "output-tokens"):
        assert int(raw.headers[f"anthropic-ratelimit-{name}-limit"]) > 0
        assert int(raw.headers[f"anthropic-ratelimit-{name}-remaining"]) >= 0
        assert raw.headers[f"anthropic-ratelimit-{name}-reset"].endswith("Z")
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(**params(model="claude-nope"))
    ids.add(err.value.request_id)
    assert "anthropic-ratelimit-requests-remaining" in err.value.response.headers
    counted = client.messages.with_raw_response.count_tokens(
        model=HAIKU.id, messages=[{"role": "user", "content": "hi"}]
    )
    ids.add(counted.headers["request-id"])
    assert len(ids) == 3  # a fresh id per response


# -- sizes ----------------------------------------------------------------------------------


def test_a_request_over_32_mb_is_413_request_too_large(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    client = client_for(FakeMessagesAPI(request_log=log), max_retries=2)
    huge = "x" * (32 * 1024 * 1024 + 1)
    with pytest.raises(anthropic.APIStatusError) as err:
        client.messages.create(**params(messages=[{"role": "user", "content": huge}]))
    assert err.value.status_code == 413
    assert err.value.body["error"]["type"] == "request_too_large"
    assert len(log_lines(log)) == 1  # not retried


def test_a_batch_body_has_its_own_256_mb_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fake_limits.MAX_BATCH_BYTES == 256 * 1024 * 1024
    assert fake_limits.MAX_REQUEST_BYTES == 32 * 1024 * 1024
    from sandbox.decision.fake import server

    monkeypatch.setattr(server, "MAX_BATCH_BYTES", 4000)
    client = client_for(FakeMessagesAPI())
    small = [{"custom_id": "a", "params": params()}]
    assert client.messages.batches.create(requests=small).processing_status == "in_progress"
    big = [{"custom_id": f"r{i}", "params": params()} for i in range(3)]
    with pytest.raises(anthropic.APIStatusError) as err:
        client.messages.batches.create(requests=big)
    assert (err.value.status_code, err.value.body["error"]["type"]) == (413, "request_too_large")


# -- strict parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temperature": 0.2}, "temperature: this parameter was removed"),
        ({"top_k": 5}, "top_k: this parameter was removed"),
        ({"output_format": {"type": "json_schema"}}, "output_format: this parameter was removed"),
        ({"max_token": 300}, "max_token: Extra inputs are not permitted"),
        ({"metadata": {"user_id": "x", "team": "y"}}, "metadata.team: Extra inputs"),
        ({"max_tokens": 0}, "max_tokens: Input should be a positive integer"),
        ({"max_tokens": 10**6}, "maximum allowed number of output tokens"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "greater than or equal to 1024"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "must be greater than"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"output_config": {"effort": "huge"}}, "output_config.effort"),
        ({"stream": True}, "does not stream"),
    ],
)
def test_unknown_removed_and_malformed_parameters_are_400(change: dict, message: str) -> None:
    client = client_for(FakeMessagesAPI(), max_retries=3)
    unknown_to_the_sdk = {k: v for k, v in change.items() if k not in params()}
    known = {k: v for k, v in change.items() if k not in unknown_to_the_sdk}
    if "thinking" in known or "stream" in known or "output_config" in known:
        unknown_to_the_sdk, known = change, {}  # sent as is, past the SDK's own typing
    with pytest.raises(anthropic.BadRequestError, match=message) as err:
        client.messages.create(**params(**known), extra_body=unknown_to_the_sdk or None)
    assert err.value.body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("missing", ["model", "max_tokens", "messages"])
def test_missing_required_parameters_are_400(missing: str) -> None:
    body = params()
    del body[missing]
    response = raw_post(
        FakeMessagesAPI(),
        "/v1/messages",
        body,
        {"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == f"{missing}: Field required"


def test_an_unknown_model_is_404_not_found() -> None:
    client = client_for(FakeMessagesAPI(), max_retries=3)
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(**params(model="claude-nope-1"))
    assert err.value.body["error"] == {"type": "not_found_error", "message": "model: claude-nope-1"}


def test_every_configured_model_and_its_options_are_accepted() -> None:
    client = client_for(FakeMessagesAPI())
    for model in BOOK.models.values():
        for name in (model.id, *model.aliases):
            msg = client.messages.create(**{**build_params(model, "u1", SUMMARY), "model": name})
            assert parse_answer(msg).recommendation_type == "feature_discovery"


def schema_with(**recommendation_text: object) -> dict:
    schema = json.loads(json.dumps(OUTPUT_SCHEMA))
    schema["properties"]["recommendation_text"].update(recommendation_text)
    return schema


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (schema_with(maxLength=300), "property 'maxLength' is not supported"),
        (schema_with(minLength=1), "property 'minLength' is not supported"),
        (
            {**OUTPUT_SCHEMA, "properties": {"x": {"type": "number", "minimum": 0}}},
            "For 'number' type, property 'minimum' is not supported",
        ),
        (
            {**OUTPUT_SCHEMA, "properties": {"x": {"type": "integer", "maximum": 9}}},
            "property 'maximum' is not supported",
        ),
        (
            {**OUTPUT_SCHEMA, "properties": {"x": {"type": "array", "minItems": 2}}},
            "minItems values other than 0 or 1",
        ),
        ({**OUTPUT_SCHEMA, "additionalProperties": True}, "'additionalProperties' must be"),
        (schema_with(format="phone"), "string format 'phone' is not supported"),
    ],
)
def test_schema_keywords_structured_outputs_reject_are_400(schema: dict, message: str) -> None:
    client = client_for(FakeMessagesAPI())
    fmt = {"format": {"type": "json_schema", "schema": schema}}
    with pytest.raises(anthropic.BadRequestError, match=message):
        client.messages.create(**params(output_config=fmt))
    with pytest.raises(anthropic.BadRequestError, match=message):  # count_tokens checks too
        client.messages.count_tokens(
            model=HAIKU.id, messages=[{"role": "user", "content": "hi"}], output_config=fmt
        )


def test_the_engine_schema_is_accepted_as_sent() -> None:
    client = client_for(FakeMessagesAPI())
    fmt = {"format": {"type": "json_schema", "schema": OUTPUT_SCHEMA}}
    assert client.messages.create(**params(output_config=fmt)).stop_reason == "end_turn"


def test_count_tokens_takes_no_max_tokens_or_metadata() -> None:
    client = client_for(FakeMessagesAPI())
    messages = [{"role": "user", "content": "hi"}]
    assert client.messages.count_tokens(model=HAIKU.id, messages=messages).input_tokens == 1
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Extra inputs"):
        client.messages.count_tokens(
            model=HAIKU.id, messages=messages, extra_body={"max_tokens": 10}
        )


# -- faults: invalid requests, slow answers, the sliding window -----------------------------


def test_invalid_request_fault_is_a_400_on_every_attempt_for_the_same_users(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log.jsonl"
    fake = FakeMessagesAPI(faults=Faults.parse("invalid_request=0.5"), request_log=log)
    client = client_for(fake, max_retries=3)
    hit = set()
    for i in range(40):
        try:
            client.messages.create(**build_params(HAIKU, f"u{i}", SUMMARY))
        except anthropic.BadRequestError as exc:
            assert exc.body["error"]["type"] == "invalid_request_error"
            hit.add(i)
    assert 8 <= len(hit) <= 32
    assert len(log_lines(log)) == 40  # a 400 is never retried
    for i in sorted(hit)[:3]:
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(**build_params(HAIKU, f"u{i}", SUMMARY))


def test_a_slow_answer_outlasts_the_client_timeout_and_is_billed(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    fake = FakeMessagesAPI(faults=Faults.parse("slow=1"), request_log=log)
    with pytest.raises(anthropic.APITimeoutError):
        client_for(fake, max_retries=0, timeout=0.05).messages.create(**params())
    entry = log_lines(log)[0]
    assert (entry["status"], entry["fault"]) == ("timeout", "slow")
    assert entry["billed_output_tokens"] > 0  # the API did the work the client never saw
    # the SDK's retry (attempt 1) is not slow, so a retrying client gets the answer
    raw = client_for(fake, max_retries=1, timeout=0.05).messages.with_raw_response.create(
        **params()
    )
    assert raw.retries_taken == 1 and raw.parse().stop_reason == "end_turn"


def test_a_slow_answer_within_the_client_timeout_arrives() -> None:
    fake = FakeMessagesAPI(faults=Faults.parse("slow=1,slow_s=0.01"))
    msg = client_for(fake, max_retries=0, timeout=30).messages.create(**params())
    assert msg.stop_reason == "end_turn"


def test_rpm_is_a_sliding_window_with_a_realistic_retry_after() -> None:
    clock = Clock()
    fake = FakeMessagesAPI(faults=Faults.parse("rpm=3"), clock=clock)
    client = client_for(fake)
    remaining = []
    for _ in range(3):
        raw = client.messages.with_raw_response.create(**params())
        remaining.append(int(raw.headers["anthropic-ratelimit-requests-remaining"]))
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "3"
        clock.t += 10
    assert remaining == [2, 1, 0]
    with pytest.raises(anthropic.RateLimitError) as err:
        client.messages.create(**params())
    assert err.value.response.headers["retry-after"] == "30"  # oldest leaves at +60 s
    assert err.value.body["error"]["type"] == "rate_limit_error"
    clock.t += 30  # the first request leaves the window; the second is still in it
    client.messages.create(**params())
    with pytest.raises(anthropic.RateLimitError) as err:
        client.messages.create(**params())
    assert err.value.response.headers["retry-after"] == "10"


def test_rpm_waits_are_honoured_by_the_sdk_retry() -> None:
    clock = Clock()
    fake = FakeMessagesAPI(faults=Faults.parse("rpm=1"), clock=clock)
    client = client_for(fake, max_retries=0)
    client.messages.create(**params())
    with pytest.raises(anthropic.RateLimitError) as err:
        client.messages.create(**params())
    assert float(err.value.response.headers["retry-after"]) >= 1
    clock.t += 61
    assert client.messages.create(**params()).stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rpm=0", "rpm=0 must be a whole number"),
        ("rpm=2.5", "rpm=2.5 must be a whole number"),
        ("slow_s=-1", "slow_s=-1 must be 0 or more"),
        ("batch_create_lost=0.7,batch_create_timeout=0.7", "add up to"),
        ("rate_limit=inf", "kind=number"),
    ],
)
def test_new_fault_options_reject_bad_values(spec: str, message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        Faults.parse(spec)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_BATCH_SECONDS", "0")
    monkeypatch.setenv("SANDBOX_MOCK_CLOCK_OFFSET_S", "86400")
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "5")
    fake = FakeMessagesAPI.from_env()
    assert (fake.batch_seconds, fake.clock_offset_s, fake.latency_s) == (0.0, 86400.0, 0.005)
    monkeypatch.setenv("SANDBOX_MOCK_BATCH_SECONDS", "soon")
    with pytest.raises(SandboxError, match="SANDBOX_MOCK_BATCH_SECONDS='soon'"):
        FakeMessagesAPI.from_env()


# -- thinking -------------------------------------------------------------------------------


def test_adaptive_thinking_by_default_eats_max_tokens() -> None:
    from sandbox.decision.fake.thinking import ADAPTIVE_BY_DEFAULT

    assert {"claude-haiku-5-5", "claude-sonnet-5-5"} <= ADAPTIVE_BY_DEFAULT
    client = client_for(FakeMessagesAPI())
    base = {**params(), "model": "claude-sonnet-5-5", "max_tokens": 300}
    base.pop("thinking", None)
    msg = client.messages.create(**base)  # says nothing about thinking: the model thinks
    assert msg.content[0].type == "thinking"
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 300
    with pytest.raises(anthropic.BadRequestError, match="'disabled' is not supported"):
        client.messages.create(**{**base, "thinking": {"type": "disabled"}})
    quiet = client.messages.create(**{**base, "thinking": {"type": "between_tools"}})
    assert [b.type for b in quiet.content] == ["text"] and quiet.stop_reason == "end_turn"


def test_haiku_5_5_thinks_unless_turned_off_and_refuses_a_thinking_budget() -> None:
    client = client_for(FakeMessagesAPI())
    base = {**params(), "model": "claude-haiku-5-5", "max_tokens": 300}
    base.pop("thinking", None)
    thought = client.messages.create(**base)  # adaptive thinking is on by default
    assert [b.type for b in thought.content][0] == "thinking"
    off = client.messages.create(**{**base, "thinking": {"type": "disabled"}})
    assert [b.type for b in off.content] == ["text"] and off.stop_reason == "end_turn"
    assert parse_answer(off).recommendation_type == "feature_discovery"
    xhigh = {**base["output_config"], "effort": "xhigh"}
    with pytest.raises(anthropic.BadRequestError, match="at effort 'xhigh'"):
        client.messages.create(**{**base, "thinking": {"type": "disabled"}, "output_config": xhigh})
    budget = {"type": "enabled", "budget_tokens": 1024}
    for model in ("claude-haiku-5-5", "claude-sonnet-5-5"):
        with pytest.raises(anthropic.BadRequestError, match="'enabled' is not supported"):
            client.messages.create(**{**base, "model": model, "max_tokens": 2000, "thinking": budget})


def test_the_newer_tokenizer_counts_about_30_percent_more_tokens() -> None:
    fake = FakeMessagesAPI()
    client = client_for(fake)
    old = params()
    new = {**old, "model": "claude-haiku-5-5", "thinking": {"type": "disabled"}}
    counted = {k: new[k] for k in ("model", "system", "messages", "output_config")}
    tokens = client.messages.count_tokens(**counted).input_tokens
    before = client.messages.create(**old).usage.input_tokens  # Claude Haiku 4.5
    assert tokens == fake.input_tokens(new) and tokens / before == pytest.approx(1.3, abs=0.01)
    answer = client.messages.create(**new)
    assert answer.usage.input_tokens == tokens  # the count is what the request is billed
    text = answer.content[0].text
    assert answer.usage.output_tokens == math.ceil(len(text) / 4 * 1.3)


def test_enabled_thinking_spends_at_most_its_budget() -> None:
    client = client_for(FakeMessagesAPI())
    thinking = {"type": "enabled", "budget_tokens": 1024}
    msg = client.messages.create(**params(max_tokens=2000, thinking=thinking))
    assert [b.type for b in msg.content] == ["thinking", "text"]
    answer_tokens = -(-len(msg.content[1].text) // 4)
    assert 150 <= msg.usage.output_tokens - answer_tokens <= 400
    assert parse_answer(msg).recommendation_type == "feature_discovery"


# -- the room it lives in, and contention -----------------------------------------------------


def test_the_runtime_imports_the_fake_only_in_mock_mode() -> None:
    import subprocess
    import sys

    code = (
        "import sys, os\n"
        "import sandbox, sandbox.cli, sandbox.decision, sandbox.decision.steps\n"
        "from sandbox.decision.clients import make_client\n"
        "os.environ['ANTHROPIC_API_KEY'] = 'sk-test'\n"
        "make_client('anthropic')\n"
        "assert not [m for m in sys.modules if m.startswith('sandbox.decision.fake')]\n"
        "make_client('mock')\n"
        "assert 'sandbox.decision.fake.server' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_offline_requests_name_the_fake_not_the_real_service(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK logs each request's URL (task logs show it): offline, it must not read as a
    call to api.anthropic.com, whatever ANTHROPIC_BASE_URL says."""
    import logging

    from sandbox.decision.clients import make_client
    from sandbox.decision.fake import OFFLINE_BASE_URL

    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
    client = make_client("mock", max_retries=0)
    with caplog.at_level(logging.INFO, logger="httpx2"):
        client.messages.create(**build_params(HAIKU, "u1", SUMMARY))
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx2"]
    assert lines == [f'HTTP Request: POST {OFFLINE_BASE_URL}/v1/messages "HTTP/1.1 200 OK"']
    assert str(client.base_url).rstrip("/") == OFFLINE_BASE_URL


def test_the_sliding_window_admits_exactly_rpm_under_contention() -> None:
    from concurrent.futures import ThreadPoolExecutor

    fake = FakeMessagesAPI(faults=Faults.parse("rpm=100"), clock=Clock())
    client = client_for(fake)

    def one(i: int) -> str:
        try:
            client.messages.create(**build_params(HAIKU, f"u{i}", SUMMARY))
            return "ok"
        except anthropic.RateLimitError:
            return "429"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(one, range(400)))
    assert outcomes.count("ok") == 100 and outcomes.count("429") == 300
