"""The golden set, the scores and ``sandbox eval`` (offline, through the real SDK and fake)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from datetime import date, datetime
from pathlib import Path

import anthropic
import duckdb
import httpx2
import pytest
import yaml

from sandbox.cli import main
from sandbox.config import ROOT
from sandbox.data.generate import SEGMENTS
from sandbox.decision.fake import recommend
from sandbox.decision.prompt import RECOMMENDATION_TYPES
from sandbox.evals.golden import GOLDEN_DIR, load_golden, read_labels
from sandbox.evals.runner import CaseResult, run_eval, score

API_KEY = os.environ.get("ANTHROPIC_API_KEY")  # read before conftest clears it per test
BASE_URL = os.environ.get("ANTHROPIC_BASE_URL")
CONTRACT = ROOT / "dbt_project" / "models" / "marts" / "fct_user_features_for_ai.yml"
EDGE_CASES = {
    "new_never_active",
    "old_never_active",
    "never_active_boundary_14_days",
    "only_unclassified_events",
    "only_events_after_as_of",
    "active_event_exactly_7_days_ago",
    "new_user_one_day_one_event",
    "new_power_user_free",
    "quiet_week",
    "fading",
    "long_dormant",
    "power_user_on_low_plan",
    "power_free_exactly_20_events",
    "power_free_19_events",
    "power_user_on_enterprise",
}


@pytest.fixture(scope="module")
def golden():
    return load_golden()


def _contract() -> dict:
    model = yaml.safe_load(CONTRACT.read_text())["models"][0]
    return {column["name"]: column for column in model["columns"]}


def test_labels_are_complete_and_use_known_types() -> None:
    labels = read_labels(GOLDEN_DIR)
    assert 60 <= len(labels) <= 100
    ids = [row["user_id"] for row in labels]
    assert len(set(ids)) == len(ids)
    with (GOLDEN_DIR / "users.csv").open(newline="") as handle:
        assert {row["id"] for row in csv.DictReader(handle)} == set(ids)
    for row in labels:
        assert row["acceptable"], row
        assert set(row["acceptable"]) <= set(RECOMMENDATION_TYPES), row
        assert len(set(row["acceptable"])) == len(row["acceptable"]), row
        assert row["segment"] in SEGMENTS, row
        assert row["reason"].strip() and "\n" not in row["reason"] and len(row["reason"]) <= 120
    assert {row["segment"] for row in labels} == set(SEGMENTS)
    assert EDGE_CASES <= {row["case"] for row in labels}
    assert {row["acceptable"][0] for row in labels} == set(RECOMMENDATION_TYPES)


def test_every_case_is_a_valid_mart_row(golden) -> None:
    """Same contract as marts.fct_user_features_for_ai: columns, types, nulls, values, length."""
    contract = _contract()
    parse = {
        "string": lambda v: isinstance(v, str),
        "bigint": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "timestamp": lambda v: isinstance(datetime.fromisoformat(v), datetime),
        "date": lambda v: isinstance(date.fromisoformat(v), date),
    }
    length = next(
        t["text_length_between"]["arguments"]
        for t in contract["user_summary_for_llm"]["data_tests"]
        if isinstance(t, dict) and "text_length_between" in t
    )
    plans = next(
        t["accepted_values"]["arguments"]["values"]
        for t in contract["plan_tier"]["data_tests"]
        if isinstance(t, dict) and "accepted_values" in t
    )
    for case in golden.cases:
        row = case.row
        assert list(row) == list(contract), case.user_id
        for name, column in contract.items():
            value = row[name]
            not_null = any(c["type"] == "not_null" for c in column.get("constraints", []))
            if value is None:
                assert not not_null, (case.user_id, name)
                continue
            assert parse[column["data_type"]](value), (case.user_id, name, value)
        assert length["min_length"] <= len(case.summary) <= length["max_length"]
        assert row["plan_tier"] in plans
        assert row["as_of_date"] == "2026-11-01"


def test_summaries_come_from_the_current_sql(golden) -> None:
    by_case = {c.case: c.summary for c in golden.cases}
    assert by_case["only_unclassified_events"].endswith("No activity recorded since signing up.")
    assert by_case["only_events_after_as_of"].endswith("No activity recorded since signing up.")
    assert (
        "Last active 7 days ago. Performed 1 event of 1 type"
        in by_case["active_event_exactly_7_days_ago"]
    )
    assert (
        "for 1 day. Last active 1 day ago. Performed 1 event of 1 type"
        in by_case["new_user_one_day_one_event"]
    )


def test_golden_set_exercises_every_rule_of_the_offline_fake(golden) -> None:
    assert {recommend(c.summary).rule for c in golden.cases} == set(range(1, 9))


def test_second_load_comes_from_the_cache(golden, tmp_path: Path, monkeypatch) -> None:
    again = load_golden()
    assert again.cached and again.inputs_sha == golden.inputs_sha
    assert again.summaries_sha == golden.summaries_sha


def _case(acceptable, answer, status="ok") -> CaseResult:
    return CaseResult("u", "c", "active", acceptable, "s", answer, 0.5, status)


def test_scores_precision_recall_and_confusion() -> None:
    results = [
        _case(("churn_risk",), "churn_risk"),
        _case(("churn_risk", "re_engagement"), "re_engagement"),
        _case(("re_engagement",), "churn_risk"),
        _case(("upgrade_prompt",), None, status="invalid"),
    ]
    s = score(results)
    assert s.agreement == 0.5 and s.invalid_rate == 0.25
    assert s.precision["churn_risk"] == 0.5  # 2 answered churn_risk, 1 acceptable
    assert s.precision["re_engagement"] == 1.0
    assert s.recall["churn_risk"] == 1.0  # both preferred-churn cases got an acceptable answer
    assert s.recall["re_engagement"] == 0.0 and s.recall["upgrade_prompt"] == 0.0
    assert s.precision["feature_discovery"] is None
    assert s.confusion["churn_risk"]["re_engagement"] == 1
    assert s.confusion["upgrade_prompt"]["invalid"] == 1


def test_offline_eval_uses_the_decision_plane(golden, monkeypatch, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log))
    run = run_eval(llm="mock", golden=golden)
    assert run.complete and run.scores.cases == len(golden)
    paths = [json.loads(line)["path"] for line in log.read_text().splitlines()]
    assert paths.count("/v1/messages/count_tokens") == 2  # the estimate: prefix, per character
    assert paths.count("/v1/messages") == len(golden) == len(paths) - 2  # one request per case
    assert "count_tokens failed" not in run.render()
    assert 0.9 < run.scores.agreement <= 1.0 and run.scores.invalid_rate == 0.0
    assert run.scores.cost_per_row_usd > 0 and run.scores.tokens_per_row > 0
    assert f"(total ${run.scores.cost_usd:.4f}, simulated: offline fake at list prices)" in (
        run.render()
    )
    live = dataclasses.replace(run, llm="anthropic").render()
    assert f"(total ${run.scores.cost_usd:.4f}, list price)" in live and "simulated" not in live
    wrong = {r.case for r in run.results if not r.agrees}
    assert wrong <= {
        "power_free_broad_use_below_threshold",
        "power_starter_broad_use_below_threshold",
    }


def test_the_estimate_counts_tokens_in_the_model_s_tokenizer(golden, monkeypatch) -> None:
    from sandbox.decision.pricing import approx_tokens
    from sandbox.decision.prompt import prefix_chars

    run = run_eval(llm="mock", golden=golden)
    guess = sum(
        approx_tokens("x" * prefix_chars()) + approx_tokens(c.summary) for c in golden.cases
    )
    # Claude Haiku 5.5's tokenizer counts ~30 % more than characters / 4
    assert run.estimate.input_tokens == pytest.approx(1.3 * guess, rel=0.02)
    assert run.estimate.input_tokens == pytest.approx(run.scores.input_tokens, rel=0.01)

    def unreachable(*args, **kwargs):
        raise anthropic.APIConnectionError(request=httpx2.Request("POST", "http://x"))

    monkeypatch.setattr("sandbox.evals.runner.count_tokens", unreachable)
    fallback = run_eval(llm="mock", golden=golden)
    assert fallback.estimate.input_tokens == guess and fallback.complete
    assert "count_tokens failed (APIConnectionError)" in fallback.render()


def test_cli_prints_records_and_accepts_only_when_asked(
    isolated_env: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    baselines = tmp_path / "baselines"
    monkeypatch.setenv("SANDBOX_EVAL_BASELINES", str(baselines))
    assert main(["eval"]) == 1  # no baseline yet: the gate says how to record one
    out = capsys.readouterr().out
    assert "agreement" in out and "confusion" in out and "--accept" in out
    assert not baselines.exists()  # never written without --accept
    assert main(["eval", "--accept"]) == 0
    files = list(baselines.glob("offline__*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["llm"] == "mock"
    capsys.readouterr()
    assert main(["eval"]) == 0
    assert "change gate: passed" in capsys.readouterr().out
    con = duckdb.connect(str(isolated_env), read_only=True)
    runs = con.execute(
        "select count(*), sum(accepted::int), min(cases) from ops.eval_runs"
    ).fetchone()
    cases = con.execute("select count(*) from ops.eval_cases").fetchone()[0]
    con.close()
    assert runs[0] == 3 and runs[1] == 1 and cases == 3 * runs[2]


def test_cli_budget_refuses_before_sending(monkeypatch, tmp_path: Path, capsys) -> None:
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log))
    assert main(["eval", "--max-cost-usd", "0.001", "--no-record"]) == 2
    err = capsys.readouterr().err
    assert "exceeds --max-cost-usd" in err and "Traceback" not in err
    sent = [json.loads(line)["path"] for line in log.read_text().splitlines()]
    assert sent == ["/v1/messages/count_tokens"] * 2  # only the free token counts went out


def test_budget_stops_sending_and_the_run_cannot_be_accepted(golden, monkeypatch) -> None:
    from sandbox.config import SandboxError
    from sandbox.evals.baseline import write_baseline

    # answers longer than estimated: the up-front check passes, the per-request guard stops
    monkeypatch.setattr("sandbox.evals.runner.EXPECTED_OUTPUT_TOKENS", 1)
    limit = run_eval(llm="mock", golden=golden, max_cost_usd=1.0).estimate.expected_usd * 1.01
    partial = run_eval(llm="mock", golden=golden, max_cost_usd=limit)
    assert partial.skipped > 0 and not partial.complete
    assert sum(r.cost_usd for r in partial.results) <= limit
    with pytest.raises(SandboxError, match="incomplete"):
        write_baseline(partial)


def test_cli_an_answer_no_retry_fixes_stops_the_evaluation(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "auth=1")
    assert main(["eval", "--no-record"]) == 2
    err = capsys.readouterr().err
    assert "the evaluation stopped" in err and "check ANTHROPIC_API_KEY" in err
    assert "Traceback" not in err


def test_cli_unknown_model_is_a_clear_error(capsys) -> None:
    assert main(["eval", "--model", "claude-nope", "--no-record"]) == 2
    assert "has no price" in capsys.readouterr().err


def test_cli_live_without_a_key_is_a_clear_error(capsys) -> None:
    assert main(["eval", "--llm", "anthropic", "--no-record"]) == 2
    err = capsys.readouterr().err
    assert "ANTHROPIC_API_KEY is not set" in err and "Traceback" not in err


@pytest.mark.live
@pytest.mark.skipif(not API_KEY, reason="needs ANTHROPIC_API_KEY")
def test_live_eval_within_budget(monkeypatch) -> None:
    """With a real key: the golden set on the primary model, under a $0.25 budget."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY or "")
    if BASE_URL:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", BASE_URL)
    run = run_eval(llm="anthropic", max_cost_usd=0.25)
    assert run.complete and run.scores.cost_usd <= 0.25
    assert run.scores.invalid_rate < 0.1


@pytest.mark.slow  # a dbt build of the broken copy
def test_a_case_that_breaks_the_mart_contract_is_refused_by_dbt(
    tmp_path: Path, monkeypatch
) -> None:
    import shutil

    from sandbox.data import GateFailed
    from sandbox.evals import add_golden_case

    monkeypatch.setenv("SANDBOX_EVAL_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "golden"
    shutil.copytree(GOLDEN_DIR, folder, ignore=shutil.ignore_patterns("baselines", "*.toml"))
    add_golden_case(
        folder, "g901", plan_tier="gold", signed_up_days_ago=10, events=[(1, "login")],
        acceptable=["feature_discovery"], reason="no such plan", segment="active", case="bad",
    )  # fmt: skip
    with pytest.raises(GateFailed, match="accepted_values"):
        load_golden(folder)
    assert not list((tmp_path / "cache").glob("golden-*.json"))  # nothing cached from it
