"""Export source: folders of CreateExportTask files in S3, and the history backfill that makes them.

* ``plan`` and ``folders`` (pure): the chunks a backfill exports, and the folder layout;
* ``tasks`` (I/O): CreateExportTask / DescribeExportTasks, one active task per account;
* ``read``: one task folder read and decoded into an
  :class:`~cwl_pipeline.load.objects.ObjectSetRead` for the load path;
* ``assets``, ``sensor`` and ``history_job`` (Dagster): one dynamic partition per folder, the
  sensor that adds folders once their task completed, and the backfill job.
"""
