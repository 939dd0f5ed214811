"""The production topology as local processes on loopback, driven only through Airflow's REST API.

The machine's PostgreSQL (a database each for Airflow, MLflow, the source and the prediction log),
`mlflow server` on it, Airflow's api-server, scheduler, DAG processor and triggerer under the
CeleryExecutor on Redis, two Celery workers (the default queue and the training queue), the serving
gateway and the approval endpoint with the local Slack fake: each process started from
tests/topology.py (the services of docker-compose.yaml) in an empty working folder of its own, so
the only things they share are the databases, the broker, MLflow and the two folders that stand for
the compose file's shared volumes (the auth file and the runs' object storage).

train → the Asset starts promote → a signed Slack approval → champion v1; train again → promote →
approval → a canary on live traffic → champion v2; rollback through REST → the gateway answers v1.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import mlflow
import pytest
import redis
from cryptography.fernet import Fernet

import registry
from approval.airflow_api import AirflowHITLClient
from approval.hitl import SERVICE_USER
from approval.store import DecisionStore
from approval.testing.interactions import SIGNING_SECRET
from approval.testing.samples import ALICE, BOB
from approval.testing.slack_fake import FakeSlack
from demo.approval import SlackApprover
from demo.lifecycle import PROJECT_ROOT, DagRunFailed
from demo.services import Service, free_port, start
from demo.source_data import as_of_for_window, generate_user_features, live_requests, write_source
from demo.traffic import Traffic
from promotion.rollout_state import state_from_tags
from tests import topology
from tests.support import postgres_base_url, temporary_postgres_database, write_policy

pytestmark = pytest.mark.integration
MODEL = "user_churn"
BOT_TOKEN = "xoxb-topology-test"
GATEWAY_TOKEN = "topology-test-labels"
TRAINING_QUEUE = "training"
REDIS_URL = "redis://127.0.0.1:6379/13"  # a Redis database of this test's own, flushed around it
STARTUP_TIMEOUT_S = 240
RUN_TIMEOUT_S = 420
# Natively, the machine's PostgreSQL and Redis; Flower only watches the workers, so it stays out.
NATIVE = [s for s in topology.SERVICES if not s.external and s.name != "flower"]


@dataclass
class Stages:
    """How long each stage took, printed at the end (also when a stage fails)."""

    started: float = field(default_factory=time.monotonic)
    took: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        begin = time.monotonic()
        try:
            yield
        finally:
            self.took.append((name, time.monotonic() - begin))

    def report(self) -> str:
        rows = [f"  {name:<48} {seconds:7.1f} s" for name, seconds in self.took]
        total = time.monotonic() - self.started
        return "\n".join(["topology stages:", *rows, f"  {'total':<48} {total:7.1f} s"])


class AirflowRest:
    """Airflow's public REST API as a user with a password (the simple auth manager's token)."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        token = self.http.post("/auth/token", json={"username": username, "password": password})
        token.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def dag_exists(self, dag_id: str) -> bool:
        return self.http.get(f"/api/v2/dags/{dag_id}").status_code == 200

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        response = self.http.post(
            f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        assert response.status_code == 200, response.text
        return response.json()["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict]:
        response = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
        response.raise_for_status()
        return sorted(response.json()["dag_runs"], key=lambda run: run["run_after"])

    def run(self, dag_id: str, run_id: str) -> dict:
        response = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        return response.json()

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        response = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return {ti["task_id"]: ti["state"] for ti in response.json()["task_instances"]}


@dataclass
class RestRun:
    """A DAG run seen through REST, shaped like demo.lifecycle.BackgroundRun for SlackApprover."""

    rest: AirflowRest
    dag_id: str
    run_id: str
    log: Path

    @property
    def command(self) -> str:
        return f"{self.dag_id}/{self.run_id}"

    def done(self) -> bool:
        return self.rest.run(self.dag_id, self.run_id)["state"] in ("success", "failed")

    def wait(self, timeout_s: float = RUN_TIMEOUT_S) -> None:
        """Wait for the run to succeed; fail with its task states when it fails or takes too long."""
        deadline = time.monotonic() + timeout_s
        while (state := self.rest.run(self.dag_id, self.run_id)["state"]) != "success":
            if state == "failed" or time.monotonic() > deadline:
                raise DagRunFailed(
                    f"{self.command} is {state}: {self.rest.task_states(self.dag_id, self.run_id)}"
                    f" (logs under {self.log})"
                )
            time.sleep(1)

    def stop(self) -> None:
        """Nothing to stop: the scheduler owns the run."""


@dataclass
class Topology:
    """The running processes, and the value of every variable the topology names."""

    root: Path
    values: dict[str, str]
    ports: dict[str, int]
    running: dict[str, Service] = field(default_factory=dict)

    def launch(self, spec: topology.Service, **overrides: str) -> Service:
        """Start one service from its topology entry, in an empty folder of its own."""
        folder = self.root / spec.name
        folder.mkdir()
        values = {**self.values, **overrides}
        env = {**_base_environment(), "AIRFLOW_HOME": str(folder)}
        env.update({name: values[name] for name in spec.environment})
        port = self.ports.get(spec.name)
        argv = spec.argv(host="127.0.0.1", port=port, training_queue=TRAINING_QUEUE)
        argv[0] = {"python": sys.executable, "airflow": _airflow()}[argv[0]]
        service = start(spec.name, argv, env, port or 0, self.root / f"{spec.name}.log", folder)
        self.running[spec.name] = service
        return service

    def wait_healthy(self, spec: topology.Service) -> None:
        port = spec.health_port and int(self.values[_health_port_variable(spec)])
        service = self.running[spec.name]
        url = f"http://127.0.0.1:{port}" if port else service.url
        Service(service.name, service.process, url, service.log).wait_ready(
            spec.health, STARTUP_TIMEOUT_S
        )

    def stop(self) -> None:
        for service in reversed(list(self.running.values())):
            service.stop()


def _health_port_variable(spec: topology.Service) -> str:
    return next(name for name in spec.env if name.endswith("HEALTH_CHECK_SERVER_PORT"))


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _base_environment() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("AIRFLOW", "MLFLOW_", "PROMOTION_", "GATEWAY_", "APPROVAL_", "SLACK_")
        )
    }


def _values(root: Path, databases: dict[str, str], ports: dict[str, int], slack: str) -> dict:
    """The value of every variable tests/topology.py names, for this run."""
    api = f"http://127.0.0.1:{ports['airflow-api-server']}"
    tracking = f"http://127.0.0.1:{ports['mlflow']}"
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    shared = root / "shared"
    airflow_db = databases["airflow"].replace("postgresql://", "postgresql+psycopg2://", 1)
    secret = secrets.token_hex(16)
    api_password = secrets.token_urlsafe(12)
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{SERVICE_USER}:user",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
            shared / "auth" / "passwords.json"
        ),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        "AIRFLOW__API__SECRET_KEY": secret,
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + databases["airflow"],
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW_CONN_USER_FEATURES_DB": databases["source"],
        "AIRFLOW_ADMIN_USERNAME": "admin",
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "AIRFLOW_API_USERNAME": SERVICE_USER,
        "AIRFLOW_API_PASSWORD": api_password,
        "AIRFLOW_API_URL": api,
        "AIRFLOW_UI_URL": api,
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_UI_URL": tracking,
        "MLFLOW_BACKEND_STORE_URI": databases["mlflow"],
        "MLFLOW_ARTIFACTS_DESTINATION": str(root / "mlflow-artifacts"),
        "MLFLOW_SERVER_ALLOWED_HOSTS": f"127.0.0.1,127.0.0.1:{ports['mlflow']}",
        "MLFLOW_WORKERS": "1",
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "PROMOTION_POLICIES_DIR": str(root / "policies"),
        "PROMOTION_LEDGER_URL": databases["mlflow"],
        "PROMOTION_STORAGE_URL": (shared / "runs").as_uri(),
        "PROMOTION_CHAMPIONS_DIR": str(shared / "champions"),
        "AIRFLOW_CONN_PROMOTION_AIRFLOW_API": json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": ports["airflow-api-server"],
                "login": SERVICE_USER,
                "password": api_password,
            }
        ),
        "PROMOTION_TRAINING_POOL": "training",
        "PROMOTION_TRAINING_POOL_SLOTS": "1",
        "PROMOTION_TRAINING_QUEUE": TRAINING_QUEUE,
        "APPROVAL_DB_URL": databases["airflow"],
        "APPROVAL_HOST": "127.0.0.1",
        "APPROVAL_PORT": str(ports["approval"]),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "GATEWAY_MODELS": MODEL,
        "GATEWAY_LOG_URL": databases["predictions"],
        "GATEWAY_API_TOKENS": GATEWAY_TOKEN,
        "GATEWAY_REFRESH_INTERVAL": "1",
        "GATEWAY_WORKERS": "2",
        "GATEWAY_WEBHOOK_URL": f"{gateway}/webhooks/mlflow",
        "GATEWAY_WEBHOOK_SECRET": secrets.token_hex(16),
        "GATEWAY_POLICY_DIR": str(root / "policies"),
        "GATEWAY_MASKING_KEY": secrets.token_hex(16),
    }


@contextmanager
def running_topology(root: Path, slack: FakeSlack, stages: Stages) -> Iterator[Topology]:
    """Databases, broker, MLflow, Airflow with two Celery workers, gateway and approval endpoint;
    everything it started is stopped and dropped on the way out."""
    base = postgres_base_url()
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    with ExitStack() as stack:
        databases = {
            kind: stack.enter_context(temporary_postgres_database(base, f"topology_{kind}"))
            for kind in ("airflow", "mlflow", "source", "predictions")
        }
        stack.callback(broker.flushdb)
        ports = {spec.name: free_port() for spec in NATIVE if spec.port}
        (root / "policies").mkdir(parents=True)
        write_policy(
            root / "policies",
            MODEL,
            # The admin who triggers the runs is Bob in Slack; Alice approves (separation of duties).
            approval={
                "required": True,
                "channel": "#model-approvals",
                "approvers": [ALICE],
                "identities": {"admin": BOB},
            },
            rollout={
                "mode": "canary",
                "traffic_steps": [0.5],
                "alpha": 0.01,
                "min_labeled_per_step": 200,
                # A few minutes of traffic: a 5-point margin, not the default 1.5.
                "margin": 0.05,
                "max_step_minutes": 3,
                "check_interval_seconds": 2,
            },
        )
        write_source(databases["source"], generate_user_features())
        running = Topology(root, _values(root, databases, ports, slack.url), ports)
        stack.callback(running.stop)
        worker_ports = {"airflow-worker": free_port(), "airflow-training-worker": free_port()}

        with stages.stage("start: MLflow, init, Airflow, two workers, services"):
            running.launch(topology.service("mlflow"))
            running.wait_healthy(topology.service("mlflow"))
            init = running.launch(topology.service("airflow-init"))
            assert init.process.wait(STARTUP_TIMEOUT_S) == 0, init.log.read_text()[-3000:]
            for spec in NATIVE:
                if spec.name in running.running:
                    continue
                port = worker_ports.get(spec.name)
                overrides = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port)} if port else {}
                running.launch(spec, **overrides)
            for spec in NATIVE:
                if spec.health:
                    running.wait_healthy(spec)
        yield running


def _wait(condition: Callable[[], object], what: str, timeout_s: float = RUN_TIMEOUT_S) -> object:
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)
    return result


def _new_run(rest: AirflowRest, dag_id: str, seen: int, root: Path) -> RestRun:
    """The first run of `dag_id` after the `seen` it had, once the scheduler created it."""
    runs = _wait(lambda: rest.runs(dag_id)[seen:], f"a new {dag_id} run")
    return RestRun(rest, dag_id, runs[0]["dag_run_id"], root)


def test_the_compose_topology_runs_the_lifecycle_as_local_processes(tmp_path: Path) -> None:
    stages = Stages()
    try:
        with FakeSlack(token=BOT_TOKEN) as slack, running_topology(tmp_path, slack, stages) as run:
            _lifecycle(run, slack, stages)
    finally:
        print(stages.report())


def _lifecycle(run: Topology, slack: FakeSlack, stages: Stages) -> None:
    values = run.values
    mlflow.set_tracking_uri(values["MLFLOW_TRACKING_URI"])
    rest = AirflowRest(
        run.running["airflow-api-server"].url, "admin", values["AIRFLOW_ADMIN_PASSWORD"]
    )
    approver = SlackApprover(
        slack,
        DecisionStore.from_url(values["APPROVAL_DB_URL"]),
        AirflowHITLClient(
            base_url=values["AIRFLOW_API_URL"],
            username=SERVICE_USER,
            password=values["AIRFLOW_API_PASSWORD"],
        ),
        run.running["approval"].url,
        SIGNING_SECRET,
    )
    gateway = run.running["gateway"].url

    def train_and_promote(window: int) -> None:
        promotions = len(rest.runs(f"promote_{MODEL}"))
        with stages.stage(f"train v{window} (REST trigger, training worker)"):
            RestRun(
                rest,
                f"train_{MODEL}",
                rest.trigger(f"train_{MODEL}", {"as_of": as_of_for_window(window)}),
                run.root,
            ).wait()
        with stages.stage(f"promote v{window}: Asset → Slack → signed click"):
            promotion = _new_run(rest, f"promote_{MODEL}", promotions, run.root)
            click = approver.answer(
                promotion,
                after=approver.posted(),
                user=ALICE,
                approve=True,
                timeout_s=RUN_TIMEOUT_S,
            )
            assert click.status == 200, click.reply
            promotion.wait()

    with stages.stage("DAGs parsed"):
        _wait(lambda: rest.dag_exists(f"train_{MODEL}"), "the DAG processor to parse the DAGs")

    train_and_promote(1)
    assert registry.get_alias_version(MODEL, "champion") == 1

    rollouts = len(rest.runs(f"rollout_{MODEL}"))  # the first champion's hand-off made one
    train_and_promote(2)
    assert registry.get_alias_version(MODEL, "canary") == 2
    assert registry.get_alias_version(MODEL, "champion") == 1

    frame, truth = live_requests()
    with stages.stage("canary v2 on live traffic → champion"):
        with Traffic(gateway, MODEL, frame, truth, api_token=GATEWAY_TOKEN) as traffic:
            _new_run(rest, f"rollout_{MODEL}", rollouts, run.root).wait()
    assert registry.get_alias_version(MODEL, "champion") == 2, traffic.failed
    # The rollout's state as its mirror on the version shows it (the ledger is the server's).
    shown = state_from_tags(MODEL, 2, registry.get_version(MODEL, 2).tags)
    assert shown is not None and shown.phase == "promoted"

    with stages.stage("rollback through REST → gateway serves v1"):
        # v1 scores far worse than v2 on the live traffic's labels (it was trained before the
        # regime changed), so the preflight refuses a plain rollback: the on-call engineer forces.
        forced = rest.trigger(f"rollback_{MODEL}", {"force": True})
        RestRun(rest, f"rollback_{MODEL}", forced, run.root).wait()
        _wait(lambda: _served_version(gateway, frame) == 1, "the gateway to answer with v1", 60)
    assert registry.get_alias_version(MODEL, "champion") == 1

    _assert_training_ran_only_on_the_training_worker(run)


def _served_version(gateway: str, frame) -> int | None:
    records = frame.head(3).astype(object).where(frame.head(3).notna(), None).to_dict("records")
    answer = httpx.post(
        f"{gateway}/models/{MODEL}/invocations", json={"dataframe_records": records}, timeout=30
    )
    return answer.json().get("version") if answer.status_code == 200 else None


def _assert_training_ran_only_on_the_training_worker(run: Topology) -> None:
    training = run.running["airflow-training-worker"].log.read_text(errors="replace")
    default = run.running["airflow-worker"].log.read_text(errors="replace")
    for task in ("extract_window", "validate_window", "train_candidate"):
        assert f"task_id='{task}'" in training and f"task_id='{task}'" not in default, task
    for task in ("register_candidate", "evaluate", "wait_for_approval", "apply_rollback"):
        assert f"task_id='{task}'" in default and f"task_id='{task}'" not in training, task
