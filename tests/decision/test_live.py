"""The same engine against the real Claude API (``-m live``; needs ANTHROPIC_API_KEY).

A few rows only, under a small budget: it checks that the request shape (structured
output, metadata), the answers and the prices work against the real service.
"""

from __future__ import annotations

import os

import pytest

from sandbox.decision import prepare_features, run_llm_inference
from tests.decision.conftest import DAY, create_mart, scalar

API_KEY = os.environ.get("ANTHROPIC_API_KEY")  # read before conftest clears it per test
BASE_URL = os.environ.get("ANTHROPIC_BASE_URL")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not API_KEY, reason="needs ANTHROPIC_API_KEY"),
]


@pytest.fixture
def real_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY or "")
    if BASE_URL:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", BASE_URL)


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_a_few_real_rows(real_api, mode: str) -> None:
    create_mart(4)
    prepare_features(DAY)
    summary = run_llm_inference(
        DAY, llm="anthropic", mode=mode, max_cost_usd=0.10, progress=False, wait_s=3600, poll_s=10
    )
    assert summary.done + summary.failed == 4, summary.render()
    assert summary.done >= 3, summary.render()
    assert 0 < summary.cost_usd < 0.10
    assert scalar("select count(*) from decision.llm_calls where status = 'ok'") >= 4
