"""Register a gated model in MLflow with its lineage and move the `staged` alias to it.

Idempotent: a model hash already in the registry is never registered again, and a retried
registration reuses the run an earlier attempt created.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from components.registry import IMPORTANCES_ARTIFACT, ensure_experiment, recorded_sha256

ALIAS = "staged"
PARAM_LIMIT = 100  # MLflow log_batch accepts at most 100 params per call


@dataclass
class Registration:
    name: str
    version: str
    alias: str
    created: bool
    run_id: str

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def model_hash(model_dir: str) -> str:
    """The hash training recorded in the model's MLmodel metadata."""
    digest = recorded_sha256(model_dir)
    if digest is None:
        raise ValueError(f"{model_dir}/MLmodel has no metadata.model_sha256: was it written by train_model?")
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


def _versions_with(client: MlflowClient, name: str, digest: str) -> list:
    """The versions of `name` holding this model hash, oldest first."""
    found = client.search_model_versions(f"name = '{name}' and tags.model_sha256 = '{digest}'")
    return sorted(found, key=lambda mv: int(mv.version))


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name, description="Registered by the tabular-mlops training pipeline.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _run_for(client: MlflowClient, experiment_id: str, digest: str, lineage: dict, metrics: dict,
             config: dict, artifacts: dict[str, dict], model_dir: str) -> str:
    """The run holding this model's artifacts: found by model hash, or created once."""
    found = client.search_runs([experiment_id], f"tags.model_sha256 = '{digest}'", max_results=1)
    if found and found[0].info.status == "FINISHED":
        return found[0].info.run_id
    run_id = found[0].info.run_id if found else client.create_run(
        experiment_id, tags={**lineage, "mlflow.runName": f"register-{digest[:12]}"}).info.run_id
    params = [Param(k, v[:6000]) for k, v in sorted(_flatten(config).items())]
    for i in range(0, len(params), PARAM_LIMIT):
        client.log_batch(run_id, params=params[i:i + PARAM_LIMIT])
    client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items() if v is not None])
    client.log_artifacts(run_id, model_dir, "model")
    for name, content in artifacts.items():
        client.log_dict(run_id, content, name)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def register(tracking_uri: str, name: str, model_dir: str, lineage: dict[str, str], metrics: dict,
             config: dict, importances: dict, gate_report: dict, evaluation: dict) -> Registration:
    """Register `model_dir` under `name` (or find it registered) and point `staged` at it."""
    client = MlflowClient(tracking_uri)
    digest = model_hash(model_dir)
    lineage = {**lineage, "model_sha256": digest}
    existing = _versions_with(client, name, digest)
    if existing:
        mv = existing[0]
        if mv.tags.get("stage"):  # fully registered before: nothing to do
            aliases = client.get_model_version(name, mv.version).aliases  # search results leave them out
            return Registration(name, str(mv.version), ",".join(sorted(aliases)) or "none", False, mv.run_id or "")
        run_id = mv.run_id
    else:
        experiment_id = ensure_experiment(client, name)
        run_id = _run_for(client, experiment_id, digest, lineage, metrics, config,
                          {IMPORTANCES_ARTIFACT: importances, "gate_report.json": gate_report,
                           "evaluation.json": evaluation}, model_dir)
        _ensure_registered_model(client, name)
        source = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/model"
        tags = {**lineage,
                **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items() if v is not None},
                "gate_report": json.dumps({r["metric"]: r["verdict"] for r in gate_report["gates"]}),
                "gate_passed": str(gate_report["passed"]).lower()}
        client.create_model_version(name, source, run_id=run_id, tags=tags, description=f"model sha256 {digest}")
        # the client retries requests whose answer was lost, which can create the version twice:
        # keep the first, drop the copies (nothing points at them yet)
        mv, *copies = _versions_with(client, name, digest)
        for copy in copies:
            client.delete_model_version(name, copy.version)
    client.set_registered_model_alias(name, ALIAS, mv.version)
    client.set_model_version_tag(name, mv.version, "stage", ALIAS)
    return Registration(name, str(mv.version), ALIAS, True, run_id)
