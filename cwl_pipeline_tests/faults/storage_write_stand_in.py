"""A gRPC stand-in in front of the emulator's Storage Write API that refuses what BigQuery refuses.

bqemulator casts whatever Arrow types an append carries to the table's types and ignores
columns the table lacks, so an append real BigQuery refuses succeeds there (a millisecond
TIMESTAMP column did). This server sits between the pipeline's real client and the emulator's
real gRPC server. It forwards every ``AppendRows`` request unchanged, except those real
BigQuery refuses, which it answers itself the way the API reference says errors come back: an
``AppendRowsResponse`` whose ``error`` is a ``google.rpc.Status`` with code INVALID_ARGUMENT
("Indicates a malformed request or data"), the connection staying open. What it refuses:

* a column whose Arrow type is not the one the table "Supported Apache Arrow data types" of
  https://docs.cloud.google.com/bigquery/docs/supported-data-types gives for the column's
  BigQuery type (:data:`DOCUMENTED_ARROW_TYPES`), e.g. TIMESTAMP is "``Timestamp``, unit =
  MICROSECONDS, timezone = UTC";
* a column the table does not have: "You can omit nullable fields, but you cannot include any
  fields that are not present in the current schema. If you send rows with extra fields, the
  Storage Write API (gRPC) returns a ``StorageError`` with
  ``StorageErrorCode.SCHEMA_MISMATCH_EXTRA_FIELD``" (Storage Write API best practices, "Handle
  schema updates");
* a request of :data:`REQUEST_LIMIT` bytes or more ("The size of a single AppendRowsRequest must
  be less than 20 MB", AppendRowsRequest reference; the emulator itself refuses above 10 MiB).

The exact message texts BigQuery returns are not documented; the codes are.

Everything else is allowed, as BigQuery allows it: columns may be omitted, any integer width
goes to an INTEGER column, both float precisions to FLOAT, and a TIMESTAMP column also takes a
microsecond timestamp without a time zone (Google's own sample ``append_rows_with_arrow.py``
in python-bigquery-storage sends ``pa.timestamp("us")`` to a TIMESTAMP column). Column types the
pipeline never writes (DATE, NUMERIC, ...) are checked as documented where the table names
them, and otherwise passed through.

One more behaviour of real BigQuery the emulator cannot show: "The Storage Write API (gRPC)
detects schema changes after a short time, on the order of minutes" (same best-practices
section). :meth:`StorageWriteStandIn.hold_schemas` keeps using the table schemas the stand-in
has already seen, so a column added after that is refused as an extra field until
:meth:`StorageWriteStandIn.release_schemas`.

Each connection is recorded (:class:`AppendCall`): its gRPC metadata (where the
``x-goog-request-params`` routing header travels), the size of each request and the refusals.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pyarrow as pa
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import types
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2

APPEND_ROWS = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows"
REQUEST_LIMIT = 20_000_000
_MESSAGE_LIMIT = 64 * 2**20  # what the stand-in's own gRPC transport accepts
SCHEMA_MISMATCH_EXTRA_FIELDS = types.StorageError.StorageErrorCode.SCHEMA_MISMATCH_EXTRA_FIELDS


def _timestamp_us(kind: pa.DataType, zones: tuple[str | None, ...]) -> bool:
    return pa.types.is_timestamp(kind) and kind.unit == "us" and kind.tz in zones


# BigQuery column type (as tables.get names it) -> whether an Arrow type is documented for it.
DOCUMENTED_ARROW_TYPES = {
    "BOOL": pa.types.is_boolean,
    "BOOLEAN": pa.types.is_boolean,
    "BYTES": pa.types.is_binary,
    "DATE": pa.types.is_date32,
    "DATETIME": lambda t: _timestamp_us(t, (None,)),
    "FLOAT": pa.types.is_floating,
    "FLOAT64": pa.types.is_floating,
    "GEOGRAPHY": pa.types.is_string,
    "INTEGER": pa.types.is_integer,
    "INT64": pa.types.is_integer,
    "JSON": pa.types.is_string,
    "NUMERIC": pa.types.is_decimal128,
    "BIGNUMERIC": pa.types.is_decimal256,
    "STRING": pa.types.is_string,
    "TIMESTAMP": lambda t: _timestamp_us(t, ("UTC", None)),
}


@dataclass
class AppendCall:
    """One AppendRows connection the stand-in served."""

    metadata: list[tuple[str, str]]  # in order; a key may come more than once
    schema: pa.Schema | None = None  # the writer schema the connection sent
    request_sizes: list[int] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def header(self, name: str) -> list[str]:
        """Every value the connection sent for metadata key ``name``."""
        return [v for k, v in self.metadata if k == name]


@dataclass
class _Connection:
    stream: str = ""
    schema: bytes = b""
    upstream_has_schema: bool = False


class StorageWriteStandIn:
    """The stand-in server; use as a context manager. ``endpoint`` is its ``host:port``."""

    def __init__(self, upstream: str, rest_url: str, project: str) -> None:
        """``upstream``: the emulator's gRPC ``host:port``; ``rest_url``: its REST endpoint."""
        self.calls: list[AppendCall] = []
        self._upstream = grpc.insecure_channel(
            upstream,
            options=[
                ("grpc.max_send_message_length", _MESSAGE_LIMIT),
                ("grpc.max_receive_message_length", _MESSAGE_LIMIT),
            ],
        )
        self._bq = bigquery.Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": rest_url}
        )
        self._schemas: dict[str, dict[str, str]] = {}
        self._held = False
        self._lock = threading.Lock()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[
                ("grpc.max_send_message_length", _MESSAGE_LIMIT),
                ("grpc.max_receive_message_length", _MESSAGE_LIMIT),
            ],
        )
        self._server.add_generic_rpc_handlers([_Handler(self)])
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        """Where clients connect (``host:port``)."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> StorageWriteStandIn:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=1).wait()
        self._upstream.close()
        self._bq.close()

    def clear(self) -> None:
        """Forget the recorded calls and release held schemas."""
        with self._lock:
            self.calls.clear()
            self._held = False

    def hold_schemas(self) -> None:
        """Keep using the table schemas already seen (a column added later is refused)."""
        with self._lock:
            self._held = True

    def release_schemas(self) -> None:
        """Read table schemas afresh again (the backend has caught up)."""
        with self._lock:
            self._held = False

    # --- serving ----------------------------------------------------------------------------

    def append_rows(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        """Serve one AppendRows connection: refuse or forward each request, in order."""
        call = AppendCall(metadata=[(k, str(v)) for k, v in context.invocation_metadata()])
        with self._lock:
            self.calls.append(call)
        forwarded: queue.Queue[bytes | None] = queue.Queue()
        answers: Iterator[bytes] | None = None
        connection = _Connection()
        try:
            for raw in requests:
                call.request_sizes.append(len(raw))
                request = types.AppendRowsRequest.deserialize(raw)
                connection.stream = request.write_stream or connection.stream
                if request.arrow_rows.writer_schema.serialized_schema:
                    connection.schema = bytes(request.arrow_rows.writer_schema.serialized_schema)
                    call.schema = pa.ipc.read_schema(pa.py_buffer(connection.schema))
                refusal = self._refusal(len(raw), connection)
                if refusal is not None:
                    message, details = refusal
                    call.refusals.append(message)
                    yield _error(connection.stream, message, details)
                    continue
                carries_schema = bool(request.arrow_rows.writer_schema.serialized_schema)
                if connection.schema and not carries_schema and not connection.upstream_has_schema:
                    # The request that carried the schema was refused here: the emulator needs it.
                    request.arrow_rows.writer_schema.serialized_schema = connection.schema
                    raw = types.AppendRowsRequest.serialize(request)
                connection.upstream_has_schema = True
                if answers is None:
                    answers = self._upstream.stream_stream(APPEND_ROWS)(
                        iter(forwarded.get, None),
                        metadata=[(k, v) for k, v in call.metadata if k.startswith("x-goog-")],
                    )
                forwarded.put(raw)
                yield next(answers)
        finally:
            forwarded.put(None)

    def _refusal(self, size: int, connection: _Connection) -> tuple[str, list[any_pb2.Any]] | None:
        """Why BigQuery would refuse this request (message, status details), or None."""
        if size >= REQUEST_LIMIT:
            return f"AppendRowsRequest is {size} bytes; it must be less than {REQUEST_LIMIT}", []
        if not connection.schema:
            return None  # the emulator answers a request without a writer schema itself
        columns = self._columns(connection.stream)
        sent = pa.ipc.read_schema(pa.py_buffer(connection.schema))
        extra = [f.name for f in sent if f.name.lower() not in columns]
        if extra:
            detail = any_pb2.Any()
            detail.Pack(
                types.StorageError.pb(
                    types.StorageError(
                        code=SCHEMA_MISMATCH_EXTRA_FIELDS,
                        entity=connection.stream,
                        error_message=f"extra fields: {', '.join(extra)}",
                    )
                )
            )
            return f"Input schema has more fields than BigQuery schema, extra fields: {extra}", [detail]
        for column in sent:
            kind = columns[column.name.lower()]
            accepts = DOCUMENTED_ARROW_TYPES.get(kind)
            if accepts is not None and not accepts(column.type):
                return (
                    f"Arrow type {column.type} of field {column.name} is not supported for "
                    f"BigQuery type {kind}",
                    [],
                )
        return None

    def _columns(self, stream: str) -> dict[str, str]:
        """Column name (lower case) -> BigQuery type of the stream's table, as last seen if held."""
        _, project, _, dataset, _, table, *_ = stream.split("/")
        table_id = f"{project}.{dataset}.{table}"
        with self._lock:
            if self._held and table_id in self._schemas:
                return self._schemas[table_id]
        schema = {f.name.lower(): f.field_type for f in self._bq.get_table(table_id).schema}
        with self._lock:
            self._schemas[table_id] = schema
        return schema


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, stand_in: StorageWriteStandIn) -> None:
        self.stand_in = stand_in

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        # Only AppendRows is served (the pipeline calls nothing else); other methods are UNIMPLEMENTED.
        if handler_call_details.method == APPEND_ROWS:
            return grpc.stream_stream_rpc_method_handler(self.stand_in.append_rows)
        return None


def _error(stream: str, message: str, details: list[any_pb2.Any]) -> bytes:
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=details)
    return types.AppendRowsResponse.serialize(types.AppendRowsResponse(write_stream=stream, error=status))
