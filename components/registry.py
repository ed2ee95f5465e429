"""The MLflow model registry: the source of truth for a model's lifecycle, and the one safe way to load a model.

Aliases and the lifecycle tags are moved by components.lifecycle alone. The version tag `model_sha256` is the
sha256 of the model file's bytes as registered: every load checks the file against it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.contract import Contract

IMPORTANCES_ARTIFACT = "feature_importances.json"
MODEL_FILE = "model.skops"  # where mlflow.sklearn.save_model(serialization_format="skops") puts the model


class ModelIntegrityError(ValueError):
    """A model folder is not what was registered, or not in the one format we load; it is never loaded."""


@dataclass
class Champion:
    version: str
    run_id: str | None
    model: object
    contract: Contract
    importances: dict[str, float] | None
    importances_error: str | None = None  # why the recorded importances could not be loaded


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def registered_sha256(client: MlflowClient, name: str, version: str) -> str:
    """The `model_sha256` tag of a model version, looked up in the registry (never in the artifact folder)."""
    digest = client.get_model_version(name, version).tags.get("model_sha256")
    if not digest:
        raise ModelIntegrityError(f"model {name!r} version {version} has no model_sha256 tag: it was not "
                                  "registered by register_model, so its bytes cannot be checked")
    return digest


def load_model(folder: str | Path, expected_sha256: str | None):
    """The estimator in an MLflow model folder, loaded with skops and the project's trusted types.

    Whatever the folder's MLmodel says about types, only a skops folder is accepted, and the model file's
    bytes must hash to `expected_sha256` (None: unchecked, for a folder nobody vouches for). The bytes are
    read once, so the file checked is the file loaded.
    """
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    from components.train.logic import TRUSTED_TYPES

    folder = Path(folder)
    mlmodel = folder / "MLmodel"
    try:
        flavor = ((yaml.safe_load(mlmodel.read_text()) or {}).get("flavors") or {}).get("sklearn") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ModelIntegrityError(f"{mlmodel}: cannot read the model's metadata: {exc}") from exc
    fmt = flavor.get("serialization_format")
    if fmt != "skops":
        raise ModelIntegrityError(f"{mlmodel}: serialization_format is {fmt!r}; only 'skops' models are loaded "
                                  "(pickle and cloudpickle run code while loading)")
    path = folder / MODEL_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"{path}: cannot read the model file: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and actual != expected_sha256:
        raise ModelIntegrityError(f"{path}: sha256 {actual} differs from the registered model_sha256 "
                                  f"{expected_sha256}: the file changed after registration")
    try:
        return sio.loads(data, trusted=TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:
        raise ModelIntegrityError(f"{path}: holds types outside the project's trusted list: {exc}") from exc


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


def champion(tracking_uri: str, name: str, alias: str = "production") -> Champion | None:
    """Load the model behind `alias` with its contract and feature importances, or None if there is none."""
    import mlflow.artifacts

    from components import contract

    client = MlflowClient(tracking_uri)
    mv = version_by_alias(client, name, alias)
    if mv is None:
        return None
    mlflow.set_tracking_uri(tracking_uri)
    folder = mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}")
    model = load_model(folder, registered_sha256(client, name, str(mv.version)))
    spec = contract.load(f"{folder}/{contract.MODEL_FILE}")
    importances = importances_error = None
    if mv.run_id:
        try:
            importances = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{IMPORTANCES_ARTIFACT}")
        except (MlflowException, OSError) as exc:
            importances_error = (f"the feature importances of production v{mv.version} could not be loaded: "
                                 f"{type(exc).__name__}: {exc}")
    return Champion(version=str(mv.version), run_id=mv.run_id, model=model, contract=spec, importances=importances,
                    importances_error=importances_error)
