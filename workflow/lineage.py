"""The SQL window a model was trained on, as an MLflow dataset source, and its lineage tags."""

from __future__ import annotations

from typing import Any

from mlflow.data.dataset_source import DatasetSource


class SqlWindowSource(DatasetSource):
    """A time window of a SQL table or query: enough to find the exact rows again."""

    def __init__(self, url: str, selection: str, time_column: str, start: str, end: str) -> None:
        self.url = url
        self.selection = selection
        self.time_column = time_column
        self.start = start
        self.end = end

    @staticmethod
    def _get_source_type() -> str:
        return "sql_window"

    def load(self, **kwargs: Any) -> Any:
        raise NotImplementedError("re-read the window with workflow.sources.read_window")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> SqlWindowSource:
        raise NotImplementedError

    def to_dict(self) -> dict[str, str]:
        return {
            "url": self.url,
            "selection": self.selection,
            "time_column": self.time_column,
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> SqlWindowSource:
        return cls(
            **{
                key: str(source_dict[key])
                for key in ("url", "selection", "time_column", "start", "end")
            }
        )
