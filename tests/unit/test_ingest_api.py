"""Ingest from an HTTP JSON API: a real server on 127.0.0.1 with pages, 500s and slow answers."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from components.common.config import TableConfig
from components.common.errors import SeamlessError
from components.ingest.fetch import mask_url
from components.ingest.ingest import ingest_table
from tests.helpers.configs import assert_one_sentence, table
from tests.helpers.http_api import JsonApi, json_api

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, tzinfo=UTC)
RECORDS = [
    {"id": i, "ts": f"2024-01-{i + 1:02d}T00:00:00Z", "amount": i * 1.5, "tags": {"k": i}}
    for i in range(7)
]
FAST = {"timeout_s": 2.0, "retries": 3, "backoff_s": 0.01}


def api_table(url: str, **source: Any) -> TableConfig:
    return table(
        {"kind": "api", "url": url, **FAST, **source},
        entity_column="id",
        timestamp_column="ts",
        columns={"id": "int", "ts": "timestamp", "amount": "float"},
    )


def ingest_error(cfg: TableConfig) -> str:
    with pytest.raises(SeamlessError) as info:
        ingest_table("events", cfg, None, T0)
    return str(info.value)


@pytest.fixture()
def api() -> Any:
    with json_api(RECORDS) as server:
        yield server


def test_page_pagination_until_empty_page(api: JsonApi) -> None:
    df, info = ingest_table("events", api_table(api.url("/records"), page_size=3), None, T0)
    assert df["id"].tolist() == list(range(7))
    assert [p.split("?")[1] for p in api.requests] == [
        f"page={n}&page_size=3" for n in (1, 2, 3, 4)
    ]
    assert info["source_kind"] == "api"
    assert df["tags"].iloc[2] == '{"k": 2}'  # nested JSON kept as canonical text


def test_next_url_pagination(api: JsonApi) -> None:
    cfg = api_table(api.url("/cursor"), pagination="next_url", page_size=2)
    df, _ = ingest_table("events", cfg, None, T0)
    assert df["id"].tolist() == list(range(7)) and len(api.requests) == 4


def test_no_pagination_with_bare_list_body(api: JsonApi) -> None:
    cfg = api_table(api.url("/list"), pagination="none", records_key=None)
    df, _ = ingest_table("events", cfg, None, T0)
    assert len(df) == 7 and len(api.requests) == 1


def test_headers_are_sent_and_never_shown(api: JsonApi) -> None:
    cfg = api_table(api.url("/list?api_key=k3y"), pagination="none", records_key=None,
                    headers={"Authorization": "Bearer t0ken"})  # fmt: skip
    _, info = ingest_table("events", cfg, None, T0)
    assert api.headers_seen[0]["Authorization"] == "Bearer t0ken"
    assert "k3y" not in info["source"] and "api_key=***" in info["source"]


def test_retries_500s_then_succeeds(api: JsonApi) -> None:
    api.fail_first = 2
    df, _ = ingest_table(
        "events", api_table(api.url("/list"), pagination="none", records_key=None), None, T0
    )
    assert len(df) == 7 and len(api.requests) == 3


def test_backoff_doubles(api: JsonApi) -> None:
    api.fail_first = 3
    cfg = api_table(api.url("/list"), pagination="none", records_key=None, backoff_s=0.1)
    start = time.monotonic()
    ingest_table("events", cfg, None, T0)
    assert time.monotonic() - start >= 0.1 + 0.2 + 0.4


def test_api_keeps_answering_500(api: JsonApi) -> None:
    api.fail_first = 100
    url = api.url("/records")
    msg = ingest_error(api_table(url, retries=2))
    assert_one_sentence(msg, "Table 'events'", url, "after 3 attempts", "HTTP 500")
    assert len(api.requests) == 3


def test_api_times_out(api: JsonApi) -> None:
    api.slow_all, api.delay_s = True, 0.5
    msg = ingest_error(api_table(api.url("/records"), timeout_s=0.1, retries=1))
    assert_one_sentence(msg, "after 2 attempts", "timed out after 0.1 s")


def test_slow_first_answer_is_retried(api: JsonApi) -> None:
    api.slow_first, api.delay_s = 1, 0.5
    cfg = api_table(api.url("/list"), pagination="none", records_key=None, timeout_s=0.2)
    df, _ = ingest_table("events", cfg, None, T0)
    assert len(df) == 7


def test_client_error_is_not_retried(api: JsonApi) -> None:
    api.fail_first, api.fail_status = 100, 401
    msg = ingest_error(api_table(api.url("/records")))
    assert_one_sentence(msg, "HTTP 401", "not retried")
    assert len(api.requests) == 1


def test_unreachable_api() -> None:
    with json_api() as gone:
        url = gone.url("/records")
    msg = ingest_error(api_table(url, retries=1))
    assert_one_sentence(msg, url, "after 2 attempts", "connection failed")


def test_body_not_json(api: JsonApi) -> None:
    msg = ingest_error(api_table(api.url("/html"), pagination="none"))
    assert_one_sentence(msg, "/html", "not JSON", "text/html", "<html>")


def test_records_key_missing(api: JsonApi) -> None:
    msg = ingest_error(api_table(api.url("/nokey"), pagination="none"))
    assert_one_sentence(msg, "/nokey", "records key 'data'", "count", "items")


def test_max_pages_bound(api: JsonApi) -> None:
    msg = ingest_error(api_table(api.url("/forever"), max_pages=3))
    assert_one_sentence(msg, "max_pages=3")
    assert len(api.requests) == 4


def test_empty_api_result(api: JsonApi) -> None:
    api.records = []
    msg = ingest_error(api_table(api.url("/records")))
    assert_one_sentence(msg, "Table 'events'", "has no rows")


def test_mask_url() -> None:
    assert mask_url("https://u:pw@h:1/p?token=abc&page=2") == "https://u:***@h:1/p?token=***&page=2"
    assert mask_url("postgresql+psycopg2://u:p%40ss@db/x") == "postgresql+psycopg2://u:***@db/x"
    assert mask_url("http://h/p?page=1") == "http://h/p?page=1"
