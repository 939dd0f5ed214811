"""monitor_<model> through `airflow dags test`, with the gateway under uvicorn and a traffic-and-labels
driver: each trigger fires when its condition holds and not otherwise, the cooldown holds, and a
check that cannot be made ends with its reason and fires nothing."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tests.integration.monitor.support import Rig, source_rows, write_rows

pytestmark = pytest.mark.integration


def test_performance_fires_on_a_collapse_and_the_cooldown_holds(rig: Rig) -> None:
    rig.send("perf_watch", 400, invert_labels=True)
    check = rig.monitor("perf_watch")
    assert (check.outcome, check.fired) == ("fired", ("performance",))
    performance = check.signals["performance"]
    assert performance["upper"] < performance["promoted_level"] - performance["max_drop"]
    assert performance["labeled"] >= 400
    [event] = rig.asset_events("perf_watch")
    assert (event["trigger"], event["champion_version"]) == ("performance", check.champion_version)
    assert event["signals"]["performance"]["value"] == performance["value"]
    assert "train_perf_watch" in rig.queued_runs()

    check = rig.monitor("perf_watch")
    assert (check.outcome, check.fired) == ("quiet", ())
    assert "held but not fired, cooldown until" in check.reason
    assert len(rig.asset_events("perf_watch")) == 1  # one incident, one training


def test_drift_stays_quiet_on_unchanged_inputs_and_fires_on_a_shifted_feature(rig: Rig) -> None:
    rig.send("drift_watch", 400)
    check = rig.monitor("drift_watch")
    assert (check.outcome, check.fired) == ("quiet", ())
    assert not check.signals["performance"]["fired"]  # a champion as good as promoted
    drift = check.signals["drift"]
    assert (drift["fired"], drift["source"]) == (False, "prediction_log")
    assert drift["rows"] >= 400
    assert set(drift["features"]) == {"sessions_7d", "days_since_signup", "plan"}

    rig.send("drift_watch", 800, shift=3.0)
    check = rig.monitor("drift_watch")
    assert (check.outcome, check.fired) == ("fired", ("drift",))
    features = check.signals["drift"]["features"]
    assert [name for name, f in features.items() if f["drifted"]] == ["sessions_7d"]
    assert features["sessions_7d"]["test"] == "ks"
    [event] = rig.asset_events("drift_watch")
    assert list(event["signals"]["drift"]["features"]) == ["sessions_7d"]


def test_data_volume_fires_once_enough_new_rows_reach_the_source(rig: Rig) -> None:
    check = rig.monitor("volume_watch")
    assert (check.outcome, check.fired) == ("quiet", ())
    assert check.signals["data_volume"]["new_rows"] == 0
    # Its champion has no stored profile: drift falls back to the training window, and says so.
    assert "has no reference profile" in check.signals["drift"]["reason"]
    assert not check.signals["drift"]["fired"]

    old = source_rows(rig.started - timedelta(days=40), rig.started - timedelta(days=10), 3000)
    new = source_rows(
        rig.started - timedelta(days=5), rig.started - timedelta(hours=1), 350, seed=5
    )
    write_rows(rig.source_url, pd.concat([old, new], ignore_index=True))
    check = rig.monitor("volume_watch")
    assert (check.outcome, check.fired) == ("fired", ("data_volume",))
    assert (
        check.signals["data_volume"]["new_rows"],
        check.signals["data_volume"]["threshold"],
    ) == (
        350,
        300,
    )
    assert rig.asset_events("volume_watch")[0]["trigger"] == "data_volume"


def test_no_labels_yet_and_a_source_that_is_down_end_the_check_with_reasons(rig: Rig) -> None:
    check = rig.monitor("source_down")
    assert (check.outcome, check.fired) == ("not_checked", ())
    assert check.reason.startswith("no trigger could be checked")
    assert check.signals["performance"]["reason"] == "0 labeled rows, fewer than min_labeled 200"
    assert "the source cannot be read" in check.signals["data_volume"]["reason"]
    assert "the source cannot be read" in check.signals["drift"]["reason"]
    assert rig.asset_events("source_down") == []
