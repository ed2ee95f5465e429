"""Where a retraining run goes: the KFP API on a cluster, a local training run on the embedded default.

Each submitter has `submit(parameters) -> run id` and `status(run id) -> "running" | "succeeded" | ...`.
`run` is the trigger with the submitter its arguments name; `run_in_child` runs it in a child Python, as the
trigger step must (see there); `python -m components.trigger.submit REQUEST OUTCOME` is that child.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from components.kfp_api import SubmitError


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
    from components.kfp_api import KfpSubmitter
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
