"""Dagster wiring: resources, assets, sensors and checks composed from the core and adapters."""
