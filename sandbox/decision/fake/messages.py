"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Message the fake answers with."""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import TYPE_CHECKING, Any

import httpx2

from sandbox.decision.fake.answers import WORDINGS, recommend, unsafe_answer
from sandbox.decision.fake.errors import ApiError, random_hex
from sandbox.decision.fake.faults import uniform
from sandbox.decision.fake.thinking import thinking_tokens
from sandbox.decision.fake.tokens import input_tokens, text_of, tokens_for
from sandbox.decision.fake.validation import check_count_tokens, check_message

if TYPE_CHECKING:
    from sandbox.decision.fake.server import FakeMessagesAPI

__all__ = ["TRANSIENT", "build_message", "count_tokens", "create_message", "user_key"]

TRANSIENT = {
    "rate_limit": (429, "rate_limit_error", "mock rate limit: too many requests, retry shortly"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "timeout": (504, "timeout_error", "mock timeout: the request took too long"),
}
"""Seeded transient faults: HTTP status, error type and message."""


def user_key(params: dict) -> str:
    """Who a request is about: ``metadata.user_id``, else a hash of the last message's text."""
    user = (params.get("metadata") or {}).get("user_id")
    if user:
        return str(user)
    messages = params.get("messages") or [{}]
    return hashlib.sha256(text_of(messages[-1].get("content")).encode()).hexdigest()[:16]


def count_tokens(api: FakeMessagesAPI, body: dict) -> httpx2.Response:
    """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``, as the Message would bill."""
    api.request_fault(body)
    api.admit()
    model = check_count_tokens(body, api.prices)
    return httpx2.Response(200, json={"input_tokens": input_tokens(body, model.id)})


def create_message(
    api: FakeMessagesAPI, request: httpx2.Request, body: dict, info: dict
) -> httpx2.Response:
    """``POST /v1/messages``: validate, apply seeded faults, then answer."""
    info["model"] = body.get("model")
    user = info["user"] = user_key(body)
    attempt = info["attempt"] = int(request.headers.get("x-stainless-retry-count") or 0)
    api.request_fault(body)
    api.admit()
    model = check_message(body, api.prices)
    if (message := api.invalid_for(user)) is not None:
        info["fault"] = "invalid_request"
        raise ApiError.invalid(message)
    kind = api.faults.pick("transient", user, model.id) if attempt == 0 else None
    if kind == "slow":
        return _slow(api, request, body, user, info)
    if kind is not None:
        info["fault"] = kind
        if kind == "timeout":
            raise httpx2.ReadTimeout("mock: read timed out", request=request)
        if kind != "rate_limit":
            api.wait()
        status, error_type, message = TRANSIENT[kind]
        raise ApiError(
            status, error_type, message, {"retry-after": f"{api.faults.retry_after_s:g}"}
        )
    api.wait()
    return httpx2.Response(200, json=_billed(api, body, user))


def _slow(
    api: FakeMessagesAPI, request: httpx2.Request, body: dict, user: str, info: dict
) -> httpx2.Response:
    """Produce (and bill) the answer, but take ``slow_s``: past the client's timeout, a timeout."""
    info["fault"] = "slow"
    message = _billed(api, body, user)
    info["billed_output_tokens"] = message["usage"]["output_tokens"]
    try:
        client_timeout = float(request.headers.get("x-stainless-read-timeout") or "inf")
    except ValueError:
        client_timeout = math.inf
    delay = api.faults.slow_s if api.faults.slow_s is not None else client_timeout + 0.01
    if delay >= client_timeout:
        time.sleep(client_timeout if math.isfinite(client_timeout) else 0)
        raise httpx2.ReadTimeout(
            "mock: the answer took longer than the client waits", request=request
        )
    time.sleep(delay)
    return httpx2.Response(200, json=message)


def _billed(api: FakeMessagesAPI, params: dict, user: str) -> dict:
    """The Message (through ``api.message``), its tokens counted in the rate window."""
    message = api.message(params, user)
    usage = message["usage"]
    api.window.add_tokens(api.now(), usage["input_tokens"], usage["output_tokens"])
    return message


def _answer_text(answer: dict, kind: str | None, variant: int) -> tuple[str, str]:
    """The answer's text and stop reason, with a seeded answer fault applied."""
    if kind == "malformed":
        return "Here is my recommendation:\n" + json.dumps(answer), "end_turn"
    if kind == "out_of_range":
        wrong = round(answer["confidence_score"] * 100, 1)
        return json.dumps({**answer, "confidence_score": wrong}), "end_turn"
    if kind == "wrong_enum":
        return json.dumps({**answer, "recommendation_type": "discount_offer"}), "end_turn"
    if kind == "refusal":
        return "", "refusal"
    if kind == "unsafe":
        return json.dumps(unsafe_answer(answer, variant)), "end_turn"
    return json.dumps(answer), "end_turn"


def build_message(api: FakeMessagesAPI, params: dict, user: str) -> dict[str, Any]:
    """The ``Message`` the fake returns for valid ``params`` (answer faults applied)."""
    model = params["model"]
    model_id = api.prices.get(model).id
    capable = model_id == api.prices.get(api.prices.escalation).id
    summary = text_of((params.get("messages") or [{}])[-1].get("content"))
    variant = int(uniform(api.faults.seed, "wording", user) * WORDINGS)
    kind = api.faults.pick("answer", user)
    answer = recommend(summary, capable=capable, variant=variant).as_json()
    text, stop = _answer_text(answer, kind, variant)
    out_tokens = tokens_for(len(text), model_id)
    max_tokens = int(params.get("max_tokens", 1))
    if kind == "max_tokens":
        max_tokens = min(max_tokens, max(1, out_tokens // 2))
    thought = min(max_tokens, thinking_tokens(model_id, params, user, api.faults.seed))
    room = max_tokens - thought
    if out_tokens > room:
        text, out_tokens, stop = text[: _chars_for(room, model_id)], room, "max_tokens"
    content: list[dict] = []
    if thought:
        content.append(
            {
                "type": "thinking",
                "thinking": "Reading the plan, recency and weekly activity first.",
                "signature": "mock-signature-" + random_hex(16),
            }
        )
    if text:
        content.append({"type": "text", "text": text})
    return {
        "id": "msg_mock_" + random_hex(24),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens(params, model_id),
            "output_tokens": thought + out_tokens,
        },
    }


def _chars_for(tokens: int, model_id: str) -> int:
    """The longest text that fits in ``tokens`` tokens of ``model_id``'s tokenizer."""
    chars = tokens * 4
    while chars > 0 and tokens_for(chars, model_id) > tokens:
        chars -= 1
    return chars
