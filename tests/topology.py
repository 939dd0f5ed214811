"""The production topology as data: every service, its command, the environment variables it reads
and the port it listens on. `docker-compose.yaml` must say the same (tests/test_compose.py), and
tests/integration/test_topology.py starts the same services as local processes on loopback."""

from __future__ import annotations

from dataclasses import dataclass

CELERY = "celery"
# What every Airflow component and worker reads: the compose file's x-airflow-common environment.
SHARED_ENV = frozenset(
    {
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__CORE__LOAD_EXAMPLES",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__API__BASE_URL",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
        "AIRFLOW_CONN_USER_FEATURES_DB",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_UI_URL",
        "AIRFLOW_UI_URL",
        "PROMOTION_POLICIES_DIR",
        "PROMOTION_LEDGER_URL",
        "PROMOTION_STORAGE_URL",
        "PROMOTION_CHAMPIONS_DIR",
        "AIRFLOW_CONN_PROMOTION_AIRFLOW_API",
        "PROMOTION_TRAINING_POOL",
        "PROMOTION_TRAINING_POOL_SLOTS",
        "PROMOTION_TRAINING_QUEUE",
        "APPROVAL_DB_URL",
        "SLACK_BOT_TOKEN",
        "SLACK_API_URL",
        "GATEWAY_LOG_URL",
    }
)


@dataclass(frozen=True)
class Service:
    """One service of the deployment. `command` is its argv, where `{host}`, `{port}` and
    `{training_queue}` are filled in per deployment; `env` the variables it reads beyond the shared
    block (which `airflow` services also get); `port` the one it listens on; `health` the HTTP path
    (on `health_port`, else `port`) that answers 2xx once it is up."""

    name: str
    command: tuple[str, ...] = ()
    env: frozenset[str] = frozenset()
    port: int | None = None
    airflow: bool = False
    profile: str | None = None
    external: bool = False  # a database or broker; natively, the machine's own
    health: str | None = None
    health_port: int | None = None

    @property
    def environment(self) -> frozenset[str]:
        """Every variable the service reads."""
        return self.env | SHARED_ENV if self.airflow else self.env

    def argv(self, *, host: str, port: int | None = None, training_queue: str = "") -> list[str]:
        """The command with this deployment's bind address, port and training queue."""
        values = {"host": host, "port": port if port is not None else self.port}
        values["training_queue"] = training_queue
        return [part.format(**values) for part in self.command]


SERVICE_USERS_ENV = frozenset(
    {
        "AIRFLOW_ADMIN_USERNAME",
        "AIRFLOW_ADMIN_PASSWORD",
        "AIRFLOW_API_USERNAME",
        "AIRFLOW_API_PASSWORD",
    }
)
SERVICES = (
    Service(
        "postgres",
        env=frozenset({"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}),
        port=5432,
        external=True,
    ),
    Service("redis", port=6379, profile=CELERY, external=True),
    Service(
        "mlflow",
        ("python", "-m", "mlflow", "server", "--host", "{host}", "--port", "{port}"),
        env=frozenset(
            {
                "MLFLOW_BACKEND_STORE_URI",
                "MLFLOW_ARTIFACTS_DESTINATION",
                "MLFLOW_SERVER_ALLOWED_HOSTS",
                "MLFLOW_WORKERS",
                # Registry webhooks for the gateway: the key that encrypts their secrets in the
                # store (one for every server process), and an in-network http receiver.
                "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY",
                "MLFLOW_WEBHOOK_ALLOWED_SCHEMES",
                "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS",
            }
        ),
        port=5000,
        health="/health",
    ),
    Service(
        "airflow-init",
        ("python", "-m", "workflow.airflow_init"),
        env=SERVICE_USERS_ENV,
        airflow=True,
    ),
    Service(
        "airflow-api-server",
        ("airflow", "api-server", "--host", "{host}", "--port", "{port}"),
        env=frozenset({"AIRFLOW__API__WORKERS"}),
        port=8080,
        airflow=True,
        health="/api/v2/version",
    ),
    Service(
        "airflow-scheduler",
        ("airflow", "scheduler"),
        env=frozenset({"AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"}),
        airflow=True,
        health="/health",
        health_port=8974,
    ),
    Service("airflow-dag-processor", ("airflow", "dag-processor"), airflow=True),
    Service(
        "airflow-triggerer",
        ("airflow", "triggerer"),
        env=frozenset({"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"}),
        airflow=True,
    ),
    Service(
        "airflow-worker",
        ("airflow", "celery", "worker", "--queues", "default", "--celery-hostname", "default@%h"),
        env=frozenset(
            {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__CELERY__WORKER_CONCURRENCY"}
        ),
        airflow=True,
        profile=CELERY,
    ),
    Service(
        "airflow-training-worker",
        (
            "airflow",
            "celery",
            "worker",
            "--queues",
            "{training_queue}",
            "--celery-hostname",
            "training@%h",
        ),
        env=frozenset(
            {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__CELERY__WORKER_CONCURRENCY"}
        ),
        airflow=True,
        profile=CELERY,
    ),
    Service(
        "flower",
        ("airflow", "celery", "flower", "--port", "{port}"),
        port=5555,
        airflow=True,
        profile=CELERY,
        health="/",
    ),
    Service(
        "approval",
        ("python", "-m", "approval"),
        env=frozenset(
            {
                "SLACK_SIGNING_SECRET",
                "SLACK_BOT_TOKEN",
                "SLACK_API_URL",
                "APPROVAL_DB_URL",
                "APPROVAL_HOST",
                "APPROVAL_PORT",
                "AIRFLOW_API_URL",
                "AIRFLOW_API_USERNAME",
                "AIRFLOW_API_PASSWORD",
                "MLFLOW_TRACKING_URI",
            }
        ),
        port=8095,
        health="/healthz",
    ),
    Service(
        "gateway",
        ("python", "-m", "gateway", "--host", "{host}", "--port", "{port}"),
        env=frozenset(
            {
                "MLFLOW_TRACKING_URI",
                "GATEWAY_MODELS",
                "GATEWAY_LOG_URL",
                "GATEWAY_API_TOKENS",
                "GATEWAY_REFRESH_INTERVAL",
                "GATEWAY_WORKERS",
                "GATEWAY_WEBHOOK_URL",
                "GATEWAY_WEBHOOK_SECRET",
                "GATEWAY_POLICY_DIR",
                "GATEWAY_MASKING_KEY",
            }
        ),
        port=8080,
        health="/health",
    ),
)


def service(name: str) -> Service:
    """The service called `name`."""
    return next(candidate for candidate in SERVICES if candidate.name == name)
