"""API faults through the real SDK, driven through the ``sandbox infer`` command.

The fake Messages API injects seeded faults (``SANDBOX_MOCK_FAULTS``) behind the SDK's own
transport, so retries, backoff and error classes are the SDK's. These drills go past
``tests/decision/test_engine.py``: they use the shares the issue names, account for every
single request (nothing retried more than once, nothing retried that should not be), check
the command's exit status and printed summary, and stop a run on a 400 or 401 that arrives
in the *middle* of a run with many workers.
"""

# ruff: noqa: F811 (the fixtures imported from tests.decision.conftest are test arguments)

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sandbox.cli import main
from sandbox.decision.fake import FakeMessagesAPI, Faults
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import build_params, opaque_user_id
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import Requests, rows, scalar

TRANSIENT = "rate_limit=0.05,overloaded=0.05,server_error=0.05,timeout=0.05"
PERMANENT = "malformed=0.01,wrong_enum=0.01,out_of_range=0.01,max_tokens=0.01,refusal=0.01"
SEED = "seed=1"  # with 200 users: every kind below hits at least one user (checked)
DEAD_LETTER_CLASS = {
    "malformed": "invalid_json",
    "wrong_enum": "validation_error",
    "out_of_range": "validation_error",
    "max_tokens": "max_tokens",
    "refusal": "refusal",
}


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Requests:
    path = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(path))
    return Requests(path)


def infer(capsys, *extra: str) -> tuple[int, str, str]:
    code = main(["infer", "--date", str(DAY), "--no-progress", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_20_percent_transient_faults_end_with_every_row_done(log, monkeypatch, capsys) -> None:
    users = create_mart(100)
    spec = f"{TRANSIENT},{SEED}"
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", spec)
    faults = Faults.parse(spec)

    code, out, err = infer(capsys)

    assert code == 0, out + err
    assert "status ok" in out and "0 failed" in out
    assert scalar("select count(*) from marts.user_recommendations") == len(users)
    assert scalar("select count(*) from decision.inference_failures") == 0
    # every kind of transient fault happened, as 429/529/500 answers and transport timeouts
    sent = log.messages()
    kinds = Counter(e.get("fault") for e in sent) + Counter(
        "timeout" for e in sent if e["status"] == "timeout"
    )
    assert {"rate_limit", "overloaded", "server_error", "timeout"} <= set(kinds)
    # each faulted (user, model) was sent exactly twice (the SDK's one retry), the others once
    per_pair = log.pairs()
    for (user, model), count in per_pair.items():
        assert count == (2 if faults.pick("transient", user, model) else 1), (user, model)
    faulted = sum(1 for pair in per_pair if faults.pick("transient", *pair))
    assert 0.1 * len(per_pair) < faulted < 0.3 * len(per_pair)  # about 20%
    # the ledger counts those attempts
    assert scalar("select count(*) from decision.llm_calls where attempts = 2") == faulted


def test_5_percent_bad_answers_go_to_the_dead_letter_with_their_raw_text(
    log, monkeypatch, capsys
) -> None:
    users = create_mart(200)
    spec = f"{TRANSIENT},{PERMANENT},{SEED}"
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", spec)
    faults = Faults.parse(spec)
    bad = {u["user_id"]: faults.pick("answer", opaque_user_id(u["user_id"])) for u in users}
    bad = {uid: kind for uid, kind in bad.items() if kind}
    assert set(bad.values()) == set(DEAD_LETTER_CLASS)  # every kind is in this drill
    assert 0.03 * len(users) <= len(bad) <= 0.07 * len(users)  # about 5%

    code, out, err = infer(capsys)

    assert code == 3, out + err
    assert "status partial" in out
    assert f"{len(users) - len(bad)} done, {len(bad)} failed" in out
    assert "failures: " in out and "see decision.inference_failures" in out
    # the dead letter: one row per bad user, its class, and the raw text the API sent
    primary = load_price_book().get(load_price_book().primary)
    fake = FakeMessagesAPI(faults=faults)
    summaries = {u["user_id"]: u["user_summary_for_llm"] for u in users}
    dead = rows(
        "select user_id, error_class, raw_text, execution_date, model, prompt_version "
        "from decision.inference_failures"
    )
    assert sorted(r[0] for r in dead) == sorted(bad)
    for uid, error_class, raw_text, day, model, prompt_version in dead:
        assert error_class == DEAD_LETTER_CLASS[bad[uid]]
        params = build_params(primary, uid, summaries[uid])
        sent = fake.message(params, opaque_user_id(uid))["content"]
        assert raw_text == (sent[0]["text"] if sent else "")
        assert (day, model) == (DAY, primary.id) and prompt_version
    # the rest is written, the bad rows are not
    published = {r[0] for r in rows("select user_id from marts.user_recommendations")}
    assert published == {u["user_id"] for u in users} - set(bad)
    # every transient fault was retried: none of them ended in the dead letter
    assert not {r[1] for r in dead} - set(DEAD_LETTER_CLASS.values())


@pytest.mark.parametrize(
    ("fault", "status", "says"),
    [
        ("auth", "401 authentication_error", "check ANTHROPIC_API_KEY"),
        ("bad_request", "400 invalid_request_error", "sandbox/decision/prompt.py"),
    ],
)
def test_a_401_or_400_mid_run_stops_it_at_once(
    fault: str, status: str, says: str, log, monkeypatch, capsys
) -> None:
    users = create_mart(200)
    workers = 8
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", f"{fault}=0.05,seed=2")
    # answers take 250 ms and the fatal error comes back at once, as a real API does: the
    # count below then measures the engine, not the test machine's scheduling (at 50 ms, a
    # machine busy enough to hold the failing worker back for 150 ms let 26 rows through)
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "250")

    code, out, err = infer(capsys, "--workers", str(workers))

    assert code == 2, out + err
    assert err.startswith("sandbox infer: stopped after ") and status in err and says in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    sent = log.messages()
    first_fatal = next(i for i, e in enumerate(sent) if e["status"] in (400, 401))
    later_rows = {e["user"] for e in sent[first_fatal + 1 :]}
    seen = (
        f"first {status[:3]} at request {first_fatal + 1} of {len(sent)}, then "
        f"{len(sent) - first_fatal - 1} requests for {len(later_rows)} rows"
    )
    assert first_fatal > 0, f"the drill is about a fault in the middle of a run: {seen}"
    # rows asked about after the first 401/400 came back: the other rows in flight (each may
    # still send its escalation request), plus at most one round the main thread submitted
    # before it read the error; never the rest of the 200 rows
    assert len(later_rows) <= 2 * workers - 1, seen
    assert len(sent) < len(users) // 2, seen
    # a run-stopping error is nobody's row: no dead-letter rows, nothing published, and what
    # was answered before it is kept, so the next run (with the cause fixed) resumes
    assert scalar("select count(*) from decision.inference_failures") == 0
    assert scalar("select count(*) from marts.user_recommendations") == 0
    staged = {
        opaque_user_id(r[0]) for r in rows("select user_id from decision.recommendations_staging")
    }
    monkeypatch.delenv("SANDBOX_MOCK_FAULTS")
    code, out, err = infer(capsys, "--workers", str(workers))
    assert code == 0, out + err
    assert f"{len(staged)} already done" in out
    assert scalar("select count(*) from marts.user_recommendations") == len(users)
    assert not {user for user, _ in log.pairs(log.messages()[len(sent) :])} & staged
