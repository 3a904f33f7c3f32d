"""pghistory: row history for PostgreSQL tables, recorded by the server.

This package installs the pghistory extension and wraps its SQL functions in
django-pghistory's vocabulary. Every call becomes one SQL statement; the tracking
itself runs in PostgreSQL (triggers), so every writer is recorded.

    import psycopg, pghist
    conn = psycopg.connect(dsn, autocommit=True)
    pghist.install(conn)
    pghist.track(conn, "public.orders")
    with pghist.context(conn, user=42):
        conn.execute("UPDATE orders SET total = 10 WHERE id = 1")
    pghist.events(conn, "public.orders", obj=1)
    pghist.as_of(conn, "public.orders", "2026-01-01 12:00")
"""

from __future__ import annotations

from . import errors
from ._context import current_context
from ._version import __version__  # follows extension/pghistory.control
from .conditions import (
    AllChange,
    AllDontChange,
    AnyChange,
    AnyDontChange,
    BaseCondition,
    Condition,
    F,
    Q,
)
from .core import (
    apply_context,
    as_of,
    backfill,
    context,
    create_event,
    events,
    prune,
    revert,
    status,
    sync,
    track,
    untrack,
    verify,
    version,
)
from .errors import PghistoryError
from .installer import InstallResult, install, installed, uninstall
from .trackers import (
    AfterDelete,
    AfterInsert,
    AfterInsertOrUpdate,
    AfterUpdate,
    BeforeDelete,
    BeforeUpdate,
    DeleteEvent,
    InsertEvent,
    ManualEvent,
    New,
    Old,
    RowEvent,
    Tracker,
    TruncateEvent,
    UpdateEvent,
)

__all__ = [
    "AfterDelete",
    "AfterInsert",
    "AfterInsertOrUpdate",
    "AfterUpdate",
    "AllChange",
    "AllDontChange",
    "AnyChange",
    "AnyDontChange",
    "BaseCondition",
    "BeforeDelete",
    "BeforeUpdate",
    "Condition",
    "DeleteEvent",
    "F",
    "InsertEvent",
    "InstallResult",
    "ManualEvent",
    "New",
    "Old",
    "PghistoryError",
    "Q",
    "RowEvent",
    "Tracker",
    "TruncateEvent",
    "UpdateEvent",
    "__version__",
    "apply_context",
    "as_of",
    "backfill",
    "context",
    "create_event",
    "current_context",
    "errors",
    "events",
    "install",
    "installed",
    "prune",
    "revert",
    "status",
    "sync",
    "track",
    "uninstall",
    "untrack",
    "verify",
    "version",
]
