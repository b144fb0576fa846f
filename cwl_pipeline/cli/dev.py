"""``cwl-pipeline dev``: the whole local stack with data flowing, and the Dagster UI.

Starts local AWS (moto server), the BigQuery emulator, demo producers writing to local
CloudWatch Logs, and the Dagster webserver and daemon with a persistent ``DAGSTER_HOME``.
The second demo log group, ``/cwl-demo/worker``, is also delivered through a subscription
filter and Firehose to an S3 bucket in local AWS, and has a bucket for history exports.
Dagster reads the bundled local config (``pipeline.local.yaml``, or ``--config``) through
``CWL_PIPELINE_CONFIG``, which this command sets: the local config is never a silent default.
Ctrl-C or SIGTERM stops every child process and frees the ports.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cwl_pipeline.config import BUNDLED_CONFIG, CONFIG_ENV_VAR
from cwl_pipeline.local.processes import (
    LOCAL_CREDENTIALS,
    LOCAL_PROJECT,
    LocalService,
    ServiceError,
    bigquery_service,
    moto_service,
)

DEMO_LOG_GROUP = "/cwl-demo/app"
DEMO_LAMBDA_GROUP = "/aws/lambda/cwl-demo"
DEMO_LAMBDA_STREAMS = (
    "2026/11/30/[$LATEST]0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "2026/11/30/[$LATEST]1a2b3c4d5e6f",
)

DAGSTER_YAML = """\
# Written by `cwl-pipeline dev`.
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    # Every pool is one BigQuery table's writer: one op at a time writes a table.
    default_limit: 1
run_queue:
  # Dagster's default is 5 s; every second counts in the put -> queryable latency.
  dequeue_interval_seconds: 1
sensors:
  # Each sensor evaluated in its own thread: a slow tick of one never delays the live sensors.
  use_threads: true
  num_workers: 4
"""

WORKSPACE_YAML = """\
# Written by `cwl-pipeline dev`.
load_from:
  - python_module:
      module_name: cwl_pipeline.definitions
      location_name: cwl_pipeline
"""


def add_parser(sub: Any) -> None:
    """Register ``dev``."""
    parser = sub.add_parser("dev", help="run the local stack, a demo producer and the Dagster UI")
    parser.add_argument("--ui-port", type=int, default=_env_int("CWL_UI_PORT", 3000))
    parser.add_argument("--bigquery-port", type=int, default=_env_int("CWL_BQ_PORT", 9050))
    parser.add_argument("--bigquery-grpc-port", type=int, default=_env_int("CWL_BQ_GRPC_PORT", 9060))
    parser.add_argument("--aws-port", type=int, default=_env_int("CWL_AWS_PORT", 4566))
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("CWL_DEV_HOME", ".local_data")),
        help="folder for DAGSTER_HOME, emulator data and logs (default: ./.local_data)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=BUNDLED_CONFIG,
        help=f"pipeline config for Dagster (default: the bundled local config; {CONFIG_ENV_VAR} is ignored)",
    )
    parser.add_argument("--no-producer", action="store_true", help="do not write demo logs")
    parser.set_defaults(handler=run)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _dagster_env(home: Path, args: argparse.Namespace) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(home / "dagster_home"),
        # The local stack chooses its config explicitly; the definitions have no default.
        CONFIG_ENV_VAR: str(args.config.resolve()),
        "CWL_AWS_ENDPOINT_URL": f"http://127.0.0.1:{args.aws_port}",
        "CWL_BQ_ENDPOINT": f"http://127.0.0.1:{args.bigquery_port}",
        "CWL_BQ_GRPC_ENDPOINT": f"127.0.0.1:{args.bigquery_grpc_port}",
        "CWL_BQ_PROJECT": LOCAL_PROJECT,
        **LOCAL_CREDENTIALS,
    }


def _restore_default_signals() -> None:
    # A process started from a non-interactive shell may inherit ignored SIGINT/SIGTERM;
    # Dagster's processes must die on them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run(args: argparse.Namespace) -> int:
    """Start everything, wait for a signal, stop everything."""
    import boto3

    from cwl_pipeline.local.demo_producer import DemoProducer
    from cwl_pipeline.local.firehose_demo import (
        DEMO_FIREHOSE_BUCKET,
        DEMO_FIREHOSE_PREFIX,
        DEMO_WORKER_GROUP,
        ensure_worker_demo,
    )
    from cwl_pipeline.local.lambda_demo import LambdaInvocations
    from cwl_pipeline.local.partner_demo import DEMO_PARTNER_ACCOUNT, DEMO_PARTNER_GROUP, partner_clients

    home: Path = args.home.resolve()
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    (dagster_home / "workspace.yaml").write_text(WORKSPACE_YAML)
    env = _dagster_env(home, args)
    os.environ.update(env)

    services: list[LocalService] = []
    producer: DemoProducer | None = None
    worker: DemoProducer | None = None
    lambda_producer: DemoProducer | None = None
    partner_producer: DemoProducer | None = None
    stopping = False

    def request_stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        aws = moto_service(args.aws_port, log_path=logs / "moto.log")
        services.append(aws.start())
        print(f"local AWS (moto)           {aws.url}", flush=True)
        bq = bigquery_service(
            args.bigquery_port,
            args.bigquery_grpc_port,
            data_dir=home / "bigquery",
            log_path=logs / "bigquery.log",
        )
        services.append(bq.start())
        print(f"local BigQuery (emulator)  {bq.url}  project {LOCAL_PROJECT}", flush=True)
        ensure_worker_demo(aws.url, LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"])
        print(
            f"local Firehose             {DEMO_WORKER_GROUP} -> s3://{DEMO_FIREHOSE_BUCKET}/{DEMO_FIREHOSE_PREFIX}",
            flush=True,
        )

        if not args.no_producer:
            client = boto3.client(
                "logs", endpoint_url=aws.url, region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"]
            )
            metrics = boto3.client(
                "cloudwatch", endpoint_url=aws.url, region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"]
            )
            producer = DemoProducer(client, DEMO_LOG_GROUP, metrics_client=metrics)
            producer.ensure_log_group()
            producer.start()
            print(f"demo producer              writing to log group {DEMO_LOG_GROUP}", flush=True)
            # A second, slower producer: every burst becomes one S3 object through Firehose.
            worker = DemoProducer(client, DEMO_WORKER_GROUP, streams=("worker-1",), interval=5.0)
            worker.start()
            print(f"demo producer              writing to log group {DEMO_WORKER_GROUP}", flush=True)
            # Lambda-style platform and application lines, read through the lambda parser.
            lambda_producer = DemoProducer(
                client,
                DEMO_LAMBDA_GROUP,
                streams=DEMO_LAMBDA_STREAMS,
                interval=3.0,
                metrics_client=metrics,
                lines=LambdaInvocations,
            )
            lambda_producer.ensure_log_group()
            lambda_producer.start()
            print(f"demo producer              writing to log group {DEMO_LAMBDA_GROUP}", flush=True)
            # A log group in a second account, read by the partner_events stream through a role.
            partner_logs, partner_metrics = partner_clients(aws.url, LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"])
            partner_producer = DemoProducer(
                partner_logs, DEMO_PARTNER_GROUP, interval=4.0, metrics_client=partner_metrics
            )
            partner_producer.ensure_log_group()
            partner_producer.start()
            print(
                f"demo producer              writing to log group {DEMO_PARTNER_GROUP} "
                f"in account {DEMO_PARTNER_ACCOUNT}",
                flush=True,
            )

        workspace = str(dagster_home / "workspace.yaml")
        bin_dir = Path(sys.executable).parent
        daemon = LocalService(
            name="Dagster daemon",
            argv=[str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
            port=0,
            env=env,
            log_path=logs / "dagster-daemon.log",
        )
        webserver = LocalService(
            name="Dagster webserver",
            argv=[
                str(bin_dir / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(args.ui_port),
                "-w",
                workspace,
            ],
            port=args.ui_port,
            env=env,
            log_path=logs / "dagster-webserver.log",
        )
        services.append(webserver.start(timeout=120, preexec=_restore_default_signals))
        services.append(daemon.start(preexec=_restore_default_signals))
        print(f"Dagster UI                 http://127.0.0.1:{args.ui_port}", flush=True)
        print(f"DAGSTER_HOME               {dagster_home}", flush=True)
        print(f"pipeline config            {env[CONFIG_ENV_VAR]}", flush=True)
        print(f"logs                       {logs}", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        while not stopping:
            for service in services:
                if service.process and service.process.poll() is not None:
                    print(
                        f"{service.name} exited with code {service.process.returncode}; stopping", flush=True
                    )
                    return 1
            time.sleep(0.5)
        return 0
    except ServiceError as exc:
        print(f"cwl-pipeline dev: error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("stopping...", flush=True)
        if producer:
            producer.stop()
        if worker:
            worker.stop()
        if partner_producer:
            partner_producer.stop()
        if lambda_producer:
            lambda_producer.stop()
        for service in reversed(services):
            service.stop()
        print("stopped.", flush=True)
