"""The champion summary file: written from the registry after a champion move, best effort."""

from __future__ import annotations

from pathlib import Path

import pytest

import registry
from tests.registry.support import save_loadable_model
from workflow.champion_summary import (
    publish_champion_summary,
    read_summary,
    summary_path,
    version_form_description,
)

MODEL = "churn"


@pytest.fixture
def two_champions(mlflow_store: str, tmp_path: Path) -> None:
    saved = save_loadable_model(tmp_path / "model")
    registry.ensure_registered_model(MODEL)
    for version in (1, 2):
        registry.register_version(MODEL, str(saved), run_id=None, tags={}, description="")
        registry.move_alias(
            MODEL, "champion", version, kind="promote", actor=f"promote/{version}", reason="wins"
        )


def test_the_summary_is_written_from_the_registrys_champion_history(
    two_champions, tmp_path: Path
) -> None:
    path = publish_champion_summary(MODEL, str(tmp_path / "champions"))
    assert path == summary_path(tmp_path / "champions", MODEL)
    summary = read_summary(tmp_path / "champions", MODEL)
    moves = registry.alias_history(MODEL, "champion")
    assert (summary.champion, summary.champion_since) == (2, moves[-1].at)
    assert (summary.target, summary.target_until) == (1, moves[-1].at)
    assert "**v2**" in version_form_description(MODEL, str(tmp_path / "champions"))


def test_without_a_directory_nothing_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMOTION_CHAMPIONS_DIR", raising=False)
    assert publish_champion_summary(MODEL) is None


def test_a_summary_that_cannot_be_written_is_a_warning_not_a_failure(
    two_champions, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    assert publish_champion_summary(MODEL, str(blocked)) is None
    assert "champion summary of churn not written" in caplog.text


def test_a_missing_summary_is_said_in_the_form(tmp_path: Path) -> None:
    text = version_form_description(MODEL, str(tmp_path))
    assert f"not shown: no champion move recorded in {tmp_path / 'churn.json'} yet._" in text
