"""A local run whose failed step left no sentence of its own says so without kfp's colours."""

from __future__ import annotations

from pathlib import Path

from pipelines.local import pipeline_failure


def test_the_failure_sentence_has_no_terminal_codes(tmp_path: Path) -> None:
    exc = RuntimeError("Task \x1b[96m'ingest'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m")
    message = str(pipeline_failure("training", exc, tmp_path / "training.log"))
    assert "\x1b" not in message
    assert message == (
        "The training pipeline failed: Task 'ingest' finished with status FAILURE "
        f"(log: {tmp_path / 'training.log'})"
    )
