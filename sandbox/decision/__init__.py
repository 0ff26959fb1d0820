"""The decision plane: frozen feature rows in, validated recommendations out.
Names load on first use, so ``sandbox --help`` skips the SDK import.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "sandbox.decision.clients": ["make_client"],
    "sandbox.decision.drift": ["check_drift", "load_thresholds"],
    "sandbox.decision.pricing": ["load_price_book"],
    "sandbox.decision.prompt": [
        "OUTPUT_SCHEMA",
        "PROMPT_VERSION",
        "SYSTEM_PROMPT",
        "InvalidAnswer",
        "build_params",
        "parse_answer",
        "validate_answer",
    ],
    "sandbox.decision.steps": ["infer", "prepare_features", "run_llm_inference", "write_results"],
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value = getattr(importlib.import_module(_HOME[name]), name)
    return value
