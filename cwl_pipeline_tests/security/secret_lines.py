"""Log lines carrying secrets in every way a JSON log writes them, and the rules that hide them.

The lines are AWS Lambda lines in its JSON log format (``LogFormat: JSON``), Python runtime.
Their shape is that of the application-log example on AWS's "Log and monitor Python Lambda
functions" page (https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html, JSON log
format: ``timestamp``, ``level``, ``message``, ``logger``, ``requestId``); ``message`` is the
string the function passed to ``logging``. Each secret is written:

* **plainly**;
* **JSON-escaped**: RFC 8259 section 7 lets any character be written as ``\\uXXXX`` and ``/``
  as ``\\/`` (PHP's ``json_encode`` writes ``\\/`` unless given ``JSON_UNESCAPED_SLASHES``);
* **inside a string-encoded JSON field**: the function logged ``json.dumps(payload)``, so
  Lambda's ``message`` is a string holding JSON.

Secrets are canaries with a distinctive part (``MARKERS``) that any spelling of them keeps.
The webhook has the shape of Slack's incoming-webhook URLs
(``https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX`` in Slack's
"Sending messages using incoming webhooks" guide).
"""

from __future__ import annotations

import json

RID = "8f5c2a71-3d9e-4b06-a1f4-6c2e9b7d0a53"
WEBHOOK = "https://hooks.slack.com/services/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1c"
EMAIL = "ops.canary.4d1b@example.com"
PASSWORD = "canaryPassword-93ab"
MARKERS = ("canaryWebhookToken7f3e9a1c", "ops.canary.4d1b", PASSWORD)

WEBHOOK_ESCAPED = WEBHOOK.replace("/", "\\/")
EMAIL_ESCAPED = EMAIL.replace("@", "\\u0040")

WEBHOOK_RULE = r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+"
EMAIL_RULE = r"[\w.+-]+@[\w-]+\.[\w.]+"
PASSWORD_RULE = "message.password"


def _line(message: str, level: str = "INFO", request_id: str | None = RID, time: str = "") -> str:
    """A JSON-format application line; ``message`` is inserted as written (escapes kept)."""
    head = f'{{"timestamp":"{time or "2026-11-20T10:00:00.120Z"}","level":"{level}","message":"{message}"'
    tail = f',"logger":"root","requestId":"{request_id}"}}' if request_id else ',"logger":"root"}'
    return head + tail


def _string_json(payload: str) -> str:
    """``payload`` (JSON text) as the content of a JSON string, as Lambda writes ``message``."""
    return json.dumps(payload)[1:-1]


PLAIN = _line(f"posting alert to {WEBHOOK} for {EMAIL}")
ESCAPED = _line(f"posting alert to {WEBHOOK_ESCAPED} for {EMAIL_ESCAPED}")
# logger.info(json.dumps({...})) from Python: the inner JSON is written by json.dumps.
STRING_JSON = _line(
    _string_json(json.dumps({"event": "signup", "email": EMAIL, "password": PASSWORD, "webhook": WEBHOOK}))
)
# The same payload as a PHP service encoded it (escaped slashes, @ as \u0040) and the function relayed.
STRING_JSON_ESCAPED = _line(
    _string_json(
        f'{{"event":"signup","email":"{EMAIL_ESCAPED}","password":"{PASSWORD}",'
        f'"webhook":"{WEBHOOK_ESCAPED}"}}'
    )
)
# Powertools' Logger given a dict: ``message`` is an object (shape of the Powertools for AWS
# Lambda (Python) Logger docs' output: level, location, message, timestamp, service).
POWERTOOLS_OBJECT = json.dumps(
    {
        "level": "INFO",
        "location": "signup:42",
        "message": {"event": "signup", "email": EMAIL, "password": PASSWORD},
        "timestamp": "2026-11-20 10:00:00,250+0000",
        "service": "accounts",
        "function_request_id": RID,
    }
)
# Logged at module load (the init phase): Lambda's JSON lines then have no requestId.
INIT_ESCAPED = _line(f"alerts go to {WEBHOOK_ESCAPED}", level="WARNING", request_id=None)
# print() output: not JSON, kept as text by the lambda parser, no request id either.
PRINT_PLAIN = f"alert webhook {WEBHOOK} owner {EMAIL}\n"

KEPT_LINES = (PLAIN, ESCAPED, STRING_JSON, STRING_JSON_ESCAPED, POWERTOOLS_OBJECT)
"""Lines with a request id: rows of a table whose ``request_id`` is required."""
REJECTED_LINES = (INIT_ESCAPED, PRINT_PLAIN)
"""Lines without one: rejects of that table."""

STRICT_LAMBDA_COLUMNS = [
    {"name": "timestamp", "type": "TIMESTAMP", "source": "event_timestamp", "required": True},
    {"name": "record_type", "type": "STRING", "required": True},
    {"name": "request_id", "type": "STRING", "required": True},
    {"name": "level", "type": "STRING"},
    {"name": "message", "type": "STRING"},
    {"name": "data", "type": "JSON"},
]
"""A lambda-parser schema whose rows must carry an invocation's request id."""


def leaks(text: str) -> list[str]:
    """The secret markers found in ``text``."""
    return [marker for marker in MARKERS if marker in text]
