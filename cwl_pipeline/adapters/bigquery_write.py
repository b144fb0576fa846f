"""Append rows to a BigQuery table through the Storage Write API's default stream.

Used for the rows of a still-open window, refreshed every minute: the Storage Write API needs
no load job (100,000 per project and day) and no query (each billed at least 10 MiB), and its
rows are visible at once. The default stream is at-least-once: an append retried after a lost
answer can store rows twice, so readers deduplicate (see the ``_recent`` view) and the settled
load of the window writes the events table exactly once.

Rows travel as Arrow record batches (``AppendRowsRequest.arrow_rows``), at most
:data:`MAX_REQUEST_BYTES` per request.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from google.api_core import exceptions as gexc

from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.core.redaction import redact_secrets

MAX_REQUEST_BYTES = 8 * 2**20  # AppendRows requests are limited to 10 MB


class StreamAppender:
    """Appends Arrow tables to tables of one project and dataset."""

    def __init__(self, client: Any, project: str, dataset: str) -> None:
        """``client`` is a ``bigquery_storage_v1.BigQueryWriteClient``."""
        self.client = client
        self.project = project
        self.dataset = dataset

    def append(self, table: str, data: pa.Table) -> int:
        """Append ``data`` to ``table``'s default stream; returns the requests sent.

        Raises:
            DestinationError: BigQuery refused a request (the message names the table).
        """
        from google.cloud.bigquery_storage_v1 import types

        if not data.num_rows:
            return 0
        stream = f"projects/{self.project}/datasets/{self.dataset}/tables/{table}/streams/_default"
        schema = types.ArrowSchema(serialized_schema=data.schema.serialize().to_pybytes())
        requests = [
            types.AppendRowsRequest(
                write_stream=stream,
                arrow_rows=types.AppendRowsRequest.ArrowData(
                    writer_schema=schema,
                    rows=types.ArrowRecordBatch(serialized_record_batch=batch.serialize().to_pybytes()),
                ),
            )
            for batch in _batches(data)
        ]
        try:
            for response in self.client.append_rows(iter(requests)):
                if response.error and response.error.code:
                    raise DestinationError(
                        redact_secrets(
                            f"Storage Write API append to {table} failed: {response.error.message}"
                        )
                    )
        except gexc.GoogleAPICallError as exc:
            raise DestinationError(
                redact_secrets(f"Storage Write API append to {table} failed: {exc}")
            ) from None
        return len(requests)


def _batches(data: pa.Table) -> list[pa.RecordBatch]:
    """Record batches of at most about :data:`MAX_REQUEST_BYTES` each."""
    combined = data.combine_chunks()
    per_row = max(1, combined.nbytes // max(1, combined.num_rows))
    rows = max(1, MAX_REQUEST_BYTES // per_row)
    return combined.to_batches(max_chunksize=rows)
