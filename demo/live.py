"""The demo's live part: a model whose every promotion waits for a Slack approval and then meets
simulated live traffic at the gateway as a canary; one good challenger is promoted, one trained
on silently broken labels is reverted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from approval.airflow_api import AirflowHITLClient
from approval.hitl import SERVICE_USER
from approval.store import DecisionStore
from approval.testing.interactions import SIGNING_SECRET
from approval.testing.samples import ALICE
from approval.testing.slack_fake import FakeSlack
from demo.approval import SlackApprover
from demo.lifecycle import Lifecycle
from demo.report import announce, print_state
from demo.services import (
    AirflowAccounts,
    Service,
    free_port,
    start_airflow_api_server,
    start_approval_endpoint,
    start_gateway,
)
from demo.source_data import as_of_for_window, live_requests, with_inverted_target, write_source
from demo.traffic import Traffic

MODEL = "user_churn_live"
BOT_TOKEN = "xoxb-demo-bot-token"
# What the gateway's feedback endpoint accepts from the demo's labeling job.
GATEWAY_TOKEN = "demo-gateway-labels-token"
STARTUP_TIMEOUT_S = 180
APPROVAL_TIMEOUT_S = 240
ROLLOUT_TIMEOUT_S = 300
# From here on the demo source's labels are inverted for the broken challenger's training run.
LABEL_BUG_START = datetime(2026, 4, 5)
SHOWN_ALIASES = ("champion", "challenger", "canary")
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

    def start(self) -> None:
        """Start every service; call once Airflow's metadata DB exists."""
        self.slack.start()
        workspace, env = self.lifecycle.workspace, self.lifecycle.env
        accounts = AirflowAccounts(workspace.airflow_home)
        api_port = free_port()
        log_url = f"sqlite:///{self.root / 'predictions.db'}"
        env.update(accounts.settings(f"http://127.0.0.1:{api_port}"))
        env.update(
            {
                "GATEWAY_LOG_URL": log_url,
                "APPROVAL_DB_URL": self.approval_db_url,
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_API_URL": self.slack.url,
                "MLFLOW_UI_URL": "http://127.0.0.1:5000",
                "AIRFLOW_UI_URL": f"http://127.0.0.1:{VIEW_PORT}",
            }
        )
        self._write_env_file(env, accounts)
        logs = workspace.logs
        api = start_airflow_api_server(
            self.lifecycle.airflow, env, api_port, logs / "airflow-api-server.log"
        )
        self.running["airflow"] = api
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
            log_url=log_url,
            api_token=GATEWAY_TOKEN,
            log=logs / "gateway.log",
            env=env,
        )

    def wait_ready(self) -> None:
        """Wait until Airflow's REST API and the approval endpoint answer."""
        self.running["airflow"].wait_ready("/api/v2/version", STARTUP_TIMEOUT_S, ok=(200, 401))
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
        shared.update(accounts.settings(f"http://127.0.0.1:{VIEW_PORT}"))
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in shared.items()))


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
    run.wait(APPROVAL_TIMEOUT_S)
    print_state(MODEL, SHOWN_ALIASES)


def canary(lifecycle: Lifecycle, gateway_url: str, frame: pd.DataFrame, truth, title: str) -> None:
    """rollout_<model> while live traffic and its labels reach the gateway; prints the verdict."""
    import registry

    version = registry.get_alias_version(MODEL, "canary")
    announce(f"{title} (v{version}) on live traffic", f"rollout_{MODEL}")
    with Traffic(gateway_url, MODEL, frame, truth, api_token=GATEWAY_TOKEN) as traffic:
        lifecycle.start_dag(f"rollout_{MODEL}").wait(ROLLOUT_TIMEOUT_S)
    tags = registry.get_version(MODEL, version).tags
    print(
        f"  traffic: {traffic.sent} requests, {traffic.labeled} labels; canary accuracy "
        f"{float(tags['rollout.challenger_value']):.3f} vs champion "
        f"{float(tags['rollout.champion_value']):.3f}"
    )
    print(f"  verdict: {tags['rollout.verdict']}: {tags['rollout.reason']}")
    print_state(MODEL, SHOWN_ALIASES)
