"""The records promote_<model>'s tasks hand each other over XCom: JSON-able, and read back equal."""

from __future__ import annotations

import json

from promotion.evaluation import EvaluationResult
from workflow.promote import Candidates, Evaluation, Promoted, evidence_of

RESULT = EvaluationResult(
    "promote", ("better on the holdout",), "roc_auc", "superiority", 0.005, 0.95, 1000
)
EVALUATION = Evaluation(
    model="churn",
    challenger=3,
    champion=2,
    eval_run_id="r1",
    experiment_id="0",
    holdout="[2026-03-01T00:00:00, 2026-03-15T00:00:00)",
    result=RESULT,
    holdout_origin="policy",
)


def through_xcom(value: dict) -> dict:
    return json.loads(json.dumps(value))


def test_every_record_comes_back_equal_from_its_json_form() -> None:
    candidates = Candidates("churn", challenger=3, champion=None)
    assert Candidates.from_xcom(through_xcom(candidates.to_xcom())) == candidates
    promoted = Promoted(champion=3, previous=2, moved=True)
    assert Promoted.from_xcom(through_xcom(promoted.to_xcom())) == promoted
    back = Evaluation.from_xcom(through_xcom(EVALUATION.to_xcom()))
    assert back == EVALUATION


def test_the_evaluation_keeps_the_keys_the_rollout_and_the_outcome_read() -> None:
    value = EVALUATION.to_xcom()
    assert {"model", "challenger", "champion", "eval_run_id", "result"} <= set(value)
    assert value["result"]["verdict"] == "promote"
    assert evidence_of(value, RESULT) == EVALUATION.evidence()


def test_an_evaluation_from_before_the_holdout_origin_reads_with_defaults() -> None:
    value = {k: v for k, v in EVALUATION.to_xcom().items() if k not in ("holdout_origin", "faulty")}
    back = Evaluation.from_xcom(value)
    assert (back.holdout_origin, back.faulty) == ("lineage", None)
