"""Finding, downloading and loading the served model."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn

from components import contract as contract_mod
from components import decision as decision_mod
from components.contract import Contract
from components.modelfile import MODEL_FILE, ModelIntegrityError, file_sha256, load_model
from components.registry import registered_hashes
from components.scoring import positive_index
from serving import preprocess
from serving.requests import RequestReader

INFO_FILE = "model_info.json"  # the pull record, written by `mlops model pull` beside the MLflow model files
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
log = logging.getLogger("serving")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    source: str
    model_sha256: str | None = None  # the sha256 the model file was verified against
    decision_sha256: str | None = None  # that of decision.json as pulled; None: the folder had none


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


def read_info(folder: Path) -> ModelInfo | None:
    """The pull record of a folder, if it has one."""
    record = folder / INFO_FILE
    return ModelInfo(**json.loads(record.read_text())) if record.exists() else None


def pull(model_uri: str, output: str, expected_sha256: str | None = None) -> ModelInfo:
    """Put the model of `model_uri` into `output`, checked: what the init container does.

    A registry version's model file must hash to the version's `model_sha256` tag (and equal
    `expected_sha256` when given), its decision.json to the `decision_sha256` tag (a version without that
    tag must have none); any other URI is checked against `expected_sha256` if given. The model
    must load with skops and the project's trusted types. `output` is a symbolic link to a sibling folder
    holding the model and its pull record (both files' hashes, for later loads): a pull of the version already
    there (intact) changes nothing; another version is downloaded and checked beside it, then the link is
    swapped in one rename, so a reader sees the old model or the new one, never a mix or a gap.
    """
    import mlflow.artifacts
    from mlflow import MlflowClient

    name, version, source = resolve(model_uri)
    decision_sha256 = None
    if version is not None:
        registered, decision_sha256 = registered_hashes(MlflowClient(), name, version)
        if expected_sha256 and expected_sha256 != registered:
            raise ModelIntegrityError(f"{model_uri}: the registry's model_sha256 {registered} is not the "
                                      f"expected {expected_sha256}")
        expected_sha256 = registered
    out = Path(output)
    if out.is_symlink() or not out.exists():
        have = read_info(out) if out.exists() else None
        if (have is not None and version is not None and (have.name, have.version) == (name, version)
                and (out / MODEL_FILE).exists() and file_sha256(out / MODEL_FILE) == expected_sha256
                and decision_mod.sha256(out) == have.decision_sha256
                and decision_sha256 in (None, have.decision_sha256)):
            return have  # that version, intact: nothing to do
    elif out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # an empty folder becomes the link
    else:
        raise FileExistsError(f"{out}: not empty and not a model folder made by `mlops model pull`; "
                              "give a new path or an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target))
        try:  # refuse what would not load before it replaces anything
            load_model(target, expected_sha256)
            decision_mod.read(target, decision_sha256, registered=version is not None)
        except (ModelIntegrityError, decision_mod.DecisionError) as exc:
            raise ModelIntegrityError(f"{model_uri}: {exc}") from exc
        info = ModelInfo(name=name or out.name, version=version or "unknown", source=model_uri,
                         model_sha256=expected_sha256 or file_sha256(target / MODEL_FILE),
                         decision_sha256=decision_mod.sha256(target))
        (target / INFO_FILE).write_text(json.dumps(info.__dict__, indent=2))
        target.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
        old = out.resolve() if out.is_symlink() else None
        link = out.parent / f".{out.name}.link-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(target.name)
        link.replace(out)  # atomic: the old model or the new one
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    if old is not None and old.parent == out.parent.resolve() and old.name.startswith(f".{out.name}-"):
        shutil.rmtree(old, ignore_errors=True)
    return info


@dataclass
class ServedModel:
    info: ModelInfo
    estimator: object
    contract: Contract
    reader: RequestReader
    example: pd.DataFrame

    threshold: float = decision_mod.DEFAULT_THRESHOLD  # of the model's decision.json
    preprocessor: preprocess.Preprocessor | None = None  # the pipeline's preprocessing in numpy

    @cached_property
    def positive(self) -> int:
        """The probability column of the contract's positive class."""
        return positive_index(self.estimator.classes_, self.contract)

    @cached_property
    def outcomes(self) -> np.ndarray:
        """The model's classes as [negative, positive], to index with each row's decision."""
        return self.estimator.classes_[[1 - self.positive, self.positive]]

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Each row decided positive: its positive-class probability is at least the threshold."""
        return proba >= self.threshold

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(labels decided at the threshold, as the estimator's classes hold them; positive-class probabilities)."""
        # the request checks already rejected non-finite values; skip sklearn's per-step re-checks
        with sklearn.config_context(assume_finite=True):
            if self.preprocessor is None:
                proba = self.estimator.predict_proba(frame[self.contract.feature_columns])
            else:
                proba = self.estimator[-1].predict_proba(self.preprocessor.transform(frame))
        positive = np.ascontiguousarray(proba[:, self.positive])
        return self.outcomes[self.decide(positive).astype(np.intp)], positive

    def use_numpy_preprocessing(self, rows: pd.DataFrame) -> bool:
        """Preprocess in numpy (serving.preprocess) rather than through scikit-learn, whose input checks
        cost more than the model on small batches, when the pipeline has the shape train_model builds,
        and only if that gives exactly the pipeline's own probabilities on `rows`."""
        from sklearn.pipeline import Pipeline

        est = self.estimator
        if not (isinstance(est, Pipeline) and len(est.steps) == 2):
            return False
        self.preprocessor = preprocess.compile(est[0])
        if self.preprocessor is not None:
            reference = est.predict_proba(rows[self.contract.feature_columns])[:, self.positive]
            if not np.array_equal(self.predict(rows)[1], reference):
                self.preprocessor = None
        return self.preprocessor is not None


def load(model_path: str, name: str | None = None, version: str | None = None, schema_uri: str | None = None,
         expected_sha256: str | None = None) -> ServedModel:
    """Load the model folder `model_path` (its link resolved once), then warm up on its input example.

    Its threshold is decision.json's (DEFAULT_THRESHOLD without one; a malformed one is an error naming it).
    The model file must hash to `expected_sha256` (MODEL_SHA256, set by the deployment or by the server
    for a version it pinned); without it, to the hash its pull record was verified against; a folder
    with neither is loaded unchecked, with a warning. Either way only skops and the trusted types load.
    decision.json must hash to its pull record's `decision_sha256` (a record without one: no decision.json); a
    folder without a pull record reads it unchecked, with a warning.
    """
    from mlflow.models import Model

    if not model_path:
        raise ValueError("no MODEL_PATH: a worker loads the folder the server pinned")
    folder = Path(model_path).resolve()  # read every file from one folder, even if the link moves
    record = read_info(folder)
    info = record or ModelInfo(name=Path(model_path).name, version="unknown", source=str(model_path))
    if expected_sha256:
        checked = "MODEL_SHA256"
    elif record is not None and record.model_sha256:
        expected_sha256, checked = record.model_sha256, f"its pull record {folder / INFO_FILE} only"
    else:
        checked = "nothing: no MODEL_SHA256 and no pull record"
        log.warning("%s: the model file's hash is not checked (set MODEL_SHA256)", folder / MODEL_FILE)
    estimator = load_model(folder, expected_sha256)
    info = ModelInfo(name=name or info.name, version=version or info.version, source=info.source,
                     model_sha256=expected_sha256, decision_sha256=info.decision_sha256)
    contract_file = folder / contract_mod.MODEL_FILE
    if contract_file.exists():
        spec = contract_mod.load(str(contract_file))
    elif schema_uri:
        spec = contract_mod.load(schema_uri)
    else:
        raise FileNotFoundError(f"{folder} holds no {contract_mod.MODEL_FILE}; give SCHEMA_URI")
    decided = decision_mod.read(folder, info.decision_sha256, registered=record is not None)
    if decided is not None and record is None:
        log.warning("%s: its hash is not checked (no pull record names it)", folder / decision_mod.FILE)
    threshold = decision_mod.threshold_of(decided)
    example = Model.load(str(folder)).load_input_example(str(folder))
    served = ServedModel(info, estimator, spec, RequestReader(spec), example, threshold)
    served.use_numpy_preprocessing(example)
    served.predict(example)  # warm-up: the first prediction pays for lazy initialisation
    log.info("model %s version %s loaded from %s (pid %d), threshold %g; sha256 checked against %s", info.name,
             info.version, folder, os.getpid(), threshold, checked)
    return served
