"""`mlops deploy`, `mlops serve` and `mlops model pull`: a registered model version deployed, served, fetched."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from components.deploy import TARGETS
from mlops.cli.common import HOME, REGISTRY_HELP, registry_uri, tracking_uri
from pipelines.defaults import CONFIG, GATES


def cmd_deploy(args) -> int:
    from components.deploy import kube, logic, online
    from pipelines import defaults

    settings = defaults.load(args.config, args.gates)
    tracking = tracking_uri(args)
    registry = registry_uri(args, tracking)
    try:
        result = logic.deploy(tracking, args.model_name or settings.model_name, args.model_version,
                              args.target, namespace=args.namespace or settings.namespace,
                              rollout=args.rollout or settings.rollout_name,
                              timeout_seconds=args.timeout or settings.timeout_minutes * 60 or None,
                              online=online.online_of(settings.quality_gates, args.gates), force=args.force,
                              output_dir=args.output_dir, registry_uri=registry)
    except (logic.DeployError, kube.KubeError) as exc:
        print(f"mlops: deploy failed: {exc}", file=sys.stderr)
        return 1
    print(result.message)
    for path in result.rendered:
        print(f"rendered {path}")
    return 0


def cmd_serve(args) -> int:
    from serving import server
    from serving.config import Settings

    return server.run(Settings.from_env(model_uri=args.model_uri, port=args.port, metrics_port=args.metrics_port,
                                        workers=args.workers))


def cmd_model_pull(args) -> int:
    from mlflow.exceptions import MlflowException

    from serving.model import pull

    try:
        info = pull(args.model_uri, args.output, args.sha256 or os.environ.get("MODEL_SHA256") or None)
    except MlflowException as exc:
        print(f"mlops: error: cannot pull {args.model_uri}: {exc.message}", file=sys.stderr)
        return 2
    print(f"model {info.name} version {info.version} ({info.source}), sha256 {info.model_sha256}, "
          f"is in {args.output}")
    return 0


def add_deploy(sub) -> None:
    """`mlops deploy`."""
    dep = sub.add_parser("deploy", help="deploy a registered model version (canary, rolling or local)",
                         description="The deploy step outside a pipeline. The Kubernetes configuration comes "
                                     "from KUBECONFIG (or ~/.kube/config), else the in-cluster service account, "
                                     "as kubectl finds it.")
    dep.add_argument("--model-version", required=True, help="registry version to deploy")
    dep.add_argument("--model-name", help="registered model (default: registry.model_name of --config)")
    dep.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else SQLite "
                                            "under --home)")
    dep.add_argument("--registry-uri", help=REGISTRY_HELP)
    dep.add_argument("--target", required=True, choices=tuple(t for t in TARGETS if t != "none"))
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


def add_serve(sub) -> None:
    """`mlops serve`."""
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


def add_model(sub) -> None:
    """`mlops model pull`."""
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
