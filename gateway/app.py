"""The HTTP edge: scoring by alias, feedback, webhooks, health and status."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import numpy as np
import pandas as pd
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from gateway.batching import LogEntry
from gateway.config import GatewayConfig
from gateway.holder import AliasFollower, Arms, LoadedVersion, VersionSource
from gateway.payload import Columns, PayloadError, SchemaMismatch, parse_payload
from gateway.predlog import (
    Label,
    LogTables,
    PredictionLogWriter,
    create_engine,
    log_tables,
    record_labels,
)
from gateway.routing import choose_role
from gateway.shadow import ShadowJob, ShadowRunner
from gateway.webhook import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookError,
    parse_event,
    verify,
)

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
ROUTING_KEY_HEADER = "X-Routing-Key"
# Requests up to this many rows are scored on the event loop: a thread hop would cost more than
# the model. Bigger ones go to the thread pool so they cannot stall other requests.
INLINE_ROWS = 64
_MAX_ID_LENGTH = 128


class FeedbackItem(BaseModel):
    """The ground truth of one answered request (of row `row_index` for a multi-row request)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=_MAX_ID_LENGTH)
    label: float
    row_index: int = Field(default=0, ge=0)


class FeedbackBody(BaseModel):
    """Either one item's fields at the top level or a list of items under `labels`."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, min_length=1, max_length=_MAX_ID_LENGTH)
    label: float | None = None
    row_index: int = Field(default=0, ge=0)
    labels: list[FeedbackItem] | None = None

    def items(self) -> list[FeedbackItem]:
        if self.labels is not None:
            if self.request_id is not None or self.label is not None:
                raise ValueError("give either request_id and label, or labels, not both")
            return self.labels
        if self.request_id is None or self.label is None:
            raise ValueError("give request_id and label (or a list under labels)")
        return [
            FeedbackItem(request_id=self.request_id, label=self.label, row_index=self.row_index)
        ]


@dataclass
class Services:
    """The long-lived parts the endpoints use, built from the config at startup."""

    config: GatewayConfig
    follower: AliasFollower
    shadow: ShadowRunner
    log: PredictionLogWriter
    engine: sa.Engine
    tables: LogTables


def create_app(config: GatewayConfig, source: VersionSource | None = None) -> FastAPI:
    """The gateway application; `source` reads the registry (the real one unless a test passes
    another)."""
    if source is None:
        from gateway.holder import RegistrySource

        source = RegistrySource()
    engine = create_engine(config.prediction_log.url)
    tables = log_tables(config.prediction_log.db_schema)
    log = PredictionLogWriter(
        engine,
        tables,
        batch_size=config.prediction_log.batch_size,
        flush_interval_s=config.prediction_log.flush_interval_s,
        max_pending_rows=config.prediction_log.max_pending_rows,
    )
    services = Services(
        config=config,
        follower=AliasFollower(config.models, source, refresh_interval_s=config.refresh_interval_s),
        shadow=ShadowRunner(
            log.submit,
            queue_size=config.shadow_queue_size,
            batch_rows=config.shadow_batch_rows,
            max_wait_s=config.shadow_max_wait_s,
        ),
        log=log,
        engine=engine,
        tables=tables,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.log.start()
        services.shadow.start()
        services.follower.start()
        yield
        # Uvicorn has stopped taking requests and finished the open ones: stop following, score
        # the queued shadow copies, then write every pending log row.
        services.follower.stop()
        services.shadow.close(config.shutdown_timeout_s)
        services.log.close()
        engine.dispose()

    app = FastAPI(title="Model serving gateway", lifespan=lifespan)
    app.state.services = services
    _routes(app, services)
    return app


def _routes(app: FastAPI, services: Services) -> None:
    follower, config = services.follower, services.config

    @app.get("/health")
    async def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        """Readiness: every served model has a champion loaded."""
        waiting = [name for name in follower.model_names if follower.arms(name).champion is None]
        body = {"ready": not waiting, "waiting_for_champion": waiting}
        return JSONResponse(body, status_code=503 if waiting else 200)

    @app.get("/models")
    async def models() -> dict:
        """Status of every served model."""
        return {"models": [_status(services, name) for name in follower.model_names]}

    @app.get("/models/{name}")
    async def model(name: str) -> dict:
        """Status of one model: versions per role, canary share, errors, shadow counts."""
        _arms_or_404(follower, name)
        return _status(services, name)

    @app.post("/models/{name}/invocations")
    async def invocations(name: str, request: Request) -> Response:
        """Score a MLflow scoring payload with the champion or, for its share, the canary."""
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        if len(request_id) > _MAX_ID_LENGTH:
            raise HTTPException(400, f"{REQUEST_ID_HEADER} is longer than {_MAX_ID_LENGTH}")
        routing_key = request.headers.get(ROUTING_KEY_HEADER)
        arms = _arms_or_404(follower, name)
        columns = _columns(await request.body(), config.max_request_rows)
        if arms.champion is None:
            raise HTTPException(503, f"model {name!r} has no champion loaded yet; retry shortly")
        role = choose_role(
            name, routing_key or request_id, arms.canary_share, arms.canary is not None
        )
        answering = arms.canary if role == "canary" else arms.champion
        at = datetime.now(UTC)
        answered = partial(
            LogEntry,
            request_id=request_id,
            model_name=name,
            version=answering.version,
            role=role,
            routing_key=routing_key,
            at=at,
        )
        try:
            if columns.n_rows <= INLINE_ROWS:
                frame, scores, latency_ms = _score(answering, columns)
            else:
                frame, scores, latency_ms = await run_in_threadpool(_score, answering, columns)
        except Exception as error:
            # Logged against the arm, so a rollout sees a canary that fails where the champion
            # does not; the caller still gets the 4xx (or 500) it raised.
            detail = str(error.detail) if isinstance(error, HTTPException) else repr(error)
            services.log.submit(answered(features=None, scores=None, latency_ms=0.0, error=detail))
            raise
        predictions = scores.tolist()
        services.log.submit(answered(features=frame, scores=predictions, latency_ms=latency_ms))
        if arms.shadow is not None:
            services.shadow.submit(
                ShadowJob(
                    request_id=request_id,
                    routing_key=routing_key,
                    columns=columns,
                    shadow=arms.shadow,
                    at=at,
                )
            )
        body = {
            "predictions": predictions,
            "request_id": request_id,
            "model": name,
            "version": answering.version,
            "role": role,
        }
        return Response(
            json.dumps(body),
            media_type="application/json",
            headers={REQUEST_ID_HEADER: request_id},
        )

    @app.post("/models/{name}/feedback")
    async def feedback(name: str, request: Request) -> dict:
        """Store ground-truth labels of answered requests, joined to the log by request id."""
        _arms_or_404(follower, name)
        try:
            items = FeedbackBody.model_validate_json(await request.body()).items()
        except (ValidationError, ValueError) as error:
            raise HTTPException(422, _message(error)) from None
        labels = [
            Label(request_id=i.request_id, label=i.label, row_index=i.row_index) for i in items
        ]
        await run_in_threadpool(record_labels, services.engine, services.tables, name, labels)
        return {"stored": len(labels)}

    @app.post("/webhooks/mlflow")
    async def webhook(request: Request) -> dict:
        """An MLflow registry webhook: verified, then the named model is refreshed at once."""
        if config.webhook_secret is None:
            raise HTTPException(404, "webhooks are off: set a webhook secret to receive them")
        body = await request.body()
        try:
            verify(
                config.webhook_secret,
                delivery_id=request.headers.get(DELIVERY_ID_HEADER),
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                signature=request.headers.get(SIGNATURE_HEADER),
                body=body,
                now=time.time(),
                tolerance_s=config.webhook_tolerance_s,
            )
            event = parse_event(body)
        except WebhookError as error:
            raise HTTPException(401, str(error)) from None
        served = event.model_name in follower.model_names
        if event.relevant and served:
            follower.request_refresh(event.model_name)
        return {"refreshing": event.relevant and served}

    @app.post("/admin/refresh")
    async def refresh(model: str | None = None) -> dict:
        """Read the registry now (one model or all) instead of at the next poll."""
        if model is not None:
            _arms_or_404(follower, model)
        follower.request_refresh(model)
        return {"refreshing": [model] if model else follower.model_names}


def _arms_or_404(follower: AliasFollower, name: str) -> Arms:
    arms = follower.arms(name)
    if arms is None:
        raise HTTPException(
            404, f"model {name!r} is not served here; served: {', '.join(follower.model_names)}"
        )
    return arms


def _columns(body: bytes, max_rows: int) -> Columns:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None
    try:
        return parse_payload(payload, max_rows)
    except PayloadError as error:
        raise HTTPException(400, str(error)) from None


def _score(version: LoadedVersion, columns: Columns) -> tuple[pd.DataFrame, np.ndarray, float]:
    try:
        frame = version.frame(columns)
    except SchemaMismatch as error:
        raise HTTPException(
            422, f"{version.model_name} version {version.version}: {error}"
        ) from None
    started = time.perf_counter()
    try:
        scores = version.score(frame)
    except (ValueError, TypeError) as error:
        # Input that fits the signature but not the pipeline (e.g. a missing value where the
        # model has no imputer) is still the caller's to fix.
        raise HTTPException(
            422, f"{version.model_name} version {version.version} cannot score the input: {error}"
        ) from None
    return frame, scores, (time.perf_counter() - started) * 1000


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'body'}: {item['msg']}"
            for item in error.errors()
        )
    return str(error)


def _status(services: Services, name: str) -> dict:
    state = services.follower.state(name)
    arms = state.arms
    shadow = services.shadow.stats(name)
    return {
        "model": name,
        "champion": arms.version_of("champion"),
        "canary": arms.version_of("canary"),
        "shadow": arms.version_of("shadow"),
        "canary_share": arms.canary_share if arms.canary is not None else 0.0,
        "configured_canary_share": state.served.canary_share,
        "canary_share_note": state.share_note,
        "refreshed_at": state.refreshed_at.isoformat() if state.refreshed_at else None,
        "registry_error": state.registry_error,
        "load_errors": {str(version): error for version, error in state.load_errors.items()},
        "shadow_scored": shadow.scored,
        "shadow_failed": shadow.failed,
        "shadow_dropped": shadow.dropped,
        "shadow_last_error": shadow.last_error,
        "log_pending_rows": services.log.pending_rows,
        "log_rows_written": services.log.rows_written,
        "log_rows_dropped": services.log.rows_dropped,
    }
