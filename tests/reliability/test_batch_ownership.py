"""A Message Batch is ours by proof, not by size: drills for a create whose answer is lost.

The API has no idempotency key for a batch create, so a create that fails or times out may
or may not have made a batch. These drills play the cases against the fake: another
client's batch of the same size created just before ours, a batch that shows up in the list
only seconds after the failed create, and a create that never made anything. The promises:
nothing is ingested from (nor cancelled in) a batch that is not ours, a late batch is adopted,
never paid twice, and "not created" is concluded only after the grace window.
"""

from __future__ import annotations

import threading
from pathlib import Path

import anthropic
import httpx2
import pytest

from sandbox.config import SandboxError
from sandbox.decision import prepare_features, run_llm_inference
from sandbox.decision.clients import make_client, mock_state_dir
from sandbox.decision.fake import FakeMessagesAPI, FakeServer
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import build_params
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import dummy_api_key, rows, scalar

USERS = 12
CREATE = "/v1/messages/batches"


def foreign_requests(users: list[dict]) -> list[dict]:
    """Another client's requests for the same users and date (its own custom ids)."""
    model = load_price_book().get(load_price_book().primary)
    return [
        {
            "custom_id": f"{DAY:%Y%m%d}-{u['user_id']}",
            "params": build_params(model, u["user_id"], u["user_summary_for_llm"]),
        }
        for u in users
    ]


class LostCreates(FakeMessagesAPI):
    """A fake whose batch creates answer 500; the batch appears ``appear_after_s`` later (or never)."""

    def __init__(self, appear_after_s: float | None, **kwargs):
        super().__init__(**kwargs)
        self.appear_after_s = appear_after_s
        self.creates = 0
        self.lose = True

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        is_create = request.method == "POST" and request.url.path.rstrip("/").endswith(CREATE)
        if not (is_create and self.lose):
            return super().handle(request)
        self.creates += 1
        if self.appear_after_s is not None:
            threading.Timer(self.appear_after_s, super().handle, [request]).start()
        error = {"type": "api_error", "message": "Internal server error"}
        return httpx2.Response(500, json={"type": "error", "error": error})


@pytest.fixture
def users(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    made = create_mart(USERS)
    prepare_features(DAY)
    return made


def live(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", dummy_api_key())


def run(**kwargs):
    options = {"mode": "batch", "escalate": False, "progress": False, "poll_s": 0.05}
    return run_llm_inference(DAY, **{**options, **kwargs})


def test_another_clients_batch_of_the_same_size_is_never_ingested_nor_cancelled(
    users, monkeypatch
) -> None:
    other = make_client("mock").messages.batches.create(requests=foreign_requests(users))
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "batch_create_lost=1")  # ours is made, then a 500

    summary = run()

    assert (summary.done, summary.failed, summary.status) == (USERS, 0, "ok")
    ours = rows("select distinct batch_id from decision.batch_jobs")
    assert len(ours) == 1 and ours[0][0] != other.id
    assert any("carry this intent's ids: adopted" in n for n in summary.notes)
    # every answer came from our batch; the other client's batch is untouched
    assert (
        rows("select distinct batch_id from decision.llm_calls where purpose = 'primary'") == ours
    )
    monkeypatch.delenv("SANDBOX_MOCK_FAULTS")
    theirs = make_client("mock").messages.batches.retrieve(other.id)
    assert theirs.cancel_initiated_at is None
    assert len(list(mock_state_dir().glob("*.json"))) == 2  # theirs and ours: no second create


def test_a_batch_listed_seconds_after_the_failed_create_is_adopted_in_the_same_run(
    users, monkeypatch
) -> None:
    monkeypatch.setenv("SANDBOX_BATCH_CREATE_GRACE_S", "60")
    with FakeServer(LostCreates(appear_after_s=1.5)) as server:
        live(server, monkeypatch)
        summary = run(llm="anthropic", wait_s=60)
        assert (summary.done, summary.status) == (USERS, "ok")
        assert server.fake.creates == 1 and len(server.fake.batches.all()) == 1
        assert summary.batch_ids == [server.fake.batches.all()[0]["id"]]


def test_a_late_batch_is_looked_for_again_by_the_next_run_never_paid_twice(
    users, monkeypatch
) -> None:
    monkeypatch.setenv("SANDBOX_BATCH_CREATE_GRACE_S", "60")
    with FakeServer(LostCreates(appear_after_s=1.0)) as server:
        live(server, monkeypatch)
        first = run(llm="anthropic", wait_s=0.2)  # gives up waiting before the batch shows
        assert first.status == "waiting" and first.exit_code == 3
        assert any("stays open" in n for n in first.notes)
        assert scalar("select count(*) from decision.batch_jobs where status = 'creating'") == USERS
        threading.Event().wait(1.5)
        second = run(llm="anthropic", wait_s=60)
        assert (second.done, second.status) == (USERS, "ok")
        assert server.fake.creates == 1 and len(server.fake.batches.all()) == 1


def test_nothing_created_is_concluded_only_after_the_grace_window(
    users, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SANDBOX_BATCH_CREATE_GRACE_S", "1")
    with FakeServer(LostCreates(appear_after_s=None)) as server:
        live(server, monkeypatch)
        server.fake.lose = False
        other = anthropic.Anthropic(max_retries=0).messages.batches.create(
            requests=foreign_requests(users)
        )
        server.fake.lose = True
        with pytest.raises(SandboxError, match="listed no batch made by it") as caught:
            run(llm="anthropic", wait_s=60)
        assert "1 listed were not ours" in str(caught.value)
        assert scalar("select count(*) from decision.recommendations_staging") == 0
        assert scalar("select count(*) from decision.batch_jobs where status = 'not_created'") == (
            USERS
        )
        assert server.fake.batches.get(other.id).get("cancel_initiated_at") is None
        server.fake.lose = False  # the API works again: the rows are pending, sent once
        summary = run(llm="anthropic", wait_s=60)
        assert (summary.done, summary.status) == (USERS, "ok")
        assert len(server.fake.batches.all()) == 2
