"""`seamless init` (issue #13 item 10): profiling, type inference, the written config, errors."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from components.common.config import INGESTED_AT, ROW_ID, ColumnType, load_config
from components.common.errors import SeamlessError
from components.evaluate.evaluation import gate
from pipelines.init_cli import init_cmd
from pipelines.scaffold import (
    PASSWORD_VAR,
    ColumnProfile,
    KeysPlan,
    Scaffold,
    _y,
    build_scaffold,
    dry_validate,
    infer_column,
    null_budget,
    plan_keys,
    plan_label,
    plan_source,
    profile_table,
    widened_range,
    write_config,
)
from pipelines.scaffold.render import small_table_leaf
from tests.helpers.configs import assert_one_sentence
from tests.helpers.http_api import json_api

pytestmark = pytest.mark.unit


def text(values: Sequence[str | None]) -> pd.Series:
    """A column as the CSV reader gives it to init: text, blanks as NaN."""
    return pd.Series(values, dtype=object)


def churn_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Churn-shaped rows: string label, no entity or timestamp column, a few gaps."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "pro", "team"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "seats": rng.integers(1, 50, n).astype(str),
            "monthly": rng.uniform(10, 120, n).round(2).astype(str),
            "zip": [f"{z:05d}" for z in rng.integers(0, 40, n)],
            "churn": np.where(rng.uniform(size=n) < 0.3, "yes", "no"),
        }
    )
    df.loc[[4, 9], "region"] = None
    return df


def write_csv(df: pd.DataFrame, path: Path, sep: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, sep=sep)
    return path


def scaffold_csv(tmp_path: Path, df: pd.DataFrame, **kwargs: Any) -> Scaffold:
    csv = write_csv(df, tmp_path / "data.csv")
    return build_scaffold(str(csv), "churn", **{"name": "churn", "data_dir": tmp_path, **kwargs})


# ---------------------------------------------------------------- type inference


def test_int_with_a_few_unparseable_values_is_int_and_flags_them() -> None:
    p = infer_column("qty", text(["5"] * 9_981 + ["12x"] * 19))
    assert p.kind == "int"
    assert (p.present, p.parsed, p.invalid) == (10_000, 9_981, 19)
    assert "inferred int: 9,981 of 10,000 non-null values parse as integers" in p.why
    assert "19 do not and become null at ingest" in p.why and "'12x'" in p.why
    assert p.invalid_examples == ("12x",)


def test_too_many_unparseable_values_keep_the_column_text() -> None:
    p = infer_column("qty", text(["5"] * 97 + ["many"] * 3))  # 3% > the 1% budget
    assert p.kind == "string"
    assert "97 of 100 non-null values are numbers" in p.why


def test_digits_with_leading_zeros_stay_text() -> None:
    p = infer_column("account", text(["00123", "04567", "12345"] * 10))
    assert p.kind == "string"
    assert "leading zeros" in p.why and "'00123'" in p.why


def test_decimals_are_never_cut_to_integers() -> None:
    p = infer_column("price", text(["10"] * 150 + ["12.5"]))
    assert p.kind == "float" and p.invalid == 0
    assert infer_column("hours", text(["40.0", "38.0"])).kind == "float"  # written as decimals


def test_integers_too_long_for_int64_stay_text() -> None:
    p = infer_column("tweet_id", text(["12345678901234567890", "1"] * 20))
    assert p.kind == "string" and "too long" in p.why


def test_booleans_timestamps_and_text() -> None:
    assert infer_column("b", text(["true", "False", "TRUE", None])).kind == "bool"
    assert infer_column("yn", text(["yes", "no"] * 5)).kind == "string"
    ts = infer_column("when", text(["2024-01-02", "2024-03-04T05:06:07Z"] * 60 + ["soon"]))
    assert ts.kind == "timestamp" and ts.invalid == 1 and "'soon'" in ts.why
    assert infer_column("empty", text([None, None])).kind == "string"


def test_source_types_are_kept_and_stats_are_of_the_parsed_values() -> None:
    p = infer_column("n", pd.Series([3, 1, None, 7], dtype="Int64"))
    assert p.kind == "int" and "typed so in the source" in p.why
    assert (p.minimum, p.maximum, p.nulls) == (1, 7, 1)
    s = infer_column("s", text(["a", "b", "a", None]))
    assert s.top == (("a", 2), ("b", 1)) and s.distinct == 2 and s.nulls == 1


# ---------------------------------------------------------------- label


def test_two_valued_label_takes_the_minority_class_and_says_so() -> None:
    df = pd.DataFrame({"churn": ["stayed"] * 30 + ["left"] * 10})
    plan = plan_label(df, "churn", "data.csv")
    assert plan.positive == "left" and plan.negatives == ("stayed",)
    assert any("minority class" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("values", "positive", "negative"),
    [
        (["1"] * 27 + ["0"] * 13, 1, 0),  # heart disease's num: 1 is the majority here
        (["Yes"] * 30 + ["No"] * 10, "Yes", "No"),
        (["True"] * 30 + ["False"] * 10, "True", "False"),
        (["n"] * 5 + ["y"] * 30, "y", "n"),
    ],
)
def test_a_usual_pair_takes_its_usual_positive_even_as_the_majority(
    values: list[str], positive: object, negative: object
) -> None:
    plan = plan_label(pd.DataFrame({"label": values}), "label", "data.csv")
    assert (plan.positive, plan.negatives) == (positive, (negative,))
    assert any("the usual positive" in n and "--positive" in n for n in plan.notes)


def test_label_with_more_than_two_values_needs_positive() -> None:
    df = pd.DataFrame({"grade": ["a"] * 5 + ["b"] * 3 + ["c"] * 2})
    with pytest.raises(SeamlessError) as info:
        plan_label(df, "grade", "data.csv")
    assert_one_sentence(str(info.value), "'grade'", "3 values", "'a' (5 rows)", "--positive")
    plan = plan_label(df, "grade", "data.csv", positive="c")
    assert plan.positive == "c" and plan.negatives == ("a", "b")


def test_a_numeric_label_with_many_values_is_named_a_quantity() -> None:
    # A regression target: before, the sentence asked for --positive among 200 prices.
    df = pd.DataFrame({"price": [f"{100 + i * 0.25:.2f}" for i in range(200)]})
    with pytest.raises(SeamlessError) as info:
        plan_label(df, "price", "data.csv")
    assert_one_sentence(
        str(info.value), "'price'", "numbers with 200 distinct values", "binary classifiers"
    )
    plan = plan_label(df, "price", "data.csv", positive="100.25")
    assert plan.positive == "100.25" and len(plan.negatives) == 199


def test_several_positive_classes_map_onto_the_first(tmp_path: Path) -> None:
    # winequality-red.csv's shape: quality 3..8, and "good" means 7 or better.
    rng = np.random.default_rng(4)
    quality = rng.choice([3, 4, 5, 6, 7, 8], 600, p=[0.03, 0.12, 0.35, 0.3, 0.15, 0.05])
    alcohol = 8 + quality + rng.normal(0, 1.5, 600)
    df = pd.DataFrame({"alcohol": alcohol.round(2), "quality": quality})
    plan = plan_label(df, "quality", "wine.csv", positive="7, 8")
    assert plan.positive == 7 and sorted(plan.negatives) == [3, 4, 5, 6]
    assert plan.value_map == {"8": 7}
    assert plan.counts["7"] == int((quality >= 7).sum())
    assert any("Positive classes '7', '8' (--positive)" in n for n in plan.notes)
    with pytest.raises(SeamlessError) as info:
        plan_label(df, "quality", "wine.csv", positive="7,9")
    assert_one_sentence(str(info.value), "--positive '9'", "'quality'", "its values are")
    with pytest.raises(SeamlessError, match="names every value of label column 'quality'"):
        plan_label(df, "quality", "wine.csv", positive="3,4,5,6,7,8")
    # A class whose text holds a comma is one class, not two.
    sure = pd.DataFrame({"answer": ["yes, sure"] * 3 + ["no"] * 5})
    assert plan_label(sure, "answer", "a.csv", positive="yes, sure").positive == "yes, sure"

    # Through the command: the config maps 8 onto 7 and the dry validation passes.
    write_csv(df, tmp_path / "wine.csv", sep=";")
    out = tmp_path / "wine.yaml"
    args = ["init", "--from", str(tmp_path / "wine.csv"), "--label", "quality", "--out", str(out)]
    result = CliRunner().invoke(cli(), [*args, "--positive", "7,8"])
    assert result.exit_code == 0, result.output
    assert "Dry validation: pass on 600 rows" in result.output
    labels = load_config(out).labels
    assert (labels.positive_class, labels.value_map) == (7, {"8": 7})
    assert sorted(labels.negative_classes or []) == [3, 4, 5, 6]


def test_positive_must_be_a_label_value() -> None:
    df = pd.DataFrame({"churn": ["yes", "no", "no"]})
    with pytest.raises(SeamlessError) as info:
        plan_label(df, "churn", "data.csv", positive="Yes")
    assert_one_sentence(str(info.value), "--positive 'Yes'", "'churn'", "'no' (2 rows)")


def test_one_class_and_missing_label_column_are_errors() -> None:
    with pytest.raises(SeamlessError, match="holds one value only"):
        plan_label(pd.DataFrame({"churn": ["no", "no"]}), "churn", "data.csv")
    with pytest.raises(SeamlessError) as info:
        plan_label(pd.DataFrame({"plan": ["a"]}), "churn", "data.csv")
    assert_one_sentence(str(info.value), "--label 'churn'", "data.csv", "'plan'")


def test_case_variants_are_mapped_and_missing_labels_dropped() -> None:
    df = pd.DataFrame({"churn": ["churned"] * 10 + ["Churned"] * 2 + ["stayed"] * 20 + [None]})
    plan = plan_label(df, "churn", "data.csv", positive="churned")
    assert plan.value_map == {"Churned": "churned"}
    assert plan.counts == {"stayed": 20, "churned": 12}
    assert plan.missing == 1


def test_integer_labels_stay_integers() -> None:
    plan = plan_label(pd.DataFrame({"y": ["0", "1", "0", "0"]}), "y", "d.csv")
    assert (plan.kind, plan.positive, plan.negatives) == ("int", 1, (0,))


def test_whole_decimal_labels_are_integers(tmp_path: Path) -> None:
    # pandas writes a 0/1 label with gaps as 1.0/0.0 (Titanic's Survived after a merge);
    # --positive 1 is the class the user means, and ingest reads those values as ints.
    df = churn_frame(300)
    df["churn"] = [["1.0", "0.0", "0.0"][i % 3] for i in range(300)]
    df.loc[[4, 5], "churn"] = ""
    plan = scaffold_csv(tmp_path, df, positive="1")
    assert (plan.label.kind, plan.label.positive, plan.label.negatives) == ("int", 1, (0,))
    assert plan.label.missing == 2
    assert plan_label(df, "churn", "d.csv", positive="1.0").positive == 1
    out = tmp_path / "churn.yaml"
    write_config(out, plan.text)
    dry = dry_validate(out, tmp_path)
    assert dry.result.decision == "pass", dry.result.failure_sentences()
    assert dry.rows == 300  # the table keeps the 2 rows without a label


# ---------------------------------------------------------------- keys


def keys_for(df: pd.DataFrame, **kwargs: str) -> KeysPlan:
    return plan_keys(df, profile_table(df), "churn", "data.csv", **kwargs)


def test_an_id_named_unique_column_is_proposed_as_entity() -> None:
    df = pd.DataFrame(
        {"customerID": [f"C{i:03d}" for i in range(30)], "paid": range(30), "churn": ["no"] * 30}
    )
    keys = keys_for(df)
    assert (keys.entity, keys.entity_kind, keys.timestamp) == ("customerID", "string", None)
    # 'paid' is unique too, but not named like an id.
    assert keys_for(df.drop(columns="customerID")).entity is None
    # Lowercase and run together after a word for who a row is about; not 'valid' or 'grid'.
    joined = df.rename(columns={"customerID": "passengerid", "paid": "grid"})
    assert keys_for(joined).entity == "passengerid"
    assert keys_for(joined.drop(columns="passengerid")).entity is None


def test_no_fitting_key_leaves_row_id_and_ingestion_time() -> None:
    df = pd.DataFrame({"id": [1, 1, 2], "churn": ["no", "yes", "no"]})  # id repeats
    keys = keys_for(df)
    assert keys.entity is None and keys.timestamp is None
    assert any(ROW_ID in n for n in keys.notes) and any(INGESTED_AT in n for n in keys.notes)
    # The repeating id is named, so an event table's user sees how to key by it.
    assert "'id' is named like an id but repeats; if rows are its events over time, pass " in (
        " ".join(keys.notes)
    )
    assert "--entity id and --timestamp COLUMN." in " ".join(keys.notes)
    events = pd.DataFrame(
        {"id": [1, 1, 2], "event_date": ["2024-01-01", "2024-01-01", "2024-01-02"], "y": [0, 1, 0]}
    )
    assert not any("repeats" in n for n in keys_for(events, timestamp="event_date").notes)
    events.loc[1, "event_date"] = "2024-01-03"  # now each (id, date) is one event
    assert any("pass --entity id." in n for n in keys_for(events, timestamp="event_date").notes)


def test_given_keys_are_checked() -> None:
    df = pd.DataFrame(
        {
            "cid": ["a", "b", "a"],
            "when": ["2024-01-01", "2024-01-02", "someday"],
            "churn": ["no", "yes", "no"],
        }
    )
    with pytest.raises(SeamlessError) as info:
        keys_for(df, entity="cid")
    assert_one_sentence(str(info.value), "'cid'", "row 1", "--timestamp")
    with pytest.raises(SeamlessError) as info:
        keys_for(df, timestamp="when")
    assert_one_sentence(str(info.value), "'when'", "row 3", "'someday'")
    with pytest.raises(SeamlessError, match="is not a column"):
        keys_for(df, entity="customer")
    with pytest.raises(SeamlessError, match="is the label column"):
        keys_for(df, entity="churn")


def test_event_time_is_proposed_only_when_named_like_one() -> None:
    df = pd.DataFrame(
        {
            "event_time": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],
            "birth_date": ["1980-01-01", "1990-01-01"],
            "churn": ["no", "yes"],
        }
    )
    keys = keys_for(df)
    assert keys.timestamp == "event_time"
    assert any("'birth_date' also holds timestamps" in n for n in keys.notes)
    assert keys_for(df.drop(columns="event_time")).timestamp is None


def test_an_existing_row_id_column_that_is_no_key_is_an_error() -> None:
    df = pd.DataFrame({"row_id": [1, 1], "churn": ["no", "yes"]})
    with pytest.raises(SeamlessError) as info:
        keys_for(df)
    assert_one_sentence(str(info.value), "'row_id'", "--entity")


# ---------------------------------------------------------------- expectations


def profile(
    kind: ColumnType, lo: float, hi: float, rows: int = 100, nulls: int = 0
) -> ColumnProfile:
    return ColumnProfile(
        name="c",
        kind=kind,
        rows=rows,
        present=rows - nulls,
        parsed=rows - nulls,
        invalid_examples=(),
        distinct=50,
        top=(),
        minimum=lo,
        maximum=hi,
    )


def test_ranges_are_widened_and_rounded_outward() -> None:
    assert widened_range(profile("int", 18, 80)) == (11, 87)
    assert widened_range(profile("int", 0, 72)) == (0, 80)  # never below zero if never was
    # margin 0.147: rounded outward on a 0.1 grid
    assert widened_range(profile("float", -0.5, 0.97)) == (-0.7, 1.2)
    assert widened_range(profile("float", 5.0, 5.0)) == (4.5, 5.5)  # a constant: 10% of it


def test_null_budget_allows_the_observed_share_plus_slack() -> None:
    assert null_budget(profile("int", 0, 1)) == 0.99
    assert null_budget(profile("int", 0, 1, rows=1000, nulls=100)) == 0.85
    assert null_budget(profile("int", 0, 1, rows=10, nulls=10)) is None


# ---------------------------------------------------------------- the written config


def test_written_config_loads_and_explains_itself(tmp_path: Path) -> None:
    df = churn_frame()
    df.loc[7, "seats"] = "n/a seats"  # one unparseable value: int, flagged
    plan = scaffold_csv(tmp_path, df, positive="yes")
    out = tmp_path / "churn.yaml"
    write_config(out, plan.text)
    config = load_config(out)
    table = config.tables["data"]
    assert table.source.uri == "data.csv"  # type: ignore[union-attr]
    assert table.entity_column is None and table.timestamp_column is None
    assert table.columns == {
        "plan": "string",
        "region": "string",
        "seats": "int",
        "monthly": "float",
        "zip": "string",
        "churn": "string",
    }
    assert config.labels.positive_class == "yes" and config.labels.negative_classes == ["no"]
    assert config.labels.unknown_values == "fail"
    assert config.features.views[0].features == ["plan", "region", "seats", "monthly", "zip"]
    assert config.model.estimator == "hist_gradient_boosting"
    assert "# inferred int: 399 of 400 non-null values parse as integers" in plan.text
    assert "'n/a seats'" in plan.text
    assert "minority" not in plan.text and "(--positive)" in plan.text
    severities = {
        (e.type, e.kwargs.get("column")): e.severity for e in config.validation.expectations
    }
    assert severities[("expect_table_row_count_to_be_between", None)] == "critical"
    assert severities[("expect_column_distinct_values_to_contain_set", "churn")] == "critical"
    assert severities[("expect_column_values_to_be_in_set", "plan")] == "warning"
    assert severities[("expect_column_values_to_be_between", "seats")] == "warning"
    assert severities[("expect_column_values_to_not_be_null", "region")] == "warning"
    critical = [e for e in config.validation.expectations if e.severity == "critical"]
    assert len(critical) == 2
    # 'yes'/'no' would read back as booleans unquoted; the YAML keeps them text.
    raw = yaml.safe_load(plan.text)
    assert raw["labels"]["positive_class"] == "yes"


def test_first_run_passes_on_the_same_data_and_coercions_match_the_profile(
    tmp_path: Path,
) -> None:
    df = churn_frame()
    df.loc[[7, 8], "monthly"] = "unknown"
    plan = scaffold_csv(tmp_path, df, positive="yes")
    out = tmp_path / "churn.yaml"
    write_config(out, plan.text)
    dry = dry_validate(out, tmp_path)
    assert dry.result.decision == "pass", dry.result.failure_sentences()
    assert dry.rows == 400
    assert dry.coerced() == [("data", "monthly", 2, ["unknown"])]
    assert plan.profiles["monthly"].invalid == 2
    # A changed label on the next file is what the critical built-in check catches.
    df.loc[3, "churn"] = "maybe"
    write_csv(df, tmp_path / "data.csv")
    failed = dry_validate(out, tmp_path).result
    assert failed.decision == "fail"
    assert any("'maybe'" in s for s in failed.failure_sentences())


def test_missing_markers_among_numbers_are_proposed_and_counted(tmp_path: Path) -> None:
    """ "NA" where numbers are expected becomes a `missing_values` marker, said in a note
    that also names the text columns holding it (a country code "NA" would be lost), and
    counted by the dry run."""
    df = churn_frame()
    df.loc[[3, 9, 11], "monthly"] = "NA"
    df.loc[5, "seats"] = "null"
    df.loc[6, "region"] = "NA"
    plan = scaffold_csv(tmp_path, df, positive="yes")
    assert plan.profiles["monthly"].kind == "float" and plan.profiles["monthly"].invalid == 0
    assert plan.profiles["seats"].kind == "int"
    assert "Read 'NA', 'null' as missing (missing_values)" in plan.text
    assert "in text columns too (region: 'NA' x1)" in plan.text
    out = tmp_path / "churn.yaml"
    write_config(out, plan.text)
    source = load_config(out).tables["data"].source
    assert source.missing_values == ["NA", "null"]  # type: ignore[union-attr]
    dry = dry_validate(out, tmp_path)
    assert dry.result.decision == "pass", dry.result.failure_sentences()
    markers = dry.manifest["tables"]["data"]["missing_markers"]
    assert markers == {"monthly": {"NA": 3}, "seats": {"null": 1}, "region": {"NA": 1}}


def test_a_question_mark_among_numbers_is_proposed_as_missing(tmp_path: Path) -> None:
    # The UCI repository's convention (heart disease's ca and thal, adult's columns).
    df = churn_frame()
    df.loc[[2, 8], "seats"] = "?"
    plan = scaffold_csv(tmp_path, df, positive="yes")
    assert plan.profiles["seats"].kind == "int" and plan.profiles["seats"].invalid == 0
    assert "Read '?' as missing (missing_values)" in plan.text


def test_the_written_model_section_trains_as_written(tmp_path: Path) -> None:
    from threadpoolctl import threadpool_limits

    from components.common.tables import read_dataset
    from components.ingest.stage import ingest_tables
    from components.train.training import fit

    df = churn_frame(300)
    # Some signal, so the search has something to find.
    df["churn"] = np.where(df["plan"] == "basic", "yes", "no")
    df.loc[df.index % 7 == 0, "churn"] = "yes"
    plan = scaffold_csv(tmp_path, df, positive="yes")
    out = tmp_path / "churn.yaml"
    write_config(out, plan.text)
    config = load_config(out)
    assert (config.model.search.n_iter, config.model.search.cv) == (4, 3)
    assert config.model.params == {"early_stopping": False, "min_samples_leaf": 6}  # 300 rows
    assert "min_samples_leaf 6 instead of scikit-learn's 20" in plan.text
    ingest_tables(config, tmp_path, tmp_path / "ds")
    with threadpool_limits(1):  # see tests/pipeline/test_init_to_serving.py
        _, best, summary = fit(config, read_dataset(tmp_path / "ds")["data"])
    assert set(best) == {"learning_rate", "max_depth", "max_iter"}
    assert summary["candidates"] == 4 and summary["cv_score"] > 0.6


def test_delimiter_parquet_and_paths_outside_the_data_dir(tmp_path: Path) -> None:
    df = churn_frame(50)
    df["plan"] = "basic, annual"  # commas inside values of a ';' file
    semi = write_csv(df, tmp_path / "in" / "semi.csv", sep=";")
    plan = build_scaffold(str(semi), "churn", name="c", data_dir=tmp_path / "elsewhere")
    config = yaml.safe_load(plan.text)
    source = config["tables"]["semi"]["source"]
    assert source == {"kind": "file", "uri": str(semi), "delimiter": ";"}
    assert "An absolute path" in plan.text

    pq = tmp_path / "t.parquet"
    pd.DataFrame({"n": pd.array([1, 2, None] * 20, "Int64"), "churn": [0, 1, 0] * 20}).to_parquet(
        pq
    )
    plan = build_scaffold(str(pq), "churn", name="c", data_dir=tmp_path)
    cfg = yaml.safe_load(plan.text)
    assert cfg["tables"]["t"]["columns"] == {"n": "int", "churn": "int"}
    assert cfg["labels"]["positive_class"] == 1 and cfg["labels"]["negative_classes"] == [0]


def test_wide_text_and_timestamps_are_not_features(tmp_path: Path) -> None:
    df = churn_frame(300)
    df["note"] = [f"free text {i}" for i in range(300)]
    df["signup_date"] = "2024-05-01"
    plan = scaffold_csv(tmp_path, df, positive="yes")
    assert "note" not in plan.features and "signup_date" not in plan.features
    assert set(plan.left_out) == {"note", "signup_date"}
    assert "300 distinct values" in plan.text


def test_columns_that_never_vary_are_not_features(tmp_path: Path) -> None:
    # An all-empty or single-valued column tells the model nothing, yet every request would
    # have to send it; one value plus empties still says something (the empties).
    df = churn_frame(300)
    df["notes"] = ""
    df["source"] = "web"
    df["cabin"] = ["C1" if i % 3 == 0 else "" for i in range(300)]
    plan = scaffold_csv(tmp_path, df, positive="yes")
    assert "notes" not in plan.features and "source" not in plan.features
    assert "cabin" in plan.features
    assert "with no value it tells the model nothing" in plan.left_out["notes"]
    assert "the same value in every row" in plan.left_out["source"]
    assert "1 distinct value;" in plan.text and "the 1 value seen" in plan.text


def test_keys_and_event_time_go_into_the_config_and_pass_the_dry_run(tmp_path: Path) -> None:
    df = churn_frame(200)
    df.insert(0, "customer_id", [f"C-{i:04d}" for i in range(200)])
    df.insert(1, "event_time", pd.date_range("2023-01-01", periods=200, freq="D").astype(str))
    plan = scaffold_csv(tmp_path, df, positive="yes", now=datetime(2025, 1, 1, tzinfo=UTC))
    config = yaml.safe_load(plan.text)
    table = config["tables"]["data"]
    assert (table["entity_column"], table["timestamp_column"]) == ("customer_id", "event_time")
    assert table["columns"]["customer_id"] == "string"
    assert table["columns"]["event_time"] == "timestamp"
    view = config["features"]["views"][0]
    assert "customer_id" not in view["features"] and "event_time" not in view["features"]
    assert view["ttl_days"] == 731 + 30  # the oldest event, 2023-01-01, stays within reach
    assert config["features"]["entity"] == "customer_id"
    write_config(tmp_path / "c.yaml", plan.text)
    assert dry_validate(tmp_path / "c.yaml", tmp_path).result.decision == "pass"


def test_missing_labels_are_left_out_and_the_run_still_passes(tmp_path: Path) -> None:
    df = churn_frame()
    df.loc[[10, 20], "churn"] = None
    df.loc[30, "churn"] = "Yes "
    plan = scaffold_csv(tmp_path, df, positive="yes")
    config = yaml.safe_load(plan.text)["labels"]
    assert config["unknown_values"] == "drop" and config["value_map"] == {"Yes ": "yes"}
    assert "2 rows have no label" in plan.text
    write_config(tmp_path / "c.yaml", plan.text)
    dry = dry_validate(tmp_path / "c.yaml", tmp_path)
    assert dry.result.decision == "pass", dry.result.failure_sentences()
    assert dry.rows == 400  # the table keeps the rows without a label
    assert dry.label_changes() == {
        "mapped": {"Yes ": 1},
        "left_out": 2,
        "left_out_values": {"null": 2},
    }


def test_a_csv_over_http_is_profiled_as_text(tmp_path: Path) -> None:
    df = churn_frame(60)
    with json_api() as api:
        api.files["accounts.csv"] = df.to_csv(index=False).encode()
        plan = build_scaffold(api.url("/files/accounts.csv"), "churn", name="a", data_dir=tmp_path)
    config = yaml.safe_load(plan.text)
    table = config["tables"]["accounts"]
    assert table["source"]["uri"].endswith("/files/accounts.csv")
    assert table["columns"]["zip"] == "string"  # re-read as text: leading zeros kept
    assert table["columns"]["seats"] == "int"


def test_json_lines_are_profiled_from_their_values_and_pass_the_dry_run(tmp_path: Path) -> None:
    df = churn_frame(200)
    records = df.assign(seats=df["seats"].astype(int), monthly=df["monthly"].astype(float))
    records.insert(0, "customer_id", range(900000000000000001, 900000000000000201))
    rows = records.to_dict("records")
    for i, row in enumerate(rows):
        row["customer_id"] = int(row["customer_id"])
        row["seats"], row["member"] = int(row["seats"]), i % 3 == 0
        row["meta"] = {"src": "web", "n": i % 4}  # nested: canonical JSON text
        if i % 10 == 0:
            del row["monthly"]  # a key some records lack is null there
    path = tmp_path / "accounts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = build_scaffold(str(path), "churn", name="a", data_dir=tmp_path, positive="yes")
    table = yaml.safe_load(plan.text)["tables"]["accounts"]
    assert table["source"] == {"kind": "file", "uri": "accounts.jsonl"}
    assert table["entity_column"] == "customer_id"
    assert {k: table["columns"][k] for k in ("customer_id", "seats", "monthly", "zip")} == {
        "customer_id": "int",
        "seats": "int",
        "monthly": "float",
        "zip": "string",  # a JSON string keeps its leading zeros
    }
    assert (table["columns"]["member"], table["columns"]["meta"]) == ("bool", "string")
    write_config(tmp_path / "a.yaml", plan.text)
    dry = dry_validate(tmp_path / "a.yaml", tmp_path)
    assert dry.result.decision == "pass", dry.result.failure_sentences()


@pytest.mark.parametrize(
    "value",
    [
        "yes",
        "No",
        "null",
        "~",
        "on",
        "1.0",
        "2024-01-01",
        "a: b",
        "#x",
        "-x",
        "[a]",
        "",
        "ünï",
        ">50K",
        "x\ny",
        1,
        0.5,
        1e-05,
        True,
        None,
    ],
)
def test_yaml_scalars_read_back_as_written(value: object) -> None:
    assert yaml.safe_load(f"k: {_y(value)}")["k"] == value
    assert yaml.safe_load(f"k: {_y([value])}")["k"] == [value]


def test_database_source_by_table_or_query(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (customer_id INTEGER, spend REAL, churned TEXT)")
        conn.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [(i, i * 1.5, "yes" if i % 3 == 0 else "no") for i in range(60)],
        )
    plan = build_scaffold(
        "sqlite:///shop.db",
        "churned",
        name="shop",
        data_dir=tmp_path,
        table="customers",
        cwd=tmp_path,
    )
    config = yaml.safe_load(plan.text)
    table = config["tables"]["customers"]
    assert table["source"] == {
        "kind": "sql",
        "url": "sqlite:///shop.db",
        "query": "SELECT * FROM customers",
    }
    assert table["entity_column"] == "customer_id"
    assert table["columns"]["customer_id"] == "int" and table["columns"]["spend"] == "float"
    write_config(tmp_path / "shop.yaml", plan.text)
    dry = dry_validate(tmp_path / "shop.yaml", tmp_path)  # the relative database path resolves
    assert dry.result.decision == "pass", dry.result.failure_sentences()
    plan = build_scaffold(
        f"sqlite:///{db}",
        "churned",
        name="shop",
        data_dir=tmp_path,
        query="SELECT spend, churned FROM customers",
    )
    assert "SELECT spend, churned FROM customers" in plan.text
    with pytest.raises(SeamlessError) as info:
        build_scaffold(f"sqlite:///{db}", "churned", name="s", data_dir=tmp_path)
    assert_one_sentence(str(info.value), "--table", "--query")


def test_a_database_password_is_read_from_the_environment(tmp_path: Path) -> None:
    source = plan_source(
        "postgresql+psycopg2://ana:s3cr%40t@db:5432/shop", tmp_path, table="public.customers"
    )
    assert source.config.url == (  # type: ignore[union-attr]
        "postgresql+psycopg2://ana:${" + PASSWORD_VAR + "}@db:5432/shop"
    )
    assert source.password == "s3cr%40t"
    assert "s3cr" not in source.shown
    assert source.config.query == "SELECT * FROM public.customers"  # type: ignore[union-attr]


def test_bad_input_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(SeamlessError) as info:
        build_scaffold(str(tmp_path / "absent.csv"), "churn", name="c", data_dir=tmp_path)
    assert_one_sentence(str(info.value), "absent.csv", "does not exist")
    only_label = write_csv(pd.DataFrame({"churn": ["yes", "no"]}), tmp_path / "l.csv")
    with pytest.raises(SeamlessError) as info:
        build_scaffold(str(only_label), "churn", name="c", data_dir=tmp_path)
    assert_one_sentence(str(info.value), "no column to learn from")
    with pytest.raises(SeamlessError, match="applies to a database URL"):
        build_scaffold(str(only_label), "churn", name="c", data_dir=tmp_path, query="SELECT 1")


# ---------------------------------------------------------------- the command


def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command("init")(init_cmd)
    app.command("other")(lambda: None)  # two commands: `init` stays a subcommand
    return app


def test_init_command_writes_validates_and_prints_the_verdict(tmp_path: Path) -> None:
    df = churn_frame()
    df.loc[5, "seats"] = "lots"
    write_csv(df, tmp_path / "data.csv")
    out = tmp_path / "churn.yaml"
    args = ["init", "--from", str(tmp_path / "data.csv"), "--label", "churn", "--out", str(out)]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    assert "Dry validation: pass on 400 rows" in result.output
    assert "coerced: data.seats: 1 value became null (e.g. 'lots')" in result.output
    assert "seats" in result.output and "inferred int" in result.output
    assert "seamless run training --config" in result.output
    assert load_config(out).labels.positive_class == "yes"  # the minority class

    again = CliRunner().invoke(cli(), args)
    assert again.exit_code == 1
    assert "already exists; pass --force" in again.output

    df["churn"] = ["a", "b", "c", "d"] * 100
    write_csv(df, tmp_path / "data.csv")
    bad = CliRunner().invoke(cli(), [*args, "--force"])
    assert bad.exit_code == 1
    assert "has 4 values" in bad.output and "--positive" in bad.output
    assert "Traceback" not in bad.output


def test_a_first_model_worse_than_chance_is_not_promoted(tmp_path: Path) -> None:
    plan = scaffold_csv(tmp_path, churn_frame(200), positive="yes")
    write_config(tmp_path / "c.yaml", plan.text)
    policy = load_config(tmp_path / "c.yaml").promotion
    assert (policy.metric, policy.min_value) == ("roc_auc", 0.5)
    worse = gate(policy, {"roc_auc": 0.4663}, None, None)
    assert worse.decision == "reject" and "promotion.min_value" in worse.reason
    assert gate(policy, {"roc_auc": 0.61}, None, None).decision == "promote"


def test_codes_for_none_are_pointed_out_not_changed() -> None:
    # Bank marketing's pdays: -1 (or 999) for "never contacted" in most rows.
    rng = np.random.default_rng(0)
    contacted = rng.random(500) >= 0.8
    low = pd.Series(np.where(contacted, rng.integers(1, 400, 500), -1)).astype(str)
    high = pd.Series(np.where(contacted, rng.integers(0, 28, 500), 999))
    for name, raw, code in (("pdays", low, "-1 in"), ("pdays", high, "999 in")):
        profile = infer_column(name, raw)
        assert profile.kind == "int" and code in profile.why, profile.why
        assert "a code for 'none' rather than a quantity?" in profile.why
    # Common values that are quantities: a majority of zeros, negatives among the
    # values, a 9s value with others near it, too few rows.
    ordinary = {
        "gain": np.where(rng.random(500) < 0.9, 0, rng.integers(1, 99_999, 500)),
        "balance": rng.integers(-2000, 5000, 500),
        "score": np.where(rng.random(500) < 0.3, 9999, rng.integers(0, 6000, 500)),
        "few": np.array([-1] * 10 + [5] * 9),
    }
    for name, values in ordinary.items():
        assert "code for 'none'" not in infer_column(name, pd.Series(values)).why, name


def test_us_dates_and_thousands_separators_are_written_as_formats(tmp_path: Path) -> None:
    # A Telco-like export: US dates as the event time, charges as "1,234.50", a European
    # decimal comma, an ambiguous day/month column. Init writes each column's format, and
    # the written config ingests the file without a coerced value.
    df = churn_frame(300)
    rng = np.random.default_rng(1)
    days = pd.date_range("2023-01-01", periods=300, freq="D")
    df.insert(0, "customer_id", [f"C-{i:04d}" for i in range(300)])
    df.insert(1, "date", [f"{d.month}/{d.day}/{d.year}" for d in days])
    df["total"] = [f"{v:,.2f}" for v in rng.uniform(10, 9000, 300)]
    df["visits"] = [f"{v:,}" for v in rng.integers(0, 2_000_000, 300)]
    df["ratio"] = [f"{v:.2f}".replace(".", ",") for v in rng.uniform(0, 5, 300)]
    df["renewal"] = [f"{m:02d}/{d:02d}/2024" for m, d in rng.integers(1, 13, (300, 2))]
    plan = scaffold_csv(tmp_path, df, positive="yes", now=datetime(2025, 1, 1, tzinfo=UTC))
    columns = yaml.safe_load(plan.text)["tables"]["data"]["columns"]
    assert yaml.safe_load(plan.text)["tables"]["data"]["timestamp_column"] == "date"
    assert columns["date"] == {"type": "timestamp", "format": "%m/%d/%Y"}
    assert columns["total"] == {"type": "float", "thousands": ","}
    assert columns["visits"] == {"type": "int", "thousands": ","}
    assert columns["ratio"] == {"type": "float", "decimal": ","}
    assert columns["renewal"] == {"type": "timestamp", "format": "%m/%d/%Y"}
    assert 'month first is assumed: write format: "%d/%m/%Y"' in plan.profiles["renewal"].why
    assert "written like 1,234,567.89 (thousands: ',')" in plan.profiles["total"].why
    assert plan.profiles["total"].minimum >= 10  # parsed, not text
    write_config(tmp_path / "c.yaml", plan.text)
    dry = dry_validate(tmp_path / "c.yaml", tmp_path)
    assert dry.result.decision == "pass", dry.result.failure_sentences()
    assert dry.coerced() == []
    # --timestamp on such a column reads it with its format too; a value that does not
    # fit is named with the expected form.
    df.loc[5, "date"] = "2023-01-06"
    with pytest.raises(SeamlessError) as info:
        scaffold_csv(tmp_path, df, positive="yes", timestamp="date")
    assert_one_sentence(str(info.value), "'date'", "row 6", "written like 11/28/2024", "%m/%d/%Y")


def test_currency_and_percent_columns_are_numbers_with_their_symbol(tmp_path: Path) -> None:
    df = churn_frame(300)
    rng = np.random.default_rng(2)
    df["charges"] = [f"${v:,.2f}" for v in rng.uniform(10, 3000, 300)]
    df.loc[3, "charges"] = "-$12.00"  # a refund
    df["discount"] = [f"{v}%" for v in rng.integers(0, 50, 300)]
    df["price"] = [f"{v:.2f} €".replace(".", ",") for v in rng.uniform(1, 99, 300)]
    plan = scaffold_csv(tmp_path, df, positive="yes")
    columns = yaml.safe_load(plan.text)["tables"]["data"]["columns"]
    assert columns["charges"] == {"type": "float", "thousands": ",", "prefix": "$"}
    assert columns["discount"] == {"type": "int", "suffix": "%"}
    assert columns["price"] == {"type": "float", "decimal": ",", "suffix": "€"}
    assert plan.profiles["charges"].minimum == -12.0
    df["balance"] = [f"({-v:,.2f})" if v < 0 else f"{v:,.2f}" for v in rng.normal(0, 3000, 300)]
    df["refund"] = [f"$({v:,.2f})" for v in rng.uniform(10, 3000, 300)]  # all negative
    plan = scaffold_csv(tmp_path, df, positive="yes")
    columns = yaml.safe_load(plan.text)["tables"]["data"]["columns"]
    assert columns["balance"] == {"type": "float", "thousands": ",", "negative_parentheses": True}
    assert columns["refund"] == {
        "type": "float", "thousands": ",", "prefix": "$", "negative_parentheses": True,
    }  # fmt: skip
    assert plan.profiles["refund"].maximum < 0
    write_config(tmp_path / "c.yaml", plan.text)
    dry = dry_validate(tmp_path / "c.yaml", tmp_path)
    assert dry.result.decision == "pass", dry.result.failure_sentences()
    assert dry.coerced() == []


def test_a_windows_export_is_read_as_cp1252_and_says_which_values_to_check(
    tmp_path: Path,
) -> None:
    df = churn_frame(300)
    df["city"] = ["Zürich", "Genève", "Köln"] * 100
    (tmp_path / "data.csv").write_bytes(df.to_csv(index=False).encode("cp1252"))
    plan = build_scaffold(str(tmp_path / "data.csv"), "churn", name="churn", data_dir=tmp_path)
    assert yaml.safe_load(plan.text)["tables"]["data"]["source"]["encoding"] == "cp1252"
    note = next(n for n in plan.source.notes if "Not UTF-8" in n)
    assert "read as cp1252" in note and "'Zürich', 'Genève', 'Köln'" in note
    write_config(tmp_path / "c.yaml", plan.text)
    dry = dry_validate(tmp_path / "c.yaml", tmp_path)
    assert dry.result.decision == "pass", dry.result.failure_sentences()
    # UTF-8 text gets no encoding key.
    plan = scaffold_csv(tmp_path, df, positive="yes")
    assert "encoding" not in yaml.safe_load(plan.text)["tables"]["data"]["source"]


def test_unix_time_named_like_a_time_or_given_is_the_event_time(tmp_path: Path) -> None:
    # Event logs and Kafka exports write Unix time; before, init typed it int and refused
    # it as --timestamp.
    df = churn_frame(300)
    start = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())
    df.insert(0, "event_time", [str((start + 3600 * i) * 1000) for i in range(300)])
    df.insert(1, "created", [str(start + 60 * i) for i in range(300)])
    df["response_time"] = [str(50 + i % 700) for i in range(300)]  # a duration in ms
    plan = scaffold_csv(tmp_path, df, positive="yes")
    columns = yaml.safe_load(plan.text)["tables"]["data"]["columns"]
    assert yaml.safe_load(plan.text)["tables"]["data"]["timestamp_column"] == "event_time"
    assert columns["event_time"] == {"type": "timestamp", "unit": "ms"}
    assert "# event time: Unix time in milliseconds" in plan.text
    assert columns["created"] == "int" and columns["response_time"] == "int"
    write_config(tmp_path / "c.yaml", plan.text)
    dry = dry_validate(tmp_path / "c.yaml", tmp_path)
    assert dry.result.decision == "pass" and dry.coerced() == []
    # Not named like a time: taken as Unix time when passed as --timestamp.
    df = df.drop(columns="event_time")
    plan = scaffold_csv(tmp_path, df, positive="yes", timestamp="created")
    created = yaml.safe_load(plan.text)["tables"]["data"]["columns"]["created"]
    assert created == {"type": "timestamp", "unit": "s"}
    assert plan.keys.oldest == datetime(2024, 3, 1, tzinfo=UTC)


def test_infinities_in_a_float_column_are_flagged_not_ranged(tmp_path: Path) -> None:
    # 'inf' parsed as a number made the range expectation's step infinite: a traceback.
    df = churn_frame(300)
    df.loc[[3, 7], "monthly"] = ["inf", "-inf"]
    plan = scaffold_csv(tmp_path, df, positive="yes")
    assert plan.profiles["monthly"].kind == "float"
    assert "2 do not and become null at ingest (e.g. 'inf', '-inf')" in plan.profiles["monthly"].why
    assert plan.profiles["monthly"].maximum < 121


def test_a_small_table_gets_leaves_it_can_fill() -> None:
    # heart disease has 303 rows: a fold trains on ~160, so leaves of 20 rows barely split,
    # and at 40 rows nothing splits at all (every row would get the base rate).
    assert small_table_leaf(40) == 1 and small_table_leaf(303) == 6
    assert small_table_leaf(999) == 19 and small_table_leaf(1000) is None


def test_a_csv_without_a_header_row_is_named_with_column_names(tmp_path: Path) -> None:
    """The UCI files (adult.data and the like) have no header row and write ", " between
    values: init said only that the label is not a column of '39', ' State-gov', ..."""
    df = churn_frame()
    df.loc[[2, 8], "seats"] = "?"
    (tmp_path / "churn.data").write_text(
        df.to_csv(index=False, header=False, sep="|").replace("|", ", ")
    )
    out = tmp_path / "churn.yaml"
    args = ["init", "--from", str(tmp_path / "churn.data"), "--label", "churn", "--out", str(out)]
    bad = CliRunner().invoke(cli(), args)
    assert bad.exit_code == 1
    assert "looks like data" in bad.output and "--column-names" in bad.output
    names = ",".join(df.columns)
    result = CliRunner().invoke(cli(), [*args, "--column-names", names])
    assert result.exit_code == 0, result.output
    assert "Dry validation: pass on 400 rows" in result.output  # the first line is data
    source = load_config(out).tables["churn"].source
    assert source.column_names == list(df.columns)  # type: ignore[union-attr]
    assert source.missing_values == ["?"]  # type: ignore[union-attr]
    plan = build_scaffold(
        str(tmp_path / "churn.data"), "churn", name="churn", data_dir=tmp_path,
        column_names=list(df.columns),
    )  # fmt: skip
    assert plan.profiles["seats"].kind == "int" and plan.profiles["seats"].invalid == 0
    # The classes are ' yes' and ' no' there: --positive yes names ' yes'.
    spaced = CliRunner().invoke(
        cli(), [*args, "--force", "--column-names", names, "--positive", "no"]
    )
    assert spaced.exit_code == 0, spaced.output
    assert "--positive 'no' is written ' no' in the file" in spaced.output
    assert load_config(out).labels.positive_class == " no"
    twice = CliRunner().invoke(cli(), [*args, "--force", "--column-names", "a,b,a"])
    assert twice.exit_code == 1 and "--column-names: the name 'a' is given twice" in twice.output
