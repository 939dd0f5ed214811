"""A known state of one model, written through the project's own writers: alias moves through
`registry.move_alias`, monitor checks, validation records, prediction-log rows through the
gateway's batch writer and labels through its feedback store, an approval through the decision
store. The status-command tests and the browser test both read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

MODEL = "churn_watch"
EVAL_RUN = "0a1b2c3d4e5f"


@dataclass(frozen=True)
class KnownState:
    """Where the state lives and the numbers a reader must see."""

    env: dict[str, str]
    champion: int
    day_labeled: int
    day_correct: int
    validations: int
    validations_passed: int
    floor: float


def log_answers(
    url: str, rows: list[tuple[str, str, datetime, float, float | None, str | None]]
) -> None:
    """(model, role, at, prediction, label, error) rows: one request each (ids r0, r1, …), in
    the log's tables, and their labels through the feedback store."""
    from gateway.predlog import Label, create_engine, log_tables, record_labels

    engine, tables = create_engine(url), log_tables()
    tables.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            tables.predictions.insert(),
            [
                {
                    "request_id": f"r{i}",
                    "row_index": 0,
                    "model_name": model,
                    "version": 1,
                    "role": role,
                    "routing_key": None,
                    "features": {},
                    "prediction": None if error else prediction,
                    "error": error,
                    "latency_ms": 1.0,
                    "created_at": at,
                }
                for i, (model, role, at, prediction, _, error) in enumerate(rows)
            ],
        )
    for model in {row[0] for row in rows}:
        labels = [
            Label(f"r{i}", label)
            for i, row in enumerate(rows)
            if row[0] == model and (label := row[4]) is not None
        ]
        record_labels(engine, tables, model, labels)
    engine.dispose()


def _log_rows(log_url: str, now: datetime, labeled: int, correct: int) -> None:
    from gateway.batching import LogEntry
    from gateway.predlog import Label, PredictionLogWriter, create_engine, log_tables, record_labels

    engine, tables = create_engine(log_url), log_tables()
    writer = PredictionLogWriter(
        engine, tables, batch_size=100, flush_interval_s=0.05, max_pending_rows=10_000
    )
    writer.start()
    labels = []
    # Over the last few days the champion answered `labeled` rows, `correct` of them on the label's side;
    # a canary row and a failed request must not count.
    for i in range(labeled):
        score = 0.9 if i % 2 else 0.1
        truth = (score >= 0.5) == (i < correct)
        writer.submit(
            LogEntry(
                request_id=f"r{i}",
                model_name=MODEL,
                version=1,
                role="champion",
                routing_key=None,
                features={"sessions_7d": [i], "plan": ["pro"]},
                scores=[score],
                latency_ms=3.0,
                at=now - timedelta(hours=4 + i // 2),
            )
        )
        labels.append(Label(request_id=f"r{i}", label=float(truth)))
    writer.submit(
        LogEntry(
            request_id="canary-1",
            model_name=MODEL,
            version=3,
            role="canary",
            routing_key=None,
            features={"sessions_7d": [1], "plan": ["pro"]},
            scores=[0.9],
            latency_ms=3.0,
            at=now - timedelta(days=1),
        )
    )
    writer.close()
    labels.append(Label(request_id="canary-1", label=0.0))
    record_labels(engine, tables, MODEL, labels)
    engine.dispose()


def _moves() -> None:
    import registry

    def move(alias: str, to: int | None, kind: str, run: str, reason: str, **evidence: object):
        registry.move_alias(
            MODEL,
            alias,
            to,
            kind=kind,
            actor=f"{run} (triggered by alice)",
            reason=reason,
            evidence=evidence,
        )

    move("challenger", 1, "candidate", "train_churn_watch/run-1", "trained on window 1", rows=5000)
    move("champion", 1, "promote", "promote_churn_watch/run-1", "no champion yet")
    move("challenger", None, "promote", "promote_churn_watch/run-1", "promoted")
    move("challenger", 2, "candidate", "train_churn_watch/run-2", "trained on window 2", rows=5200)
    move(
        "champion",
        2,
        "promote",
        "promote_churn_watch/run-2",
        "better than v1",
        delta=0.012345678,
        ci_low=0.004,
        ci_high=0.0207,
    )
    move("challenger", None, "promote", "promote_churn_watch/run-2", "promoted")
    move("champion", 1, "rollback", "rollback_churn_watch/run-1", "bad feedback from sales")


def build_known_state(root: Path, tracking_uri: str, now: datetime) -> KnownState:
    """Write the state under `root` against the MLflow store at `tracking_uri` (made current)."""
    import registry
    from approval.store import DecisionStore
    from approval.testing.samples import sample_config, sample_request
    from registry.alias_drift import AliasDrift, record_alias_drift
    from registry.monitor_checks import MonitorCheck, record_check
    from registry.settings import ledger_url
    from registry.validation_records import ValidationRecord, record_validation
    from tests.support import write_policy

    policies = root / "policies"
    policies.mkdir()
    floor = 0.7
    write_policy(policies, MODEL, triggers__performance={"floor": floor, "min_labeled": 100})
    registry.ensure_registered_model(MODEL)
    for i in (1, 2, 3):
        # The view reads versions, never loads them: a registered URI is enough.
        source = (root / f"model{i}").as_uri()
        registry.register_version(MODEL, source, run_id=None, tags={}, description="")
    _moves()
    from registry.evaluation import record_evaluation

    record_evaluation(MODEL, 2, {"eval.run_id": EVAL_RUN, "eval.verdict": "promote"}, "Evaluation")

    ledger = ledger_url(tracking_uri)
    record_alias_drift(
        ledger,
        AliasDrift(
            model_name=MODEL,
            alias="champion",
            detected_at=(now - timedelta(hours=2)).isoformat(),
            ledger_version=1,
            registry_version=3,
            attempted_by="promote_churn_watch/run-4",
            attempted_move="champion v1 → v3 (promote)",
        ),
    )
    for hours, psi, drifted in ((30, 0.05, False), (6, 0.31, True)):
        record_check(
            ledger,
            MonitorCheck(
                model_name=MODEL,
                checked_at=(now - timedelta(hours=hours)).isoformat(),
                champion_version=1,
                outcome="fired" if drifted else "quiet",
                fired=("drift",) if drifted else (),
                reason="plan drifted (PSI 0.31 ≥ 0.2)" if drifted else "nothing fired",
                signals={
                    "performance": {
                        "metric": "roc_auc",
                        "value": 0.8,
                        "lower": 0.72,
                        "upper": 0.86,
                        "confidence": 0.95,
                        "labeled": 100,
                        "floor": floor,
                        "max_drop": None,
                        "promoted_level": 0.84,
                        "fired": False,
                        "reason": "above the floor",
                    },
                    "drift": {
                        "fired": drifted,
                        "reason": "",
                        "rows": 400,
                        "source": "prediction_log",
                        "features": {
                            "plan": {
                                "kind": "categorical",
                                "psi": psi,
                                "psi_band": [0.0, 0.1],
                                "test": "chi2",
                                "statistic": 3.0,
                                "p_value": 0.001 if drifted else 0.4,
                                "drifted": drifted,
                            },
                            "sessions_7d": {
                                "kind": "numeric",
                                "psi": 0.02,
                                "psi_band": [0.0, 0.1],
                                "test": "ks",
                                "statistic": 0.05,
                                "p_value": 0.6,
                                "drifted": False,
                            },
                        },
                    },
                },
                run_id="monitor_churn_watch/run-7",
            ),
        )
    windows = ((3, True, ()), (2, False, ("missing values: plan 31% > 20%",)), (1, True, ()))
    for days, passed, failed in windows:
        at = now - timedelta(days=days)
        record_validation(
            ledger,
            ValidationRecord(
                model_name=MODEL,
                validated_at=at.isoformat(),
                window_start=(at - timedelta(days=60)).date().isoformat(),
                window_end=at.date().isoformat(),
                rows=5000,
                passed=passed,
                failed_checks=failed,
                run_id=f"train_churn_watch/run-{days}",
            ),
        )

    log_url = f"sqlite:///{root / 'predictions.db'}"
    _log_rows(log_url, now, labeled=200, correct=160)

    approval_url = f"sqlite:///{root / 'approval.db'}"
    store = DecisionStore.from_url(approval_url)
    store.create_tables()
    store.open(
        sample_request(model=MODEL, challenger_version=3, champion_version=1),
        sample_config(timeout_seconds=7200),
        now=now - timedelta(minutes=30),
    )
    env = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "GATEWAY_LOG_URL": log_url,
        "APPROVAL_DB_URL": approval_url,
        "PROMOTION_POLICIES_DIR": str(policies),
        "MLFLOW_UI_URL": "http://mlflow.test",
    }
    return KnownState(
        env=env,
        champion=1,
        day_labeled=200,
        day_correct=160,
        validations=3,
        validations_passed=2,
        floor=floor,
    )
