"""Presets: TOML files describing an experiment, validated by pydantic models."""
