"""Read MLflow scoring payloads into a data frame that fits a version's input schema.

Every body `mlflow models serve` accepts is read: JSON with one of `dataframe_split`,
`dataframe_records`, `instances` or `inputs` (and optional `params`), and `text/csv` with a header
row. CSV values arrive as text and take their types from the version's input schema.

Two steps, two errors: `parse_payload` refuses a body that is not a scoring payload at all
(HTTP 400), `conform` refuses one whose columns or values do not fit the version that was chosen to
answer it (HTTP 422). Values are checked in plain Python before the frame is built, which is both
the cheapest path for the single-row requests that dominate and the one that can name the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from registry.serving import InputColumn

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_ALLOWED_KEYS = frozenset(FORMATS) | {"params"}
_NUMERIC = frozenset({"double", "float", "long", "integer"})
_INTEGRAL = frozenset({"long", "integer"})
SHOWN_CHARS = 60


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A caller's value as an error message may quote it: its repr, cut to `limit` characters, so
    a message never echoes a large input back."""
    if isinstance(value, str | bytes | list | dict) and len(value) > limit:
        value = value[:limit] if isinstance(value, str | bytes) else type(value).__name__
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def shown_names(names: Sequence[str], limit: int = 10) -> str:
    """Column names for a message: a few of them, each cut short, and how many more."""
    listed = ", ".join(
        shown(name)[1:-1] if isinstance(name, str) else shown(name) for name in names[:limit]
    )
    return listed + (f" and {len(names) - limit} more" if len(names) > limit else "")


class PayloadError(ValueError):
    """The body is not a scoring payload (HTTP 400)."""


class SchemaMismatch(ValueError):
    """The payload's columns or values do not fit the model version's input schema (HTTP 422)."""


@dataclass(frozen=True)
class Columns:
    """A payload as columns of plain JSON values, before any schema is applied; `textual` when
    every value is text to be read by the schema's types (a CSV body)."""

    values: dict[str, list]
    n_rows: int
    textual: bool = False


def parse_payload(body: object, max_rows: int) -> Columns:
    """Columns of a `dataframe_split`, `dataframe_records`, `instances` or `inputs` payload."""
    if not isinstance(body, dict):
        raise PayloadError(f"expected a JSON object with one of the keys {', '.join(FORMATS)}")
    unknown = sorted(set(body) - _ALLOWED_KEYS)
    given = [key for key in FORMATS if key in body]
    if unknown or len(given) != 1:
        raise PayloadError(
            f"expected exactly one of the keys {', '.join(FORMATS)}"
            + (f"; unknown keys: {', '.join(unknown)}" if unknown else "")
        )
    kind = given[0]
    if kind == "dataframe_split":
        columns = _from_split(body[kind])
    elif kind in ("instances", "inputs") and isinstance(body[kind], dict):
        columns = _from_columnar(body[kind], kind)
    else:
        columns = _from_records(body[kind], kind)
    return _within_limits(columns, kind, max_rows)


def parse_csv(body: bytes, max_rows: int) -> Columns:
    """Columns of a `text/csv` body: a header row of column names, then one line per row; an
    empty field is a missing value. The values stay text until `conform` reads them."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PayloadError(f"csv: the body is not UTF-8 text ({error.reason})") from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise PayloadError(f"csv: {error}") from None
    rows = [row for row in rows if row]
    if not rows:
        raise PayloadError("csv: expected a header row of column names")
    names, data = rows[0], rows[1:]
    if len(set(names)) != len(names) or not all(names):
        raise PayloadError("csv: the header names a column twice or leaves one unnamed")
    for line, row in enumerate(data, start=2):
        if len(row) != len(names):
            raise PayloadError(f"csv line {line}: {len(row)} values for {len(names)} columns")
    values = {name: [row[i] or None for row in data] for i, name in enumerate(names)}
    return _within_limits(Columns(values=values, n_rows=len(data), textual=True), "csv", max_rows)


def _within_limits(columns: Columns, kind: str, max_rows: int) -> Columns:
    if columns.n_rows == 0:
        raise PayloadError(f"{kind}: no rows to score")
    if columns.n_rows > max_rows:
        raise PayloadError(f"{kind}: {columns.n_rows} rows, more than the limit of {max_rows}")
    return columns


def _from_split(split: object) -> Columns:
    if not isinstance(split, dict) or "columns" not in split or "data" not in split:
        raise PayloadError("dataframe_split: expected an object with 'columns' and 'data'")
    names, data = split["columns"], split["data"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise PayloadError("dataframe_split.columns: expected a list of column names")
    if len(set(names)) != len(names):
        raise PayloadError("dataframe_split.columns: a column is named twice")
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        raise PayloadError("dataframe_split.data: expected a list of rows (lists)")
    for index, row in enumerate(data):
        if len(row) != len(names):
            raise PayloadError(
                f"dataframe_split.data[{index}]: {len(row)} values for {len(names)} columns"
            )
    values = {name: [row[i] for row in data] for i, name in enumerate(names)}
    return Columns(values=values, n_rows=len(data))


def _from_records(records: object, kind: str) -> Columns:
    if not isinstance(records, list) or not all(isinstance(row, dict) for row in records):
        raise PayloadError(f"{kind}: expected a list of objects (one per row)")
    names: dict[str, None] = {}
    for row in records:
        names.update(dict.fromkeys(row))
    # A key missing from a row is a missing value, as pandas reads records.
    values = {name: [row.get(name) for row in records] for name in names}
    return Columns(values=values, n_rows=len(records))


def _from_columnar(columns: dict, kind: str) -> Columns:
    if not all(isinstance(column, list) for column in columns.values()):
        raise PayloadError(f"{kind}: expected each column to be a list of values")
    lengths = {len(column) for column in columns.values()}
    if len(lengths) > 1:
        raise PayloadError(f"{kind}: columns have different lengths")
    return Columns(values=dict(columns), n_rows=lengths.pop() if lengths else 0)


def conform(
    columns: Columns, schema: Sequence[InputColumn] | None, feature_names: Sequence[str] | None
) -> pd.DataFrame:
    """The data frame a version expects: its columns, in its order, with its types.

    Extra columns are dropped, as MLflow's own scoring server does. Without a logged signature only
    the column names the pipeline was fitted on (`feature_names`) can be checked.
    """
    return typed_frame(conform_values(columns, schema, feature_names), schema)


def conform_values(
    columns: Columns, schema: Sequence[InputColumn] | None, feature_names: Sequence[str] | None
) -> dict[str, list]:
    """The payload's values of the columns a version expects, in its order, as plain values:
    CSV text read as each column's type, an optional column left out as missing values. What the
    prediction log keeps of a request (cheap to slice and write, unlike a frame's rows); the
    values' types are checked when `typed_frame` builds the frame."""
    if schema is None:
        names = list(feature_names) if feature_names is not None else list(columns.values)
        _require(columns, names)
        if columns.textual:
            return {name: _inferred(columns.values[name]) for name in names}
        return {name: columns.values[name] for name in names}
    _require(columns, [column.name for column in schema if column.required])
    values = {}
    for column in schema:
        given = columns.values.get(column.name)
        if given is None:
            given = [None] * columns.n_rows
        elif columns.textual:
            given = _read_text(column, given)
        values[column.name] = given
    return values


def typed_frame(values: dict[str, list], schema: Sequence[InputColumn] | None) -> pd.DataFrame:
    """The frame of `conform_values`' values, each column of its schema type (raises
    SchemaMismatch on a value of another type)."""
    # Imported here, not with the module: the log's writer process reads this module (`shown`)
    # and builds no frame, so it need not load pandas.
    import pandas as pd

    if schema is None:
        return pd.DataFrame(values)
    return pd.DataFrame(typed_columns(values, schema))


def typed_columns(values: dict[str, list], schema: Sequence[InputColumn]) -> dict[str, np.ndarray]:
    """`conform_values`' values as one array per schema column, of its type (raises
    SchemaMismatch): the compiled scoring path's input, which needs no frame."""
    return {column.name: _typed(column, values[column.name]) for column in schema}


def check_types(values: dict[str, list], schema: Sequence[InputColumn] | None) -> None:
    """Raise SchemaMismatch when a value is not of its column's schema type."""
    for column in schema or ():
        _typed(column, values[column.name])


def _read_text(column: InputColumn, values: list) -> list:
    """CSV text as the values a JSON body would carry for the column's type."""
    kind = column.type
    if kind in _NUMERIC:
        return [None if text is None else _number(column, text) for text in values]
    if kind == "boolean":
        return [None if text is None else _boolean(column, text) for text in values]
    return values


def _number(column: InputColumn, text: str) -> int | float:
    try:
        return int(text) if column.type in _INTEGRAL else float(text)
    except ValueError:
        try:
            return float(text)  # "3.0" in an integer column; _typed checks it is integral
        except ValueError:
            raise SchemaMismatch(_wrong(column, text, "a number")) from None


def _boolean(column: InputColumn, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise SchemaMismatch(_wrong(column, text, "true or false"))


def _inferred(values: list) -> list:
    """A CSV column of a version without a signature: numbers when every value reads as one."""
    try:
        return [None if text is None else float(text) for text in values]
    except ValueError:
        return values


def _require(columns: Columns, names: Sequence[str]) -> None:
    missing = [name for name in names if name not in columns.values]
    if missing:
        unexpected = [name for name in columns.values if name not in names]
        raise SchemaMismatch(
            f"missing column(s): {shown_names(missing)}"
            + (f"; not expected: {shown_names(unexpected)}" if unexpected else "")
        )


def _typed(column: InputColumn, values: list) -> np.ndarray:
    kind = column.type
    if kind in _NUMERIC:
        for value in values:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SchemaMismatch(_wrong(column, value, "a number"))
            if isinstance(value, float) and math.isinf(value):
                raise SchemaMismatch(_wrong(column, value, "a finite number"))
            if kind in _INTEGRAL and isinstance(value, float) and not math.isnan(value):
                if not value.is_integer():
                    raise SchemaMismatch(_wrong(column, value, "an integer"))
        try:
            return np.array([np.nan if value is None else value for value in values], dtype=float)
        except OverflowError:
            raise SchemaMismatch(
                f"column {column.name!r} ({kind}): a number is too large"
            ) from None
    if kind == "string":
        for value in values:
            if value is not None and not isinstance(value, str):
                raise SchemaMismatch(_wrong(column, value, "a string"))
        # Missing as NaN, as pandas reads a text column with gaps (and so as the model saw it
        # in training), whatever else the batch holds: a lone null would otherwise stay None.
        return np.array([np.nan if value is None else value for value in values], dtype=object)
    if kind == "boolean":
        for value in values:
            if value is not None and not isinstance(value, bool):
                raise SchemaMismatch(_wrong(column, value, "true or false"))
        return np.array(values, dtype=object)
    return np.array(values, dtype=object)


def _wrong(column: InputColumn, value: object, expected: str) -> str:
    return f"column {column.name!r} ({column.type}) expects {expected}, got {shown(value)}"
