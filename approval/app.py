"""The approval endpoint: Slack interactivity requests in, recorded decisions out.

Every request is checked in this order, and refused with nothing recorded at the first failure:
size (400), Slack signature and timestamp (401), shape (400), replay (403), the stored request
and the button's model and version (400), whether the request is still open (403), the approver
list and separation of duties (403), and for an approval whether its evidence is still fresh
(403, or 503 when the registry cannot be read). Only then is the vote written,
in one transaction with the Slack request it came in, and the message and Airflow updated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.concurrency import run_in_threadpool

from approval import hitl
from approval.airflow_api import AirflowHITLError, AlreadyAnswered, HITLResponder
from approval.decisions import check_reference, check_vote, stale_reason
from approval.messages import ACTION_CHOICES, Message, outcome_message, pending_message
from approval.records import Choice, CurrentAliases, Outcome, Vote, Voter
from approval.reference import ButtonRef, MalformedReference
from approval.slack import SlackApprovalHook, SlackDeliveryError
from approval.store import DecisionStore, StoredRequest, VoteNotRecorded, VoteRecorded

log = logging.getLogger(__name__)

INTERACTIONS_PATH = "/slack/interactions"
DEFAULT_MAX_BODY_BYTES = 64 * 1024

AliasReader = Callable[[str], CurrentAliases]


class _Refused(Exception):
    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class _Click:
    voter: Voter
    choice: Choice
    ref: ButtonRef


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


def create_app(
    *,
    signing_secret: str,
    store: DecisionStore,
    slack: SlackApprovalHook,
    airflow: HITLResponder,
    alias_reader: AliasReader | None = None,
    clock: Callable[[], float] = time.time,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The FastAPI app; every collaborator is passed in so tests can point them anywhere.

    `alias_reader`, when given, reads the model's current `champion` and `challenger` so a click
    on evidence that went stale is refused at once; the promotion task checks again either way.
    """
    verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
    app = FastAPI(title="Promotion approvals", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> dict:
        """Liveness probe for docker-compose and load balancers."""
        return {"ok": True}

    @app.post(INTERACTIONS_PATH)
    async def interactions(request: Request) -> JSONResponse:
        try:
            body = await _read_limited(request, max_body_bytes)
            _verify(verifier, body, request.headers)
            click = _parse(body)
        except _Refused as refused:
            return _refusal(refused, user=None)
        interaction_id = hashlib.sha256(request.headers["x-slack-signature"].encode()).hexdigest()
        # Store, Slack and Airflow calls block; run them off the event loop.
        return await run_in_threadpool(_handle, click, interaction_id)

    def _handle(click: _Click, interaction_id: str) -> JSONResponse:
        try:
            recorded = _record(click, interaction_id)
        except _Refused as refused:
            return _refusal(refused, user=click.voter.user_id)
        return _announce(recorded, click)

    def _record(click: _Click, interaction_id: str) -> VoteRecorded:
        if store.is_consumed(interaction_id):
            raise _Refused(403, "replayed", "this Slack request was already used")
        stored = store.get(click.ref.request_id)
        if stored is None:
            raise _Refused(400, "unknown_request", f"no approval request {click.ref.request_id}")
        refusal = check_reference(stored.request, click.ref) or check_vote(
            stored.config,
            stored.request,
            status=stored.status,
            voter=click.voter,
            choice=click.choice,
            votes=stored.votes,
            expires_at=stored.expires_at,
            now=datetime.fromtimestamp(clock(), UTC),
        )
        if refusal is not None:
            status = 400 if refusal.kind == "wrong_button" else 403
            raise _Refused(status, refusal.kind, refusal.reason)
        if click.choice == "approve" and alias_reader is not None:
            _refuse_stale(stored)
        vote = Vote(
            click.voter.user_id,
            click.voter.user_name,
            click.choice,
            datetime.fromtimestamp(clock(), UTC),
        )
        try:
            return store.record_vote(
                stored.request.request_id, interaction_id=interaction_id, vote=vote
            )
        except VoteNotRecorded as error:
            raise _Refused(403, error.kind, str(error)) from error

    def _refuse_stale(stored: StoredRequest) -> None:
        assert alias_reader is not None
        try:
            current = alias_reader(stored.request.model)
        except Exception as error:
            # Fail closed: an approval that cannot be checked against the registry is not taken.
            log.exception("could not read the aliases of %s", stored.request.model)
            raise _Refused(
                503, "registry_unavailable", f"cannot read the registry to check freshness: {error}"
            ) from error
        stale = stale_reason(stored.request.evidence, current)
        if stale is not None:
            raise _Refused(403, "stale", f"the evidence is stale: {stale}")

    def _announce(recorded: VoteRecorded, click: _Click) -> JSONResponse:
        stored = recorded.stored
        log.info(
            "%s %ss request %s (%s v%s): %s",
            click.voter.user_id,
            click.choice,
            stored.request.request_id,
            stored.request.model,
            stored.request.challenger_version,
            recorded.tally.status,
        )
        if not recorded.concluded:
            _tell_slack(
                stored,
                pending_message(
                    stored.request,
                    quorum=stored.config.quorum,
                    expires_at=stored.expires_at,
                    tally=recorded.tally,
                ),
            )
            return JSONResponse({"ok": True, "status": "pending"})
        decided_by = recorded.tally.rejections or recorded.tally.approvals
        airflow_note = _answer_airflow(stored, recorded.tally.status, decided_by)
        status = "approved" if recorded.tally.status == "approved" else "rejected"
        reason = (
            "the promotion task re-checks the registry before it moves champion"
            if status == "approved"
            else "nothing will be promoted"
        )
        if airflow_note:
            reason = f"{reason}; {airflow_note}"
        shown = Outcome(
            stored.request.request_id,
            status,
            tuple(decided_by),
            datetime.fromtimestamp(clock(), UTC),
            reason,
            stored.votes,
        )
        _tell_slack(stored, outcome_message(stored.request, shown))
        if airflow_note:
            return JSONResponse(
                {"ok": False, "status": status, "error": "airflow", "detail": airflow_note},
                status_code=502,
            )
        return JSONResponse({"ok": True, "status": status})

    def _answer_airflow(stored: StoredRequest, status: str, decided_by: tuple[str, ...]) -> str:
        try:
            airflow.respond(
                stored.request.task,
                chosen_option=hitl.APPROVE if status == "approved" else hitl.REJECT,
                params_input={
                    hitl.PARAM_REQUEST_ID: stored.request.request_id,
                    hitl.PARAM_DECIDED_BY: ",".join(decided_by),
                    hitl.PARAM_COMMENT: "",
                },
            )
        except AlreadyAnswered as error:
            log.warning("%s", error)
            return "the Airflow task had already been answered (in the Airflow UI?)"
        except AirflowHITLError as error:
            log.error("decision recorded but Airflow was not answered: %s", error)
            return (
                "the decision is recorded but Airflow did not take it; answer the task in the "
                "Airflow UI, or it expires as rejected"
            )
        store.mark_answered(stored.request.request_id, now=datetime.fromtimestamp(clock(), UTC))
        return ""

    def _tell_slack(stored: StoredRequest, message: Message) -> None:
        if stored.message is None:
            return
        try:
            slack.update_message(stored.message, message)
        except SlackDeliveryError as error:
            log.warning("decision recorded but the Slack message was not updated: %s", error)

    return app


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _Refused(400, "oversized", f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Refused(400, "oversized", f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _verify(verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]) -> None:
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not _plain_timestamp(timestamp) or not _plain_signature(signature):
        raise _Refused(401, "unsigned", "missing or malformed Slack signature headers")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Refused(400, "malformed", "body is not UTF-8") from error
    if not verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
        raise _Refused(
            401, "bad_signature", "Slack signature invalid or timestamp over 5 minutes off"
        )


def _plain_timestamp(value: str | None) -> bool:
    # ASCII digits only (str.isdigit also takes other scripts' digits), and short: int() of a very
    # long one raises, and no real clock needs more than 12 digits.
    if not value or not value.isascii():
        return False
    return value.isdigit() and len(value) <= 12


def _plain_signature(value: str | None) -> bool:
    # Slack's is `v0=` and 64 hex digits; anything else could never match, and a non-ASCII one
    # would make the constant-time comparison raise instead of answer.
    if not value or not value.isascii() or len(value) != 67 or not value.startswith("v0="):
        return False
    return all(c in "0123456789abcdef" for c in value[3:])


def _parse(body: bytes) -> _Click:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=4)
        (raw,) = form["payload"]
        payload = json.loads(raw)
        if payload.get("type") != "block_actions":
            raise ValueError("not a block_actions payload")
        (action,) = payload["actions"]
        choice = ACTION_CHOICES[action["action_id"]]
        ref = ButtonRef.decode(action["value"])
        user = payload["user"]
        user_id = user["id"]
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("no user id")
        user_name = user.get("username") or user.get("name") or ""
    except (
        MalformedReference,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        UnicodeDecodeError,
        RecursionError,
    ) as error:
        detail = str(error)[:200]
        raise _Refused(400, "malformed", f"not an approval button click: {detail}") from error
    return _Click(Voter(user_id, str(user_name)), choice, ref)  # type: ignore[arg-type]


def _refusal(refused: _Refused, *, user: str | None) -> JSONResponse:
    log.warning(
        "refused %s from %s: %s", refused.kind, user or "an unverified sender", refused.detail
    )
    return JSONResponse(
        {"ok": False, "error": refused.kind, "detail": refused.detail}, status_code=refused.status
    )
