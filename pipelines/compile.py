"""Compile the pipelines into pipelines/compiled/ (kept current by a test)."""

from __future__ import annotations

from pathlib import Path

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def compiled_pipelines() -> dict[str, object]:
    from pipelines.monitoring import monitoring_pipeline
    from pipelines.training import training_pipeline

    return {"training": training_pipeline, "monitoring": monitoring_pipeline}


def compile_all(out_dir: Path = COMPILED_DIR) -> list[Path]:
    from kfp import compiler

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in compiled_pipelines().items():
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        written.append(path)
    return written
