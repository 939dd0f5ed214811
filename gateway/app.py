"""The HTTP edge: scoring by alias, feedback, webhooks, health and status."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import numpy as np
import sqlalchemy as sa
import uuid6
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.answered import FAILED, RESERVED, AnsweredRequests
from gateway.auth import TokenSet
from gateway.batching import LogEntry
from gateway.config import GatewayConfig
from gateway.holder import AliasFollower, Answers, Arms, LoadedVersion, VersionSource
from gateway.limits import BodyLimit
from gateway.microbatch import MicroBatcher
from gateway.openapi import SCORING_MEDIA_TYPES, SCORING_REQUEST_BODY
from gateway.payload import (
    Columns,
    PayloadError,
    SchemaMismatch,
    parse_csv,
    parse_payload,
    shown,
)
from gateway.predlog import (
    CHAMPION_PAIRED,
    CLASS_LENGTH,
    Label,
    LabelConflict,
    LogTables,
    PredictionLogWriter,
    answered_rows,
    create_engine,
    log_tables,
    record_labels,
    request_logged,
)
from gateway.routing import choose_role
from gateway.shadow import ShadowJob, ShadowRunner
from gateway.siblings import SiblingRefreshes
from gateway.webhook import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryLog,
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
# Bodies larger than this are parsed in the thread pool, so parsing never stalls the event loop.
INLINE_BODY_BYTES = 64 * 1024
_MAX_ID_LENGTH = 128
_MAX_ROUTING_KEY_LENGTH = 256  # the log's column
_MAX_DETAIL_CHARS = 500
BINARY_LABELS = (0.0, 1.0)


@dataclass(frozen=True)
class LabelRule:
    """What a label of a model must be: its task, and for multiclass the classes it may name."""

    task: str = "binary"
    classes: tuple[str, ...] = ()

    def check(self, value: object) -> float | str:
        """The label as stored (a number or a class name); ValueError saying what is expected."""
        if self.task == "multiclass":
            return self._class(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self._expected()}, got {shown(value)}")
        if self.task == "regression":
            if not np.isfinite(value):
                raise ValueError(f"{self._expected()}, got {shown(value)}")
            return float(value)
        if value not in BINARY_LABELS:
            raise ValueError(f"{self._expected()}, got {shown(value)}")
        return float(value)

    def _class(self, value: object) -> str:
        # A class is named as the model answers it: a string, or an integer class as a number.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"{self._expected()}, got {shown(value)}")
        name = str(value)
        if self.classes and name not in self.classes:
            raise ValueError(f"{self._expected()}, got {shown(value)}")
        if len(name) > CLASS_LENGTH:
            raise ValueError(f"a class name is at most {CLASS_LENGTH} characters")
        return name

    def _expected(self) -> str:
        if self.task == "regression":
            return "a label of a regression model is a finite number"
        if self.task == "multiclass":
            known = f" ({shown(', '.join(self.classes), 200)})" if self.classes else ""
            return f"a label of a multiclass classifier is one of its classes{known}"
        return "a label of a binary classifier is 0 or 1"


def _checked_label(value: object, info: ValidationInfo) -> float | str:
    rule = (info.context or {}).get("rule", LabelRule())
    return rule.check(value)


class FeedbackItem(BaseModel):
    """The ground truth of one answered request (of row `row_index` for a multi-row request);
    `overwrite` replaces an earlier, different label (a recorded correction). The label is
    checked against the model's task (validation context `rule`, a `LabelRule`)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=_MAX_ID_LENGTH)
    label: float | str
    row_index: int = Field(default=0, ge=0)
    overwrite: bool = False

    @field_validator("label", mode="before")
    @classmethod
    def _of_the_task(cls, value: object, info: ValidationInfo) -> float | str:
        return _checked_label(value, info)


class FeedbackBody(BaseModel):
    """Either one item's fields at the top level or a list of items under `labels`."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, min_length=1, max_length=_MAX_ID_LENGTH)
    label: float | str | None = None
    row_index: int = Field(default=0, ge=0)
    overwrite: bool = False
    labels: list[FeedbackItem] | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _of_the_task(cls, value: object, info: ValidationInfo) -> float | str | None:
        return None if value is None else _checked_label(value, info)

    def items(self) -> list[FeedbackItem]:
        if self.labels is not None:
            if self.request_id is not None or self.label is not None:
                raise ValueError("give either request_id and label, or labels, not both")
            return self.labels
        if self.request_id is None or self.label is None:
            raise ValueError("give request_id and label (or a list under labels)")
        # The fields were validated here, with the same constraints (and the model's label rule).
        return [
            FeedbackItem.model_construct(
                request_id=self.request_id,
                label=self.label,
                row_index=self.row_index,
                overwrite=self.overwrite,
            )
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
    tokens: TokenSet
    answered: AnsweredRequests
    deliveries: DeliveryLog
    batcher: MicroBatcher
    siblings: SiblingRefreshes | None = None


def create_worker_app() -> FastAPI:
    """One worker's application under `--workers N`: the main process's settings, resolved again
    in this process."""
    from gateway.__main__ import worker_config

    return create_app(worker_config())


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
        masks=config.masks(),
        in_process=config.prediction_log.writer == "thread",
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
        tokens=config.token_set(),
        answered=AnsweredRequests(),
        deliveries=DeliveryLog(config.webhook_tolerance_s),
        batcher=MicroBatcher(
            _score,
            _rows_of,
            max_rows=config.batch_rows,
            max_wait_s=config.batch_wait_ms / 1000,
        ),
    )
    if config.workers > 1:
        services.siblings = SiblingRefreshes(
            engine,
            tables,
            services.follower.model_names,
            services.follower.request_refresh,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.log.start()
        services.shadow.start()
        services.follower.start()
        if services.siblings is not None:
            services.siblings.start()
        yield
        # Uvicorn has stopped taking requests and finished the open ones: stop following, score
        # the queued shadow copies, then write every pending log row.
        if services.siblings is not None:
            services.siblings.stop()
        services.follower.stop()
        services.shadow.close(config.shutdown_timeout_s)
        services.log.close()
        engine.dispose()

    app = FastAPI(title="Model serving gateway", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.state.services = services

    @app.exception_handler(StarletteHTTPException)
    async def clipped(request: Request, error: StarletteHTTPException) -> Response:
        """Every refusal's message, cut short: a message never echoes a large input back."""
        detail = str(error.detail)
        if len(detail) > _MAX_DETAIL_CHARS:
            detail = f"{detail[: _MAX_DETAIL_CHARS - 1]}…"
        return JSONResponse({"detail": detail}, error.status_code, headers=error.headers)

    _routes(app, services)
    return app


def _routes(app: FastAPI, services: Services) -> None:
    follower, config = services.follower, services.config

    @app.get("/health")
    async def health() -> dict:
        """Liveness: the process answers (`worker`: which process, under `--workers N`)."""
        return {"status": "ok", "worker": os.getpid()}

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

    @app.post("/models/{name}/invocations", openapi_extra=SCORING_REQUEST_BODY)
    async def invocations(name: str, request: Request) -> Response:
        """Score a MLflow scoring payload with the champion or, for its share, the canary."""
        services.batcher.entered()
        try:
            return await score_request(name, request)
        finally:
            services.batcher.left()

    async def score_request(name: str, request: Request) -> Response:
        media_type = _scoring_media_type(request)
        given_id = request.headers.get(REQUEST_ID_HEADER)
        request_id = given_id or new_request_id()
        if len(request_id) > _MAX_ID_LENGTH:
            raise HTTPException(400, f"{REQUEST_ID_HEADER} is longer than {_MAX_ID_LENGTH}")
        routing_key = request.headers.get(ROUTING_KEY_HEADER)
        if routing_key is not None and len(routing_key) > _MAX_ROUTING_KEY_LENGTH:
            raise HTTPException(
                400, f"{ROUTING_KEY_HEADER} is longer than {_MAX_ROUTING_KEY_LENGTH}"
            )
        arms = _arms_or_404(follower, name)
        body = await request.body()
        if len(body) > INLINE_BODY_BYTES:
            columns = await run_in_threadpool(_columns, body, config.max_request_rows, media_type)
        else:
            columns = _columns(body, config.max_request_rows, media_type)
        if arms.champion is None:
            raise HTTPException(503, f"model {name!r} has no champion loaded yet; retry shortly")
        await _claim(services, name, request_id, caller_given=given_id is not None)
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
                values, answers, latency_ms = await services.batcher.score(answering, columns)
            else:
                values, answers, latency_ms = await run_in_threadpool(_score, answering, columns)
        except Exception as error:
            # Logged against the arm, so a rollout sees a canary that fails where the champion
            # does not; the caller still gets the 4xx (or 500) it raised.
            detail = str(error.detail) if isinstance(error, HTTPException) else repr(error)
            services.log.submit(answered(features=None, scores=None, latency_ms=0.0, error=detail))
            services.answered.settle(name, request_id, FAILED)
            raise
        predictions = answers.predictions
        services.log.submit(
            answered(
                features=values,
                scores=answers.scores,
                classes=answers.classes,
                probabilities=answers.probabilities,
                latency_ms=latency_ms,
            )
        )
        services.answered.settle(name, request_id, len(predictions))
        # Copies scored off the request path, never awaited: the shadow's, and during a canary
        # the champion's of the canary's request (paired evidence for the rollout).
        copy = partial(
            ShadowJob, request_id=request_id, routing_key=routing_key, columns=columns, at=at
        )
        if arms.shadow is not None:
            services.shadow.submit(copy(shadow=arms.shadow))
        if role == "canary":
            services.shadow.submit(copy(shadow=arms.champion, role=CHAMPION_PAIRED))
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

    @app.post("/invocations", openapi_extra=SCORING_REQUEST_BODY)
    async def mlflow_invocations(request: Request) -> Response:
        """MLflow's scoring-server path, for a client written for `mlflow models serve`: the
        gateway's one model (with several, each is at /models/{name}/invocations)."""
        names = follower.model_names
        if len(names) != 1:
            raise HTTPException(
                404,
                f"this gateway serves {len(names)} models ({', '.join(names)}); "
                "post to /models/{name}/invocations",
            )
        return await invocations(names[0], request)

    @app.get("/ping")
    async def ping() -> Response:
        """MLflow's scoring-server health path: 200 once every served model has a champion."""
        return await ready()

    @app.post("/models/{name}/feedback")
    async def feedback(name: str, request: Request) -> dict:
        """Store ground-truth labels of rows this gateway answered, joined to the log by request
        id; the first label of a row stands unless a later one says `overwrite`."""
        caller = _authorized(services.tokens, request)
        _require_json(request)
        rule = _label_rule(follower, name)
        body = await request.body()
        try:
            if len(body) > INLINE_BODY_BYTES:
                items = await run_in_threadpool(_feedback_items, body, rule)
            else:
                items = _feedback_items(body, rule)
        except (ValidationError, ValueError) as error:
            raise HTTPException(422, _message(error)) from None
        if len(items) > config.max_request_rows:
            raise HTTPException(
                413, f"{len(items)} labels, more than the limit of {config.max_request_rows}"
            )
        await _check_answered(services, name, items)
        labels = [
            Label(
                request_id=i.request_id, label=i.label, row_index=i.row_index, overwrite=i.overwrite
            )
            for i in items
        ]
        try:
            done = await run_in_threadpool(
                partial(record_labels, by=caller),
                services.engine,
                services.tables,
                name,
                labels,
            )
        except LabelConflict as conflict:
            raise HTTPException(409, str(conflict)) from None
        return {"stored": done.stored, "unchanged": done.unchanged, "corrected": done.corrected}

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
        delivery_id = request.headers[DELIVERY_ID_HEADER]
        if not services.deliveries.first_time(delivery_id, time.time()):
            raise HTTPException(409, "this webhook delivery was received before; not acted on")
        served = event.model_name in follower.model_names
        if event.relevant and served:
            await _refresh_everywhere(services, [event.model_name])
        return {"refreshing": event.relevant and served}

    @app.post("/admin/refresh")
    async def refresh(request: Request, model: str | None = None) -> dict:
        """Read the registry now (one model or all) instead of at the next poll."""
        _authorized(services.tokens, request)
        if model is not None:
            _arms_or_404(follower, model)
        names = [model] if model else follower.model_names
        await _refresh_everywhere(services, names)
        return {"refreshing": names}


async def _refresh_everywhere(services: Services, names: list[str]) -> None:
    """Refresh the models in this worker now, and ask the other workers to do the same."""
    for name in names:
        services.follower.request_refresh(name)
    if services.siblings is None:
        return
    try:
        await run_in_threadpool(services.siblings.announce, names)
    except sa.exc.SQLAlchemyError as error:
        logger.warning("could not ask the other workers to refresh (they poll): %s", error)


def _arms_or_404(follower: AliasFollower, name: str) -> Arms:
    arms = follower.arms(name)
    if arms is None:
        raise HTTPException(
            404,
            f"model {shown(name)} is not served here; served: {', '.join(follower.model_names)}",
        )
    return arms


def _authorized(tokens: TokenSet, request: Request) -> str:
    """The fingerprint of the caller's bearer token; 401 without a valid one, 403 when the
    gateway has no tokens configured (labels and admin calls are then off)."""
    if not tokens:
        raise HTTPException(
            403,
            "labels and admin calls are off: no API token is configured "
            "(GATEWAY_API_TOKENS or GATEWAY_API_TOKENS_FILE)",
        )
    caller = tokens.caller(request.headers.get("authorization"))
    if caller is None:
        raise HTTPException(
            401,
            "send a valid API token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


def _media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def _scoring_media_type(request: Request) -> str:
    """The scoring body's media type: JSON or CSV, as `mlflow models serve` takes them (415
    otherwise; a browser cannot send either cross-site without asking first)."""
    media_type = _media_type(request)
    if media_type not in SCORING_MEDIA_TYPES:
        raise HTTPException(415, "send the body as Content-Type: application/json or text/csv")
    return media_type


def _require_json(request: Request) -> None:
    # A browser sends text/plain or a form cross-site without asking first; JSON it cannot.
    if _media_type(request) != "application/json":
        raise HTTPException(415, "send the body as Content-Type: application/json")


def new_request_id() -> str:
    """A fresh request id: a UUIDv7 (RFC 9562) in hex, unguessable (74 random bits) and led by
    the time in milliseconds, each process's in the order it gives them, so the prediction log's
    and the labels' keys grow at their end. Random ids (UUIDv4) put every row's key on another
    page of those indexes: a log write cost twice as much on a log of 200,000 rows."""
    return uuid6.uuid7().hex


async def _claim(services: Services, name: str, request_id: str, *, caller_given: bool) -> None:
    """Reserve a request id for this request; 409 when it answered (or logged) one before."""
    reused = HTTPException(
        409, f"{REQUEST_ID_HEADER} {shown(request_id)} was used before; send a new one"
    )
    if not services.answered.reserve(name, request_id):
        raise reused
    if not caller_given:
        return  # a fresh id
    try:
        logged = await run_in_threadpool(
            request_logged, services.engine, services.tables, name, request_id
        )
    except sa.exc.SQLAlchemyError as error:
        # The log's database is down: answer anyway (the writer keeps the rows); a reuse is then
        # caught when the row is written, and counted.
        logger.warning("could not check %s for reuse: %s", REQUEST_ID_HEADER, error)
        return
    if logged:
        # Known from the log: its answer (and labels) are looked up there, not in memory.
        services.answered.release(name, request_id)
        raise reused


def _feedback_items(body: bytes, rule: LabelRule) -> list[FeedbackItem]:
    return FeedbackBody.model_validate_json(body, context={"rule": rule}).items()


def _label_rule(follower: AliasFollower, name: str) -> LabelRule:
    """What a label of the model must be: its configured task, else its loaded versions' (the
    classes any of them answers are accepted)."""
    arms = _arms_or_404(follower, name)
    loaded = [version for version in (arms.champion, arms.canary, arms.shadow) if version]
    task = follower.state(name).served.task or (loaded[0].task if loaded else "binary")
    classes = {str(c): None for version in loaded if version.task == task for c in version.classes}
    return LabelRule(task, tuple(classes) if task == "multiclass" else ())


async def _check_answered(services: Services, name: str, items: list[FeedbackItem]) -> None:
    """422 unless every label names a row this gateway answered (a champion or canary row)."""
    rows: dict[str, int | None] = {
        request_id: services.answered.rows(name, request_id)
        for request_id in dict.fromkeys(item.request_id for item in items)
    }
    unknown = [request_id for request_id, count in rows.items() if count is None]
    # With several workers a label may reach this one before the worker that answered has
    # written the row: it is in the log within that worker's flush interval.
    patience_s = (
        2 * services.config.prediction_log.flush_interval_s + 1
        if services.config.workers > 1
        else 0.0
    )
    deadline = time.monotonic() + patience_s
    while unknown:
        logged = await run_in_threadpool(
            answered_rows, services.engine, services.tables, name, unknown
        )
        rows.update(logged)
        unknown = [request_id for request_id in unknown if request_id not in logged]
        if not unknown or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(0.1, services.config.prediction_log.flush_interval_s / 4))
    problems = []
    for item in items:
        count = rows.get(item.request_id)
        if count is None or count == RESERVED:
            problems.append(f"request {shown(item.request_id)} was not answered by this gateway")
        elif count == FAILED:
            problems.append(f"request {shown(item.request_id)} failed; it has no prediction")
        elif item.row_index >= count:
            problems.append(
                f"request {shown(item.request_id)} had {count} row(s); no row {item.row_index}"
            )
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise HTTPException(422, f"nothing stored: {'; '.join(dict.fromkeys(problems[:3]))}{more}")


def _columns(body: bytes, max_rows: int, media_type: str = "application/json") -> Columns:
    if media_type == "text/csv":
        try:
            return parse_csv(body, max_rows)
        except PayloadError as error:
            raise HTTPException(400, str(error)) from None
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"body is not valid JSON: {shown(str(error), 120)}") from None
    except RecursionError:
        raise HTTPException(400, "body is not valid JSON: nested too deeply") from None
    try:
        return parse_payload(payload, max_rows)
    except PayloadError as error:
        raise HTTPException(400, str(error)) from None


def _score(version: LoadedVersion, columns: Columns) -> tuple[dict[str, list], Answers, float]:
    try:
        values, frame = version.inputs(columns)
    except SchemaMismatch as error:
        raise HTTPException(
            422, f"{version.model_name} version {version.version}: {error}"
        ) from None
    started = time.perf_counter()
    try:
        answers = version.answer(frame)
    except (ValueError, TypeError) as error:
        # Input that fits the signature but not the pipeline (e.g. a missing value where the
        # model has no imputer) is still the caller's to fix.
        raise HTTPException(
            422, f"{version.model_name} version {version.version} cannot score the input: {error}"
        ) from None
    return values, answers, (time.perf_counter() - started) * 1000


def _rows_of(
    scored: tuple[dict[str, list], Answers, float], start: int, end: int
) -> tuple[dict[str, list], Answers, float]:
    """One request's share [start, end) of a batch's input values and answers."""
    values, answers, latency_ms = scored
    return (
        {name: column[start:end] for name, column in values.items()},
        answers.rows(start, end),
        latency_ms,
    )


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
    paired = services.shadow.stats(name, CHAMPION_PAIRED)
    return {
        "model": name,
        "worker": os.getpid(),
        "champion": arms.version_of("champion"),
        "canary": arms.version_of("canary"),
        "shadow": arms.version_of("shadow"),
        "canary_share": arms.canary_share if arms.canary is not None else 0.0,
        "configured_canary_share": state.served.canary_share,
        "canary_share_note": state.share_note,
        "scoring_paths": {
            role: loaded.scoring_path
            for role in ("champion", "canary", "shadow")
            if (loaded := getattr(arms, role)) is not None
        },
        "refreshed_at": state.refreshed_at.isoformat() if state.refreshed_at else None,
        "registry_error": state.registry_error,
        "load_errors": {str(version): error for version, error in state.load_errors.items()},
        "shadow_scored": shadow.scored,
        "shadow_failed": shadow.failed,
        "shadow_dropped": shadow.dropped,
        "shadow_last_error": shadow.last_error,
        "paired_scored": paired.scored,
        "paired_failed": paired.failed,
        "paired_dropped": paired.dropped,
        "paired_last_error": paired.last_error,
        "log_pending_rows": services.log.pending_rows,
        "log_rows_written": services.log.rows_written,
        "log_rows_dropped": services.log.rows_dropped,
    }
