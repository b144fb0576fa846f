"""Dagster wiring every source shares: resources, table assets, load checks, partitions, run
requests, retries of failed work and rollups. Each source's own wiring lives with it
(:mod:`cwl_pipeline.polling`, :mod:`cwl_pipeline.firehose`, :mod:`cwl_pipeline.exports`).
"""
