"""Simultaneous clicks against the decision store, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from approval.records import Vote
from approval.store import DecisionStore, VoteNotRecorded, VoteRecorded
from approval.testing.samples import ALICE, BOB, CAROL, sample_config, sample_request

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def race(calls: list[Callable[[], VoteRecorded]]) -> tuple[list[VoteRecorded], list[str]]:
    start = threading.Barrier(len(calls))
    results: list[VoteRecorded] = []
    refusals: list[str] = []

    def run(call: Callable[[], VoteRecorded]) -> None:
        start.wait()
        try:
            results.append(call())
        except VoteNotRecorded as refused:
            refusals.append(refused.kind)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, refusals


def test_one_signed_request_sent_many_times_at_once_counts_once(store: DecisionStore) -> None:
    request = sample_request()
    store.open(request, sample_config(quorum=2), now=NOW)
    vote = Vote(ALICE, "alice", "approve", NOW)
    results, refusals = race(
        [
            lambda: store.record_vote(request.request_id, interaction_id="same", vote=vote)
            for _ in range(6)
        ]
    )
    assert len(results) == 1 and set(refusals) <= {"replayed", "already_voted"}
    assert len(store.get(request.request_id).votes) == 1


def test_approvers_clicking_together_conclude_the_request_exactly_once(
    store: DecisionStore,
) -> None:
    request = sample_request()
    store.open(request, sample_config(approvers=(ALICE, BOB, CAROL), quorum=2), now=NOW)
    results, refusals = race(
        [
            lambda user=user: store.record_vote(
                request.request_id,
                interaction_id=f"click-{user}",
                vote=Vote(user, user.lower(), "approve", NOW),
            )
            for user in (ALICE, BOB, CAROL)
        ]
    )
    concluded = [result for result in results if result.concluded]
    assert len(concluded) == 1
    assert len(results) == 2 and refusals == ["closed"]
    assert store.get(request.request_id).status == "approved"
