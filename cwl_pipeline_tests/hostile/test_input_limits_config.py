"""The per-stream decompression limit of S3 sources: parsed, defaulted, refused when wrong."""

from __future__ import annotations

import pytest

from cwl_pipeline.config import ConfigError, parse_config
from cwl_pipeline.core.formats.gzip_members import DEFAULT_MAX_DECOMPRESSED_BYTES


def s3_stream(**source_keys) -> dict:
    source = {"type": "s3", "bucket": "my-bucket", "prefix": "fh/", "layout": "firehose", **source_keys}
    return {
        "bigquery": {"project": "my-project", "dataset": "logs"},
        "streams": [{"name": "logs", "source": source, "start": "2026-01-01"}],
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, DEFAULT_MAX_DECOMPRESSED_BYTES), (1024, 1024), ("16MiB", 16 << 20), ("2 GB", 2_000_000_000)],
)
def test_limit_is_parsed(value, expected):
    keys = {} if value is None else {"max_decompressed_bytes": value}
    assert parse_config(s3_stream(**keys)).streams[0].source.max_decompressed_bytes == expected


@pytest.mark.parametrize("value", [0, -1, "lots", 1.5, True, "16 furlongs"])
def test_bad_limit_names_the_key(value):
    with pytest.raises(ConfigError, match=r"streams\.logs\.source\.max_decompressed_bytes: "):
        parse_config(s3_stream(max_decompressed_bytes=value))
