"""A polling stream's ``source.account`` (role and Region of its log groups) and log group ARNs."""

from __future__ import annotations

import re

import pytest
import yaml

from cwl_pipeline.config import CloudWatchSource, ConfigError, SourceAccount, load_config, parse_config

ROLE = "arn:aws:iam::222222222222:role/cwl-pipeline-source"
# The ARN form DescribeLogGroups shows as ``arn`` (with ":*") and as ``logGroupArn`` (without).
ARN = "arn:aws:logs:eu-west-1:333333333333:log-group:/aws/lambda/orders"


def config(source: str, extra: str = "", region: str = "eu-west-1") -> dict:
    return yaml.safe_load(
        f"""
aws: {{region: {region}}}
bigquery: {{project: cwl-local, dataset: d}}
streams:
  - name: s
    source: {source}
    start: "2026-01-01T00:00:00Z"
{extra}
"""
    )


def test_a_stream_names_the_role_and_region_of_its_log_groups():
    source = parse_config(
        config(
            f'{{log_groups: [/app], account: {{role_arn: "{ROLE}", region: eu-central-1, '
            'external_id: "${SOURCE_EXTERNAL_ID}"}}'
        )
    ).streams[0]
    assert source.source == CloudWatchSource(
        log_groups=("/app",),
        account=SourceAccount(role_arn=ROLE, region="eu-central-1", external_id="${SOURCE_EXTERNAL_ID}"),
    )
    assert source.source_account is not None and source.source_account.account_id == "222222222222"


def test_without_account_a_stream_reads_with_the_pipelines_identity():
    stream = parse_config(config("{log_groups: [/app]}")).streams[0]
    assert stream.source_account is None


def test_log_group_arns_are_kept_in_one_spelling_without_the_trailing_star():
    other = ARN.replace("orders", "payments")
    source = parse_config(config(f'{{log_groups: ["{ARN}", "{other}:*", /local]}}')).streams[0].source
    assert source.log_groups == (ARN, other, "/local")


def test_the_external_id_stays_a_reference_through_the_config_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_EXTERNAL_ID", "the-secret-value")
    path = tmp_path / "pipeline.yaml"
    text = config(
        f'{{log_groups: [/app], account: {{role_arn: "{ROLE}", external_id: "${{SOURCE_EXTERNAL_ID}}"}}}}'
    )
    path.write_text(yaml.safe_dump(text))
    account = load_config(path).streams[0].source_account
    assert account == SourceAccount(role_arn=ROLE, external_id="${SOURCE_EXTERNAL_ID}")
    assert "the-secret-value" not in repr(load_config(path))


@pytest.mark.parametrize(
    ("source", "extra", "message"),
    [
        (
            "{log_groups: [/a], account: {}}",
            "",
            "streams.s.source.account: name a role_arn, a region or both",
        ),
        ("{log_groups: [/a], account: [x]}", "", "streams.s.source.account: must be a mapping"),
        ("{log_groups: [/a], account: {role: x}}", "", "streams.s.source.account: unknown key(s) ['role']"),
        ("{log_groups: [/a], account: {role_arn: 222222222222}}", "", "streams.s.source.account.role_arn"),
        ("{log_groups: [/a], account: {region: Europe}}", "", "streams.s.source.account.region"),
        (
            f'{{log_groups: [/a], account: {{role_arn: "{ROLE}", external_id: plain-value}}}}',
            "",
            "streams.s.source.account.external_id: write it as a reference",
        ),
        (
            '{log_groups: [/a], account: {region: eu-west-2, external_id: "${X}"}}',
            "",
            "external_id: applies only with role_arn",
        ),
        ('{log_groups: ["arn:aws:logs:eu-west-1:1:log-group:/a"]}', "", "is not a log group ARN"),
        (f'{{log_group_prefixes: ["{ARN}"]}}', "", "is not a valid CloudWatch log group name"),
        (f'{{log_groups: ["{ARN}"], account: {{region: us-east-2}}}}', "", "is in Region eu-west-1"),
        (
            f'{{log_groups: [/a], account: {{role_arn: "{ROLE}"}}}}',
            "    history: {after: 2d, bucket: exports-1, prefix: h}",
            "streams.s.history: not supported with source.account",
        ),
        (
            f'{{log_groups: ["{ARN}"]}}',
            "    history: {after: 2d, bucket: exports-1, prefix: h}",
            "CreateExportTask exports log groups of the account it is called in",
        ),
        ("{type: s3, bucket: b-1, layout: firehose, account: {region: eu-west-2}}", "", "unknown key(s)"),
    ],
)
def test_invalid_accounts_and_arns_name_the_key(source, extra, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(config(source, extra))


def test_an_arn_in_the_pipelines_region_needs_no_account():
    stream = parse_config(config(f'{{log_groups: ["{ARN}"]}}', region="eu-west-1")).streams[0]
    assert stream.source_account is None
    with pytest.raises(ConfigError, match="the stream reads in us-east-1"):
        parse_config(config(f'{{log_groups: ["{ARN}"]}}', region="us-east-1"))
