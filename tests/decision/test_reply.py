"""The realtime path reads the answer from the response body, and builds its client lean.

``realtime._ask`` does not build the SDK's ``Message`` model: it reads the four fields it
needs from the body of ``with_raw_response``. That must give the same outcome as the SDK's
own parse for every kind of answer, and a 200 whose body is not a message (a proxy's error
page) must become a paid, ledgered failure, not a crash or a free retry.
"""

from __future__ import annotations

from datetime import date

import anthropic
import httpx2
import pytest

from sandbox.decision import realtime
from sandbox.decision.fake import FakeMessagesAPI, Faults
from sandbox.decision.outcome import Reply, from_message
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import build_params
from sandbox.decision.records import RunContext
from sandbox.decision.store import InputRow
from tests.decision.conftest import client_for, summary_for

SUMMARY = summary_for("pro", 200, 2, 30, 4)


def _context() -> RunContext:
    book = load_price_book()
    return RunContext(
        date(2026, 11, 1), "run", "mock", "realtime", book, book.get(book.primary), None
    )


@pytest.mark.parametrize(
    "fault", ["", "malformed=1", "out_of_range=1", "wrong_enum=1", "max_tokens=1", "refusal=1"]
)
def test_the_body_gives_the_same_outcome_as_the_sdks_message(fault: str) -> None:
    client = client_for(FakeMessagesAPI(faults=Faults.parse(fault)))
    model = load_price_book().get(load_price_book().primary)
    raw = client.messages.with_raw_response.create(**build_params(model, "u1", SUMMARY))
    ours, sdk = Reply.from_body(raw.http_response.content), raw.parse()
    assert from_message(ours) == from_message(sdk)
    assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
        sdk.usage.input_tokens,
        sdk.usage.output_tokens,
    )


def test_a_200_that_is_not_a_message_is_a_ledgered_failure() -> None:
    def proxy_page(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text="<html>gateway says hello</html>")

    client = anthropic.Anthropic(
        api_key="test-key-not-a-secret",
        http_client=anthropic.DefaultHttpxClient(transport=httpx2.MockTransport(proxy_page)),
        max_retries=0,
    )
    ctx = _context()
    outcome, call = realtime._ask(
        client, ctx, InputRow("u1", SUMMARY, "sha"), ctx.primary, "primary"
    )
    assert outcome.kind == "failure" and outcome.error_class == "invalid_response"
    assert call["status"] == "invalid" and call["error_class"] == "invalid_response"
