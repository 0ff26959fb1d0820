"""One outcome classifier for realtime and batch: an API answer becomes a result, a failure
(cannot be published; ``permanent`` when the API rejected the request), a ``retry`` (a
transient error) or ``fatal`` (no retry fixes it).
"""

from __future__ import annotations

import json
import re
from collections import namedtuple
from dataclasses import dataclass
from typing import Any

import anthropic

from sandbox.decision.prompt import InvalidAnswer, Recommendation, answer_text, parse_answer

# error types of a batch item that the same request would get again
PERMANENT_BATCH_ERRORS = frozenset(
    {"invalid_request_error", "not_found_error", "permission_error", "authentication_error"}
)
UNSAFE_CONTENT = "unsafe_content"  # the error_class of an answer the screen holds back

_TLDS = "com|net|org|io|co|info|biz|xyz|ru|ly"

# the screen's rules on the lower-cased text: a name, words one of which must appear before the
# pattern is tried (a cheap first test), and the pattern
RULES: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    (
        "markup",
        ("<", "=", "javascript"),
        re.compile(r"<\s*/?\s*[a-z!][^>]*>|\bon[a-z]+\s*=|javascript\s*:"),
    ),
    (
        "instructions",
        ("ignore", "disregard", "forget", "override", "system prompt", "you are now"),
        re.compile(
            r"\b(?:ignore|disregard|forget|override)\b.{0,40}?\b(?:instructions?|prompts?|rules)\b"
            r"|\bsystem prompt\b|\byou are now\b",
            re.S,
        ),
    ),
    ("url", (), re.compile(rf"://|www\.|\.(?:{_TLDS})\b")),
    (
        "refund or credit",
        (),
        re.compile(r"refund|reimburs|compensat|money[- ]back|credit|chargeback"),
    ),
)


def screen(*texts: str) -> str | None:
    """Hold back text a reader's screen would act on: ``None`` when every text is clean, else
    which rules it breaks (never the text itself)."""
    lower = "\n".join(texts).lower()
    names = [
        name
        for name, words, pattern in RULES
        if (not words or any(word in lower for word in words)) and pattern.search(lower)
    ]
    if not names:
        return None
    return f"the answer holds {', '.join(names)}: held back from publishing (see raw_text)"


@dataclass(frozen=True)
class Outcome:
    """What one answer means for its row (see the module docstring)."""

    kind: str
    status: str  # decision.llm_calls.status: ok, invalid, unsafe, error, errored, canceled, expired
    answer: Recommendation | None = None
    error_class: str | None = None
    message: str = ""
    raw_text: str | None = None
    permanent: bool = False
    exc: BaseException | None = None


# plain tuples: built for every answer, and quicker to build than frozen dataclasses
TextBlock = namedtuple("TextBlock", "type text")
Usage = namedtuple("Usage", "input_tokens output_tokens", defaults=(0, 0))


@dataclass(frozen=True)
class Reply:
    """The fields of a Messages API response the engine reads, from its JSON body: cheaper than
    ``.parse()``-ing the SDK's ``Message`` (the SDK still sends, retries and raises)."""

    content: tuple[TextBlock, ...]
    stop_reason: str | None
    usage: Usage

    @classmethod
    def from_body(cls, body: bytes | str) -> Reply:
        """The reply in a 200 response's body; :class:`ValueError` when it is not one."""
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("type") != "message":
            raise ValueError("the response body is not a Messages API message")
        usage = data.get("usage") or {}
        return cls(
            content=tuple(
                TextBlock(str(b.get("type") or ""), str(b.get("text") or ""))
                for b in data.get("content") or ()
                if isinstance(b, dict)
            ),
            stop_reason=data.get("stop_reason"),
            usage=Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)),
        )


def from_message(message: Any) -> Outcome:
    """A ``Message`` or :class:`Reply` (realtime, or a succeeded batch item): a result, or an
    invalid or unsafe answer (the screen runs here, so realtime and batch share it)."""
    try:
        answer = parse_answer(message)
    except InvalidAnswer as exc:
        return Outcome("failure", "invalid", None, exc.error_class, str(exc), exc.raw_text)
    why = screen(answer.recommendation_text, answer.reasoning)
    if why is not None:
        return Outcome("failure", "unsafe", None, UNSAFE_CONTENT, why, answer_text(message))
    return Outcome("result", "ok", answer)


def from_exception(exc: BaseException) -> Outcome:
    """An SDK exception after its own retries: fatal (stop the run) or a retry next run."""
    kind = "fatal" if is_fatal(exc) else "retry"
    return Outcome(kind, "error", None, type(exc).__name__, str(exc) or repr(exc), exc=exc)


def from_batch_result(result: Any) -> Outcome:
    """One Message Batch result item (``succeeded``, ``errored``, ``canceled``, ``expired``)."""
    kind = result.type
    if kind == "succeeded":
        return from_message(result.message)
    if kind == "errored":
        err = result.error.error
        err_type = getattr(err, "type", "api_error") or "api_error"
        message = getattr(err, "message", "") or err_type
        permanent = err_type in PERMANENT_BATCH_ERRORS
        kind = "failure" if permanent else "retry"
        return Outcome(kind, "errored", None, f"batch_{err_type}", message, permanent=permanent)
    return Outcome("retry", kind, None, f"batch_{kind}", f"the request was {kind} before it ran")


def is_fatal(exc: BaseException) -> bool:
    """True for errors no retry can fix: the SDK already retried 408, 409, 429, 5xx and lost
    connections, and any other status would fail every following request the same way."""
    return (
        isinstance(exc, anthropic.APIStatusError)
        and exc.status_code < 500
        and exc.status_code not in (408, 409, 429)
    )


def explain_fatal(exc: anthropic.APIStatusError, model: str) -> str:
    """The cause and the fix of a run-stopping API error, in one sentence."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    detail, status = str(detail or exc.message), exc.status_code
    return {
        401: f"the API rejected the key (401 authentication_error: {detail}): check "
        "ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL if you use a gateway), or run with --llm mock",
        403: f"the key may not use {model} (403 permission_error: {detail}): pick another model "
        "or key",
        404: f"the API does not know {model} (404 not_found_error: {detail}): fix the model id in "
        "sandbox/decision/models.json or --model",
        400: f"the API rejected the request as invalid (400 invalid_request_error: {detail}): "
        "check the model settings in sandbox/decision/models.json and the prompt in "
        "sandbox/decision/prompt.py",
    }.get(
        status, f"the API answered {status} ({detail}); retrying would not help, so the run stopped"
    )


def api_reason(exc: BaseException) -> str:
    """An API error in one line: its class, HTTP status and message."""
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {exc}"
