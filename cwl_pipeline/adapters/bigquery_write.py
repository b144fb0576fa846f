"""Append rows to a BigQuery table through the Storage Write API's default stream.

Used for the rows of a still-open window, refreshed every minute: the Storage Write API needs
no load job (100,000 per project and day) and no query (each billed at least 10 MiB), and its
rows are visible at once. The default stream is at-least-once: an append retried after a lost
answer can store rows twice, so readers deduplicate (see the ``_recent`` view) and the settled
load of the window writes the events table exactly once.

What is sent follows the API's documented contract (docs/bigquery-behaviour.md, 6f):

* Rows travel as Arrow record batches (``AppendRowsRequest.arrow_rows``), each column in the
  Arrow type BigQuery's page "Supported protocol buffer and Arrow data types" gives for its
  column type (:data:`STORAGE_WRITE_ARROW_TYPES`).
* Requests go through the library's :class:`~google.cloud.bigquery_storage_v1.writer.AppendRowsStream`,
  which sends the ``x-goog-request-params: write_stream=…`` routing header.
* Each request is at most :data:`MAX_REQUEST_BYTES` serialized, whatever the rows' sizes.
* After a table's schema gains a column, the backend refuses rows carrying it for a while
  ("detects schema changes after a short time, on the order of minutes"). Such an append is
  retried on a new connection until ``schema_wait`` seconds have passed, then fails; the rows
  stay owed to the next refresh and the settled load (see :class:`StreamAppender`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pyarrow as pa
from google.api_core import exceptions as gexc

from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.core.scrub import scrub_secrets

# AppendRows request size limit: "must be less than 10 MB" in the API reference of
# google-cloud-bigquery-storage 2.15 (20 MB in later releases and on the quotas page). The
# smaller figure, with a margin for the request's own fields, holds whichever applies.
MAX_REQUEST_BYTES = 9_000_000

# The Arrow type of each column type the pipeline writes, from the table "Supported Apache Arrow
# data types" of https://docs.cloud.google.com/bigquery/docs/supported-data-types:
# BOOL: Boolean; FLOAT: FloatingPoint, precision SINGLE or DOUBLE; INTEGER: int, bitWidth 8-64;
# JSON and STRING: Utf8; TIMESTAMP: Timestamp, unit MICROSECONDS, timezone UTC.
STORAGE_WRITE_ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "JSON": pa.string(),
}

# StorageErrorCode.SCHEMA_MISMATCH_EXTRA_FIELDS: "user schema has extra field than bigquery schema".
SCHEMA_MISMATCH_EXTRA_FIELDS = 7
_STORAGE_ERROR_TYPE = "type.googleapis.com/google.cloud.bigquery.storage.v1.StorageError"

# How long an append refused for a column the backend does not know yet is retried: the
# resource passes its API retry budget (2 minutes by default).
DEFAULT_SCHEMA_WAIT = 120.0
_FIRST_SCHEMA_RETRY = 2.0
_LONGEST_SCHEMA_RETRY = 30.0


class SchemaNotYetAccepted(DestinationError):
    """BigQuery refused rows for a column its Storage Write backend does not know yet.

    ``refused`` holds the record batches of the append that were refused.
    """

    def __init__(self, message: str, refused: list[pa.RecordBatch] | None = None) -> None:
        super().__init__(message)
        self.refused = refused or []


def column_type(field: pa.Field) -> str:
    """The BigQuery column type an Arrow field of the pipeline's tables stands for.

    Raises:
        DestinationError: the field's type is none the pipeline writes.
    """
    metadata = field.metadata or {}
    if metadata.get(b"bigquery_type") == b"JSON":
        return "JSON"
    kind = field.type
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "STRING"
    if pa.types.is_integer(kind):
        return "INT64"
    if pa.types.is_floating(kind):
        return "FLOAT64"
    if pa.types.is_boolean(kind):
        return "BOOL"
    raise DestinationError(f"column {field.name}: Arrow type {kind} has no Storage Write mapping")


def storage_write_table(data: pa.Table) -> pa.Table:
    """``data`` with every column cast to :data:`STORAGE_WRITE_ARROW_TYPES` of its column type
    (e.g. the pipeline's millisecond timestamps become microseconds, losslessly)."""
    fields = [
        pa.field(f.name, STORAGE_WRITE_ARROW_TYPES[column_type(f)], nullable=f.nullable) for f in data.schema
    ]
    return data.cast(pa.schema(fields))


def request_size(stream: str, schema: bytes, batch: pa.RecordBatch) -> int:
    """Serialized size of the AppendRows request carrying ``batch`` (with the writer schema,
    which the first request of a connection also carries)."""
    from google.cloud.bigquery_storage_v1 import types

    request = types.AppendRowsRequest(
        write_stream=stream,
        arrow_rows=types.AppendRowsRequest.ArrowData(
            writer_schema=types.ArrowSchema(serialized_schema=schema),
            rows=types.ArrowRecordBatch(serialized_record_batch=batch.serialize().to_pybytes()),
        ),
    )
    return types.AppendRowsRequest.pb(request).ByteSize()


def sized_batches(
    data: pa.Table, stream: str, schema: bytes, limit: int = MAX_REQUEST_BYTES
) -> list[pa.RecordBatch]:
    """Record batches of ``data`` whose requests are each at most ``limit`` bytes serialized.

    A batch starts from the average row size and is halved until its request fits, so a burst
    of large rows among small ones is split where it is large.

    Raises:
        DestinationError: one row alone makes a request over ``limit``.
    """
    combined = data.combine_chunks()
    per_row = max(1, combined.nbytes // max(1, combined.num_rows))
    pending = list(reversed(combined.to_batches(max_chunksize=max(1, limit // per_row))))
    fitting: list[pa.RecordBatch] = []
    while pending:
        batch = pending.pop()
        if request_size(stream, schema, batch) <= limit:
            fitting.append(batch)
        elif batch.num_rows == 1:
            raise DestinationError(
                f"one row is over the AppendRows request limit ({limit} bytes) for {stream}"
            )
        else:
            half = batch.num_rows // 2
            pending += [batch.slice(half), batch.slice(0, half)]
    return fitting


class StreamAppender:
    """Appends Arrow tables to tables of one project and dataset."""

    def __init__(
        self,
        client: Any,
        project: str,
        dataset: str,
        *,
        schema_wait: float = DEFAULT_SCHEMA_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        answer_timeout: float | None = None,
    ) -> None:
        """``client`` is a ``bigquery_storage_v1.BigQueryWriteClient``; an append refused for a
        column the backend does not know yet is retried for ``schema_wait`` seconds; with
        ``answer_timeout``, an append whose answer has not come after that many seconds fails
        (a caller with a deadline of its own, such as a sensor evaluation)."""
        self.client = client
        self.project = project
        self.dataset = dataset
        self.schema_wait = schema_wait
        self.sleep = sleep
        self.answer_timeout = answer_timeout

    def stream_name(self, table: str) -> str:
        """The default stream of ``table``."""
        return f"projects/{self.project}/datasets/{self.dataset}/tables/{table}/streams/_default"

    def append(self, table: str, data: pa.Table) -> int:
        """Append ``data`` to ``table``'s default stream; returns the requests sent.

        Raises:
            SchemaNotYetAccepted: the backend still refused a newly added column after
                ``schema_wait`` seconds. Nothing is lost: the refresh fails, so the next one
                appends these rows again, and the settled load writes the events table from
                the source whatever the live table holds.
            DestinationError: BigQuery refused a request (the message names the table).
        """
        if not data.num_rows:
            return 0
        data = storage_write_table(data)
        stream = self.stream_name(table)
        schema = data.schema.serialize().to_pybytes()
        batches = sized_batches(data, stream, schema)
        waited, delay = 0.0, _FIRST_SCHEMA_RETRY
        pending = batches
        while True:
            try:
                self._send(table, stream, schema, pending)
                return len(batches)
            except SchemaNotYetAccepted as exc:
                # Only the refused requests are sent again, on a new connection (which is what
                # picks up the new schema once the backend has it).
                pending = exc.refused
                if waited >= self.schema_wait:
                    raise SchemaNotYetAccepted(
                        scrub_secrets(
                            f"{exc}; still refused after {waited:.0f}s. The rows are appended again "
                            "by the next refresh, and the settled load writes them in any case."
                        ),
                        pending,
                    ) from None
                pause = min(delay, _LONGEST_SCHEMA_RETRY, self.schema_wait - waited)
                self.sleep(pause)
                waited, delay = waited + pause, delay * 2

    def _send(self, table: str, stream: str, schema: bytes, batches: list[pa.RecordBatch]) -> None:
        """Send ``batches`` on one new connection and wait for every answer.

        Raises:
            SchemaNotYetAccepted: some requests were refused for a column the backend does not
                know yet, none for another reason (the refused ones are in the exception).
            DestinationError: a request was refused for another reason.
        """
        from google.cloud.bigquery_storage_v1 import types
        from google.cloud.bigquery_storage_v1.writer import AppendRowsStream

        template = types.AppendRowsRequest(
            write_stream=stream,
            arrow_rows=types.AppendRowsRequest.ArrowData(
                writer_schema=types.ArrowSchema(serialized_schema=schema)
            ),
        )
        writer = AppendRowsStream(self.client, template)
        refused: list[pa.RecordBatch] = []
        first: gexc.GoogleAPICallError | None = None
        try:
            # Every request names the stream: the library puts it in the routing header, and
            # BigQuery accepts it on later requests when it matches the first.
            futures = [
                writer.send(
                    types.AppendRowsRequest(
                        write_stream=stream,
                        arrow_rows=types.AppendRowsRequest.ArrowData(
                            rows=types.ArrowRecordBatch(serialized_record_batch=b.serialize().to_pybytes())
                        ),
                    )
                )
                for b in batches
            ]
            for batch, future in zip(batches, futures, strict=True):
                try:
                    future.result(timeout=self.answer_timeout)
                except FutureTimeout:
                    raise DestinationError(
                        f"Storage Write API append to {table}: no answer within {self.answer_timeout:g}s"
                    ) from None
                except gexc.GoogleAPICallError as exc:
                    if not _is_extra_field_refusal(exc):
                        raise
                    refused.append(batch)
                    first = first or exc
        except gexc.GoogleAPICallError as exc:
            raise DestinationError(
                scrub_secrets(f"Storage Write API append to {table} failed: {exc.message or exc}")
            ) from None
        finally:
            if writer.is_active:
                writer.close()
        if first is not None:
            raise SchemaNotYetAccepted(
                scrub_secrets(
                    f"Storage Write API append to {table}: {len(refused)} of {len(batches)} requests "
                    f"refused for a column the backend does not know yet: {first.message or first}"
                ),
                refused,
            )


def _is_extra_field_refusal(exc: gexc.GoogleAPICallError) -> bool:
    """Whether ``exc`` carries a StorageError SCHEMA_MISMATCH_EXTRA_FIELDS (in the failed
    response's status details, or in the RPC's)."""
    from google.cloud.bigquery_storage_v1 import types

    details: list[Any] = []
    response = getattr(exc, "response", None)
    error = getattr(response, "error", None)
    if error is not None:
        details += list(error.details)
    details += [d for d in (getattr(exc, "details", None) or []) if hasattr(d, "type_url")]
    for detail in details:
        if detail.type_url == _STORAGE_ERROR_TYPE:
            storage_error = types.StorageError.deserialize(detail.value)
            if int(storage_error.code) == SCHEMA_MISMATCH_EXTRA_FIELDS:
                return True
    return False
