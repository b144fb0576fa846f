"""The typed attributes of a stream Component: every key of a pipeline-file stream.

Derived from the config sections (:func:`cwl_pipeline.components.attributes.attributes_of`):
``StreamConfig`` and the sections it holds. The parser, filter and redaction keys are the
formats of :mod:`cwl_pipeline.core` (parsers, event rules), shown here with their keys.
"""

# No ``from __future__ import annotations``: Dagster derives the YAML schema from the annotations.
from typing import Literal, TypeAlias

from pydantic import Field

from cwl_pipeline.components.attributes import (
    Attributes,
    Flag,
    Names,
    OptionalText,
    attributes_of,
    describe_keys,
)
from cwl_pipeline.config import (
    STREAM_TUNING_KEYS,
    CloudWatchSource,
    FilterSettings,
    Freshness,
    HistorySource,
    LiveSettings,
    ReconcileSettings,
    RedactionRule,
    Route,
    S3Notifications,
    S3Source,
    SourceAccount,
    StreamConfig,
)
from cwl_pipeline.core.parsers import PARSER_TYPES


class ParserAttributes(Attributes):
    """A parser with options (``regex``, ``vpc_flow``); a plain name needs none."""

    type: Literal[PARSER_TYPES] = Field(description="The parser.")  # type: ignore[valid-type]
    pattern: OptionalText = Field(None, description="regex: the expression; named groups are fields.")
    nulls: Names = Field(None, description="regex: group values read as NULL, e.g. ['-'].")
    fields: Names = Field(None, description="vpc_flow: the custom format's fields in order.")
    format: OptionalText = Field(None, description="vpc_flow: the format string '${version} ${vpc-id} ...'.")


Parser: TypeAlias = Literal[PARSER_TYPES] | ParserAttributes  # type: ignore[valid-type]


_SCHEMA_KEYS = {"parser": Parser | None}
_RULE_KEYS = {"raw": Flag}

describe_keys(Route, written=_SCHEMA_KEYS, required=frozenset({"name"}))
describe_keys(StreamConfig, written={**_SCHEMA_KEYS, **_RULE_KEYS}, required=frozenset({"name", "source"}))
SourceAccountAttributes = attributes_of(SourceAccount)
CloudWatchSourceAttributes = attributes_of(CloudWatchSource)
NotificationsAttributes = attributes_of(S3Notifications)
S3SourceAttributes = attributes_of(S3Source)
HistoryAttributes = attributes_of(HistorySource)
ReconcileAttributes = attributes_of(ReconcileSettings)
LiveAttributes = attributes_of(LiveSettings)
FreshnessAttributes = attributes_of(Freshness)
FilterAttributes = attributes_of(FilterSettings)
RedactionAttributes = attributes_of(RedactionRule)
RouteAttributes = attributes_of(Route)
StreamTuningAttributes = attributes_of(
    StreamConfig, keys=frozenset(STREAM_TUNING_KEYS), name="StreamTuningAttributes"
)
"""The keys a stream may take from the settings' ``defaults``."""
StreamAttributes = attributes_of(StreamConfig, name="StreamAttributes")
"""Every key of a stream of the pipeline config file."""
