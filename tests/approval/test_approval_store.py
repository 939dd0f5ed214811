"""The decision store on SQLite; tests/integration/approval runs the same checks on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from approval.records import Outcome, PostedMessage, Vote
from approval.store import AlreadyVoted, DecisionStore, Replayed, RequestClosed
from approval.testing.samples import ALICE, BOB, sample_config, sample_request

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> DecisionStore:
    store = DecisionStore.from_url(f"sqlite:///{tmp_path / 'approval.db'}")
    store.create_tables()
    return store


def vote(user: str, choice: str = "approve") -> Vote:
    return Vote(user, user.lower(), choice, NOW)  # type: ignore[arg-type]


def test_a_request_is_stored_once_and_read_back_whole(store: DecisionStore) -> None:
    request = sample_request()
    assert store.open(request, sample_config(), now=NOW) is True
    assert store.open(request, sample_config(), now=NOW) is False
    stored = store.get(request.request_id)
    assert stored is not None
    assert (stored.request, stored.config, stored.status) == (request, sample_config(), "pending")
    assert stored.created_at == NOW


def test_the_message_location_is_remembered(store: DecisionStore) -> None:
    request = sample_request()
    store.open(request, sample_config(), now=NOW)
    store.set_message(request.request_id, PostedMessage("C1", "1700000000.000001"))
    assert store.get(request.request_id).message == PostedMessage("C1", "1700000000.000001")


def test_an_approval_meeting_the_quorum_concludes_the_request(store: DecisionStore) -> None:
    request = sample_request()
    store.open(request, sample_config(), now=NOW)
    recorded = store.record_vote(request.request_id, interaction_id="i1", vote=vote(ALICE))
    assert recorded.concluded and recorded.tally.status == "approved"
    assert store.get(request.request_id).status == "approved"
    assert store.is_consumed("i1")


def test_a_replayed_slack_request_records_nothing(store: DecisionStore) -> None:
    request = sample_request()
    store.open(request, sample_config(quorum=2), now=NOW)
    store.record_vote(request.request_id, interaction_id="i1", vote=vote(ALICE))
    with pytest.raises(Replayed):
        store.record_vote(request.request_id, interaction_id="i1", vote=vote(BOB))
    stored = store.get(request.request_id)
    assert [v.user_id for v in stored.votes] == [ALICE]
    assert stored.status == "pending"


def test_a_second_vote_by_the_same_user_is_refused_and_its_request_id_not_consumed(
    store: DecisionStore,
) -> None:
    request = sample_request()
    store.open(request, sample_config(quorum=2), now=NOW)
    store.record_vote(request.request_id, interaction_id="i1", vote=vote(ALICE))
    with pytest.raises(AlreadyVoted):
        store.record_vote(request.request_id, interaction_id="i2", vote=vote(ALICE, "reject"))
    assert not store.is_consumed("i2")
    assert store.get(request.request_id).status == "pending"


def test_a_concluded_request_takes_no_more_votes(store: DecisionStore) -> None:
    request = sample_request()
    store.open(request, sample_config(), now=NOW)
    store.record_vote(request.request_id, interaction_id="i1", vote=vote(ALICE, "reject"))
    with pytest.raises(RequestClosed):
        store.record_vote(request.request_id, interaction_id="i2", vote=vote(BOB))
    stored = store.get(request.request_id)
    assert stored.status == "rejected" and len(stored.votes) == 1
    assert not store.is_consumed("i2")


def test_a_new_candidate_supersedes_the_pending_request_of_the_same_model(
    store: DecisionStore,
) -> None:
    old, new = sample_request(challenger_version=7), sample_request(challenger_version=8)
    other_model = sample_request(model="fraud")
    for request in (old, new, other_model):
        store.open(request, sample_config(), now=NOW)
    closed = store.supersede_pending("user_churn", keep=new.request_id, now=NOW)
    assert [s.request.request_id for s in closed] == [old.request_id]
    assert store.get(old.request_id).status == "superseded"
    assert store.get(new.request_id).status == "pending"
    assert store.get(other_model.request_id).status == "pending"


def test_the_outcome_is_written_once(store: DecisionStore) -> None:
    request = sample_request()
    store.open(request, sample_config(), now=NOW)
    first = Outcome(request.request_id, "approved", (ALICE,), NOW, "approved by Alice")
    later = Outcome(request.request_id, "stale", (ALICE,), NOW, "champion moved")
    assert store.record_outcome(request.request_id, first) is True
    assert store.record_outcome(request.request_id, later) is False
    assert store.get(request.request_id).outcome == first
