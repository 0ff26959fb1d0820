"""Evaluations: the golden set (``load_golden``), ``run_eval`` through the decision plane's own
prompt and validation, and the change gate (``check_gate``) with its reviewed baselines."""

from sandbox.evals.baseline import GateVerdict, check_gate, check_prompt_evaluated, write_baseline
from sandbox.evals.golden import GOLDEN_DIR, GoldenCase, GoldenSet, add_golden_case, load_golden
from sandbox.evals.runner import CaseResult, EvalRun, Scores, record_eval, run_eval, score

__all__ = [
    "GOLDEN_DIR", "CaseResult", "EvalRun", "GateVerdict", "GoldenCase", "GoldenSet", "Scores",
    "add_golden_case", "check_gate", "check_prompt_evaluated", "load_golden",
    "record_eval", "run_eval", "score", "write_baseline",
]  # fmt: skip
