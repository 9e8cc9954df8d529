"""Batch scoring's input check, as a new user with a table of their own meets it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.batch.scoring import read_entities
from components.common.config import parse_config
from components.common.errors import SeamlessError
from pipelines.scaffold import build_scaffold
from tests.helpers.configs import assert_one_sentence


def test_a_generated_row_id_key_missing_from_the_input_is_explained(tmp_path: Path) -> None:
    # No id column: `seamless init` keys the rows by ingest's row number, which the user's
    # table to score does not have; the error says what 'row_id' is and what to add.
    wide = {f"mean feature {i}": [float(i + r) for r in range(40)] for i in range(25)}
    df = pd.DataFrame({**wide, "target": [r % 2 for r in range(40)]})
    csv = tmp_path / "bc.csv"
    df.to_csv(csv, index=False)
    plan = build_scaffold(str(csv), "target", name="bc", data_dir=tmp_path, positive="0")
    config = parse_config(plan.text)
    with pytest.raises(SeamlessError) as err:
        read_entities(config, str(csv), as_of="now", rows=False)
    message = str(err.value)
    assert_one_sentence(message)
    assert "has no column 'row_id'" in message
    assert "mean feature 19 and 6 more)" in message
    assert "the row number ingest gave the training table (0 for its first row)" in message
