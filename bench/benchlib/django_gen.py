"""Print, as JSON, the SQL django-pghistory generates for the benchmark's table.

Runs inside the bench's own virtualenv (made by benchlib/django_ref.py from pinned PyPI packages),
never imported by the benchmark: `python django_gen.py TABLE COLUMNS_JSON DATABASE_JSON` (Django's
schema editor wants a connection; nothing is executed on it). The statements are
what `manage.py migrate` runs for a model under `@pghistory.track()` (its defaults: insert and
update events, row level, a context foreign key): the context table, the event table and its
indexes, `_pgh_attach_context()`, and pgtrigger's triggers.
"""

from __future__ import annotations

import json
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

MODELS = """
import json
import os

import pghistory
from django.db import models

KINDS = {
    "integer": lambda: models.IntegerField(),
    "text": lambda: models.TextField(),
    "numeric(12,2)": lambda: models.DecimalField(max_digits=12, decimal_places=2),
    "timestamptz": lambda: models.DateTimeField(),
}
attrs = {
    "__module__": __name__,
    "id": models.BigAutoField(primary_key=True),
    "Meta": type("Meta", (), {"db_table": os.environ["BENCH_TABLE"]}),
}
for name, kind in json.loads(os.environ["BENCH_COLUMNS"]).items():
    attrs[name] = KINDS[kind]()
Tracked = pghistory.track()(type("Tracked", (models.Model,), attrs))
"""


def main() -> None:
    import os

    os.environ["BENCH_TABLE"], os.environ["BENCH_COLUMNS"] = sys.argv[1], sys.argv[2]
    database = json.loads(sys.argv[3])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "benchapp").mkdir()
        (Path(tmp) / "benchapp" / "__init__.py").write_text("")
        (Path(tmp) / "benchapp" / "models.py").write_text(MODELS)
        sys.path.insert(0, tmp)
        json.dump(generate(database), sys.stdout, indent=1)


def generate(database: dict[str, Any]) -> dict[str, Any]:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["pgtrigger", "pghistory", "benchapp"],
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", **database}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
    django.setup()
    from benchapp.models import Tracked  # type: ignore[import-not-found]  # written at run time
    from django.apps import apps
    from django.db import connection
    from pghistory.models import Context

    event_model = next(m for m in apps.get_app_config("benchapp").get_models() if m is not Tracked)
    with connection.schema_editor(collect_sql=True) as editor:
        editor.create_model(Context)
        editor.create_model(event_model)
    statements = list(editor.collected_sql)
    captured: list[str] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> None:
        captured.append(sql)  # not executed: the benchmark runs it on its own server

    with connection.execute_wrapper(capture):
        Context.install_pgh_attach_context_func()
    statements += captured
    statements += [t.compile(Tracked).install_sql for t in Tracked._meta.triggers]
    return {
        "statements": statements,
        "event_table": event_model._meta.db_table,
        "versions": {d: version(d) for d in ("Django", "django-pghistory", "django-pgtrigger")},
    }


if __name__ == "__main__":
    main()
