"""The history backfill of an export stream as a Dagster job.

The same queue as ``cwl-pipeline export``
(:func:`cwl_pipeline.exports.tasks.run_export_backfill`): CreateExportTask chunk by
chunk, one active task per account, resuming from what DescribeExportTasks lists as already
exported (no local state: a run on an empty disk exports only what is missing).
The run log shows every step; each finished chunk is also recorded as an observation of the
stream's S3 prefix asset, with its task id and status. The stream's export sensor then loads
each task folder as it completes.
"""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from cwl_pipeline.config import ConfigError, S3Source, StreamConfig, parse_duration
from cwl_pipeline.exports.plan import parse_time, recent_data_warning
from cwl_pipeline.exports.tasks import ExportProgress, run_export_backfill
from cwl_pipeline.load.project_keys import DEFAULT_KEYS, ProjectKeys
from cwl_pipeline.orchestration.s3_assets import s3_source_key
from cwl_pipeline.orchestration.tables import STREAM_TAG


class ExportHistoryConfig(dg.Config):
    """Run config of an export history job."""

    from_: str = Field(alias="from", description="Start of the range: ISO 8601 date or date-time (UTC).")
    to: str = Field(description="End of the range (exclusive): ISO 8601 date or date-time (UTC), or 'now'.")
    chunk: str = Field(default="1d", description="Length of one export task, e.g. '1d' or '6h'.")
    poll_seconds: float = Field(default=10.0, description="How often DescribeExportTasks is asked.")


def build_export_history_job(stream: StreamConfig, project: ProjectKeys = DEFAULT_KEYS) -> dg.JobDefinition:
    """The ``<stream>_export_history`` job of an export stream, reading AWS under ``project``'s key."""
    source = stream.source
    assert isinstance(source, S3Source) and source.log_group
    log_group, bucket, prefix = source.log_group, source.bucket, source.prefix
    observed = s3_source_key(bucket, prefix)

    @dg.op(
        name=f"export_{stream.name}_history",
        description=f"CreateExportTask for {log_group} into s3://{bucket}/{prefix}, chunk by chunk.",
        required_resource_keys={project.aws},
    )
    def export_history(context: dg.OpExecutionContext, config: ExportHistoryConfig) -> dg.Output[dict]:
        try:
            start, end = parse_time(config.from_), parse_time(config.to)
            size = parse_duration(config.chunk, "chunk")
        except (ValueError, ConfigError) as exc:
            raise dg.Failure(description=str(exc)) from None
        warning = recent_data_warning(end, datetime.now(UTC))
        if warning:
            context.log.warning(warning)

        def progress(step: ExportProgress) -> None:
            context.log.info(step.describe())
            if step.kind == "finished" and step.record is not None:
                context.log_event(
                    dg.AssetObservation(
                        asset_key=observed,
                        metadata={
                            "export_chunk": step.record.chunk.label(),
                            "export_task_id": step.record.task_id or "",
                            "export_status": step.record.status,
                            "chunks_done": step.done,
                            "chunks_total": step.total,
                        },
                    )
                )

        summary = run_export_backfill(
            project.aws_resource(context).client("logs"),
            log_group=log_group,
            bucket=bucket,
            prefix=prefix,
            start=start,
            end=end,
            chunk_size=size,
            poll_interval=config.poll_seconds,
            on_progress=progress,
        )
        metadata = {
            "chunks_total": summary.total,
            "chunks_completed": summary.completed,
            "chunks_skipped_as_done": summary.skipped,
            "tasks_created": ", ".join(summary.created) or "none",
        }
        if summary.failed:
            failed = "; ".join(f"{r.chunk.label()}: {r.status} {r.message}" for r in summary.failed)
            raise dg.Failure(
                description=f"export chunks failed (run again to retry them): {failed}", metadata=metadata
            )
        return dg.Output(metadata, metadata=metadata)

    @dg.job(
        name=f"{stream.name}_export_history",
        description=(
            f"Backfill the history of {log_group} through CreateExportTask (then loaded by {stream.name})."
        ),
        tags={STREAM_TAG: stream.name},
    )
    def export_history_job() -> None:
        export_history()

    return export_history_job
