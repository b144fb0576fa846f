"""Pure code of S3 objects, shared by the sources that read them (Firehose deliveries, export folders).

* ``stored``: one listed object (key, ETag, size, modification time), its URI, the digest of a set;
* ``decode``: one object of a Firehose or export layout decoded into events, never raising;
* ``batch``: the decoded objects of one load as one batch, duplicates dropped and unreadable
  objects kept as rejects.

Like :mod:`cwl_pipeline.core`, nothing here imports dagster, boto3 or google-cloud.
"""
