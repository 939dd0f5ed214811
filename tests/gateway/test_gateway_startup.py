"""`python -m gateway` refuses to start on settings that cannot work, in one line naming the
setting, and leaves nothing behind; a served model the registry does not know is said at start."""

from __future__ import annotations

from pathlib import Path

import pytest

import registry
from gateway.__main__ import build_parser, main, resolve, unregistered_warnings


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An existing tracking store and a clean gateway environment."""
    for variable in ("GATEWAY_CONFIG", "GATEWAY_MODELS", "GATEWAY_LOG_URL", "GATEWAY_PORT"):
        monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "mlflow.db"
    path.touch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path}")
    return path


def start(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(argv)
    return status, capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("misspelt", ["mlrunz", "sqlite:///{tmp}/mlfow.db", "file://{tmp}/mlrunz"])
def test_a_tracking_uri_naming_no_store_stops_the_gateway_and_creates_none(
    store: Path, tmp_path: Path, monkeypatch, capsys, misspelt: str
) -> None:
    uri = misspelt.format(tmp=tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    status, lines = start(["--model", "churn"], capsys)
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith(f"MLFLOW_TRACKING_URI: {uri} ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["--log-url", "sqlite:///{tmp}/no_dir/log.db"], "directory {tmp}/no_dir does not exist"),
        (["--log-url", "predictions.db"], "not a database URL"),
        (["--log-url", "sqlit:///x.db"], "unknown database type 'sqlit'"),
        (
            ["--log-url", "postgresql://gw:s3cret@127.0.0.1:9/log"],
            "***@127.0.0.1:9/log: cannot open",
        ),
    ],
)
def test_a_prediction_log_that_cannot_be_opened_is_one_line_naming_the_flag(
    store: Path, tmp_path: Path, capsys, given: list[str], message: str
) -> None:
    argv = [part.format(tmp=tmp_path) for part in given]
    status, lines = start(["--model", "churn", *argv], capsys)
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith("--log-url: ")
    assert message.format(tmp=tmp_path) in lines[0] and "s3cret" not in lines[0]


def test_the_log_url_error_names_the_environment_variable_that_gave_it(
    store: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("GATEWAY_LOG_URL", f"sqlite:///{tmp_path}/no_dir/log.db")
    status, lines = start(["--model", "churn"], capsys)
    assert (status, lines[0].split(":")[0]) == (2, "GATEWAY_LOG_URL")


@pytest.mark.parametrize(
    ("argv", "env", "line"),
    [
        (
            [],
            {"GATEWAY_REFRESH_INTERVAL": "soon"},
            "settings: GATEWAY_REFRESH_INTERVAL (refresh_interval_s): ",
        ),
        (["--log-batch-size", "0"], {}, "settings: --log-batch-size (prediction_log.batch_size): "),
        ([], {"GATEWAY_PORT": "70000"}, "GATEWAY_PORT: not a port number (1–65535): 70000"),
        (["--port", "0"], {}, "--port: not a port number (1–65535): 0"),
        ([], {"GATEWAY_LOG_LEVEL": "verbose"}, "GATEWAY_LOG_LEVEL: unknown log level 'verbose'"),
    ],
)
def test_a_bad_setting_names_the_flag_or_variable_that_gave_it(
    argv: list[str], env: dict[str, str], line: str
) -> None:
    from gateway.config import GatewayConfigError

    with pytest.raises(GatewayConfigError) as raised:
        resolve(build_parser().parse_args(["--model", "churn", *argv]), env)
    assert str(raised.value).startswith(line)


def test_a_served_model_the_registry_does_not_know_is_said_with_the_likely_name(
    mlflow_store: str,
) -> None:
    registry.ensure_registered_model("user_churn")
    args = build_parser().parse_args(["--model", "user_chrun", "--model", "user_churn"])
    config, _ = resolve(args, {})
    assert unregistered_warnings(config, args, {}) == [
        "--model: user_chrun is not registered in the MLflow registry (did you mean user_churn?); "
        "it stays unready until a version of it is registered"
    ]


def test_a_served_model_never_registered_shows_as_a_registry_error_not_a_silent_wait(
    mlflow_store: str,
) -> None:
    from gateway.config import ServedModel
    from gateway.holder import AliasFollower, RegistrySource

    registry.ensure_registered_model("user_churn")
    models = [ServedModel(name="user_chrun"), ServedModel(name="user_churn")]
    follower = AliasFollower(models, RegistrySource(), refresh_interval_s=60)
    for model in models:
        follower.refresh(model.name)
    assert follower.state("user_chrun").registry_error == (
        "reading aliases failed: user_chrun is not registered in the MLflow registry"
    )
    assert follower.state("user_churn").registry_error is None


def test_a_bind_address_that_does_not_resolve_names_the_variable(
    store: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("GATEWAY_HOST", "300.1.1.1")
    status, lines = start(["--model", "churn"], capsys)
    assert (status, lines[0].split(":")[0]) == (2, "GATEWAY_HOST")
    assert "cannot resolve '300.1.1.1'" in lines[0]
