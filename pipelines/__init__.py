"""Pipelines, the CLI and demo data."""
