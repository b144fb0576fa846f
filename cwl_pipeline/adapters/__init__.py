"""I/O adapters every source shares: AWS sessions, S3 and BigQuery. They know nothing of Dagster.

Source-specific AWS calls live with their source (FilterLogEvents in :mod:`cwl_pipeline.polling`,
CreateExportTask in :mod:`cwl_pipeline.exports`).
"""
