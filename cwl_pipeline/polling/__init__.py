"""Polling source: CloudWatch Logs read with FilterLogEvents, window by window.

Data flow, in module order:

* ``plan`` (pure): which windows the sensor requests at each tick (settled loads, late-data
  sweeps, refreshes of the open window);
* ``filter_log_events`` (I/O): the FilterLogEvents reader, with a per-process request budget;
* ``read``: a range of windows read and normalized into :class:`~cwl_pipeline.load.reads.SourceRead`
  steps for the one load path (:mod:`cwl_pipeline.load.service`); ``history``: old windows read
  through CreateExportTask instead; ``rederive``: windows re-derived from the raw table in
  BigQuery (run tag ``cwl/rederive_from: raw``);
* ``assets`` and ``sensor`` (Dagster): the window-partitioned multi-asset and its sensor;
* reconciliation with CloudWatch's ``IncomingLogEvents``: ``reconcile_plan`` (pure),
  ``incoming_log_events`` (I/O), ``reconcile_counts`` (BigQuery), ``reconcile`` (Dagster).
"""
