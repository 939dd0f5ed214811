"""The champion summary file of each model: written after every champion move, read by the DAG
file at parse time to show the current champion and the default rollback target in
rollback_<model>'s trigger form.

One JSON file per model, `<PROMOTION_CHAMPIONS_DIR>/<model>.json`. The directory must be one the
workers write and the DAG processor reads: on several machines, a shared volume (the compose file
uses the one every Airflow container mounts). Reading needs the standard library only, so the DAG
file stays light; writing reads the registry, which is imported only then.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from promotion.champion_summary import ChampionSummary, champion_summary, version_description
from promotion.records import CHAMPION

CHAMPIONS_DIR_ENV = "PROMOTION_CHAMPIONS_DIR"

log = logging.getLogger(__name__)


def summary_path(directory: str | Path, model_name: str) -> Path:
    """Where the summary of `model_name` lives in `directory`."""
    return Path(directory) / f"{model_name}.json"


def champions_dir(environ: dict[str, str] | None = None) -> str | None:
    """The summaries' directory from PROMOTION_CHAMPIONS_DIR; None when it is not set."""
    env = os.environ if environ is None else environ
    return env.get(CHAMPIONS_DIR_ENV) or None


def publish_champion_summary(
    model_name: str, directory: str | None = None, now: datetime | None = None
) -> Path | None:
    """Write the model's summary from the registry's champion history (`directory` defaults to
    PROMOTION_CHAMPIONS_DIR; unset, nothing is written). Call it after every champion move.

    Best effort: the move it describes has happened, so a summary that cannot be written is
    logged as a warning and the caller goes on; the form then shows the older summary with its
    time.
    """
    directory = directory or champions_dir()
    if directory is None:
        log.debug("%s is not set: no champion summary written", CHAMPIONS_DIR_ENV)
        return None
    import registry  # MLflow is loaded only by writers: DAG files import this module

    moment = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    # Whatever fails here (the registry briefly away, a full or read-only volume) must not fail
    # the task whose champion move already happened.
    try:
        summary = champion_summary(
            model_name,
            registry.alias_history(model_name, CHAMPION),
            current_champion=registry.get_alias_version(model_name, CHAMPION),
            as_of=moment,
        )
        return write_summary(directory, summary)
    except Exception as error:
        log.warning(
            "champion summary of %s not written to %s: %s: %s",
            model_name,
            directory,
            type(error).__name__,
            error,
        )
        return None


def write_summary(directory: str | Path, summary: ChampionSummary) -> Path:
    """Write `summary` atomically (a reader sees the old file or the new one, never half)."""
    path = summary_path(directory, summary.model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
    ) as out:
        json.dump(summary.to_json_dict(), out, indent=2)
    os.replace(out.name, path)
    return path


def read_summary(directory: str | Path, model_name: str) -> ChampionSummary:
    """The model's summary; OSError when there is none, ValueError or KeyError when the file is
    not a summary."""
    data = json.loads(summary_path(directory, model_name).read_text(encoding="utf-8"))
    return ChampionSummary.from_json_dict(data)


def version_form_description(model_name: str, directory: str | None) -> str:
    """The markdown of the rollback form's `version` field, from the summary in `directory`;
    what is missing is said in the text, never raised (the DAG file must parse)."""
    if directory is None:
        return version_description(None, f"{CHAMPIONS_DIR_ENV} is not set")
    try:
        summary = read_summary(directory, model_name)
    except FileNotFoundError:
        return version_description(
            None, f"no champion move recorded in {summary_path(directory, model_name)} yet"
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        return version_description(
            None,
            f"{summary_path(directory, model_name)} cannot be read "
            f"({type(error).__name__}: {error})",
        )
    return version_description(summary)
