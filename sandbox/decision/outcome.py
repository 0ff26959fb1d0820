"""One outcome classifier for realtime and batch: an API answer becomes a result, a failure or a retry.

``failure``: an answer that cannot be published (``permanent`` when the API rejected the
request); ``retry`` a transient error; ``fatal`` an error no retry fixes (the run stops).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sandbox.decision.prompt import InvalidAnswer, Recommendation, answer_text, parse_answer
from sandbox.decision.records import error_class, is_fatal
from sandbox.decision.screen import UNSAFE_CONTENT, screen

PERMANENT_BATCH_ERRORS = frozenset(
    {"invalid_request_error", "not_found_error", "permission_error", "authentication_error"}
)
"""Error types of a batch item that the same request would get again."""


@dataclass(frozen=True)
class Outcome:
    """What one answer means for its row (see the module docstring)."""

    kind: str
    status: str
    """The ``decision.llm_calls.status``: ok, invalid, unsafe, error, errored, canceled or expired."""
    answer: Recommendation | None = None
    error_class: str | None = None
    message: str = ""
    raw_text: str | None = None
    permanent: bool = False
    exc: BaseException | None = None

    @property
    def is_result(self) -> bool:
        """True for a valid answer."""
        return self.kind == "result"


@dataclass(frozen=True)
class TextBlock:
    """One content block of a reply (only ``text`` blocks carry the answer)."""

    type: str
    text: str = ""


@dataclass(frozen=True)
class Usage:
    """The tokens a reply was billed for."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Reply:
    """The fields of a Messages API response that the engine reads, taken from its JSON body.

    Cheaper than ``.parse()``-ing the SDK's ``Message`` for four fields; the SDK still sends,
    retries and raises its typed errors. :func:`from_message` accepts either.
    """

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
    if is_fatal(exc):
        return Outcome("fatal", "error", None, error_class(exc), str(exc), exc=exc)
    return Outcome("retry", "error", None, error_class(exc), str(exc) or repr(exc), exc=exc)


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
        return Outcome(
            "failure" if permanent else "retry",
            "errored",
            None,
            f"batch_{err_type}",
            message,
            permanent=permanent,
        )
    return Outcome("retry", kind, None, f"batch_{kind}", f"the request was {kind} before it ran")


def classify(item: Any) -> Outcome:
    """Dispatch on what came back: an exception, a batch result item or a ``Message``."""
    if isinstance(item, BaseException):
        return from_exception(item)
    if getattr(item, "type", None) in ("succeeded", "errored", "canceled", "expired"):
        return from_batch_result(item)
    return from_message(item)


__all__ = [
    "PERMANENT_BATCH_ERRORS",
    "Outcome",
    "Reply",
    "classify",
    "from_batch_result",
    "from_exception",
    "from_message",
]
