"""The model file: its name in an MLflow model folder, the types skops may trust in it, its hash, and the one
safe way to load it.

A model is loaded only as it was registered: skops with TRUSTED_TYPES, the file's bytes checked against the
sha256 the registry recorded (the version tag `model_sha256`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

MODEL_FILE = "model.skops"  # where mlflow.sklearn.save_model(serialization_format="skops") puts the model
# Types skops must be told to trust when loading the trained pipelines; anything else fails loudly.
TRUSTED_TYPES = [
    "functools.partial",  # with check_array: how gradient-boosted trees with categorical features check numbers
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


class ModelIntegrityError(ValueError):
    """A model folder is not what was registered, or not in the one format we load; it is never loaded."""


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def checked_bytes(path: Path, expected_sha256: str | None, tag: str) -> bytes:
    """A registered file's bytes, read once so that the bytes checked are the bytes used: they must hash to
    `expected_sha256` (the version's `tag`) when it is given."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"{path}: cannot read it: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and actual != expected_sha256:
        raise ModelIntegrityError(f"{path}: sha256 {actual} differs from the registered {tag} "
                                  f"{expected_sha256}: the file changed after registration")
    return data


def load_model(folder: str | Path, expected_sha256: str | None):
    """The estimator in an MLflow model folder, loaded with skops and the project's trusted types.

    Whatever the folder's MLmodel says about types, only a skops folder is accepted, and the model file's
    bytes must hash to `expected_sha256` (None: unchecked, for a folder nobody vouches for). The bytes are
    read once, so the file checked is the file loaded.
    """
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

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
    data = checked_bytes(path, expected_sha256, "model_sha256")
    try:
        return sio.loads(data, trusted=TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:
        raise ModelIntegrityError(f"{path}: holds types outside the project's trusted list: {exc}") from exc
