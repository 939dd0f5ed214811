"""Helpers of the rollout's integration tests: the scenarios' policies, tiny models, the rig that
runs rollout_<model> in the background, and the demo's live-traffic driver on synthetic rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from approval.testing.slack_fake import FakeSlack
from demo.lifecycle import BackgroundRun, Lifecycle
from demo.traffic import Traffic
from policies import Policy
from promotion.evaluation import EvaluationResult
from tests.integration.gateway.support import _pipeline, training_frame

CHANNEL = "#ml-rollouts"
# The API token of the rollout tests' gateway (it accepts it as GATEWAY_API_TOKENS); the traffic
# sends it with its labels.
API_TOKEN = "rollout-tests-label-token"
# Small enough that a scenario takes seconds: few steps, 200 labels per arm and step, a check a
# second. A strict alpha keeps a good challenger (as good as the champion) from a false revert;
# a 5-point margin lets a few hundred paired labels show it safe. The non-inferiority scenarios
# (`canary_equal`, `canary_worse2`) use the policy's default margin instead.
BASE_ROLLOUT = {
    "alpha": 0.01,
    "min_labeled_per_step": 200,
    "check_interval_seconds": 1,
    "max_step_minutes": 1,
    "margin": 0.05,
}


@dataclass(frozen=True)
class Scenario:
    """One model of the suite: which challenger it rolls out, under which rollout policy."""

    challenger: Literal["good", "flipped", "worse2"]
    rollout: dict = field(default_factory=dict)


SCENARIOS = {
    "canary_flipped": Scenario("flipped", {"mode": "canary", "traffic_steps": [0.2, 0.5]}),
    # More labels per step than the base: the served share of its last step is read from the
    # requests after the gateway followed it, enough of them to tell 50 % from 20 %.
    "canary_good": Scenario(
        "good",
        {
            "mode": "canary",
            "traffic_steps": [0.2, 0.5],
            "guard_window_minutes": 0.1,
            "min_labeled_per_step": 600,
        },
    ),
    "shadow_good": Scenario("good", {"mode": "shadow"}),
    "shadow_flipped": Scenario("flipped", {"mode": "shadow"}),
    "guard_drift": Scenario(
        "good", {"mode": "canary", "traffic_steps": [0.5], "guard_window_minutes": 1}
    ),
    # Held labels, not the step's time limit, decide how long each step lasts: a limit well past
    # the hold, so a slow machine cannot end the rollout before the labels arrive.
    "late_labels": Scenario(
        "good", {"mode": "canary", "traffic_steps": [0.2, 0.5], "max_step_minutes": 3}
    ),
    "no_labels": Scenario(
        "good", {"mode": "canary", "traffic_steps": [0.2, 0.5], "max_step_minutes": 0.2}
    ),
    # The default margin (1.5 points): a challenger 1 point better than the champion, and one
    # 2 points worse (the champion with its intercept shifted), on the same traffic.
    "canary_equal": Scenario(
        "good", {"mode": "canary", "traffic_steps": [0.5], "margin": None, "max_step_minutes": 3}
    ),
    "canary_worse2": Scenario(
        "worse2", {"mode": "canary", "traffic_steps": [0.5], "margin": None, "max_step_minutes": 1}
    ),
}
# The champion's intercept shifted by this much answers the traffic's rows about 2 points less
# accurately (0.678 against 0.699), disagreeing with the champion on about 16 % of them.
WORSE2_INTERCEPT_SHIFT = -0.4


def log_model(
    experiment_id: str, *, flip_labels: bool, strength: float, intercept_shift: float = 0.0
) -> tuple[str, str]:
    """Train a logistic pipeline on the gateway tests' synthetic rows and log it as the workflow
    does; `flip_labels` trains it on inverted labels (a broken model), `strength` is its C,
    `intercept_shift` moves its decision boundary (a slightly worse model)."""
    import mlflow
    import skops.io
    from mlflow.models import infer_signature

    frame, labels = training_frame(600, seed=7)
    kind = "logistic" if strength >= 1 else "logistic_strong_penalty"
    pipeline = _pipeline(kind, list(frame.columns)).fit(
        frame, 1 - labels if flip_labels else labels
    )
    pipeline[-1].intercept_ = pipeline[-1].intercept_ + intercept_shift
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(frame, pipeline.predict_proba(frame)[:, 1]),
            input_example=frame.head(3),
            serialization_format="skops",
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
        )
    return info.model_uri, run.info.run_id


def evaluation(model: str, challenger: int, champion: int) -> dict:
    """What promote_<model>'s evaluation hands to the rollout for an approved winner."""
    result = EvaluationResult(
        "promote",
        ("roc_auc improvement above the bound",),
        "roc_auc",
        "superiority",
        0.0,
        0.95,
        1000,
        champion_score=0.74,
        challenger_score=0.75,
        improvement=0.01,
    )
    return {
        "model": model,
        "challenger": challenger,
        "champion": champion,
        "eval_run_id": "",
        "experiment_id": "0",
        "holdout": "",
        "result": result.to_json_dict(),
    }


@dataclass
class Rig:
    """Everything a scenario needs, shared by the module's tests (each uses its own model)."""

    lifecycle: Lifecycle
    gateway_url: str
    log_url: str
    slack: FakeSlack
    policies: dict[str, Policy]
    versions: dict[str, tuple[int, int]]  # model -> (champion, challenger)
    runs: list[BackgroundRun] = field(default_factory=list)

    def hand_off(self, model: str) -> None:
        """What promote_<model> does for an approved winner: start its rollout."""
        from workflow import rollout
        from workflow.runs import RunContext

        champion, challenger = self.versions[model]
        rollout.start(
            self.policies[model],
            evaluation(model, challenger, champion),
            RunContext(f"promote_{model}", "test"),
        )

    def run_rollout(self, model: str) -> BackgroundRun:
        """Start rollout_<model> through `airflow dags test` in the background."""
        run = self.lifecycle.start_dag(f"rollout_{model}")
        self.runs.append(run)
        return run


def traffic(
    url: str,
    model: str,
    *,
    labels: Literal["now", "held", "never"] = "now",
    label_delay_s: float = 0.0,
) -> Traffic:
    """The live-traffic driver on the gateway tests' synthetic rows and their true labels."""
    frame, truth = training_frame(5000, seed=11)
    return Traffic(
        url, model, frame, truth, api_token=API_TOKEN, labels=labels, label_delay_s=label_delay_s
    )
