"""Where a retraining run goes: the KFP API on a cluster, a local training run on the embedded default.

Each submitter has `submit(parameters) -> run id` and `status(run id) -> "running" | "succeeded" | ...`.
`run` is the trigger with the submitter its arguments name; `run_in_child` runs it in a child Python, as the
trigger step must (see there); `python -m components.trigger.submit REQUEST OUTCOME` is that child.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PIPELINE = "training"  # the uploaded training pipeline (pipelines/training.py NAME)


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
        key = hashlib.sha256(json.dumps([version_id, parameters], sort_keys=True).encode()).hexdigest()[:16]
        name = f"{self.pipeline}-{parameters.get('trigger_reason', 'run')}-{key}"
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


class LocalSubmitter:
    """A local training run (kfp.local), synchronous: submit returns once it has finished; `runs` holds the
    TrainingRun of each."""

    def __init__(self, settings, home: Path):
        self.settings, self.home, self.runs = settings, Path(home), []

    def submit(self, parameters: dict) -> str:
        """Parameters that are training settings (quality_gates, training_config, ...) replace the settings'."""
        from dataclasses import fields, replace

        from mlops import local

        arguments = dict(parameters)
        data_uri = arguments.pop("data_uri")
        names = {f.name for f in fields(self.settings)}
        settings = replace(self.settings, **{k: arguments.pop(k) for k in list(arguments) if k in names})
        run = local.run_training(data_uri, settings, self.home, parameters=arguments)
        self.runs.append(run)
        return run.run_dir.name

    def status(self, run_id: str) -> str:
        from mlops import local

        run_dir = local.pipeline_root(self.home) / run_id
        if (run_dir / "register-model" / "registration").is_file():
            return "succeeded"
        return "failed" if run_dir.is_dir() else "unknown"


def local_submitter(tracking_uri: str, model_name: str, home: Path | None = None) -> LocalSubmitter:
    """The embedded default's submitter: the configs of record from the source tree, this registry and model,
    deployment target local (as `mlops run training`). Local state in `home`, by default beside a SQLite
    registry (`.mlops/` of `./dev mlops run`), else in the folder the step runs in (the home of the
    `mlops.local` runners, which run their steps there)."""
    from pipelines import defaults

    settings = defaults.for_local_runs(defaults.load(root=defaults.SOURCE), tracking_uri=tracking_uri,
                                       model_name=model_name)
    if home is None:
        home = Path(tracking_uri.removeprefix("sqlite:///")).parent if tracking_uri.startswith("sqlite:///") \
            else Path.cwd()
    return LocalSubmitter(settings, home)


def run(result: dict, *, tracking_uri: str, model_name: str, training_data_uri: str, kfp_host: str = "",
        kfp_namespace: str = "", experiment_name: str = "", service_account: str = "", home: str | None = None,
        **trigger_arguments) -> dict:
    """components.trigger.logic.trigger with the KFP API on `kfp_host` as submitter, or ("") a local training
    run with its state in `home` (default: see local_submitter)."""
    from components.trigger import logic

    submitter = (KfpSubmitter(kfp_host, kfp_namespace, experiment_name, service_account) if kfp_host
                 else local_submitter(tracking_uri, model_name, Path(home) if home else None))
    return logic.trigger(result, tracking_uri=tracking_uri, model_name=model_name,
                         training_data_uri=training_data_uri, submit=submitter.submit, status=submitter.status,
                         **trigger_arguments)


def run_in_child(**arguments) -> dict:
    """`run(**arguments)` (JSON values) in a child Python without `_KFP_RUNTIME`: a KFP step's executor
    imports kfp.dsl in its runtime-only form, with which neither kfp.client nor the pipeline definitions (that
    a local training run builds) can be imported. The child's log is passed on to stderr; its error is raised as SubmitError."""
    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    with tempfile.TemporaryDirectory() as tmp:
        request, outcome = Path(tmp, "request.json"), Path(tmp, "outcome.json")
        request.write_text(json.dumps(arguments))
        child = subprocess.run([sys.executable, "-m", __name__, str(request), str(outcome)], env=env,
                               stderr=subprocess.PIPE, text=True)
        sys.stderr.write(child.stderr)
        if child.returncode != 0:
            lines = [line for line in child.stderr.splitlines() if line.strip()]
            raise SubmitError(lines[-1] if lines else f"the trigger exited with {child.returncode}")
        return json.loads(outcome.read_text())


if __name__ == "__main__":
    request_path, outcome_path = sys.argv[1:]
    Path(outcome_path).write_text(json.dumps(run(**json.loads(Path(request_path).read_text()))))
