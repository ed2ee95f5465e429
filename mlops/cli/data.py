"""`mlops data` and `mlops schema`: tables generated and checked against a feature contract, a contract inferred."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def cmd_data_generate(args) -> int:
    from components import dataio
    from mlops import datagen

    df = datagen.generate(args.rows, args.seed, args.drift)
    dataio.write_table(df, args.out)
    print(f"wrote {len(df):,} rows ({df[datagen.LABEL].mean():.2%} fraud"
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


def add_data(sub) -> None:
    """`mlops data generate` and `mlops data validate`."""
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


def add_schema(sub) -> None:
    """`mlops schema infer`."""
    schema = sub.add_parser("schema", help="feature contracts").add_subparsers(dest="action", required=True)
    inf = schema.add_parser("infer", help="write a starter schema for a new table")
    inf.add_argument("--data", required=True)
    inf.add_argument("--label", required=True)
    inf.add_argument("--out", required=True)
    inf.add_argument("--name", help="contract name (default: the data file's stem)")
    inf.add_argument("--positive-class", metavar="VALUE",
                     help="label value of the positive class (default: 1 of 0/1, True of False/True)")
    inf.set_defaults(func=cmd_schema_infer)
