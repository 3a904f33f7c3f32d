#!/usr/bin/env python3
"""Write extension/pghistory--FROM--TO.sql: the upgrade script between two releases.

    python3 tools/upgrade_script.py               # FROM = the newest frozen full script before TO,
                                                  # TO = default_version of pghistory.control
    python3 tools/upgrade_script.py --check       # exit 1 when the committed script is stale
    python3 tools/upgrade_script.py --stdout      # print instead of writing

The function section is derived: every function of the frozen pghistory--FROM.sql and of the built
pghistory--TO.sql is compared (by name and argument types), and the script gets
  DROP FUNCTION                   for a function that is gone, or whose arguments (names, defaults)
                                  or result changed, which CREATE OR REPLACE refuses to change;
  CREATE [OR REPLACE] FUNCTION    for a new or changed one, in the build's order, with its COMMENT;
  GRANT / REVOKE                  every one of the build, again (they are idempotent), so a function
                                  created again gets the privileges of a fresh install.
The rest is hand-written in extension/src/upgrade/FROM--TO.sql (release notes, new tables and
columns, data migrations): the derived section replaces its line `-- @@FUNCTIONS@@`. Statements of
the build other than functions that the frozen script lacks, and that the hand-written part does not
mention, are listed as a warning: the tool cannot know how to migrate them.

Only the standard library: it runs before any virtualenv exists (make build).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTENSION_DIR = ROOT / "extension"
HAND_WRITTEN_DIR = EXTENSION_DIR / "src" / "upgrade"
MARKER = "-- @@FUNCTIONS@@"

# Synonyms PostgreSQL accepts for one type, so that COMMENT ON FUNCTION f(timestamptz) finds the
# function declared with `timestamp with time zone`.
TYPE_ALIASES = {
    "timestamptz": "timestamp with time zone",
    "timestamp": "timestamp without time zone",
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "int2": "smallint",
    "bool": "boolean",
    "float8": "double precision",
    "float4": "real",
    "varchar": "character varying",
}
ARG_MODES = {"in", "out", "inout", "variadic"}
# First words of type names made of several words: `double precision x` has no argument name.
MULTIWORD_TYPES = {
    "double",
    "timestamp",
    "time",
    "character",
    "bit",
    "interval",
    "national",
}


def split_statements(text: str) -> list[str]:
    """The SQL statements of a script, without comments around them; psql meta-commands dropped.

    Knows quoted strings, quoted identifiers, dollar quoting and comments, which is all that our
    scripts use; a semicolon elsewhere ends a statement.
    """
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "\\":  # psql meta-command: the whole line
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        at_line_start = c == "\n"
        if text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            if "".join(current).strip():
                current.append(text[i:end])
            i = end
            continue
        if text.startswith("/*", i):
            end = text.index("*/", i) + 2
            current.append(text[i:end])
            i = end
            continue
        if c in "'\"":
            end = i + 1
            while True:
                end = text.index(c, end) + 1
                if end < n and text[end] == c:  # doubled quote
                    end += 1
                    continue
                break
            current.append(text[i:end])
            i = end
            continue
        if c == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", text[i:])
            if m:
                tag = m.group(0)
                end = text.index(tag, i + len(tag)) + len(tag)
                current.append(text[i:end])
                i = end
                continue
        if c == ";":
            stmt = "".join(current).strip()
            if stmt:
                statements.append(stmt + ";")
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    if "".join(current).strip():
        raise SystemExit(f"upgrade_script: unterminated statement: {''.join(current)[:200]!r}")
    return statements


def _split_top_level(args: str) -> list[str]:
    parts, depth, start, quote = [], 0, 0, ""
    for i, c in enumerate(args):
        if quote:
            if c == quote:
                quote = ""
            continue
        if c in "'\"":
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(args[start:i])
            start = i + 1
    if args[start:].strip():
        parts.append(args[start:])
    return [p.strip() for p in parts]


def _normal_type(words: list[str]) -> str:
    text = " ".join(words).lower()
    base, _, array = text.partition("[")
    base = TYPE_ALIASES.get(base.strip(), base.strip())
    return base + ("[" + array if array else "")


def argument_types(args: str, *, named: bool) -> tuple[str, ...]:
    """The input argument types of an argument list (what identifies a function)."""
    types = []
    for arg in _split_top_level(args):
        declared = re.split(r"\s+DEFAULT\s+|\s*=\s*", arg, maxsplit=1, flags=re.IGNORECASE)[0]
        words = declared.split()
        mode = "in"
        if words and words[0].lower() in ARG_MODES:
            mode = words.pop(0).lower()
        if mode == "out":
            continue
        if named and len(words) > 1 and words[0].lower() not in MULTIWORD_TYPES:
            words = words[1:]
        types.append(_normal_type(words))
    return tuple(types)


def _balanced(text: str, start: int) -> int:
    """Index just past the parenthesis that closes the one at text[start]."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    raise SystemExit(f"upgrade_script: unbalanced parentheses in {text[:200]!r}")


@dataclass
class Function:
    name: str  # as written, e.g. @extschema@.track
    args: str  # the argument list as written, without parentheses
    header: str  # arguments and RETURNS, whitespace-normalized: what OR REPLACE cannot change
    text: str  # the whole CREATE FUNCTION statement

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return (self.name.lower(), argument_types(self.args, named=True))

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.key[1])})"


CREATE_FUNCTION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+([\w@.\"]+)\s*\(", re.IGNORECASE
)
COMMENT_ON_FUNCTION = re.compile(r"COMMENT\s+ON\s+FUNCTION\s+([\w@.\"]+)\s*\(", re.IGNORECASE)


def parse_function(stmt: str) -> Function | None:
    m = CREATE_FUNCTION.match(stmt)
    if not m:
        return None
    close = _balanced(stmt, m.end() - 1)
    args = stmt[m.end() : close - 1]
    rest = stmt[close:].lstrip()
    returns = ""
    r = re.match(r"RETURNS\s+", rest, re.IGNORECASE)
    if r:
        after = rest[r.end() :]
        if re.match(r"TABLE\s*\(", after, re.IGNORECASE):
            end = _balanced(after, after.index("("))
        else:
            attribute = re.search(
                r"\s(LANGUAGE|IMMUTABLE|STABLE|VOLATILE|STRICT|SECURITY|SET|AS|RETURN"
                r"|PARALLEL|COST|CALLED|LEAKPROOF|WINDOW|ROWS|BEGIN)\b",
                after,
            )
            end = attribute.start() if attribute else len(after)
        returns = after[:end]
    header = " ".join(f"({args}) RETURNS {returns}".split())
    return Function(m.group(1), args, header, stmt)


def comment_key(stmt: str) -> tuple[str, tuple[str, ...]] | None:
    m = COMMENT_ON_FUNCTION.match(stmt)
    if not m:
        return None
    close = _balanced(stmt, m.end() - 1)
    return (m.group(1).lower(), argument_types(stmt[m.end() : close - 1], named=False))


@dataclass
class Script:
    functions: dict[tuple[str, tuple[str, ...]], Function]
    comments: dict[tuple[str, tuple[str, ...]], str]
    grants: list[str]
    others: list[str]


def parse_script(text: str) -> Script:
    script = Script({}, {}, [], [])
    for stmt in split_statements(text):
        function = parse_function(stmt)
        if function is not None:
            if function.key in script.functions:
                raise SystemExit(f"upgrade_script: {function.signature} is defined twice")
            script.functions[function.key] = function
        elif (key := comment_key(stmt)) is not None:
            script.comments[key] = stmt
        elif re.match(r"(GRANT|REVOKE)\s", stmt, re.IGNORECASE):
            script.grants.append(stmt)
        else:
            script.others.append(stmt)
    return script


def control_version() -> str:
    control = (EXTENSION_DIR / "pghistory.control").read_text()
    m = re.search(r"^default_version\s*=\s*'([^']+)'", control, re.MULTILINE)
    if not m:
        raise SystemExit("upgrade_script: no default_version in extension/pghistory.control")
    return m.group(1)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def previous_version(to: str) -> str:
    full = [
        m.group(1)
        for f in EXTENSION_DIR.glob("pghistory--*.sql")
        if (m := re.fullmatch(r"pghistory--([0-9.]+)\.sql", f.name))
    ]
    older = sorted((v for v in full if _version_key(v) < _version_key(to)), key=_version_key)
    if not older:
        raise SystemExit(f"upgrade_script: no full script older than {to}")
    return older[-1]


def function_section(old: Script, new: Script) -> tuple[str, list[str]]:
    drops: list[str] = []
    creates: list[str] = []
    changed: list[str] = []
    for key, function in old.functions.items():
        if key not in new.functions:
            drops.append(f"DROP FUNCTION {function.signature};")
            changed.append(f"dropped {function.signature}")
    for key, function in new.functions.items():
        before = old.functions.get(key)
        comment = new.comments.get(key)
        if before is not None and before.text == function.text:
            if comment is not None and old.comments.get(key) != comment:
                creates.append(comment)
                changed.append(f"comment of {function.signature}")
            continue
        if before is None or before.header != function.header:
            if before is not None:
                drops.append(f"DROP FUNCTION {function.signature};")
            creates.append(function.text)
            if comment is not None:
                creates.append(comment)
            changed.append(f"{'created' if before is None else 'recreated'} {function.signature}")
        else:
            creates.append(
                CREATE_FUNCTION.sub(
                    lambda m: (
                        m.group(0).replace("FUNCTION", "OR REPLACE FUNCTION", 1)
                        if "REPLACE" not in m.group(0).upper()
                        else m.group(0)
                    ),
                    function.text,
                    count=1,
                )
            )
            if comment is not None and old.comments.get(key) != comment:
                creates.append(comment)
            changed.append(f"replaced {function.signature}")
    parts = [
        "-- Functions: derived by tools/upgrade_script.py from the frozen and the built script."
    ]
    if drops:
        parts.append("\n".join(drops))
    parts.extend(creates)
    parts.append(
        "-- Privileges as a fresh install has them (GRANT and REVOKE are idempotent).\n"
        + "\n".join(new.grants)
    )
    return "\n\n".join(parts), changed


def build(start: str, to: str) -> tuple[str, list[str]]:
    old_path = EXTENSION_DIR / f"pghistory--{start}.sql"
    new_path = EXTENSION_DIR / f"pghistory--{to}.sql"
    hand_path = HAND_WRITTEN_DIR / f"{start}--{to}.sql"
    for path in (old_path, new_path, hand_path):
        if not path.exists():
            raise SystemExit(f"upgrade_script: {path.relative_to(ROOT)} does not exist")
    old, new = parse_script(old_path.read_text()), parse_script(new_path.read_text())
    hand = hand_path.read_text()
    if hand.count(MARKER + "\n") != 1:
        raise SystemExit(
            f"upgrade_script: {hand_path.relative_to(ROOT)} must have one line {MARKER}"
        )
    section, _ = function_section(old, new)
    warnings = []
    hand_statements = {" ".join(s.split()) for s in split_statements(hand)}
    old_others = {" ".join(s.split()) for s in old.others}
    for stmt in new.others:
        flat = " ".join(stmt.split())
        if flat not in old_others and flat not in hand_statements:
            warnings.append(
                f"not in pghistory--{start}.sql nor in the hand-written part: {flat[:160]}"
            )
    head = (
        f"\\echo Use \"ALTER EXTENSION pghistory UPDATE TO '{to}'\" to load this file. \\quit\n"
        "-- GENERATED by tools/upgrade_script.py (make build) from the hand-written\n"
        f"-- {hand_path.relative_to(ROOT)}, the frozen pghistory--{start}.sql and the built\n"
        f"-- pghistory--{to}.sql: edit those, never this file.\n"
    )
    return head + hand.replace(MARKER + "\n", section + "\n"), warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--to", help="default: default_version of pghistory.control")
    parser.add_argument("--from", dest="start", help="default: the newest older full script")
    parser.add_argument(
        "--check", action="store_true", help="fail when the committed file is stale"
    )
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args()
    to = args.to or control_version()
    start = args.start or previous_version(to)
    text, warnings = build(start, to)
    for warning in [] if args.check else warnings:  # said once, when the script is written
        print(f"upgrade_script: warning: {warning}", file=sys.stderr)
    target = EXTENSION_DIR / f"pghistory--{start}--{to}.sql"
    if args.stdout:
        sys.stdout.write(text)
    elif args.check:
        if not target.exists() or target.read_text() != text:
            print(
                f"upgrade_script: {target.relative_to(ROOT)} is stale: run `make build` "
                "and commit the result",
                file=sys.stderr,
            )
            return 1
    elif not target.exists() or target.read_text() != text:
        target.write_text(text)
        print(f"upgrade_script: wrote {target.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
