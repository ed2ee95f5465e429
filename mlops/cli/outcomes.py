"""`mlops outcomes ingest`: the truth about predictions, arriving late, appended to join the inference log."""
from __future__ import annotations

import json
import os

from pipelines.defaults import CONFIG, DRIFT, absolute


def cmd_outcomes_ingest(args) -> int:
    from components import contract, dataio, outcomes
    from pipelines import defaults

    uri = args.outcomes_uri or os.environ.get("OUTCOMES_URI")
    if not uri:
        raise ValueError("no outcomes location: give --outcomes-uri or set OUTCOMES_URI")
    model_name = args.model_name or defaults.load_drift(DRIFT, args.config).model_name
    spec = contract.load(absolute(args.schema or defaults.load(args.config).schema_uri))
    frames = {path: dataio.read_table(path) for path in args.files}
    summary = outcomes.ingest(frames, uri, model_name, spec)
    if args.json:
        print(json.dumps({"model_name": model_name, "outcomes_uri": uri, "files": summary}))
        return 0
    for done in summary:
        rows = (f"{done['rows']:,} row(s) ingested into {', '.join(done['dates'])}" if done["rows"]
                else "already ingested, nothing new")
        print(f"{done['file']}: {rows}; {done['duplicates']:,} duplicate(s) skipped, "
              f"{done['conflicting']:,} conflicting")
    return 0


def add_outcomes(sub) -> None:
    """`mlops outcomes ingest`."""
    group = sub.add_parser("outcomes", help="late-arriving truth about predictions").add_subparsers(
        dest="action", required=True)
    ing = group.add_parser(
        "ingest", help="append outcomes (request_id, row, label, observed_at) to join the inference log",
        description="Reads each FILE (CSV or Parquet) with the columns request_id and the contract's label, "
                    "optionally row (default 0) and observed_at (default: now, UTC), and appends them as Parquet "
                    "under OUTCOMES_URI/model=<name>/date=<YYYY-MM-DD>/. Every file is checked before any is "
                    "written: one bad file writes nothing (exit 2). A row already stored, or whose label is already "
                    "its (request_id, row)'s latest, is skipped (re-ingesting a file adds nothing); a (request_id, "
                    "row) given another label is kept and counted as conflicting (the later observed_at counts "
                    "when joined).")
    ing.add_argument("files", metavar="FILE", nargs="+", help="Parquet/CSV path or fsspec URL")
    ing.add_argument("--outcomes-uri", help="outcomes folder or fsspec URL (default: OUTCOMES_URI)")
    ing.add_argument("--model-name", help="registered model (default: registry.model_name of --config)")
    ing.add_argument("--schema", help="feature contract giving the label column and values (default: "
                                      "data.schema_uri of --config)")
    ing.add_argument("--config", default=CONFIG, help=f"training config (default: {CONFIG})")
    ing.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ing.set_defaults(func=cmd_outcomes_ingest)
