"""Where a retraining run goes: the KFP API on a cluster, a local training run on the embedded default.

Each submitter has `submit(parameters) -> run id` and `status(run id) -> "running" | "succeeded" | ...`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

PIPELINE = "training"  # the uploaded training pipeline (pipelines/training.py NAME)


class SubmitError(RuntimeError):
    """The training pipeline cannot be submitted (not uploaded, no version)."""


def kfp_client(host: str, namespace: str):
    """A kfp.Client on `host` for `namespace`.

    In a multi-user Kubeflow, calls authenticate with a projected service-account token of audience
    `pipelines.kubeflow.org`, read from KF_PIPELINES_SA_TOKEN_PATH (default
    /var/run/secrets/kubeflow/pipelines/token) whenever that file exists; kfp.Client reads it by itself only
    when no host is given, so it is passed explicitly here."""
    import kfp.client

    token = os.environ.get(kfp.client.KF_PIPELINES_SA_TOKEN_ENV) or kfp.client.KF_PIPELINES_SA_TOKEN_PATH
    credentials = kfp.client.ServiceAccountTokenVolumeCredentials(token) if Path(token).is_file() else None
    return kfp.client.Client(host=host, namespace=namespace, credentials=credentials)


def latest_version(client, pipeline: str, host: str) -> tuple[str, str]:
    """(pipeline id, id of its newest version) of the uploaded pipeline named `pipeline`."""
    pipeline_id = client.get_pipeline_id(pipeline)
    if pipeline_id is None:
        raise SubmitError(f"no pipeline named {pipeline!r} is uploaded to {host}")
    versions = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc").pipeline_versions
    if not versions:
        raise SubmitError(f"pipeline {pipeline!r} ({pipeline_id}) on {host} has no version")
    return pipeline_id, versions[0].pipeline_version_id


class KfpSubmitter:
    """Runs the latest version of the uploaded training pipeline in `experiment` through the KFP API."""

    def __init__(self, host: str, namespace: str, experiment: str, service_account: str = "",
                 pipeline: str = PIPELINE):
        self.client = kfp_client(host, namespace)
        self.host, self.namespace, self.experiment = host, namespace, experiment
        self.service_account, self.pipeline = service_account, pipeline

    def submit(self, parameters: dict) -> str:
        """The run's name is a hash of its parameters, so a retry of the same submission (the same drift
        check) finds the run it made instead of making a second one."""
        pipeline_id, version_id = latest_version(self.client, self.pipeline, self.host)
        experiment = self.client.create_experiment(self.experiment, namespace=self.namespace)  # found or created
        key = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]
        name = f"{self.pipeline}-{parameters.get('trigger_reason', 'run')}-{key}"
        flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
        found = self.client.list_runs(experiment_id=experiment.experiment_id, filter=flt, page_size=1).runs
        if found:
            return found[0].run_id
        run = self.client.run_pipeline(experiment.experiment_id, name, pipeline_id=pipeline_id,
                                       version_id=version_id, params=parameters,
                                       service_account=self.service_account or None)
        return run.run_id

    def status(self, run_id: str) -> str:
        return str(self.client.get_run(run_id).state or "unknown").lower()


class LocalSubmitter:
    """A local training run (kfp.local), synchronous: submit returns once it has finished."""

    def __init__(self, settings, home: Path):
        self.settings, self.home = settings, Path(home)

    def submit(self, parameters: dict) -> str:
        from mlops import local

        arguments = dict(parameters)
        run = local.run_training(arguments.pop("data_uri"), self.settings, self.home, parameters=arguments)
        return run.run_dir.name

    def status(self, run_id: str) -> str:
        from mlops import local

        run_dir = local.pipeline_root(self.home) / run_id
        if (run_dir / "register-model" / "registration").is_file():
            return "succeeded"
        return "failed" if run_dir.is_dir() else "unknown"


def local_submitter(tracking_uri: str, model_name: str) -> LocalSubmitter:
    """The embedded default's submitter: the configs of record from the source tree, this registry and model,
    and local state beside the SQLite registry (`.mlops/` of `./dev run`), else in the source tree's `.mlops/`."""
    from dataclasses import replace

    import pipelines
    from pipelines import defaults

    root = Path(pipelines.__file__).resolve().parents[1]
    settings = replace(defaults.load(root=root), tracking_uri=tracking_uri, model_name=model_name)
    home = Path(tracking_uri.removeprefix("sqlite:///")).parent if tracking_uri.startswith("sqlite:///") \
        else root / ".mlops"
    return LocalSubmitter(settings, home)
