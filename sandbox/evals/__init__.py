"""Evaluations: the golden set, the change gate and its reviewed baselines.

Labelled users run through the decision plane's own prompt, client and validation:
``load_golden()`` builds their summaries with dbt, ``run_eval()`` scores the answers,
``check_gate(run)`` compares them with the reviewed baseline. Names load on first use, as
in :mod:`sandbox.decision`, so ``sandbox --help`` does not import the SDK.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "sandbox.evals.baseline": [
        "GateVerdict",
        "check_gate",
        "check_prompt_evaluated",
        "load_gate_config",
        "write_baseline",
    ],
    "sandbox.evals.golden": [
        "GOLDEN_DIR",
        "GoldenCase",
        "GoldenSet",
        "add_golden_case",
        "load_golden",
    ],
    "sandbox.evals.metrics": ["CaseResult", "Scores", "score"],
    "sandbox.evals.runner": ["EvalRun", "run_eval"],
    "sandbox.evals.store": ["record_eval"],
}
"""Where each public name lives: it is imported on first use."""
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
