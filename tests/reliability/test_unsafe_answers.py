"""Answers are screened before publish: markup, instructions, URLs and refund promises.

The fake's ``unsafe`` fault answers valid JSON whose text holds ``<script>``, an event
handler, "IGNORE ALL PREVIOUS INSTRUCTIONS", a URL or "approve a refund" for a seeded share
of users. The promise, in realtime and batch mode alike (one outcome classifier): those rows
land in ``decision.inference_failures`` as ``unsafe_content`` with their raw text, the run's
status counts them, and nothing published matches the screen.
"""

from __future__ import annotations

import pytest

from sandbox.cli import main
from sandbox.decision.fake import Faults
from sandbox.decision.outcome import screen
from sandbox.decision.prompt import opaque_user_id
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import rows, scalar

SPEC = "unsafe=0.3,seed=2"


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_unsafe_answers_go_to_the_dead_letter_not_to_the_mart(mode, monkeypatch, capsys) -> None:
    users = create_mart(40)
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", SPEC)
    faults = Faults.parse(SPEC)
    unsafe = {u["user_id"] for u in users if faults.pick("answer", opaque_user_id(u["user_id"]))}
    assert 4 <= len(unsafe) <= 20

    code = main(["infer", "--date", str(DAY), "--mode", mode, "--no-progress"])
    out, err = capsys.readouterr()

    assert code == 3 and "status partial" in out, out + err
    held = dict(rows("select user_id, raw_text from decision.inference_failures "
                     "where error_class = 'unsafe_content'"))  # fmt: skip
    assert set(held) == unsafe and all(held.values())  # kept for review, with the raw answer
    assert scalar("select count(*) from decision.llm_calls where status = 'unsafe'") == len(unsafe)
    published = rows(
        "select user_id, recommendation_text, reasoning from marts.user_recommendations"
    )
    assert len(published) == len(users) - len(unsafe)
    assert not any(screen(text, reason) for _, text, reason in published)
    assert "<script" not in out + err and "unsafe_content" in out
