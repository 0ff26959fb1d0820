"""Worked solutions for 06 · Scale and cost (``tests/course/test_checks_06.py`` checks them).

In the notebook, use its ``profile`` (the sample run's); run on its own, this file rebuilds
one from every request in the ledger.
"""

import math

from sandbox.decision.pricing import load_price_book
from sandbox.decision.projection import RateLimits, Tier, profile_ledger
from sandbox.warehouse import query_df

profile = profile_ledger(query_df("select * from decision.llm_calls"))
book = load_price_book()
haiku = book.get(book.primary)

# Exercise 1: one row is one Haiku request; prices are USD per million tokens; the Batches
# API bills batch_discount (0.5) of list price. Nothing else: no fixed cost, no cache discount.
def batch_cost(profile, book, users):
    haiku = book.get(book.primary)
    per_row_usd = (
        profile.primary_input_tokens * haiku.input_usd_per_mtok
        + profile.primary_output_tokens * haiku.output_usd_per_mtok
    ) / 1_000_000
    return per_row_usd * users * book.batch_discount


# Exercise 2: each limit allows so many requests per minute; the smallest binds. Little's law:
# requests in flight = requests per second x seconds per request.
def workers_for(profile, book, tier, latency_s):
    limits = tier.for_model(book.get(book.primary).id)
    requests_per_minute = min(
        limits.requests_per_minute,
        limits.input_tokens_per_minute / profile.primary_input_tokens,
        limits.output_tokens_per_minute / profile.primary_output_tokens,
    )
    return math.ceil(requests_per_minute / 60 * latency_s)


console = Tier(
    "your console", {"haiku": RateLimits(4_000, 400_000, 80_000)}, batch_queue_requests=100_000
)
