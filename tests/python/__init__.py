"""pytest tests: tests/run runs them against every supported PostgreSQL."""
