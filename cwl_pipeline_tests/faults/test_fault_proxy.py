"""The fault proxy itself, in front of a tiny stdlib HTTP server."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cwl_pipeline_tests.faults.fault_proxy import (
    Drop,
    DropResponse,
    FaultProxy,
    Hold,
    Rule,
    filter_log_events,
    throttling,
)


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list[bytes]

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(body)
        self.send_response(200)
        self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/next")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST

    def do_GET(self):
        # No Content-Length: the proxy must re-chunk the streamed body.
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (b"hello ", b"world"):
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []
    handler = type("Echo", (_Echo,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def call(proxy: FaultProxy, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    conn = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def test_forwards_streams_and_rewrites_location(upstream):
    url, received = upstream
    big = bytes(range(256)) * 40_000  # 10 MB: above the buffering limit, streamed
    with FaultProxy(url) as proxy:
        status, body, headers = call(proxy, "PUT", "/big?x=1", big)
        assert (status, body == big, received[-1] == big) == (200, True, True)
        assert headers["Location"] == f"{proxy.url}/next"
        assert call(proxy, "GET", "/chunked")[:2] == (200, b"hello world")
        assert [(s.method, s.path, s.action, s.status) for s in proxy.seen] == [
            ("PUT", "/big?x=1", "forward", 200),
            ("GET", "/chunked", "forward", 200),
        ]


def test_responds_for_the_next_n_matches_only(upstream):
    url, received = upstream
    with FaultProxy(url) as proxy:
        rule = proxy.add(filter_log_events(throttling(), times=2))
        target = {"X-Amz-Target": "Logs_20140328.FilterLogEvents"}
        other = {"X-Amz-Target": "Logs_20140328.DescribeLogGroups"}
        assert call(proxy, "POST", "/", b"{}", other)[0] == 200
        first, second, third = (call(proxy, "POST", "/", b"{}", target) for _ in range(3))
        assert first[0] == second[0] == 400 and b"ThrottlingException" in first[1]
        assert third[0] == 200
        assert rule.fired == 2 and rule.arrived.is_set()
        assert len(received) == 2  # the throttled calls never reached the upstream
        assert [s.status for s in proxy.requests(target="Logs_20140328.FilterLogEvents")] == [400, 400, 200]


def test_body_rule_drop_and_drop_response(upstream):
    url, received = upstream
    with FaultProxy(url) as proxy:
        before = proxy.add(Rule(Drop(), body="BEGIN TRANSACTION"))
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            call(proxy, "POST", "/jobs", b'{"query": "BEGIN TRANSACTION; ..."}')
        assert received == [] and before.fired == 1
        after = proxy.add(Rule(DropResponse(), body="COMMIT"))
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            call(proxy, "POST", "/jobs", b'{"query": "COMMIT"}')
        assert received == [b'{"query": "COMMIT"}'] and after.fired == 1


def test_hold_until_released(upstream):
    url, received = upstream
    with FaultProxy(url) as proxy:
        release = threading.Event()
        rule = proxy.add(Rule(Hold(release), path="^/held"))
        results: list = []
        caller = threading.Thread(target=lambda: results.append(call(proxy, "POST", "/held", b"x")))
        caller.start()
        assert rule.arrived.wait(5)
        assert received == [] and results == []
        release.set()
        caller.join(5)
        assert results[0][:2] == (200, b"x") and received == [b"x"]


def test_unreachable_upstream_is_a_bad_gateway():
    with FaultProxy("http://127.0.0.1:9") as proxy:
        status, body, _ = call(proxy, "GET", "/")
        assert status == 502 and b"unreachable" in body
