"""docker-compose.yaml says what tests/topology.py says: the same services, commands, environment
variable names and ports; and it holds what Airflow 3 needs to run as one system."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.topology import CELERY, SERVICES, SHARED_ENV, Service, service

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
# ${NAME}, ${NAME:-default} or ${NAME-default}; $$ is a literal dollar for the container's shell.
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
ONE_SHOT = {"airflow-init"}


def compose_service(name: str) -> dict:
    return COMPOSE["services"][name]


def with_defaults(value: str) -> str:
    """A compose value as `docker compose` reads it when .env leaves the variable unset."""
    return REFERENCE.sub(lambda match: match.group(2) or "", value)


def test_the_compose_file_has_exactly_the_topologys_services() -> None:
    assert sorted(COMPOSE["services"]) == sorted(s.name for s in SERVICES)


@pytest.mark.parametrize("expected", [s for s in SERVICES if not s.external], ids=lambda s: s.name)
def test_each_service_runs_the_topologys_command(expected: Service) -> None:
    command = [with_defaults(str(part)) for part in compose_service(expected.name)["command"]]

    queue = with_defaults(COMPOSE["x-airflow-common"]["environment"]["PROMOTION_TRAINING_QUEUE"])
    assert command == expected.argv(host="0.0.0.0", training_queue=queue)


@pytest.mark.parametrize("expected", SERVICES, ids=lambda s: s.name)
def test_each_service_gets_exactly_the_topologys_environment_names(expected: Service) -> None:
    environment = compose_service(expected.name).get("environment", {})

    assert isinstance(environment, dict), (
        "environment as a mapping, so merge keys keep the shared block"
    )
    assert sorted(environment) == sorted(expected.environment)


@pytest.mark.parametrize("expected", [s for s in SERVICES if s.airflow], ids=lambda s: s.name)
def test_no_airflow_service_drops_the_shared_environment(expected: Service) -> None:
    environment = compose_service(expected.name)["environment"]

    assert SHARED_ENV <= set(environment), sorted(SHARED_ENV - set(environment))
    assert environment["AIRFLOW__API_AUTH__JWT_SECRET"] == "${AIRFLOW_JWT_SECRET}"


@pytest.mark.parametrize("expected", [s for s in SERVICES if s.port], ids=lambda s: s.name)
def test_each_service_listens_on_the_topologys_port(expected: Service) -> None:
    entry = compose_service(expected.name)
    published = [str(port).split(":")[-1] for port in entry.get("ports", [])]

    assert str(expected.port) in published + [str(port) for port in entry.get("expose", [])]


@pytest.mark.parametrize(
    "expected", [s for s in SERVICES if s.name not in ONE_SHOT], ids=lambda s: s.name
)
def test_every_long_running_service_has_a_health_check(expected: Service) -> None:
    test = compose_service(expected.name)["healthcheck"]["test"]

    probe = " ".join(test)
    if expected.health:
        assert f"localhost:{expected.health_port or expected.port}{expected.health}" in probe


@pytest.mark.parametrize(
    "expected", [s for s in SERVICES if s.airflow and s.name not in ONE_SHOT], ids=lambda s: s.name
)
def test_every_airflow_service_waits_for_the_init_to_finish(expected: Service) -> None:
    waits = compose_service(expected.name)["depends_on"]

    assert waits["airflow-init"] == {"condition": "service_completed_successfully"}
    assert waits["postgres"] == {"condition": "service_healthy"}


def test_the_init_waits_only_for_the_database() -> None:
    assert compose_service("airflow-init")["depends_on"] == {
        "postgres": {"condition": "service_healthy"}
    }


def test_the_celery_profile_holds_redis_the_workers_and_flower() -> None:
    profiled = {name for name, entry in COMPOSE["services"].items() if entry.get("profiles")}

    assert profiled == {s.name for s in SERVICES if s.profile == CELERY}
    assert all(compose_service(name)["profiles"] == [CELERY] for name in profiled)


def test_the_training_worker_listens_only_on_the_training_queue() -> None:
    worker = service("airflow-training-worker").argv(host="", training_queue="training")

    assert worker[worker.index("--queues") + 1] == "training"
    assert (
        with_defaults(compose_service("airflow-training-worker")["command"][4])
        == (ENV_EXAMPLE["PROMOTION_TRAINING_QUEUE"])
    )


def test_mlflow_delivers_registry_webhooks_to_the_gateway_inside_the_network() -> None:
    mlflow = compose_service("mlflow")["environment"]
    gateway = compose_service("gateway")["environment"]

    assert "http" in mlflow["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"].split(",")
    assert mlflow["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] == "true"
    assert mlflow["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"].startswith("${")
    assert gateway["GATEWAY_WEBHOOK_URL"] == "http://gateway:8080/webhooks/mlflow"
    assert "--serve-artifacts" not in compose_service("mlflow")["command"]  # on by default


def test_the_image_is_the_official_airflow_one_at_the_projects_airflow_version() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pinned = re.search(r'"apache-airflow==([\d.]+)"', (ROOT / "pyproject.toml").read_text())

    assert f"ARG AIRFLOW_VERSION={pinned.group(1)}" in dockerfile
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python3.11" in dockerfile
    assert pinned.group(1).startswith("3.3.")
    assert COMPOSE["x-airflow-common"]["build"]["dockerfile"] == "Dockerfile"


def test_env_example_lists_every_variable_the_compose_file_reads_and_no_other() -> None:
    referenced = set(
        m.group(1) for m in REFERENCE.finditer((ROOT / "docker-compose.yaml").read_text())
    )

    assert referenced == set(ENV_EXAMPLE)


def test_secrets_have_no_default_in_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yaml").read_text()
    secrets = {name for name in ENV_EXAMPLE if not ENV_EXAMPLE[name]}

    defaulted = {m.group(1) for m in REFERENCE.finditer(text) if m.group(2) is not None}
    assert secrets and not secrets & defaulted


def test_the_env_file_with_the_secrets_is_never_committed() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
