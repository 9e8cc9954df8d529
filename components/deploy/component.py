"""KFP component: make the new champion live (locally: the workspace deployment record)."""

from components.common.image import seamless_component


@seamless_component
def deploy(config_yaml: str, version: str, pipeline_run_id: str) -> str:
    """Returns the model URI now live."""
    from components.common.env import deployments_dir
    from components.common.stage import clean_errors, stage_config
    from components.deploy.deployment import deploy_local
    from components.governance import access, hooks

    with clean_errors("deploy"):
        config = stage_config(config_yaml)
        access.require("deploy", f"model:{config.model.name}/{version}")
        record = deploy_local(config.model.name, version, deployments_dir(), pipeline_run_id)
        hooks.on_deploy(record)
        print(f"deploy: {record['model_uri']} is live")
        return str(record["model_uri"])


@seamless_component
def deploy_kubernetes(
    config_yaml: str,
    version: str,
    pipeline_run_id: str,
    namespace: str = "seamless",
    deployment: str = "serving",
) -> str:
    """Cluster variant: roll the serving Deployment to the champion; returns the model URI."""
    from components.common.stage import clean_errors, stage_config
    from components.deploy.deployment import require_champion
    from components.deploy.kubernetes import roll_serving
    from components.governance import access, hooks

    with clean_errors("deploy"):
        config = stage_config(config_yaml)
        access.require("deploy", f"model:{config.model.name}/{version}")
        require_champion(config.model.name, version)
        record = roll_serving(config.model.name, version, namespace, deployment, pipeline_run_id)
        hooks.on_deploy(record)
        print(f"deploy: {record['target']} rolls to {record['model_uri']}")
        return str(record["model_uri"])
