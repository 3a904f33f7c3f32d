"""Trackers and track(): the SQL they send, without a server.

Only the arguments given reach the server (so its defaults apply), every value is a
bound parameter, and the statement shape matches API.md section 2.
"""

from __future__ import annotations

import pytest

import pghist
from pghist.core import track_sql


def render(tracker: pghist.Tracker) -> tuple[str, tuple[object, ...]]:
    fragment = tracker.as_sql()
    return fragment.render(), fragment.params


def test_defaults_pass_no_arguments() -> None:
    assert render(pghist.InsertEvent()) == ('"pghistory"."insert_event"()', ())
    assert render(pghist.UpdateEvent()) == ('"pghistory"."update_event"()', ())
    assert render(pghist.DeleteEvent()) == ('"pghistory"."delete_event"()', ())


def test_labels_and_options() -> None:
    assert render(pghist.InsertEvent("created")) == (
        '"pghistory"."insert_event"("label" => %s::text)',
        ("created",),
    )
    assert render(pghist.UpdateEvent("email_changed", row=pghist.Old)) == (
        '"pghistory"."update_event"("label" => %s::text, "snapshot" => %s::text)',
        ("email_changed", "old"),
    )
    assert render(pghist.UpdateEvent(snapshot="NEW")) == (
        '"pghistory"."update_event"("snapshot" => %s::text)',
        ("new",),
    )
    assert render(pghist.ManualEvent("snap")) == (
        '"pghistory"."manual_event"("label" => %s::text)',
        ("snap",),
    )


def test_conditions_are_nested_expressions() -> None:
    sql, params = render(
        pghist.UpdateEvent(
            "money_down", condition=pghist.Q(old__dollars__gt=pghist.F("new__dollars"))
        )
    )
    assert sql == '"pghistory"."update_event"("label" => %s::text, "condition" => %s::text)'
    assert params == ("money_down", 'OLD."dollars" > NEW."dollars"')
    sql, params = render(pghist.DeleteEvent(condition="OLD.keep IS NOT TRUE"))
    assert sql == '"pghistory"."delete_event"("condition" => %s::text)'
    assert params == ("OLD.keep IS NOT TRUE",)
    sql, params = render(pghist.AfterUpdate("moved", condition=pghist.AnyChange("x")))
    assert sql == (
        '"pghistory"."after_update"("label" => %s::text, "condition" => '
        '"pghistory"."any_change"("fields" => %s::text[]))'
    )
    assert params == ("moved", ["x"])


def test_row_event() -> None:
    assert render(pghist.RowEvent("x", "UPDATE", row=pghist.Old, timing="before")) == (
        '"pghistory"."row_event"("label" => %s::text, "operation" => %s::text, '
        '"snapshot" => %s::text, "timing" => %s::text)',
        ("x", "update", "old", "before"),
    )


@pytest.mark.parametrize(
    ("cls", "function"),
    [
        (pghist.AfterInsert, "after_insert"),
        (pghist.AfterUpdate, "after_update"),
        (pghist.AfterDelete, "after_delete"),
        (pghist.BeforeUpdate, "before_update"),
        (pghist.BeforeDelete, "before_delete"),
        (pghist.AfterInsertOrUpdate, "after_insert_or_update"),
    ],
)
def test_labelled_trackers(cls: type[pghist.Tracker], function: str) -> None:
    assert render(cls("lbl")) == (f'"pghistory"."{function}"("label" => %s::text)', ("lbl",))
    with pytest.raises(TypeError):
        cls()


def test_bad_tracker_arguments() -> None:
    with pytest.raises(TypeError):
        pghist.ManualEvent(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pghist.UpdateEvent(row="old", snapshot="new")
    with pytest.raises(TypeError):
        pghist.InsertEvent(condition=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pghist.InsertEvent(7)  # type: ignore[arg-type]


def test_old_and_new() -> None:
    assert pghist.Old == "old"
    assert pghist.New == "new"


def test_track_statement_defaults() -> None:
    fragment = track_sql("public.t")
    assert fragment.render() == 'SELECT "pghistory"."track"(%s::regclass)::text'
    assert fragment.params == ("public.t",)


def test_track_statement_with_everything() -> None:
    fragment = track_sql(
        "public.user_groups",
        pghist.AfterInsert("group.add"),
        pghist.BeforeDelete("group.remove"),
        fields=["a", "b"],
        exclude=None,
        model_name="s.hist",
        obj_field=None,
        context_field="ctx",
        context_mode="json",
        append_only=True,
        level="row",
    )
    assert fragment.render() == (
        'SELECT "pghistory"."track"(%s::regclass, "trackers" => ARRAY['
        '"pghistory"."after_insert"("label" => %s::text), '
        '"pghistory"."before_delete"("label" => %s::text)]::pghistory.tracker[], '
        '"fields" => %s::text[], "model_name" => %s::text, "obj_field" => NULL::text, '
        '"context_field" => %s::text, "context_mode" => %s::text, '
        '"append_only" => %s::boolean, "level" => %s::text)::text'
    )
    assert fragment.params == (
        "public.user_groups",
        "group.add",
        "group.remove",
        ["a", "b"],
        "s.hist",
        "ctx",
        "json",
        True,
        "row",
    )


def test_obj_field_name_and_default() -> None:
    assert "obj_field" not in track_sql("t").render()
    fragment = track_sql("t", obj_field="thing_id")
    assert fragment.render().endswith('"obj_field" => %s::text)::text')
    assert fragment.params == ("t", "thing_id")


def test_track_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        track_sql("t", "insert")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        track_sql("t", fields="a,b")


def test_hostile_names_stay_parameters() -> None:
    name = "public.t'); DROP TABLE x; --"
    fragment = track_sql(name, pghist.InsertEvent("l'); --"), model_name='a"b')
    assert name not in fragment.render()
    assert "DROP" not in fragment.render()
    assert fragment.params[0] == name
