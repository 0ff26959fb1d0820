"""How the fake counts tokens: characters / 4, times the model's tokenizer ratio."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["TOKENIZER_RATIO", "input_tokens", "text_chars", "text_of", "tokens_for"]

TOKENIZER_RATIO: dict[str, float] = {
    "claude-haiku-5-5": 1.3,
    "claude-sonnet-5-5": 1.3,
}
"""Tokens per token of the older tokenizer (Claude Haiku 4.5, Sonnet 4.6: 1.0, the default).

Claude Haiku 5.5 and Sonnet 5.5 use the newer tokenizer, which counts ~30 % more tokens for
the same text, input and output alike.
"""


def text_of(content: Any) -> str:
    """The text of a message's ``content`` (a string, or a list of text blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def text_chars(params: dict) -> int:
    """Characters the model reads: system prompt, messages, and the output schema if sent."""
    chars = len(text_of(params.get("system", "")))
    chars += sum(len(text_of(m.get("content"))) for m in params.get("messages", []))
    fmt = (params.get("output_config") or {}).get("format")
    if fmt:
        chars += len(json.dumps(fmt.get("schema", {})))
    return chars


def input_tokens(params: dict, model_id: str) -> int:
    """ceil(characters / 4 x the model's ratio) over what the model reads."""
    return tokens_for(text_chars(params), model_id)


def tokens_for(chars: int, model_id: str) -> int:
    """Tokens of ``chars`` characters of text in ``model_id``'s tokenizer."""
    return math.ceil(chars / 4 * TOKENIZER_RATIO.get(model_id, 1.0) - 1e-9)
