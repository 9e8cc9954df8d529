"""Register a trained model version and move aliases (never the deprecated stages)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from components.common.errors import SeamlessError
from components.common.tracking import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    champion_version,
    mlflow_client,
)


@dataclass
class Registration:
    model_name: str
    version: str
    aliases: list[str]
    champion_version: str | None
    previous_champion_version: str | None
    promoted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _set_alias(client: Any, model_name: str, alias: str, version: str, attempts: int = 5) -> None:
    """Set an alias, retrying the unique-constraint race of concurrent writers (SQLite)."""
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            client.set_registered_model_alias(model_name, alias, version)
            return
        except MlflowException as exc:
            if "UNIQUE constraint" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)


def register(
    model_name: str,
    model_uri: str,
    decision: str,
    tags: dict[str, str],
    description: str = "",
) -> Registration:
    """Create a new version; `challenger` always points at it, `champion` only on promote.

    On promote the replaced champion keeps `previous_champion`, which is set before
    `champion` moves so a failure in between never leaves the registry without a
    rollback target.
    """
    check_decision(decision)
    tagged = {**tags, "seamless.decision": decision}
    version = create_version(model_name, model_uri, tagged, description)
    return settle(model_name, version, decision, tag=False)


def check_decision(decision: str) -> None:
    if decision not in ("promote", "reject"):
        raise SeamlessError(f"Decision must be 'promote' or 'reject', got {decision!r}.")


def create_version(
    model_name: str, model_uri: str, tags: dict[str, str], description: str = ""
) -> str:
    """The first half of `register`: a new version, `challenger` on it, champion untouched.

    The register step checks the compliance policy between the two halves: the policy
    needs the version itself (its lineage, its run's model card)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow_client()
    try:
        mv = mlflow.register_model(model_uri, model_name, tags=tags)
    except MlflowException as exc:
        raise SeamlessError(
            f"Registering {model_uri} as '{model_name}' failed: {exc.message}"
        ) from None
    version = str(mv.version)
    if description:
        client.update_model_version(model_name, version, description=description)
    _set_alias(client, model_name, CHALLENGER, version)
    return version


def settle(model_name: str, version: str, decision: str, tag: bool = True) -> Registration:
    """The second half of `register`: record the decision on the version (`tag`) and, on
    promote, move `champion` (the replaced one keeps `previous_champion`)."""
    check_decision(decision)
    client = mlflow_client()
    if tag:
        client.set_model_version_tag(model_name, version, "seamless.decision", decision)
    aliases = [CHALLENGER]
    current = champion_version(client, model_name, CHAMPION)
    previous: str | None = None
    champion: str | None
    if decision == "promote":
        if current is not None and str(current.version) != version:
            _set_alias(client, model_name, PREVIOUS_CHAMPION, str(current.version))
            previous = str(current.version)
        _set_alias(client, model_name, CHAMPION, version)
        aliases.append(CHAMPION)
        champion = version
    else:
        champion = None if current is None else str(current.version)
    return Registration(
        model_name=model_name,
        version=version,
        aliases=aliases,
        champion_version=champion,
        previous_champion_version=previous,
        promoted=decision == "promote",
    )


@dataclass
class AliasMove:
    model_name: str
    champion: str
    previous_champion: str | None
    replaced: str | None
    compliance_overridden: bool = False
    """A manual promotion that set the compliance policy aside (register/operations.py)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _existing_version(client: Any, model_name: str, version: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version(model_name, str(version)).version)
    except MlflowException:
        raise SeamlessError(f"Model {model_name} has no version {version}.") from None


def promote_version(model_name: str, version: str) -> AliasMove:
    """Make `version` the champion by hand; the replaced one keeps `previous_champion`."""
    client = mlflow_client()
    version = _existing_version(client, model_name, version)
    current = champion_version(client, model_name, CHAMPION)
    old = None if current is None else str(current.version)
    if old == version:
        raise SeamlessError(f"{model_name} v{version} is already the champion.")
    if old is not None:
        _set_alias(client, model_name, PREVIOUS_CHAMPION, old)
    _set_alias(client, model_name, CHAMPION, version)
    return AliasMove(model_name, version, old, old)


def rollback_champion(model_name: str, to_version: str | None = None) -> AliasMove:
    """Move `champion` back to `previous_champion` (or to `to_version`).

    The version rolled away from becomes `previous_champion`, so a mistaken rollback is
    itself one rollback away from undone.
    """
    client = mlflow_client()
    current = champion_version(client, model_name, CHAMPION)
    if current is None:
        raise SeamlessError(f"{model_name} has no champion to roll back.")
    if to_version is None:
        target = champion_version(client, model_name, PREVIOUS_CHAMPION)
        if target is None:
            raise SeamlessError(
                f"{model_name} has no previous_champion alias; name a version with --to."
            )
        to_version = str(target.version)
    to_version = _existing_version(client, model_name, to_version)
    old = str(current.version)
    if old == to_version:
        raise SeamlessError(f"{model_name} v{to_version} is already the champion.")
    _set_alias(client, model_name, CHAMPION, to_version)
    _set_alias(client, model_name, PREVIOUS_CHAMPION, old)
    return AliasMove(model_name, to_version, old, old)
