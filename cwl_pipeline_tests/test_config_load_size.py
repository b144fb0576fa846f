"""A load's size: ``chunk_events`` and ``decode_workers``, per stream or in ``defaults``, each
overridden for every stream by its environment variable."""

from __future__ import annotations

import pytest

from cwl_pipeline.config import (
    CHUNK_EVENTS_ENV,
    DECODE_WORKERS_ENV,
    DEFAULT_CHUNK_EVENTS,
    ConfigError,
    StreamConfig,
    default_of,
    load_config,
    parse_config,
)

POLLING = {"name": "app", "source": {"log_groups": ["/app/web"]}, "start": "2026-01-01T00:00:00Z"}
FIREHOSE = {
    "name": "fleet",
    "source": {"type": "s3", "bucket": "fleet-logs", "layout": "firehose"},
    "start": "2026-01-01T00:00:00Z",
}


def doc(*streams: dict, **defaults) -> dict:
    bigquery = {"project": "my-project", "dataset": "logs"}
    return {"bigquery": bigquery, "defaults": defaults, "streams": list(streams)}


def sizes(config) -> list[tuple[int, int]]:
    return [(s.chunk_events, s.decode_workers) for s in config.streams]


def test_without_keys_or_variables_the_defaults_hold() -> None:
    assert sizes(parse_config(doc(POLLING, FIREHOSE), env={})) == [(DEFAULT_CHUNK_EVENTS, 1)] * 2
    assert default_of(StreamConfig, "chunk_events") == DEFAULT_CHUNK_EVENTS == 250_000
    assert default_of(StreamConfig, "decode_workers") == 1


def test_a_stream_key_beats_defaults() -> None:
    config = parse_config(
        doc({**POLLING, "chunk_events": 1_000}, {**FIREHOSE, "decode_workers": 0}, chunk_events=50_000),
        env={},
    )
    assert sizes(config) == [(1_000, 1), (50_000, 0)]


def test_decode_workers_in_defaults_reaches_every_stream() -> None:
    # Polling streams carry it without using it: defaults are shared by every stream.
    assert sizes(parse_config(doc(POLLING, FIREHOSE, decode_workers=4), env={})) == [(250_000, 4)] * 2


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (
            {**POLLING, "chunk_events": 999},
            "streams.app.chunk_events: 999 must be an integer of at least 1,000 (events per staged chunk",
        ),
        ({**POLLING, "chunk_events": 0}, "streams.app.chunk_events: 0 must be an integer of at least 1,000"),
        ({**POLLING, "chunk_events": "5000"}, "streams.app.chunk_events: '5000' must be an integer"),
        ({**POLLING, "chunk_events": True}, "streams.app.chunk_events: True must be an integer"),
        ({**POLLING, "chunk_events": 2500.5}, "streams.app.chunk_events: 2500.5 must be an integer"),
        (
            {**FIREHOSE, "decode_workers": -1},
            "streams.fleet.decode_workers: -1 must be an integer of at least 0 (processes decoding",
        ),
        ({**FIREHOSE, "decode_workers": "2"}, "streams.fleet.decode_workers: '2' must be an integer"),
        ({**FIREHOSE, "decode_workers": False}, "streams.fleet.decode_workers: False must be an integer"),
        (
            {**POLLING, "decode_workers": 2},
            "streams.app.decode_workers: only applies to a Firehose stream (source layout firehose)",
        ),
    ],
)
def test_an_invalid_value_names_the_key_and_the_value(stream: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(doc(stream), env={})
    assert str(raised.value).startswith(message)


def test_an_invalid_value_in_defaults_names_the_stream_it_reaches() -> None:
    with pytest.raises(ConfigError, match=r"^streams\.app\.chunk_events: 10 must be an integer of at least"):
        parse_config(doc(POLLING, chunk_events=10), env={})


def test_the_variables_override_every_streams_keys() -> None:
    streams = doc({**POLLING, "chunk_events": 5_000}, {**FIREHOSE, "decode_workers": 3}, chunk_events=9_000)
    env = {CHUNK_EVENTS_ENV: "2000", DECODE_WORKERS_ENV: "0"}
    assert sizes(parse_config(streams, env=env)) == [(2_000, 0), (2_000, 0)]
    # Below the key's minimum too: one event per chunk stages each event apart.
    assert sizes(parse_config(streams, env={CHUNK_EVENTS_ENV: " 1 "})) == [(1, 1), (1, 3)]
    # Set but empty: not set.
    assert sizes(parse_config(streams, env={CHUNK_EVENTS_ENV: "", DECODE_WORKERS_ENV: " "})) == [
        (5_000, 1),
        (9_000, 3),
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({CHUNK_EVENTS_ENV: "0"}, f"{CHUNK_EVENTS_ENV}: 0 must be an integer of at least 1 (events per"),
        ({CHUNK_EVENTS_ENV: "250k"}, f"{CHUNK_EVENTS_ENV}: '250k' must be an integer of at least 1"),
        ({DECODE_WORKERS_ENV: "-1"}, f"{DECODE_WORKERS_ENV}: '-1' must be an integer of at least 0"),
        ({DECODE_WORKERS_ENV: "all"}, f"{DECODE_WORKERS_ENV}: 'all' must be an integer of at least 0"),
    ],
)
def test_an_invalid_variable_names_itself_and_its_value(env: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(doc(POLLING, FIREHOSE), env=env)
    assert str(raised.value).startswith(message)


def test_the_process_environment_overrides_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv(CHUNK_EVENTS_ENV, "3000")
    monkeypatch.delenv(DECODE_WORKERS_ENV, raising=False)
    assert sizes(parse_config(doc({**FIREHOSE, "chunk_events": 5_000, "decode_workers": 2}))) == [(3_000, 2)]
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "bigquery: {project: my-project, dataset: logs}\n"
        "streams:\n"
        "  - {name: app, source: {log_groups: [/app/web]}, start: '2026-01-01', chunk_events: 5000}\n",
        encoding="utf-8",
    )
    assert sizes(load_config(path)) == [(3_000, 1)]
    assert sizes(load_config(path, env={})) == [(5_000, 1)]
