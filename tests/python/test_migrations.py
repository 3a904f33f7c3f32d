"""Tracking in migrations (issue 14): real Alembic and real Django against the test server.

Each flow runs in a database owned by a role that is not a superuser and that installs
pghistory itself, from a migration: so the extension has no event triggers, and a write to a
tracked table whose columns changed fails until pghistory.sync() runs (API.md section 10). The
migrations must therefore leave every tracked table in step, forward and back.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

alembic = pytest.importorskip("alembic")
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.util import CommandError  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[2] / "pyinstaller"


class OwnedDatabase:
    """A database owned by a login role without superuser (no event triggers once it installs)."""

    def __init__(self, dsn: str, role: str) -> None:
        self.role = role
        self.dsn = make_conninfo(dsn, user=role)
        params = conninfo_to_dict(dsn)
        self.host = str(params.get("host", "localhost"))
        self.port = str(params.get("port", "5432"))
        self.dbname = str(params["dbname"])

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.role}@{self.host}:{self.port}/{self.dbname}"

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True)

    def scalar(self, query: str, *params: object) -> Any:
        with self.connect() as conn:
            row = conn.execute(query, params).fetchone()
            return None if row is None else row[0]

    def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()


@pytest.fixture
def owned_db(make_database: Any) -> Iterator[OwnedDatabase]:
    dsn = make_database()
    name = str(conninfo_to_dict(dsn)["dbname"])
    role = f"pgh_mig_{name[-40:]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
    try:
        yield OwnedDatabase(dsn, role)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
            admin.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(sql.Identifier(name))
            )
        with psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# --- Alembic --------------------------------------------------------------------------------

ENV_HEADER = """\
import importlib.util
import pathlib

import pghist.alembic  # op.track, op.untrack, op.sync, op.install_pghistory; autogenerate

_spec = importlib.util.spec_from_file_location(
    "pghist_test_models", pathlib.Path(__file__).with_name("models.py")
)
models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(models)
"""

MODELS_V1 = """\
import pghist
import pghist.sqlalchemy
from sqlalchemy import Column, Integer, MetaData, Numeric, Table, Text

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("total", Numeric, nullable=False),
    Column("note", Text),
)
pghist.sqlalchemy.track(
    orders,
    pghist.InsertEvent(),
    pghist.UpdateEvent(
        "total_down",
        row=pghist.Old,
        condition=pghist.Q(old__total__gt=pghist.F("new__total")) | pghist.AnyChange("note"),
    ),
    context_mode="json",
)
"""


def alembic_config(directory: Path, url: str) -> Config:
    config = Config(str(directory / "alembic.ini"))
    config.set_main_option("script_location", str(directory / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    return config


@pytest.fixture
def alembic_env(tmp_path: Path, owned_db: OwnedDatabase) -> tuple[Config, Path]:
    config = Config(str(tmp_path / "alembic.ini"))
    command.init(config, str(tmp_path / "migrations"), template="generic")
    config = alembic_config(tmp_path, owned_db.url)
    env = tmp_path / "migrations" / "env.py"
    source = env.read_text()
    assert "target_metadata = None" in source
    source = source.replace("target_metadata = None", "target_metadata = models.metadata")
    env.write_text(ENV_HEADER + source)
    (tmp_path / "migrations" / "models.py").write_text(MODELS_V1)
    return config, tmp_path / "migrations"


def revision(config: Config, message: str, autogenerate: bool = True) -> str:
    script = command.revision(config, message=message, autogenerate=autogenerate)
    assert script is not None and not isinstance(script, list)
    return Path(script.path).read_text()


def hand_written(config: Config, message: str, body: str) -> Path:
    """A revision (not autogenerated) whose upgrade() runs ``body``."""
    script = command.revision(config, message=message)
    assert script is not None and not isinstance(script, list)
    path = Path(script.path)
    source = path.read_text().replace(
        "import sqlalchemy as sa", "import sqlalchemy as sa\nimport pghist\nimport pghist.alembic"
    )
    source, count = re.subn(
        r"def upgrade\(\) -> None:\n(    \"\"\".*\"\"\"\n)?    pass",
        lambda _: (
            "def upgrade() -> None:\n" + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        ),
        source,
    )
    assert count == 1, source
    path.write_text(source)
    return path


def upgrade_body(source: str) -> str:
    return source.split("def upgrade()", 1)[1].split("def downgrade()", 1)[0]


def downgrade_body(source: str) -> str:
    return source.split("def downgrade()", 1)[1]


def tracking(db: OwnedDatabase, table: str) -> list[tuple[Any, ...]]:
    return db.rows(
        "SELECT event_table::text, active, trackers, context_mode FROM pghistory.tracking"
        " WHERE target = to_regclass(%s) ORDER BY 1",
        table,
    )


def test_alembic_autogenerate_upgrade_downgrade(
    alembic_env: tuple[Config, Path], owned_db: OwnedDatabase
) -> None:
    config, directory = alembic_env

    # 1. Autogenerate before pghistory is installed: one clear message naming the operation.
    with pytest.raises(CommandError, match=r"op\.install_pghistory\(\)"):
        revision(config, "too early")
    for stale in (directory / "versions").glob("*.py"):
        stale.unlink()

    # 2. A hand-written migration installs it; the role is no superuser: no event triggers.
    hand_written(config, "install pghistory", "op.install_pghistory()")
    command.upgrade(config, "head")
    assert owned_db.scalar("SELECT extname FROM pg_extension WHERE extname = 'pghistory'")
    assert owned_db.scalar("SELECT count(*) FROM pg_event_trigger") == 0

    # 3. Autogenerate: the table, then its tracking; the downgrade reverses both.
    first = revision(config, "orders")
    up, down = upgrade_body(first), downgrade_body(first)
    assert "import pghist" in first
    assert up.index("op.create_table('orders'") < up.index("op.track(")
    assert (
        "op.track(\n"
        "        'orders',\n"
        "        pghist.InsertEvent(),\n"
        "        pghist.UpdateEvent('total_down', row=pghist.Old, condition=("
        "pghist.Q(old__total__gt=pghist.F('new__total')) | pghist.AnyChange('note'))),\n"
        "        context_mode='json',\n"
        "    )"
    ) in up
    assert "op.untrack('orders', model_name='orders_event', drop_events=True)" in down
    assert down.index("op.untrack(") < down.index("op.drop_table('orders')")
    (directory / "first_migration.txt").write_text(first)  # for the README example

    # 4. Upgrade: tracked as declared, and writes are recorded.
    command.upgrade(config, "head")
    [(event_table, active, trackers, mode)] = tracking(owned_db, "orders")
    assert (event_table, active, mode) == ("orders_event", True, "json")
    assert [(t["label"], t["operation"], t["snapshot"]) for t in trackers] == [
        ("insert", "insert", "new"),
        ("total_down", "update", "old"),
    ]
    with owned_db.connect() as conn:
        conn.execute("INSERT INTO orders VALUES (1, 10, 'a')")
        conn.execute("UPDATE orders SET total = 5")  # down: recorded (old row)
        conn.execute("UPDATE orders SET total = 7")  # up, same note: not recorded
        events = conn.execute(
            "SELECT pgh_label, total FROM orders_event ORDER BY pgh_id"
        ).fetchall()
    assert events == [("insert", 10), ("total_down", 10)]

    # 5. The database agrees with the declarations: nothing to write.
    empty = revision(config, "nothing")
    assert "op." not in upgrade_body(empty) and "op." not in downgrade_body(empty)
    assert "pass" in upgrade_body(empty)
    command.upgrade(config, "head")

    # 6. A new column and another tracker: the column change is followed by op.sync, in the
    #    upgrade and in the downgrade, and the tracking change is reversed to the old one.
    models = directory / "models.py"
    models.write_text(
        MODELS_V1.replace(
            'Column("note", Text),', 'Column("note", Text),\n    Column("status", Text),'
        ).replace("pghist.InsertEvent(),", "pghist.InsertEvent(),\n    pghist.DeleteEvent(),")
    )
    second = revision(config, "status")
    up, down = upgrade_body(second), downgrade_body(second)
    assert re.search(r"op\.add_column\('orders', .*'status'.*\n\s+op\.sync\('orders'\)", up)
    assert up.index("op.sync('orders')") < up.index("op.track(")
    assert "pghist.DeleteEvent()" in up
    assert re.search(r"op\.drop_column\('orders', 'status'\)\n\s+op\.sync\('orders'\)", down)
    assert "op.track(" in down and "DeleteEvent" not in down
    assert down.index("op.track(") < down.index("op.drop_column(")
    command.upgrade(config, "head")
    with owned_db.connect() as conn:
        conn.execute("UPDATE orders SET status = 'paid', note = 'b'")
        conn.execute("DELETE FROM orders")
        labels = [r[0] for r in conn.execute("SELECT pgh_label FROM orders_event ORDER BY pgh_id")]
    assert labels == ["insert", "total_down", "total_down", "delete"]

    # 7. One step back: the old tracking again, and writes work without the column.
    command.downgrade(config, "-1")
    [(_, active, trackers, _)] = tracking(owned_db, "orders")
    assert [t["label"] for t in trackers] == ["insert", "total_down"]
    with owned_db.connect() as conn:
        conn.execute("INSERT INTO orders VALUES (2, 3, 'c')")
        conn.execute("UPDATE orders SET note = 'd'")
    models.write_text(MODELS_V1)
    for script in (directory / "versions").glob("*status.py"):
        script.unlink()
    empty = revision(config, "nothing again")
    assert "op." not in upgrade_body(empty)
    for script in (directory / "versions").glob("*nothing_again.py"):
        script.unlink()

    # 8. Removing the declaration untracks (history kept); the downgrade tracks again.
    models.write_text(MODELS_V1.split("pghist.sqlalchemy.track(", maxsplit=1)[0])
    third = revision(config, "untrack")
    assert "op.untrack('orders', model_name='orders_event')" in upgrade_body(third)
    assert "op.track(" in downgrade_body(third)
    command.upgrade(config, "head")
    [(_, active, _, _)] = tracking(owned_db, "orders")
    assert active is False
    command.downgrade(config, "-1")
    [(_, active, _, _)] = tracking(owned_db, "orders")
    assert active is True
    for script in (directory / "versions").glob("*untrack.py"):
        script.unlink()
    models.write_text(MODELS_V1)

    # 9. Down to base: the table, its tracking and its history are gone.
    command.downgrade(config, "base")
    assert owned_db.scalar("SELECT to_regclass('orders_event')") is None
    assert owned_db.scalar("SELECT to_regclass('orders')") is None
    assert owned_db.scalar("SELECT count(*) FROM pghistory.tracking") == 0

    # 10. And up again from scratch, then nothing left to generate.
    command.upgrade(config, "head")
    assert tracking(owned_db, "orders")[0][1] is True
    empty = revision(config, "nothing at the end")
    assert "op." not in upgrade_body(empty)


def test_alembic_bad_declarations(
    alembic_env: tuple[Config, Path], owned_db: OwnedDatabase
) -> None:
    config, directory = alembic_env
    install = hand_written(config, "install pghistory", "op.install_pghistory()")
    command.upgrade(config, "head")
    installed_revision = install.name.split("_")[0]
    models = directory / "models.py"
    bad = MODELS_V1.replace('context_mode="json",', 'fields=["total", "nope"],')

    # A new table with a tracker on an unknown column: the upgrade fails and rolls back whole.
    models.write_text(bad)
    generated = revision(config, "bad")
    assert "fields=['total', 'nope']" in generated
    with pytest.raises(Exception, match="nope"):
        command.upgrade(config, "head")
    assert owned_db.scalar("SELECT to_regclass('orders')") is None
    assert owned_db.rows("SELECT version_num FROM alembic_version") == [(installed_revision,)]

    # An existing table: the same mistake is an error at autogenerate time, naming the column.
    for script in (directory / "versions").glob("*bad.py"):
        script.unlink()
    models.write_text(MODELS_V1.split("pghist.sqlalchemy.track(", maxsplit=1)[0])
    revision(config, "orders")
    command.upgrade(config, "head")
    models.write_text(bad)
    with pytest.raises(CommandError, match=r"'orders'.*nope"):
        revision(config, "bad again")

    # A hand-written op.track of a table that does not exist: the error names it, nothing stays.
    for script in (directory / "versions").glob("*bad_again.py"):
        script.unlink()
    hand_written(
        config,
        "ghost",
        """
        op.create_table('ledger', sa.Column('id', sa.Integer, primary_key=True))
        op.track('ledger')
        op.track('ghost', pghist.InsertEvent())
        """,
    )
    with pytest.raises(Exception, match="ghost"):
        command.upgrade(config, "head")
    assert owned_db.scalar("SELECT to_regclass('ledger')") is None
    assert owned_db.scalar("SELECT to_regclass('ledger_event')") is None


def test_alembic_offline_sql(
    alembic_env: tuple[Config, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`alembic upgrade --sql` writes the statements, conditions included, as SQL."""
    config, _ = alembic_env
    hand_written(
        config,
        "by hand",
        """
        op.track('orders', pghist.UpdateEvent(condition=pghist.Q(new__note='a:b')))
        op.sync('orders')
        """,
    )
    command.upgrade(config, "head", sql=True)
    out = capsys.readouterr().out
    assert """SELECT "pghistory"."track"('orders'::regclass""" in out
    assert "'NEW.\"note\" = ''a:b'''::text" in out
    assert """SELECT "pghistory"."sync"('orders'::regclass);""" in out


def test_alembic_declared_table_missing(alembic_env: tuple[Config, Path]) -> None:
    """A declared table that autogenerate may not create (include_object) and that is missing."""
    config, directory = alembic_env
    env = directory / "env.py"
    env.write_text(
        env.read_text().replace(
            "connection=connection, target_metadata=target_metadata",
            "connection=connection, target_metadata=target_metadata,\n"
            "            include_object=lambda obj, name, kind, *_: name != 'orders',",
        )
    )
    hand_written(config, "install pghistory", "op.install_pghistory()")
    command.upgrade(config, "head")
    with pytest.raises(CommandError, match=r"'orders' is declared tracked .* does not exist"):
        revision(config, "missing")


def test_alembic_condition_text_survives(
    alembic_env: tuple[Config, Path], owned_db: OwnedDatabase
) -> None:
    """Colons and percent signs in a condition reach the server as written (online mode)."""
    config, _ = alembic_env
    hand_written(
        config,
        "notes",
        """
        op.install_pghistory()
        op.create_table('notes', sa.Column('id', sa.Integer, primary_key=True),
                        sa.Column('body', sa.Text))
        op.track('notes', pghist.UpdateEvent(condition=pghist.Q(new__body='50% a:b')))
        """,
    )
    command.upgrade(config, "head")
    with owned_db.connect() as conn:
        conn.execute("INSERT INTO notes VALUES (1, 'x'), (2, 'y')")
        conn.execute("UPDATE notes SET body = '50% a:b' WHERE id = 1")
        conn.execute("UPDATE notes SET body = 'z' WHERE id = 2")
        rows = conn.execute("SELECT pgh_obj_id, body FROM notes_event").fetchall()
    assert rows == [(1, "50% a:b")]


def test_alembic_tracking_a_column_the_migration_adds(
    alembic_env: tuple[Config, Path], owned_db: OwnedDatabase
) -> None:
    """The declaration names a column this migration adds: decided at upgrade, reversed exactly."""
    config, directory = alembic_env
    hand_written(config, "install pghistory", "op.install_pghistory()")
    command.upgrade(config, "head")
    revision(config, "orders")
    command.upgrade(config, "head")
    with owned_db.connect() as conn:  # a table tracked by hand, not in the metadata: left alone
        conn.execute("CREATE TABLE legacy (id int PRIMARY KEY)")
        conn.execute("SELECT pghistory.track('legacy')")
    (directory / "models.py").write_text(
        MODELS_V1.replace(
            'Column("note", Text),', 'Column("note", Text),\n    Column("status", Text),'
        ).replace('context_mode="json",', 'context_mode="json",\n    fields=["total", "status"],')
    )
    generated = revision(config, "status")
    up, down = upgrade_body(generated), downgrade_body(generated)
    assert "op.untrack(" not in up  # legacy: Alembic proposes drop_table, pghist says nothing
    assert up.index("op.add_column(") < up.index("op.sync('orders')") < up.index("op.track(")
    assert "fields=['total', 'status']" in up
    assert "fields=" not in down and "pghist.Condition(" in down
    command.upgrade(config, "head")
    with owned_db.connect() as conn:
        conn.execute("INSERT INTO orders VALUES (1, 10, 'a', 'new')")
        [(status,)] = conn.execute("SELECT status FROM orders_event").fetchall()
    assert status == "new"
    command.downgrade(config, "-1")
    [(fields, active)] = owned_db.rows(
        "SELECT fields, active FROM pghistory.tracking WHERE target = 'orders'::regclass"
    )
    assert (fields, active) == (["id", "total", "note"], True)
    with owned_db.connect() as conn:
        conn.execute("UPDATE orders SET total = 1")
        assert conn.execute("SELECT count(*) FROM orders_event").fetchone() == (2,)


def test_alembic_plugin_runs_once(alembic_env: tuple[Config, Path]) -> None:
    """Listed as an Alembic 1.18+ plugin too, the comparator still writes each operation once."""
    plugins = pytest.importorskip("alembic.runtime.plugins")
    config, directory = alembic_env
    env = directory / "env.py"
    source = env.read_text()
    source = source.replace(
        "connection=connection, target_metadata=target_metadata",
        "connection=connection, target_metadata=target_metadata,\n"
        "            autogenerate_plugins=['alembic.autogenerate.*', 'pghist'],",
    )
    env.write_text(source)
    plugin = plugins.Plugin("pghist")
    try:
        pghist_alembic = __import__("pghist.alembic", fromlist=["setup"])
        pghist_alembic.setup(plugin)
        hand_written(config, "install pghistory", "op.install_pghistory()")
        command.upgrade(config, "head")
        generated = revision(config, "orders")
    finally:
        plugin.remove()
    assert upgrade_body(generated).count("op.track(") == 1
    assert downgrade_body(generated).count("op.untrack(") == 1


# --- Django ---------------------------------------------------------------------------------

SETTINGS = """\
SECRET_KEY = "test"
USE_TZ = True
INSTALLED_APPS = ["shop"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.postgresql",
        "NAME": {dbname!r},
        "USER": {user!r},
        "HOST": {host!r},
        "PORT": {port!r},
    }}
}}
"""

MODELS = """\
from django.db import models


class Item(models.Model):
    name = models.TextField()
    quantity = models.IntegerField(default=0)
    price = models.DecimalField(max_digits=8, decimal_places=2, null=True)
"""

MIGRATION_0001 = """\
from django.db import migrations, models

import pghist
from pghist.django.operations import InstallPghistory, Track


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        InstallPghistory(),
        migrations.CreateModel(
            name="Item",
            fields=[
                ("id", models.AutoField(primary_key=True)),
                ("name", models.TextField()),
                ("qty", models.IntegerField(default=0)),
            ],
        ),
        Track(
            "shop.Item",
            pghist.InsertEvent(),
            pghist.UpdateEvent("qty_down", condition=pghist.Q(old__qty__gt=pghist.F("new__qty"))),
            pghist.DeleteEvent(),
            drop_events_on_reverse=True,
        ),
    ]
"""

# Schema changes of the tracked model and nothing else: the integration adds the sync.
MIGRATION_0002 = """\
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [
        migrations.RenameField("Item", "qty", "quantity"),
        migrations.AddField(
            "Item", "price", models.DecimalField(max_digits=8, decimal_places=2, null=True)
        ),
    ]
"""

MIGRATION_0003 = """\
from django.db import migrations

import pghist
from pghist.django.operations import Untrack


class Migration(migrations.Migration):
    dependencies = [("shop", "0002_quantity_price")]

    operations = [
        Untrack(
            "shop.Item",
            pghist.InsertEvent(),
            pghist.UpdateEvent(
                "qty_down", condition=pghist.Q(old__quantity__gt=pghist.F("new__quantity"))
            ),
            pghist.DeleteEvent(),
        ),
    ]
"""


@pytest.fixture
def django_project(tmp_path: Path, owned_db: OwnedDatabase) -> Path:
    pytest.importorskip("django")
    (tmp_path / "settings.py").write_text(
        SETTINGS.format(
            dbname=owned_db.dbname, user=owned_db.role, host=owned_db.host, port=owned_db.port
        )
    )
    app = tmp_path / "shop"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(MODELS)
    (app / "migrations" / "__init__.py").write_text("")
    (app / "migrations" / "0001_initial.py").write_text(MIGRATION_0001)
    (app / "migrations" / "0002_quantity_price.py").write_text(MIGRATION_0002)
    (app / "migrations" / "0003_untrack.py").write_text(MIGRATION_0003)
    return tmp_path


def manage(project: Path, *args: str) -> str:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "settings"
    env["PYTHONPATH"] = os.pathsep.join([str(project), str(PACKAGE)])
    result = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_django_migrate_forward_and_back(django_project: Path, owned_db: OwnedDatabase) -> None:
    # sqlmigrate shows the operations' SQL, both ways.
    forward = manage(django_project, "sqlmigrate", "shop", "0001")
    assert (
        "-- Install the pghistory extension\n--\n-- THIS OPERATION CANNOT BE WRITTEN AS SQL"
        in forward
    )
    assert """SELECT "pghistory"."track"('shop_item'::regclass, "trackers" => ARRAY[""" in forward
    assert """"condition" => 'OLD."qty" > NEW."qty"'::text""" in forward
    assert forward.index('CREATE TABLE "shop_item"') < forward.index('"pghistory"."track"')
    backward = manage(django_project, "sqlmigrate", "shop", "0001", "--backwards")
    assert (
        """SELECT "pghistory"."untrack"('shop_item'::regclass, "drop_events" => true::boolean);"""
        in backward
    )
    assert backward.index('"pghistory"."untrack"') < backward.index('DROP TABLE "shop_item"')

    # Forward to 0001: installed by a role that is no superuser (no event triggers), tracked.
    manage(django_project, "migrate", "shop", "0001")
    assert owned_db.scalar("SELECT count(*) FROM pg_event_trigger") == 0
    assert owned_db.scalar(
        "SELECT active FROM pghistory.tracking WHERE target = 'shop_item'::regclass"
    )
    with owned_db.connect() as conn:
        conn.execute("INSERT INTO shop_item (name, qty) VALUES ('bolt', 10)")
        conn.execute("UPDATE shop_item SET qty = 4")

    # 0002 renames a tracked column and adds one; its sync step keeps writes working.
    manage(django_project, "migrate", "shop", "0002")
    with owned_db.connect() as conn:
        conn.execute("UPDATE shop_item SET quantity = 3, price = 1.5")
        conn.execute("INSERT INTO shop_item (name, quantity) VALUES ('nut', 1)")
        rows = conn.execute(
            "SELECT pgh_label, quantity, price FROM shop_item_event ORDER BY pgh_id"
        ).fetchall()
    assert [(label, qty) for label, qty, _ in rows] == [
        ("insert", 10),
        ("qty_down", 4),
        ("qty_down", 3),
        ("insert", 1),
    ]
    assert rows[2][2] == Decimal("1.50")

    # 0003 untracks (history kept); migrating it back tracks again as it says.
    manage(django_project, "migrate", "shop", "0003")
    assert owned_db.rows("SELECT active FROM pghistory.tracking") == [(False,)]
    with owned_db.connect() as conn:
        conn.execute("UPDATE shop_item SET quantity = 0")  # not recorded
    untrack_sql = manage(django_project, "sqlmigrate", "shop", "0003")
    assert """SELECT "pghistory"."untrack"('shop_item'::regclass);""" in untrack_sql
    manage(django_project, "migrate", "shop", "0002")
    [(active, trackers)] = owned_db.rows("SELECT active, trackers FROM pghistory.tracking")
    assert active is True
    assert [t["label"] for t in trackers] == ["delete", "insert", "qty_down"]
    with owned_db.connect() as conn:
        conn.execute("UPDATE shop_item SET quantity = quantity + 5")  # up: not recorded
        conn.execute("UPDATE shop_item SET quantity = 3, price = 1.5 WHERE name = 'bolt'")
        assert conn.execute("SELECT count(*) FROM shop_item_event").fetchone() == (5,)

    # Back to 0001: the column is renamed back and dropped; writes still work.
    manage(django_project, "migrate", "shop", "0001")
    with owned_db.connect() as conn:
        conn.execute("UPDATE shop_item SET qty = 0 WHERE name = 'bolt'")
        conn.execute("DELETE FROM shop_item WHERE name = 'nut'")
        labels = [
            r[0] for r in conn.execute("SELECT pgh_label FROM shop_item_event ORDER BY pgh_id")
        ]
    assert labels[-2:] == ["qty_down", "delete"]
    assert owned_db.scalar("SELECT count(*) FROM pghistory.verify()") == 0

    # Back to zero: tracking and history gone with the table; and forward again works.
    manage(django_project, "migrate", "shop", "zero")
    assert owned_db.scalar("SELECT to_regclass('shop_item_event')") is None
    assert owned_db.scalar("SELECT count(*) FROM pghistory.tracking") == 0
    manage(django_project, "migrate", "shop", "0002")
    with owned_db.connect() as conn:
        conn.execute("INSERT INTO shop_item (name, quantity) VALUES ('washer', 2)")
        assert conn.execute("SELECT count(*) FROM shop_item_event").fetchone() == (1,)


def test_import_pghist_pulls_in_no_framework() -> None:
    code = (
        "import sys, pghist, pghist._migrations\n"
        "loaded = sorted(m for m in ('sqlalchemy', 'alembic', 'django') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_stored_conditions_read_back_as_helpers(conn: psycopg.Connection[Any]) -> None:
    """A downgrade rebuilds trackers from the registry: a helper's placeholder reads as the helper,
    which the server turns into the very same text again."""
    from pghist import _migrations

    for call, source in [
        ("pghistory.any_change('a', 'b')", "pghist.AnyChange('a', 'b')"),
        ("pghistory.all_dont_change(exclude => ARRAY['c'])", "pghist.AllDontChange(exclude=['c'])"),
        ("pghistory.any_change(exclude_auto => true)", "pghist.AnyChange(exclude_auto=True)"),
    ]:
        [(text,)] = conn.execute(f"SELECT {call}").fetchall()
        tracker = _migrations.tracker_from_row("update", "update", "new", "after", text)
        assert _migrations.python_source(tracker) == f"pghist.UpdateEvent(condition={source})"
        assert tracker.condition is not None
        again = tracker.condition.as_sql()
        [(rebuilt,)] = conn.execute(
            sql.SQL("SELECT {}").format(again.query), again.params
        ).fetchall()
        assert rebuilt == text
    mixed = "(OLD.a > 1) OR (/*pghistory:any_change {}*/)"
    tracker = _migrations.tracker_from_row("update", "update", "new", "after", mixed)
    assert (
        _migrations.python_source(tracker)
        == f"pghist.UpdateEvent(condition=pghist.Condition({mixed!r}))"
    )


def test_declare_on_a_mapped_class() -> None:
    orm = pytest.importorskip("sqlalchemy.orm")
    from sqlalchemy import Column, Integer

    import pghist
    import pghist.sqlalchemy

    class Base(orm.DeclarativeBase):  # type: ignore[name-defined,misc]
        pass

    class Order(Base):
        __tablename__ = "orders"
        id = Column(Integer, primary_key=True)

    assert pghist.sqlalchemy.track(Order, pghist.InsertEvent()) is Order
    pghist.sqlalchemy.track(Order, pghist.DeleteEvent(), model_name="order_deletes")
    pghist.sqlalchemy.track(Order, pghist.UpdateEvent())  # replaces the first declaration
    declared = pghist.sqlalchemy.declarations(Order.__table__)
    assert [(d.model_name, [type(t).__name__ for t in d.trackers]) for d in declared] == [
        (None, ["UpdateEvent"]),
        ("order_deletes", ["DeleteEvent"]),
    ]
    with pytest.raises(TypeError, match="unknown option 'feilds'"):
        pghist.sqlalchemy.track(Order, feilds=["id"])
    with pytest.raises(TypeError, match="takes a Table or a mapped class"):
        pghist.sqlalchemy.track(object())
