"""The change gate, as ``make test`` runs it, and drills that try to slip a change past it.

The offline fake reads only the summary, so offline the gate sees changes to the context
string (the data plane's SQL), the validation, the model choice and the cost per row. A
prompt change is caught differently: its ``prompt_version`` needs a stored live evaluation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sandbox.config import ROOT
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import PROMPT_VERSION
from sandbox.evals.baseline import (
    GateConfig,
    check_gate,
    check_prompt_evaluated,
    find_baseline,
    write_baseline,
)
from sandbox.evals.golden import load_golden
from sandbox.evals.runner import run_eval

PRIMARY = load_price_book().primary
SUMMARY_SQL = Path("models") / "marts" / "fct_user_features_for_ai.sql"


@pytest.fixture(scope="module")
def golden():
    return load_golden()


def test_offline_change_gate(golden) -> None:
    """The gate itself: the current code against the reviewed offline baseline."""
    verdict = check_gate(run_eval(llm="mock", golden=golden))
    assert verdict.passed, verdict.render()


def test_current_prompt_version_has_a_stored_evaluation() -> None:
    missing = check_prompt_evaluated(PROMPT_VERSION, PRIMARY)
    assert missing is None, missing


@pytest.fixture
def baselines(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("SANDBOX_EVAL_BASELINES", str(tmp_path))
    return tmp_path


def _waive(monkeypatch, folder: Path, *keys: str) -> None:
    """A gate.toml whose ``[prompt_waivers]`` lists ``keys``, read instead of the shipped one."""
    gate = folder / "gate.toml"
    gate.write_text("[prompt_waivers]\n" + "".join(f'"{key}" = "reviewed"\n' for key in keys))
    monkeypatch.setattr("sandbox.evals.baseline.GATE_CONFIG", gate)


def test_a_new_prompt_version_fails_until_a_live_run_is_accepted(
    baselines: Path, monkeypatch
) -> None:
    _waive(monkeypatch, baselines)
    message = check_prompt_evaluated("0123456789ab", PRIMARY)
    assert message and "sandbox eval --llm anthropic --accept" in message
    (baselines / f"0123456789ab__{PRIMARY}.json").write_text("{}")
    assert check_prompt_evaluated("0123456789ab", PRIMARY) is None
    assert check_prompt_evaluated("ba9876543210", PRIMARY)  # still per version


def test_a_waiver_is_per_prompt_version(baselines: Path, monkeypatch) -> None:
    _waive(monkeypatch, baselines, "0123456789ab")
    assert check_prompt_evaluated("0123456789ab", PRIMARY) is None
    assert check_prompt_evaluated("ffffffffffff", PRIMARY)


def test_a_waiver_can_name_one_model(baselines: Path, monkeypatch) -> None:
    _waive(monkeypatch, baselines, f"0123456789ab__{PRIMARY}")
    assert check_prompt_evaluated("0123456789ab", PRIMARY) is None
    assert check_prompt_evaluated("0123456789ab", "claude-sonnet-5-5")


def test_the_primary_model_has_an_offline_baseline_and_an_explicit_live_waiver() -> None:
    from sandbox.config import eval_baselines_dir as baselines_dir
    from sandbox.evals.baseline import load_gate_config

    assert (baselines_dir() / f"offline__{PRIMARY}.json").is_file()
    if not (baselines_dir() / f"{PROMPT_VERSION}__{PRIMARY}.json").is_file():
        reason = load_gate_config().prompt_waivers[f"{PROMPT_VERSION}__{PRIMARY}"]
        assert "sandbox eval --llm anthropic --accept" in reason


def test_a_live_run_is_compared_with_the_last_accepted_prompt(golden, baselines: Path) -> None:
    old = run_eval(llm="mock", golden=golden)
    old.llm, old.prompt_version = "anthropic", "000000000001"
    write_baseline(old)
    new = run_eval(llm="mock", golden=golden)
    new.llm, new.prompt_version = "anthropic", "000000000002"
    path, _ = find_baseline("anthropic", new.model, new.prompt_version)
    assert path == baselines / f"000000000001__{new.model}.json"
    assert check_gate(new).passed


def _project_copy(tmp_path: Path, monkeypatch, old: str, new: str) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    sql = project / SUMMARY_SQL
    text = sql.read_text()
    assert old in text
    sql.write_text(text.replace(old, new))
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(project))
    monkeypatch.setenv("SANDBOX_EVAL_CACHE", str(tmp_path / "cache"))


@pytest.mark.slow  # a dbt build of the reworded project
def test_drill_summary_wording_change_fails_with_a_readable_diff(tmp_path, monkeypatch) -> None:
    _project_copy(tmp_path, monkeypatch, "'Last active '", "'Most recent activity: '")
    changed = load_golden()
    assert not changed.cached
    verdict = check_gate(run_eval(llm="mock", golden=changed))
    text = verdict.render()
    assert not verdict.passed and "agreement fell" in text
    assert verdict.changed[0].endswith("WRONG")  # the cases that became wrong come first
    assert "g052 quiet_week: re_engagement -> feature_discovery" in text
    assert "was: User has been on the free plan for 206 days. Last active 8 days ago." in text
    assert "now: User has been on the free plan for 206 days. Most recent activity: 8 days" in text


@pytest.mark.slow  # a dbt build of the padded project
def test_drill_longer_summary_fails_on_cost_per_row(tmp_path, monkeypatch) -> None:
    padding = "Computed from warehouse tables for the run date. " * 4
    _project_copy(
        tmp_path, monkeypatch, "'User has been on the '", f"'{padding}User has been on the '"
    )
    verdict = check_gate(run_eval(llm="mock", golden=load_golden()))
    assert not verdict.passed
    assert any("cost per row rose" in p for p in verdict.problems), verdict.render()
    assert not any("agreement" in p for p in verdict.problems)  # answers unchanged


def test_drill_invalid_answers_fail_the_gate(golden, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "out_of_range=0.1,seed=3")
    verdict = check_gate(run_eval(llm="mock", golden=golden))
    assert any("invalid-answer rate rose" in p for p in verdict.problems), verdict.render()
    assert "-> invalid" in verdict.render()


def test_drill_model_swap_needs_its_own_baseline_and_costs_more(golden) -> None:
    swapped = run_eval(llm="mock", model="claude-sonnet-4-6", golden=golden)
    assert "no offline baseline for claude-sonnet-4-6" in check_gate(swapped).render()
    from sandbox.evals.baseline import compare, load_gate_config

    _, haiku = find_baseline("mock", PRIMARY, PROMPT_VERSION)
    verdict = compare(swapped, haiku, load_gate_config())
    assert any("cost per row rose" in p for p in verdict.problems)


def test_gate_thresholds_are_exact_to_one_case(golden) -> None:
    from sandbox.evals.baseline import baseline_record, compare

    run = run_eval(llm="mock", golden=golden)
    base = baseline_record(run)
    assert compare(
        run, base, GateConfig(max_cost_per_row_rise=0.0)
    ).passed  # rounding is not a drop
    worse = dict(base, scores=dict(base["scores"], agreement=run.scores.agreement + 1 / 76))
    assert not compare(run, worse, GateConfig()).passed  # one case fewer is a drop
    tolerant = GateConfig(max_agreement_drop=0.02)
    assert compare(run, worse, tolerant).passed
    cheaper = dict(
        base, scores=dict(base["scores"], cost_per_row_usd=run.scores.cost_per_row_usd / 1.06)
    )
    assert not compare(run, cheaper, GateConfig()).passed  # +6 % > 5 %
    assert compare(run, cheaper, GateConfig(max_cost_per_row_rise=0.07)).passed
