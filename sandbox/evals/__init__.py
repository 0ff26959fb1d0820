"""Evaluations: the golden set, the change gate and its reviewed baselines.

An evaluation runs labelled users through the decision plane's own prompt, client and
validation. It needs both planes (dbt builds the golden summaries, the SDK answers them),
so like :mod:`sandbox.control` it sits beside the planes, not inside either::

    load_golden()        data/golden raw files -> dbt (cached) -> labelled summaries
    run_eval(llm=...)    one request per case -> agreement, precision/recall, cost per row
    check_gate(run)      the run against its baseline in data/golden/baselines
    record_eval(run)     ops.eval_runs + ops.eval_cases
    write_baseline(run)  what `sandbox eval --accept` stores (reviewed, committed)
"""

from sandbox.evals.baseline import (
    GateVerdict,
    check_gate,
    check_prompt_evaluated,
    load_gate_config,
    write_baseline,
)
from sandbox.evals.golden import GOLDEN_DIR, GoldenCase, GoldenSet, load_golden
from sandbox.evals.metrics import CaseResult, Scores, score
from sandbox.evals.runner import EvalRun, run_eval
from sandbox.evals.store import record_eval

__all__ = [
    "GOLDEN_DIR",
    "CaseResult",
    "EvalRun",
    "GateVerdict",
    "GoldenCase",
    "GoldenSet",
    "Scores",
    "check_gate",
    "check_prompt_evaluated",
    "load_gate_config",
    "load_golden",
    "record_eval",
    "run_eval",
    "score",
    "write_baseline",
]
