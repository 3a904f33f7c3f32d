"""bench/app_context.py runs (quick mode) and prints its table; the figures are for bench/."""

from __future__ import annotations

from typing import Any

from test_bench import quick_run


def test_app_context_benchmark_quick(pg_server: Any) -> None:
    output = quick_run(pg_server, "app_context.py")
    assert "| POST /items: insert one row of a tracked table | context |" in output
    assert "| POST /items: insert one row of a tracked table | plain again |" in output
    assert "| GET /items/<id>: read one row (read-only transaction) | context |" in output
    assert "settings unread / middleware" in output
    assert "settings apart / middleware" in output
    # 3 rounds x 20 requests per variant (+ 20 warm-up), 6 writing variants: only the
    # instrumented variant's inserts carry a context, and only writing requests made context
    # rows (the 'settings' variants set settings no trigger reads)
    assert "insert events: 480 (80 with a context); context rows: 80" in output


def test_app_context_async_benchmark_quick(pg_server: Any) -> None:
    output = quick_run(pg_server, "app_context_async.py")
    for driver in ("psycopg", "asyncpg"):
        assert f"| POST /items | {driver} | context |" in output
        assert f"| GET /items/7 | {driver} | context |" in output
    # 3 rounds x 20 requests (+ 20 warm-up) of each driver's 'context' variant
    assert "insert events with a context: 160" in output
