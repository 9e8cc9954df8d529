"""Issue #13 items 1-3: label classes, visible coercions, built-in checks from the config."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from components.common.config import SeamlessConfig, parse_config
from components.common.errors import SeamlessError
from components.common.tables import read_dataset
from components.features.training_set import entity_frame
from components.ingest.stage import ingest_tables
from components.train.training import encode_labels
from components.validate.validation import validate_tables
from tests.helpers.configs import assert_one_sentence

pytestmark = pytest.mark.unit

T0 = datetime(2024, 3, 1, tzinfo=UTC)

_CONFIG = """
name: churn
tables:
  customers:
    source: {{kind: file, uri: customers.csv}}
    columns: {{plan: string, seats: int, churn: string}}
labels: {{table: customers, label_column: churn, positive_class: churned{labels}}}
features:
  service: churn_v1
  views: [{{name: usage, table: customers, features: [plan, seats]}}]
model: {{name: churn}}
"""


def churn_config(labels: str = "") -> SeamlessConfig:
    return parse_config(_CONFIG.format(labels=labels), origin="churn.yaml")


def write_csv(folder: Path, labels: list[str], seats: list[str] | None = None) -> None:
    n = len(labels)
    seats = seats or [str(i % 7 + 1) for i in range(n)]
    rows = ["plan,seats,churn"] + [
        f"{'pro' if i % 2 else 'basic'},{seats[i]},{labels[i]}" for i in range(n)
    ]
    (folder / "customers.csv").write_text("\n".join(rows) + "\n")


def labels_with_strays(n: int = 200) -> list[str]:
    out = ["churned" if i % 4 == 0 else "stayed" for i in range(n)]
    out[5] = out[17] = out[33] = "Churned"  # the case typo of issue #13
    return out


def ingest(config: SeamlessConfig, folder: Path) -> tuple[dict[str, pd.DataFrame], dict]:
    manifest = ingest_tables(config, folder, folder / "ds", T0)
    return read_dataset(folder / "ds"), manifest


def test_stray_label_values_fail_validation_with_one_sentence(tmp_path: Path) -> None:
    write_csv(tmp_path, labels_with_strays())
    config = churn_config()
    tables, manifest = ingest(config, tmp_path)
    result = validate_tables(config, tables, manifest)
    assert result.decision == "fail"
    [failed] = result.failures("critical")
    assert failed.builtin == "labels" and failed.unexpected_count == 3
    assert failed.unexpected_examples == ["Churned"]
    sentence = result.failure_sentences()[0]
    assert_one_sentence(sentence, "customers", "'churn'", "3 rows", "'Churned'", "value_map")


def test_training_refuses_stray_labels_instead_of_counting_them_negative() -> None:
    frame = pd.DataFrame({"churn": labels_with_strays()})
    with pytest.raises(SeamlessError) as info:
        encode_labels(churn_config(), frame)
    assert_one_sentence(str(info.value), "'churn'", "3 rows", "'Churned'")


def test_declared_classes_map_and_drop(tmp_path: Path) -> None:
    labels = labels_with_strays()
    labels[40] = "unknown"
    write_csv(tmp_path, labels)
    config = churn_config(
        ", negative_classes: [stayed], value_map: {Churned: churned}, unknown_values: drop"
    )
    tables, manifest = ingest(config, tmp_path)
    info = manifest["tables"]["customers"]["labels"]
    assert info["mapped"] == {"Churned": 3}
    assert info["left_out"] == 1 and info["left_out_values"] == {"unknown": 1}
    # The table keeps the row (its features are still the entity's); training does not.
    assert len(tables["customers"]) == 200
    result = validate_tables(config, tables, manifest)
    assert result.decision == "pass", result.message()
    [labels] = [o for o in result.builtin if o.builtin == "labels"]
    assert labels.unexpected_count == 1 and "training leaves them out" in str(labels.note)
    training = entity_frame(config, tables["customers"])
    assert len(training) == 199 and 40 not in set(training["row_id"])
    y = encode_labels(config, training)
    assert int(y.sum()) == 50 - 1 + 3  # row 40 was churned, now left out; 3 mapped


def test_declared_negative_classes_are_enforced(tmp_path: Path) -> None:
    labels = ["churned" if i % 4 == 0 else "stayed" for i in range(100)]
    labels[7] = "paused"
    write_csv(tmp_path, labels)
    config = churn_config(", negative_classes: [stayed]")
    tables, manifest = ingest(config, tmp_path)
    [failed] = validate_tables(config, tables, manifest).failures()
    assert failed.unexpected_examples == ["paused"] and failed.unexpected_count == 1


def test_integer_labels_read_as_floats_still_match() -> None:
    config = parse_config(
        _CONFIG.format(labels="").replace("positive_class: churned", "positive_class: 1"),
        origin="c.yaml",
    )
    y = encode_labels(config, pd.DataFrame({"churn": [0.0, 1.0, 1.0, 0.0]}))
    assert y.tolist() == [0, 1, 1, 0]


def test_label_column_tolerates_no_unparseable_value(tmp_path: Path) -> None:
    write_csv(tmp_path, ["1", "0", "yes"] + ["0"] * 97)
    config = parse_config(
        _CONFIG.format(labels="")
        .replace("churn: string", "churn: int")
        .replace("positive_class: churned", "positive_class: 1"),
        origin="c.yaml",
    )
    with pytest.raises(SeamlessError) as info:
        ingest(config, tmp_path)
    assert_one_sentence(str(info.value), "'churn'", "row 3", "'yes'", "tolerates none")


def test_overflowing_integer_is_counted_with_its_text(tmp_path: Path) -> None:
    seats = [str(i % 7 + 1) for i in range(200)]
    seats[9] = "12345678901234567890"  # past int64: null, but never silently
    write_csv(tmp_path, ["churned" if i % 4 == 0 else "stayed" for i in range(200)], seats)
    config = churn_config()
    tables, manifest = ingest(config, tmp_path)
    entry = manifest["tables"]["customers"]
    assert entry["invalid_values"] == {"seats": 1}
    assert entry["invalid_examples"] == {"seats": ["12345678901234567890"]}
    result = validate_tables(config, tables, manifest)
    [budget] = [c for c in result.builtin if c.type.endswith("within_budget")]
    assert (budget.column, budget.unexpected_count, budget.success) == ("seats", 1, True)
    assert budget.unexpected_examples == ["12345678901234567890"]


def test_builtin_checks_cover_the_declared_schema_without_user_expectations(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path, ["churned" if i % 4 == 0 else "stayed" for i in range(100)])
    config = churn_config()
    assert config.validation.expectations == []
    tables, manifest = ingest(config, tmp_path)
    result = validate_tables(config, tables, manifest)
    assert result.decision == "pass", result.message()
    kinds = {(c.type, c.column) for c in result.builtin}
    for col in ("plan", "seats", "churn", "row_id", "ingested_at"):
        assert ("expect_column_to_exist", col) in kinds
    for col in ("plan", "seats", "churn"):
        assert ("expect_column_values_to_be_of_type", col) in kinds
    assert ("expect_column_values_to_not_be_null", "row_id") in kinds
    assert ("expect_column_values_to_not_be_null", "ingested_at") in kinds
    assert ("expect_column_values_to_be_in_set", "churn") in kinds
    # A table that did not come through ingest (wrong type, missing column) fails them.
    broken = tables["customers"].drop(columns=["plan"]).assign(seats=lambda d: d.seats * 1.5)
    failed = validate_tables(config, {"customers": broken}, manifest).failures("critical")
    assert {(c.type, c.column) for c in failed} >= {
        ("expect_column_to_exist", "plan"),
        ("expect_column_values_to_be_of_type", "seats"),
    }


def test_negative_classes_must_not_repeat_the_positive() -> None:
    with pytest.raises(SeamlessError, match="negative_classes lists the positive class"):
        churn_config(", negative_classes: [stayed, churned]")
