"""``cwl-pipeline export``: backfill a log group's history into S3 through CreateExportTask.

The range is exported in chunks (one export task each, one active task per account at a
time). What is already exported is read back from CloudWatch (DescribeExportTasks lists every
task with its log group, range, destination and status), so an interrupted backfill resumes
where it stopped when the same command runs again, on any machine: completed ranges are never
exported twice. An export stream of the pipeline then loads each task folder into BigQuery.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cwl_pipeline.config import (
    AwsSettings,
    ConfigError,
    HistorySource,
    S3Source,
    default_of,
    load_config,
    parse_duration,
)

_BAR_WIDTH = 30


def add_parser(sub: Any) -> None:
    """Register ``export``."""
    parser = sub.add_parser(
        "export",
        help="backfill a log group's history into S3 with CreateExportTask, one task at a time",
        description=(__doc__ or "").replace("``cwl-pipeline export``: ", "", 1),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="start", required=True, help="start: ISO 8601 date or date-time (UTC)")
    parser.add_argument("--to", dest="end", required=True, help="end (exclusive): ISO 8601, or 'now'")
    parser.add_argument("--log-group", help="the log group to export")
    parser.add_argument("--bucket", help="destination bucket (its policy must let CloudWatch Logs write)")
    parser.add_argument("--prefix", help="destination prefix (the export stream's prefix)")
    parser.add_argument("--chunk", default="1d", help="length of one export task (default: 1d)")
    parser.add_argument(
        "--stream",
        help="take log group, bucket, prefix and AWS settings from this export stream of the pipeline config",
    )
    parser.add_argument("--config", type=Path, help="pipeline config (default: $CWL_PIPELINE_CONFIG)")
    parser.add_argument("--endpoint-url", help="AWS endpoint (default: the SDK's, or AWS_ENDPOINT_URL)")
    parser.add_argument("--region", help="AWS Region (default: the SDK's)")
    parser.add_argument("--profile", help="AWS named profile")
    poll = default_of(HistorySource, "poll_interval").total_seconds()
    parser.add_argument(
        "--poll-seconds", type=float, default=poll, help=f"DescribeExportTasks interval (default: {poll:g})"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the backfill; 0 when every chunk completed, 1 when some failed, 2 on bad input."""
    from botocore.exceptions import BotoCoreError

    from cwl_pipeline.adapters.errors import SourceError
    from cwl_pipeline.exports.plan import parse_time, recent_data_warning
    from cwl_pipeline.exports.tasks import run_export_backfill
    from cwl_pipeline.orchestration.resources import AwsResource

    try:
        settings, log_group, bucket, prefix = _destination(args)
        start, end = parse_time(args.start), parse_time(args.end)
        size = parse_duration(args.chunk, "--chunk")
        if end <= start:
            raise ValueError(f"--to {end.isoformat()} is not after --from {start.isoformat()}")
    except (ValueError, ConfigError) as exc:
        return _error(str(exc), 2)
    warning = recent_data_warning(end, datetime.now(UTC))
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    bar = ProgressBar(sys.stderr)
    print(
        f"exporting {log_group} {start.isoformat()}..{end.isoformat()} to s3://{bucket}/{prefix}", flush=True
    )
    try:
        summary = run_export_backfill(
            AwsResource.from_settings(settings).client("logs"),
            log_group=log_group,
            bucket=bucket,
            prefix=prefix,
            start=start,
            end=end,
            chunk_size=size,
            poll_interval=args.poll_seconds,
            on_progress=bar.update,
        )
    except KeyboardInterrupt:
        bar.close()
        return _error("interrupted; run the same command again to resume", 130)
    except (SourceError, BotoCoreError) as exc:
        bar.close()
        return _error(str(exc), 1)
    bar.close()
    print(
        f"{summary.completed}/{summary.total} chunks exported ({summary.skipped} already done before, "
        f"{len(summary.created)} tasks created)",
        flush=True,
    )
    for record in summary.failed:
        print(
            f"failed: {record.chunk.label()} task {record.task_id}: {record.status} {record.message}",
            flush=True,
        )
    return 1 if summary.failed else 0


def _destination(args: argparse.Namespace) -> tuple[AwsSettings, str, str, str]:
    settings = AwsSettings()
    group, bucket, prefix = args.log_group, args.bucket, args.prefix
    if args.stream:
        config = load_config(args.config)
        try:
            source = config.stream(args.stream).source
        except KeyError:
            raise ValueError(f"--stream: no stream {args.stream!r} in {config.path}") from None
        if not isinstance(source, S3Source) or source.layout != "export":
            raise ValueError(
                f"--stream: {args.stream!r} is not an export stream (source type s3, layout export)"
            )
        settings = config.aws
        group, bucket, prefix = group or source.log_group, bucket or source.bucket, prefix or source.prefix
    missing = [
        name
        for name, value in (("--log-group", group), ("--bucket", bucket), ("--prefix", prefix))
        if not value
    ]
    if missing:
        raise ValueError(f"missing {', '.join(missing)} (or name an export stream with --stream)")
    settings = settings.model_copy(
        update={
            "region": args.region or (settings.region if args.stream else _sdk_region()),
            "endpoint_url": args.endpoint_url or settings.endpoint_url,
            "profile": args.profile or settings.profile,
        }
    )
    return settings, group, bucket, prefix


def _sdk_region() -> str:
    import boto3

    return boto3.session.Session().region_name or default_of(AwsSettings, "region")


def _error(message: str, code: int) -> int:
    print(f"cwl-pipeline export: error: {message}", file=sys.stderr, flush=True)
    return code


class ProgressBar:
    """A one-line text progress bar on a terminal; one line per step otherwise (logs, CI)."""

    def __init__(self, out: TextIO) -> None:
        """Write to ``out``."""
        self.out = out
        self.live = out.isatty()
        self._last = ""

    def update(self, step: Any) -> None:
        """Show an :class:`~cwl_pipeline.exports.tasks.ExportProgress` step."""
        filled = int(_BAR_WIDTH * step.done / step.total) if step.total else _BAR_WIDTH
        line = f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {step.describe()}"
        if self.live:
            self.out.write("\r" + line[:160].ljust(len(self._last)))
        elif line != self._last:
            self.out.write(line + "\n")
        self.out.flush()
        self._last = line

    def close(self) -> None:
        """End the live line."""
        if self.live and self._last:
            self.out.write("\n")
            self.out.flush()
