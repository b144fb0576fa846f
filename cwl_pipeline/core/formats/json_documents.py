"""Reading one or several JSON documents from a byte payload.

Payloads hold a single document, newline-delimited documents, or documents concatenated
with no delimiter at all (Firehose with decompression enabled and no newline delimiter).
Each document is parsed with orjson; the standard library's ``raw_decode`` is only used to
find the end of a document when documents are not separated by newlines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson

from cwl_pipeline.core.formats.errors import DecodeError

_WHITESPACE = " \t\r\n\ufeff"  # a byte order mark is skipped like whitespace


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# The standard library accepts NaN and Infinity; JSON does not.
_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_single(data: bytes | str) -> tuple[bool, Any]:
    """Parse ``data`` as exactly one JSON document: ``(True, doc)``, or ``(False, None)``."""
    try:
        return True, orjson.loads(data)
    except orjson.JSONDecodeError:
        return False, None


def iter_json_documents(data: bytes, what: str = "input") -> Iterator[Any]:
    """Yield every JSON document of ``data`` in order.

    ``what`` names the payload in error messages (``gzip member 3``).

    Raises:
        DecodeError: the payload is not UTF-8, or holds something other than JSON documents.
    """
    single, doc = parse_single(data)
    if single:
        yield doc
        return
    yield from iter_multiple_documents(data, what)


def iter_multiple_documents(data: bytes, what: str = "input") -> Iterator[Any]:
    """Yield the documents of a payload known not to be a single JSON document."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{what} is not UTF-8 text (byte {exc.start})") from None
    pos = 0
    size = len(text)
    # End of the last segment orjson failed on: its documents are not one per line, so they
    # are read one by one below rather than retried (which would copy and rescan the rest of
    # the segment once per document: quadratic for documents concatenated without newlines).
    failed_end = -1
    end = -1  # the next newline at or after pos (or size): searched again only once passed
    while True:
        while pos < size and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= size:
            return
        if end < pos:
            newline = text.find("\n", pos)
            end = size if newline < 0 else newline
        if end != failed_end:
            try:
                # Fast path: a newline-delimited document.
                yield orjson.loads(text[pos:end])
                pos = end
                continue
            except orjson.JSONDecodeError:
                failed_end = end
        try:
            doc, pos = _STRICT_DECODER.raw_decode(text, pos)
        except RecursionError:
            raise DecodeError(f"{what}: JSON nested too deeply") from None
        except ValueError as exc:
            line = text.count("\n", 0, pos) + 1
            reason = getattr(exc, "msg", str(exc))
            raise DecodeError(f"{what}: invalid JSON at line {line}: {reason}") from None
        yield doc


def first_document(data: bytes) -> tuple[Any, bool]:
    """The first JSON document of ``data`` and whether it is the only one.

    Raises:
        DecodeError: ``data`` does not start with a JSON document.
    """
    single, doc = parse_single(data)
    if single:
        return doc, True
    # Newline-delimited documents: the first line alone, without decoding the whole payload.
    newline = data.find(b"\n")
    if newline > 0:
        single, doc = parse_single(data[:newline])
        if single:
            return doc, False
    for doc in iter_multiple_documents(data):
        return doc, False
    raise DecodeError("input holds no JSON document")
