"""`mlops run`: the training and drift-check pipelines run on this machine (kfp.local)."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from components.deploy import TARGETS
from mlops.cli.common import HOME, REGISTRY_HELP, registry_uri, tracking_uri
from pipelines.defaults import BASELINE, CONFIG, DRIFT, GATES, ConfigError, absolute


def cmd_run_training(args) -> int:
    from components import contract, dataio
    from components.gates import check_gates
    from mlops import datagen, local
    from pipelines import defaults

    settings = defaults.load(args.config, args.gates, args.baseline)
    tracking = args.tracking_uri or local.local_tracking_uri(args.home)
    settings = replace(settings, schema_uri=absolute(args.schema or settings.schema_uri), tracking_uri=tracking,
                       registry_uri=registry_uri(args, tracking),
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
    """The drift-check pipeline under kfp.local, then the retraining it asked for (mlops.local.run_drift_check)."""
    import shutil

    from components.drift import logic
    from mlops import local
    from pipelines import defaults

    settings = defaults.load_drift(args.drift_config, args.config, gates=args.gates)
    config = settings.config if args.window_hours is None else logic.check_config(
        {**settings.config, "window_hours": args.window_hours}, "--window-hours")
    log_uri = args.log_uri or os.environ.get("INFERENCE_LOG_URI")
    if not log_uri:
        raise ConfigError("no inference log: give --log-uri or set INFERENCE_LOG_URI")
    tracking = tracking_uri(args)
    settings = replace(settings, tracking_uri=tracking, registry_uri=registry_uri(args, tracking),
                       model_name=args.model_name or settings.model_name, config=config)
    # the settings a retraining trains with: read only when one may be due
    training = defaults.for_local_runs(defaults.load(args.config)) if args.training_data else None
    outcomes_uri = args.outcomes_uri or os.environ.get("OUTCOMES_URI", "")
    parameters = {"training_data_uri": absolute(args.training_data) if args.training_data else "",
                  "outcomes_uri": absolute(outcomes_uri) if outcomes_uri else ""}
    try:
        run = local.run_drift_check(absolute(log_uri), settings, args.home, parameters, training)
    except local.PipelineFailed as exc:
        if "check-" in exc.step:
            raise ConfigError(str(exc)) from None  # the check itself cannot run: a usage error, exit 2
        print(f"mlops: retraining submission failed: {exc}", file=sys.stderr)
        return 1
    result = {**run.result, "retraining": run.retraining,
              "retrainings": [{"request": r.request, "status": r.status, "error": r.error,
                               "run": r.run and r.run.run_dir.name,
                               "version": r.run and r.run.registration and r.run.registration["version"]}
                              for r in run.retrainings]}
    if args.report:
        shutil.copyfile(run.run_dir / "check-performance" / "report", args.report)
    failed = [r for r in result["retrainings"] if r["error"]]  # a retraining that broke is an error, not a decision
    for retraining in failed:
        print(f"mlops: retraining {retraining['request']} failed: {retraining['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 1 if failed else 0
    print(f"drift check of {result['model_name']} version {result['model_version']}: {result['decision']}"
          + (f" ({', '.join(result['reasons'])})" if result.get("reasons") else ""))
    print(f"  {result['reason']}")
    performance = result.get("performance")
    if performance:
        print(f"  live performance: {performance['decision']}: {performance['reason']}")
        for version, entry in sorted(performance["versions"].items(), key=lambda item: int(item[0])):
            shown = ", ".join(f"{m.replace('_', ' ')} {entry['metrics'][m]:.4f}" for m in
                              ("precision", "recall", "expected_cost", "roc_auc")
                              if (entry.get("metrics") or {}).get(m) is not None)
            print(f"    version {version}: {entry['labelled']:,} of {entry['logged']:,} logged rows labelled"
                  + (f"; {shown}" if shown else ""))
    for feature in result["drifted_features"]:
        print(f"  drifted: {feature} PSI {result['scores'][feature]:.3f}")
    for skipped in result["skipped_files"]:
        print(f"  skipped {skipped['file']}: {skipped['reason']}")
    if result["pushgateway"] and not result["pushgateway"]["pushed"]:
        print(f"  Pushgateway push failed: {result['pushgateway']['error']}")
    if result["retraining"] is not None:
        retraining = result["retraining"]
        print("  retraining: "
              f"{'submitted request ' + retraining['run'] if retraining['submitted'] else retraining['reason']}")
    for done in result["retrainings"]:
        print(f"  retraining {done['request']}: {done['status']}"
              + (f", registered as version {done['version']}" if done["version"] else "")
              + (f" ({done['error']})" if done["error"] else ""))
    return 1 if failed else 0


def add_run(sub) -> None:
    """`mlops run training` and `mlops run drift-check`."""
    run = sub.add_parser("run", help="run a pipeline locally (kfp.local)")
    run_sub = run.add_subparsers(dest="pipeline", required=True)
    tr = run_sub.add_parser("training", help="validate -> train -> evaluate -> gate -> register -> deploy")
    tr.add_argument("--data", help="Parquet/CSV path or fsspec URL (default: generated transactions)")
    tr.add_argument("--schema", help="feature contract file (default: data.schema_uri of --config)")
    tr.add_argument("--config", default=CONFIG, help=f"training config (default: {CONFIG})")
    tr.add_argument("--gates", default=GATES, help=f"quality gates (default: {GATES})")
    tr.add_argument("--baseline", default=BASELINE, help=f"baseline metrics (default: {BASELINE})")
    tr.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under --home)")
    tr.add_argument("--registry-uri", help=REGISTRY_HELP)
    tr.add_argument("--home", type=Path, default=HOME, help="local state folder (default: .mlops)")
    tr.add_argument("--rows", type=int, default=100_000, help="rows of generated data when --data is not given")
    tr.add_argument("--seed", type=int, default=7, help="seed of generated data")
    tr.add_argument("--git-commit", help="commit recorded on the model (default: git rev-parse HEAD)")
    tr.add_argument("--deploy-target", choices=TARGETS, default="local",
                    help="last step: local (no cluster: promote to production; the default), canary, rolling, "
                         "or none")
    tr.add_argument("--namespace", help="namespace of the Rollout (default: deploy.namespace of --config)")
    tr.add_argument("--rollout", help="Rollout or Deployment name (default: deploy.rollout_name of --config)")
    tr.set_defaults(func=cmd_run_training)

    dc = run_sub.add_parser("drift-check", help="one drift check of the production model's inference log, now",
                            description="Runs the drift-check pipeline on this machine (kfp.local); a retraining "
                                        "it finds due is recorded in the retraining outbox under --home and then "
                                        "run here as a local training run. Exits 0 whatever the decision; "
                                        "non-zero only on an error. PUSHGATEWAY_URL, when set, receives the "
                                        "scores.")
    dc.add_argument("--log-uri", help="inference log folder or fsspec URL (default: INFERENCE_LOG_URI)")
    dc.add_argument("--model-name", help="registered model (default: registry.model_name of --config)")
    dc.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else SQLite under "
                                           "--home)")
    dc.add_argument("--registry-uri", help=REGISTRY_HELP)
    dc.add_argument("--window-hours", type=float, help="hours of log to read (default: window_hours of "
                                                       "--drift-config)")
    dc.add_argument("--training-data", help="labelled data to retrain on when retraining is due (a local training "
                                            "run, at most once per cooldown); without it nothing is submitted")
    dc.add_argument("--outcomes-uri", help="outcomes folder or fsspec URL (mlops outcomes ingest): also measure "
                                           "live performance per version and judge it by the live gates "
                                           "(default: OUTCOMES_URI; neither: the drift check alone)")
    dc.add_argument("--gates", default=GATES, help=f"quality gates with the live section (default: {GATES})")
    dc.add_argument("--drift-config", default=DRIFT, help=f"drift settings (default: {DRIFT})")
    dc.add_argument("--config", default=CONFIG, help=f"training config (default: {CONFIG})")
    dc.add_argument("--home", type=Path, default=HOME, help="local state folder (default: .mlops)")
    dc.add_argument("--report", help="also write the HTML report to this file")
    dc.add_argument("--json", action="store_true", help="print the result as one JSON object")
    dc.set_defaults(func=cmd_run_drift_check)
