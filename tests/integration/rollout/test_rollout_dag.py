"""rollout_<model> through Airflow (`airflow dags test`), on live traffic at a gateway under uvicorn.

Each test hands a challenger over as promote_<model> does, runs the rollout DAG in the background
and, meanwhile, sends requests and labels to the gateway; then checks aliases, the rollout's state
(and its mirror on the version), the recorded lifecycle and Slack, as a user of the registry would.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

import registry
from gateway.predlog import arm_windows, create_engine, log_tables
from promotion.lifecycle import State
from promotion.rollout_state import RolloutState, state_from_tags
from registry.serving import get_model_aliases
from tests.integration.rollout.support import CHANNEL, Rig, traffic

pytestmark = pytest.mark.integration
RUN_TIMEOUT_S = 120


def state(model: str, version: int) -> RolloutState:
    """The rollout's state as the ledger holds it, checked against its mirror on the version."""
    found = registry.rollout_state(model, version)
    assert found is not None
    shown = state_from_tags(model, version, registry.get_version(model, version).tags)
    assert shown is not None and (shown.revision, shown.phase) == (found.revision, found.phase)
    return found


def shown(model: str, version: int) -> RolloutState | None:
    """The rollout's state as the version's `rollout.state` tag shows it (None before it starts)."""
    return state_from_tags(model, version, registry.get_version(model, version).tags)


def poll(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(0.5)


def canary_steps(model: str, version: int) -> list[str]:
    """The reasons recorded with each canary step-up, in order."""
    return [
        change.reason
        for change in registry.state_history(model, version)
        if change.to_state == State.CANARY and "step" in change.evidence
    ]


def slack_texts(rig: Rig, model: str) -> list[str]:
    return [
        call.payload["text"]
        for call in rig.slack.calls
        if call.method == "chat.postMessage"
        and call.payload["channel"] == CHANNEL
        and model in call.payload["text"]
    ]


def served_canary_share(rig: Rig, model: str, since: str, until: str) -> float:
    engine = create_engine(rig.log_url)
    try:
        windows = arm_windows(
            engine,
            log_tables(),
            model,
            since=datetime.fromisoformat(since),
            until=datetime.fromisoformat(until),
        )
    finally:
        engine.dispose()
    requests = {w.role: w.requests for w in windows}
    return requests.get("canary", 0) / (requests.get("canary", 0) + requests.get("champion", 0))


class ShareWatch:
    """When the gateway first reported serving a canary share of at least `share` (its status
    endpoint, polled ten times a second while the block runs)."""

    def __init__(self, url: str, model: str, share: float) -> None:
        self.url, self.model, self.share = url, model, share
        self.reached_at: datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ShareWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while self.reached_at is None and not self._stop.wait(0.1):
                try:
                    served = client.get(f"/models/{self.model}").json()["canary_share"]
                except (httpx.HTTPError, KeyError, ValueError):
                    continue
                if served >= self.share:
                    self.reached_at = datetime.now(UTC)


def test_label_flipped_canary_is_reverted_tagged_and_told(rig: Rig) -> None:
    model = "canary_flipped"
    champion, challenger = rig.versions[model]
    rig.hand_off(model)
    with traffic(rig.gateway_url, model):
        rig.run_rollout(model).wait(RUN_TIMEOUT_S)

    assert get_model_aliases(model) == {"champion": champion}
    found = state(model, challenger)
    assert found.phase == "reverted"
    assert "the challenger is worse than the champion" in found.reason
    numbers = found.verdict.evidence
    assert numbers["challenger_value"] < numbers["champion_value"] - 0.2
    assert numbers["e_value"] >= numbers["threshold"]
    assert registry.version_state(model, challenger) == State.REVERTED
    [told] = slack_texts(rig, model)
    assert f"v{challenger} reverted" in told


def test_good_canary_steps_through_every_traffic_step_and_becomes_champion(rig: Rig) -> None:
    model = "canary_good"
    champion, challenger = rig.versions[model]
    rig.hand_off(model)
    with traffic(rig.gateway_url, model), ShareWatch(rig.gateway_url, model, 0.5) as watch:
        rig.run_rollout(model).wait(RUN_TIMEOUT_S)

    assert get_model_aliases(model) == {"champion": challenger}
    found = state(model, challenger)
    assert found.phase == "promoted"
    [step_up] = canary_steps(model, challenger)
    assert step_up.startswith("step 2/2: 50% of traffic")
    first, second = found.step_starts
    assert served_canary_share(rig, model, first, second) < 0.35
    # The gateway follows the new share at its next alias poll, some way into the step: from the
    # moment it reports the new share, it serves it.
    assert watch.reached_at is not None
    switched = max(watch.reached_at, datetime.fromisoformat(second)).isoformat()
    assert datetime.fromisoformat(switched) < datetime.fromisoformat(found.decided_at)
    assert served_canary_share(rig, model, switched, found.decided_at) > 0.35
    promotion = registry.alias_history(model, "champion")[-1]
    assert (promotion.from_version, promotion.to_version) == (champion, challenger)
    assert found.guard.previous_champion == champion
    assert found.guard.verdict == "kept"


@pytest.mark.parametrize(
    ("model", "verdict"), [("shadow_good", "promoted"), ("shadow_flipped", "reverted")]
)
def test_shadow_period_promotes_or_reverts_on_the_same_requests(
    rig: Rig, model: str, verdict: str
) -> None:
    champion, challenger = rig.versions[model]
    rig.hand_off(model)
    with traffic(rig.gateway_url, model):
        rig.run_rollout(model).wait(RUN_TIMEOUT_S)

    found = state(model, challenger)
    assert found.phase == verdict
    expected = challenger if verdict == "promoted" else champion
    assert get_model_aliases(model) == {"champion": expected}
    agreement = found.verdict.evidence["agreement_rate"]
    assert agreement > 0.8 if verdict == "promoted" else agreement < 0.2


def test_guard_window_puts_the_previous_champion_back_when_the_new_one_degrades(
    rig: Rig,
) -> None:
    model = "guard_drift"
    champion, challenger = rig.versions[model]
    rig.hand_off(model)
    with traffic(rig.gateway_url, model) as driver:
        run = rig.run_rollout(model)
        poll(
            lambda: getattr(shown(model, challenger), "phase", None) == "promoted",
            RUN_TIMEOUT_S,
            "promotion",
        )
        driver.drift.set()
        run.wait(RUN_TIMEOUT_S)

    assert get_model_aliases(model) == {"champion": champion}
    guard = state(model, challenger).guard
    assert guard.verdict == "reverted"
    assert "below the previous champion's level" in guard.decision.reason
    back = registry.alias_history(model, "champion")[-1]
    assert (back.kind, back.from_version, back.to_version) == ("rollback", challenger, champion)
    assert any("guard window" in text for text in slack_texts(rig, model))


def test_late_labels_hold_each_step_until_they_arrive_and_no_step_is_skipped(rig: Rig) -> None:
    model = "late_labels"
    champion, challenger = rig.versions[model]
    rig.hand_off(model)
    with traffic(rig.gateway_url, model, labels="held", label_delay_s=2.0) as driver:
        run = rig.run_rollout(model)
        poll(
            lambda: "waiting for labels" in getattr(shown(model, challenger), "status", ""),
            RUN_TIMEOUT_S,
            "the first check",
        )
        time.sleep(3)  # a few more checks while no label has arrived
        waiting = state(model, challenger)
        assert (waiting.step, waiting.share) == (1, 0.2)
        assert registry.get_version(model, challenger).tags["rollout.canary_share"] == "0.2"
        assert not run.done()
        driver.release.set()
        run.wait(RUN_TIMEOUT_S + 360)

    found = state(model, challenger)
    traffic_errors = (driver.failed, driver.refused, driver.last_error)
    assert found.phase == "promoted", (found.reason, traffic_errors)
    assert get_model_aliases(model) == {"champion": challenger}
    [step_up] = canary_steps(model, challenger)
    counted = re.search(r"(\d+) challenger and (\d+) champion labels this step", step_up)
    assert counted is not None and min(int(counted[1]), int(counted[2])) >= 200
    assert len(found.step_starts) == 2


def test_step_without_enough_labels_by_its_maximum_duration_is_reverted(rig: Rig) -> None:
    model = "no_labels"
    champion, challenger = rig.versions[model]
    rig.hand_off(model)
    with traffic(rig.gateway_url, model, labels="never"):
        rig.run_rollout(model).wait(RUN_TIMEOUT_S)

    assert get_model_aliases(model) == {"champion": champion}
    found = state(model, challenger)
    assert found.phase == "reverted"
    assert "maximum duration" in found.reason
    assert "fail closed" in found.reason


def test_a_canary_within_the_default_margin_is_promoted_on_paired_evidence(rig: Rig) -> None:
    model = "canary_equal"
    champion, challenger = rig.versions[model]
    rig.hand_off(model)
    with traffic(rig.gateway_url, model):
        rig.run_rollout(model).wait(RUN_TIMEOUT_S + 180)

    found = state(model, challenger)
    assert found.phase == "promoted", found.reason
    assert get_model_aliases(model) == {"champion": challenger}
    numbers = found.verdict.evidence
    assert numbers["margin"] == pytest.approx(0.015)
    assert numbers["lower_bound"] > -0.015
    # The champion scored the canary's requests too: the verdict rests on those pairs.
    assert numbers["paired_labeled"] >= 200


def test_a_canary_two_points_worse_is_not_promoted(rig: Rig) -> None:
    model = "canary_worse2"
    champion, challenger = rig.versions[model]
    rig.hand_off(model)
    with traffic(rig.gateway_url, model):
        rig.run_rollout(model).wait(RUN_TIMEOUT_S + 60)

    assert get_model_aliases(model) == {"champion": champion}
    found = state(model, challenger)
    assert found.phase == "reverted", found.reason
    numbers = found.verdict.evidence
    # Never shown within 1.5 points of the champion, whichever way the rollout ended.
    assert numbers["lower_bound"] <= -0.015
    assert numbers["difference"] < 0 and numbers["paired_labeled"] >= 200
    assert registry.version_state(model, challenger) == State.REVERTED
