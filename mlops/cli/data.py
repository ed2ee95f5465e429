"""`mlops data`, `mlops schema` and `mlops init`: tables generated and checked against a feature contract, a
contract inferred, a new table's starting set (contract, gates, baseline)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def cmd_data_generate(args) -> int:
    from components import dataio
    from mlops import datagen

    if not 0 <= args.concept_drift <= 1:
        raise ValueError(f"--concept-drift must be between 0 and 1, got {args.concept_drift}")
    df = datagen.generate(args.rows, args.seed, args.drift, args.concept_drift)
    dataio.write_table(df, args.out)
    print(f"wrote {len(df):,} rows ({df[datagen.LABEL].mean():.2%} fraud"
          f"{f', drift {args.drift} on {list(datagen.DRIFTED_FEATURES)}' if args.drift else ''}"
          f"{f', concept drift {args.concept_drift} (the label only)' if args.concept_drift else ''}) to {args.out}")
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
                         positive_class=args.positive_class, strict=args.strict_from_sample)
    contract.parse(doc, source=args.out)  # what we write must load
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    kinds = ", ".join(f"{c}={k}" for c, k in doc["features"].items())
    checks = ("ranges, non-nullability and categorical values from the sample" if args.strict_from_sample else
              "types, kinds and signs (values beyond the sample are accepted; --strict-from-sample or editing the "
              "checks tightens it)")
    print(f"wrote {args.out}: label {args.label!r} (positive class {doc['positive_class']!r}), features {kinds}; "
          f"checks: {checks}.")
    return 0


def cmd_init(args) -> int:
    from components import dataio
    from mlops import starter

    out = Path(args.out)
    starter.check_out(out, args.force)
    df = dataio.read_table(args.data)
    doc, gates, baseline = starter.starting_set(df, args.label, args.positive_class, args.name or Path(args.data).stem)
    kinds = [f"{n} {k}" for k in ("numeric", "categorical", "boolean")
             if (n := sum(v == k for v in doc["features"].values()))]
    slices = gates["slices"]["columns"]
    notes = {
        starter.SCHEMA: f"label {args.label!r} (positive class {doc['positive_class']!r}), {', '.join(kinds)} "
                        "feature(s); checks: types, kinds and signs (tighten with `mlops schema infer "
                        "--strict-from-sample` or by editing the checks)",
        starter.GATES: f"{', '.join(gates['metrics'])}; "
                       + (f"slices over {slices}" if slices else "no slices (no categorical or boolean features)"),
        starter.BASELINE: ", ".join(f"{k} {v:.4f}" for k, v in baseline.items())
                          + f" (logistic regression, {starter.FOLDS}-fold out-of-fold, {len(df):,} rows)",
    }
    paths = starter.write_all(out, starter.texts(doc, gates, baseline, len(df)))
    for path, note in zip(paths, notes.values()):
        print(f"wrote {path}: {note}")
    schema, gates_file, baseline_file = paths
    print(f"next: mlops run training --data {args.data} --schema {schema} --gates {gates_file} "
          f"--baseline {baseline_file}")
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
    gen.add_argument("--concept-drift", type=float, default=0.0, metavar="X",
                     help="changes which transactions are fraud, not what the transactions look like: the inputs "
                          "do not drift, the model's live recall drops (0 = today's fraud pattern, 1 = the new "
                          "one: small amounts near the card's average, trusted devices, daytime, low-risk "
                          "categories, card-present)")
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
    inf.add_argument("--strict-from-sample", action="store_true",
                     help="also take each column's range, non-nullability and categorical values from the sample "
                          "(refusing any value beyond it); default: types, kinds and signs only")
    inf.set_defaults(func=cmd_schema_infer)


def add_init(sub) -> None:
    """`mlops init`."""
    init = sub.add_parser("init", help="a new table's contract, quality gates and baseline in one folder",
                          description="Writes schema.json (as `schema infer` does), quality_gates.yaml and "
                                      "baseline_metrics.yaml (a cross-validated logistic regression on the table) "
                                      "into --out, then prints the training command that uses them.")
    init.add_argument("--data", required=True, help="Parquet/CSV path or fsspec URL")
    init.add_argument("--label", required=True, help="the binary label column")
    init.add_argument("--positive-class", required=True, metavar="VALUE", help="label value of the positive class")
    init.add_argument("--out", required=True, metavar="DIR", help="folder to write the three files into")
    init.add_argument("--name", help="contract name (default: the data file's stem)")
    init.add_argument("--force", action="store_true", help="overwrite the three files in a non-empty --out")
    init.set_defaults(func=cmd_init)
