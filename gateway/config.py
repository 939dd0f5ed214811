"""The gateway's configuration: parsed once, into types, with one error type."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.auth import TokenError, TokenSet, read_token_lines
from gateway.batching import FeatureMask
from policies.loader import PolicyError, describe_validation_error, load_policy
from policies.schema import MODEL_NAME_PATTERN, Task


class GatewayConfigError(ValueError):
    """A configuration that cannot be used; the message names the source and every bad field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServedModel(_Strict):
    """One registered model the gateway serves by alias."""

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    canary_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of requests the canary answers while a canary alias is set; the "
        "canary version's `rollout.canary_share` tag overrides it.",
    )
    hashed_features: tuple[str, ...] = Field(
        default=(),
        description="Feature columns the prediction log stores as a keyed hash (also read from "
        "the model's policy, `prediction_log.hashed_features`, with `policy_dir`).",
    )
    unlogged_features: tuple[str, ...] = Field(
        default=(), description="Feature columns the prediction log does not store at all."
    )
    task: Task | None = Field(
        default=None,
        description="What the model predicts (binary, multiclass, regression; also read from its "
        "policy, `model.task`, with `policy_dir`). A version answers per its own `lineage.task` "
        "tag; one tagged with another task is refused. Unset: untagged versions are binary.",
    )


class PredictionLogConfig(_Strict):
    """Where and how predictions are logged."""

    url: str = Field(default="sqlite:///predictions.db", description="SQLAlchemy URL.")
    db_schema: str | None = Field(
        default=None, description="Database schema of the tables (PostgreSQL); none for SQLite."
    )
    batch_size: int = Field(default=500, gt=0, description="Rows written per insert.")
    flush_interval_s: float = Field(
        default=1.0, gt=0, description="Longest a logged row waits before it is written."
    )
    writer: Literal["process", "thread"] = Field(
        default="process",
        description="Where rows are built and inserted: a child process of each serving process "
        "(off the request path's interpreter lock), or a thread of it.",
    )
    max_pending_rows: int = Field(
        default=200_000,
        gt=0,
        description="Rows kept in memory while the database is unreachable; older ones are "
        "dropped (and counted) past this.",
    )


class GatewayConfig(_Strict):
    """Everything the gateway needs; built from a YAML file, flags and environment variables."""

    models: list[ServedModel] = Field(min_length=1)
    refresh_interval_s: float = Field(
        default=10.0, gt=0, description="How often the registry's aliases are polled."
    )
    webhook_secret: str | None = Field(
        default=None,
        description="Secret of the MLflow webhook; the webhook endpoint is off without it.",
    )
    webhook_tolerance_s: int = Field(
        default=300, gt=0, description="Oldest webhook timestamp accepted (replay protection)."
    )
    shadow_queue_size: int = Field(
        default=10_000, gt=0, description="Requests waiting for shadow scoring; more are dropped."
    )
    shadow_batch_rows: int = Field(
        default=256, gt=0, description="Rows the shadow scores in one call."
    )
    shadow_max_wait_s: float = Field(
        default=0.05, ge=0, description="Longest a shadow job waits to be scored with others."
    )
    shutdown_timeout_s: float = Field(
        default=10.0, gt=0, description="Time allowed to drain the shadow queue on shutdown."
    )
    max_request_rows: int = Field(
        default=10_000, gt=0, description="Rows allowed in one request (and labels in one call)."
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="Processes serving requests (`auto`: one per core). Each loads every model "
        "and keeps its own shadow queue and log writer; they share only the prediction log's "
        "database.",
    )
    batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        description="Longest a small request waits to be scored with concurrent ones (only while "
        "others are on their way; a lone request never waits).",
    )
    batch_rows: int = Field(
        default=64, gt=0, description="Rows scored in one call when requests are batched."
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="Largest request body; a longer one is refused (413) while it is read, "
        "before anything parses it.",
    )
    api_tokens: tuple[SecretStr, ...] = Field(
        default=(),
        description="Bearer tokens the feedback and admin endpoints accept (several at once, for "
        "rotation); with none, those endpoints refuse every call.",
    )
    policy_dir: str | None = Field(
        default=None,
        description="Directory of the models' policy files (<name>.yaml): each served model's "
        "`prediction_log` masking is read from its policy.",
    )
    masking_key: SecretStr | None = Field(
        default=None,
        description="Key of the hash of masked features (GATEWAY_MASKING_KEY); required when a "
        "model hashes any.",
    )
    prediction_log: PredictionLogConfig = PredictionLogConfig()

    @model_validator(mode="after")
    def _hashing_needs_a_key(self) -> GatewayConfig:
        hashing = [model.name for model in self.models if model.hashed_features]
        if hashing and self.masking_key is None:
            raise ValueError(
                f"{', '.join(hashing)} hash features in the prediction log: set GATEWAY_MASKING_KEY "
                "(a long random secret; an unkeyed hash of a small set of values is reversible)"
            )
        return self

    def masks(self) -> dict[str, FeatureMask]:
        """Per served model, what its prediction-log rows keep of its features."""
        key = "" if self.masking_key is None else self.masking_key.get_secret_value()
        return {
            model.name: FeatureMask.of(model.hashed_features, model.unlogged_features, key)
            for model in self.models
            if model.hashed_features or model.unlogged_features
        }

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_workers(cls, value: object) -> object:
        return (os.cpu_count() or 1) if value == "auto" else value

    @field_validator("api_tokens")
    @classmethod
    def _usable_tokens(cls, tokens: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        try:
            TokenSet.of(token.get_secret_value() for token in tokens)
        except TokenError as error:
            raise ValueError(str(error)) from None
        return tokens

    def token_set(self) -> TokenSet:
        """The accepted tokens, ready for constant-time comparison."""
        return TokenSet.of(token.get_secret_value() for token in self.api_tokens)

    def served(self, name: str) -> ServedModel | None:
        """The configuration of a served model, or None when the gateway does not serve it."""
        return next((model for model in self.models if model.name == name), None)


def parse_config(raw: object, source: str) -> GatewayConfig:
    """Validate plain data (from YAML or JSON) into a GatewayConfig, listing every problem."""
    if not isinstance(raw, dict):
        raise GatewayConfigError(source, ["(top level): expected a mapping of settings"])
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as error:
        raise GatewayConfigError(
            source, describe_validation_error(error, "unknown setting (see gateway/README.md)")
        ) from None
    names = [model.name for model in config.models]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise GatewayConfigError(source, [f"models: served twice: {', '.join(duplicates)}"])
    if config.policy_dir is not None:
        return _with_policy_masking(raw, config.policy_dir, source)
    return config


def _with_policy_masking(raw: dict, policy_dir: str, source: str) -> GatewayConfig:
    """The config with each served model's masking from its policy added to the configured one."""
    models = []
    for model in raw["models"]:
        path = Path(policy_dir) / f"{model['name']}.yaml"
        try:
            policy = load_policy(path)
        except PolicyError as error:
            raise GatewayConfigError(source, [f"policy_dir: {error}"]) from None
        masking = policy.prediction_log
        if model.get("task") not in (None, policy.task):
            raise GatewayConfigError(
                source,
                [
                    f"models: {model['name']}: task {model['task']} but its policy says {policy.task}"
                ],
            )
        models.append(
            {
                **model,
                "task": policy.task,
                "hashed_features": [*model.get("hashed_features", ()), *masking.hashed_features],
                "unlogged_features": [
                    *model.get("unlogged_features", ()),
                    *masking.unlogged_features,
                ],
            }
        )
    return parse_config({**raw, "models": models, "policy_dir": None}, source)


def load_config_file(path: Path | str) -> dict:
    """Read a YAML configuration file into plain data (validated later by `parse_config`)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise GatewayConfigError(str(path), [f"cannot read: {error}"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise GatewayConfigError(str(path), ["(top level): expected a mapping of settings"])
    return raw


def parse_model_spec(spec: str) -> dict:
    """`name` or `name:share` (as given on the command line) into a served-model mapping."""
    name, _, share = spec.partition(":")
    return {"name": name} if not share else {"name": name, "canary_share": share}


def api_tokens_from_env(env: Mapping[str, str]) -> list[str] | None:
    """Tokens from `GATEWAY_API_TOKENS` (comma-separated) and the secrets file named by
    `GATEWAY_API_TOKENS_FILE` (one per line), together; None when neither is set."""
    tokens = [token.strip() for token in env.get("GATEWAY_API_TOKENS", "").split(",")]
    tokens = [token for token in tokens if token]
    path = env.get("GATEWAY_API_TOKENS_FILE")
    if path:
        try:
            tokens += read_token_lines(Path(path).read_text())
        except OSError as error:
            raise GatewayConfigError(
                "GATEWAY_API_TOKENS_FILE", [f"cannot read {path}: {error.strerror}"]
            ) from None
    return tokens or None
