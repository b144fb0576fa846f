"""A fault-injecting HTTP reverse proxy for the local AWS and BigQuery servers.

The emulators never fail on their own, so the fault tests put this proxy between the real
clients and the real servers. Every request is forwarded unchanged (bodies streamed both ways)
unless a :class:`Rule` matches it; a rule then acts for its next ``times`` matches: answer with
a given status and body, drop the connection (before or after the upstream did the work),
delay, or hold the request until the test releases it. Holding is how a test kills a process
or restarts a server while a request is in flight.

The proxy records every request it saw, and each rule the requests it acted on, so a test can
assert that its fault really fired.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

CHUNK = 64 * 1024
MATCH_BODY_LIMIT = 4 * 1024 * 1024  # request bodies up to this size are buffered (for body rules)
RECORD_BODY_LIMIT = 64 * 1024  # how much of each request body the record keeps
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


# ---------------------------------------------------------------------------------------------
# Actions


@dataclass(frozen=True)
class Respond:
    """Answer with ``status`` and ``body`` instead of forwarding."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Drop:
    """Close the connection without an answer; the upstream never sees the request."""


@dataclass(frozen=True)
class DropResponse:
    """Forward the request and read the upstream's whole answer, then close the connection
    without passing it on: the work was done, but the client cannot know."""


@dataclass(frozen=True)
class Truncate:
    """Forward the request, pass the answer's status and headers on, then only ``keep`` bytes
    of its body before closing the connection: a transfer cut off mid-way."""

    keep: int = 16


@dataclass(frozen=True)
class Forward:
    """Forward the request (what a held or delayed request does by default afterwards)."""


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds``, then act as ``then``."""

    seconds: float
    then: Action = Forward()


@dataclass(frozen=True)
class Hold:
    """Keep the request until ``release`` is set (at most ``timeout`` seconds), then act as
    ``then`` — forward it, or drop it as if its sender had died before it left."""

    release: threading.Event
    then: Action = Forward()
    timeout: float = 120.0


Action = Respond | Drop | DropResponse | Truncate | Forward | Delay | Hold


def aws_json_error(code: str, message: str, status: int = 400) -> Respond:
    """An error of an AWS JSON-protocol API (CloudWatch Logs)."""
    body = json.dumps({"__type": code, "message": message}).encode()
    return Respond(status, body, "application/x-amz-json-1.1", (("x-amzn-RequestId", "fault-proxy"),))


def throttling() -> Respond:
    """CloudWatch Logs' ``ThrottlingException`` (HTTP 400)."""
    return aws_json_error("ThrottlingException", "Rate exceeded", 400)


def aws_unavailable() -> Respond:
    """CloudWatch Logs' ``ServiceUnavailableException`` (HTTP 503)."""
    return aws_json_error("ServiceUnavailableException", "The service is unavailable", 503)


def s3_error(code: str, message: str, status: int) -> Respond:
    """An S3 REST XML error."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>fault-proxy</RequestId></Error>"
    ).encode()
    return Respond(status, body, "application/xml")


def s3_slow_down() -> Respond:
    """S3's ``SlowDown`` (HTTP 503)."""
    return s3_error("SlowDown", "Please reduce your request rate.", 503)


def s3_internal_error() -> Respond:
    """S3's ``InternalError`` (HTTP 500)."""
    return s3_error("InternalError", "We encountered an internal error. Please try again.", 500)


def google_error(status: int = 503, reason: str = "backendError", message: str = "Backend error") -> Respond:
    """A Google API error body, as BigQuery sends it."""
    names = {500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 400: "INVALID_ARGUMENT"}
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": names.get(status, "UNKNOWN"),
        }
    }
    return Respond(status, json.dumps(body).encode())


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Seen:
    """One request the proxy received, and what it did with it."""

    method: str
    path: str
    target: str | None
    action: str
    status: int | None = None
    body: bytes = b""  # the first RECORD_BODY_LIMIT bytes of a buffered request body


@dataclass
class Rule:
    """Which requests to act on, and how.

    Every given criterion must hold: ``method``; ``path`` (a regex searched in the request
    target, query string included); ``target`` (the ``X-Amz-Target`` header of AWS JSON APIs,
    e.g. ``Logs_20140328.FilterLogEvents``); ``body`` (a substring of the request body).
    ``times`` bounds how many matches the rule acts on (None: every one).
    """

    action: Action
    method: str | None = None
    path: str | None = None
    target: str | None = None
    body: str | None = None
    times: int | None = 1
    hits: list[Seen] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str, target: str | None, body: bytes | None) -> bool:
        """Whether a request meets every criterion (``body`` None: not buffered, never matches
        a body criterion)."""
        if self.method and method != self.method:
            return False
        if self.path and not re.search(self.path, path):
            return False
        if self.target and target != self.target:
            return False
        return not (self.body and (body is None or self.body.encode() not in body))

    @property
    def spent(self) -> bool:
        """Whether the rule acted ``times`` times already."""
        return self.times is not None and len(self.hits) >= self.times

    @property
    def fired(self) -> int:
        """How many requests the rule acted on."""
        return len(self.hits)


def filter_log_events(action: Action, times: int | None = 1) -> Rule:
    """CloudWatch Logs FilterLogEvents calls."""
    return Rule(action, method="POST", target="Logs_20140328.FilterLogEvents", times=times)


def list_objects_v2(bucket: str, action: Action, times: int | None = 1) -> Rule:
    """S3 ListObjectsV2 on ``bucket`` (path-style requests, as to a local endpoint)."""
    return Rule(action, method="GET", path=rf"^/{re.escape(bucket)}/?\?(.*&)?list-type=2", times=times)


def get_object(bucket: str, action: Action, times: int | None = 1) -> Rule:
    """S3 GetObject of any key of ``bucket``."""
    return Rule(action, method="GET", path=rf"^/{re.escape(bucket)}/[^?]+", times=times)


def bigquery_upload(action: Action, times: int | None = 1) -> Rule:
    """Media uploads of BigQuery load jobs (the staging loads)."""
    return Rule(action, path=r"^/upload/bigquery/v2/projects/[^/]+/jobs", times=times)


def bigquery_job_insert(action: Action, body: str | None = None, times: int | None = 1) -> Rule:
    """BigQuery ``jobs.insert`` calls, optionally only those whose body holds ``body``."""
    return Rule(
        action, method="POST", path=r"^/bigquery/v2/projects/[^/]+/jobs(\?|$)", body=body, times=times
    )


def bigquery_replace(action: Action, times: int | None = 1) -> Rule:
    """The replace transaction: a query job whose script begins a transaction."""
    return bigquery_job_insert(action, body="BEGIN TRANSACTION", times=times)


# ---------------------------------------------------------------------------------------------
# The proxy


class FaultProxy:
    """A reverse proxy to ``upstream`` (``http://host:port``) on a free local port."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        """Create the proxy; :meth:`start` serves it."""
        parts = urlsplit(upstream)
        self.upstream = upstream.rstrip("/")
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL clients should use instead of the upstream's."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held requests and stop serving."""
        self.clear()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, rule: Rule) -> Rule:
        """Act on matching requests from now on; the first rule that matches acts."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget every rule and recorded request; held requests are released."""
        with self._lock:
            for rule in self.rules:
                if isinstance(rule.action, Hold):
                    rule.action.release.set()
            self.rules.clear()
            self.seen.clear()

    def requests(
        self, method: str | None = None, path: str | None = None, target: str | None = None
    ) -> list[Seen]:
        """Recorded requests meeting the given criteria (same meaning as in :class:`Rule`)."""
        probe = Rule(Forward(), method=method, path=path, target=target)
        with self._lock:
            return [s for s in self.seen if probe.matches(s.method, s.path, s.target, b"")]

    def _pick(self, method: str, path: str, target: str | None, body: bytes | None) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.spent and rule.matches(method, path, target, body):
                    rule.hits.append(Seen(method, path, target, _action_name(rule.action)))
                    return rule
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)


def _action_name(action: Action) -> str:
    if isinstance(action, Respond):
        return f"respond {action.status}"
    return type(action).__name__.lower()


def _handler_class(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProxyHandler):
        pass

    Handler.proxy = proxy
    return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: FaultProxy
    _pending: Seen | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass  # the proxy's record is in FaultProxy.seen

    def _handle(self) -> None:
        try:
            self._serve()
        except OSError:
            self.close_connection = True  # the client went away (killed, or timed out)

    def _serve(self) -> None:
        target = self.headers.get("X-Amz-Target")
        body, stream_length = self._read_body()
        rule = self.proxy._pick(self.command, self.path, target, body)
        if rule is not None:
            rule.arrived.set()
        action: Action = rule.action if rule is not None else Forward()
        self._pending: Seen | None = Seen(
            self.command, self.path, target, _action_name(action), None, (body or b"")[:RECORD_BODY_LIMIT]
        )
        status = self._act(action, body, stream_length)
        self._record(status)  # no answer sent (dropped)

    def _record(self, status: int | None) -> None:
        if self._pending is not None:
            self.proxy._record(replace(self._pending, status=status))
            self._pending = None

    def send_response_only(self, code: int, message: str | None = None) -> None:
        # Recorded before the client can read the answer, so a test never races the record.
        self._record(code)
        super().send_response_only(code, message)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def _read_body(self) -> tuple[bytes | None, int | None]:
        """The request body if small enough to buffer, else ``(None, length)`` to stream it."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"".join(self._read_chunks()), None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MATCH_BODY_LIMIT:
            return None, length
        return self.rfile.read(length) if length else b"", None

    def _read_chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _act(self, action: Action, body: bytes | None, stream_length: int | None) -> int | None:
        if isinstance(action, Respond):
            self.send_response(action.status)
            self.send_header("Content-Type", action.content_type)
            for name, value in action.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(action.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(action.body)
            return action.status
        if isinstance(action, Drop):
            self._drop()
            return None
        if isinstance(action, Delay):
            threading.Event().wait(action.seconds)
            return self._act(action.then, body, stream_length)
        if isinstance(action, Hold):
            action.release.wait(action.timeout)
            return self._act(action.then, body, stream_length)
        keep = action.keep if isinstance(action, Truncate) else None
        return self._forward(body, stream_length, deliver=not isinstance(action, DropResponse), keep=keep)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _forward(
        self, body: bytes | None, stream_length: int | None, deliver: bool, keep: int | None = None
    ) -> int | None:
        proxy = self.proxy
        conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=300)
        try:
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        conn.putheader(name, value)
                length = stream_length if body is None else len(body)
                conn.putheader("Content-Length", str(length))
                conn.endheaders()
                if body is not None:
                    if body:
                        conn.send(body)
                else:
                    remaining = stream_length or 0
                    while remaining:
                        chunk = self.rfile.read(min(CHUNK, remaining))
                        if not chunk:
                            break
                        conn.send(chunk)
                        remaining -= len(chunk)
                response = conn.getresponse()
            except OSError as exc:
                return self._bad_gateway(exc) if deliver else self._drop()
            if not deliver:
                response.read()
                self._drop()
                return response.status
            self._relay(response, keep)
            return response.status
        finally:
            conn.close()

    def _relay(self, response: http.client.HTTPResponse, keep: int | None = None) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower == "content-length":
                continue
            if lower == "location":
                value = value.replace(self.proxy.upstream, self.proxy.url)
            self.send_header(name, value)
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        if length is not None or no_body:
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            if keep is not None:
                self.wfile.write(response.read()[:keep])
                self.wfile.flush()
                self._drop()
                return
            while not no_body and (chunk := response.read(CHUNK)):
                self.wfile.write(chunk)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while chunk := response.read(CHUNK):
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _bad_gateway(self, exc: OSError) -> int:
        body = f"upstream {self.proxy.upstream} unreachable: {exc}".encode()
        self.send_response(502)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return 502
