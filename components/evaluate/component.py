"""KFP component: holdout metrics, ROC/confusion for the KFP UI, champion/challenger gate."""

from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.common.image import seamless_component


@seamless_component
def evaluate(
    config_yaml: str,
    model: Input[Model],
    holdout: Input[Dataset],
    classification: Output[ClassificationMetrics],
    metrics: Output[Metrics],
    decision: Output[Artifact],
) -> str:
    """Returns `promote` or `reject`; the reason and both numbers are in `decision`."""
    from components.common.stage import clean_errors, stage_config
    from components.evaluate.stage import run_evaluation

    with clean_errors("evaluate"):
        outcome, plots = run_evaluation(
            stage_config(config_yaml), model.metadata["model_uri"], holdout.path, decision.path
        )
        fpr, tpr, thr = zip(*plots["roc"], strict=True)
        classification.log_roc_curve(list(fpr), list(tpr), list(thr))
        classification.log_confusion_matrix(["0", "1"], plots["confusion"])
        for key, value in outcome.challenger_metrics.items():
            metrics.log_metric(f"challenger.{key}", value)
        for key, value in outcome.champion_metrics.items():
            metrics.log_metric(f"champion.{key}", value)
        # Per segment group, so the KFP UI lists them beside the overall numbers.
        for segment in outcome.segments.get("segments", []):
            for group in segment["groups"]:
                if group["value"] is not None:
                    key = f"segment.{segment['name']}={group['group']}.{outcome.segments['metric']}"
                    metrics.log_metric(key, group["value"])
        decision.metadata.update(
            {"decision": outcome.decision, "reason": outcome.reason, "metric": outcome.metric}
        )
        print(f"evaluate: {outcome.decision}: {outcome.reason}")
        return str(outcome.decision)
