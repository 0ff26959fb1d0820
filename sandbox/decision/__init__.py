"""The decision plane: frozen feature rows in, validated recommendations out.

Steps (each reads and writes tables, never the other planes' code)::

    prepare_features(date)    marts.fct_user_features_for_ai -> decision.inference_inputs
    run_llm_inference(date)   pending inputs -> decision.recommendations_staging
                              (+ decision.inference_failures, decision.llm_calls)
    write_results(date)       staging -> marts.user_recommendations (idempotent upsert)
    infer(date)               the three in a row

Every API response is appended to the answer journal (:mod:`sandbox.decision.journal`)
before it is committed, so a run that dies or cannot commit loses no answer: the next run
commits the journal first and sends again only what was never answered.

The LLM is the ``anthropic`` SDK either way: ``llm="anthropic"`` calls Claude,
``llm="mock"`` (the default) answers through a deterministic fake Messages API
(:mod:`sandbox.decision.fake`) plugged in as the SDK's HTTP transport.

Names are imported on first use, so ``sandbox --help`` does not pay for the SDK import.
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
    "make_client": "sandbox.decision.clients",
    "infer": "sandbox.decision.steps",
    "prepare_features": "sandbox.decision.steps",
    "run_llm_inference": "sandbox.decision.pipeline",
    "write_results": "sandbox.decision.steps",
    "InferenceOptions": "sandbox.decision.pipeline",
}

__all__ = [
    "HIGH_STAKES",
    "PROMPT_VERSION",
    "InferenceOptions",
    "RECOMMENDATION_TYPES",
    "STATUSES",
    "InferenceSummary",
    "Recommendation",
    "infer",
    "make_client",
    "prepare_features",
    "run_llm_inference",
    "write_results",
]

if TYPE_CHECKING:
    from sandbox.decision.clients import make_client
    from sandbox.decision.pipeline import InferenceOptions, run_llm_inference
    from sandbox.decision.prompt import (
        HIGH_STAKES,
        PROMPT_VERSION,
        RECOMMENDATION_TYPES,
        Recommendation,
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
