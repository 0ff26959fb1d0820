"""Evaluations: the golden set, the change gate and its reviewed baselines.

``load_golden()``, ``run_eval()`` and ``check_gate(run)``, through the decision plane's own
prompt and validation. Names load on first use, so ``sandbox --help`` skips the SDK.
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
