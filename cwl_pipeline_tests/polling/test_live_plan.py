"""The live sensor's cursor: where each read starts and which events it appends."""

from __future__ import annotations

from cwl_pipeline.polling.live_plan import (
    MAX_SEEN,
    OVERLAP_MS,
    LiveState,
    after_read,
    event_key,
    is_new,
    read_start,
)

S = 1000
LOOKBACK = 120 * S
NOW = 1_800_000_000_000


def start(state: LiveState, now: int = NOW, floor: int = 0, open_start: int = NOW - 300 * S) -> int:
    return read_start(state, now, lookback_ms=LOOKBACK, floor_ms=floor, open_start_ms=open_start)


def test_a_new_sensor_reads_the_open_window():
    assert start(LiveState()) == NOW - 300 * S
    # Just after a window opened: the lookback reaches into the previous window.
    assert start(LiveState(), open_start=NOW - 5 * S) == NOW - LOOKBACK


def test_each_read_starts_a_lookback_before_the_previous_read_began():
    state = LiveState(from_ms=NOW - 200 * S, to_ms=None, read_ms=NOW - 5 * S, ingested_ms=NOW - 6 * S)
    assert start(state) == NOW - 5 * S - LOOKBACK


def test_after_downtime_the_read_starts_where_the_last_one_stopped_never_before_the_floor():
    """Daemon down for 10 minutes: the read reaches back to the last read (no gap), bounded by
    the floor (the windows the settled load has: no unbounded replay)."""
    state = LiveState(from_ms=NOW - 800 * S, read_ms=NOW - 600 * S, ingested_ms=NOW - 601 * S)
    assert start(state) == NOW - 600 * S - LOOKBACK
    assert start(state, floor=NOW - 650 * S) == NOW - 650 * S
    day_old = LiveState(from_ms=NOW - 90_000 * S, read_ms=NOW - 86_400 * S, ingested_ms=NOW - 86_400 * S)
    assert start(day_old, floor=NOW - 1_800 * S) == NOW - 1_800 * S


def test_a_read_cut_short_resumes_where_it_stopped():
    before = LiveState(read_ms=NOW - 5 * S - 400 * S)
    cut = after_read(
        before,
        start_ms=NOW - 900 * S,
        read_ms=NOW - 5 * S,
        stopped_at_ms=NOW - 700 * S,
        newest_ingestion_ms=NOW,
    )
    assert cut.to_ms == NOW - 700 * S - 1  # the last millisecond read may hold more events
    assert start(cut) == NOW - 700 * S - 1
    # Events past the covered range are new whatever their ingestion time.
    assert is_new(cut, NOW - 700 * S, ingestion_ms=NOW - 3_000 * S)
    assert not is_new(cut, NOW - 800 * S, ingestion_ms=NOW - 3_000 * S)


def test_appended_once_the_overlap_told_apart_by_key():
    read = [(event_key("7", NOW - 100 * S), NOW - S), (event_key("6", NOW - 101 * S), NOW - 60 * S)]
    state = after_read(
        LiveState(),
        start_ms=NOW - 300 * S,
        read_ms=NOW,
        stopped_at_ms=None,
        newest_ingestion_ms=NOW - S,
        read=read,
    )
    assert state.seen == {event_key("7", NOW - 100 * S)}  # only the overlap's keys are kept
    # Read last time (ingested well before the newest one read): not appended again.
    assert not is_new(state, NOW - 101 * S, ingestion_ms=NOW - 60 * S, key=event_key("6", NOW - 101 * S))
    # Inside the overlap: the key tells whether it was read.
    assert not is_new(state, NOW - 100 * S, ingestion_ms=NOW - S, key=event_key("7", NOW - 100 * S))
    assert is_new(state, NOW - 100 * S, ingestion_ms=NOW - S - OVERLAP_MS, key=event_key("8", NOW - 100 * S))
    assert is_new(state, NOW - 100 * S, ingestion_ms=NOW + S, key=event_key("9", NOW - 100 * S))
    # The same id at another time (ids repeat on the local stack) is another event.
    assert is_new(state, NOW - 99 * S, ingestion_ms=NOW - S, key=event_key("7", NOW - 99 * S))


def test_past_max_seen_the_overlap_is_appended_again():
    read = [(event_key(str(i), NOW), NOW) for i in range(MAX_SEEN + 1)]
    state = after_read(
        LiveState(), start_ms=NOW - S, read_ms=NOW, stopped_at_ms=None, newest_ingestion_ms=NOW, read=read
    )
    assert state.seen == frozenset()
    assert is_new(state, NOW, ingestion_ms=NOW, key=event_key("1", NOW))


def test_a_late_event_inside_the_lookback_is_appended():
    """An event stamped 90 s ago but ingested after the previous read (agent buffering): its
    timestamp is older than events already appended, and it is still read and appended."""
    state = after_read(
        LiveState(), start_ms=NOW - 300 * S, read_ms=NOW, stopped_at_ms=None, newest_ingestion_ms=NOW - S
    )
    later = NOW + 5 * S
    late_stamp = NOW - 90 * S
    assert read_start(state, later, lookback_ms=LOOKBACK, floor_ms=0, open_start_ms=0) <= late_stamp
    assert is_new(state, late_stamp, ingestion_ms=NOW + 2 * S)


def test_the_cursor_survives_its_json_form():
    state = LiveState(from_ms=1, to_ms=None, read_ms=3, ingested_ms=4, appended=5, seen=frozenset({"ab"}))
    assert LiveState.from_json(state.to_json()) == state
    assert LiveState.from_json(None) == LiveState()
    assert is_new(LiveState(), 1, 1)
