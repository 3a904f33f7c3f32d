"""pghistory.install / uninstall by each method, into fresh databases."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pghist
from pghist import errors, installer
from pghist._files import ExtensionFiles, extension_files

FILES = extension_files()
VERSION = FILES.default_version


def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


def sharedir_extension(conn: psycopg.Connection[Any]) -> Path:
    row = conn.execute("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'").fetchone()
    assert row is not None
    return Path(row[0]) / "extension"


def works(conn: psycopg.Connection[Any]) -> None:
    """Tracking works in this database."""
    conn.execute("CREATE TABLE works (id int PRIMARY KEY, v text)")
    pghist.track(conn, "public.works")
    conn.execute("INSERT INTO works VALUES (1, 'a')")
    conn.execute("UPDATE works SET v = 'b'")
    assert [row["pgh_label"] for row in pghist.events(conn, "public.works", obj=1)] == [
        "insert",
        "update",
    ]


def test_auto_uses_the_available_extension(make_database: Any) -> None:
    with connect(make_database()) as conn:
        assert pghist.installed(conn) is None
        result = pghist.install(conn)
        assert (result.method, result.action, result.version) == (
            "extension",
            "created",
            VERSION,
        )
        row = conn.execute(
            "SELECT extversion, extnamespace::regnamespace::text FROM pg_extension"
            " WHERE extname = 'pghistory'"
        ).fetchone()
        assert row == (VERSION, "pghistory")
        assert pghist.version(conn) == VERSION
        works(conn)
        again = pghist.install(conn)
        assert again.action == "unchanged"


def test_files_method(make_database: Any) -> None:
    with connect(make_database()) as conn:
        target = sharedir_extension(conn)
        if not os.access(target, os.W_OK):
            pytest.skip(f"{target} is not writable here")
        result = pghist.install(conn, method="files")
        assert (result.method, result.action) == ("files", "created")
        names = sorted(path.name for path in result.copied)
        assert names == sorted(["pghistory.control", *(p.name for p in FILES.sql_files())])
        for path in result.copied:
            assert path.parent == target
            assert path.read_bytes() == (FILES.directory / path.name).read_bytes()
            assert path.stat().st_mode & 0o444 == 0o444
        assert not list(target.glob(".*pghistory-partial"))
        installed = pghist.installed(conn)
        assert installed == installer.Installed("extension", VERSION)
        works(conn)
        assert pghist.install(conn, method="files").action == "unchanged"


def test_script_method(make_database: Any) -> None:
    with connect(make_database()) as conn:
        result = pghist.install(conn, method="script")
        assert (result.method, result.action, result.version) == (
            "script",
            "created",
            VERSION,
        )
        assert "script method" in result.message
        assert conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pghistory'"
        ).fetchone() == (0,)
        assert pghist.installed(conn) == installer.Installed("script", VERSION)
        assert pghist.version(conn) == VERSION
        works(conn)
        with pghist.context(conn, user="script"):
            conn.execute("UPDATE works SET v = 'c'")
        assert pghist.events(conn, "public.works")[-1]["pgh_context"] == {"user": "script"}
        # twice is harmless; the other methods see it is there
        assert pghist.install(conn, method="script").action == "unchanged"
        assert pghist.install(conn).action == "unchanged"
        with pytest.raises(errors.InstallError):
            pghist.install(conn, method="files")
        # uninstall: refuses while tracked, then drops the schema; history stays
        with pytest.raises(errors.DependentObjectsStillExist) as info:
            pghist.uninstall(conn)
        assert "works" in info.value.message
        assert info.value.hint and "cascade" in info.value.hint
        message = pghist.uninstall(conn, cascade=True)
        assert "dropped schema pghistory" in message
        assert pghist.installed(conn) is None
        assert conn.execute("SELECT count(*) FROM works_event").fetchone() == (2 + 1,)
        conn.execute("INSERT INTO works VALUES (2, 'still writable')")


def test_script_install_is_atomic(
    make_database: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "ext"
    shutil.copytree(FILES.directory, broken)
    script = broken / f"pghistory--{VERSION}.sql"
    script.write_text(script.read_text() + "\nSELECT this_is_not_sql(;\n")
    monkeypatch.setattr(installer, "extension_files", lambda: ExtensionFiles(broken))
    with connect(make_database()) as conn:
        with pytest.raises(errors.PghistoryError) as info:
            pghist.install(conn, method="script")
        assert info.value.sqlstate == "42601"
        assert conn.execute("SELECT to_regnamespace('pghistory')").fetchone() == (None,)


def answer(value: Any) -> Any:
    """A stand-in for one of the installer's steps (generators) that answers ``value``."""

    def steps(*args: Any) -> Any:
        return value
        yield  # type: ignore[unreachable]  # a generator, like the steps it replaces

    return steps


def test_files_elsewhere_falls_back_to_script(
    make_database: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A server on another machine: its SHAREDIR is not a directory here.
    monkeypatch.setattr(installer, "_extension_dir", answer(tmp_path / "elsewhere" / "extension"))
    monkeypatch.setattr(installer, "_available_versions", answer(set()))
    with connect(make_database()) as conn:
        with pytest.raises(errors.InstallError) as info:
            pghist.install(conn, method="files")
        assert "not on this machine" in info.value.message
        assert info.value.hint and "script" in info.value.hint
        assert pghist.installed(conn) is None
        result = pghist.install(conn)  # auto
        assert result.method == "script"
        assert result.note and "not on this machine" in result.note
        assert pghist.installed(conn) == installer.Installed("script", VERSION)


def test_files_not_seen_by_the_server(
    make_database: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The directory exists here, but the server does not read it (same path, other machine).
    fake = tmp_path / "extension"
    fake.mkdir()
    monkeypatch.setattr(installer, "_extension_dir", answer(fake))
    monkeypatch.setattr(installer, "_available_versions", answer(set()))
    with connect(make_database()) as conn:
        with pytest.raises(errors.InstallError) as info:
            pghist.install(conn, method="files")
        assert "does not see them" in info.value.message
        assert list(fake.iterdir()) == []  # what it copied is removed again


def test_unknown_method(make_database: Any) -> None:
    with connect(make_database()) as conn, pytest.raises(errors.InstallError) as info:
        pghist.install(conn, method="magic")
    assert "magic" in info.value.message


def test_uninstall_extension(make_database: Any) -> None:
    with connect(make_database(extension=True)) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        event_table = pghist.track(conn, "public.t")
        with pytest.raises(errors.DependentObjectsStillExist) as info:
            pghist.uninstall(conn)
        assert info.value.sqlstate == "2BP01"
        assert pghist.installed(conn) is not None
        pghist.untrack(conn, "public.t")
        message = pghist.uninstall(conn)
        assert message.startswith("dropped extension pghistory")
        assert pghist.installed(conn) is None
        assert conn.execute("SELECT to_regnamespace('pghistory')").fetchone() == (None,)
        assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (event_table,)).fetchone() == (
            True,
        )
        with pytest.raises(errors.NotInstalled):
            pghist.uninstall(conn)
        assert "nothing dropped" in pghist.uninstall(conn, missing_ok=True)


# --- upgrades ----------------------------------------------------------------------------

OLD = "0.0test"


def fake_release(directory: Path, default: str) -> ExtensionFiles:
    """The real files, plus an older release OLD and the upgrade script OLD -> VERSION.

    OLD is the real script with version() saying OLD; the upgrade only changes version().
    """
    directory.mkdir(exist_ok=True)
    for path in [FILES.control, *FILES.sql_files()]:
        shutil.copy(path, directory / path.name)
    control = directory / "pghistory.control"
    control.write_text(
        control.read_text().replace(
            f"default_version = '{VERSION}'", f"default_version = '{default}'"
        )
    )
    version_sql = (
        "CREATE OR REPLACE FUNCTION @extschema@.version() RETURNS text LANGUAGE sql IMMUTABLE"
        " SET search_path = pg_catalog, pg_temp RETURN '{}';\n"
    )
    old = directory / f"pghistory--{OLD}.sql"
    old.write_text(FILES.install_script().read_text() + "\n" + version_sql.format(OLD))
    upgrade = directory / f"pghistory--{OLD}--{VERSION}.sql"
    upgrade.write_text(
        '\\echo Use "ALTER EXTENSION pghistory UPDATE" to load this file. \\quit\n'
        + version_sql.format(VERSION)
    )
    return ExtensionFiles(directory)


def test_script_upgrade(
    make_database: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with connect(make_database()) as conn:
        monkeypatch.setattr(
            installer, "extension_files", lambda: fake_release(tmp_path / "old", OLD)
        )
        assert pghist.install(conn, method="script").version == OLD
        assert pghist.version(conn) == OLD
        works(conn)
        monkeypatch.setattr(
            installer,
            "extension_files",
            lambda: fake_release(tmp_path / "new", VERSION),
        )
        result = pghist.install(conn)
        assert (result.method, result.action, result.previous_version) == (
            "script",
            "updated",
            OLD,
        )
        assert result.message == (
            f"updated pghistory from {OLD} to {VERSION} with the script method (schema pghistory)"
        )
        assert pghist.version(conn) == VERSION
        assert len(pghist.events(conn, "public.works")) == 2  # history kept


def test_no_upgrade_path(
    make_database: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with connect(make_database()) as conn:
        monkeypatch.setattr(
            installer, "extension_files", lambda: fake_release(tmp_path / "old", OLD)
        )
        pghist.install(conn, method="script")
        bare = tmp_path / "bare"
        bare.mkdir()
        shutil.copy(FILES.control, bare)
        shutil.copy(FILES.install_script(), bare)
        monkeypatch.setattr(installer, "extension_files", lambda: ExtensionFiles(bare))
        with pytest.raises(errors.InstallError) as info:
            pghist.install(conn)
        assert "no upgrade path" in info.value.message
        assert pghist.version(conn) == OLD


@pytest.fixture
def restore_server_files(make_database: Any) -> Iterator[Path]:
    """The server's extension directory, put back as it was afterwards."""
    with connect(make_database()) as conn:
        target = sharedir_extension(conn)
    if not os.access(target, os.W_OK):
        pytest.skip(f"{target} is not writable here")
    before = {path.name: path.read_bytes() for path in target.glob("pghistory*")}
    yield target
    for path in target.glob("pghistory*"):
        if path.name not in before:
            path.unlink()
    for name, content in before.items():
        (target / name).write_bytes(content)


def test_extension_upgrade(
    make_database: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    restore_server_files: Path,
) -> None:
    with connect(make_database()) as conn:
        monkeypatch.setattr(
            installer, "extension_files", lambda: fake_release(tmp_path / "old", OLD)
        )
        first = pghist.install(conn, method="files")
        assert (first.method, first.version) == ("files", OLD)
        assert pghist.installed(conn) == installer.Installed("extension", OLD)
        works(conn)
        monkeypatch.setattr(
            installer,
            "extension_files",
            lambda: fake_release(tmp_path / "new", VERSION),
        )
        result = pghist.install(conn)
        assert (result.action, result.previous_version, result.version) == (
            "updated",
            OLD,
            VERSION,
        )
        assert result.message.startswith(f"updated pghistory from {OLD} to {VERSION}")
        assert pghist.installed(conn) == installer.Installed("extension", VERSION)
        assert pghist.version(conn) == VERSION
        assert len(pghist.events(conn, "public.works")) == 2
