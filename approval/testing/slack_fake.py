"""A local stand-in for the Slack Web API, for tests and the demo.

A real HTTP server on loopback that answers `chat.postMessage`, `chat.update`, `auth.test` and
`users.lookupByEmail` (from `users`, email -> user id) the way Slack does, keeps every request it received, holds the current state of each message,
and can be told to answer the next calls with 429 (rate limited, with Retry-After) or a 5xx.
Point `WebClient(base_url=fake.url)` at it.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class SlackCall:
    """One request the fake received."""

    method: str
    token: str | None
    payload: dict


@dataclass
class _Failure:
    method: str | None
    status: int
    retry_after: int
    remaining: int


@dataclass
class FakeSlack:
    """The fake Web API; use as a context manager, or call `start()` and `stop()`."""

    token: str | None = None
    host: str = "127.0.0.1"
    calls: list[SlackCall] = field(default_factory=list)
    messages: dict[tuple[str, str], dict] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._ts = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL to give WebClient, ending in `/api/`."""
        assert self._server is not None, "start the fake first"
        return f"http://{self.host}:{self._server.server_port}/api/"

    def start(self) -> FakeSlack:
        """Listen on a free loopback port in a background thread."""
        self._server = ThreadingHTTPServer((self.host, 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(
        self, count: int = 1, *, status: int = 429, method: str | None = None, retry_after: int = 0
    ) -> None:
        """Answer the next `count` calls (of `method`, or of any method) with `status`."""
        with self._lock:
            self._failures.append(_Failure(method, status, retry_after, count))

    def calls_of(self, method: str) -> list[SlackCall]:
        """The received calls of one API method, oldest first."""
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def _answer(self, method: str, token: str | None, payload: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.calls.append(SlackCall(method, token, payload))
            for failure in self._failures:
                if failure.remaining > 0 and failure.method in (None, method):
                    failure.remaining -= 1
                    headers = (
                        {"Retry-After": str(failure.retry_after)} if failure.status == 429 else {}
                    )
                    error = "ratelimited" if failure.status == 429 else "fatal_error"
                    return failure.status, headers, {"ok": False, "error": error}
            if self.token is not None and token != self.token:
                return 200, {}, {"ok": False, "error": "invalid_auth"}
            if method == "auth.test":
                return 200, {}, {"ok": True, "user_id": "UBOT", "team_id": "TFAKE"}
            if method == "users.lookupByEmail":
                user_id = self.users.get(str(payload.get("email", "")).lower())
                if user_id is None:
                    return 200, {}, {"ok": False, "error": "users_not_found"}
                return 200, {}, {"ok": True, "user": {"id": user_id, "profile": {}}}
            channel = str(payload.get("channel", ""))
            if not channel:
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            if method == "chat.postMessage":
                ts = f"1700000000.{next(self._ts):06d}"
                self.messages[(channel, ts)] = payload
                return 200, {}, {"ok": True, "channel": channel, "ts": ts, "message": payload}
            if method == "chat.update":
                key = (channel, str(payload.get("ts", "")))
                if key not in self.messages:
                    return 200, {}, {"ok": False, "error": "message_not_found"}
                self.messages[key] = payload
                return (
                    200,
                    {},
                    {"ok": True, "channel": channel, "ts": key[1], "text": payload.get("text")},
                )
            return 200, {}, {"ok": False, "error": "unknown_method"}


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            method = self.path.rsplit("/", 1)[-1].split("?", 1)[0]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if "json" in (self.headers.get("Content-Type") or ""):
                payload = json.loads(raw or b"{}")
            else:
                payload = dict(parse_qsl(raw.decode()))
                if isinstance(payload.get("blocks"), str):
                    payload["blocks"] = json.loads(payload["blocks"])
            auth = self.headers.get("Authorization") or ""
            token = (
                auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else payload.get("token")
            )
            self._reply(*fake._answer(method, token, payload))

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path, _, query = self.path.partition("?")
            auth = self.headers.get("Authorization") or ""
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
            self._reply(*fake._answer(path.rsplit("/", 1)[-1], token, dict(parse_qsl(query))))

        def _reply(self, status: int, headers: dict, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
