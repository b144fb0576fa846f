"""The ``aws-logs-write-test`` object inside an export task folder: skipped with a note."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import parse_config
from cwl_pipeline.exports.read import read_export_folder

TASK = "5c1d9e2f-7a3b-4c8d-9e0f-1a2b3c4d5e6f"
EXPORT = (
    "2026-11-20T10:00:00.000Z START RequestId: 1 Version: $LATEST\n"
    "2026-11-20T10:00:00.050Z END RequestId: 1\n"
)


def test_write_test_object_in_a_task_folder_is_skipped_and_named(s3, bucket):
    """CreateExportTask checks its access with this object; in a task folder it holds no events
    and must neither fail the folder nor become a reject."""
    source = {
        "type": "s3",
        "bucket": bucket,
        "prefix": "exp",
        "layout": "export",
        "log_group": "/aws/lambda/a",
    }
    config = parse_config(
        {
            "bigquery": {"project": "cwl-local", "dataset": "d"},
            "streams": [{"name": "hist", "source": source, "parser": "lambda", "start": "2026-01-01"}],
        }
    )
    data_key = f"exp/{TASK}/2026/11/20/[$LATEST]ab/000000.gz"
    s3.put_object(Bucket=bucket, Key=data_key, Body=gzip.compress(EXPORT.encode()))
    s3.put_object(Bucket=bucket, Key=f"exp/{TASK}/aws-logs-write-test", Body=b"Permission Check Successful")

    read = read_export_folder(config.streams[0], S3ObjectStore(s3), TASK)

    rows, rejects = read.tables()
    assert rows.column("record_type").to_pylist() == ["start", "end"]
    assert rejects.num_rows == 0 and read.unreadable == []
    # The load logs this list and puts it in the run metadata.
    assert read.facts["write_test_objects_skipped"] == [f"s3://{bucket}/exp/{TASK}/aws-logs-write-test"]
    assert read.part_figures(datetime.now(UTC))[TASK]["objects_read"] == 1
