"""The model card (register/model_card.py): JSON and Markdown agree, and nothing from the
config, the data or a reason becomes markup where the card is shown as HTML (the KFP UI
renders Markdown with inline HTML)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest
from markdown_it import MarkdownIt

from components.common.config import default_config_path, load_config
from components.register.model_card import build_card, md, render_markdown
from tests.helpers.compliance import config_with, judge

pytestmark = pytest.mark.unit

HOSTILE = (
    "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
    "![x](javascript:alert(4)) <a href='javascript:alert(5)'>a</a> &#60;script&#62; "
    "`code` **bold** | pipe |"
)


def chain() -> dict[str, Any]:
    return {
        "data_sha256": "ab" * 32,
        "pipeline_run_id": "run-7",
        "sources": [
            {
                "table": "labels",
                "kind": "file",
                "source": "/data/labels.parquet",
                "source_sha256": "cd" * 32,
            },
            {"table": "profiles", "kind": "sql", "source": HOSTILE, "source_sha256": "ef" * 32},
        ],
        "snapshot": {
            "ingested_at": "2026-01-02T03:04:05+00:00",
            "intact": True,
            "tables": {
                "labels": {"rows": 6000, "sha256": "12" * 32},
                "profiles": {"rows": 1500, "sha256": "34" * 32},
            },
        },
        "validation": {"reports": ["/snap/validation.html"]},
        "features": {
            "feature_service": "credit_risk_v1",
            "feature_views": ["customer_profile", "credit_history"],
            "training_set_sha256": "56" * 32,
        },
        "training_run": {
            "run_id": "r123",
            "params": {
                "train_rows": "4800",
                "holdout_cutoff": "2025-10-01T00:00:00+00:00",
                "train_label_first": "2025-01-01T00:00:00+00:00",
                "best_learning_rate": "0.1",
                "fixed_early_stopping": "False",
            },
            "metrics": {"cv_roc_auc_mean": 0.8123, "cv_roc_auc_std": 0.0101},
        },
        "gaps": [],
    }


def card(**card_config: Any) -> dict[str, Any]:
    config = config_with(
        {
            "max_gap": 0.15,
            "segments": [{"column": "region", "values": ["north", "south", HOSTILE]}],
        },
        model_card={
            "intended_use": card_config.get("intended_use", "Rank applications."),
            "owners": card_config.get("owners", ["risk-ml"]),
            "limitations": card_config.get("limitations", ["Synthetic data."]),
            "out_of_scope": card_config.get("out_of_scope", []),
        },
        **({"labels": card_config["labels"]} if "labels" in card_config else {}),
    )
    result = judge(config)
    evaluation = {
        "decision": "promote",
        "reason": f"no champion yet {HOSTILE}",
        "metric": "roc_auc",
        "challenger_metrics": {"roc_auc": 0.75012, "f1": 0.5, "rows": 700.0},
        "champion_metrics": {},
        "champion_version": None,
        "segments": result.segments,
        "holdout_period": {
            "first": "2025-10-01T00:00:00+00:00",
            "last": "2025-12-31T00:00:00+00:00",
        },
    }
    return build_card(
        config,
        version="3",
        model_uri="models:/m/3",
        chain=chain(),
        evaluation=evaluation,
        compliance=result.to_dict(),
        approvals=[
            {
                "time": "2026-01-03T00:00:00+00:00",
                "actor": "<b>eve</b>",
                "action": "registered",
                "decision": "reject",
                "reason": HOSTILE,
            },
        ],
        validation="pass",
    )


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def as_html(markdown: str) -> Tags:
    """Rendered the way a permissive viewer does: CommonMark, raw HTML on, GFM tables."""
    renderer = MarkdownIt("commonmark", {"html": True}).enable("table")
    parsed = Tags()
    parsed.feed(renderer.render(markdown))
    return parsed


def test_json_and_markdown_agree() -> None:
    doc = card()
    markdown = render_markdown(doc)
    # The Markdown is a function of the JSON alone: the logged JSON renders to the same text.
    assert render_markdown(json.loads(json.dumps(doc, default=str))) == markdown
    assert doc["evaluation"]["holdout"]["roc_auc"] == 0.75012
    assert "| roc\\_auc | 0.7501 | n/a |" in markdown
    assert "| rows | 700 | n/a |" in markdown
    south = doc["segments"]["segments"][0]["groups"][1]
    assert south["group"] == "south" and south["status"] == "outside"
    assert (
        f"| south | 100 | {south['positives']} | {south['value']:.4f} | {south['gap']:.4f} |"
        in (markdown)
    )
    assert doc["data"]["rows"] == {"training": 4800, "holdout": 700}
    assert "4800 training rows, 700 holdout rows" in markdown
    assert doc["data"]["label_period"] == {
        "first": "2025-01-01T00:00:00+00:00",
        "holdout_from": "2025-10-01T00:00:00+00:00",
        "holdout_split": "time",
        "last": "2025-12-31T00:00:00+00:00",
    }
    assert doc["training"]["best_params"] == {"learning_rate": "0.1"}
    assert doc["compliance"]["tag"] == "fail" and "**Compliance: FAILED.**" in markdown
    sections = ("Intended use", "Owners", "Data", "Features", "Training", "Holdout metrics",
                "Segment metrics", "Limitations", "Approval trail")  # fmt: skip
    for section in sections:
        assert f"## {section}\n" in markdown, section
    text = "".join(as_html(markdown).text)
    assert "abababababababab" in text and "credit_score" in text and "risk-ml" in text


def test_values_mapped_onto_the_positive_class_are_named() -> None:
    # `init --positive 7,8` writes value_map {"8": 7}: the card says 8 counts as positive.
    assert card()["features"]["mapped_to_positive"] == []
    labels = load_config(default_config_path()).labels.model_dump()
    labels |= {"positive_class": 1, "negative_classes": [0], "value_map": {"2": 1, "-1": 0}}
    doc = card(labels=labels)
    assert doc["features"]["mapped_to_positive"] == ["2"]
    text = render_markdown(doc)
    assert "positive class 1 (also 2, mapped onto it by labels.value_map)." in text


@pytest.mark.parametrize("field", ["intended_use", "owners", "limitations", "out_of_scope"])
def test_hostile_config_strings_stay_text_in_html(field: str) -> None:
    value: Any = HOSTILE + "\n\n# not a heading\n- not a list\n1. nor this"
    doc = card(**{field: value if field == "intended_use" else [value, "<b>ok</b>"]})
    assert HOSTILE in json.dumps(doc)  # the JSON keeps the text as written
    parsed = as_html(render_markdown(doc))
    allowed = {"h1", "h2", "h3", "p", "ul", "li", "table", "thead", "tbody", "tr", "th", "td",
               "strong", "em"}  # fmt: skip
    assert parsed.tags <= allowed, parsed.tags - allowed
    assert not [a for a in parsed.attrs if "javascript" in str(a[1]).lower()]
    text = "".join(parsed.text)
    # Shown as typed, markup and all.
    assert "<script>alert(1)</script>" in text
    assert "<img src=x onerror=alert(2)>" in text
    assert "[click](javascript:alert(3))" in text
    assert "&#60;script&#62;" in text
    assert "**bold**" in text and "`code`" in text


def test_md_escapes_what_markdown_and_html_would_interpret() -> None:
    assert md("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    assert md("# title") == "\\# title"
    assert md("1. first") == "1\\. first"
    assert md("- item\nnext line") == "\\- item next line"
    assert md("a | b [c](d) *e* _f_ `g` ~h~ !i") == (
        "a \\| b \\[c\\](d) \\*e\\* \\_f\\_ \\`g\\` \\~h\\~ \\!i"
    )
