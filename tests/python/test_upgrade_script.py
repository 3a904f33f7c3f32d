"""tools/upgrade_script.py derives the function section of an upgrade script, and the build
(make build / make check-generated) keeps the committed scripts in step with extension/src."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "extension"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "upgrade_script", REPO / "tools" / "upgrade_script.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["upgrade_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def derive(old: str, new: str) -> str:
    section, _ = tool.function_section(tool.parse_script(old), tool.parse_script(new))
    return str(section)


def test_derives_what_the_hand_written_1_0_to_1_1_script_carries() -> None:
    # 1.0 -> 1.1 was written by hand: the tool finds exactly the functions it had to carry.
    old = tool.parse_script((EXTENSION / "pghistory--1.0.sql").read_text())
    new = tool.parse_script((EXTENSION / "pghistory--1.1.sql").read_text())
    hand = tool.parse_script((EXTENSION / "pghistory--1.0--1.1.sql").read_text())
    _, changed = tool.function_section(old, new)
    derived = {line.split(" ", 1)[1] for line in changed}
    assert derived == {f.signature for f in hand.functions.values()}
    # and the text it writes for each is the 1.1 definition
    for key, function in hand.functions.items():
        assert " ".join(function.text.replace("OR REPLACE ", "", 1).split()) == " ".join(
            new.functions[key].text.split()
        )


OLD = """
CREATE FUNCTION @extschema@.same(p int) RETURNS int
    LANGUAGE sql AS $f$ SELECT p $f$;
CREATE FUNCTION @extschema@.body(p int) RETURNS int
    LANGUAGE sql AS $f$ SELECT p $f$;
CREATE FUNCTION @extschema@.result(p int) RETURNS int
    LANGUAGE sql AS $f$ SELECT p $f$;
CREATE FUNCTION @extschema@.renamed_arg(p int) RETURNS int
    LANGUAGE sql AS $f$ SELECT p $f$;
CREATE FUNCTION @extschema@.gone(p timestamptz DEFAULT now()) RETURNS int
    LANGUAGE sql AS $f$ SELECT 1 $f$;
COMMENT ON FUNCTION @extschema@.same(int) IS 'same';
COMMENT ON FUNCTION @extschema@.body(integer) IS 'body; with a semicolon';
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
"""

NEW = """
-- a comment; with a semicolon, and 'a quote
CREATE FUNCTION @extschema@.same(p int) RETURNS int
    LANGUAGE sql AS $f$ SELECT p $f$;
CREATE FUNCTION @extschema@.body(p int) RETURNS int
    LANGUAGE sql AS $f$ SELECT p + 1; $f$;
CREATE FUNCTION @extschema@.result(p int) RETURNS TABLE (a int, kind text)
    LANGUAGE sql AS $f$ SELECT p, 'x' $f$;
CREATE FUNCTION @extschema@.renamed_arg(q int) RETURNS int
    LANGUAGE sql AS $f$ SELECT q $f$;
CREATE FUNCTION @extschema@.added(p text[] DEFAULT '{}') RETURNS int
    LANGUAGE sql AS $f$ SELECT 1 $f$;
COMMENT ON FUNCTION @extschema@.same(int) IS 'same, reworded';
COMMENT ON FUNCTION @extschema@.body(integer) IS 'body; with a semicolon';
COMMENT ON FUNCTION @extschema@.result(int) IS 'result';
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.result(int) FROM PUBLIC;
"""


def test_replace_where_postgresql_allows_it_and_drop_where_it_does_not() -> None:
    section = derive(OLD, NEW)
    statements = [" ".join(s.split()) for s in tool.split_statements(section)]
    drops = [s for s in statements if s.startswith("DROP")]
    assert drops == [
        "DROP FUNCTION @extschema@.gone(timestamp with time zone);",
        "DROP FUNCTION @extschema@.result(integer);",
        "DROP FUNCTION @extschema@.renamed_arg(integer);",
    ]
    assert statements.index(drops[-1]) < statements.index(
        next(s for s in statements if s.startswith("CREATE FUNCTION @extschema@.result"))
    )
    created = [s.split("(")[0] for s in statements if s.startswith("CREATE")]
    assert created == [
        "CREATE OR REPLACE FUNCTION @extschema@.body",
        "CREATE FUNCTION @extschema@.result",
        "CREATE FUNCTION @extschema@.renamed_arg",
        "CREATE FUNCTION @extschema@.added",
    ]
    # comments: the reworded one, and the one of the function created again; not the unchanged
    comments = [s for s in statements if s.startswith("COMMENT")]
    assert comments == [
        "COMMENT ON FUNCTION @extschema@.same(int) IS 'same, reworded';",
        "COMMENT ON FUNCTION @extschema@.result(int) IS 'result';",
    ]
    # every privilege statement of the build, after the functions
    assert statements[-2:] == [
        "GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;",
        "REVOKE ALL ON FUNCTION @extschema@.result(int) FROM PUBLIC;",
    ]


def test_nothing_changed_derives_only_the_privileges() -> None:
    statements = tool.split_statements(derive(OLD, OLD))
    assert statements == ["GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;"]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what the build reads: Makefile, extension/, tools/."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copytree(EXTENSION, tmp_path / "extension")
    shutil.copytree(
        REPO / "tools", tmp_path / "tools", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def make(directory: Path, goal: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(directory), goal, f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_committed_scripts_are_fresh(checkout: Path) -> None:
    assert make(checkout, "check-generated").returncode == 0


def test_a_stale_script_fails_the_check_with_what_to_do(checkout: Path) -> None:
    src = checkout / "extension" / "src" / "10_manual_events.sql"
    src.write_text(
        src.read_text().replace("the event table whose tracker", "the table whose tracker")
    )
    result = make(checkout, "check-generated")
    assert result.returncode != 0
    assert "pghistory--1.2.sql is stale" in result.stderr and "make build" in result.stderr

    # make build brings the full script and the upgrade script up to date
    assert make(checkout, "build").returncode == 0
    assert make(checkout, "check-generated").returncode == 0
    upgrade = (checkout / "extension" / "pghistory--1.1--1.2.sql").read_text()
    assert "CREATE OR REPLACE FUNCTION @extschema@.create_event(target regclass, pk text" in upgrade


def test_a_stale_upgrade_script_fails_the_check(checkout: Path) -> None:
    hand = checkout / "extension" / "src" / "upgrade" / "1.1--1.2.sql"
    hand.write_text(hand.read_text() + "\nSELECT 1;\n")
    result = make(checkout, "check-generated")
    assert result.returncode != 0
    assert "pghistory--1.1--1.2.sql is stale" in result.stderr


def test_the_version_comes_from_the_control_file(checkout: Path) -> None:
    control = checkout / "extension" / "pghistory.control"
    control.write_text(
        control.read_text().replace("default_version = '1.2'", "default_version = '1.3'")
    )
    (checkout / "extension" / "src" / "upgrade" / "1.2--1.3.sql").write_text("-- @@FUNCTIONS@@\n")
    # the previous full script becomes the frozen start of the new version's upgrade
    result = make(checkout, "build")
    assert result.returncode == 0, result.stderr
    script = (checkout / "extension" / "pghistory--1.3.sql").read_text()
    assert "RETURN '1.3';" in script and "@PGHISTORY_VERSION@" not in script
    upgrade = (checkout / "extension" / "pghistory--1.2--1.3.sql").read_text()
    assert "CREATE OR REPLACE FUNCTION @extschema@.version()" in upgrade
    assert "ALTER EXTENSION pghistory UPDATE TO '1.3'" in upgrade
