"""Decoding every CloudWatch Logs delivery format into :class:`~cwl_pipeline.core.events.LogEvent`.

Formats:

``events``
    FilterLogEvents / GetLogEvents responses (or bare event lists), as JSON.
``subscription``
    Subscription-filter envelopes: the Lambda ``{"awslogs": {"data": ...}}`` event, the
    gzip envelope, or the decompressed envelope JSON.
``kinesis``
    A Kinesis Data Streams consumer (Lambda) event, ``{"Records": [{"kinesis": {"data":
    ...}}]}``, each record's data a gzip subscription envelope (a subscription filter can
    target a Kinesis data stream).
``firehose``
    Firehose deliveries to S3: concatenated gzip envelopes, or newline-delimited /
    concatenated envelope JSON when Firehose decompresses. With message extraction enabled
    the objects hold bare messages: decode those as ``messages``.
``export``
    CreateExportTask files: gzip text, ``<RFC 3339 timestamp> <message>`` per event.
``messages``
    One raw message per line (Firehose with message extraction, plain log files).

Use :func:`decode_bytes` (or the lazy :func:`iter_decode`, which keeps memory low when fed
straight into :func:`~cwl_pipeline.core.normalize.normalize`) for payloads, and
:func:`events_from_api` for event dicts returned by the API during polling. Unreadable input
raises :class:`DecodeError`; missing context (log group, stream, timestamp) raises its
subclass :class:`MissingArgumentError`.
"""

from cwl_pipeline.core.formats.api_events import events_from_api
from cwl_pipeline.core.formats.decode import FORMATS, decode_bytes, iter_decode
from cwl_pipeline.core.formats.detect import detect_format
from cwl_pipeline.core.formats.errors import DecodeError, MissingArgumentError
from cwl_pipeline.core.formats.export import stream_from_export_key

__all__ = [
    "FORMATS",
    "DecodeError",
    "MissingArgumentError",
    "decode_bytes",
    "detect_format",
    "events_from_api",
    "iter_decode",
    "stream_from_export_key",
]
