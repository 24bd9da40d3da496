"""The one check for JSON the portal stores, and the form JSON columns give back."""

import json

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from portal.jsonvalues import MAX_DEPTH, json_stored_form, json_value_check, json_value_problems


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"metrics": {"mae": 10**400}}, "metrics.mae"),
        ({"hyperparameters": {"layers": [1, 2, float("inf")]}}, "hyperparameters.layers[2]"),
        ({"hyperparameters": {"alpha": float("nan")}}, "hyperparameters.alpha"),
        ({"notes": "a\x00b"}, "notes"),
        ({"notes": ["ok", "lone \udc00"]}, "notes[1]"),
        ({"a\x00": 1}, "a\x00"),
        ([{"x": -float("inf")}], "[0].x"),
    ],
)
def test_json_value_problems_names_the_path_of_each_unstorable_value(document, path):
    """Each refusal names where the value sits in the document."""
    assert list(json_value_problems(document)) == [path]


def test_json_value_problems_refuses_documents_nested_too_deeply():
    """Deep nesting is refused at the level where it crosses the limit, not by a crash."""
    document: object = 1
    for _ in range(MAX_DEPTH + 5):
        document = [document]
    problems = json_value_problems({"deep": document})
    assert list(problems) == ["deep" + "[0]" * (MAX_DEPTH - 1)]


def test_json_value_check_accepts_the_largest_finite_numbers():
    """1e300 and integers up to a float's range are storable; only beyond is refused."""
    json_value_check({"a": 1e300, "b": 10**300, "c": -(10**308), "d": 5e-324, "e": None})
    with pytest.raises(ValidationError) as error:
        json_value_check({"f": 10**309}, path="metrics")
    assert list(error.value.message_dict) == ["metrics.f"]


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (-0.0, 0.0),
        (1e300, 10**300),
        (1e16, 10**16),
        (-2.5e20, -(25 * 10**19)),
        (2.0, 2.0),
        (1.5e-07, 1.5e-07),
        ("a\x00b", "a\ufffdb"),
        ("x\ud800", "x\ufffd"),
    ],
)
def test_json_stored_form_matches_what_jsonb_gives_back(value, stored):
    """jsonb's numeric drops the sign of zero and reads exponent floats back as exact
    integers; NUL and lone surrogates cannot be kept and are replaced."""
    result = json_stored_form({"v": value})["v"]
    assert result == stored
    assert type(result) is type(stored)
    assert json.dumps(result) == json.dumps(stored)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(_json)
def test_json_stored_form_is_idempotent_and_survives_json_text(value):
    """Property: the stored form of the stored form is itself, and writing it as JSON
    text and reading it back (SQLite's column) changes nothing."""
    stored = json_stored_form(value)
    assert json_stored_form(stored) == stored
    text = json.dumps(stored, sort_keys=True, ensure_ascii=False)
    assert json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False) == text
