"""Exercise 03.3, build it: one ``messages.create`` call of your own, and its validation.

The check records the request body on the offline fake, with ``build_params`` off, and has
the fake answer out of range once: a validated answer must not come back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.course.verdicts import Verdict, exercise, helpers_off, require


@dataclass
class RecordedExchange:
    """One HTTP request the SDK sent to the fake, and the response it got back."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    response: dict[str, Any] = field(default_factory=dict)


def recording_client(*, faults: str | None = None, max_retries: int = 0):
    """An ``anthropic.Anthropic`` client on the offline fake that records every exchange.

    Returns ``(client, exchanges)``: each HTTP request the SDK builds and the fake's response,
    as the bytes went over the (in-process) wire. ``faults`` is a ``SANDBOX_MOCK_FAULTS`` spec.
    """
    import anthropic
    import httpx2

    from sandbox.decision.fake import OFFLINE_BASE_URL, FakeMessagesAPI, Faults

    fake = FakeMessagesAPI(faults=Faults.parse(faults))
    exchanges: list[RecordedExchange] = []

    def handle(request):
        response = fake.handle(request)
        try:
            answer = json.loads(response.content or b"{}")
        except ValueError:
            answer = {"raw": response.content.decode(errors="replace")}
        headers = {
            k: ("<redacted>" if k.lower() in ("x-api-key", "authorization") else v)
            for k, v in request.headers.items()
        }
        exchanges.append(
            RecordedExchange(
                request.method,
                str(request.url),
                headers,
                json.loads(request.content or b"{}"),
                response.status_code,
                answer,
            )
        )
        return response

    client = anthropic.Anthropic(
        api_key="mock-key-offline",
        base_url=OFFLINE_BASE_URL,
        http_client=anthropic.DefaultHttpxClient(transport=httpx2.MockTransport(handle)),
        max_retries=max_retries,
    )
    return client, exchanges


_CHECK_SUMMARIES = (
    "User has been on the free plan for 37 days. Last active 1 day ago. Performed 24 events of 2 types in the last 7 days.",
    "User has been on the enterprise plan for 912 days. Last active 3 days ago. Performed 5 events of 3 types in the last 7 days.",
    "User has been on the starter plan for 5 days. No activity recorded since signing up.",
    "User has been on the pro plan for 61 days. Last active 19 days ago. No events in the last 7 days.",
)


def _kind(answer) -> str | None:
    return getattr(answer, "recommendation_type", None) or (
        answer.get("recommendation_type") if isinstance(answer, dict) else None
    )


def _request_problem(sent: list, summary: str) -> str | None:
    """What is wrong with the one request sent for ``summary`` (None when nothing is)."""
    from sandbox.decision.prompt import OUTPUT_SCHEMA

    posts = [x for x in sent if x.url.endswith("/v1/messages")]
    if len(posts) != 1:
        return f"{len(posts)} requests to /v1/messages for one summary: send exactly one."
    body = posts[0].body
    fmt = (body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        return 'pass output_config={"format": {"type": "json_schema", "schema": ...}}.'
    if set(fmt["schema"].get("properties", {})) != set(OUTPUT_SCHEMA["properties"]):
        return "the schema's properties are not the answer's fields: use OUTPUT_SCHEMA."
    if summary not in json.dumps(body.get("messages", [])):
        return "the user message must carry the summary you were given."
    if not body.get("system"):
        return "send the system prompt too (`system=`): it says how to answer."
    return None


def _one(recommend_one, summary: str, faults: str | None = None):
    """Call the learner's function once; returns (answer, exchanges, helpers used, error)."""
    client, sent = recording_client(faults=faults)
    with helpers_off("sandbox.decision.prompt") as used:
        try:
            answer, error = recommend_one(client, summary), None
        except Exception as exc:  # the learner's error is an answer to explain
            answer, error = None, exc
    return answer, sent, [u for u in used if u.endswith(".build_params")], error


@exercise("03.3")
def check_one_request(recommend_one) -> Verdict:
    """Exercise 03.3: ``recommend_one(client, summary)`` sends one structured request and
    returns the validated answer; an answer the schema cannot stop (85 for 0.85) must raise."""
    from sandbox.decision.fake import recommend

    if not callable(recommend_one):
        require(None, "define `recommend_one(client, summary)` above.")
    for summary in _CHECK_SUMMARIES:
        answer, sent, used, error = _one(recommend_one, summary)
        if answer is None and error is None and not sent:
            require(None, "`recommend_one` returns None and sends nothing: write its body.")
        if used:
            return Verdict(False, "your function called build_params(), the engine's request "
                           "builder: the check runs without it. Write the call yourself.")  # fmt: skip
        if error is not None:
            why = (
                sent[-1].response.get("error", {}).get("message")
                if sent and sent[-1].status >= 400
                else None
            )
            return Verdict(False, f"your function raised {type(error).__name__}: {why or error}")
        problem = _request_problem(sent, summary)
        if problem:
            return Verdict(False, problem)
        if _kind(answer) != recommend(summary).recommendation_type:
            return Verdict(
                False, "return the validated answer (e.g. what parse_answer(message) gives)."
            )
    bad, _, _, _ = _one(recommend_one, _CHECK_SUMMARIES[0], faults="out_of_range=1")
    if bad is not None:
        return Verdict(False, "an answer with confidence_score 85 came back as a result: "
                       "validate it (pydantic, or parse_answer) and raise instead.")  # fmt: skip
    return Verdict(
        True, "one structured request per row, and an out-of-range answer never gets through."
    )
