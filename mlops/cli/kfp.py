"""`mlops upload`, `mlops submit`, `mlops schedule`: the pipelines on a Kubeflow Pipelines cluster, through its API."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.defaults import ConfigError

PACKAGE = "compiled/drift-check.yaml"  # `mlops schedule drift-check --package`'s default, compiled now when absent


def _param(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _connection_args() -> argparse.ArgumentParser:
    """The arguments every command that calls the KFP API takes: where it is, which namespace, which token."""
    kfp_args = argparse.ArgumentParser(add_help=False)
    kfp_args.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://ml-pipeline-ui.kubeflow")
    kfp_args.add_argument("--namespace", default="", help="Kubeflow profile namespace (multi-user; default: none)")
    kfp_args.add_argument("--token", help="bearer token for the KFP API (default: the service-account token at "
                                          "KF_PIPELINES_SA_TOKEN_PATH, when that file exists)")
    return kfp_args


def kfp_failure(exc: Exception, args) -> int:
    """Print why a call to the KFP API failed (unreachable, unauthorized, not uploaded); exit status 1."""
    from components.kfp_api import SubmitError, kfp_error

    message = exc if isinstance(exc, SubmitError) else kfp_error(exc, args.host, args.namespace)
    print(f"mlops: error: {message}", file=sys.stderr)
    return 1


def cmd_schedule(args) -> int:
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from components.kfp_api import SubmitError, kfp_client
    from mlops import schedule

    if args.action == "drift-check":  # checked before connecting
        schedule.kfp_cron(args.cron)
        missing = [p for p in schedule.REQUIRED if not dict(args.param).get(p)]
        if missing:
            raise ConfigError("the drift check needs " + " and ".join(f"--param {p}=URI" for p in missing)
                              + " (the inference log it reads; the labelled data a retraining trains on)")
    try:
        client = kfp_client(args.host, args.namespace, args.token)
        if args.action == "drift-check":
            package = args.package or (PACKAGE if Path(PACKAGE).is_file() and not args.image else None)
            run, uploaded, replaced = schedule.create_or_update(
                client, args.host, args.cron, package=package, namespace=args.namespace,
                experiment=args.experiment, params=dict(args.param), service_account=args.service_account,
                version=args.version, image=args.image)
            if uploaded:
                print(f"uploaded {uploaded} as pipeline '{schedule.NAME}'")
            print(("updated" if replaced else "created") + f": {schedule.describe(run)}")
            for old in replaced:
                print(f"deleted the recurring run it replaces: {old}")
        elif args.action == "list":
            runs = client.list_recurring_runs(namespace=args.namespace or None, page_size=100).recurring_runs or []
            for run in runs:
                print(schedule.describe(run))
            if not runs:
                print("no recurring runs")
        else:
            for old in schedule.delete(client, args.name, args.namespace):
                print(f"deleted recurring run {args.name} ({old})")
    except (SubmitError, ApiException, HTTPError) as exc:
        return kfp_failure(exc, args)
    return 0


def cmd_upload(args) -> int:
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from components import source
    from components.kfp_api import SubmitError, kfp_client
    from mlops import upload

    # compiled now: the commit of the source tree compiled; given files: of the work tree they were compiled in
    version = upload.version_for(source.head(upload.SOURCE_REPO if args.compiled_dir is None else "."),
                                 args.version, args.allow_dirty)
    if args.compiled_dir is not None:
        upload.packages(args.compiled_dir, version)  # checked before connecting
    try:
        client = kfp_client(args.host, args.namespace, args.token)
        done = upload.upload(client, version, args.compiled_dir, args.image, args.namespace)
    except (ApiException, HTTPError, SubmitError) as exc:
        return kfp_failure(exc, args)
    for item in done:
        print({"created": f"{item.pipeline}: created the pipeline with version '{item.version}'",
               "added": f"{item.pipeline}: added version '{item.version}'",
               "exists": f"{item.pipeline}: version '{item.version}' is already uploaded; nothing to do",
               }[item.outcome] + f" (pipeline {item.pipeline_id}, version {item.version_id})")
    print(f"training runs of version '{version.name}' record git_commit {version.commit}")
    return 0


def cmd_submit(args) -> int:
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from components.kfp_api import KfpSubmitter, SubmitError

    try:
        submitter = KfpSubmitter(args.host, args.namespace, args.experiment, args.service_account,
                                 version=args.version, token=args.token)
        run_id = submitter.submit(dict(args.param))
    except (ApiException, HTTPError, SubmitError) as exc:
        return kfp_failure(exc, args)
    print(f"submitted training run {run_id} of version '{args.version or 'newest'}' in experiment "
          f"'{args.experiment}'")
    return 0


def add_schedule(sub) -> None:
    """`mlops schedule drift-check`, `mlops schedule list` and `mlops schedule delete`."""
    kfp_args = _connection_args()
    sched = sub.add_parser("schedule", help="the drift check as a KFP recurring run").add_subparsers(
        dest="action", required=True)
    dc = sched.add_parser("drift-check", parents=[kfp_args], help="create or update the hourly drift check",
                          description="Creates the recurring run 'drift-check' of the uploaded 'drift-check' "
                                      "pipeline's version --version, else its newest (uploading --package, else "
                                      "the pipeline compiled now, first when the pipeline is missing), "
                                      "max_concurrency 1, no catch-up; an existing one is replaced (created "
                                      "anew, then the old one deleted).")
    dc.add_argument("--cron", required=True, help="5 fields ('0 * * * *', hourly; stored with a leading 0 "
                                                  "seconds field) or KFP's 6 fields (taken as is)")
    package = dc.add_mutually_exclusive_group()
    package.add_argument("--package", help=f"compiled pipeline to upload if none is uploaded (default: {PACKAGE}, "
                                           "else compiled now from the source tree, as `mlops upload` does)")
    package.add_argument("--image", help=f"compile now on this component image instead of uploading {PACKAGE} "
                                         "(default when compiling: compile.py's)")
    dc.add_argument("--version", help="the pipeline version to run, by name, as `mlops upload` named it "
                                      "(default: the newest)")
    dc.add_argument("--experiment", default="drift-check", help="experiment of the runs (default: drift-check)")
    dc.add_argument("--service-account", default="", help="service account the runs use")
    dc.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                    help="a pipeline parameter (JSON value, else a string); repeatable")
    ls = sched.add_parser("list", parents=[kfp_args], help="the recurring runs")
    rm = sched.add_parser("delete", parents=[kfp_args], help="delete a recurring run by name")
    rm.add_argument("--name", default="drift-check", help="recurring run name (default: drift-check)")
    for cmd in (dc, ls, rm):
        cmd.set_defaults(func=cmd_schedule)


def add_upload(sub) -> None:
    """`mlops upload`."""
    up = sub.add_parser("upload", parents=[_connection_args()],
                        help="upload the compiled pipelines as a version named by the git commit",
                        description="Uploads every pipeline (training, drift-check): the pipeline on first upload, "
                                    "a new version after; a version name already uploaded is left as it is. The "
                                    "training pipeline's git_commit parameter defaults to the commit.")
    up.add_argument("--version", help="version name (default: the short git commit; '<commit>-dirty' with "
                                      "--allow-dirty)")
    up.add_argument("--allow-dirty", action="store_true", help="upload from a work tree with uncommitted changes")
    source = up.add_mutually_exclusive_group()
    source.add_argument("--compiled-dir", help="upload the files compiled here (python compile.py --git-commit ...); "
                                               "default: compile now")
    source.add_argument("--image", help="component image when compiling now (default: compile.py's)")
    up.set_defaults(func=cmd_upload)


def add_submit(sub) -> None:
    """`mlops submit training`."""
    submit = sub.add_parser("submit", help="submit a run of an uploaded pipeline").add_subparsers(
        dest="pipeline", required=True)
    st = submit.add_parser("training", parents=[_connection_args()], help="a run of the uploaded training pipeline")
    st.add_argument("--version", help="pipeline version name, e.g. the short commit `mlops upload` used "
                                      "(default: the newest version)")
    st.add_argument("--experiment", default="training", help="experiment of the run (default: training)")
    st.add_argument("--service-account", default="", help="service account the run uses")
    st.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                    help="a pipeline parameter (JSON value, else a string), e.g. data_uri=s3://...; repeatable")
    st.set_defaults(func=cmd_submit)
