"""Batch scoring's input checks, as a new user with a table of their own meets them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.batch.scoring import read_entities
from components.common.config import SeamlessConfig, parse_config
from components.common.errors import SeamlessError
from pipelines.scaffold import build_scaffold
from tests.helpers.configs import assert_one_sentence


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    # No id column (so `seamless init` keys rows by ingest's row number) and more than 20
    # columns, like scikit-learn's breast cancer table.
    wide = {f"mean feature {i}": [float(i + r) for r in range(40)] for i in range(25)}
    return pd.DataFrame({**wide, "target": [r % 2 for r in range(40)]})


@pytest.fixture(scope="module")
def config(table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> SeamlessConfig:
    folder = tmp_path_factory.mktemp("bc")
    table.to_csv(folder / "bc.csv", index=False)
    plan = build_scaffold(
        str(folder / "bc.csv"), "target", name="bc", data_dir=folder, positive="0"
    )
    return parse_config(plan.text)


def test_a_generated_row_id_key_missing_from_the_input_is_explained(
    table: pd.DataFrame, config: SeamlessConfig, tmp_path: Path
) -> None:
    # The user's table to score has no 'row_id': the error says what it is and what to add.
    csv = tmp_path / "bc.csv"
    table.to_csv(csv, index=False)
    with pytest.raises(SeamlessError) as err:
        read_entities(config, str(csv), as_of="now", rows=False)
    message = str(err.value)
    assert_one_sentence(message)
    assert "has no column 'row_id'" in message
    assert "mean feature 19 and 6 more)" in message
    assert "the row number ingest gave the training table (0 for its first row)" in message


def test_a_semicolon_csv_is_read_as_ingest_reads_it(
    table: pd.DataFrame, config: SeamlessConfig, tmp_path: Path
) -> None:
    # Ingest reads a ';' source (bank marketing's CSV); the table to score is the same kind.
    csv = tmp_path / "bank.csv"
    scored = table.assign(row_id=range(len(table)), when="2024-05-01T00:00:00+02:00")
    scored.to_csv(csv, index=False, sep=";", quoting=2)
    got = read_entities(config, str(csv), timestamp_column="when").frame
    assert got["row_id"].tolist() == list(range(40))
    assert (got["as_of"] == pd.Timestamp("2024-04-30T22:00:00Z")).all()
