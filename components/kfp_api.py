"""The KFP API: a client (with the project's credentials rules), lookups of uploaded pipelines and versions,
the submitter of training runs, and a person's reading of a failed call. Imported by the trigger step (in its
child Python only: a step's runtime kfp.dsl cannot import kfp.client), `mlops upload`, `schedule` and `submit`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

PIPELINE = "training"  # the uploaded training pipeline (pipelines/training.py NAME)


def run_name(pipeline: str, source: str, parameters: dict) -> str:
    """The name of a run of `pipeline` from `source` (a pipeline version id, or a source commit) with
    `parameters`: a sha256 of both, so that a retry of the same submission finds the run it made."""
    key = hashlib.sha256(json.dumps([source, parameters], sort_keys=True).encode()).hexdigest()[:16]
    return f"{pipeline}-{parameters.get('trigger_reason', 'run')}-{key}"


class SubmitError(RuntimeError):
    """The training pipeline cannot be submitted (not uploaded, no version)."""


def kfp_client(host: str, namespace: str, token: str | None = None):
    """A kfp.Client on `host` for `namespace`, authenticated with `token` when one is given (kfp.Client's
    `existing_token`, a bearer token).

    Otherwise, in a multi-user Kubeflow, calls authenticate with a projected service-account token of audience
    `pipelines.kubeflow.org`, read from KF_PIPELINES_SA_TOKEN_PATH (default
    /var/run/secrets/kubeflow/pipelines/token) whenever that file exists; kfp.Client reads it by itself only
    when no host is given, so it is passed explicitly here."""
    import kfp.client

    class Client(kfp.client.Client):
        def get_kfp_healthz(self, sleep_duration: int = 5):
            """Once: kfp.Client asks five times, 5 s apart, and then hides a 401 as a timeout."""
            return self._healthz_api.healthz_service_get_healthz()

    if token:
        return Client(host=host, namespace=namespace, existing_token=token)
    path = os.environ.get(kfp.client.KF_PIPELINES_SA_TOKEN_ENV) or kfp.client.KF_PIPELINES_SA_TOKEN_PATH
    credentials = kfp.client.ServiceAccountTokenVolumeCredentials(path) if Path(path).is_file() else None
    return Client(host=host, namespace=namespace, credentials=credentials)


def by_name(name: str) -> str:
    """A KFP list filter: display_name equals `name`."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def find_pipeline(client, name: str, namespace: str = "") -> str | None:
    """Id of the uploaded pipeline named `name`: the namespace's own (multi-user), else the shared one."""
    for ns in dict.fromkeys([namespace or None, None]):
        found = client.list_pipelines(filter=by_name(name), namespace=ns, page_size=2).pipelines or []
        found = [p for p in found if p.display_name == name]
        if len(found) > 1:
            raise SubmitError(f"{len(found)} pipelines are named {name!r}{f' in namespace {ns!r}' if ns else ''}")
        if found:
            return found[0].pipeline_id
    return None


def find_version(client, pipeline_id: str, version: str):
    """The version of the pipeline named `version`, or None."""
    found = client.list_pipeline_versions(pipeline_id, filter=by_name(version), page_size=2).pipeline_versions
    return next((v for v in found or [] if v.display_name == version), None)


def pipeline_version(client, pipeline: str, host: str, namespace: str = "", version: str | None = None):
    """(pipeline id, version id) of the uploaded pipeline named `pipeline`: its version named `version`, or its
    newest one."""
    pipeline_id = find_pipeline(client, pipeline, namespace)
    if pipeline_id is None:
        raise SubmitError(f"no pipeline named {pipeline!r} is uploaded to {host}")
    if version is not None:
        found = find_version(client, pipeline_id, version)
        if found is None:
            raise SubmitError(f"pipeline {pipeline!r} on {host} has no version named {version!r}")
        return pipeline_id, found.pipeline_version_id
    versions = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc").pipeline_versions
    if not versions:
        raise SubmitError(f"pipeline {pipeline!r} ({pipeline_id}) on {host} has no version")
    return pipeline_id, versions[0].pipeline_version_id


class KfpSubmitter:
    """Runs the uploaded training pipeline (its version named `version`, else its newest) in `experiment`
    through the KFP API."""

    def __init__(self, host: str, namespace: str, experiment: str, service_account: str = "",
                 pipeline: str = PIPELINE, version: str | None = None, token: str | None = None):
        self.client = kfp_client(host, namespace, token)
        self.host, self.namespace, self.experiment = host, namespace, experiment
        self.service_account, self.pipeline, self.version = service_account, pipeline, version

    def submit(self, parameters: dict) -> str:
        """The run's name is a hash of the pipeline version and the parameters, so a retry of the same
        submission (the same drift check, the same CI job) finds the run it made instead of making a second."""
        pipeline_id, version_id = pipeline_version(self.client, self.pipeline, self.host, self.namespace,
                                                   self.version)
        experiment = self.client.create_experiment(self.experiment, namespace=self.namespace)  # found or created
        name = run_name(self.pipeline, version_id, parameters)
        found = self.client.list_runs(experiment_id=experiment.experiment_id, filter=by_name(name),
                                      page_size=1).runs
        if found:
            return found[0].run_id
        run = self.client.run_pipeline(experiment.experiment_id, name, pipeline_id=pipeline_id,
                                       version_id=version_id, params=parameters,
                                       service_account=self.service_account or None)
        return run.run_id

    def status(self, run_id: str) -> str:
        return str(self.client.get_run(run_id).state or "unknown").lower()


def kfp_error(exc: Exception, host: str, namespace: str = "") -> str:
    """What went wrong talking to the KFP API at `host`, for a person."""
    status = getattr(exc, "status", None)
    if status == 401:
        return (f"KFP at {host} refused the request: HTTP 401 Unauthorized (no valid credentials): give --token, "
                "or a service-account token file at KF_PIPELINES_SA_TOKEN_PATH")
    if status == 403:
        where = f" in namespace {namespace!r}" if namespace else " (shared pipelines; a profile's --namespace?)"
        return f"KFP at {host} refused the request: HTTP 403 Forbidden (the credentials lack permission{where})"
    if status is not None:
        return f"KFP at {host}: HTTP {status} {exc.reason}: {(exc.body or '').strip()[:300]}"
    reason = getattr(exc, "reason", None) or exc
    return f"KFP at {host} is unreachable: {reason}"
