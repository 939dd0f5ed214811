from __future__ import annotations

import math
import re

import pytest

from gateway.payload import (
    Columns,
    PayloadError,
    SchemaMismatch,
    conform,
    parse_csv,
    parse_payload,
)
from registry.serving import InputColumn

SCHEMA = (
    InputColumn("sessions", "double", True),
    InputColumn("tickets", "long", True),
    InputColumn("plan", "string", True),
)


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["sessions", "plan"], "data": [[1.5, "pro"], [2, "free"]]}},
        {"dataframe_records": [{"sessions": 1.5, "plan": "pro"}, {"sessions": 2, "plan": "free"}]},
        {"instances": [{"sessions": 1.5, "plan": "pro"}, {"sessions": 2, "plan": "free"}]},
        {"instances": {"sessions": [1.5, 2], "plan": ["pro", "free"]}},
        {"inputs": [{"sessions": 1.5, "plan": "pro"}, {"sessions": 2, "plan": "free"}]},
        {"inputs": {"sessions": [1.5, 2], "plan": ["pro", "free"]}, "params": {}},
    ],
    ids=[
        "dataframe_split",
        "dataframe_records",
        "instances-records",
        "instances-columns",
        "inputs-records",
        "inputs-columns",
    ],
)
def test_every_mlflow_format_reads_to_the_same_columns(body: dict) -> None:
    columns = parse_payload(body, max_rows=10)
    assert columns == Columns(values={"sessions": [1.5, 2], "plan": ["pro", "free"]}, n_rows=2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "expected a JSON object"),
        ({}, "exactly one of the keys"),
        ({"dataframe_records": [], "instances": []}, "exactly one of the keys"),
        ({"rows": [[1]]}, "unknown keys: rows"),
        ({"inputs": [[1]]}, "inputs: expected a list of objects"),
        ({"inputs": {"a": [1, 2], "b": [1]}}, "inputs: columns have different lengths"),
        ({"dataframe_records": []}, "no rows"),
        ({"dataframe_records": [[1, 2]]}, "list of objects"),
        ({"dataframe_split": {"data": [[1]]}}, "'columns' and 'data'"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, "1 values for 2 columns"),
        ({"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}, "named twice"),
        ({"instances": {"a": [1, 2], "b": [1]}}, "different lengths"),
        ({"dataframe_records": [{"a": 1}] * 11}, "more than the limit of 10"),
    ],
)
def test_malformed_payloads_are_refused_with_the_reason(body: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_payload(body, max_rows=10)


def test_conform_orders_and_types_columns_and_drops_extras() -> None:
    columns = Columns(
        values={"plan": ["pro"], "extra": [1], "tickets": [3], "sessions": [None]}, n_rows=1
    )
    frame = conform(columns, SCHEMA, None)
    assert list(frame.columns) == ["sessions", "tickets", "plan"]
    assert math.isnan(frame.loc[0, "sessions"]) and frame.loc[0, "tickets"] == 3.0
    assert frame["sessions"].dtype == float


def test_a_missing_column_is_named_with_the_unexpected_ones() -> None:
    columns = Columns(values={"session": [1.0], "tickets": [1], "plan": ["pro"]}, n_rows=1)
    with pytest.raises(
        SchemaMismatch, match="missing column\\(s\\): sessions; not expected: session"
    ):
        conform(columns, SCHEMA, None)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("sessions", "many", "'sessions' \\(double\\) expects a number, got 'many'"),
        ("sessions", True, "expects a number"),
        ("tickets", 1.5, "'tickets' \\(long\\) expects an integer"),
        ("plan", 3, "'plan' \\(string\\) expects a string, got 3"),
        ("sessions", 10**400, "too large"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_column(
    column: str, value: object, message: str
) -> None:
    values = {"sessions": [1.0], "tickets": [1], "plan": ["pro"]} | {column: [value]}
    with pytest.raises(SchemaMismatch, match=message):
        conform(Columns(values=values, n_rows=1), SCHEMA, None)


def test_without_a_signature_the_fitted_feature_names_are_required() -> None:
    with pytest.raises(SchemaMismatch, match="missing column\\(s\\): plan"):
        conform(Columns(values={"sessions": [1.0]}, n_rows=1), None, ("sessions", "plan"))


def test_a_csv_body_takes_its_types_from_the_schema() -> None:
    columns = parse_csv(b"plan,sessions,tickets\r\npro,1.5,3\nfree,,0\n", max_rows=10)
    assert columns.textual and columns.n_rows == 2
    frame = conform(columns, SCHEMA, None)
    assert list(frame["plan"]) == ["pro", "free"]
    assert frame.loc[0, "sessions"] == 1.5 and math.isnan(frame.loc[1, "sessions"])
    assert list(frame["tickets"]) == [3.0, 0.0]


def test_a_csv_body_reads_like_the_same_rows_in_json() -> None:
    as_json = conform(
        parse_payload({"dataframe_records": [{"sessions": 2.0, "tickets": 1, "plan": "team"}]}, 10),
        SCHEMA,
        None,
    )
    as_csv = conform(parse_csv(b"sessions,tickets,plan\n2.0,1,team\n", 10), SCHEMA, None)
    assert as_csv.equals(as_json)


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"", PayloadError, "header row"),
        (b"sessions,sessions\n1,2\n", PayloadError, "names a column twice"),
        (b"sessions,plan\n1\n", PayloadError, "csv line 2: 1 values for 2 columns"),
        (b"sessions,plan\n", PayloadError, "no rows"),
        (b"\xff\xfe", PayloadError, "not UTF-8"),
        (b"sessions,tickets,plan\nmany,1,pro\n", SchemaMismatch, "'sessions' (double)"),
        (b"sessions,tickets,plan\n1,2.5,pro\n", SchemaMismatch, "'tickets' (long)"),
    ],
)
def test_a_bad_csv_body_is_refused_naming_the_line_or_column(
    body: bytes, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        conform(parse_csv(body, max_rows=10), SCHEMA, None)


def test_csv_rows_beyond_the_limit_are_refused() -> None:
    with pytest.raises(PayloadError, match="csv: 3 rows, more than the limit of 2"):
        parse_csv(b"sessions\n1\n2\n3\n", max_rows=2)
