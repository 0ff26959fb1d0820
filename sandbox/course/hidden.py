"""Checks that run the learner's query or function on cases the lesson never showed: queries on
fresh random tables, functions on random inputs with the shipped helper switched off (03.3's
requests go to the offline fake, which records them); the expected result is never a constant."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from types import SimpleNamespace

from sandbox.course.verdicts import (
    Blank,
    Miss,
    blank,
    call_each,
    digest,
    exercise,
    number,
    same_money,
)

DAY = date(2026, 11, 1)
TYPES = ("upgrade_prompt", "re_engagement", "feature_discovery", "churn_risk")
RECOMMENDATIONS = (
    "marts.user_recommendations "
    "(execution_date date, user_id varchar, recommendation_type varchar, confidence_score double)"
)
FEATURES = (
    "marts.fct_user_features_for_ai (user_id varchar, plan_tier varchar, "
    "days_since_signup integer, days_since_last_event integer, event_count_7d integer)"
)
LEDGER = (
    "decision.llm_calls "
    "(execution_date date, user_id varchar, purpose varchar, status varchar, cost_usd double)"
)


def run_hidden(sql: str, table: str, rows: list[tuple]) -> list[tuple]:
    """Run ``sql`` on an in-memory DuckDB whose only table, ``table`` (its DDL), holds ``rows``."""
    import duckdb

    name = table.split()[0]
    with duckdb.connect(":memory:") as con:
        con.execute(f"create schema {name.split('.')[0]}; create table {table}")
        con.executemany(f"insert into {name} values ({', '.join('?' * len(rows[0]))})", rows)
        try:
            return con.execute(sql).fetchall()
        except duckdb.Error as exc:
            raise Miss(f"the query did not run: {str(exc).splitlines()[0]}") from None


def _recommendations(rng: random.Random, top: str) -> list[tuple]:
    """Random answers over three dates: ``top`` leads on 2026-11-01, another type elsewhere."""
    rows = []
    for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)):
        counts = dict(zip(TYPES, rng.sample(range(3, 40), len(TYPES)), strict=True))
        lead = top if day == DAY else rng.choice([t for t in TYPES if t != top])
        counts[lead] = max(counts.values()) + rng.randint(1, 5) + (80 if day != DAY else 0)
        for kind, n in counts.items():
            rows += [(day, f"u{len(rows):06d}", kind, round(rng.random(), 2)) for _ in range(n)]
    rng.shuffle(rows)
    return rows


@exercise("00.2")
def check_top_recommendation(top_sql: str | None) -> str:
    """Exercise 00.2: a query for the most frequent recommendation type of 2026-11-01."""
    if blank(top_sql):
        raise Blank("write your query in `top_sql` above, then run this cell again.")
    rng = random.Random()
    for top in rng.sample(TYPES, 3):  # three different winners: no constant passes
        got = run_hidden(str(top_sql), RECOMMENDATIONS, _recommendations(rng, top))
        if not got or str(got[0][0]).lower() != top:
            raise Miss("on fresh data your query's first row is not the most frequent type of "
                       "2026-11-01: filter the date, group by type, order by count.")  # fmt: skip
    return "your query finds the top type on data it has never seen."


def _features(rng: random.Random) -> list[tuple]:
    """Random mart rows: last events from today to 60 days ago (never exactly 7), or none."""
    days = [0, 1, 6, 8, 29, 30, 31, 45, None, None] + [
        rng.choice([*range(0, 7), *range(8, 61), None]) for _ in range(40)
    ]
    rng.shuffle(days)
    return [
        (f"u{n:06d}", rng.choice(["free", "starter", "pro"]), rng.randint(1, 900), d,
         0 if d is None or d > 7 else rng.randint(1, 30))
        for n, d in enumerate(days)
    ]  # fmt: skip


@exercise("01.1")
def check_fading_users(answer_sql: str | None) -> str:
    """Exercise 01.1: users active in the last 30 days but not in the last 7, on hidden rows."""
    if blank(answer_sql):
        raise Blank("write your query in `answer_sql` above, then run this cell again.")
    rng = random.Random()
    for _ in range(3):
        rows = _features(rng)
        fading = sorted(u for u, *_, d, n in rows if d is not None and n == 0 and d <= 30)
        ids = sorted(str(r[0]) for r in run_hidden(str(answer_sql), FEATURES, rows))
        if ids != fading:
            missing, extra = set(fading) - set(ids), set(ids) - set(fading)
            raise Miss(f"on {len(rows)} fresh rows your query returned {len(ids)} users: "
                       f"{len(missing)} fading ones missing, {len(extra)} that are not fading. "
                       "Hint: mind users with no events at all, and the 30-day edge.")  # fmt: skip
    return "your query picks exactly the fading users, on rows it has never seen."


SUMMARY_CASES = {  # hidden rows of 01.2: digest("01.2", the summary the mart writes for them)
    ("free", 1, None, 0, 0): "ba5b1bede54cf7e7",
    ("enterprise", 730, 1, 1, 1): "a66144c9008a4951",
    ("starter", 12, 0, 7, 3): "f659509ff566a850",
    ("pro", 45, 9, 0, 0): "7ec039e2b0391192",
    ("free", 2, 31, 0, 0): "e1ae4547e1ee5ef8",
    ("starter", 301, 6, 22, 1): "2f6fe970667e81ae",
    ("pro", 88, None, 0, 0): "9978053232afdd82",
}


@exercise("01.2")
def check_summary_function(summarize) -> str:
    """Exercise 01.2: ``summarize(...)`` rewrites the mart's summary in Python, on hidden rows."""
    if not callable(summarize):
        raise Blank("define `summarize(plan_tier, days_since_signup, days_since_last_event, "
                    "event_count_7d, distinct_event_types_7d)` above.")  # fmt: skip
    got = call_each(summarize, SUMMARY_CASES, "summarize")
    for (case, expected), mine in zip(SUMMARY_CASES.items(), got, strict=True):
        if digest("01.2", mine) != expected:
            raise Miss(f"summarize{case} returned {mine!r}, not what the mart writes for that "
                       "row. Hint: re-read the mart's `case` branches and the pluralize macro "
                       "(Step 5).")  # fmt: skip
    return f"{len(SUMMARY_CASES)} hidden rows, every sentence as the mart writes it."


# hidden summaries of exercises 03.1 and 03.3, one per rule of the fake
EVERY_RULE = (
    "User has been on the pro plan for 3 days. No activity recorded since signing up.",
    "User has been on the free plan for 40 days. No activity recorded since signing up.",
    "User has been on the starter plan for 90 days. Last active 44 days ago. No events in the last 7 days.",
    "User has been on the free plan for 61 days. Last active 17 days ago. No events in the last 7 days.",
    "User has been on the enterprise plan for 200 days. Last active 9 days ago. No events in the last 7 days.",
    "User has been on the starter plan for 20 days. Last active 2 days ago. Performed 31 events of 4 types in the last 7 days.",
    "User has been on the pro plan for 75 days. Last active 1 day ago. Performed 31 events of 2 types in the last 7 days.",
    "User has been on the enterprise plan for 8 days. Last active 5 days ago. Performed 4 events of 3 types in the last 7 days.",
)


def _summary(rng: random.Random) -> str:
    """A random summary in the mart's shape, covering every rule of the fake."""
    plan, days = rng.choice(["free", "starter", "pro", "enterprise"]), rng.randint(1, 900)
    head = f"User has been on the {plan} plan for {days} day{'s' * (days != 1)}. "
    last = rng.choice([None, *range(0, 14), 14, 20, 29, 30, 31, 60])
    if last is None:
        return head + "No activity recorded since signing up."
    head += f"Last active {last} day{'s' * (last != 1)} ago. "
    if last > 7 or rng.random() < 0.2:
        return head + "No events in the last 7 days."
    events, types = rng.choice([1, 5, 19, 20, 21, 40]), rng.randint(1, 5)
    return head + (f"Performed {events} event{'s' * (events != 1)} of {types} "
                   f"type{'s' * (types != 1)} in the last 7 days.")  # fmt: skip


@exercise("03.1")
def check_type_predictor(predict_type) -> str:
    """Exercise 03.1: ``predict_type(summary)`` applies the fake's rules, on fresh summaries."""
    from sandbox.decision.fake import recommend

    if not callable(predict_type):
        raise Blank("define `predict_type(summary)` above: it returns one of the four types.")
    rng = random.Random()
    summaries = [*EVERY_RULE, *(_summary(rng) for _ in range(60))]
    got = call_each(
        predict_type, [(s,) for s in summaries], "predict_type", "sandbox.decision.fake.answers"
    )
    for summary, mine in zip(summaries, got, strict=True):
        if str(mine).strip().lower() != recommend(summary).recommendation_type:
            raise Miss(f"not for {summary!r}. Hint: the fake applies the *first* rule that "
                       "matches, top to bottom.")  # fmt: skip
    return f"{len(summaries)} fresh summaries, every type as the fake decides."


def _ledger(rng: random.Random) -> list[tuple]:
    """Random ledger rows over three dates and three purposes; failed requests cost nothing."""
    rows = []
    for n in range(300):
        day = rng.choice([DAY - timedelta(days=1), DAY, DAY, DAY + timedelta(days=2)])
        purpose = rng.choice(["primary", "primary", "escalation", "estimate"])
        status = rng.choice(["ok", "ok", "ok", "error"])
        cost = 0.0 if status == "error" or purpose == "estimate" else rng.uniform(1e-4, 3e-2)
        rows.append((day, f"u{n % 90:06d}", purpose, status, cost))
    return rows


@exercise("03.2")
def check_escalation_cost(escalation_sql: str | None) -> str:
    """Exercise 03.2: a query for what the escalations of 2026-11-01 cost, on a hidden ledger."""
    if blank(escalation_sql):
        raise Blank("write your query in `escalation_sql` above.")
    rng = random.Random()
    for _ in range(3):
        rows = _ledger(rng)
        day = [(purpose, cost) for when, _, purpose, _, cost in rows if when == DAY]
        everything, expected = sum(c for _, c in day), sum(c for p, c in day if p == "escalation")
        got = run_hidden(str(escalation_sql), LEDGER, rows)
        value = number(got[0][0] if got and len(got[0]) else None)
        if same_money(value, everything):
            raise Miss("that sums every request of the date: keep only the escalations.")
        if not same_money(value, expected):
            raise Miss("on a fresh ledger your query gives another total: sum cost_usd of the "
                       "escalation requests of 2026-11-01 only.")  # fmt: skip
    return "your query prices the escalations of any ledger."


def recording_client(*, faults: str | None = None):
    """An ``anthropic.Anthropic`` client on the offline fake, and the list of every exchange as it
    went over the wire (method, url, headers, body, status, response); ``faults`` is a
    ``SANDBOX_MOCK_FAULTS`` spec."""
    import anthropic
    import httpx2

    from sandbox.decision.fake import OFFLINE_BASE_URL, FakeMessagesAPI, Faults

    fake = FakeMessagesAPI(faults=Faults.parse(faults))
    exchanges: list[SimpleNamespace] = []

    def handle(request):
        response = fake.handle(request)
        try:
            answer = json.loads(response.content or b"{}")
        except ValueError:  # a batch's results come as JSON lines
            answer = {"raw": response.content.decode(errors="replace")}
        secret = ("x-api-key", "authorization")
        headers = {
            k: "<redacted>" if k.lower() in secret else v for k, v in request.headers.items()
        }
        exchanges.append(SimpleNamespace(
            method=request.method, url=str(request.url), headers=headers,
            body=json.loads(request.content or b"{}"), status=response.status_code, response=answer,
        ))  # fmt: skip
        return response

    client = anthropic.Anthropic(
        api_key="mock-key-offline",
        base_url=OFFLINE_BASE_URL,
        http_client=anthropic.DefaultHttpxClient(transport=httpx2.MockTransport(handle)),
        max_retries=0,
    )
    return client, exchanges


def _check_request(sent: list, summary: str) -> None:
    """A miss naming what is wrong with the one request sent for ``summary``, if anything is."""
    from sandbox.decision.prompt import OUTPUT_SCHEMA

    posts = [x for x in sent if x.url.endswith("/v1/messages")]
    if len(posts) != 1:
        raise Miss(f"{len(posts)} requests to /v1/messages for one summary: send exactly one.")
    body = posts[0].body
    fmt = (body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise Miss('pass output_config={"format": {"type": "json_schema", "schema": ...}}.')
    if set(fmt["schema"].get("properties", {})) != set(OUTPUT_SCHEMA["properties"]):
        raise Miss("the schema's properties are not the answer's fields: use OUTPUT_SCHEMA.")
    if summary not in json.dumps(body.get("messages", [])):
        raise Miss("the user message must carry the summary you were given.")
    if not body.get("system"):
        raise Miss("send the system prompt too (`system=`): it says how to answer.")


@exercise("03.3")
def check_one_request(recommend_one) -> str:
    """Exercise 03.3: ``recommend_one(client, summary)`` sends one structured request, returns the
    validated answer, and raises on one the schema cannot stop (85 for 0.85)."""
    from sandbox.decision.fake import recommend

    if not callable(recommend_one):
        raise Blank("define `recommend_one(client, summary)` above.")
    wires = [recording_client() for _ in EVERY_RULE]
    cases = [(client, summary) for (client, _), summary in zip(wires, EVERY_RULE, strict=True)]
    answers = call_each(
        recommend_one, cases, "recommend_one", "sandbox.decision.prompt:build_params"
    )
    for (_, sent), summary, answer in zip(wires, EVERY_RULE, answers, strict=True):
        _check_request(sent, summary)
        kind = answer.get("recommendation_type") if isinstance(answer, dict) else None
        if getattr(answer, "recommendation_type", kind) != recommend(summary).recommendation_type:
            raise Miss("return the validated answer (e.g. what parse_answer(message) gives).")
    try:
        bad = recommend_one(recording_client(faults="out_of_range=1")[0], EVERY_RULE[0])
    except Exception:  # raising is the right answer to an out-of-range one
        bad = None
    if bad is not None:
        raise Miss("an answer with confidence_score 85 came back as a result: "
                   "validate it (pydantic, or parse_answer) and raise instead.")  # fmt: skip
    return "one structured request per row, and an out-of-range answer never gets through."
