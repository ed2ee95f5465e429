"""The `mlops` command: the top-level parser assembling every command group's sub-parsers, and `main`."""
from __future__ import annotations

import argparse
import sys

from components.contract import ContractError
from components.dataio import DataError
from mlops.cli import data, dataset, demo, kfp, models, outcomes, run
from pipelines.defaults import ConfigError
from serving.config import SettingsError

USER_ERRORS = (ConfigError, ContractError, DataError, SettingsError, ValueError, OSError)

DESCRIPTION = """\
Run the tabular-model production loop: train and gate, deploy, serve, check
drift and live performance, retrain, on this machine (kfp.local, MLflow on SQLite under .mlops)
or against Kubeflow Pipelines.

  pipelines here:  run training, run drift-check
  models:          deploy, serve, model pull
  data:            data generate, data validate, schema infer, init
  outcomes:        outcomes ingest (the truth about predictions, arriving late),
                   dataset from-log (served rows with their outcomes, to train on)
  on Kubeflow:     upload, submit training, schedule
  all at once:     demo (the whole loop on this machine)"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    # in the order `mlops --help` lists them
    run.add_run(sub)
    models.add_deploy(sub)
    data.add_data(sub)
    data.add_schema(sub)
    data.add_init(sub)
    outcomes.add_outcomes(sub)
    dataset.add_dataset(sub)
    models.add_serve(sub)
    models.add_model(sub)
    demo.add_demo(sub)
    kfp.add_schedule(sub)
    kfp.add_upload(sub)
    kfp.add_submit(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"mlops: error: {exc}", file=sys.stderr)
        return 2
