"""One Firehose stream carrying many log groups, routed to tables; any key layout; error output.

Against local AWS (moto server) and the BigQuery emulator.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import timedelta

import dagster as dg

from cwl_pipeline_tests.s3.s3_stack import (
    definitions,
    envelope,
    gzip_envelopes,
    key_hour,
    last_window_key,
    materialize,
    ms,
    rejects,
    rows,
    write_s3_config,
)

NAME = "cwl-delivery-1-2026-11-20-10-05-00-0b7a4f3e-4b9c-4a57-9a56-2f0c1d8e9a11"
ROUTES = """
    routes:
      - {name: api, log_group_prefixes: [/app/api/]}
      - {name: fn, pattern: "/aws/lambda/.*"}
    unrouted: reject
"""


def routed_source(bucket: str) -> str:
    return (
        f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose, "
        f'key_template: "fh/!{{partitionKeyFromQuery:account}}/!{{timestamp:yyyy/MM/dd/HH}}/", '
        f'error_prefix: "fh-errors/!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd/HH}}/"}}'
    )


def checks_by_asset(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.asset_check_evaluation_data
            out[(data.asset_key.to_user_string(), data.check_name)] = data.passed
    return out


def test_one_read_loads_each_route_into_its_tables_with_its_own_checks(
    s3, bucket, bq_client, local_aws, local_bigquery, write_config, unique_name
):
    dataset = f"ds_{unique_name}"
    hour = key_hour()
    t0 = ms(hour + timedelta(minutes=3))
    body = gzip_envelopes(
        envelope("/app/api/orders", "a", [("1", t0, {"session_id": 1, "action": "get"})]),
        envelope("/app/api/users", "b", [("2", t0 + 1, {"session_id": 2, "action": "put"})]),
        envelope("/aws/lambda/resize", "c", [("3", t0 + 2, {"session_id": 3, "action": "run"})]),
        envelope("/other/batch", "d", [("4", t0 + 3, {"session_id": 4, "action": "job"})]),
    )
    s3.put_object(Bucket=bucket, Key=f"fh/111122223333/{hour:%Y/%m/%d/%H}/{NAME}", Body=body)
    # A record a transformation Lambda failed on, in Firehose's error record format.
    failed = envelope("/app/api/orders", "a", [("5", t0 + 4, "x")])
    error_record = {
        "attemptsMade": 4,
        "arrivalTimestamp": t0 + 4,
        "errorCode": "Lambda.FunctionError",
        "errorMessage": "The Lambda function was successfully invoked but it returned an error result.",
        "attemptEndingTimestamp": t0 + 9000,
        "rawData": base64.b64encode(gzip.compress(json.dumps(failed).encode())).decode(),
        "lambdaArn": "arn:aws:lambda:us-east-1:111122223333:function:transform:$LATEST",
    }
    s3.put_object(
        Bucket=bucket,
        Key=f"fh-errors/processing-failed/{hour:%Y/%m/%d/%H}/{NAME}",
        Body=(json.dumps(error_record) + "\n").encode(),
    )
    s3.put_object(Bucket=bucket, Key="fh/manual-upload.json", Body=b"{}")  # outside the layout

    path = write_s3_config(write_config, local_aws, local_bigquery, dataset, routed_source(bucket), ROUTES)
    defs = definitions(path)
    result = materialize(defs, last_window_key(hour))
    assert result.success

    assert [r["log_group"] for r in rows(bq_client, dataset, "logs_api")] == [
        "/app/api/orders",
        "/app/api/users",
    ]
    assert [r["action"] for r in rows(bq_client, dataset, "logs_fn")] == ["run"]
    assert rows(bq_client, dataset, "logs") == []
    own = rejects(bq_client, dataset)
    assert [(r["reason"], r["log_group"]) for r in own] == [
        ("firehose_processing_failed", "/app/api/orders"),
        ("unrouted", "/other/batch"),
    ]
    assert own[0]["detail"].startswith("Lambda.FunctionError: The Lambda function")
    assert json.loads(own[0]["raw_message"])["logEvents"][0]["id"] == "5"
    assert rejects(bq_client, dataset, "logs_api_rejects") == []
    checks = checks_by_asset(result)
    for table in ("logs", "logs_api", "logs_fn"):
        for check in ("completeness", "no_duplicate_event_ids", "schema_matches"):
            assert checks[(table, check)], (table, check, checks)

    # A run selecting one route loads that route only (the multi-asset can be subset).
    subset = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey("logs_fn"), dg.AssetKey("logs_fn_rejects")}
    )
    again = subset.execute_in_process(
        partition_key=last_window_key(hour), instance=dg.DagsterInstance.ephemeral()
    )
    assert {k[0] for k in checks_by_asset(again)} == {"logs_fn"}
    assert [r["action"] for r in rows(bq_client, dataset, "logs_fn")] == ["run"]

    # The sensor requests the window once for every route, and reports the stray key on a
    # failing keys_in_layout check.
    sensor = defs.resolve_sensor_def("logs_objects")
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
    tick = sensor.evaluate_tick(context)
    assert [r.partition_key for r in tick.run_requests] == [last_window_key(hour)]
    evaluations = [e for e in tick.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert [(e.check_name, e.passed) for e in evaluations] == [("keys_in_layout", False)]
    assert evaluations[0].metadata["keys"].value == "fh/manual-upload.json"

    # Run by hand, the check lists the last day of keys again and still finds it.
    check = dg.AssetCheckKey(dg.AssetKey("logs"), "keys_in_layout")
    job = dg.define_asset_job("layout", selection=dg.AssetSelection.checks(check))
    layout_defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    ran = layout_defs.resolve_job_def("layout").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert checks_by_asset(ran).get(("logs", "keys_in_layout")) is False


def _routed_objects(s3, bucket: str, hour) -> dict[str, int]:
    """Three objects in the last window of ``hour`` (the second a Firehose retry repeating
    event 2), one in the last window of the hour before, and one error record; returns
    events per route."""
    t0 = ms(hour + timedelta(minutes=46))
    batches = [
        (
            envelope(
                "/app/api/orders", "a", [("1", t0, {"session_id": 1}), ("2", t0 + 1, {"session_id": 2})]
            ),
            envelope("/aws/lambda/resize", "c", [("3", t0 + 2, {"session_id": 3})]),
        ),
        (
            envelope("/app/api/orders", "a", [("2", t0 + 1, {"session_id": 2}), ("4", t0 + 3, "not json")]),
            envelope("/other/batch", "d", [("5", t0 + 4, {"session_id": 5})]),
        ),
        (envelope("/aws/lambda/resize", "c", [("6", t0 + 5, {"session_id": 6})]),),
    ]
    for n, envelopes in enumerate(batches):
        s3.put_object(
            Bucket=bucket,
            Key=f"fh/111122223333/{hour:%Y/%m/%d/%H}/{NAME}-{n}",
            Body=gzip_envelopes(*envelopes),
        )
    earlier = ms(hour - timedelta(minutes=10))
    s3.put_object(
        Bucket=bucket,
        Key=f"fh/111122223333/{hour - timedelta(hours=1):%Y/%m/%d/%H}/{NAME}-early",
        Body=gzip_envelopes(envelope("/app/api/users", "b", [("7", earlier, {"session_id": 7})])),
    )
    failed = envelope("/app/api/orders", "a", [("8", t0 + 6, "x")])
    record = {"errorCode": "Lambda.FunctionError", "errorMessage": "boom", "arrivalTimestamp": t0 + 6}
    record["rawData"] = base64.b64encode(gzip.compress(json.dumps(failed).encode())).decode()
    s3.put_object(
        Bucket=bucket,
        Key=f"fh-errors/processing-failed/{hour:%Y/%m/%d/%H}/{NAME}",
        Body=(json.dumps(record) + "\n").encode(),
    )
    return {"api": 5, "fn": 2, "": 2}


def test_a_routed_step_reads_each_object_once_and_hands_over_chunks(
    monkeypatch, s3, bucket, local_aws, local_bigquery, write_config, unique_name
):
    """Against local S3: one event budget per chunk, every route fed as objects are read."""
    from cwl_pipeline.adapters.s3 import S3ObjectStore
    from cwl_pipeline.config import CHUNK_EVENTS_ENV, load_config
    from cwl_pipeline.firehose.read import read_routed_range

    monkeypatch.setenv(CHUNK_EVENTS_ENV, "1")
    hour = key_hour()
    _routed_objects(s3, bucket, hour)
    path = write_s3_config(
        write_config, local_aws, local_bigquery, f"ds_{unique_name}", routed_source(bucket), ROUTES
    )
    (stream,) = load_config(path).streams

    reads: list[str] = []

    class CountingStore(S3ObjectStore):
        def read(self, bucket: str, key: str) -> bytes:
            reads.append(key)
            return super().read(bucket, key)

    start = hour - timedelta(minutes=15)
    (step,) = read_routed_range(
        stream, CountingStore(s3), start, hour + timedelta(hours=1), windows_per_read=None
    )
    chunks = [(name, rows.num_rows, rejects.num_rows) for name, rows, rejects, _ in step.chunks()]
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 5  # four objects, one error object
    # Every object is handed over as soon as it is read (a chunk per object and route).
    assert chunks == [
        ("api", 1, 0),  # the window before: the early object
        ("api", 2, 0),
        ("fn", 1, 0),
        ("api", 1, 1),  # the retry: event 2 again (dropped in BigQuery), 4 not JSON
        ("", 0, 1),  # /other/batch: unrouted
        ("fn", 1, 0),
        ("", 0, 1),  # the error record
    ]
    api, fn, own = step.reads["api"], step.reads["fn"], step.reads[""]
    assert (api.events_at_source, fn.events_at_source, own.events_at_source) == (5, 2, 2)
    last = hour + timedelta(minutes=45)
    assert sorted(api.figures) == [start, last]

    def objects(read, window) -> list[str]:
        return [uri.rsplit("/", 1)[1].removeprefix(NAME) for uri in read.figures[window].readable]

    assert objects(api, start) == ["-early"] and objects(api, last) == ["-0", "-1"]
    assert objects(fn, last) == ["-0", "-2"] and objects(own, last) == ["-1", ""]  # "": the error object


def test_a_routed_range_loads_chunk_by_chunk_each_event_once(
    monkeypatch, s3, bucket, bq_client, local_aws, local_bigquery, write_config, unique_name
):
    """Five windows in steps of two, one event per chunk: each route's rows once, checks pass."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from cwl_pipeline.config import CHUNK_EVENTS_ENV

    monkeypatch.setenv(CHUNK_EVENTS_ENV, "1")
    dataset = f"ds_{unique_name}"
    hour = key_hour()
    _routed_objects(s3, bucket, hour)
    extra = ROUTES + "    windows_per_replace: 2\n"
    path = write_s3_config(write_config, local_aws, local_bigquery, dataset, routed_source(bucket), extra)
    defs = definitions(path)
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            ASSET_PARTITION_RANGE_START_TAG: last_window_key(hour - timedelta(hours=1)),
            ASSET_PARTITION_RANGE_END_TAG: last_window_key(hour),
        },
    )
    assert result.success
    assert [r["event_id"] for r in rows(bq_client, dataset, "logs_api")] == ["7", "1", "2"]
    assert [r["raw_message"] for r in rejects(bq_client, dataset, "logs_api_rejects")] == ["not json"]
    assert [r["event_id"] for r in rows(bq_client, dataset, "logs_fn")] == ["3", "6"]
    assert sorted(r["reason"] for r in rejects(bq_client, dataset)) == [
        "firehose_processing_failed",
        "unrouted",
    ]
    checks = checks_by_asset(result)
    for table in ("logs", "logs_api", "logs_fn"):
        for check in ("completeness", "no_duplicate_event_ids"):
            assert checks[(table, check)], (table, check, checks)
