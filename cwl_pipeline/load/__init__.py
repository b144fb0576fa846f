"""The one load path, shared by every source and free of Dagster.

A source (:mod:`cwl_pipeline.polling.read`, :mod:`cwl_pipeline.firehose.read`,
:mod:`cwl_pipeline.exports.read`) reads and normalizes what one scope covers and yields
:class:`~cwl_pipeline.load.reads.SourceRead` objects: the rows and rejects, the scope they
replace, and the figures of the read (S3 sources share :mod:`cwl_pipeline.load.objects`).
:func:`~cwl_pipeline.load.service.load` writes each read to BigQuery (:mod:`.tables`: the
stream's tables) and returns a :class:`~cwl_pipeline.load.service.LoadOutcome`; the Dagster
wiring only turns that outcome into materializations and check results.
"""
