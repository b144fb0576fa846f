"""What the attribute tests share: every tuning key of a polling stream with a value other than
its default (``decode_workers``, Firehose only, is set where a Firehose stream is), and a model's
keys as YAML spells them."""

from __future__ import annotations

from typing import Any

import pydantic

TUNING: dict[str, Any] = {
    "start": "2026-11-01T00:00:00Z",
    "window": "30m",
    "settle_lag": "3m",
    "refresh_interval": "2m",
    "max_windows_per_run": 48,
    "initial_lookback": "2d",
    "sweeps": ["20m", "8h"],
    "freshness": {"warn": "45m", "fail": "2h"},
    "max_reject_rate": 0.1,
    "backfill_windows_per_run": 300,
    "windows_per_replace": 24,
    "chunk_events": 50_000,
    "reconcile": {"enabled": False, "interval": "30m", "lookback": "2d", "max_heal_attempts": 5},
}


def model_keys(model: type[pydantic.BaseModel]) -> set[str]:
    """The keys of ``model`` as a document writes them (aliases included)."""
    return {field.alias or name for name, field in model.model_fields.items()}
