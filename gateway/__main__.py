"""`python -m gateway`: serve models by alias under uvicorn.

Settings come from, in rising precedence: defaults, a YAML file (--config / GATEWAY_CONFIG),
environment variables, flags. See gateway/README.md for every setting.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence

from gateway.config import (
    GatewayConfig,
    GatewayConfigError,
    api_tokens_from_env,
    load_config_file,
    parse_config,
    parse_model_spec,
)


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
    parser.add_argument("--log-level", help="uvicorn and gateway log level [GATEWAY_LOG_LEVEL]")
    return parser


def resolve(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[GatewayConfig, dict]:
    """The gateway config and the server settings from a file, the environment and flags."""
    config_path = args.config or env.get("GATEWAY_CONFIG")
    raw = load_config_file(config_path) if config_path else {}
    source = config_path or "command line"

    model_specs: Sequence[str] | None = args.model or (
        [spec for spec in env["GATEWAY_MODELS"].split(",") if spec.strip()]
        if env.get("GATEWAY_MODELS")
        else None
    )
    if model_specs:
        raw["models"] = [parse_model_spec(spec.strip()) for spec in model_specs]
    _override(raw, "refresh_interval_s", args.refresh_interval, env, "GATEWAY_REFRESH_INTERVAL")
    if env.get("GATEWAY_WEBHOOK_SECRET"):
        raw["webhook_secret"] = env["GATEWAY_WEBHOOK_SECRET"]
    if (tokens := api_tokens_from_env(env)) is not None:
        raw["api_tokens"] = tokens
    log = dict(raw.get("prediction_log") or {})
    _override(log, "url", args.log_url, env, "GATEWAY_LOG_URL")
    _override(log, "db_schema", args.log_schema, env, "GATEWAY_LOG_SCHEMA")
    _override(log, "batch_size", args.log_batch_size, env, "GATEWAY_LOG_BATCH_SIZE")
    _override(log, "flush_interval_s", args.log_flush_interval, env, "GATEWAY_LOG_FLUSH_INTERVAL")
    if log:
        raw["prediction_log"] = log
    config = parse_config(raw, source)

    port = args.port or env.get("GATEWAY_PORT") or 8080
    try:
        port = int(port)
    except ValueError:
        raise GatewayConfigError("GATEWAY_PORT", [f"not a port number: {port!r}"]) from None
    server = {
        "host": args.host or env.get("GATEWAY_HOST") or "127.0.0.1",
        "port": port,
        "log_level": (args.log_level or env.get("GATEWAY_LOG_LEVEL") or "info").lower(),
        "webhook_url": args.webhook_url or env.get("GATEWAY_WEBHOOK_URL"),
        "webhook_name": args.webhook_name or env.get("GATEWAY_WEBHOOK_NAME") or "serving-gateway",
    }
    if server["webhook_url"] and not config.webhook_secret:
        raise GatewayConfigError(source, ["--webhook-url needs GATEWAY_WEBHOOK_SECRET to be set"])
    return config, server


def _override(raw: dict, key: str, flag: object, env: Mapping[str, str], variable: str) -> None:
    if flag is not None:
        raw[key] = flag
    elif env.get(variable):
        raw[key] = env[variable]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse settings, register the webhook when asked, and run uvicorn until SIGTERM/SIGINT."""
    args = build_parser().parse_args(argv)
    try:
        config, server = resolve(args, os.environ)
    except GatewayConfigError as error:
        print(error)
        return 2
    logging.basicConfig(
        level=server["log_level"].upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if server["webhook_url"]:
        _register_webhook(server["webhook_name"], server["webhook_url"], config.webhook_secret)

    import uvicorn

    from gateway.app import create_app

    uvicorn.run(
        create_app(config),
        host=server["host"],
        port=server["port"],
        log_level=server["log_level"],
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    return 0


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
