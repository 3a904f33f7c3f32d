"""pghistory's test suite, a package so its server harness is importable without path edits.

    from tests import pgserver         # throwaway PostgreSQL servers (tests, bench)

from the repository root: pytest adds it (pytest.ini's pythonpath), `python -m tests.runner` and
`python -m bench.<script>` have it as their working directory.
"""
