"""Small local HTTP servers standing in for endpoints the tests cannot reach.

* :class:`GoogleStsDouble` plays Google's STS token exchange (``POST /v1/token``) and IAM
  Credentials ``generateAccessToken``. It checks the subject token google-auth sends: the
  serialized AWS ``GetCallerIdentity`` request must be SigV4-signed with the expected AWS
  secret key (verified independently with botocore's signer), and, like Google, it replays the
  request to AWS STS (the local moto server) to learn the caller's ARN.
* :class:`ContainerCredentials` plays the ECS/Fargate container credentials endpoint
  (``AWS_CONTAINER_CREDENTIALS_FULL_URI``), which boto3 reads and google-auth does not.
* :class:`RecordingProxy` forwards HTTP to another server and records the request headers.
"""

from __future__ import annotations

import html
import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def moto_assumed_roles(moto_url: str) -> dict[str, dict[str, Any]]:
    """The local AWS's record of every AssumeRole session, by access key id (secret key,
    session name, external id): what AWS itself knows about temporary credentials."""
    with urllib.request.urlopen(f"{moto_url}/moto-api/data.json", timeout=10) as response:
        data = json.load(response)
    return {r["access_key_id"]: r for r in data.get("sts", {}).get("AssumedRole", [])}


class _Server:
    """A threaded HTTP server on 127.0.0.1 whose handler calls ``self.handle``."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._dispatch(self)

            def do_POST(self) -> None:
                owner._dispatch(self)

            def do_DELETE(self) -> None:
                owner._dispatch(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> _Server:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        status, headers, payload = self.handle(handler.command, handler.path, dict(handler.headers), body)
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        raise NotImplementedError


def _json(status: int, doc: object) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(doc).encode()


@dataclass
class Exchange:
    """One token exchange the STS double accepted or refused."""

    form: dict[str, str]
    signed_request: dict[str, Any]
    access_key: str
    caller_arn: str
    error: str | None = None


@dataclass
class GoogleStsDouble(_Server):
    """Google STS and IAM Credentials, trusting AWS identities whose ARN ``trust`` accepts."""

    secret_for: Callable[[str], str | None]  # access key id -> expected secret key
    moto_url: str
    trust: Callable[[str], bool]
    exchanges: list[Exchange] = field(default_factory=list)
    impersonations: list[dict[str, Any]] = field(default_factory=list)
    issued: int = 0

    def __post_init__(self) -> None:
        _Server.__init__(self)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        if method == "POST" and path == "/v1/token":
            return self._token(dict(urllib.parse.parse_qsl(body.decode())))
        if method == "POST" and path.endswith(":generateAccessToken"):
            return self._generate_access_token(path, headers, json.loads(body or b"{}"))
        return _json(404, {"error": {"message": f"no route {method} {path}"}})

    def _token(self, form: dict[str, str]) -> tuple[int, dict, bytes]:
        signed = json.loads(urllib.parse.unquote(form.get("subject_token", "")))
        header = {h["key"].lower(): h["value"] for h in signed["headers"]}
        access_key = re.search(r"Credential=([^/]+)/", header.get("authorization", "")).group(1)
        exchange = Exchange(form, signed, access_key, caller_arn="")
        self.exchanges.append(exchange)
        exchange.error = self._verify_signature(signed, header, access_key)
        if exchange.error is None:
            exchange.caller_arn = self._caller_arn(signed)
            if not self.trust(exchange.caller_arn):
                exchange.error = f"{exchange.caller_arn} is not trusted by the pool"
        if exchange.error:
            return _json(400, {"error": "invalid_grant", "error_description": exchange.error})
        self.issued += 1
        return _json(
            200,
            {
                "access_token": f"sts-token-{self.issued}",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 3600,
            },
        )

    def _verify_signature(
        self, signed: dict[str, Any], header: dict[str, str], access_key: str
    ) -> str | None:
        secret = self.secret_for(access_key)
        if secret is None:
            return f"unknown access key {access_key}"
        scope = re.search(r"Credential=[^/]+/(\d{8})/([^/]+)/([^/]+)/aws4_request", header["authorization"])
        signed_headers = re.search(r"SignedHeaders=([^,]+)", header["authorization"]).group(1).split(";")
        request = AWSRequest(
            method=signed["method"],
            url=signed["url"],
            headers={name: header[name] for name in signed_headers},
            data=b"",
        )
        request.context["timestamp"] = header["x-amz-date"]
        signer = SigV4Auth(
            Credentials(access_key, secret, header.get("x-amz-security-token")), "sts", scope[2]
        )
        string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
        expected = signer.signature(string_to_sign, request)
        actual = re.search(r"Signature=([0-9a-f]+)", header["authorization"]).group(1)
        return None if actual == expected else "signature does not match the secret key of the access key"

    def _caller_arn(self, signed: dict[str, Any]) -> str:
        # Google calls AWS STS with the signed request; here the local AWS answers.
        query = urllib.parse.urlsplit(signed["url"]).query
        request = urllib.request.Request(f"{self.moto_url}/?{query}", method=signed["method"], data=b"")
        for item in signed["headers"]:
            request.add_header(item["key"], item["value"])
        with urllib.request.urlopen(request, timeout=10) as response:
            return re.search(r"<Arn>([^<]+)</Arn>", response.read().decode()).group(1)

    def _generate_access_token(
        self, path: str, headers: dict[str, str], body: dict
    ) -> tuple[int, dict, bytes]:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        self.impersonations.append({"path": path, "authorization": auth, "body": body})
        if not auth.startswith("Bearer sts-token-"):
            return _json(401, {"error": {"message": "needs a federated token"}})
        expiry = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _json(
            200, {"accessToken": f"sa-token-for-{auth.removeprefix('Bearer ')}", "expireTime": expiry}
        )


@dataclass
class ContainerCredentials(_Server):
    """The ECS/Fargate task credentials endpoint: serves whatever ``credentials`` holds."""

    authorization: str
    credentials: dict[str, str] = field(default_factory=dict)
    requests: int = 0

    def __post_init__(self) -> None:
        _Server.__init__(self)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        if {k.lower(): v for k, v in headers.items()}.get("authorization") != self.authorization:
            return _json(401, {"message": "bad authorization token"})
        self.requests += 1
        return _json(200, self.credentials)


@dataclass
class RecordingProxy(_Server):
    """Forwards every request to ``target`` and records its headers."""

    target: str
    seen: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _Server.__init__(self)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        self.seen.append(headers)
        forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(
            self.target + path, data=body or None, method=method, headers=forwarded
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return (
                    response.status,
                    {"Content-Type": response.headers.get("Content-Type", "")},
                    response.read(),
                )
        except urllib.error.HTTPError as exc:
            return exc.code, {"Content-Type": exc.headers.get("Content-Type", "")}, exc.read()


@dataclass
class SignatureMismatchAws(_Server):
    """Answers every AWS call as AWS does when the signature is wrong (clock skew, a rotated
    key): ``InvalidSignatureException`` (JSON protocols) or ``SignatureDoesNotMatch`` (query
    protocol, STS) quoting the canonical request with the signed headers' values, session
    token included. moto never produces it. ``json_only`` answers in JSON whatever the
    protocol: a body the STS client cannot parse, which botocore quotes whole."""

    json_only: bool = False

    def __post_init__(self) -> None:
        _Server.__init__(self)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        lower = {k.lower(): v for k, v in headers.items()}
        signed = re.search(r"SignedHeaders=([^,]+)", lower.get("authorization", ""))
        names = signed.group(1).split(";") if signed else []
        canonical = "\n".join(
            [method, path, "", *(f"{n}:{lower.get(n, '')}" for n in names), "", ";".join(names)]
        )
        message = (
            "The request signature we calculated does not match the signature you provided. Check "
            "your AWS Secret Access Key and signing method. Consult the service documentation for "
            f"details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n"
        )
        if self.json_only or "json" in lower.get("content-type", ""):
            doc = {"__type": "InvalidSignatureException", "message": message}
            return 400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(doc).encode()
        # Query protocol (STS): an XML error document.
        xml = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>"
            f"<Message>{html.escape(message)}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
        )
        return 403, {"Content-Type": "text/xml"}, xml.encode()
