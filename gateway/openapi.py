"""The scoring route's request bodies in OpenAPI terms, so generated clients and API fuzzers
reach the scoring logic: the four JSON payloads `mlflow models serve` accepts, and CSV."""

from __future__ import annotations

SCORING_MEDIA_TYPES = ("application/json", "text/csv")

_VALUE = {"description": "A feature value: number, string, boolean or null."}
_RECORDS = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "object", "additionalProperties": _VALUE},
    "description": "One object per row, keyed by column name.",
}
_COLUMNAR = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": _VALUE},
    "description": "One list of values per column, all of the same length.",
}
_PARAMS = {"type": "object", "description": "Inference parameters (accepted, not used)."}


def _payload(key: str, schema: dict) -> dict:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: schema, "params": _PARAMS},
        "additionalProperties": False,
    }


SCORING_SCHEMA = {
    "oneOf": [
        _payload(
            "dataframe_split",
            {
                "type": "object",
                "required": ["columns", "data"],
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array", "items": _VALUE}},
                    "index": {"type": "array"},
                },
            },
        ),
        _payload("dataframe_records", _RECORDS),
        _payload("instances", {"oneOf": [_RECORDS, _COLUMNAR]}),
        _payload("inputs", {"oneOf": [_RECORDS, _COLUMNAR]}),
    ]
}

SCORING_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": SCORING_SCHEMA,
                "example": {
                    "dataframe_split": {"columns": ["sessions_7d", "plan"], "data": [[3, "pro"]]}
                },
            },
            "text/csv": {
                "schema": {"type": "string", "description": "A header row, then one row a line."},
                "example": "sessions_7d,plan\n3,pro\n",
            },
        },
    },
    "responses": {
        "200": {
            "description": "One prediction per row, in order, and who answered.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["predictions"],
                        "properties": {
                            "predictions": {"type": "array"},
                            "request_id": {"type": "string"},
                            "model": {"type": "string"},
                            "version": {"type": "integer"},
                            "role": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
}
