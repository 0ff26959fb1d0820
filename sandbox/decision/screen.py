"""Screen an answer before it is published: text a reader's screen would act on is held back."""

from __future__ import annotations

import re

UNSAFE_CONTENT = "unsafe_content"
"""The ``error_class`` of an answer this screen holds back."""

_TLDS = "com|net|org|io|co|info|biz|xyz|ru|ly"

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
"""The rules, applied to the lower-cased text: a name, words one of which must appear
before the pattern is tried (a cheap first test), and the pattern."""


def screen(*texts: str) -> str | None:
    """``None`` when every text is clean, else which rules it breaks (never the text itself)."""
    lower = "\n".join(texts).lower()
    names = [
        name
        for name, words, pattern in RULES
        if (not words or any(word in lower for word in words)) and pattern.search(lower)
    ]
    if not names:
        return None
    return f"the answer holds {', '.join(names)}: held back from publishing (see raw_text)"
