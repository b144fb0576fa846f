"""I/O adapters: CloudWatch Logs, S3 and BigQuery. They know nothing of Dagster."""
