"""A table model's request, checked against its signature (the dataset's declared schema): every way a row can be
wrong is a 422 naming the column, and a right one comes back typed as the model expects."""

from __future__ import annotations

import pytest

from release_assets.serving.requests import RequestError, parse_table_row

COLUMNS = {
    "income": {"dtype": "float", "min": 0.0},
    "age": {"dtype": "int", "min": 18.0, "max": 120.0},
    "region": {"dtype": "str", "allowed": ["north", "south"]},
    "member": {"dtype": "bool"},
    "joined": {"dtype": "datetime", "nullable": True},
}
GOOD = {"income": 52000, "age": 34, "region": "north", "member": True, "joined": "2024-01-03"}


def test_a_valid_row_comes_back_typed():
    row = parse_table_row({"features": GOOD, "user_id": "u-1"}, COLUMNS)
    assert row == {**GOOD, "income": 52000.0}
    assert isinstance(row["income"], float) and isinstance(row["age"], int)
    assert parse_table_row({"features": {**GOOD, "joined": None}}, COLUMNS)["joined"] is None  # nullable


@pytest.mark.parametrize(
    ("features", "field", "says"),
    [
        ({k: v for k, v in GOOD.items() if k != "age"}, "features.age", "missing"),
        ({**GOOD, "colour": "red"}, "features.colour", "not a feature column"),
        ({**GOOD, "income": "lots"}, "features.income", "finite number"),
        ({**GOOD, "income": True}, "features.income", "finite number"),
        ({**GOOD, "age": 34.5}, "features.age", "whole number"),
        ({**GOOD, "age": 7}, "features.age", "outside"),
        ({**GOOD, "income": -1}, "features.income", "outside"),
        ({**GOOD, "region": "mars"}, "features.region", "not one of"),
        ({**GOOD, "region": 3}, "features.region", "must be a string"),
        ({**GOOD, "member": "yes"}, "features.member", "true or false"),
        ({**GOOD, "joined": "last tuesday"}, "features.joined", "ISO 8601"),
    ],
)
def test_each_wrong_column_is_a_422_naming_it(features, field, says):
    with pytest.raises(RequestError) as caught:
        parse_table_row({"features": features}, COLUMNS)
    assert caught.value.field == field and caught.value.status == 422
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("request_body", "field"),
    [({"features": [1, 2]}, "features"), ({"features": GOOD, "extra": 1}, "extra"), ({}, "features")],
)
def test_a_request_that_is_not_a_row_names_what_is_wrong(request_body, field):
    with pytest.raises(RequestError) as caught:
        parse_table_row(request_body, COLUMNS)
    assert caught.value.field == field
