"""The request-body limit, enforced in the ASGI receive loop: a body over the limit is refused
(413) as soon as its declared length or the bytes received so far pass it, so nothing ever holds
or parses more than the limit, and a few huge uploads cannot stall everyone else's requests."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large(limit: int) -> str:
    """The refusal's message."""
    return f"request body over the limit of {limit} bytes"


class BodyLimit:
    """ASGI middleware: refuse a request whose body passes `max_bytes` (HTTP 413)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            # Refused unread; uvicorn drops the rest of the upload with the connection.
            response = JSONResponse({"detail": too_large(self.max_bytes)}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the endpoint's read, so the app's exception handling answers.
                    raise HTTPException(413, too_large(self.max_bytes))
            return message

        await self.app(scope, limited, send)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            # A garbled length is refused by the server before the app sees it; be safe anyway.
            return int(value) if value.isdigit() and len(value) < 20 else 1 << 62
    return None
