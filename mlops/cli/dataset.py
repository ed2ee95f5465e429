"""`mlops dataset from-log`: the traffic a model served, labelled by its outcomes, as a training table."""
from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from mlops.cli.common import HOME, REGISTRY_HELP, registry_uri, tracking_uri
from pipelines.defaults import CONFIG, GATES


def cmd_dataset_from_log(args) -> int:
    from components import contract, dataio, outcomes, registry
    from components.inference_log import window_end
    from components.performance import join, logic
    from components.validate.logic import ValidationFailed, validate
    from pipelines import defaults

    log_uri = args.log_uri or os.environ.get("INFERENCE_LOG_URI")
    outcomes_uri = args.outcomes_uri or os.environ.get("OUTCOMES_URI")
    if not log_uri or not outcomes_uri:
        raise ValueError("give --log-uri (or INFERENCE_LOG_URI) and --outcomes-uri (or OUTCOMES_URI)")
    settings = defaults.load_drift(config=args.config, gates=args.gates)
    model_name = args.model_name or settings.model_name
    live = {**settings.live, **{k: v for k, v in (("window_days", args.window_days),
                                                   ("label_maturity_days", args.label_maturity_days),
                                                   ("implicit_negative_after_days", args.implicit_negative_after_days))
                                if v is not None}}
    spec = contract.load(defaults.absolute(args.schema or defaults.load(args.config).schema_uri))
    now = (window_end(args.until) or datetime.now(timezone.utc)).astimezone(timezone.utc)
    start, stop = logic.window(now, live)
    implicit = live.get("implicit_negative_after_days")
    negative = None
    if implicit is not None:  # which rows were let through: each version's own threshold, from the registry
        known = [v for v in (spec.allowed(spec.label) or []) if v != spec.positive_class]
        if len(known) != 1:
            raise ValueError(f"--implicit-negative-after-days needs the one negative class of {spec.label!r}; the "
                             f"contract allows {spec.allowed(spec.label)}")
        negative = known[0]
        tracking = tracking_uri(args)
        threshold = logic.Versions(registry.client(tracking, registry_uri(args, tracking)), tracking,
                                   model_name).threshold
    else:  # no implicit negatives: no threshold is needed
        def threshold(version: str) -> None:
            return None
    truth, conflicting = outcomes.latest(outcomes_uri, model_name, spec.label, since=start)
    found = join.join(log_uri, model_name, truth, spec.label, start, stop, now, threshold, implicit,
                      extra_columns=tuple(spec.feature_columns))
    table = join.labelled_table(found, spec, negative)
    try:
        validate(table, spec, source=f"served rows of {model_name} in {log_uri}")
    except ValidationFailed as failed:
        print(f"mlops: error: the served rows do not meet the contract, nothing written: {failed}", file=sys.stderr)
        return 1
    dataio.write_table(table, defaults.absolute(args.out))
    positives = int((table[spec.label] == spec.positive_class).sum())
    summary = {"out": args.out, "rows": len(table), "positives": positives,
               "implicit_negatives": 0 if found.implicit is None else found.implicit.num_rows,
               "window": {"start": start.isoformat(), "end": stop.isoformat()}, "conflicting": conflicting,
               "orphan_outcomes": int(truth.num_rows - found.matched.sum()), "skipped_files": found.skipped}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.out}: {len(table):,} served rows of {model_name} labelled ({positives:,} {spec.positive_class!r}"
              f", {summary['implicit_negatives']:,} implicit negatives) from {start:%Y-%m-%d %H:%M} to "
              f"{stop:%Y-%m-%d %H:%M} UTC; valid against {spec.name} v{spec.version}")
    return 0


def add_dataset(sub) -> None:
    """`mlops dataset from-log`."""
    group = sub.add_parser("dataset", help="training tables built from what was served").add_subparsers(
        dest="action", required=True)
    fl = group.add_parser(
        "from-log", help="the window's served rows with their outcomes, as a training table",
        description="Joins the inference log with the outcomes (mlops outcomes ingest) on (request_id, row) and "
                    "writes one row per logged row that has an outcome: the features as the server received "
                    "them and the label from the outcome (a retried request counts once, the latest outcome "
                    "counts). With --implicit-negative-after-days, a row the model let through (below its "
                    "version's threshold) without an outcome after that many days is labelled the negative "
                    "class; a flagged row without an outcome is never in the table. The table is validated "
                    "against the contract before it is written, and trains as any other table.")
    fl.add_argument("--log-uri", help="inference log folder or fsspec URL (default: INFERENCE_LOG_URI)")
    fl.add_argument("--outcomes-uri", help="outcomes folder or fsspec URL (default: OUTCOMES_URI)")
    fl.add_argument("--out", required=True, help="the table to write (.parquet or .csv; path or fsspec URL)")
    fl.add_argument("--model-name", help="registered model (default: registry.model_name of --config)")
    fl.add_argument("--window-days", type=float, help="days of predictions (default: live.window_days of --gates)")
    fl.add_argument("--label-maturity-days", type=float,
                    help="leave out the newest predictions, whose truth is not known yet (default: "
                         "live.label_maturity_days of --gates)")
    fl.add_argument("--implicit-negative-after-days", type=float,
                    help="label a let-through row without outcome after this many days negative (default: "
                         "live.implicit_negative_after_days of --gates, else never)")
    fl.add_argument("--until", default="", help="end of the window before maturity, ISO 8601 with offset "
                                                "(default: now)")
    fl.add_argument("--schema", help="feature contract (default: data.schema_uri of --config)")
    fl.add_argument("--config", default=CONFIG, help=f"training config (default: {CONFIG})")
    fl.add_argument("--gates", default=GATES, help=f"quality gates with the live section (default: {GATES})")
    fl.add_argument("--tracking-uri", help="MLflow tracking URI, for the versions' thresholds with implicit "
                                           "negatives (default: MLFLOW_TRACKING_URI, else SQLite under --home)")
    fl.add_argument("--registry-uri", help=REGISTRY_HELP)
    fl.add_argument("--home", type=Path, default=HOME, help="local state folder (default: .mlops)")
    fl.add_argument("--json", action="store_true", help="print the result as one JSON object")
    fl.set_defaults(func=cmd_dataset_from_log)

