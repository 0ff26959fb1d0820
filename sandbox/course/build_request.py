"""Exercise 03.3, build it: one ``messages.create`` call of your own, and its validation.

The check records the request body on the offline fake, with ``build_params`` off, and has
the fake answer out of range once: a validated answer must not come back.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.course.hidden import EVERY_RULE
from sandbox.course.verdicts import Blank, Miss, call_each, exercise


class RecordedExchange:
    """One HTTP request the SDK sent to the fake, and the response it got back."""

    def __init__(self, request, response) -> None:
        self.method: str = request.method
        self.url: str = str(request.url)
        self.headers: dict[str, str] = {
            k: ("<redacted>" if k.lower() in ("x-api-key", "authorization") else v)
            for k, v in request.headers.items()
        }
        self.body: dict[str, Any] = json.loads(request.content or b"{}")
        self.status: int = response.status_code
        try:
            self.response: dict[str, Any] = json.loads(response.content or b"{}")
        except ValueError:  # a batch's results come as JSON lines
            self.response = {"raw": response.content.decode(errors="replace")}


def recording_client(*, faults: str | None = None):
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
        exchanges.append(RecordedExchange(request, response))
        return response

    client = anthropic.Anthropic(
        api_key="mock-key-offline",
        base_url=OFFLINE_BASE_URL,
        http_client=anthropic.DefaultHttpxClient(transport=httpx2.MockTransport(handle)),
        max_retries=0,
    )
    return client, exchanges


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


@exercise("03.3")
def check_one_request(recommend_one) -> str:
    """Exercise 03.3: ``recommend_one(client, summary)`` sends one structured request and
    returns the validated answer; an answer the schema cannot stop (85 for 0.85) must raise."""
    from sandbox.decision.fake import recommend

    if not callable(recommend_one):
        raise Blank("define `recommend_one(client, summary)` above.")
    wires = [recording_client() for _ in EVERY_RULE]
    cases = [(client, summary) for (client, _), summary in zip(wires, EVERY_RULE, strict=True)]
    answers = call_each(
        recommend_one, cases, "recommend_one", "sandbox.decision.prompt:build_params"
    )
    for (_, sent), summary, answer in zip(wires, EVERY_RULE, answers, strict=True):
        problem = _request_problem(sent, summary)
        if problem:
            raise Miss(problem)
        if _kind(answer) != recommend(summary).recommendation_type:
            raise Miss("return the validated answer (e.g. what parse_answer(message) gives).")
    client, _ = recording_client(faults="out_of_range=1")
    try:
        bad = recommend_one(client, EVERY_RULE[0])
    except Exception:  # raising is the right answer to an out-of-range one
        bad = None
    if bad is not None:
        raise Miss("an answer with confidence_score 85 came back as a result: "
                   "validate it (pydantic, or parse_answer) and raise instead.")  # fmt: skip
    return "one structured request per row, and an out-of-range answer never gets through."
