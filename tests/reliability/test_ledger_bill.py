"""The ledger is the bill: ``decision.llm_calls.attempts`` counts what the transport sent.

Drills: a storm of 529 answers that tell the SDK not to retry (``x-should-retry: false``),
the same storm with retries, and a timeout on an answer the server finished and billed.
The promise: ``attempts`` equals the requests the server saw, and a request given up on is
recorded with its input estimated and its output bounded by ``max_tokens`` (flagged as an
upper bound), so the ledger never reads less than the bill.
"""

from __future__ import annotations

import httpx2
import pytest

from sandbox.decision import clients, prepare_features, run_llm_inference
from sandbox.decision.fake import FakeMessagesAPI, FakeServer
from sandbox.decision.fake.tokens import input_tokens
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import build_params, opaque_user_id
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import Requests, dummy_api_key, rows

USERS = 8


class Storm(FakeMessagesAPI):
    """Every ``POST /v1/messages`` answers 529 overloaded (``count_tokens`` still works)."""

    def __init__(self, should_retry: bool):
        super().__init__()
        self.should_retry = should_retry
        self.sent = 0

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST" or not request.url.path.rstrip("/").endswith("/v1/messages"):
            return super().handle(request)
        self.sent += 1
        headers = {"retry-after-ms": "1"}
        if not self.should_retry:
            headers["x-should-retry"] = "false"
        error = {"type": "overloaded_error", "message": "Overloaded"}
        return httpx2.Response(529, json={"type": "error", "error": error}, headers=headers)


@pytest.mark.parametrize("should_retry", [False, True])
def test_attempts_in_a_529_storm_are_the_requests_the_server_saw(should_retry, monkeypatch) -> None:
    create_mart(USERS)
    prepare_features(DAY)
    with FakeServer(Storm(should_retry)) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", dummy_api_key())
        summary = run_llm_inference(
            DAY, llm="anthropic", workers=4, escalate=False, max_retries=2, progress=False
        )
    assert summary.failed == USERS and summary.status == "partial"
    ((attempts, calls),) = rows(
        "select sum(attempts), count(*) from decision.llm_calls where purpose = 'primary'"
    )
    assert calls == USERS
    assert attempts == server.fake.sent == USERS * (3 if should_retry else 1)


def test_a_timeout_on_an_answer_the_server_billed_is_bounded_never_undercounted(
    tmp_path, monkeypatch
) -> None:
    users = create_mart(USERS)
    prepare_features(DAY)
    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "slow=1")  # answered and billed, after the timeout
    monkeypatch.setattr(clients, "REQUEST_TIMEOUT_S", 0.2)

    summary = run_llm_inference(DAY, workers=4, escalate=False, progress=False)

    assert (summary.done, summary.status) == (USERS, "ok")
    book = load_price_book()
    model = book.get(book.primary)
    billed_out = {
        e["user"]: e["billed_output_tokens"] for e in log.messages() if "billed_output_tokens" in e
    }
    assert len(billed_out) == USERS and len(log.messages()) == 2 * USERS
    ledger = {
        r[0]: r[1:]
        for r in rows(
            "select user_id, attempts, input_tokens, output_tokens, cost_usd, usage_upper_bound "
            "from decision.llm_calls where purpose = 'primary'"
        )
    }
    for user in users:
        attempts, tokens_in, tokens_out, cost, upper = ledger[user["user_id"]]
        params = build_params(model, user["user_id"], user["user_summary_for_llm"])
        # both sends were billed: the one the client gave up on, and the retry
        billed_in = 2 * input_tokens(params, model.id)
        billed = 2 * billed_out[opaque_user_id(user["user_id"])]
        assert attempts == 2 and upper is True
        assert tokens_out >= billed and tokens_out <= 2 * model.max_tokens
        assert cost >= model.cost(billed_in, billed)
