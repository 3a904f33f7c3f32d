"""The ``pghistory`` command.

Connection: ``--dsn``, else ``DATABASE_URL``, else libpq's ``PG*`` variables.
Quiet on success (``track`` prints the event table, ``prune`` and ``backfill`` a
count, ``revert`` what it did), tables for humans, ``--json`` for machines; on error
one line on stderr and exit status 1 (``verify`` also exits 1 when it finds problems).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import psycopg

from . import __version__, core, installer
from .errors import ConnectionFailed, PghistoryError, from_psycopg
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
    Tracker,
    TruncateEvent,
    UpdateEvent,
)

__all__ = ["connect", "format_table", "main"]

PROG = "pghistory"

# --event KIND[:LABEL]: KIND -> (tracker class, label required)
EVENT_KINDS: dict[str, tuple[Callable[..., Tracker], bool]] = {
    "insert": (InsertEvent, False),
    "update": (UpdateEvent, False),
    "delete": (DeleteEvent, False),
    "truncate": (TruncateEvent, False),
    "manual": (ManualEvent, True),
    "after_insert": (AfterInsert, True),
    "after_update": (AfterUpdate, True),
    "after_delete": (AfterDelete, True),
    "before_update": (BeforeUpdate, True),
    "before_delete": (BeforeDelete, True),
    "after_insert_or_update": (AfterInsertOrUpdate, True),
}


class UsageError(Exception):
    """Bad command-line input found after parsing."""


def connect(dsn: str | None) -> psycopg.Connection[Any]:
    """Connect with ``dsn``, else ``DATABASE_URL``, else the libpq ``PG*`` variables."""
    conninfo = dsn if dsn is not None else os.environ.get("DATABASE_URL", "")
    try:
        return psycopg.connect(conninfo, autocommit=True, application_name=PROG)
    except psycopg.Error as exc:
        error = from_psycopg(exc)
        if isinstance(error, ConnectionFailed):
            raise error from exc
        raise ConnectionFailed(
            f"cannot connect: {error.message}", sqlstate=error.sqlstate, hint=error.hint
        ) from exc


# --- output ----------------------------------------------------------------------------


def _json_default(value: object) -> object:
    try:
        return core.json_default(value)
    except TypeError:
        return str(value)


def dump_json(data: object, out: TextIO) -> None:
    json.dump(data, out, indent=2, default=_json_default)
    out.write("\n")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, list | tuple) and all(
        isinstance(item, dict) and "label" in item for item in value
    ):
        return ", ".join(_tracker_summary(item) for item in value)
    if isinstance(value, list | tuple) and all(isinstance(item, str | int) for item in value):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=_json_default, separators=(", ", ": "))
    return str(value)


def _tracker_summary(tracker: dict[str, Any]) -> str:
    details = [
        str(tracker[key])
        for key in ("operation", "snapshot", "timing")
        if tracker.get(key) is not None
    ]
    text = str(tracker["label"])
    if details:
        text += f" ({' '.join(details)})"
    if tracker.get("condition"):
        text += f" when {tracker['condition']}"
    return text


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as a psql-style aligned table with a row count."""
    if columns is None:
        columns = list(rows[0]) if rows else []
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max([len(column)] + [len(line) for row in cells for line in row[i].splitlines() or [""]])
        for i, column in enumerate(columns)
    ]
    lines = [
        " "
        + " | ".join(column.center(width) for column, width in zip(columns, widths, strict=True)),
        "-" + "-+-".join("-" * width for width in widths) + "-",
    ]
    for row in cells:
        lines.append(
            " " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        )
    count = len(rows)
    lines.append(f"({count} {'row' if count == 1 else 'rows'})")
    return "\n".join(line.rstrip() for line in lines) + "\n"


# --- commands --------------------------------------------------------------------------


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_event(spec: str) -> Tracker:
    """``KIND[:LABEL]`` (e.g. ``update``, ``update:price_changed``, ``manual:snap``)."""
    kind, _, label = spec.partition(":")
    kind = kind.strip().lower().replace("-", "_")
    if kind not in EVENT_KINDS:
        raise UsageError(
            f"unknown event kind {kind!r} in --event {spec!r}; one of: {', '.join(EVENT_KINDS)}"
        )
    factory, required = EVENT_KINDS[kind]
    if required and not label:
        raise UsageError(f"--event {kind} needs a label: --event {kind}:LABEL")
    return factory(label) if label else factory()


def cmd_install(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        result = installer.install(conn, method=args.method)
    if result.action == "updated" or result.note or args.verbose:
        out.write(result.message + "\n")
    return 0


def cmd_uninstall(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        message = installer.uninstall(conn, cascade=args.cascade, missing_ok=args.if_exists)
    if args.verbose:
        out.write(message + "\n")
    return 0


def cmd_track(args: argparse.Namespace, out: TextIO) -> int:
    trackers = [parse_event(spec) for spec in args.event or []]
    options: dict[str, Any] = {}
    if args.no_obj_field:
        options["obj_field"] = None
    elif args.obj_field is not None:
        options["obj_field"] = args.obj_field
    with connect(args.dsn) as conn:
        event_table = core.track(
            conn,
            args.table,
            *trackers,
            fields=_split(args.fields),
            exclude=_split(args.exclude),
            model_name=args.model_name,
            context_field=args.context_field,
            context_mode=args.context_mode,
            append_only=True if args.append_only else None,
            level=args.level,
            partition_by=args.partition_by,
            **options,
        )
    out.write(event_table + "\n")
    return 0


def cmd_untrack(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        core.untrack(conn, args.table, args.model_name, drop_events=args.drop_events)
    return 0


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        rows = core.status(conn)
    if args.json:
        dump_json(rows, out)
    else:
        out.write(format_table(rows))
    return 0


EVENT_COLUMNS = ("pgh_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "pgh_data", "pgh_diff")


def event_rows_for_humans(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    columns = list(EVENT_COLUMNS)
    if len({row.get("pgh_model") for row in rows}) > 1:
        columns.insert(1, "pgh_model")
    if any(row.get("pgh_context") is not None for row in rows):
        columns.append("pgh_context")
    elif any(row.get("pgh_context_id") is not None for row in rows):
        columns.append("pgh_context_id")
    return list(rows), columns


def cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    with connect(args.dsn) as conn:
        rows = core.events(
            conn,
            args.table,
            args.obj,
            label=args.label,
            model=args.model,
            limit=args.limit or None,
        )
    if args.json:
        dump_json(rows, out)
    else:
        shown, columns = event_rows_for_humans(rows)
        out.write(format_table(shown, columns))
    return 0


def cmd_sync(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        core.sync(conn, args.table)
    if args.verbose:
        out.write(f"synced {args.table or 'every tracked table you own'}\n")
    return 0


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        rows = core.verify(conn, args.kind)
    if args.json:
        dump_json(rows, out)
    elif rows:
        out.write(format_table(rows, ["target", "event_table", "problem", "kind"]))
    if not rows:
        return 0
    count = len(rows)
    sys.stderr.write(f"{PROG}: verify found {count} {'problem' if count == 1 else 'problems'}\n")
    return 1


def cmd_as_of(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        columns, rows = core.as_of_table(conn, args.table, args.timestamp)
    if args.json:
        dump_json(rows, out)
    else:
        out.write(format_table(rows, columns))
    return 0


def cmd_revert(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        done = core.revert(conn, args.event_table, args.pgh_id)
    out.write(done + "\n")
    return 0


def cmd_prune(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        count = core.prune(conn, args.table, older_than=args.older_than, keep_last=args.keep_last)
    out.write(f"{count}\n")
    return 0


def _progress_line(message: str) -> None:
    sys.stderr.write(_one_line(message) + "\n")
    sys.stderr.flush()


def cmd_backfill(args: argparse.Namespace, out: TextIO) -> int:
    with connect(args.dsn) as conn:
        count = core.backfill(conn, args.table, args.model_name, progress=_progress_line)
    out.write(f"{count}\n")
    return 0


def _export_progress(count: int, seconds: float) -> None:
    rate = count / seconds if seconds > 0 else 0.0
    sys.stderr.write(f"{PROG}: exported {count:,} events ({rate:,.0f}/s)\n")
    sys.stderr.flush()


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    from . import history

    with connect(args.dsn) as conn:
        try:
            filters = history.parse_filters(
                conn,
                table=args.table,
                obj=args.obj,
                label=args.label,
                since=args.since,
                until=args.until,
                context=args.context or (),
            )
        except history.FilterError as exc:
            raise UsageError(exc.message + (f" HINT: {exc.hint}" if exc.hint else "")) from None
        if args.output and args.output != "-":
            with open(args.output, "w", encoding="utf-8", newline="") as target:
                history.export(conn, filters, args.format, target, _export_progress)
        else:
            history.export(conn, filters, args.format, out, _export_progress)
    return 0


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from . import web
    except ImportError as exc:
        raise UsageError(str(exc)) from None

    def announce(url: str) -> None:
        out.write(f"{url}\n")
        out.flush()
        sys.stderr.write(f"{PROG}: serving a read-only history browser; Ctrl-C stops it\n")

    conninfo = args.dsn if args.dsn is not None else os.environ.get("DATABASE_URL", "")
    web.serve(conninfo, args.host, args.port, announce)
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from .demo import run_demo

    return run_demo(args.dsn, out)


# --- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn",
        default=argparse.SUPPRESS,
        help="connection string (default: $DATABASE_URL, else the PG* variables)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="say what was done",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Row history for PostgreSQL tables: install the pghistory extension, "
        "track tables, read their history.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, handler: Callable[[argparse.Namespace, TextIO], int], text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    sub = command("install", cmd_install, "install or update the extension in the database")
    sub.add_argument(
        "--method",
        choices=installer.METHODS,
        default="auto",
        help="files: copy into the server's extension directory, then CREATE EXTENSION; "
        "script: run the SQL into schema pghistory (managed servers); "
        "auto (default): CREATE EXTENSION if available, else files, else script",
    )

    sub = command("uninstall", cmd_uninstall, "remove the extension (event tables stay)")
    sub.add_argument(
        "--cascade",
        action="store_true",
        help="also drop the pghistory triggers of tables still tracked",
    )
    sub.add_argument(
        "--if-exists", action="store_true", help="no error when pghistory is not installed"
    )

    sub = command("track", cmd_track, "track a table; prints the event table")
    sub.add_argument("table", help="the table to track, e.g. public.orders")
    sub.add_argument(
        "--event",
        action="append",
        metavar="KIND[:LABEL]",
        help="a tracker (repeatable): insert, update, delete, truncate, manual:LABEL, "
        "after_insert:LABEL, after_update:LABEL, after_delete:LABEL, before_update:LABEL, "
        "before_delete:LABEL, after_insert_or_update:LABEL (default: insert and update)",
    )
    sub.add_argument("--fields", metavar="A,B", help="track only these columns")
    sub.add_argument("--exclude", metavar="A,B", help="track all columns but these")
    sub.add_argument("--model-name", help="the event table's name (default: <table>_event)")
    obj = sub.add_mutually_exclusive_group()
    obj.add_argument("--obj-field", help="name of the object reference column")
    obj.add_argument(
        "--no-obj-field",
        action="store_true",
        help="no object reference column (tables without a single-column primary key)",
    )
    sub.add_argument("--context-field", help="name of the context column")
    sub.add_argument(
        "--context-mode",
        choices=("id", "json", "none"),
        help="store the context id (default), its metadata as json, or nothing",
    )
    sub.add_argument(
        "--append-only",
        action="store_true",
        help="the event table refuses UPDATE, DELETE and TRUNCATE",
    )
    sub.add_argument(
        "--level", choices=("auto", "row", "statement"), help="trigger level (default auto)"
    )
    sub.add_argument(
        "--partition-by",
        choices=("day", "week", "month"),
        help="keep the history partitioned by pgh_created_at",
    )

    sub = command("untrack", cmd_untrack, "stop tracking a table (history stays)")
    sub.add_argument("table")
    sub.add_argument("--model-name", help="only this event table")
    sub.add_argument(
        "--drop-events", action="store_true", help="also drop the event table(s): history is lost"
    )

    sub = command("status", cmd_status, "what is tracked, one row per event table")
    sub.add_argument("--json", action="store_true", help="JSON output")

    sub = command("events", cmd_events, "recent events of a table or object, oldest first")
    sub.add_argument("table")
    sub.add_argument("--obj", metavar="ID", help="only this object (primary key value)")
    sub.add_argument("--label", help="only events with this label")
    sub.add_argument("--model", metavar="EVENT_TABLE", help="only this event table")
    sub.add_argument(
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="the N most recent events (default 20; 0 for all)",
    )
    sub.add_argument("--json", action="store_true", help="JSON output")

    sub = command(
        "prune",
        cmd_prune,
        "delete old events (of TABLE, else of every table you own); prints how many",
    )
    sub.add_argument("table", nargs="?", help="only this table's history (needed for append-only)")
    sub.add_argument(
        "--older-than", metavar="INTERVAL", help="events older than this, e.g. '90 days'"
    )
    sub.add_argument(
        "--keep-last", type=int, metavar="N", help="but keep the N newest events of each object"
    )

    sub = command(
        "backfill",
        cmd_backfill,
        "record every current row as a 'backfill' event; progress on stderr, prints how many",
    )
    sub.add_argument("table")
    sub.add_argument(
        "--model-name", help="only this event table (default: those that record inserts)"
    )

    sub = command(
        "verify",
        cmd_verify,
        "list what would let history be lost, forged or bypassed; exit status 1 if anything",
    )
    sub.add_argument("--json", action="store_true", help="JSON output")
    sub.add_argument(
        "--kind",
        action="append",
        metavar="KIND",
        help="only problems of this kind (repeatable): trigger_missing, trigger_disabled, "
        "stale_code, column_mismatch, column_added, privilege, events_view, append_only_guard",
    )

    sub = command(
        "sync", cmd_sync, "follow schema changes of tracked tables (TABLE, else all you own)"
    )
    sub.add_argument("table", nargs="?")

    sub = command("as-of", cmd_as_of, "the rows of a table as they were at a moment")
    sub.add_argument("table")
    sub.add_argument("timestamp", help="any timestamp PostgreSQL reads, e.g. '2026-01-01 12:00'")
    sub.add_argument("--json", action="store_true", help="JSON output")

    sub = command(
        "revert",
        cmd_revert,
        "put an object back as an event recorded it; prints 'updated' or 'inserted'",
    )
    sub.add_argument("event_table")
    sub.add_argument("pgh_id", type=int)

    sub = command(
        "export",
        cmd_export,
        "write events (of TABLE, else all you may read) as CSV or JSON lines, oldest first; "
        "streamed, progress on stderr",
    )
    sub.add_argument("table", nargs="?", help="only this tracked table's events")
    sub.add_argument("--obj", metavar="ID", help="only this object (primary key value)")
    sub.add_argument("--label", help="only events with this label")
    sub.add_argument("--since", metavar="T", help="events at or after T (ISO 8601)")
    sub.add_argument("--until", metavar="T", help="events before T (ISO 8601)")
    sub.add_argument(
        "--context",
        action="append",
        metavar="KEY:VALUE",
        help="only events whose context has KEY = VALUE (repeatable)",
    )
    sub.add_argument("--format", choices=("csv", "jsonl"), required=True)
    sub.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    sub = command(
        "serve",
        cmd_serve,
        "serve a read-only history browser (needs pghistory[web]); prints its URL with a token",
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8765, help="port (default 8765)")

    command(
        "demo",
        cmd_demo,
        "show pghistory at work: on --dsn's server in a throwaway schema, "
        "else on an embedded PostgreSQL (needs pghistory[embedded])",
    )
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_line(error: BaseException) -> str:
    if isinstance(error, PghistoryError):
        text = _one_line(error.message).removeprefix("pghistory: ")
        if error.detail:
            text += f" ({_one_line(error.detail)})"
        if error.hint:
            text += f" HINT: {_one_line(error.hint)}"
    else:
        text = _one_line(str(error)) or type(error).__name__
    return f"{PROG}: error: {text}"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in (("dsn", None), ("verbose", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    stdout = out if out is not None else sys.stdout
    try:
        return int(args.handler(args, stdout))
    except (PghistoryError, UsageError, psycopg.Error) as exc:
        if isinstance(exc, psycopg.Error):
            exc = from_psycopg(exc)
        sys.stderr.write(error_line(exc) + "\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
