"""The Q/F compiler and the composition of conditions, without a server.

Conditions compile to SQL text over OLD/NEW (Q, F, Condition) or to calls of the
extension's helpers (AnyChange & co.), combined with '||' into one text expression.
The server-side behaviour of the same conditions is in test_track.py.
"""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest

import pghist
from pghist import (
    AllChange,
    AllDontChange,
    AnyChange,
    AnyDontChange,
    Condition,
    F,
    Q,
)

# --- Q: one lookup ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        ({"old__dollars": 1}, 'OLD."dollars" = 1'),
        ({"old__dollars__exact": 1}, 'OLD."dollars" = 1'),
        ({"new__dollars__gt": 100}, 'NEW."dollars" > 100'),
        ({"new__dollars__gte": 100}, 'NEW."dollars" >= 100'),
        ({"new__dollars__lt": -5}, 'NEW."dollars" < -5'),
        ({"new__dollars__lte": 2.5}, 'NEW."dollars" <= 2.5'),
        ({"new__dollars__in": [1, 2, 3]}, 'NEW."dollars" IN (1, 2, 3)'),
        ({"new__dollars__in": ()}, "false"),
        ({"new__email__isnull": True}, 'NEW."email" IS NULL'),
        ({"new__email__isnull": False}, 'NEW."email" IS NOT NULL'),
        ({"new__email__df": "x"}, "NEW.\"email\" IS DISTINCT FROM 'x'"),
        ({"new__email__ndf": "x"}, "NEW.\"email\" IS NOT DISTINCT FROM 'x'"),
        ({"new__email__df": None}, 'NEW."email" IS DISTINCT FROM NULL'),
        ({"new__email__exact": None}, 'NEW."email" IS NULL'),
        ({"new__email__exact": "x"}, "NEW.\"email\" = 'x'"),
        ({"new__active": True}, 'NEW."active" = true'),
        ({"new__active": False}, 'NEW."active" = false'),
        ({"OLD__dollars": 0}, 'OLD."dollars" = 0'),
    ],
)
def test_single_lookup(lookup: dict[str, object], expected: str) -> None:
    assert Q(**lookup).compile() == expected


def test_api_examples() -> None:
    # API.md section 4: the counterparts of the raw SQL conditions
    assert Q(old__dollars__gte=100, new__dollars__lt=100).compile() == (
        'OLD."dollars" >= 100 AND NEW."dollars" < 100'
    )
    assert Q(old__dollars__gt=F("new__dollars")).compile() == 'OLD."dollars" > NEW."dollars"'


def test_f_expressions() -> None:
    assert F("old__x").sql() == 'OLD."x"'
    assert F("new__x").sql() == 'NEW."x"'
    assert Q(new__a__df=F("old__a")).compile() == 'NEW."a" IS DISTINCT FROM OLD."a"'
    assert Q(new__a__in=[F("old__a"), 1]).compile() == 'NEW."a" IN (OLD."a", 1)'
    assert F("new__x") == F("NEW__x")
    assert F("new__x") != F("old__x")


# --- values that need quoting ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("O'Brien", "'O''Brien'"),
        ("it''s", "'it''''s'"),
        ("back\\slash", "E'back\\\\slash'"),
        ("'); DROP TABLE t; --", "'''); DROP TABLE t; --'"),
        ("ünïcode ✓", "'ünïcode ✓'"),
        ("", "''"),
        (decimal.Decimal("12.50"), "12.50"),
        (float("nan"), "'NaN'::float8"),
        (datetime.date(2024, 2, 29), "'2024-02-29'::date"),
        (uuid.UUID(int=1), "'00000000000000000000000000000001'::uuid"),
    ],
)
def test_literal_quoting(value: object, expected: str) -> None:
    assert Q(new__c=value).compile() == f'NEW."c" = {expected}'


def test_column_names_are_quoted() -> None:
    assert Q(new__Weird="x").compile() == "NEW.\"Weird\" = 'x'"
    assert Q(**{'new__a"b': 1}).compile() == 'NEW."a""b" = 1'
    assert Q(**{"new__with space": 1}).compile() == 'NEW."with space" = 1'


def test_nul_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        Q(new__c="a\x00b")


# --- combinations ----------------------------------------------------------------------


def test_and_or_not() -> None:
    a, b, c = Q(new__a=1), Q(new__b=2), Q(new__c=3)
    assert (a & b).compile() == 'NEW."a" = 1 AND NEW."b" = 2'
    assert (a | b).compile() == 'NEW."a" = 1 OR NEW."b" = 2'
    assert (~a).compile() == 'NOT (NEW."a" = 1)'
    assert ((a | b) & c).compile() == '(NEW."a" = 1 OR NEW."b" = 2) AND NEW."c" = 3'
    assert (a | (b & c)).compile() == 'NEW."a" = 1 OR (NEW."b" = 2 AND NEW."c" = 3)'
    assert (~(a | b)).compile() == 'NOT (NEW."a" = 1 OR NEW."b" = 2)'
    assert (~a & ~b).compile() == 'NOT (NEW."a" = 1) AND NOT (NEW."b" = 2)'
    assert (~~a).compile() == 'NOT (NOT (NEW."a" = 1))'
    assert Q(a, b).compile() == 'NEW."a" = 1 AND NEW."b" = 2'
    assert Q(a | b, new__d=4).compile() == '(NEW."a" = 1 OR NEW."b" = 2) AND NEW."d" = 4'


def test_q_combined_with_q_stays_q() -> None:
    combined = Q(new__a=1) & Q(new__b=2)
    assert isinstance(combined, Q)
    fragment = combined.as_sql()
    assert fragment.render() == "%s::text"
    assert fragment.params == ('NEW."a" = 1 AND NEW."b" = 2',)


def test_q_with_helpers_combines_server_side() -> None:
    condition = AnyChange("email") & Q(new__email__isnull=False)
    assert not isinstance(condition, Q)
    fragment = condition.as_sql()
    assert fragment.render() == (
        '(\'(\' || "pghistory"."any_change"("fields" => %s::text[])'
        " || ') AND (' || %s::text || ')')"
    )
    assert fragment.params == (["email"], 'NEW."email" IS NOT NULL')


def test_negated_helper() -> None:
    fragment = (~AllChange("a", "b")).as_sql()
    assert fragment.render() == (
        '(\'NOT (\' || "pghistory"."all_change"("fields" => %s::text[]) || \')\')'
    )
    assert fragment.params == (["a", "b"],)


def test_or_of_raw_and_helper() -> None:
    fragment = (Condition("NEW.x > 1") | AnyDontChange(exclude=["y"])).as_sql()
    assert fragment.render() == (
        "('(' || %s::text || ') OR (' || \"pghistory\".\"any_dont_change\""
        "(\"exclude\" => %s::text[]) || ')')"
    )
    assert fragment.params == ("NEW.x > 1", ["y"])


def test_combining_with_something_else_fails() -> None:
    with pytest.raises(TypeError):
        AnyChange("a") & "NEW.x > 1"  # type: ignore[operator]
    with pytest.raises(TypeError):
        Q(new__a=1) | 3  # type: ignore[operator]


# --- helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "sql", "params"),
    [
        (AnyChange(), '"pghistory"."any_change"()', ()),
        (AnyChange("a"), '"pghistory"."any_change"("fields" => %s::text[])', (["a"],)),
        (
            AllChange("a", "b", exclude_auto=True),
            '"pghistory"."all_change"("fields" => %s::text[], "exclude_auto" => %s::boolean)',
            (["a", "b"], True),
        ),
        (
            AnyDontChange(exclude=["x"], exclude_auto=True),
            '"pghistory"."any_dont_change"("exclude" => %s::text[], "exclude_auto" => %s::boolean)',
            (["x"], True),
        ),
        (
            AllDontChange("a"),
            '"pghistory"."all_dont_change"("fields" => %s::text[])',
            (["a"],),
        ),
    ],
)
def test_helper_calls(condition: pghist.BaseCondition, sql: str, params: tuple[object]) -> None:
    fragment = condition.as_sql()
    assert fragment.render() == sql
    assert fragment.params == params


def test_raw_condition_is_a_bound_parameter() -> None:
    fragment = Condition("OLD.dollars >= 100 AND NEW.dollars < 100").as_sql()
    assert fragment.render() == "%s::text"
    assert fragment.params == ("OLD.dollars >= 100 AND NEW.dollars < 100",)


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lookup",
    [
        {"dollars__gt": 1},  # no row
        {"mid__dollars": 1},  # not old/new
        {"old__dollars__like": "x"},  # unknown lookup
        {"old__dollars__gt__lt": 1},  # too many parts
        {"old__": 1},  # no column
        {"new__x__isnull": "yes"},  # isnull takes a bool
        {"new__x__in": "abc"},  # in takes a list
        {"new__x__in": 5},
        {"new__x__gt": None},  # None only with exact/df/ndf
    ],
)
def test_bad_lookups(lookup: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Q(**lookup)


def test_bad_values_and_objects() -> None:
    with pytest.raises(TypeError):
        Q(new__x=object())
    with pytest.raises(ValueError):
        F("dollars")
    with pytest.raises(ValueError):
        F("new__a__b")
    with pytest.raises(TypeError):
        Q("new__x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        Q().compile()
    with pytest.raises(ValueError):
        Condition("   ")
    with pytest.raises(TypeError):
        AnyChange("a", exclude="b")
    with pytest.raises(TypeError):
        AnyChange(1)  # type: ignore[arg-type]
