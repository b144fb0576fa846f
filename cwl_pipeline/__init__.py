"""cwl_pipeline: AWS CloudWatch Logs into Google BigQuery, micro-batch and idempotent, on Dagster."""
