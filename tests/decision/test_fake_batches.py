"""Message Batches in the offline fake: lifecycle, limits, per-request errors and lost responses."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import anthropic
import httpx2
import pytest

from sandbox.decision.fake import FakeMessagesAPI, Faults
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import OUTPUT_SCHEMA, build_params
from tests.decision.conftest import Clock, client_for, summary_for

HAIKU = load_price_book().get("claude-haiku-4-5")
SUMMARY = summary_for("pro", 9, 1, 3, 2)
HOUR, DAY = 3600.0, 86400.0


def requests_for(n: int, prefix: str = "20261101-u") -> list[dict]:
    return [
        {"custom_id": f"{prefix}{i}", "params": build_params(HAIKU, f"u{i}", SUMMARY)}
        for i in range(n)
    ]


def results_after_a_poll(client: anthropic.Anthropic, batch_id: str) -> list:
    """Poll once (the first poll never sees a batch end), then download the results."""
    client.messages.batches.retrieve(batch_id)
    return list(client.messages.batches.results(batch_id))


def get_results(fake: FakeMessagesAPI, batch_id: str) -> httpx2.Response:
    """``GET .../results`` directly (the SDK refuses before a batch has a results_url)."""
    with httpx2.Client(transport=httpx2.MockTransport(fake.handle)) as raw:
        return raw.get(
            f"https://api.anthropic.com/v1/messages/batches/{batch_id}/results",
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        )


def test_a_batch_is_in_progress_then_ends_with_timings() -> None:
    clock = Clock()
    fake = FakeMessagesAPI(batch_seconds=10, clock=clock)
    client = client_for(fake)
    batch = client.messages.batches.create(requests=requests_for(4))
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 4 and batch.ended_at is None
    assert batch.results_url is None and batch.archived_at is None
    assert batch.expires_at - batch.created_at == timedelta(hours=24)
    clock.t += 9.9
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        list(client.messages.batches.results(batch.id))
    early = get_results(fake, batch.id)
    assert early.status_code == 404 and "no results yet" in early.json()["error"]["message"]
    clock.t += 0.1
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.ended_at - ended.created_at == timedelta(seconds=10)
    assert ended.request_counts.succeeded == 4 and ended.request_counts.processing == 0
    items = list(client.messages.batches.results(batch.id))
    assert sorted(i.custom_id for i in items) == [f"20261101-u{i}" for i in range(4)]
    assert {i.result.type for i in items} == {"succeeded"}


def test_zero_batch_seconds_ends_at_the_first_retrieve() -> None:
    client = client_for(FakeMessagesAPI(batch_seconds=0))
    batch = client.messages.batches.create(requests=requests_for(2))
    assert batch.processing_status == "in_progress"  # create always answers in_progress
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"


def test_a_batch_outlives_the_process_and_returns_results_out_of_order(tmp_path: Path) -> None:
    clock = Clock()
    fake = FakeMessagesAPI(state_dir=tmp_path, clock=clock)
    requests = requests_for(30)
    batch = client_for(fake).messages.batches.create(requests=requests)
    clock.t += 1
    other = client_for(FakeMessagesAPI(state_dir=tmp_path, clock=clock))  # another process
    # past its processing time, but the first poll never sees a batch end (however slow
    # the machine, a run that polls once finds its batch still processing)
    assert other.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    assert client_for(fake).messages.batches.retrieve(batch.id).processing_status == "ended"
    items = list(other.messages.batches.results(batch.id))
    assert sorted(i.custom_id for i in items) == sorted(r["custom_id"] for r in requests)
    assert [i.custom_id for i in items] != [r["custom_id"] for r in requests]


def test_cancel_goes_through_canceling_and_keeps_finished_answers() -> None:
    clock = Clock()
    client = client_for(FakeMessagesAPI(batch_seconds=10, clock=clock))
    batch = client.messages.batches.create(requests=requests_for(10))
    clock.t += 3  # 3 of 10 requests are done
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at - canceling.created_at == timedelta(seconds=3)
    assert client.messages.batches.cancel(batch.id).cancel_initiated_at == (
        canceling.cancel_initiated_at
    )  # canceling twice changes nothing
    clock.t += 1
    assert client.messages.batches.retrieve(batch.id).processing_status == "canceling"
    clock.t += 1  # a quarter of the 7 s left
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    counts = ended.request_counts
    assert (counts.succeeded, counts.canceled) == (3, 7)
    kinds = [i.result.type for i in client.messages.batches.results(batch.id)]
    assert sorted(kinds) == ["canceled"] * 7 + ["succeeded"] * 3
    again = client.messages.batches.cancel(batch.id)  # an ended batch stays as it is
    assert again.processing_status == "ended" and again.request_counts.canceled == 7


def test_a_batch_still_processing_at_24_h_expires_its_unfinished_requests() -> None:
    clock = Clock()
    client = client_for(FakeMessagesAPI(batch_seconds=30 * HOUR, clock=clock))
    batch = client.messages.batches.create(requests=requests_for(5))  # done at 6, 12, ... 30 h
    clock.t += 24 * HOUR - 1
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    clock.t += 1
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at == ended.expires_at
    assert (ended.request_counts.succeeded, ended.request_counts.expired) == (4, 1)
    kinds = sorted(i.result.type for i in client.messages.batches.results(batch.id))
    assert kinds == ["expired", "succeeded", "succeeded", "succeeded", "succeeded"]


def test_results_are_gone_29_days_after_creation(tmp_path: Path) -> None:
    client = client_for(FakeMessagesAPI(state_dir=tmp_path, batch_seconds=0))
    batch = client.messages.batches.create(requests=requests_for(3))
    assert len(list(client.messages.batches.results(batch.id))) == 3
    later = FakeMessagesAPI(state_dir=tmp_path, clock_offset_s=29 * DAY)
    archived = client_for(later).messages.batches.retrieve(batch.id)
    assert archived.archived_at == archived.created_at + timedelta(days=29)
    assert archived.processing_status == "ended"
    with pytest.raises(anthropic.NotFoundError, match="deleted"):
        list(client_for(later, max_retries=2).messages.batches.results(batch.id))
    early = FakeMessagesAPI(state_dir=tmp_path, clock_offset_s=29 * DAY - 60)
    assert client_for(early).messages.batches.retrieve(batch.id).archived_at is None


def test_the_clock_offset_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(FakeMessagesAPI(state_dir=tmp_path, batch_seconds=0))
    batch = client.messages.batches.create(requests=requests_for(1))
    monkeypatch.setenv("SANDBOX_MOCK_CLOCK_OFFSET_S", str(30 * DAY))
    with pytest.raises(anthropic.NotFoundError):
        list(
            client_for(FakeMessagesAPI.from_env(state_dir=tmp_path)).messages.batches.results(
                batch.id
            )
        )


def test_invalid_parameters_come_back_as_errored_results_not_at_create() -> None:
    clock = Clock()
    client = client_for(FakeMessagesAPI(clock=clock))
    good = build_params(HAIKU, "u1", SUMMARY)
    no_max = {k: v for k, v in good.items() if k != "max_tokens"}
    bad_schema = json.loads(json.dumps(OUTPUT_SCHEMA))
    bad_schema["properties"]["confidence_score"]["minimum"] = 0
    requests = [
        {"custom_id": "ok", "params": good},
        {"custom_id": "temperature", "params": {**good, "temperature": 0.5}},
        {"custom_id": "no-max-tokens", "params": no_max},
        {"custom_id": "unknown-model", "params": {**good, "model": "claude-nope"}},
        {
            "custom_id": "schema",
            "params": {
                **good,
                "output_config": {"format": {"type": "json_schema", "schema": bad_schema}},
            },
        },
    ]
    batch = client.messages.batches.create(requests=requests)
    assert batch.processing_status == "in_progress"  # accepted: nothing is checked per row yet
    clock.t += 1
    results = {i.custom_id: i.result for i in results_after_a_poll(client, batch.id)}
    assert results["ok"].type == "succeeded"
    errors = {
        k: (r.error.error.type, r.error.error.message) for k, r in results.items() if k != "ok"
    }
    assert errors["temperature"][0] == "invalid_request_error"
    assert errors["temperature"][1].startswith("temperature: this parameter was removed")
    assert errors["no-max-tokens"] == ("invalid_request_error", "max_tokens: Field required")
    assert errors["unknown-model"] == ("not_found_error", "model: claude-nope")
    assert "'minimum' is not supported" in errors["schema"][1]
    assert client.messages.batches.retrieve(batch.id).request_counts.errored == 4


def test_invalid_request_fault_errors_the_same_users_in_every_batch() -> None:
    clock = Clock()
    client = client_for(FakeMessagesAPI(faults=Faults.parse("invalid_request=0.3"), clock=clock))
    seen = []
    for prefix in ("a", "b"):
        batch = client.messages.batches.create(requests=requests_for(40, prefix))
        clock.t += 1
        seen.append(
            {
                i.custom_id[1:]
                for i in results_after_a_poll(client, batch.id)
                if i.result.type == "errored"
                and i.result.error.error.type == "invalid_request_error"
            }
        )
    assert seen[0] == seen[1] and 4 <= len(seen[0]) <= 20


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "at least one request"),
        ([{"custom_id": "has space", "params": {}}], "custom_id: String should match pattern"),
        ([{"custom_id": "x" * 65, "params": {}}], "custom_id: String should match pattern"),
        (
            [{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}],
            "used more than once",
        ),
        ([{"custom_id": "a", "params": "x"}], "requests.0.params: Input should be an object"),
        ([{"custom_id": "a", "params": {}, "extra": 1}], "requests.0.extra: Extra inputs"),
    ],
)
def test_the_batch_envelope_is_checked_at_create(requests: list, message: str) -> None:
    fake = FakeMessagesAPI()
    client = client_for(fake)
    with pytest.raises(anthropic.BadRequestError, match=message):
        client.messages.batches.create(requests=requests)
    assert list(client.messages.batches.list()) == []  # nothing was created


def test_a_batch_holds_at_most_100000_requests() -> None:
    fake = FakeMessagesAPI()
    body = {"requests": [{"custom_id": f"r{i}", "params": {}} for i in range(100_001)]}
    with httpx2.Client(transport=httpx2.MockTransport(fake.handle)) as raw:
        response = raw.post(
            "https://api.anthropic.com/v1/messages/batches",
            json=body,
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 400
    assert "at most 100,000 requests" in response.json()["error"]["message"]


def test_list_pages_newest_first_with_after_and_before_ids() -> None:
    clock = Clock()
    client = client_for(FakeMessagesAPI(clock=clock))
    ids = []
    for i in range(5):
        ids.append(client.messages.batches.create(requests=requests_for(1, f"b{i}-")).id)
        clock.t += 1
    newest_first = ids[::-1]
    first = client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == newest_first[:2] and first.has_more
    assert (first.first_id, first.last_id) == (newest_first[0], newest_first[1])
    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first  # auto-paging
    after = client.messages.batches.list(limit=10, after_id=newest_first[2])
    assert [b.id for b in after.data] == newest_first[3:] and not after.has_more
    before = client.messages.batches.list(limit=1, before_id=newest_first[2])
    assert [b.id for b in before.data] == [newest_first[1]] and before.has_more
    with pytest.raises(anthropic.BadRequestError, match="limit"):
        client.messages.batches.list(limit=0)


def test_delete_only_an_ended_batch() -> None:
    clock = Clock()
    client = client_for(FakeMessagesAPI(batch_seconds=5, clock=clock))
    batch = client.messages.batches.create(requests=requests_for(1))
    with pytest.raises(anthropic.BadRequestError, match="still processing"):
        client.messages.batches.delete(batch.id)
    clock.t += 5
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("batch_create_lost", anthropic.InternalServerError),
        ("batch_create_timeout", anthropic.APITimeoutError),
    ],
)
def test_a_lost_create_response_still_creates_the_batch(fault: str, error: type) -> None:
    clock = Clock()
    client = client_for(FakeMessagesAPI(faults=Faults.parse(f"{fault}=1"), clock=clock))
    with pytest.raises(error):
        client.messages.batches.create(requests=requests_for(3))
    listed = list(client.messages.batches.list())
    assert len(listed) == 1  # created and billed, though the client never saw its id
    clock.t += 1
    items = results_after_a_poll(client, listed[0].id)
    assert sorted(i.custom_id for i in items) == [f"20261101-u{i}" for i in range(3)]


def test_the_sdk_blind_retry_of_a_lost_create_makes_duplicate_batches(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    fake = FakeMessagesAPI(faults=Faults.parse("batch_create_lost=1"), request_log=log)
    with pytest.raises(anthropic.InternalServerError):
        client_for(fake, max_retries=2).messages.batches.create(requests=requests_for(2))
    assert len(list(client_for(fake).messages.batches.list())) == 3
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["status"], e["fault"]) for e in lines if "fault" in e] == [
        (500, "batch_create_lost")
    ] * 3


def test_a_share_of_lost_creates_is_seeded_per_attempt() -> None:
    fake = FakeMessagesAPI(faults=Faults.parse("batch_create_lost=0.5,seed=1"))
    outcomes = []
    for i in range(30):
        try:
            client_for(fake).messages.batches.create(requests=requests_for(1, f"s{i}-"))
            outcomes.append("ok")
        except anthropic.InternalServerError:
            outcomes.append("lost")
    assert 5 <= outcomes.count("lost") <= 25
    assert len(list(client_for(fake).messages.batches.list(limit=100))) == 30


def test_poll_and_results_errors_persist(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    clock = Clock()
    fake = FakeMessagesAPI(faults=Faults.parse("batch_poll_error=1"), request_log=log, clock=clock)
    client = client_for(fake, max_retries=2)
    batch = client.messages.batches.create(requests=requests_for(2))
    with pytest.raises(anthropic.InternalServerError):
        client.messages.batches.retrieve(batch.id)
    polls = [json.loads(line) for line in log.read_text().splitlines()][1:]
    assert [p["fault"] for p in polls] == ["batch_poll_error"] * 3  # every retry fails too
    assert [b.id for b in client.messages.batches.list()] == [batch.id]  # the batch is fine

    results_fake = FakeMessagesAPI(faults=Faults.parse("batch_results_error=1"), batch_seconds=0)
    client = client_for(results_fake, max_retries=1)
    batch = client.messages.batches.create(requests=requests_for(2))
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    with pytest.raises(anthropic.InternalServerError):
        list(client.messages.batches.results(batch.id))


def test_seeded_per_request_faults_end_as_results(tmp_path: Path) -> None:
    clock = Clock()
    fake = FakeMessagesAPI(
        state_dir=tmp_path, faults=Faults.parse("expired=0.2,server_error=0.2"), clock=clock
    )
    client = client_for(fake)
    # the coins are keyed by the batch's (random) id, so a resubmitted batch draws afresh:
    # 120 requests make "no request errored" a 1-in-10^9 draw (30 made it 1 in 200)
    batch = client.messages.batches.create(requests=requests_for(120))
    clock.t += 1
    items = results_after_a_poll(client, batch.id)
    ended = client.messages.batches.retrieve(batch.id)
    assert {i.result.type for i in items} == {"succeeded", "expired", "errored"}
    errored = [i.result.error.error.type for i in items if i.result.type == "errored"]
    assert set(errored) == {"api_error"}
    counts = ended.request_counts
    assert counts.succeeded + counts.expired + counts.errored == 120


def test_a_cancel_is_never_lost_to_a_poll_from_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two fakes on one state directory (two processes): read-modify-writes do not clash."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from sandbox.decision.fake.batches import BatchStore

    real_save = BatchStore.save

    def slow_save(self, state: dict) -> None:  # widen the read-modify-write window
        time.sleep(0.005)
        real_save(self, state)

    monkeypatch.setattr(BatchStore, "save", slow_save)
    clock = Clock()
    first = FakeMessagesAPI(state_dir=tmp_path, batch_seconds=HOUR, clock=clock)
    second = FakeMessagesAPI(state_dir=tmp_path, batch_seconds=HOUR, clock=clock)
    ids = [
        client_for(first).messages.batches.create(requests=requests_for(1, f"c{i}-")).id
        for i in range(30)
    ]
    with ThreadPoolExecutor(8) as pool:
        cancel, poll = client_for(first).messages.batches, client_for(second).messages.batches
        jobs = [pool.submit(f, i) for i in ids for f in (cancel.cancel, poll.retrieve)]
        for job in jobs:
            job.result()
    for batch_id in ids:
        state = json.loads((tmp_path / f"{batch_id}.json").read_text())
        assert state["cancel_initiated_at"] is not None and state["retrieved"]


def test_a_batch_file_of_an_older_fake_reads_as_gone(tmp_path: Path) -> None:
    old = {"id": "msgbatch_mock_old", "created_at": "2026-11-01T00:00:00+00:00", "results": []}
    (tmp_path / "msgbatch_mock_old.json").write_text(json.dumps(old))
    client = client_for(FakeMessagesAPI(state_dir=tmp_path))
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_mock_old")
    assert list(client.messages.batches.list()) == []
