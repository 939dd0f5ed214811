"""What a training run records as its trigger, from its run type and the retrain Asset's events."""

from __future__ import annotations

import json

from workflow.monitor import DETAIL_LIMIT, MonitorSettings, trigger_tags

EXTRA = {
    "trigger": "performance",
    "kinds": ["performance", "drift"],
    "reason": "performance: roc_auc 0.61 … below the promoted level 0.78 − 0.05",
    "champion_version": 4,
    "monitor_run_id": "scheduled__2026-12-01T08:00:00+00:00",
    "signals": {"performance": {"value": 0.61}},
}


def test_a_run_started_by_the_monitor_records_its_trigger_and_detail() -> None:
    tags = trigger_tags("asset_triggered", [EXTRA])
    assert tags["lineage.trigger"] == "performance"
    assert json.loads(tags["lineage.trigger_detail"]) == {
        "kinds": ["performance", "drift"],
        "reason": EXTRA["reason"],
        "champion_version": 4,
        "monitor_run_id": EXTRA["monitor_run_id"],
    }


def test_the_newest_of_several_queued_events_names_the_trigger() -> None:
    older = {**EXTRA, "trigger": "data_volume", "kinds": ["data_volume"]}
    assert trigger_tags("asset_triggered", [older, EXTRA])["lineage.trigger"] == "performance"


def test_a_cron_run_records_schedule_and_a_manual_one_manual() -> None:
    assert trigger_tags("scheduled", [])["lineage.trigger"] == "schedule"
    manual = trigger_tags("manual", [], triggered_by="alice")
    assert manual == {"lineage.trigger": "manual", "lineage.trigger_detail": "manual run by alice"}


def test_an_asset_event_without_trigger_details_counts_as_manual() -> None:
    assert trigger_tags("asset_triggered", [{}])["lineage.trigger"] == "manual"


def test_a_long_reason_is_cut_so_the_detail_fits_an_mlflow_tag() -> None:
    tags = trigger_tags("asset_triggered", [{**EXTRA, "reason": "x" * 10_000}])
    assert len(tags["lineage.trigger_detail"]) <= DETAIL_LIMIT
    assert json.loads(tags["lineage.trigger_detail"])["reason"].startswith("xxx")


def test_settings_read_the_gateways_log_location() -> None:
    settings = MonitorSettings.from_environment({"GATEWAY_LOG_URL": "sqlite:///p.db"})
    assert (settings.log_url, settings.log_schema) == ("sqlite:///p.db", None)
    assert MonitorSettings.from_environment({}).log_url is None


def test_a_check_result_round_trips_through_xcom_and_carries_extra_only_when_fired() -> None:
    from workflow.monitor import CheckResult

    fired = CheckResult("fired", "performance: …", ("performance",), EXTRA)
    assert CheckResult.from_xcom(json.loads(json.dumps(fired.to_xcom()))) == fired
    quiet = CheckResult("quiet", "no trigger held")
    assert quiet.to_xcom() == {"outcome": "quiet", "reason": "no trigger held", "fired": []}
