"""bench/app_context.py runs (quick mode) and prints its table; the figures are for bench/."""

from __future__ import annotations

from typing import Any

from test_bench import quick_run


def test_app_context_benchmark_quick(pg_server: Any) -> None:
    output = quick_run(pg_server, "app_context.py")
    assert "| POST /items: insert one row of a tracked table | context |" in output
    assert "| POST /items: insert one row of a tracked table | raw one string |" in output
    assert "| GET /items/<id>: read one row (read-only transaction) | context |" in output
    assert "- floor: set_config and INSERT in one string: raw one string / raw insert" in output
    assert "settings pipelined / middleware" in output
    # 3 rounds x 20 requests per variant (+ 20 warm-up), 7 writing variants: only the
    # instrumented variant's and the one-string variant's inserts carry a context, and only
    # writing requests made context rows (the 'settings' variants set settings no trigger reads)
    assert "insert events: 560 (160 with a context); context rows: 160" in output
