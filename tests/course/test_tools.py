"""The course's tools: the fault storm and its counts, the local Messages API, the store cleaner."""

from __future__ import annotations

import json
from pathlib import Path

from instructor.tools import WIDGET_VIEW, clean
from sandbox import course
from sandbox.config import environment
from tests.conftest import AS_OF


def test_fault_storm_counts_the_wire_and_starts_fresh_each_time(warehouse: Path) -> None:
    from sandbox.decision import prepare_features

    prepare_features(AS_OF)
    first = course.fault_storm(str(AS_OF), faults="rate_limit=0.5,malformed=0.2", rows=60)
    assert first.run.done + first.run.failed == 60
    assert first.http["429 rate limit"] > 0 and first.retries == first.http["429 rate limit"]
    assert first.http["answered"] >= 60 and first.run.failures_by_class
    again = course.fault_storm(str(AS_OF), faults="rate_limit=0.5,malformed=0.2", rows=60)
    assert (
        again.http == first.http and again.run.done == first.run.done
    )  # deterministic, not "0 pending"
    calm = course.fault_storm(str(AS_OF), faults="", rows=60)
    assert calm.retries == 0 and calm.run.failed == 0


def test_local_messages_api_serves_the_real_client_over_http() -> None:
    from sandbox.decision.clients import make_client
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.prompt import build_params, parse_answer

    book = load_price_book()
    with course.local_messages_api() as api:
        with environment(
            {"ANTHROPIC_API_KEY": course.LOCAL_API_KEY, "ANTHROPIC_BASE_URL": api.url}
        ):
            client = make_client("anthropic")
            message = client.messages.create(**build_params(book.get(book.primary), "u1", "User has been on the pro plan for 3 days. No activity recorded since signing up."))  # fmt: skip
    assert api.url.startswith("http://127.0.0.1:") and api.requests == 1
    assert api.api_keys == {course.LOCAL_API_KEY}
    assert parse_answer(message).recommendation_type == "feature_discovery"


def test_store_cleaner_drops_widget_views_and_colour_codes(tmp_path: Path) -> None:
    nb = {
        "cells": [{"cell_type": "code", "source": [], "metadata": {"execution": {"iopub.status.busy": "x"}}, "execution_count": 1, "outputs": [
            {"output_type": "display_data", "metadata": {},
             "data": {WIDGET_VIEW: {"model_id": "x"}, "text/plain": ["dbt build: 0node"]}},
            {"output_type": "stream", "name": "stdout", "text": ["\x1b[32minfo\x1b[0m done\n"]},
            {"output_type": "execute_result", "metadata": {}, "execution_count": 1, "data": {"text/plain": ["42"]}},
        ]}],
        "metadata": {"widgets": {"state": {}}}, "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    assert clean(path) == 1
    cleaned = json.loads(path.read_text())
    outputs = cleaned["cells"][0]["outputs"]
    assert [o["output_type"] for o in outputs] == ["stream", "execute_result"]
    assert outputs[0]["text"] == ["info done\n"] and "widgets" not in cleaned["metadata"]
    assert cleaned["cells"][0]["metadata"] == {}


def test_stored_notebooks_hold_no_widget_views_ansi_or_local_paths() -> None:
    from sandbox.config import ROOT

    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text()
        assert WIDGET_VIEW not in text, f"{path.name}: run python instructor/tools.py clean"
        assert "\\u001b[" not in text and str(ROOT) not in text, path.name
        assert "iopub.execute_input" not in text, f"{path.name}: execution timestamps"
