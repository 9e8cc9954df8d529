"""docs/config.md is generated from the config models and must be current (issue #13 item 11)."""

from __future__ import annotations

import pytest

from components.common.config import SeamlessConfig
from pipelines.config_docs import DOC_PATH, render, undocumented

pytestmark = pytest.mark.unit


def test_reference_is_current() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), (
        "docs/config.md is stale: run `make config-docs` and commit it."
    )


def test_every_key_has_a_meaning() -> None:
    assert undocumented() == [], "add a docstring under each of these fields"


def test_every_key_of_every_section_is_listed() -> None:
    text = render()
    for name in SeamlessConfig.model_fields:
        assert f"| `{name}` |" in text
    # Nested sections too: a labels key, a source key of each kind, a monitoring key.
    for key in (
        "negative_classes",
        "unknown_values",
        "delimiter",
        "query",
        "next_key",
        "psi_drift",
    ):
        assert f"| `{key}` |" in text, key
    assert "required" in text and "`0.01`" in text
