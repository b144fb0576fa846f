"""Pure core: formats, decoding, normalization and schemas.

Nothing in this package imports dagster, boto3 or google-cloud, so it is tested without
servers and shared by the Dagster assets and the command line.
"""
