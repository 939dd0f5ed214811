"""The demo's live part: a model whose every promotion waits for a Slack approval and then meets
simulated live traffic at the gateway as a canary; one good challenger is promoted, one trained
on silently broken labels is reverted."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

import registry
from approval.airflow_api import AirflowHITLClient
from approval.hitl import SERVICE_USER
from approval.store import DecisionStore
from approval.testing.interactions import SIGNING_SECRET
from approval.testing.samples import ALICE
from approval.testing.slack_fake import FakeSlack
from demo.approval import SlackApprover
from demo.lifecycle import DagRunFailed, Lifecycle
from demo.report import announce, print_state
from demo.services import (
    AirflowAccounts,
    AirflowRest,
    Service,
    free_port,
    start_airflow_api_server,
    start_approval_endpoint,
    start_gateway,
    start_scheduler,
)
from demo.source_data import (
    as_of_for_window,
    generate_user_features,
    live_requests,
    with_inverted_target,
    write_source,
)
from demo.traffic import Traffic

MODEL = "user_churn_live"
BOT_TOKEN = "xoxb-demo-bot-token"
# What the gateway's feedback endpoint accepts from the demo's labeling job.
GATEWAY_TOKEN = "demo-gateway-labels-token"
STARTUP_TIMEOUT_S = 180
APPROVAL_TIMEOUT_S = 240
ROLLOUT_TIMEOUT_S = 300
RETRAIN_TIMEOUT_S = 300
# From here on the demo source's labels are inverted for the broken challenger's training run.
LABEL_BUG_START = datetime(2026, 4, 5)
SHOWN_ALIASES = ("champion", "challenger", "canary")
# How many days of new users reach the source before the monitor checks.
RECENT_DAYS = 80
# The port the printed command serves the monitoring view on, after the demo.
VIEW_PORT = 8080


@dataclass
class LiveServices:
    """Slack (the project's local fake of its Web API), Airflow's api-server, the approval
    endpoint and the gateway, all on loopback for one lifecycle; `start` also settles the
    environment of every later Airflow command."""

    lifecycle: Lifecycle
    slack: FakeSlack = field(default_factory=lambda: FakeSlack(token=BOT_TOKEN))
    running: dict[str, Service] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.lifecycle.workspace.root

    @property
    def env_file(self) -> Path:
        """The Airflow settings of the demo's stores, for an api-server started afterwards."""
        return self.root / "airflow.env"

    @property
    def approval_db_url(self) -> str:
        return f"sqlite:///{self.root / 'approval.db'}"

    @property
    def log_url(self) -> str:
        """The gateway's prediction log."""
        return f"sqlite:///{self.root / 'predictions.db'}"

    def start_airflow(self) -> None:
        """Start Slack's fake and Airflow's api-server; call once Airflow's metadata DB exists."""
        self.slack.start()
        workspace, env = self.lifecycle.workspace, self.lifecycle.env
        accounts = AirflowAccounts(workspace.airflow_home)
        api_port = free_port()
        env.update(accounts.settings(f"http://127.0.0.1:{api_port}"))
        env.update(
            {
                "GATEWAY_LOG_URL": self.log_url,
                "APPROVAL_DB_URL": self.approval_db_url,
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_API_URL": self.slack.url,
                "MLFLOW_UI_URL": "http://127.0.0.1:5000",
                "AIRFLOW_UI_URL": f"http://127.0.0.1:{VIEW_PORT}",
            }
        )
        self._write_env_file(env, accounts)
        self.running["airflow"] = start_airflow_api_server(
            self.lifecycle.airflow, env, api_port, workspace.logs / "airflow-api-server.log"
        )

    def start_endpoints(self) -> None:
        """Start the approval endpoint and the gateway, and wait until they and Airflow's REST
        API answer; call once the MLflow store exists (both refuse to start without it)."""
        workspace, env, logs = (
            self.lifecycle.workspace,
            self.lifecycle.env,
            self.lifecycle.workspace.logs,
        )
        api = self.running["airflow"]
        self.running["approval"] = start_approval_endpoint(
            env=env,
            signing_secret=SIGNING_SECRET,
            db_url=self.approval_db_url,
            airflow_url=api.url,
            log=logs / "approval-endpoint.log",
        )
        self.running["gateway"] = start_gateway(
            [MODEL],
            tracking_uri=workspace.tracking_uri,
            log_url=self.log_url,
            api_token=GATEWAY_TOKEN,
            log=logs / "gateway.log",
            env=env,
        )
        api.wait_ready("/api/v2/version", STARTUP_TIMEOUT_S, ok=(200, 401))
        self.running["approval"].wait_ready("/healthz", STARTUP_TIMEOUT_S)

    def approver(self) -> SlackApprover:
        """An approver clicking in the demo's Slack, through the approval endpoint."""
        password = AirflowAccounts(self.lifecycle.workspace.airflow_home).passwords()
        return SlackApprover(
            slack=self.slack,
            store=DecisionStore.from_url(self.approval_db_url),
            airflow=AirflowHITLClient(
                base_url=self.running["airflow"].url,
                username=SERVICE_USER,
                password=password[SERVICE_USER],
            ),
            endpoint=self.running["approval"].url,
            signing_secret=SIGNING_SECRET,
        )

    def rest(self) -> AirflowRest:
        """Airflow's REST API as the workspace's `admin`."""
        password = AirflowAccounts(self.lifecycle.workspace.airflow_home).passwords()["admin"]
        return AirflowRest(self.running["airflow"].url, "admin", password)

    def start_scheduler(self) -> Service:
        """Airflow's scheduler on the workspace, until `stop`."""
        scheduler = start_scheduler(
            self.lifecycle.airflow,
            self.lifecycle.env,
            self.running["airflow"].url,
            self.lifecycle.workspace.logs / "airflow-scheduler.log",
        )
        self.running["scheduler"] = scheduler
        return scheduler

    def stop(self) -> None:
        """Stop every service that was started."""
        for service in self.running.values():
            service.stop()
        self.slack.stop()

    def _write_env_file(self, env: dict[str, str], accounts: AirflowAccounts) -> None:
        shared = {
            key: value
            for key, value in env.items()
            if key.startswith(("AIRFLOW", "MLFLOW_", "PROMOTION_", "GATEWAY_", "APPROVAL_"))
        }
        view = f"http://127.0.0.1:{VIEW_PORT}"
        shared.update(accounts.settings(view))
        # What `python -m monitoring status` signs in with.
        shared.update(
            {
                "AIRFLOW_API_URL": view,
                "AIRFLOW_API_USERNAME": "admin",
                "AIRFLOW_API_PASSWORD": accounts.passwords()["admin"],
            }
        )
        self.env_file.write_text(
            "".join(f"{key}={shlex.quote(value)}\n" for key, value in shared.items())
        )


def run_live_lifecycle(lifecycle: Lifecycle, services: LiveServices, source: pd.DataFrame) -> None:
    """First champion approved in Slack; a good challenger approved and promoted by its canary;
    a challenger trained on broken labels approved offline and reverted by its canary."""
    approver = services.approver()
    gateway = services.running["gateway"]
    frame, truth = live_requests()

    announce("train the live model on window 1", f"train_{MODEL}", {"as_of": as_of_for_window(1)})
    lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(1)})
    print_state(MODEL, SHOWN_ALIASES)
    promote_with_approval(lifecycle, approver, "promote: no champion yet, approval required")
    gateway.wait_ready("/ready", STARTUP_TIMEOUT_S)

    announce("train the live model on window 2", f"train_{MODEL}", {"as_of": as_of_for_window(2)})
    lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(2)})
    print_state(MODEL, SHOWN_ALIASES)
    promote_with_approval(lifecycle, approver, "promote: the winner is approved, then a canary")
    canary(lifecycle, gateway.url, frame, truth, "canary of a good challenger")

    print(
        f"\n⚠ an upstream change inverts user_features.target from {LABEL_BUG_START:%Y-%m-%d}: "
        "training and holdout rows share the bug, so the offline evaluation cannot see it"
    )
    write_source(lifecycle.workspace.source, with_inverted_target(source, LABEL_BUG_START))
    announce("train the live model a week later", f"train_{MODEL}", {"as_of": as_of_for_window(3)})
    lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(3)})
    print_state(MODEL, SHOWN_ALIASES)
    promote_with_approval(lifecycle, approver, "promote: it wins on the broken holdout, approved")
    write_source(lifecycle.workspace.source, source)
    print("  (the upstream bug is fixed: user_features holds the true labels again)")
    canary(lifecycle, gateway.url, frame, truth, "canary of the challenger trained on bad labels")


def promote_with_approval(lifecycle: Lifecycle, approver: SlackApprover, title: str) -> None:
    """promote_<model> in the background; the approver approves its request in Slack."""
    announce(title, f"promote_{MODEL}")
    before = approver.posted()
    run = lifecycle.start_dag(f"promote_{MODEL}")
    click = approver.answer(
        run, after=before, user=ALICE, approve=True, timeout_s=APPROVAL_TIMEOUT_S
    )
    print(f"  Slack #model-approvals: {click.posted}")
    print(
        f"  {click.user} clicks {'Approve' if click.approve else 'Reject'}: a signed request to "
        f"the approval endpoint → HTTP {click.status}"
    )
    if click.status != 200:
        run.stop()
        raise DagRunFailed(f"the approval endpoint refused the click: {click.reply}")
    run.wait(APPROVAL_TIMEOUT_S)
    print_state(MODEL, SHOWN_ALIASES)


def canary(
    lifecycle: Lifecycle, gateway_url: str, frame: pd.DataFrame, truth: np.ndarray, title: str
) -> None:
    """rollout_<model> while live traffic and its labels reach the gateway; prints the verdict."""
    version = registry.get_alias_version(MODEL, "canary")
    announce(f"{title} (v{version}) on live traffic", f"rollout_{MODEL}")
    with Traffic(gateway_url, MODEL, frame, truth, api_token=GATEWAY_TOKEN) as traffic:
        lifecycle.start_dag(f"rollout_{MODEL}").wait(ROLLOUT_TIMEOUT_S)
    state = registry.rollout_state(MODEL, version)
    print(f"  traffic: {traffic.sent} requests, {traffic.labeled} labels")
    if state is None or state.verdict is None:
        print("  no verdict was recorded for the rollout")
    else:
        numbers = state.verdict.evidence
        print(
            f"  canary accuracy {float(numbers['challenger_value']):.3f} vs champion "
            f"{float(numbers['champion_value']):.3f}"
        )
        print(f"  verdict: {state.phase}: {state.reason}")
    print_state(MODEL, SHOWN_ALIASES)


def retrain_on_trigger(lifecycle: Lifecycle, services: LiveServices, source: pd.DataFrame) -> None:
    """New users reach the source; monitor_<model>'s data-volume trigger fires, and its Asset
    event makes Airflow's scheduler start train_<model>."""
    from registry.monitor_checks import read_checks
    from registry.settings import ledger_url

    now = datetime.now(UTC).replace(tzinfo=None)
    recent = generate_user_features(
        days=RECENT_DAYS, start=now - timedelta(days=RECENT_DAYS), seed=31
    )
    write_source(lifecycle.workspace.source, pd.concat([source, recent], ignore_index=True))
    print(
        f"\n+ {len(recent)} users who signed up in the last {RECENT_DAYS} days reach user_features"
    )
    # Airflow queues an Asset-triggered run for unpaused DAGs only; the scheduler starts it.
    rest = services.rest()
    rest.unpause(f"train_{MODEL}")
    announce("monitor: check the champion's triggers", f"monitor_{MODEL}")
    lifecycle.run_dag(f"monitor_{MODEL}")
    [check] = read_checks(ledger_url(lifecycle.workspace.tracking_uri), MODEL, limit=1)
    print(f"  check: {check.outcome} {', '.join(check.fired)}: {check.reason}")
    if check.outcome != "fired":
        raise DagRunFailed(f"monitor_{MODEL} did not fire: {check.reason}")

    print(
        f"\n▶ the retrain Asset queued train_{MODEL} (the one DAG unpaused in the demo): "
        "Airflow's scheduler starts it"
    )
    scheduler = services.start_scheduler()
    deadline = time.monotonic() + RETRAIN_TIMEOUT_S
    while not (done := _asset_triggered_runs(rest, f"train_{MODEL}", ("success", "failed"))):
        if time.monotonic() > deadline:
            raise DagRunFailed(
                f"no asset-triggered train_{MODEL} run ended within {RETRAIN_TIMEOUT_S} s "
                f"(log: {scheduler.log})"
            )
        time.sleep(1)
    scheduler.stop()
    if done[0]["state"] != "success":
        raise DagRunFailed(f"{done[0]['dag_run_id']} failed (log: {scheduler.log})")
    version = registry.get_alias_version(MODEL, "challenger")
    tags = registry.get_version(MODEL, version).tags
    print(
        f"  {done[0]['dag_run_id']}: v{version} trained on [{tags['lineage.window_start'][:10]}, "
        f"{tags['lineage.window_end'][:10]}), lineage.trigger={tags.get('lineage.trigger', '–')}"
    )
    print_state(MODEL, SHOWN_ALIASES)
    print(f"  (promote_{MODEL} is paused in the demo: its approval would wait for a person)")


def _asset_triggered_runs(rest: AirflowRest, dag_id: str, states: tuple[str, ...]) -> list[dict]:
    return [
        run
        for run in rest.runs(dag_id)
        if run["run_type"] == "asset_triggered" and run["state"] in states
    ]
