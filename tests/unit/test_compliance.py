"""The compliance policy (governance/compliance.py), the segment measurements it judges
(evaluate/segments.py) and its config (common/compliance_config.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.common.errors import SeamlessError
from components.evaluate.segments import metric_value
from components.governance.compliance import not_declared
from components.register.stage import final_decision
from tests.helpers.compliance import CARD, config_with, holdout, judge, report_for
from tests.helpers.configs import assert_one_sentence

pytestmark = pytest.mark.unit

# ---------------------------------------------------------------- measurements


def test_segment_values_are_the_metric_on_exactly_the_group_rows() -> None:
    config = config_with(
        {
            "segments": [
                {"column": "region", "values": ["north", "south"]},
                {"name": "age_band", "column": "age", "bins": [18, 40, 79]},
            ]
        }
    )
    frame, y, p = holdout()
    report = report_for(config)
    assert report["overall"] == pytest.approx(roc_auc_score(y, p))
    region, age = report["segments"]
    by_group = {g["group"]: g for g in region["groups"]}
    for name, rows in (("north", 250), ("south", 100)):
        mask = (frame["region"] == name).to_numpy()
        assert by_group[name]["rows"] == mask.sum() == rows
        assert by_group[name]["value"] == pytest.approx(roc_auc_score(y[mask], p[mask]))
        assert by_group[name]["gap"] == pytest.approx(by_group[name]["value"] - report["overall"])
    # east, tiny and flat are in no listed group: counted, not judged.
    assert region["unassigned_rows"] == 350
    values = [g["value"] for g in region["groups"]]
    assert region["spread"] == pytest.approx(max(values) - min(values))
    # Bins: [18, 40) then [40, 79], the last edge included.
    assert [g["group"] for g in age["groups"]] == ["[18, 40)", "[40, 79]"]
    young = ((frame["age"] >= 18) & (frame["age"] < 40)).to_numpy()
    assert age["groups"][0]["rows"] == young.sum()
    assert sum(g["rows"] for g in age["groups"]) + age["unassigned_rows"] == len(frame)


def test_a_group_with_one_class_has_no_value_and_says_why() -> None:
    y, p = np.zeros(40, dtype=int), np.linspace(0, 1, 40)
    assert metric_value("roc_auc", y, p, 0.5) == (
        None,
        "only negative rows (40), so roc_auc is undefined",
    )
    assert metric_value("pr_auc", 1 - y, p, 0.5)[0] is None
    assert metric_value("f1", y, p, 0.5)[1] == "no positive rows (40 negative), so f1 is undefined"
    # Defined on one class: log loss and Brier score.
    assert metric_value("brier", y, p, 0.5)[0] == pytest.approx(float(np.mean(p**2)))
    assert metric_value("roc_auc", y[:0], p[:0], 0.5) == (None, "no rows")


# ---------------------------------------------------------------- the policy


def test_segments_within_the_bound_pass() -> None:
    config = config_with(
        {"max_gap": 0.15, "segments": [{"column": "region", "values": ["north", "east"]}]}
    )
    result = judge(config)
    assert result.passed and result.tag == "pass"
    assert result.reason == (
        "compliance passed: validation, lineage, model card, 2 segment groups within bounds"
    )
    assert result.counts["measured"] == 2
    assert result.segments["segments"][0]["groups"][0]["status"] == "within"


def test_a_segment_outside_the_bound_fails_naming_group_and_key() -> None:
    config = config_with(
        {"max_gap": 0.15, "segments": [{"column": "region", "values": ["north", "south"]}]}
    )
    result = judge(config)
    assert not result.passed and result.tag == "fail"
    [failed] = result.failures()
    assert failed.subject == "region=south"
    south = result.segments["segments"][0]["groups"][1]
    overall = result.segments["overall"]
    assert failed.sentence == (
        f"segment region=south roc_auc {south['value']:.4f} is "
        f"{overall - south['value']:.4f} below the overall {overall:.4f}, beyond "
        "compliance.max_gap 0.1500"
    )
    assert_one_sentence(result.reason + ".", "region=south", "compliance.max_gap")
    assert result.counts == {
        "declared": 2, "measured": 2, "outside": 1, "too_few_rows": 0, "undefined": 0,
    }  # fmt: skip


def test_a_segment_bound_of_its_own_is_named() -> None:
    config = config_with(
        {
            "max_gap": 0.9,
            "segments": [
                {"column": "region", "values": ["north"]},
                {"name": "south_only", "column": "region", "values": ["south"], "max_gap": 0.01},
            ],
        }
    )
    result = judge(config)
    [failed] = result.failures()
    assert failed.subject == "south_only=south"
    assert "beyond compliance.segments[1].max_gap 0.0100" in failed.sentence


def test_the_bound_applies_either_way() -> None:
    """Fairlearn's difference to overall: a group far above the overall is flagged too."""
    config = config_with({"max_gap": 0.05, "segments": [{"column": "region", "values": ["north"]}]})
    result = judge(config)
    north = result.segments["segments"][0]["groups"][0]
    assert north["value"] > result.segments["overall"] + 0.05
    assert "above the overall" in result.failures()[0].sentence


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            {"min_rows": 30},
            "segment region=tiny has 10 holdout rows, fewer than compliance.min_rows 30",
        ),
        (
            {"min_rows": 5},
            "segment region=flat cannot be measured: only negative rows (90), so roc_auc is "
            "undefined",
        ),
    ],
)
def test_unmeasurable_groups_fail_by_default_naming_the_group(
    policy: dict[str, Any], expected: str
) -> None:
    group = "tiny" if "min_rows 30" in expected else "flat"
    config = config_with(
        {"max_gap": 1.0, **policy, "segments": [{"column": "region", "values": [group]}]}
    )
    result = judge(config)
    assert not result.passed
    assert [c.sentence for c in result.failures()] == [expected]
    assert result.reason == f"compliance failed: {expected}"


def test_unmeasurable_groups_can_be_reported_only() -> None:
    config = config_with(
        {
            "max_gap": 1.0,
            "unmeasurable": "report",
            "segments": [{"column": "region", "values": ["north", "tiny", "flat"]}],
        }
    )
    result = judge(config)
    assert result.passed
    assert result.counts["too_few_rows"] == 1 and result.counts["undefined"] == 1
    assert result.counts["measured"] == 1
    assert "(2 unmeasurable, reported only)" in result.reason
    statuses = [g["status"] for g in result.segments["segments"][0]["groups"]]
    assert statuses == ["within", "too_few_rows", "undefined"]


def test_the_gap_between_groups_is_bounded_when_asked() -> None:
    config = config_with(
        {
            "max_gap": 1.0,
            "max_segment_gap": 0.1,
            "segments": [{"column": "region", "values": ["north", "south"]}],
        }
    )
    result = judge(config)
    [failed] = result.failures()
    assert (
        failed.name == "segment_spread" and "compliance.max_segment_gap 0.1000" in failed.sentence
    )
    spread = result.segments["segments"][0]["spread"]
    assert f"differ by {spread:.4f}" in failed.sentence


def test_a_declared_segment_the_evaluation_did_not_measure_fails() -> None:
    config = config_with({"segments": [{"column": "region", "values": ["north"]}]})
    result = judge(config, segments={})
    assert [c.sentence for c in result.failures()] == [
        "segment region was not measured by the evaluate step (compliance.segments[0])"
    ]


@pytest.mark.parametrize(
    ("facts", "policy", "expected"),
    [
        ({"validation": ""}, {}, "no validation verdict is recorded for the training data"),
        (
            {"validation": "warn"},
            {"validation": "pass"},
            "the training data's validation verdict is 'warn' and compliance.validation 'pass' "
            "allows only pass",
        ),
        (
            {"validation": "fail"},
            {},
            "the training data's validation verdict is 'fail' and compliance.validation "
            "'pass_or_warn' allows only pass or warn",
        ),
        (
            {
                "lineage": {
                    "gaps": ["no validation report recorded"],
                    "sources": [1],
                }
            },
            {},
            "the lineage has gaps: no validation report recorded",
        ),
        (
            {"lineage": {"gaps": [], "sources": []}},
            {},
            "the lineage has gaps: no source is recorded",
        ),
        (
            {"lineage": None, "lineage_error": "Model m version 3 does not exist"},
            {},
            "the lineage could not be read (Model m version 3 does not exist)",
        ),
        (
            {"card_logged": False, "card_location": "training run abc"},
            {},
            "the model card is not on training run abc",
        ),
    ],
)
def test_each_check_fails_with_its_sentence(
    facts: dict[str, Any], policy: dict[str, Any], expected: str
) -> None:
    result = judge(config_with(policy), **facts)
    assert [c.sentence for c in result.failures()] == [expected]
    assert result.reason == f"compliance failed: {expected}"


def test_warnings_pass_by_default_and_checks_can_be_switched_off() -> None:
    assert judge(config_with({}), validation="warn").passed
    off = config_with({"lineage": False, "model_card": False}, model_card={})
    result = judge(off, lineage=None, card_logged=False)
    assert result.passed and result.reason == "compliance passed: validation"


def test_many_failures_make_one_sentence_with_a_count() -> None:
    config = config_with(
        {"max_gap": 0.0, "segments": [{"column": "age", "bins": [18, 30, 50, 80]}]}
    )
    result = judge(config, validation="", card_logged=False)
    assert len(result.failures()) == 5
    assert result.reason.endswith("; and 2 more failed checks")
    assert "\n" not in result.reason


def test_no_policy_declared_changes_nothing() -> None:
    config = config_with(None, model_card={})
    result = judge(config, validation="", lineage=None, card_logged=False)
    assert result.passed and not result.declared and result.tag == "none"
    assert result.checks == [] and result == not_declared()
    assert final_decision("promote", "gate says so", result) == ("promote", "gate says so")
    assert final_decision("reject", "below margin", result) == ("reject", "below margin")


def test_a_failed_policy_turns_promote_into_reject_keeping_both_reasons() -> None:
    config = config_with({})
    failed = judge(config, validation="")
    decision, reason = final_decision("promote", "no champion yet", failed)
    assert decision == "reject"
    assert reason == (
        "compliance failed: no validation verdict is recorded for the training data "
        "(the gate alone would promote: no champion yet)"
    )
    passed = judge(config)
    assert final_decision("promote", "beats v1", passed) == (
        "promote",
        "beats v1; compliance passed: validation, lineage, model card",
    )
    assert final_decision("reject", "below margin", failed)[0] == "reject"


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("compliance", "card", "expected"),
    [
        (
            {"segments": [{"column": "shoe_size", "values": [1]}]},
            CARD,
            "compliance.segments[0].column 'shoe_size' is not a feature of features.service",
        ),
        (
            {"segments": [{"column": "region", "bins": [1, 2]}]},
            CARD,
            "compliance.segments[0].bins need a numeric column; 'region' is declared string",
        ),
        (
            {"segments": [{"column": "age"}]},
            CARD,
            "key 'compliance.segments.0': segment 'age' needs exactly one of `values` or `bins`",
        ),
        (
            {"segments": [{"column": "age", "bins": [30, 18]}]},
            CARD,
            "`bins` must be at least two finite, strictly increasing edges",
        ),
        (
            {"segments": [{"column": "age", "bins": [18, float("nan"), 60]}]},
            CARD,
            "`bins` must be at least two finite, strictly increasing edges",
        ),
        (
            {
                "segments": [
                    {"column": "region", "values": ["a"]},
                    {"column": "region", "values": ["b"]},
                ]
            },
            CARD,
            "compliance.segments names ['region'] more than once",
        ),
        ({"max_gap": -0.1}, CARD, "key 'compliance.max_gap'"),
        ({"unmeasurable": "ignore"}, CARD, "key 'compliance.unmeasurable'"),
        ({"segmentz": []}, CARD, "unknown key 'compliance.segmentz'"),
        ({}, {"owners": ["x"]}, "model_card.intended_use is required when compliance.model_card"),
        ({}, {"intended_use": "x", "owners": [" "]}, "model_card.owners is required"),
    ],
)
def test_bad_compliance_config_is_one_sentence_naming_the_key(
    compliance: dict[str, Any], card: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SeamlessError) as err:
        config_with(compliance, model_card=card)
    assert_one_sentence(str(err.value), "cfg.yaml", expected)


def test_no_compliance_key_needs_no_model_card_text() -> None:
    config = config_with(None, model_card={})
    assert config.compliance is None and config.model_card.owners == []
