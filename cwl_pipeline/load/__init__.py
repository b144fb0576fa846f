"""The one load path, shared by every source and free of Dagster.

A source (:mod:`.polling`, :mod:`.objects`) reads and normalizes what one scope covers and
yields :class:`~cwl_pipeline.load.reads.SourceRead` objects: the rows and rejects, the scope
they replace, and the figures of the read. :func:`~cwl_pipeline.load.service.load` writes each
read to BigQuery in one atomic replacement and returns a
:class:`~cwl_pipeline.load.service.LoadOutcome`; the Dagster wiring only turns that outcome
into materializations and check results.
"""
