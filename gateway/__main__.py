"""`python -m gateway`: serve models by alias under uvicorn.

Settings come from, in rising precedence: defaults, a YAML file (--config / GATEWAY_CONFIG),
environment variables, flags. See gateway/README.md for every setting.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence

from gateway.config import (
    GatewayConfig,
    GatewayConfigError,
    api_tokens_from_env,
    load_config_file,
    parse_config,
    parse_model_spec,
)

# How `python -m gateway --workers N` hands its command line to the worker processes, which
# resolve it again against the same environment (secrets files included) into the same config.
WORKER_ARGS_VARIABLE = "GATEWAY_WORKER_ARGS"


def build_parser() -> argparse.ArgumentParser:
    """The command line; every flag has an environment variable named in its help."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway", description="Serve registered models by alias."
    )
    parser.add_argument("--config", help="YAML settings file [GATEWAY_CONFIG]")
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME[:CANARY_SHARE]",
        help="a model to serve; repeat for more [GATEWAY_MODELS, comma-separated]",
    )
    parser.add_argument("--host", help="bind address [GATEWAY_HOST, default 127.0.0.1]")
    parser.add_argument("--port", type=int, help="port [GATEWAY_PORT, default 8080]")
    parser.add_argument(
        "--refresh-interval", type=float, help="alias polling seconds [GATEWAY_REFRESH_INTERVAL]"
    )
    parser.add_argument("--log-url", help="prediction log SQLAlchemy URL [GATEWAY_LOG_URL]")
    parser.add_argument("--log-schema", help="prediction log schema [GATEWAY_LOG_SCHEMA]")
    parser.add_argument(
        "--log-batch-size", type=int, help="rows per log insert [GATEWAY_LOG_BATCH_SIZE]"
    )
    parser.add_argument(
        "--log-flush-interval",
        type=float,
        help="longest wait before a logged row is written [GATEWAY_LOG_FLUSH_INTERVAL]",
    )
    parser.add_argument(
        "--webhook-url",
        help="this gateway's /webhooks/mlflow URL, registered with the MLflow server at start "
        "[GATEWAY_WEBHOOK_URL]; the secret comes from GATEWAY_WEBHOOK_SECRET only",
    )
    parser.add_argument(
        "--webhook-name",
        help="name of the registered webhook [GATEWAY_WEBHOOK_NAME, default serving-gateway]",
    )
    parser.add_argument(
        "--workers",
        help="serving processes, a number or `auto` (one per core) [GATEWAY_WORKERS, default 1]",
    )
    parser.add_argument("--log-level", help="uvicorn and gateway log level [GATEWAY_LOG_LEVEL]")
    return parser


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# Each setting a flag or an environment variable may give: (field, flag attribute, variable).
_OVERRIDES = (
    ("refresh_interval_s", "refresh_interval", "GATEWAY_REFRESH_INTERVAL"),
    ("workers", "workers", "GATEWAY_WORKERS"),
    ("prediction_log.url", "log_url", "GATEWAY_LOG_URL"),
    ("prediction_log.db_schema", "log_schema", "GATEWAY_LOG_SCHEMA"),
    ("prediction_log.batch_size", "log_batch_size", "GATEWAY_LOG_BATCH_SIZE"),
    ("prediction_log.flush_interval_s", "log_flush_interval", "GATEWAY_LOG_FLUSH_INTERVAL"),
)


def resolve(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[GatewayConfig, dict]:
    """The gateway config and the server settings from a file, the environment and flags.

    An error names where each bad setting came from: the flag, the environment variable or the
    file (and its field).
    """
    config_path = args.config or env.get("GATEWAY_CONFIG")
    raw = load_config_file(config_path) if config_path else {}
    source = config_path or "settings"
    origins: dict[str, str] = {}

    model_specs: Sequence[str] | None = args.model or (
        [spec for spec in env["GATEWAY_MODELS"].split(",") if spec.strip()]
        if env.get("GATEWAY_MODELS")
        else None
    )
    if model_specs:
        raw["models"] = [parse_model_spec(spec.strip()) for spec in model_specs]
        origins["models"] = _models_origin(args, env)
    if env.get("GATEWAY_WEBHOOK_SECRET"):
        raw["webhook_secret"] = env["GATEWAY_WEBHOOK_SECRET"]
    if (tokens := api_tokens_from_env(env)) is not None:
        raw["api_tokens"] = tokens
    for setting, variable in (
        ("masking_key", "GATEWAY_MASKING_KEY"),
        ("policy_dir", "GATEWAY_POLICY_DIR"),
    ):
        if env.get(variable):
            raw[setting] = env[variable]
    for field, attribute, variable in _OVERRIDES:
        flag = getattr(args, attribute)
        value = flag if flag is not None else env.get(variable)
        if value is None or value == "":
            continue
        section, _, key = field.rpartition(".")
        target = raw
        if section:
            target = raw[section] = dict(raw.get(section) or {})
        target[key] = value
        origins[field] = "--" + attribute.replace("_", "-") if flag is not None else variable
    try:
        config = parse_config(raw, source)
    except GatewayConfigError as error:
        raise GatewayConfigError(
            source, [_with_origin(problem, origins) for problem in error.problems]
        ) from None

    port_origin = "--port" if args.port is not None else "GATEWAY_PORT"
    port = args.port if args.port is not None else env.get("GATEWAY_PORT") or 8080
    try:
        port = int(port)
    except ValueError:
        raise GatewayConfigError(port_origin, [f"not a port number: {port!r}"]) from None
    if not 0 < port < 65536:
        raise GatewayConfigError(port_origin, [f"not a port number (1–65535): {port}"])
    log_level = (args.log_level or env.get("GATEWAY_LOG_LEVEL") or "info").lower()
    if log_level not in LOG_LEVELS:
        raise GatewayConfigError(
            "--log-level" if args.log_level else "GATEWAY_LOG_LEVEL",
            [f"unknown log level {log_level!r}; one of {', '.join(LOG_LEVELS)}"],
        )
    server = {
        "host": args.host or env.get("GATEWAY_HOST") or "127.0.0.1",
        "port": port,
        "log_level": log_level,
        "webhook_url": args.webhook_url or env.get("GATEWAY_WEBHOOK_URL"),
        "webhook_name": args.webhook_name or env.get("GATEWAY_WEBHOOK_NAME") or "serving-gateway",
    }
    if server["webhook_url"] and not config.webhook_secret:
        raise GatewayConfigError(source, ["--webhook-url needs GATEWAY_WEBHOOK_SECRET to be set"])
    return config, server


def _models_origin(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.model:
        return "--model"
    if env.get("GATEWAY_MODELS"):
        return "GATEWAY_MODELS"
    return f"{args.config or env.get('GATEWAY_CONFIG')}: models"


def _with_origin(problem: str, origins: dict[str, str]) -> str:
    """`field: message` as `FLAG_OR_VARIABLE (field): message` when a flag or variable gave it."""
    field, _, message = problem.partition(":")
    for path, origin in origins.items():
        if field == path or field.startswith(path + "."):
            return f"{origin} ({field}):{message}"
    return problem


def main(argv: Sequence[str] | None = None) -> int:
    """Parse settings, register the webhook when asked, and run uvicorn until SIGTERM/SIGINT."""
    args = build_parser().parse_args(argv)
    try:
        config, server = resolve(args, os.environ)
        check_address(server, args)
        check_stores(config, args, os.environ)
    except GatewayConfigError as error:
        print(error)
        return 2
    logging.basicConfig(
        level=server["log_level"].upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for line in unregistered_warnings(config, args, os.environ):
        logging.getLogger("gateway").error(line)
    if server["webhook_url"]:
        _register_webhook(server["webhook_name"], server["webhook_url"], config.webhook_secret)

    import uvicorn

    settings = {
        "host": server["host"],
        "port": server["port"],
        "log_level": server["log_level"],
        "access_log": False,
        "timeout_graceful_shutdown": 30,
    }
    if config.workers == 1:
        from gateway.app import create_app

        uvicorn.run(create_app(config), **settings)
        return 0
    # Several processes: each worker builds the same app from the settings resolved here, and
    # the tables exist before any of them starts (so they do not race to create them).
    from gateway.predlog import create_engine, ensure_tables, log_tables

    engine = create_engine(config.prediction_log.url)
    ensure_tables(engine, log_tables(config.prediction_log.db_schema))
    engine.dispose()
    os.environ[WORKER_ARGS_VARIABLE] = json.dumps(list(argv if argv is not None else sys.argv[1:]))
    uvicorn.run("gateway.app:create_worker_app", factory=True, workers=config.workers, **settings)
    return 0


def worker_config() -> GatewayConfig:
    """A worker process's config: the main process's command line resolved again here, against
    the environment it inherited, with the logging the main process set up."""
    args = build_parser().parse_args(json.loads(os.environ[WORKER_ARGS_VARIABLE]))
    config, server = resolve(args, os.environ)
    logging.basicConfig(
        level=server["log_level"].upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return config


def check_address(server: dict, args: argparse.Namespace) -> None:
    """Refuse a bind address that does not resolve, naming the setting (uvicorn would end with a
    bare resolver error)."""
    try:
        socket.getaddrinfo(server["host"], server["port"], type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        setting = "--host" if args.host else "GATEWAY_HOST"
        raise GatewayConfigError(
            setting, [f"cannot resolve {server['host']!r}: {error.strerror}"]
        ) from None


def check_stores(config: GatewayConfig, args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Refuse to start, naming the setting, when the tracking URI names no store (MLflow would
    create an empty one, and the gateway wait for a champion forever) or the prediction log
    cannot be opened."""
    import mlflow

    from gateway.predlog import create_engine
    from registry.stores import database_problem, missing_store

    tracking_uri = env.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()
    problem = missing_store(tracking_uri)
    if problem is not None:
        setting = "MLFLOW_TRACKING_URI"
        if not env.get(setting):
            setting += " (not set: MLflow's default)"
        raise GatewayConfigError(setting, [f"{problem}; set it to the registry to follow"])
    problem = database_problem(config.prediction_log.url, create_engine)
    if problem is not None:
        raise GatewayConfigError(_log_url_origin(args, env), [problem])


def _log_url_origin(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.log_url is not None:
        return "--log-url"
    if env.get("GATEWAY_LOG_URL"):
        return "GATEWAY_LOG_URL"
    config_path = args.config or env.get("GATEWAY_CONFIG")
    if config_path and (load_config_file(config_path).get("prediction_log") or {}).get("url"):
        return f"{config_path}: prediction_log.url"
    return "prediction_log.url (default)"


def unregistered_warnings(
    config: GatewayConfig, args: argparse.Namespace, env: Mapping[str, str]
) -> list[str]:
    """One line per served model the registry has never heard of, naming the setting and any
    registered name it may be a misspelling of. The gateway still starts (a model may be
    registered after it), but says so, instead of waiting for a champion in silence."""
    from registry.serving import unregistered_models

    given_by = _models_origin(args, env)
    try:
        missing = unregistered_models([model.name for model in config.models])
    except Exception as error:  # an unreachable registry is reported by the follower as it lasts
        return [f"cannot check the served models in the registry now: {error}"]
    lines = []
    for name, registered in missing.items():
        close = difflib.get_close_matches(name, registered, n=3)
        if close:
            hint = f"did you mean {', '.join(close)}?"
        elif registered:
            hint = f"registered: {', '.join(registered)}"
        else:
            hint = "the registry holds no model yet"
        lines.append(
            f"{given_by}: {name} is not registered in the MLflow registry ({hint}); it stays "
            "unready until a version of it is registered"
        )
    return lines


def _register_webhook(name: str, url: str, secret: str | None) -> None:
    from registry.serving import ensure_alias_webhook

    try:
        webhook_id = ensure_alias_webhook(name, url, secret or "")
    except Exception as error:  # polling still follows the aliases without the webhook
        logging.getLogger("gateway").warning(
            "could not register webhook %s -> %s (%s); following aliases by polling only",
            name,
            url,
            error,
        )
        return
    logging.getLogger("gateway").info("webhook %s (%s) delivers to %s", name, webhook_id, url)


if __name__ == "__main__":
    raise SystemExit(main())
