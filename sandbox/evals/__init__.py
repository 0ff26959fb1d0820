"""Evaluations: the golden set, the change gate and its reviewed baselines.

An evaluation runs labelled users through the decision plane's own prompt, client and
validation. It needs both planes (dbt builds the golden summaries, the SDK answers them),
so like :mod:`sandbox.control` it sits beside the planes, not inside either::

    load_golden()        data/golden raw files -> dbt (cached) -> labelled summaries
    run_eval(llm=...)    one request per case -> agreement, precision/recall, cost per row
    check_gate(run)      the run against its baseline in data/golden/baselines
    record_eval(run)     ops.eval_runs + ops.eval_cases
    write_baseline(run)  what `sandbox eval --accept` stores (reviewed, committed)

Names are imported on first use (as in :mod:`sandbox.decision`), so ``sandbox --help``
does not pay for the SDK import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CaseResult": "sandbox.evals.metrics",
    "EvalRun": "sandbox.evals.runner",
    "GOLDEN_DIR": "sandbox.evals.golden",
    "GateVerdict": "sandbox.evals.baseline",
    "add_golden_case": "sandbox.evals.golden",
    "GoldenCase": "sandbox.evals.golden",
    "GoldenSet": "sandbox.evals.golden",
    "Scores": "sandbox.evals.metrics",
    "check_gate": "sandbox.evals.baseline",
    "check_prompt_evaluated": "sandbox.evals.baseline",
    "load_gate_config": "sandbox.evals.baseline",
    "load_golden": "sandbox.evals.golden",
    "record_eval": "sandbox.evals.store",
    "run_eval": "sandbox.evals.runner",
    "score": "sandbox.evals.metrics",
    "write_baseline": "sandbox.evals.baseline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sandbox.evals' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
