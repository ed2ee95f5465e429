"""A new table's starting set (`mlops init`): its contract, a baseline measured on it with a reference model, and
quality gates relative to that baseline; written together or not at all."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from components import contract
from components.contract import Contract
from components.deploy.online import online_of
from components.gates import check_gates
from components.scoring import SCORES, is_positive

SCHEMA, GATES, BASELINE = "schema.json", "quality_gates.yaml", "baseline_metrics.yaml"
FOLDS = 5
BASELINE_METRICS = ("roc_auc", "average_precision")
MIN_ROWS, MIN_POSITIVES = 100, 20  # the slice minimums of record: smaller slices are reported, not gated
# the guide's canary analysis, as in configs/quality_gates.yaml
ONLINE = {"max_latency_p95_seconds": 0.1, "max_error_rate": 0.01, "max_client_error_rate_increase": 0.02,
          "max_shed_rate_increase": 0.02}


def reference_model(spec: Contract):
    """Logistic regression on standardized numeric features (median-imputed) and one-hot discrete ones."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = [("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), spec.numeric),
             ("discrete", OneHotEncoder(handle_unknown="ignore"), spec.categorical + spec.boolean)]
    return make_pipeline(ColumnTransformer([p for p in parts if p[2]]), LogisticRegression(max_iter=1000))


def folds(seed: int = 0):
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(FOLDS, shuffle=True, random_state=seed)


@dataclass(frozen=True)
class Measured:
    """The reference model on the table, over folds of a fifth of it each (the holdout's share at the test_size
    of record, 0.2)."""
    baseline: dict[str, float]   # metric -> its value on the out-of-fold probabilities of the positive class
    spread: dict[str, float]     # metric -> the standard deviation of its per-fold values
    positive_rate: float
    sliced: bool                 # some value of a slice column reaches the slice minimums in every fold


def measure(df: pd.DataFrame, spec: Contract, seed: int = 0) -> Measured:
    """The reference model's out-of-fold scores, their spread, and whether the table is large enough to slice."""
    from sklearn.model_selection import cross_val_predict

    y = is_positive(df[spec.label], spec)
    counts = np.bincount(y, minlength=2)
    if counts.min() < FOLDS:
        raise ValueError(f"the baseline's {FOLDS} stratified folds need at least {FOLDS} rows of each class; "
                         f"label {spec.label!r} has {counts[1]} positive and {counts[0]} negative")
    x = df[spec.feature_columns]
    proba = cross_val_predict(reference_model(spec), x, y, cv=folds(seed), method="predict_proba")[:, 1]
    tests = [test for _, test in folds(seed).split(x, y)]
    baseline = {name: round(float(SCORES[name][0](y, proba)), 4) for name in BASELINE_METRICS}
    spread = {name: float(np.std([SCORES[name][0](y[t], proba[t]) for t in tests])) for name in BASELINE_METRICS}
    return Measured(baseline, spread, float(y.mean()), _sliced(df, spec, y, tests))


def _sliced(df: pd.DataFrame, spec: Contract, y: np.ndarray, tests: list[np.ndarray]) -> bool:
    """Whether some value of a slice column has the slice minimums of rows and positives in every fold."""
    for column in spec.categorical + spec.boolean:
        values = df[column].astype(object).where(df[column].notna(), "(missing)").to_numpy()
        common = None
        for test in tests:
            counts = pd.Series(y[test]).groupby(values[test]).agg(["size", "sum"])
            large = set(counts.index[(counts["size"] >= MIN_ROWS) & (counts["sum"] >= MIN_POSITIVES)])
            common = large if common is None else common & large
        if common:
            return True
    return False


def _down(value: float) -> float:
    return math.floor(value * 100) / 100


def starter_gates(spec: Contract, measured: Measured) -> dict:
    """Gates any decent model of the table meets: at least the baseline less twice its fold-to-fold spread
    (0.02 at least), an absolute floor halfway between chance and the baseline, the serving gates of record,
    and the slice recall gap only where a holdout will have a slice large enough to gate."""
    chance = {"roc_auc": 0.5, "average_precision": measured.positive_rate}
    metrics = {name: {"minimum": _down((chance[name] + value) / 2), "comparison": "gte",
                      "tolerance": max(0.02, math.ceil(200 * measured.spread[name]) / 100)}
               for name, value in measured.baseline.items()}
    metrics.update({"latency_p95_ms": {"maximum": 50, "comparison": "lte"}, "model_size_mb": {"maximum": 500},
                    "edge_cases_passed": {"minimum": 1}})
    if measured.sliced:
        metrics["max_slice_recall_gap"] = {"maximum": 0.25}
    slices = {"columns": spec.categorical + spec.boolean, "min_rows": MIN_ROWS, "min_positives": MIN_POSITIVES}
    return {"metrics": metrics, "slices": slices, "online": dict(ONLINE)}


def starting_set(df: pd.DataFrame, label: str, positive_class, name: str) -> tuple[dict, dict, dict]:
    """(schema document, gates document, baseline metrics) for the table; each checked as its reader checks it."""
    doc = contract.infer(df, label, name=name, positive_class=positive_class)
    spec = contract.parse(doc, source=SCHEMA)
    measured = measure(df, spec)
    gates = starter_gates(spec, measured)
    check_gates(gates, GATES).slices.resolve(spec)
    online_of(gates, GATES)
    return doc, gates, measured.baseline


def check_out(out: Path, force: bool) -> None:
    """Refuse a file, or a non-empty folder without `force`, before anything is computed."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out}: folder is not empty; give --force to overwrite its {SCHEMA}, {GATES} "
                              f"and {BASELINE}")


def texts(doc: dict, gates: dict, baseline: dict, rows: int) -> dict[str, str]:
    """The three files' contents."""
    header = (f"# Measured by `mlops init` on {rows:,} rows: out-of-fold probabilities of a logistic regression "
              f"(standardized numeric,\n# one-hot categorical features), {FOLDS} stratified folds. The baseline a "
              "first model is compared against.\n")
    gates_header = ("# Starter gates from `mlops init`, in the format of configs/quality_gates.yaml: at least the "
                    "baseline less\n# `tolerance` (twice its fold-to-fold spread), above floors halfway between "
                    "chance and the baseline.\n")
    return {SCHEMA: json.dumps(doc, indent=2) + "\n",
            GATES: gates_header + yaml.safe_dump(gates, sort_keys=False),
            BASELINE: header + yaml.safe_dump(baseline, sort_keys=False)}


def write_all(out: Path, files: dict[str, str]) -> list[Path]:
    """Write each file name -> text into `out`: all to temporary files first, then renamed into place."""
    out.mkdir(parents=True, exist_ok=True)
    staged = [(out / f".{name}.tmp", out / name, text) for name, text in files.items()]
    try:
        for tmp, _, text in staged:
            tmp.write_text(text)
        for tmp, path, _ in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _, _ in staged:
            tmp.unlink(missing_ok=True)
    return [path for _, path, _ in staged]
