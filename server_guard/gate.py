"""The guard's front door: an ASGI middleware around all of MLflow's app, before anything reads a body.

MLflow's Flask app sits behind a WSGI bridge (mlflow/server/fastapi_app.py, _EfficientWSGIResponder)
that reads the whole request body into memory before Flask runs, and basic-auth checks the login in a
Flask hook: an anonymous 300 MiB POST was held whole before its 401 (issue 23, hole 3). The gate checks
the login first, for every request the auth app would ask to log in, and never reads the body of one it
refuses. In order, per request:
1. a login is offered and the login throttle (server_guard.throttle) lets its password be checked, or
   the answer is 401 (none offered, or a wrong one) or 429 with Retry-After (throttled);
2. a body the WSGI bridge would hold is cut at `body_limit` bytes (413): what MLflow routes to Flask,
   as it routes it, whatever path nginx believed it was;
3. a write to traces by id (StartTraceV3, OTLP) keeps every existing trace in its experiment
   (server_guard.traces);
and every error answer leaves without SQL or password hashes (server_guard.errors).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from sqlalchemy.exc import DBAPIError

from server_guard import errors
from server_guard.authority import Authority, Scope
from server_guard.throttle import LoginThrottle
from server_guard.traces import Refusal, moved_trace_refusal

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# A trace write's experiment and trace ids, parsed from (headers, body); ValueError if unreadable.
TraceWrite = Callable[[dict[str, str], bytes], tuple[str, set[str]]]

TOO_LARGE = "The request body is larger than this server accepts here ({limit} bytes)."
THROTTLED = ("Too many failed logins from this address or for this user name; retry in {seconds} seconds. "
             "A password that was right before still works from an address it was used from.")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send(self, send: Send) -> None:
        headers = [(b"content-length", str(len(self.body)).encode()), *self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def mlflow_error(status: int, error_code: str, message: str, *headers: tuple[bytes, bytes]) -> Answer:
    body = json.dumps({"error_code": error_code, "message": message}).encode()
    return Answer(status, body, [(b"content-type", b"application/json"), *headers])


# The login is checked against the auth database (and the throttle's ledger in it): while that database is
# unreachable the answer is MLflow's own for an outage, 503, which nginx turns into its generic one.
DATABASE_UNAVAILABLE = mlflow_error(503, "TEMPORARILY_UNAVAILABLE",
                                    "The MLflow server is temporarily unavailable. Retry later.",
                                    (b"retry-after", b"10"))


class BodyTooLarge(Exception):
    pass


def too_large(error: BaseException) -> bool:
    """BodyTooLarge, alone or in the exception groups of the task groups it crossed."""
    grouped = getattr(error, "exceptions", None)
    if isinstance(grouped, tuple):
        return any(too_large(inner) for inner in grouped)
    return isinstance(error, BodyTooLarge)


def headers_of(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def client_address(scope: Scope) -> str:
    """nginx's view of the client ($remote_addr, the load balancer's client behind one), which it sends
    as X-Real-IP in place of any a client sends; MLflow listens on 127.0.0.1 only."""
    client = scope.get("client")
    return headers_of(scope).get("x-real-ip") or (client[0] if client else "")


@dataclass
class Gate:
    app: Callable[[Scope, Receive, Send], Awaitable[None]]
    authority: Authority
    throttle: LoginThrottle
    unauthenticated: Answer  # the auth app's own 401
    held_whole: Callable[[Scope], bool]  # is this request's body read whole by the WSGI bridge?
    trace_writes: dict[str, TraceWrite]  # POST path -> its parser
    trace_homes: Callable[[list[str]], dict[str, str]]  # trace id -> experiment, of those that exist
    body_limit: int

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response, headers = ErrorScrubber(send), headers_of(scope)
        held, declared = self.held_whole(scope), headers.get("content-length", "")
        # A browser's CORS preflight carries no credentials; MLflow's CORS middleware answers it.
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        username = None
        if not preflight and self.authority.needs_login(scope):
            try:
                refusal, username = await anyio.to_thread.run_sync(self.admit, scope)
            except DBAPIError:
                await DATABASE_UNAVAILABLE.send(send)
                return
            if refusal is not None:
                await refusal.send(send)
                return
        if held and declared.isdigit() and int(declared) > self.body_limit:
            await self.too_large().send(send)
            return
        parse = self.trace_writes.get(scope["path"]) if scope["method"] == "POST" else None
        if parse is not None and username is not None:
            body = await self.read(receive)
            if body is None:
                await self.too_large().send(send)
                return
            trace_refusal = await anyio.to_thread.run_sync(self.trace_refusal, username, parse, scope, body)
            if trace_refusal is not None:
                await mlflow_error(trace_refusal.status, trace_refusal.error_code, trace_refusal.message).send(send)
                return
            receive = replay(body, receive)
        elif held:
            receive = self.capped(receive)
        try:
            await self.app(scope, receive, response.send)
        except BaseException as error:
            if not too_large(error) or response.started:
                raise
            await self.too_large().send(send)

    def admit(self, scope: Scope) -> tuple[Answer | None, str | None]:
        login = self.authority.login(scope)
        if login is None:
            return self.unauthenticated, None
        claimed, check = login
        address = client_address(scope)
        seconds = self.throttle.retry_after(address, claimed)
        if seconds is not None:
            return mlflow_error(429, "REQUEST_LIMIT_EXCEEDED", THROTTLED.format(seconds=seconds),
                                (b"retry-after", str(seconds).encode())), None
        username = check()
        if username is None:
            self.throttle.failed(address, claimed)
            return self.unauthenticated, None
        self.throttle.succeeded(address, claimed)
        return None, username

    def trace_refusal(self, username: str, parse: TraceWrite, scope: Scope, body: bytes) -> Refusal | None:
        try:
            experiment_id, trace_ids = parse(headers_of(scope), body)
        except ValueError as error:
            return Refusal(400, "INVALID_PARAMETER_VALUE", str(error))
        homes = self.trace_homes(sorted(trace_ids)) if trace_ids else {}
        return moved_trace_refusal(username, experiment_id, homes, self.authority)

    def too_large(self) -> Answer:
        return mlflow_error(413, "INVALID_PARAMETER_VALUE", TOO_LARGE.format(limit=self.body_limit))

    async def read(self, receive: Receive) -> bytes | None:
        """The whole body, or None past the limit."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.body_limit:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False) and message["type"] == "http.request"
        return b"".join(chunks)

    def capped(self, receive: Receive) -> Receive:
        size = 0

        async def capped_receive() -> Message:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > self.body_limit:
                raise BodyTooLarge
            return message

        return capped_receive


def replay(body: bytes, receive: Receive) -> Receive:
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


class ErrorScrubber:
    """Passes every answer on, holding an error answer's body (status >= 400) to scrub it first."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._size = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if message["status"] >= 400:
                self._start = message
                return
        elif message["type"] == "http.response.body" and self._start is not None:
            chunk = message.get("body", b"")
            self._size += len(chunk)
            if self._size <= errors.MAX_ERROR_BYTES:
                self._chunks.append(chunk)
            if message.get("more_body", False):
                return
            await self._flush()
            return
        await self._send(message)

    async def _flush(self) -> None:
        assert self._start is not None
        start, body = self._start, b"".join(self._chunks)
        replacement = errors.scrubbed(start["status"], body, whole=self._size == len(body))
        if replacement is not None:
            kept = [(name, value) for name, value in start.get("headers", [])
                    if name.lower() not in (b"content-length", b"content-type")]
            start = {**start, "headers": [*kept, (b"content-length", str(len(replacement)).encode()),
                                          (b"content-type", b"application/json")]}
            body = replacement
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body})
