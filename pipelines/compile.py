"""Compile the pipelines into pipelines/compiled/ (kept current by a test).

With an image prefix, every project image in the written specs becomes
`<prefix>/<name>:<tag>`, or `<prefix>/<name>@sha256:...` when `make push` recorded the
registry's digest for that exact tag (components/common/image.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from components.common.image import (
    DIGESTS_FILE,
    IMAGE_NAMES,
    check_prefix,
    image_ref,
    load_digests,
)

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def compiled_pipelines() -> dict[str, object]:
    from pipelines.batch_scoring import batch_scoring_pipeline
    from pipelines.monitoring import monitoring_pipeline
    from pipelines.training import training_pipeline, training_spark_pipeline

    return {
        "training": training_pipeline,
        "training-spark": training_spark_pipeline,
        "monitoring": monitoring_pipeline,
        "batch-scoring": batch_scoring_pipeline,
    }


def with_image_prefix(text: str, prefix: str, digests: dict[str, str]) -> str:
    """The spec text with each local project image (an `image:` value, or an environment
    `value:` such as the Spark executors' image) moved to `prefix`.

    Why rewrite the text: components bind their base image when their module is imported,
    so the prefix cannot reach them earlier without import-time configuration.
    """
    for name in IMAGE_NAMES:
        local = re.escape(image_ref(name))
        moved = image_ref(name, prefix, digests)  # validated: no backslash, no group syntax
        text = re.sub(
            rf"^(\s*(?:image|value):\s*['\"]?){local}(['\"]?\s*)$",
            rf"\g<1>{moved}\g<2>",
            text,
            flags=re.MULTILINE,
        )
    return text


def compile_all(
    out_dir: Path = COMPILED_DIR,
    image_prefix: str | None = None,
    digests_file: Path = DIGESTS_FILE,
) -> list[Path]:
    from kfp import compiler

    if image_prefix:
        check_prefix(image_prefix)
    digests = load_digests(digests_file) if image_prefix else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in compiled_pipelines().items():
        path = out_dir / f"{name}.yaml"
        # Compiled beside the target, then moved into place: never a half-rewritten spec.
        tmp = out_dir / f".{name}.tmp.yaml"
        compiler.Compiler().compile(pipeline, str(tmp))
        if image_prefix:
            tmp.write_text(with_image_prefix(tmp.read_text(), image_prefix, digests))
        tmp.replace(path)
        written.append(path)
    return written
