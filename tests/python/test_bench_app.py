"""bench/app_context.py runs (quick mode) and prints its table; the figures are for bench/."""

from __future__ import annotations

from typing import Any

from test_bench import quick_run


def test_app_context_benchmark_quick(pg_server: Any) -> None:
    output = quick_run(pg_server, "app_context.py")
    assert "| POST /items: insert one row of a tracked table |" in output
    assert "| GET /items/<id>: read one row (read-only transaction) |" in output
    # 3 rounds x 20 requests per variant (+ 20 warm-up): only the instrumented variant's
    # inserts carry a context, and only writing requests made context rows
    assert "insert events: 240 (80 with a context); context rows: 80" in output
