"""The drift check as a KFP recurring run: create or update (never duplicate), list, delete."""
from __future__ import annotations

import re
from pathlib import Path

from components.kfp_api import SubmitError, by_name, find_pipeline, pipeline_version
from components.source import head
from mlops import upload

NAME = "drift-check"  # the uploaded pipeline and its recurring run
REQUIRED = ("log_uri", "training_data_uri")  # parameters a scheduled check cannot do without
CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,#-]+")


class ScheduleError(ValueError):
    """A malformed cron expression, or a schedule that does not exist."""


def kfp_cron(expression: str) -> str:
    """KFP's six-field cron (leading seconds): five fields get "0" seconds (`0 * * * *` -> `0 0 * * * *`,
    hourly; as is it would fire every minute); six fields are taken as they are."""
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise ScheduleError(f"cron {expression!r}: expected 5 fields (minute hour day-of-month month day-of-week) "
                            f"or 6 (with leading seconds), got {len(fields)}")
    bad = [f for f in fields if not CRON_FIELD.fullmatch(f)]
    if bad:
        raise ScheduleError(f"cron {expression!r}: {bad[0]!r} is not a cron field")
    return " ".join(fields)


def find(client, name: str, namespace: str) -> list:
    """The recurring runs named `name` in `namespace`."""
    found = client.list_recurring_runs(namespace=namespace, filter=by_name(name), page_size=100).recurring_runs or []
    return [r for r in found if r.display_name == name]


def upload_pipeline(client, host: str, package: str | None, namespace: str, image: str | None = None) -> str:
    """Create the `drift-check` pipeline from the file `package`, else compiled now from the source tree on
    `image` and uploaded as `mlops upload` does (the version named by the source tree's commit, `-dirty` when it
    has uncommitted changes). Says what was uploaded."""
    if package is None:
        version = upload.version_for(head(upload.SOURCE_REPO), allow_dirty=True)
        upload.upload(client, version, image=image, namespace=namespace, names=(NAME,))
        return f"version '{version.name}' compiled now"
    if not Path(package).is_file():
        raise SubmitError(f"no pipeline named {NAME!r} is uploaded to {host}, and the package to upload, "
                          f"{package}, does not exist")
    upload.create_pipeline(client, package, NAME, namespace)
    return str(package)


def create_or_update(client, host: str, cron: str, *, package: str | None, namespace: str,
                     experiment: str = NAME, name: str = NAME, params: dict | None = None,
                     service_account: str = "", version: str | None = None, image: str | None = None):
    """Schedule the uploaded `drift-check` pipeline's version named `version`, else its newest (uploading it
    first when the pipeline is missing: `upload_pipeline`): create the new recurring run, then delete the ones it
    replaces (KFP has no update).
    Returns (the recurring run, what was uploaded or None, ids of the replaced runs)."""
    stored = kfp_cron(cron)
    uploaded = None
    if find_pipeline(client, NAME, namespace) is None:
        uploaded = upload_pipeline(client, host, package, namespace, image)
    pipeline_id, version_id = pipeline_version(client, NAME, host, namespace, version)
    experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
    old = find(client, name, namespace)
    new = client.create_recurring_run(experiment_id, name, cron_expression=stored, max_concurrency=1,
                                      no_catchup=True, params=params or {}, pipeline_id=pipeline_id,
                                      version_id=version_id, service_account=service_account or None)
    for run in old:
        client.delete_recurring_run(run.recurring_run_id)
    return new, uploaded, [r.recurring_run_id for r in old]


def delete(client, name: str, namespace: str) -> list[str]:
    """Delete the recurring runs named `name`; their ids. None there is an error."""
    found = find(client, name, namespace)
    if not found:
        raise ScheduleError(f"no recurring run named {name!r} in namespace {namespace!r}")
    for run in found:
        client.delete_recurring_run(run.recurring_run_id)
    return [r.recurring_run_id for r in found]


def describe(run) -> str:
    cron = run.trigger.cron_schedule.cron if run.trigger and run.trigger.cron_schedule else "-"
    return (f"{run.display_name}  id {run.recurring_run_id}  cron '{cron}'  max_concurrency {run.max_concurrency}"
            f"  catch-up {'off' if run.no_catchup else 'on'}  {run.status or run.mode or ''}".rstrip())
