from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.__main__ import build_parser, resolve
from gateway.config import GatewayConfigError, parse_config


def _resolve(argv: list[str], env: dict[str, str]):
    return resolve(build_parser().parse_args(argv), env)


def test_flags_beat_environment_which_beats_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "models: [{name: churn, canary_share: 0.1}]\n"
        "refresh_interval_s: 30\n"
        "prediction_log: {url: 'sqlite:///file.db', batch_size: 50}\n"
    )
    config, server = _resolve(
        ["--config", str(path), "--log-url", "sqlite:///flag.db"],
        {
            "GATEWAY_REFRESH_INTERVAL": "2",
            "GATEWAY_LOG_URL": "sqlite:///env.db",
            "GATEWAY_PORT": "9000",
        },
    )
    assert config.models[0].canary_share == 0.1
    assert config.refresh_interval_s == 2
    assert config.prediction_log.url == "sqlite:///flag.db"
    assert config.prediction_log.batch_size == 50
    assert (server["host"], server["port"]) == ("127.0.0.1", 9000)


def test_models_and_canary_shares_from_the_command_line() -> None:
    config, _ = _resolve(["--model", "churn:0.05", "--model", "fraud"], {})
    assert [(m.name, m.canary_share) for m in config.models] == [("churn", 0.05), ("fraud", 0.0)]


def test_every_bad_setting_is_reported_at_once() -> None:
    with pytest.raises(GatewayConfigError) as raised:
        parse_config(
            {"models": [{"name": "churn", "canary_share": 2}], "refresh_interval_s": 0, "x": 1},
            "gateway.yaml",
        )
    message = str(raised.value)
    assert "gateway.yaml: models.0.canary_share" in message
    assert "refresh_interval_s" in message and "x: unknown setting" in message


def test_a_model_served_twice_is_refused() -> None:
    with pytest.raises(GatewayConfigError, match="served twice: churn"):
        parse_config({"models": [{"name": "churn"}, {"name": "churn"}]}, "flags")


def test_registering_a_webhook_needs_its_secret() -> None:
    with pytest.raises(GatewayConfigError, match="GATEWAY_WEBHOOK_SECRET"):
        _resolve(["--model", "churn", "--webhook-url", "https://gw.example/webhooks/mlflow"], {})


def test_api_tokens_come_from_the_environment_and_a_secrets_file_together(tmp_path: Path) -> None:
    secrets = tmp_path / "tokens"
    secrets.write_text("# the next one, for rotation\nfrom-the-file-token-0002\n\n")
    config, _ = _resolve(
        ["--model", "churn"],
        {"GATEWAY_API_TOKENS": "from-the-env-token-0001", "GATEWAY_API_TOKENS_FILE": str(secrets)},
    )
    tokens = config.token_set()
    assert tokens.caller("Bearer from-the-env-token-0001") is not None
    assert tokens.caller("Bearer from-the-file-token-0002") is not None
    assert tokens.caller("Bearer from-the-file-token-0003") is None
    assert "from-the-env" not in repr(config)  # secrets stay out of logs and tracebacks


def test_a_short_api_token_or_a_missing_secrets_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GatewayConfigError, match="api_tokens"):
        _resolve(["--model", "churn"], {"GATEWAY_API_TOKENS": "short"})
    with pytest.raises(GatewayConfigError, match="GATEWAY_API_TOKENS_FILE"):
        _resolve(["--model", "churn"], {"GATEWAY_API_TOKENS_FILE": str(tmp_path / "absent")})


def test_workers_are_a_number_or_auto_and_a_bad_count_names_its_flag() -> None:
    config, _ = _resolve(["--model", "churn", "--workers", "auto"], {})
    assert config.workers == (os.cpu_count() or 1)
    config, _ = _resolve(["--model", "churn"], {"GATEWAY_WORKERS": "3"})
    assert config.workers == 3
    with pytest.raises(GatewayConfigError, match=r"--workers \(workers\)"):
        _resolve(["--model", "churn", "--workers", "0"], {})


def test_a_worker_resolves_the_same_config_from_the_command_line_and_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from gateway.__main__ import WORKER_ARGS_VARIABLE, worker_config

    secrets = tmp_path / "tokens"
    secrets.write_text("a-long-enough-api-token-from-a-file\n")
    argv = ["--model", "churn:0.2", "--workers", "2", "--log-flush-interval", "0.5"]
    env = {"GATEWAY_API_TOKENS_FILE": str(secrets), "GATEWAY_MASKING_KEY": "k" * 32}
    config, _ = _resolve(argv, env)
    for name, value in {**env, WORKER_ARGS_VARIABLE: json.dumps(argv)}.items():
        monkeypatch.setenv(name, value)

    rebuilt = worker_config()
    assert rebuilt == config
    assert rebuilt.token_set() == config.token_set()
    # The token stays in its file: nothing hands it to the workers in their environment.
    assert "a-long-enough-api-token" not in json.dumps(dict(os.environ))
