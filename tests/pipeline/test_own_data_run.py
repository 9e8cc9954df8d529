"""Issue #13 items 1, 2, 5 through the CLI: a user's own table, not the demo.

A churn table with string labels, no entity or timestamp column, a case typo in a few
labels and an integer that overflows. The run must stop on the stray labels with the
sentence on the console and in --json; once the config maps them, it trains and the
summary shows what ingest coerced, with the source text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from components.common.net import free_port
from pipelines.cli import app
from tests.helpers.webhook import Receiver, webhook_receiver

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

CONFIG = """
name: churn
tables:
  customers:
    source: {{kind: file, uri: customers.csv}}
    columns: {{plan: string, region: string, seats: int, tenure_months: int, monthly_fee: float, churn: string}}
labels: {{table: customers, label_column: churn, positive_class: churned{labels}}}
features:
  project: churn
  entity: account
  service: churn_v1
  views: [{{name: usage, table: customers, features: [plan, region, seats, tenure_months, monthly_fee]}}]
model:
  name: churn
  experiment: churn
  estimator: logistic_regression
  search: {{method: grid, cv: 2, space: {{C: [1.0]}}}}
notifications:
  backoff_s: 0.05
  receivers:
    - {{name: team, url_env: CHURN_HOOK_URL}}
    - {{name: pager, url_env: CHURN_PAGER_URL, events: [validation_failure, promotion]}}
"""  # noqa: E501


@pytest.fixture(scope="module", autouse=True)
def hook() -> Iterator[Receiver]:
    """The config's receivers: `team` answers, `pager` is down (nothing listens on its
    port). The steps (child processes) inherit the URLs."""
    down = f"http://127.0.0.1:{free_port()}/pager"
    with webhook_receiver() as receiver:
        os.environ.update(CHURN_HOOK_URL=receiver.url, CHURN_PAGER_URL=down)
        try:
            yield receiver
        finally:
            for name in ("CHURN_HOOK_URL", "CHURN_PAGER_URL"):
                os.environ.pop(name, None)


@pytest.fixture(scope="module")
def churn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("churn")
    rng = np.random.default_rng(5)
    n = 600
    tenure = rng.integers(1, 72, n)
    fee = rng.uniform(20, 120, n).round(2)
    churned = rng.random(n) < 1 / (1 + np.exp(0.05 * tenure - 0.02 * fee))
    labels = np.where(churned, "churned", "stayed").astype(object)
    labels[[3, 50, 97]] = "Churned"
    seats = [str(s) for s in rng.integers(1, 50, n)]
    seats[11] = "12345678901234567890"
    lines = ["plan,region,seats,tenure_months,monthly_fee,churn"] + [
        f"{rng.choice(['basic', 'pro', 'team'])},{rng.choice(['north', 'south'])},{seats[i]},"
        f"{tenure[i]},{fee[i]},{labels[i]}"
        for i in range(n)
    ]
    (folder / "customers.csv").write_text("\n".join(lines) + "\n")
    return folder


def run(folder: Path, workspace: Path, labels: str, *extra: str) -> tuple[int, str]:
    config = folder / f"churn{abs(hash(labels))}.yaml"
    config.write_text(CONFIG.format(labels=labels))
    args = ["run", "training", "--config", str(config), "--data-dir", str(folder)]
    result = CliRunner().invoke(app, [*args, "--workspace", str(workspace), *extra])
    return result.exit_code, result.output


def test_stray_labels_stop_the_run_with_the_sentence(
    churn_dir: Path, tmp_path: Path, hook: Receiver
) -> None:
    code, out = run(churn_dir, tmp_path / "ws", "")
    assert code == 2, out
    # The team hears of it: the validate step sent the failure with its counts.
    [sent] = hook.bodies("validation_failure")
    assert sent["numbers"]["failed_critical"] >= 1 and sent["dataset_sha256"]
    assert hook.bodies("promotion") == []
    # The pager is down: the run still ends as it would, and its summary says what was kept.
    assert "Notifications not delivered" in out
    assert "validation_failure to pager: cannot reach 127.0.0.1: ConnectionError" in out
    assert "Table 'customers': label column 'churn' has 3 rows" in out
    assert "'Churned' (3 rows)" in out and "labels.value_map" in out
    code, out = run(churn_dir, tmp_path / "ws", "", "--json")
    assert code == 2
    outcome = json.loads(out[out.index("{") : out.rindex("}") + 1])
    [sentence] = outcome["data"]["validation"]["failures"]
    assert sentence.startswith("critical: built-in check") and "'Churned'" in sentence
    assert outcome["version"] is None  # nothing registered
    assert outcome["notifications_not_sent"] == [
        "validation_failure to pager: cannot reach 127.0.0.1: ConnectionError"
    ]


def test_mapped_labels_train_and_the_summary_shows_coercions(
    churn_dir: Path, tmp_path: Path, hook: Receiver
) -> None:
    code, out = run(churn_dir, tmp_path / "ws", ", value_map: {Churned: churned}")
    assert code == 0, out
    assert "customers.seats: 1 value not parseable as the declared type became null" in out
    assert "'12345678901234567890'" in out
    assert "customers: 3 label values 'Churned' mapped" in out
    assert "new version" in out
    # The first model passes the gate: the register step sent the promotion.
    [sent] = hook.bodies("promotion")
    assert sent["model"] == "churn" and sent["version"] == "1"
    assert sent["summary"] == "churn version 1 was promoted to champion (the first champion)."
    assert sent["numbers"]["metric"] and sent["numbers"]["challenger"] > 0.5
    assert "promotion to pager: cannot reach 127.0.0.1: ConnectionError" in out
