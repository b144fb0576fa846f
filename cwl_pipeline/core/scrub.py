"""Scrub credentials from text that may be logged or shown (error messages, run metadata).

AWS echoes the canonical request, session token included, in ``SignatureDoesNotMatch``
errors; presigned URLs carry a signature that works as a bearer credential; OAuth errors may
quote tokens. Whatever the source, text that leaves the pipeline goes through
:func:`scrub_secrets` first.
"""

from __future__ import annotations

import re

REDACTED = "<redacted>"

_VALUE = r"[^\s'\"&,;}\]]+"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
        f"{REDACTED} private key",
    ),
    # Session tokens in headers, canonical requests and presigned URLs.
    (re.compile(rf"(?i)(x-amz-security-token\s*[:=]\s*){_VALUE}"), rf"\1{REDACTED}"),
    # SigV4 signatures (a presigned URL's signature grants access until it expires).
    (re.compile(r"(?i)(x-amz-signature\s*[:=]\s*)[0-9a-f]{16,}"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)(\bSignature=)[0-9a-f]{16,}"), rf"\1{REDACTED}"),
    # OAuth bearer tokens.
    (re.compile(r"(?i)(\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{REDACTED}"),
    # Named secret fields, as JSON, XML-ish, query or key=value text.
    (
        re.compile(
            r"(?i)(\b(?:access_token|id_token|refresh_token|client_secret|private_key|"
            r"secret_?access_?key|session_?token|aws_secret_access_key|aws_session_token|"
            r"accessToken|password)[\"']?\s*[:=]\s*[\"']?)" + _VALUE
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)(<(SecretAccessKey|SessionToken)>)[^<]*(</\2>)"), rf"\1{REDACTED}\3"),
)


def scrub_secrets(text: str) -> str:
    """``text`` with session tokens, signatures, bearer tokens, secret fields and private keys masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
