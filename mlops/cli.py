"""`mlops`: run the pipelines locally, generate data, infer a schema for a new table."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from components.contract import ContractError
from components.dataio import DataError
from pipelines.defaults import BASELINE, CONFIG, DRIFT, GATES, ConfigError
from serving.config import SettingsError

HOME = Path(".mlops")
USER_ERRORS = (ConfigError, ContractError, DataError, SettingsError, ValueError, OSError)


def absolute(uri: str) -> str:
    """Local paths made absolute (steps run in other folders); URLs as they are."""
    return uri if "://" in uri else str(Path(uri).resolve())


def registry_uri(args) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the local SQLite store under --home."""
    from mlops import local

    return args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or local.local_tracking_uri(args.home)


def cmd_run_training(args) -> int:
    from components import contract, dataio
    from components.gate.logic import check_gates
    from mlops import datagen, local
    from pipelines import defaults

    settings = defaults.load(args.config, args.gates, args.baseline)
    settings = replace(settings, schema_uri=absolute(args.schema or settings.schema_uri),
                       tracking_uri=args.tracking_uri or local.local_tracking_uri(args.home),
                       deployment_target=args.deploy_target, namespace=args.namespace or settings.namespace,
                       rollout_name=args.rollout or settings.rollout_name)
    spec = contract.load(settings.schema_uri)  # a broken schema file fails here, before anything runs
    try:
        check_gates(settings.quality_gates, str(args.gates)).slices.resolve(spec)
    except ValueError as exc:
        raise ConfigError(f"{args.gates}: {exc}") from exc
    data_uri = args.data
    if data_uri is None:
        path = args.home / "data" / f"transactions-{args.rows}-seed{args.seed}.parquet"
        if not path.exists():
            print(f"generating {args.rows:,} synthetic transactions -> {path}", file=sys.stderr)
            dataio.write_table(datagen.generate(args.rows, args.seed), str(path))
        data_uri = str(path.resolve())
    else:
        data_uri = absolute(data_uri)
    try:
        run = local.run_training(data_uri, settings, args.home, commit=args.git_commit)
    except local.PipelineFailed as exc:
        print(f"mlops: training pipeline failed: {exc}", file=sys.stderr)
        print("Nothing was registered.", file=sys.stderr)
        return 1
    print(local.summary(run, data_uri, settings))
    return 0 if run.gate["passed"] else 1


def cmd_run_drift_check(args) -> int:
    from components.drift import logic
    from pipelines import defaults

    settings = defaults.load_drift(args.drift_config, args.config)
    config = settings.config if args.window_hours is None else logic.check_config(
        {**settings.config, "window_hours": args.window_hours}, "--window-hours")
    log_uri = args.log_uri or os.environ.get("INFERENCE_LOG_URI")
    if not log_uri:
        raise ConfigError("no inference log: give --log-uri or set INFERENCE_LOG_URI")
    tracking_uri = registry_uri(args)
    result, detail, profile = logic.check(absolute(log_uri), tracking_uri, args.model_name or settings.model_name,
                                          config, pushgateway_url=os.environ.get("PUSHGATEWAY_URL"))
    result["retraining"] = None
    if args.training_data:  # retraining when due: a local training run, once (components.trigger)
        from components.trigger import submit

        check_id = f"mlops-run-drift-check-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"  # no KFP run: this check
        result["retraining"] = submit.run(result, tracking_uri=tracking_uri, model_name=result["model_name"],
                                          training_data_uri=absolute(args.training_data), home=str(args.home),
                                          pushgateway_url=os.environ.get("PUSHGATEWAY_URL"), drift_run_id=check_id)
    if args.report:
        Path(args.report).write_text(logic.render_html(result, detail, profile))
    failed = (result["retraining"] or {}).get("error")  # a failed submission is an error, not a decision
    if failed:
        print(f"mlops: retraining submission failed: {failed}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 1 if failed else 0
    print(f"drift check of {result['model_name']} version {result['model_version']}: {result['decision']}")
    print(f"  {result['reason']}")
    for feature in result["drifted_features"]:
        print(f"  drifted: {feature} PSI {result['scores'][feature]:.3f}")
    for skipped in result["skipped_files"]:
        print(f"  skipped {skipped['file']}: {skipped['reason']}")
    if result["pushgateway"] and not result["pushgateway"]["pushed"]:
        print(f"  Pushgateway push failed: {result['pushgateway']['error']}")
    if result["retraining"] is not None:
        retraining = result["retraining"]
        print(f"  retraining: {'submitted run ' + retraining['run'] if retraining['submitted'] else retraining['reason']}")
    return 1 if failed else 0


def cmd_deploy(args) -> int:
    from components.deploy import kube, logic, online
    from pipelines import defaults

    settings = defaults.load(args.config, args.gates)
    try:
        result = logic.deploy(registry_uri(args), args.model_name or settings.model_name, args.model_version, args.target,
                              namespace=args.namespace or settings.namespace,
                              rollout=args.rollout or settings.rollout_name,
                              timeout_seconds=args.timeout or settings.timeout_minutes * 60 or None,
                              online=online.online_of(settings.quality_gates, args.gates), force=args.force,
                              output_dir=args.output_dir)
    except (logic.DeployError, kube.KubeError) as exc:
        print(f"mlops: deploy failed: {exc}", file=sys.stderr)
        return 1
    print(result.message)
    for path in result.rendered:
        print(f"rendered {path}")
    return 0


def cmd_data_generate(args) -> int:
    from components import dataio
    from mlops import datagen

    df = datagen.generate(args.rows, args.seed, args.drift)
    dataio.write_table(df, args.out)
    print(f"wrote {len(df):,} rows ({df['is_fraud'].mean():.2%} fraud"
          f"{f', drift {args.drift} on {list(datagen.DRIFTED_FEATURES)}' if args.drift else ''}) to {args.out}")
    return 0


def cmd_data_validate(args) -> int:
    from components import contract, dataio
    from components.validate import logic

    spec = contract.load(args.schema)
    try:
        _, report = logic.validate(dataio.read_table(args.data), spec, source=args.data)
    except logic.ValidationFailed as failed:
        report = failed.report
    if args.report:
        with open(args.report, "a") as fh:
            fh.write(report.to_markdown())
    if not report.passed:
        print(f"mlops: error: {report.summary()}", file=sys.stderr)
        return 1
    print(f"{args.data}: {report.rows:,} rows, {report.columns} columns, valid against {report.contract}")
    return 0


def cmd_schema_infer(args) -> int:
    from components import contract, dataio

    doc = contract.infer(dataio.read_table(args.data), args.label, name=args.name or Path(args.data).stem,
                         positive_class=args.positive_class)
    contract.parse(doc, source=args.out)  # what we write must load
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    kinds = ", ".join(f"{c}={k}" for c, k in doc["features"].items())
    print(f"wrote {args.out}: label {args.label!r} (positive class {doc['positive_class']!r}), features {kinds}. "
          "Tighten the checks before use.")
    return 0


def cmd_serve(args) -> int:
    from serving import server
    from serving.config import Settings

    return server.run(Settings.from_env(model_uri=args.model_uri, port=args.port, metrics_port=args.metrics_port,
                                        workers=args.workers))


def cmd_model_pull(args) -> int:
    from serving.model import pull

    from mlflow.exceptions import MlflowException

    try:
        info = pull(args.model_uri, args.output, args.sha256 or os.environ.get("MODEL_SHA256") or None)
    except MlflowException as exc:
        print(f"mlops: error: cannot pull {args.model_uri}: {exc.message}", file=sys.stderr)
        return 2
    print(f"model {info.name} version {info.version} ({info.source}), sha256 {info.model_sha256}, "
          f"is in {args.output}")
    return 0


def cmd_demo(args) -> int:
    from mlops import demo

    if args.rows < 1000:
        raise ValueError(f"--rows must be at least 1000 (the gates need frauds in every slice), got {args.rows}")
    return demo.main(args.home, args.rows, args.port, args.min_samples, args.config, args.gates)


def _param(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


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
            package = args.package if Path(args.package).is_file() else None
            run, uploaded, replaced = schedule.create_or_update(
                client, args.host, args.cron, package_path=package, namespace=args.namespace,
                experiment=args.experiment, params=dict(args.param), service_account=args.service_account,
                version=args.version)
            if uploaded:
                print(f"uploaded {args.package} as pipeline '{schedule.NAME}'")
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

    from components.kfp_api import SubmitError, kfp_client
    from mlops import upload

    # compiled now: the commit of the source tree compiled; given files: of the work tree they were compiled in
    version = upload.version_for(upload.head(upload.SOURCE_REPO if args.compiled_dir is None else "."),
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


def kfp_failure(exc: Exception, args) -> int:
    """Print why a call to the KFP API failed (unreachable, unauthorized, not uploaded); exit status 1."""
    from components.kfp_api import SubmitError, kfp_error

    message = exc if isinstance(exc, SubmitError) else kfp_error(exc, args.host, args.namespace)
    print(f"mlops: error: {message}", file=sys.stderr)
    return 1


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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline locally (kfp.local)")
    run_sub = run.add_subparsers(dest="pipeline", required=True)
    tr = run_sub.add_parser("training", help="validate -> train -> evaluate -> gate -> register -> deploy")
    tr.add_argument("--data", help="Parquet/CSV path or fsspec URL (default: generated transactions)")
    tr.add_argument("--schema", help="feature contract file (default: data.schema_uri of --config)")
    tr.add_argument("--config", default=CONFIG, help=f"training config (default: {CONFIG})")
    tr.add_argument("--gates", default=GATES, help=f"quality gates (default: {GATES})")
    tr.add_argument("--baseline", default=BASELINE, help=f"baseline metrics (default: {BASELINE})")
    tr.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under --home)")
    tr.add_argument("--home", type=Path, default=HOME, help="local state folder (default: .mlops)")
    tr.add_argument("--rows", type=int, default=100_000, help="rows of generated data when --data is not given")
    tr.add_argument("--seed", type=int, default=7, help="seed of generated data")
    tr.add_argument("--git-commit", help="commit recorded on the model (default: git rev-parse HEAD)")
    tr.add_argument("--deploy-target", choices=("none", "local", "canary", "rolling"), default="local",
                    help="last step: local (no cluster: promote to production; the default), canary, rolling, "
                         "or none")
    tr.add_argument("--namespace", help="namespace of the Rollout (default: deploy.namespace of --config)")
    tr.add_argument("--rollout", help="Rollout or Deployment name (default: deploy.rollout_name of --config)")
    tr.set_defaults(func=cmd_run_training)

    dc = run_sub.add_parser("drift-check", help="one drift check of the production model's inference log, now",
                            description="Exits 0 whatever the decision; non-zero only on an error. "
                                        "PUSHGATEWAY_URL, when set, receives the scores.")
    dc.add_argument("--log-uri", help="inference log folder or fsspec URL (default: INFERENCE_LOG_URI)")
    dc.add_argument("--model-name", help="registered model (default: registry.model_name of --config)")
    dc.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else SQLite under "
                                           "--home)")
    dc.add_argument("--window-hours", type=float, help="hours of log to read (default: window_hours of "
                                                       "--drift-config)")
    dc.add_argument("--training-data", help="labelled data to retrain on when retraining is due (a local training "
                                            "run, at most once per cooldown); without it nothing is submitted")
    dc.add_argument("--drift-config", default=DRIFT, help=f"drift settings (default: {DRIFT})")
    dc.add_argument("--config", default=CONFIG, help=f"training config (default: {CONFIG})")
    dc.add_argument("--home", type=Path, default=HOME, help="local state folder (default: .mlops)")
    dc.add_argument("--report", help="also write the HTML report to this file")
    dc.add_argument("--json", action="store_true", help="print the result as one JSON object")
    dc.set_defaults(func=cmd_run_drift_check)

    dep = sub.add_parser("deploy", help="deploy a registered model version (canary, rolling or local)",
                         description="The deploy step outside a pipeline. The Kubernetes configuration comes "
                                     "from KUBECONFIG (or ~/.kube/config), else the in-cluster service account, "
                                     "as kubectl finds it.")
    dep.add_argument("--model-version", required=True, help="registry version to deploy")
    dep.add_argument("--model-name", help="registered model (default: registry.model_name of --config)")
    dep.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else SQLite "
                                            "under --home)")
    dep.add_argument("--target", required=True, choices=("canary", "rolling", "local"))
    dep.add_argument("--namespace", help="namespace of the Rollout or Deployment (default: deploy.namespace)")
    dep.add_argument("--rollout", help="Rollout (or Deployment) name (default: deploy.rollout_name)")
    dep.add_argument("--timeout", type=float, help="seconds to wait for the rollout (default: deploy.timeout_minutes,"
                                                   " or the Rollout's own pauses and analyses plus a margin)")
    dep.add_argument("--force", action="store_true", help="deploy a version that never passed the gates or "
                                                          "was rejected")
    dep.add_argument("--output-dir", help="for --target local: write the pinned manifests here")
    dep.add_argument("--config", default=CONFIG, help=f"training config (default: {CONFIG})")
    dep.add_argument("--gates", default=GATES, help=f"quality gates with the online section (default: {GATES})")
    dep.add_argument("--home", type=Path, default=HOME, help="local state folder (default: .mlops)")
    dep.set_defaults(func=cmd_deploy)

    data = sub.add_parser("data", help="data utilities").add_subparsers(dest="action", required=True)
    gen = data.add_parser("generate", help="synthetic card transactions")
    gen.add_argument("--rows", type=int, required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--drift", type=float, default=0.0,
                     help="covariate shift of amounts, merchant category, device trust, transaction counts, "
                          "weekdays and distances (0 = none; the features are listed when it runs)")
    gen.add_argument("--out", required=True, help="Parquet path or fsspec URL")
    gen.set_defaults(func=cmd_data_generate)
    val = data.add_parser("validate", help="check a data file against a feature contract (pandera, every failure)")
    val.add_argument("--schema", required=True, help="feature contract, e.g. schemas/features_v2.json")
    val.add_argument("--report", help="also append the Markdown report to this file (e.g. $GITHUB_STEP_SUMMARY)")
    val.add_argument("data", metavar="FILE", help="Parquet/CSV path or fsspec URL")
    val.set_defaults(func=cmd_data_validate)

    schema = sub.add_parser("schema", help="feature contracts").add_subparsers(dest="action", required=True)
    inf = schema.add_parser("infer", help="write a starter schema for a new table")
    inf.add_argument("--data", required=True)
    inf.add_argument("--label", required=True)
    inf.add_argument("--out", required=True)
    inf.add_argument("--name", help="contract name (default: the data file's stem)")
    inf.add_argument("--positive-class", metavar="VALUE",
                     help="label value of the positive class (default: 1 of 0/1, True of False/True)")
    inf.set_defaults(func=cmd_schema_infer)
    serve = sub.add_parser("serve", help="the model server (HTTP :8080, Prometheus metrics :9090)",
                           description="Other settings come from the environment: MODEL_PATH, MODEL_NAME, "
                                       "MODEL_SHA256, MODEL_ROLE, MODEL_ROLE_FILE, MAX_BATCH_SIZE, MAX_BATCH_WAIT_MS, "
                                       "MAX_BODY_BYTES, MAX_IN_FLIGHT, BODY_TIMEOUT_SECONDS, INFERENCE_LOG_URI, "
                                       "INFERENCE_LOG_SAMPLE_RATE, "
                                       "SCHEMA_URI, FAIL_FAST (see serving/config.py).")
    serve.add_argument("--model-uri", help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/..., or a path "
                                           "(default: MODEL_URI, or the folder MODEL_PATH); resolved, "
                                           "downloaded and checked once, before the workers start")
    serve.add_argument("--port", type=int, help="HTTP port (default: PORT or 8080)")
    serve.add_argument("--metrics-port", type=int, help="Prometheus port (default: METRICS_PORT or 9090)")
    serve.add_argument("--workers", type=int, help="worker processes (default: WORKERS or 4)")
    serve.set_defaults(func=cmd_serve)

    model = sub.add_parser("model", help="registry models").add_subparsers(dest="action", required=True)
    pull = model.add_parser("pull", help="download a registry model into a folder (the init container)",
                            description="The model file must hash to the registry version's model_sha256 tag "
                                        "and load with skops and the project's trusted types. The same "
                                        "version already in --output is left alone; another is replaced "
                                        "atomically (--output is a link swapped in one rename).")
    pull.add_argument("--model-uri", required=True, help="e.g. models:/fraud-detection@production")
    pull.add_argument("--output", required=True,
                      help="path to fill: new, empty, or a model an earlier pull put there")
    pull.add_argument("--sha256", help="the model file's expected sha256, checked too (default: MODEL_SHA256)")
    pull.set_defaults(func=cmd_model_pull)

    demo = sub.add_parser("demo", help="the whole loop on this machine: train, serve, drift, retrain, switch",
                          description="Generates data, trains, gates, registers and deploys v1, serves it "
                                      "(mlops serve behind the demo's switch on --port), sends clean then "
                                      "drifted traffic, runs the drift check after each, retrains v2 on the "
                                      "drift, deploys it and moves the traffic to it without dropping a "
                                      "request; then prints a summary. State (MLflow on SQLite, inference "
                                      "log, runs) in --home, cleared at the next run. Ctrl-C stops every "
                                      "process it started.")
    demo.add_argument("--rows", type=int, default=20_000, help="labelled rows of each training (default: 20000; "
                                                                "the traffic of each phase is min_samples of "
                                                                "configs/drift.yaml, at most half of it)")
    demo.add_argument("--port", type=int, default=8080, help="port of the demo's server (default: 8080)")
    demo.add_argument("--home", type=Path, default=HOME / "demo", help="state folder (default: .mlops/demo)")
    demo.add_argument("--min-samples", type=int, help="rows the drift check needs (default: min_samples of "
                                                      "configs/drift.yaml, at most --rows / 2)")
    demo.add_argument("--config", help=f"training config (default: {CONFIG} of the source tree)")
    demo.add_argument("--gates", help=f"quality gates (default: {GATES} of the source tree)")
    demo.set_defaults(func=cmd_demo)

    sched = sub.add_parser("schedule", help="the drift check as a KFP recurring run").add_subparsers(
        dest="action", required=True)
    kfp_args = argparse.ArgumentParser(add_help=False)
    kfp_args.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://ml-pipeline-ui.kubeflow")
    kfp_args.add_argument("--namespace", default="", help="Kubeflow profile namespace (multi-user; default: none)")
    kfp_args.add_argument("--token", help="bearer token for the KFP API (default: the service-account token at "
                                          "KF_PIPELINES_SA_TOKEN_PATH, when that file exists)")
    dc = sched.add_parser("drift-check", parents=[kfp_args], help="create or update the hourly drift check",
                          description="Creates the recurring run 'drift-check' of the uploaded 'drift-check' "
                                      "pipeline's version --version, else its newest (uploading --package first "
                                      "when the pipeline is missing), max_concurrency 1, no catch-up; an existing "
                                      "one is replaced (created anew, then the old one deleted).")
    dc.add_argument("--cron", required=True, help="5 fields ('0 * * * *', hourly; stored with a leading 0 "
                                                  "seconds field) or KFP's 6 fields (taken as is)")
    dc.add_argument("--package", default="compiled/drift-check.yaml",
                    help="compiled pipeline to upload if none is uploaded (default: compiled/drift-check.yaml)")
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

    up = sub.add_parser("upload", parents=[kfp_args], help="upload the compiled pipelines as a version named by the "
                                                             "git commit",
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

    submit = sub.add_parser("submit", help="submit a run of an uploaded pipeline").add_subparsers(
        dest="pipeline", required=True)
    st = submit.add_parser("training", parents=[kfp_args], help="a run of the uploaded training pipeline")
    st.add_argument("--version", help="pipeline version name, e.g. the short commit `mlops upload` used "
                                      "(default: the newest version)")
    st.add_argument("--experiment", default="training", help="experiment of the run (default: training)")
    st.add_argument("--service-account", default="", help="service account the run uses")
    st.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                    help="a pipeline parameter (JSON value, else a string), e.g. data_uri=s3://...; repeatable")
    st.set_defaults(func=cmd_submit)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"mlops: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
