"""Request validation as strict as the Messages API: parameters, models and output schemas.

Unknown or removed parameters are 400s, an unknown model a 404; JSON Schema keywords the
SDK's ``transform_schema`` would not emit (numeric ranges, string lengths) are 400s too.
"""

from __future__ import annotations

from typing import Any

from sandbox.decision.fake.errors import ApiError
from sandbox.decision.fake.thinking import check_thinking_for_model
from sandbox.decision.pricing import ModelPrice, PriceBook

__all__ = [
    "COUNT_TOKENS_PARAMS",
    "MESSAGE_PARAMS",
    "REMOVED_PARAMS",
    "STRING_FORMATS",
    "check_count_tokens",
    "check_message",
    "check_schema",
]

MESSAGE_PARAMS = frozenset(
    {
        "model", "max_tokens", "messages", "cache_control", "container", "diagnostics",
        "inference_geo", "metadata", "output_config", "service_tier", "speed",
        "stop_sequences", "stream", "system", "thinking", "tool_choice", "tools",
        "user_profile_id",
    }
)  # fmt: skip
COUNT_TOKENS_PARAMS = frozenset(
    {
        "model", "messages", "cache_control", "output_config", "speed", "system",
        "thinking", "tool_choice", "tools", "user_profile_id",
    }
)  # fmt: skip
REMOVED_PARAMS = {
    "temperature": "sampling parameters are not accepted by this API version",
    "top_p": "sampling parameters are not accepted by this API version",
    "top_k": "sampling parameters are not accepted by this API version",
    "output_format": "it moved to output_config.format",
}
STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
DEFAULT_MAX_OUTPUT_TOKENS = 64_000
MIN_THINKING_BUDGET = 1024
_COMMON_KEYWORDS = frozenset(
    {"type", "description", "title", "enum", "const", "anyOf", "allOf", "$ref", "$defs"}
)
_KEYWORDS_BY_TYPE = {
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "string": frozenset({"format", "pattern"}),
    "array": frozenset({"items", "minItems"}),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _find_model(book: PriceBook, name: Any) -> ModelPrice | None:
    for model in book.models.values():
        if name == model.id or name in model.aliases:
            return model
    return None


def _check_keys(params: dict, allowed: frozenset[str], prefix: str = "") -> None:
    for key in params:
        if key in allowed:
            continue
        if key in REMOVED_PARAMS and not prefix:
            raise ApiError.invalid(f"{key}: this parameter was removed ({REMOVED_PARAMS[key]})")
        raise ApiError.invalid(f"{prefix}{key}: Extra inputs are not permitted")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise ApiError.invalid("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError.invalid(f"messages.{i}: Input should be an object")
        _check_keys(message, frozenset({"role", "content"}), f"messages.{i}.")
        if message.get("role") not in ("user", "assistant"):
            raise ApiError.invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            if not content:
                raise ApiError.invalid(f"messages.{i}: text content blocks must be non-empty")
        elif isinstance(content, list) and content:
            for j, block in enumerate(content):
                if not isinstance(block, dict) or "type" not in block:
                    raise ApiError.invalid(f"messages.{i}.content.{j}.type: Field required")
        else:
            raise ApiError.invalid(f"messages.{i}.content: Field required")


def _check_system(system: Any) -> None:
    if isinstance(system, str):
        return
    if isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        return
    raise ApiError.invalid("system: Input should be a string or a list of text blocks")


def _check_output_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise ApiError.invalid("output_config: Input should be an object")
    _check_keys(config, frozenset({"effort", "format"}), "output_config.")
    effort = config.get("effort")
    if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
        raise ApiError.invalid(
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
        )
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise ApiError.invalid("output_config.format.type: Input should be 'json_schema'")
    _check_keys(fmt, frozenset({"type", "schema"}), "output_config.format.")
    if not isinstance(fmt.get("schema"), dict):
        raise ApiError.invalid("output_config.format.schema: Field required")
    check_schema(fmt["schema"])


def check_schema(schema: dict, path: str = "output_config.format.schema") -> None:
    """Raise a 400 for a JSON schema structured outputs would not accept."""
    if not isinstance(schema, dict):
        raise ApiError.invalid(f"{path}: a schema must be an object")
    kind = schema.get("type")
    if isinstance(kind, list):
        raise ApiError.invalid(f"{path}.type: use anyOf instead of a list of types")
    allowed = _COMMON_KEYWORDS | _KEYWORDS_BY_TYPE.get(kind, frozenset())
    for key in schema:
        if key not in allowed:
            raise ApiError.invalid(
                f"{path}: For '{kind or 'untyped'}' type, property '{key}' is not supported"
            )
    if kind == "object":
        if schema.get("additionalProperties") is not False:
            raise ApiError.invalid(
                f"{path}: For 'object' type, 'additionalProperties' must be explicitly set to false"
            )
        for name, sub in (schema.get("properties") or {}).items():
            check_schema(sub, f"{path}.properties.{name}")
    elif kind == "string" and "format" in schema and schema["format"] not in STRING_FORMATS:
        raise ApiError.invalid(f"{path}: string format '{schema['format']}' is not supported")
    elif kind == "array":
        if schema.get("minItems", 0) not in (0, 1):
            raise ApiError.invalid(f"{path}: minItems values other than 0 or 1 are not supported")
        if isinstance(schema.get("items"), dict):
            check_schema(schema["items"], f"{path}.items")
    for key in ("anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            check_schema(sub, f"{path}.{key}.{i}")
    for name, sub in (schema.get("$defs") or {}).items():
        check_schema(sub, f"{path}.$defs.{name}")
    for value in schema.get("enum") or []:
        if isinstance(value, dict | list):
            raise ApiError.invalid(f"{path}.enum: only strings, numbers, booleans and null")


def _check_thinking(thinking: Any, max_tokens: int | None) -> None:
    kinds = ("enabled", "disabled", "adaptive", "between_tools")
    if not isinstance(thinking, dict) or thinking.get("type") not in kinds:
        raise ApiError.invalid(
            "thinking.type: Input should be 'enabled', 'disabled', 'adaptive' or 'between_tools'"
        )
    kind = thinking["type"]
    allowed = {"enabled": {"type", "budget_tokens", "display"}, "adaptive": {"type", "display"}}
    _check_keys(thinking, frozenset(allowed.get(kind, {"type"})), f"thinking.{kind}.")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not _is_int(budget) or budget < MIN_THINKING_BUDGET:
            raise ApiError.invalid(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to "
                f"{MIN_THINKING_BUDGET}"
            )
        if max_tokens is not None and budget >= max_tokens:
            raise ApiError.invalid("`max_tokens` must be greater than `thinking.budget_tokens`")


def _check_common(params: dict, book: PriceBook, max_tokens: int | None) -> ModelPrice:
    if not isinstance(params.get("model"), str) or not params["model"]:
        raise ApiError.invalid("model: Input should be a valid string")
    _check_messages(params.get("messages"))
    if "system" in params:
        _check_system(params["system"])
    if "output_config" in params:
        _check_output_config(params["output_config"])
    if "thinking" in params:
        _check_thinking(params["thinking"], max_tokens)
    model = _find_model(book, params["model"])
    if model is None:
        raise ApiError(404, "not_found_error", f"model: {params['model']}")
    check_thinking_for_model(model.id, params)
    return model


def check_message(params: Any, book: PriceBook, *, in_batch: bool = False) -> ModelPrice:
    """Validate ``POST /v1/messages`` parameters; the model they name, or an :class:`ApiError`."""
    if not isinstance(params, dict):
        raise ApiError.invalid("body: Input should be an object")
    for required in ("model", "max_tokens", "messages"):
        if required not in params:
            raise ApiError.invalid(f"{required}: Field required")
    _check_keys(params, MESSAGE_PARAMS)
    max_tokens = params["max_tokens"]
    if not _is_int(max_tokens) or max_tokens < 1:
        raise ApiError.invalid("max_tokens: Input should be a positive integer")
    if params.get("stream"):
        raise ApiError.invalid(
            "stream: streaming is not available in a Message Batch"
            if in_batch
            else "stream: the offline fake does not stream; send stream=false"
        )
    meta = params.get("metadata")
    if meta is not None:
        if not isinstance(meta, dict):
            raise ApiError.invalid("metadata: Input should be an object")
        _check_keys(meta, frozenset({"user_id"}), "metadata.")
        user = meta.get("user_id")
        if user is not None and (not isinstance(user, str) or len(user) > 256):
            raise ApiError.invalid("metadata.user_id: String should have at most 256 characters")
    model = _check_common(params, book, max_tokens)
    limit = getattr(model, "max_output_tokens", None) or DEFAULT_MAX_OUTPUT_TOKENS
    if max_tokens > limit:
        raise ApiError.invalid(
            f"max_tokens: {max_tokens} > {limit}, which is the maximum allowed number of "
            f"output tokens for {model.id}"
        )
    return model


def check_count_tokens(params: Any, book: PriceBook) -> ModelPrice:
    """Validate ``POST /v1/messages/count_tokens`` parameters (no ``max_tokens``, no ``metadata``)."""
    if not isinstance(params, dict):
        raise ApiError.invalid("body: Input should be an object")
    for required in ("model", "messages"):
        if required not in params:
            raise ApiError.invalid(f"{required}: Field required")
    _check_keys(params, COUNT_TOKENS_PARAMS)
    return _check_common(params, book, None)
