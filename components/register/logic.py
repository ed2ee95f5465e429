"""Register a gated model in MLflow with its lineage; its lifecycle starts at `staged` (components.lifecycle).

Idempotent and safe under concurrency: a model whose content is already registered is never registered
again; when two runs register the same content at once, both end on the oldest version, and each deletes
only the copies it made itself, which nobody else points at.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus
from mlflow.exceptions import MlflowException

from components import decision, lifecycle, registry
from components.modelfile import MODEL_FILE, file_sha256
from components.profile import PROFILE_FILE, PROFILE_TAG, profile_sha256
from components.registry import IMPORTANCES_ARTIFACT, ensure_experiment

ALIAS = "staged"
PARAM_LIMIT = 100  # MLflow log_batch accepts at most 100 params per call
READY = ModelVersionStatus.to_string(ModelVersionStatus.READY)
FAILED = ModelVersionStatus.to_string(ModelVersionStatus.FAILED_REGISTRATION)


@dataclass
class Registration:
    name: str
    version: str
    alias: str
    created: bool
    run_id: str

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def content_hash(model_dir: str) -> str:
    """The content hash train_model recorded in the model's MLmodel metadata (for finding duplicates)."""
    mlmodel = Path(model_dir) / "MLmodel"
    digest = (yaml.safe_load(mlmodel.read_text()).get("metadata") or {}).get("content_sha256")
    if not digest:
        raise ValueError(f"{mlmodel} has no metadata.content_sha256: was it written by train_model?")
    return digest


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return out


def _versions_with(client: MlflowClient, name: str, content: str) -> list:
    """The live versions of `name` holding this content, oldest first.

    The filter holds only the hex digest and names are compared here, so any model name works: MLflow's
    filter syntax has no escape for a name holding both kinds of quote."""
    found = client.search_model_versions(f"tags.content_sha256 = '{content}'")
    return sorted((mv for mv in found if mv.name == name and mv.status != FAILED), key=lambda mv: int(mv.version))


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name, description="Registered by the tabular-mlops training pipeline.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _run_for(client: MlflowClient, experiment_id: str, digest: str, lineage: dict, metrics: dict,
             config: dict, artifacts: dict[str, dict], model_dir: str, files: dict[str, str]) -> tuple[str, bool]:
    """(run holding these model bytes, created now): found by the bytes' hash, so a retry of this
    registration reuses its run while another run's model (other bytes) never lands in it."""
    found = client.search_runs([experiment_id], f"tags.model_sha256 = '{digest}'", max_results=1)
    if found and found[0].info.status == "FINISHED":
        return found[0].info.run_id, False
    run_id = found[0].info.run_id if found else client.create_run(
        experiment_id, tags={**lineage, "mlflow.runName": f"register-{digest[:12]}"}).info.run_id
    params = [Param(k, v[:6000]) for k, v in sorted(_flatten(config).items())]
    for i in range(0, len(params), PARAM_LIMIT):
        client.log_batch(run_id, params=params[i:i + PARAM_LIMIT])
    client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items() if v is not None])
    client.log_artifacts(run_id, model_dir, "model")
    for name, content in artifacts.items():
        client.log_dict(run_id, content, name)
    for name, path in files.items():  # logged byte for byte: their hash tags stay true
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copyfile(path, Path(tmp, name))
            client.log_artifact(run_id, str(Path(tmp, name)))
    client.set_terminated(run_id, "FINISHED")
    return run_id, not found


def wait_until_ready(client: MlflowClient, name: str, version: str, timeout: float = 300.0):
    """The model version once its status is READY; an error if registration failed or took too long."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        mv = client.get_model_version(name, version)
        if mv.status == READY:
            return mv
        if mv.status == FAILED:
            raise RuntimeError(f"model {name!r} version {version}: registration failed: {mv.status_message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"model {name!r} version {version} still {mv.status} after {timeout:.0f} s; "
                               "no alias was set")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _winner(client: MlflowClient, name: str, content: str, timeout: float):
    """The oldest live version holding `content`, once READY: the one every concurrent run aliases."""
    while True:
        candidates = _versions_with(client, name, content)
        if not candidates:
            raise RuntimeError(f"model {name!r}: no version holds content {content} any more")
        try:
            return wait_until_ready(client, name, str(candidates[0].version), timeout)
        except RuntimeError as exc:
            if "registration failed" not in str(exc):
                raise  # a failed version drops out of the candidates: look again


def register(tracking_uri: str, name: str, model_dir: str, lineage: dict[str, str], metrics: dict,
             config: dict, importances: dict, gate_report: dict, evaluation: dict, reference_profile: str,
             ready_timeout: float = 300.0, registry_uri: str = "") -> Registration:
    """Register `model_dir` under `name` (or find it registered) and point `staged` at it once READY; the
    reference profile file lands beside the model as reference_profile.json, its hash in a version tag."""
    client = registry.client(tracking_uri, registry_uri)
    content = content_hash(model_dir)
    digest = file_sha256(Path(model_dir) / MODEL_FILE)  # the bytes every load is checked against
    existing = _versions_with(client, name, content)
    if existing and lifecycle.state(existing[0]):  # fully registered before: nothing to do
        mv = existing[0]
        aliases = client.get_model_version(name, mv.version).aliases  # search results leave them out
        return Registration(name, str(mv.version), ",".join(sorted(aliases)) or "none", False, mv.run_id or "")
    created = True
    if existing:  # an earlier attempt created the version, then stopped before the alias
        run_id = existing[0].run_id or ""
    else:
        chosen, decision_digest = decision.read(model_dir), decision.sha256(model_dir)
        lineage = {**lineage, "model_sha256": digest, "content_sha256": content,
                   PROFILE_TAG: profile_sha256(Path(reference_profile).read_bytes()),
                   **({decision.TAG: decision_digest} if decision_digest else {}),
                   "decision_threshold": f"{decision.threshold_of(chosen):.6g}",
                   "decision_objective": chosen["objective"] if chosen else "none (threshold 0.5)"}
        attempt = uuid.uuid4().hex
        experiment_id = ensure_experiment(client, name)
        run_id, new_run = _run_for(client, experiment_id, digest, lineage, metrics, config,
                                   {IMPORTANCES_ARTIFACT: importances, "gate_report.json": gate_report,
                                    "evaluation.json": evaluation}, model_dir, {PROFILE_FILE: reference_profile})
        _ensure_registered_model(client, name)
        source = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/model"
        tags = {**lineage, "registration_attempt": attempt,
                **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items() if v is not None},
                "gate_report": json.dumps({r["metric"]: r["verdict"] for r in gate_report["gates"]}),
                "gate_passed": str(gate_report["passed"]).lower()}
        client.create_model_version(name, source, run_id=run_id, tags=tags, description=f"model sha256 {digest}",
                                    await_creation_for=0)
        winner = _winner(client, name, content, ready_timeout)
        # Another run registered the same content first, or the client retried a request whose answer was
        # lost: drop this attempt's copies. Every run aliases the oldest version, so nobody points at them.
        mine = [mv for mv in _versions_with(client, name, content)
                if mv.tags.get("registration_attempt") == attempt and str(mv.version) != str(winner.version)]
        for copy in mine:
            client.delete_model_version(name, copy.version)
        created = winner.tags.get("registration_attempt") == attempt
        if winner.run_id != run_id:
            if new_run:
                client.delete_run(run_id)  # its model is not the registered one
            run_id = winner.run_id or ""
    mv = _winner(client, name, content, ready_timeout)
    lifecycle.move(client, name, mv.version, ALIAS, "passed the quality gates", lineage.get("pipeline_run_id", ""))
    return Registration(name, str(mv.version), ALIAS, created, run_id)
