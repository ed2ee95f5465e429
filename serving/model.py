"""Finding, downloading and loading the served model."""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn

from components import contract as contract_mod
from components.contract import Contract
from components.registry import recorded_sha256
from components.scoring import positive_index
from serving.requests import RequestReader

INFO_FILE = "model_info.json"  # written by `mlops model pull`, beside the MLflow model files
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
log = logging.getLogger("serving")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    source: str
    model_sha256: str | None = None


def resolve(model_uri: str) -> tuple[str | None, str | None, str]:
    """(registered name, version, URI to download) for a model URI. A models:/name@alias URI is pinned
    to the version the alias points at now, so an alias moving mid-download cannot mix two versions."""
    match = MODELS_URI.match(model_uri)
    if not match:
        return None, None, model_uri
    version = match["version"]
    if version is None:
        from mlflow import MlflowClient

        version = str(MlflowClient().get_model_version_by_alias(match["name"], match["alias"]).version)
    return match["name"], version, f"models:/{match['name']}/{version}"


def pull(model_uri: str, output: str) -> ModelInfo:
    """Download a model into `output` (what the init container does); a no-op when it is already there.

    The download goes to a sibling folder that is renamed into place, so an interrupted pull leaves
    nothing behind that a retry would trip over.
    """
    import mlflow.artifacts

    name, version, source = resolve(model_uri)
    out = Path(output)
    if (out / INFO_FILE).exists():
        have = ModelInfo(**json.loads((out / INFO_FILE).read_text()))
        if version is not None and (have.name, have.version) == (name, version):
            return have
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: not empty and holds another model; give an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.partial-", dir=out.parent) as tmp:
        partial = Path(tmp) / "model"
        partial.mkdir()
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(partial))
        info = ModelInfo(name=name or out.name, version=version or "unknown", source=model_uri,
                         model_sha256=recorded_sha256(str(partial)))
        (partial / INFO_FILE).write_text(json.dumps(info.__dict__, indent=2))
        if out.exists():  # an empty folder, perhaps a mount point: move the files in, the marker last
            for item in sorted(partial.iterdir(), key=lambda p: p.name == INFO_FILE):
                item.rename(out / item.name)
        else:
            partial.rename(out)
    return info


@dataclass
class ServedModel:
    info: ModelInfo
    estimator: object
    contract: Contract
    reader: RequestReader
    example: pd.DataFrame

    blocks: list | None = None  # (fitted transformer, columns) of the preprocessing, for the direct path

    @cached_property
    def positive(self) -> int:
        """The probability column of the contract's positive class."""
        return positive_index(self.estimator.classes_, self.contract)

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(labels, positive-class probabilities), labels as the estimator's own predict gives them."""
        # the request checks already rejected non-finite values; skip sklearn's per-step re-checks
        with sklearn.config_context(assume_finite=True):
            if self.blocks is None:
                proba = self.estimator.predict_proba(frame[self.contract.feature_columns])
            else:
                proba = self.estimator[-1].predict_proba(
                    np.hstack([transformer.transform(frame[columns]) for transformer, columns in self.blocks]))
        return self.estimator.classes_[proba.argmax(axis=1)], np.ascontiguousarray(proba[:, self.positive])

    def use_direct_path(self, rows: pd.DataFrame) -> bool:
        """Call the column transformer's fitted parts directly (no ColumnTransformer dispatch, which
        costs more than the model on small batches) when the pipeline has the shape train_model builds,
        and only if that gives exactly the pipeline's own probabilities on `rows`."""
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        est = self.estimator
        if not (isinstance(est, Pipeline) and len(est.steps) == 2 and isinstance(est[0], ColumnTransformer)
                and est[0].remainder == "drop" and est[0].sparse_output_ is False):
            return False
        self.blocks = [(t, list(cols)) for _, t, cols in est[0].transformers_ if t != "drop"]
        reference = est.predict_proba(rows[self.contract.feature_columns])[:, self.positive]
        if not np.array_equal(self.predict(rows)[1], reference):
            self.blocks = None
        return self.blocks is not None


def load(model_path: str | None = None, model_uri: str | None = None, name: str | None = None,
         version: str | None = None, schema_uri: str | None = None) -> ServedModel:
    """Load from a folder (MODEL_PATH) or any MLflow model URI, then warm up on the model's input example."""
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.models import Model

    if model_path:
        folder = Path(model_path)
        info_file = folder / INFO_FILE
        info = (ModelInfo(**json.loads(info_file.read_text())) if info_file.exists()
                else ModelInfo(name=folder.name, version="unknown", source=str(folder),
                               model_sha256=recorded_sha256(str(folder))))
    else:
        reg_name, reg_version, source = resolve(model_uri)
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=source))
        info = ModelInfo(name=reg_name or folder.name, version=reg_version or "unknown", source=model_uri,
                         model_sha256=recorded_sha256(str(folder)))
    info = ModelInfo(name=name or info.name, version=version or info.version, source=info.source,
                     model_sha256=info.model_sha256)
    contract_file = folder / contract_mod.MODEL_FILE
    if contract_file.exists():
        spec = contract_mod.load(str(contract_file))
    elif schema_uri:
        spec = contract_mod.load(schema_uri)
    else:
        raise FileNotFoundError(f"{folder} holds no {contract_mod.MODEL_FILE}; give SCHEMA_URI")
    estimator = mlflow.sklearn.load_model(str(folder))
    example = Model.load(str(folder)).load_input_example(str(folder))
    served = ServedModel(info, estimator, spec, RequestReader(spec), example)
    served.use_direct_path(example)
    served.predict(example)  # warm-up: the first prediction pays for lazy initialisation
    log.info("model %s version %s loaded from %s (pid %d)", info.name, info.version, info.source, os.getpid())
    return served
