"""The decision plane: frozen feature rows in, validated recommendations out.

``prepare_features`` (mart -> ``decision.inference_inputs``), ``run_llm_inference`` (pending
rows -> staging, failures, ledger), ``write_results`` (staging -> ``marts.user_recommendations``)
and ``infer`` (the three). Names load on first use, so ``sandbox --help`` skips the SDK import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "HIGH_STAKES": "sandbox.decision.prompt",
    "PROMPT_VERSION": "sandbox.decision.prompt",
    "RECOMMENDATION_TYPES": "sandbox.decision.prompt",
    "Recommendation": "sandbox.decision.prompt",
    "InferenceSummary": "sandbox.decision.summary",
    "STATUSES": "sandbox.decision.summary",
    "OUTPUT_SCHEMA": "sandbox.decision.prompt",
    "SYSTEM_PROMPT": "sandbox.decision.prompt",
    "InvalidAnswer": "sandbox.decision.prompt",
    "build_params": "sandbox.decision.prompt",
    "parse_answer": "sandbox.decision.prompt",
    "validate_answer": "sandbox.decision.prompt",
    "load_price_book": "sandbox.decision.pricing",
    "check_drift": "sandbox.decision.drift",
    "load_thresholds": "sandbox.decision.drift",
    "make_client": "sandbox.decision.clients",
    "infer": "sandbox.decision.steps",
    "prepare_features": "sandbox.decision.steps",
    "run_llm_inference": "sandbox.decision.pipeline",
    "write_results": "sandbox.decision.steps",
    "InferenceOptions": "sandbox.decision.pipeline",
}

__all__ = [
    "HIGH_STAKES",
    "OUTPUT_SCHEMA",
    "PROMPT_VERSION",
    "InferenceOptions",
    "RECOMMENDATION_TYPES",
    "STATUSES",
    "SYSTEM_PROMPT",
    "InferenceSummary",
    "InvalidAnswer",
    "Recommendation",
    "build_params",
    "check_drift",
    "infer",
    "load_price_book",
    "load_thresholds",
    "make_client",
    "parse_answer",
    "prepare_features",
    "run_llm_inference",
    "validate_answer",
    "write_results",
]

if TYPE_CHECKING:
    from sandbox.decision.clients import make_client
    from sandbox.decision.drift import check_drift, load_thresholds
    from sandbox.decision.pipeline import InferenceOptions, run_llm_inference
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.prompt import (
        HIGH_STAKES,
        OUTPUT_SCHEMA,
        PROMPT_VERSION,
        RECOMMENDATION_TYPES,
        SYSTEM_PROMPT,
        InvalidAnswer,
        Recommendation,
        build_params,
        parse_answer,
        validate_answer,
    )
    from sandbox.decision.steps import infer, prepare_features, write_results
    from sandbox.decision.summary import STATUSES, InferenceSummary


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sandbox.decision' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
