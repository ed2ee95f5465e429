"""The MLflow model registry, the source of truth for a model's lifecycle: versions behind aliases, experiments,
a version's recorded hashes and the champion loaded from it.

Aliases and the lifecycle tags are moved by components.lifecycle alone. The version tag `model_sha256` is the
sha256 of the model file's bytes as registered, `decision_sha256` that of decision.json's: every load
(components.modelfile, components.decision) checks the file against its tag, when the version has one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components import decision
from components.contract import Contract
from components.modelfile import ModelIntegrityError, load_model

IMPORTANCES_ARTIFACT = "feature_importances.json"
REGISTRY_ENV = "MLFLOW_REGISTRY_URI"


class RegistryUriError(ValueError):
    """MLFLOW_REGISTRY_URI names another registry than the one the run was told to use."""


def resolve_registry_uri(tracking_uri: str, registry_uri: str = "") -> str:
    """The one rule for where the registry is: `registry_uri` when given, else the tracking URI. An
    MLFLOW_REGISTRY_URI that differs from the tracking URI, with no `registry_uri` given, is an error naming both
    (MLflow would otherwise send every registry call there, silently)."""
    if registry_uri:
        return registry_uri
    env = os.environ.get(REGISTRY_ENV)
    if env and env != tracking_uri:
        raise RegistryUriError(f"{REGISTRY_ENV} is {env!r}, another registry than the tracking URI {tracking_uri!r} "
                               f"this run uses as its registry: give --registry-uri {env} (pipeline parameter "
                               f"registry_uri) to use it, or unset {REGISTRY_ENV}")
    return tracking_uri


def client(tracking_uri: str, registry_uri: str = "") -> MlflowClient:
    """An MlflowClient on `tracking_uri` whose registry is `resolve_registry_uri(tracking_uri, registry_uri)`."""
    return MlflowClient(tracking_uri, registry_uri=resolve_registry_uri(tracking_uri, registry_uri))


@dataclass
class Champion:
    version: str
    run_id: str | None
    model: object
    contract: Contract
    importances: dict[str, float] | None
    importances_error: str | None = None  # why the recorded importances could not be loaded
    decision: dict | None = None  # its decision.json; None: registered before decisions, decided at 0.5


def registered_hashes(client: MlflowClient, name: str, version: str) -> tuple[str, str | None]:
    """The `model_sha256` and `decision_sha256` tags of a model version, looked up in the registry (never in the
    artifact folder); the second is None for a version registered before decision.json was hashed."""
    tags = client.get_model_version(name, version).tags
    digest = tags.get("model_sha256")
    if not digest:
        raise ModelIntegrityError(f"model {name!r} version {version} has no model_sha256 tag: it was not "
                                  "registered by register_model, so its bytes cannot be checked")
    return digest, tags.get(decision.TAG) or None


def version_by_alias(client: MlflowClient, name: str, alias: str):
    """The model version behind an alias, or None when the model or alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of the experiment `name`, created when missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as exc:  # created concurrently
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def champion(tracking_uri: str, name: str, alias: str = "production", registry_uri: str = "") -> Champion | None:
    """Load the model behind `alias` with its contract and feature importances, or None if there is none."""
    import mlflow.artifacts

    from components import contract

    registry = client(tracking_uri, registry_uri)
    mv = version_by_alias(registry, name, alias)
    if mv is None:
        return None
    mlflow.set_tracking_uri(tracking_uri)
    folder = mlflow.artifacts.download_artifacts(registry.get_model_version_download_uri(name, mv.version))
    model_sha256, decision_sha256 = registered_hashes(registry, name, str(mv.version))
    model = load_model(folder, model_sha256)
    spec = contract.load(f"{folder}/{contract.MODEL_FILE}")
    importances = importances_error = None
    if mv.run_id:
        try:
            importances = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{IMPORTANCES_ARTIFACT}")
        except (MlflowException, OSError) as exc:
            importances_error = (f"the feature importances of production v{mv.version} could not be loaded: "
                                 f"{type(exc).__name__}: {exc}")
    decided = decision.read(folder, decision_sha256, registered=True)
    return Champion(version=str(mv.version), run_id=mv.run_id, model=model, contract=spec, importances=importances,
                    importances_error=importances_error, decision=decided)
