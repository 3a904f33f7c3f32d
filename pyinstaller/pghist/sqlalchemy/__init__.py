"""pghist for SQLAlchemy applications (``pip install 'pghistory[sqlalchemy]'``).

``pghist.sqlalchemy.instrument(engine)`` makes every transaction begun inside a
``pghist.context(...)`` scope carry that scope's metadata onto the events it writes.
``pghist.sqlalchemy.track(Model, ...)`` declares a table's tracking for Alembic's
autogenerate (``pghist.alembic``).
"""

from __future__ import annotations

try:
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "pghist.sqlalchemy needs SQLAlchemy: pip install 'pghistory[sqlalchemy]'"
    ) from exc

from .declare import Declaration, declarations, track
from .instrument import SUPPORTED_DRIVERS, instrument, is_instrumented

__all__ = [
    "SUPPORTED_DRIVERS",
    "Declaration",
    "declarations",
    "instrument",
    "is_instrumented",
    "track",
]
