"""JSON inside log messages, as redaction sees it: every string, decoded, and dotted paths.

A *document* is a JSON object or array: a whole message (whitespace around it allowed), or the
text of a string value that is one itself. Loggers that serialize their own JSON and hand the
result on as a string produce the second kind; Lambda's JSON log format, for one, writes such a
string as its ``message`` (``{"level": "INFO", "message": "{\\"password\\": \\"…\\"}", …}``).

Strings are seen decoded: ``"https:\\/\\/x"`` is ``https://x`` and ``"a\\u0040b"`` is ``a@b``.
A document that changed is written back as compact JSON (orjson): whitespace goes, a duplicate
key keeps its last value (as normalization reads it), an integer beyond 64 bits becomes its
nearest double (as it is parsed), and characters are written as UTF-8, not as escapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

Document = dict[str, Any] | list[Any]

_OPENS_DOCUMENT = re.compile(r"[ \t\r\n]*[\[{]")
_FIRST_CHARS = frozenset("[{ \t\r\n")


def decode_document(text: str) -> Document | None:
    """The JSON object or array ``text`` holds, else None (other JSON values included)."""
    if not _OPENS_DOCUMENT.match(text):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:  # also text with unpaired surrogates (invalid UTF-8 read losslessly)
        return None
    return value if isinstance(value, dict | list) else None


def encode_document(document: Document) -> str | None:
    """``document`` as compact JSON; None when orjson cannot write it (nested over 254 levels)."""
    try:
        return orjson.dumps(document).decode()
    except TypeError:  # orjson.JSONEncodeError
        return None


def rewrite_strings(text: str, rewrite: Callable[[str], str], whole: Callable[[str], str]) -> str:
    """``text`` with ``rewrite`` applied to it and, when it is a document, to every string in
    it (keys and values, decoded), stepping into strings that are documents themselves.

    A document that changed is re-encoded; one that then cannot be (nested too deep for
    orjson to write) is replaced by ``whole(text)``, so that no decoded value is left as it was.
    """
    text = rewrite(text)
    if not text or text[0] not in _FIRST_CHARS:  # the common case, without a function call
        return text
    document = decode_document(text)
    if document is None or not _rewrite_document(document, rewrite, whole):
        return text
    encoded = encode_document(document)
    return whole(text) if encoded is None else encoded


def _rewrite_document(document: Document, rewrite: Callable[[str], str], whole: Callable[[str], str]) -> bool:
    """Rewrite every string of ``document`` in place; whether anything changed.

    Iterative: a message may nest up to orjson's 1024 levels, beyond Python's recursion limit.
    """
    changed = False
    pending: list[Document] = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    new = rewrite_strings(value, rewrite, whole)
                    if new != value:
                        node[index], changed = new, True
                elif isinstance(value, dict | list):
                    pending.append(value)
            continue
        rebuilt: dict[str, Any] = {}
        node_changed = False
        for key, value in node.items():
            new_key = rewrite_strings(key, rewrite, whole)
            node_changed |= new_key != key
            if isinstance(value, str):
                new = rewrite_strings(value, rewrite, whole)
                if new != value:
                    value, node_changed = new, True
            elif isinstance(value, dict | list):
                pending.append(value)
            rebuilt[new_key] = value
        if node_changed:
            node.clear()
            node.update(rebuilt)
            changed = True
    return changed


def drop_path(text: str, path: Sequence[str], whole: Callable[[str], str]) -> str:
    """``text`` without the field at ``path`` when it is a document that has one, else as is.

    Each step names a key of an object; a step may go through a string whose text is an
    object (the string is re-encoded without the field). Arrays are not stepped into.
    """
    document = decode_document(text)
    if not isinstance(document, dict):
        return text
    node: dict[str, Any] = document
    carriers: list[tuple[dict[str, Any], str, dict[str, Any]]] = []  # (object, key, its string's object)
    for step in path[:-1]:
        child = node.get(step)
        if isinstance(child, str):
            inner = decode_document(child)
            if not isinstance(inner, dict):
                return text
            carriers.append((node, step, inner))
            child = inner
        if not isinstance(child, dict):
            return text
        node = child
    if path[-1] not in node:
        return text
    del node[path[-1]]
    for holder, key, inner in reversed(carriers):
        encoded = encode_document(inner)
        holder[key] = whole(holder[key]) if encoded is None else encoded
    encoded = encode_document(document)
    return whole(text) if encoded is None else encoded
