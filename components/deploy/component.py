"""KFP component: make the new champion live (locally: the workspace deployment record)."""

from components.common.image import seamless_component


@seamless_component
def deploy(config_yaml: str, version: str, pipeline_run_id: str) -> str:
    """Returns the model URI now live."""
    from components.common.env import deployments_dir
    from components.common.stage import clean_errors, stage_config
    from components.deploy.deployment import deploy_local

    with clean_errors("deploy"):
        config = stage_config(config_yaml)
        record = deploy_local(config.model.name, version, deployments_dir(), pipeline_run_id)
        print(f"deploy: {record['model_uri']} is live")
        return str(record["model_uri"])
