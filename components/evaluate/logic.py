"""Evaluate a candidate model on the holdout and compare it with the baseline."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn import metrics as skm

from components.contract import Contract
from components.scoring import is_positive, positive_probability

THRESHOLD = 0.5
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")
METRICS = CLASSIFICATION_METRICS + ("latency_p95_ms_single", "latency_p95_ms_batch32", "model_size_mb",
                                    "importance_stability", "edge_cases_passed")


@dataclass
class Baseline:
    source: str                                  # "production v3" or the baseline metrics file
    metrics: dict[str, float]
    importances: dict[str, float] | None = None
    version: str | None = None


@dataclass
class Evaluation:
    metrics: dict[str, float | None]
    baseline: Baseline
    confusion_matrix: list[list[int]]
    roc_curve: dict[str, list[float]]
    edge_cases: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics,
                "baseline": {"source": self.baseline.source, "version": self.baseline.version,
                             "metrics": self.baseline.metrics},
                "edge_cases": self.edge_cases}

    def to_markdown(self) -> str:
        lines = [f"## Evaluation against {self.baseline.source}", "",
                 "| metric | candidate | baseline | delta |", "|---|---|---|---|"]
        for name in METRICS:
            value, base = self.metrics.get(name), self.baseline.metrics.get(name)
            delta = f"{value - base:+.4f}" if value is not None and base is not None else ""
            lines.append(f"| {name} | {_fmt(value)} | {_fmt(base)} | {delta} |")
        lines += ["", "| edge case | passed | detail |", "|---|---|---|"]
        lines += [f"| {c['case']} | {c['passed']} | {c['detail']} |" for c in self.edge_cases]
        return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def classification_metrics(y_true, proba) -> dict[str, float]:
    pred = (proba >= THRESHOLD).astype(int)
    return {
        "accuracy": skm.accuracy_score(y_true, pred),
        "precision": skm.precision_score(y_true, pred, zero_division=0),
        "recall": skm.recall_score(y_true, pred, zero_division=0),
        "f1": skm.f1_score(y_true, pred, zero_division=0),
        "roc_auc": skm.roc_auc_score(y_true, proba),
        "average_precision": skm.average_precision_score(y_true, proba),
    }


def latency_p95_ms(model, frame: pd.DataFrame, contract: Contract, batch: int, repeats: int) -> float:
    """p95 wall time of predicting `batch` rows, over `repeats` calls cycling through the frame."""
    positive_probability(model, frame.head(batch), contract)  # warm-up
    times = []
    for i in range(repeats):
        start = (i * batch) % max(len(frame) - batch, 1)
        rows = frame.iloc[start:start + batch]
        t0 = time.perf_counter()
        positive_probability(model, rows, contract)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 95))


def importance_stability(candidate: dict[str, float], baseline: dict[str, float] | None) -> float | None:
    """Spearman rank correlation of feature importances over the features both models know."""
    if not baseline:
        return None
    common = sorted(set(candidate) & set(baseline))
    if len(common) < 3:
        return None
    rho = spearmanr([candidate[f] for f in common], [baseline[f] for f in common]).statistic
    return float(rho) if np.isfinite(rho) else None


def edge_cases(model, frame: pd.DataFrame, contract: Contract) -> list[dict]:
    """Inputs a served model will meet: none must crash or give a probability outside [0, 1]."""
    sample = frame[contract.feature_columns].head(20).copy()
    cases = {"empty frame": sample.iloc[0:0]}
    extreme = sample.copy()
    for col in contract.numeric:
        lo, _, hi, _ = contract.bounds(col)
        extreme[col] = np.where(np.arange(len(extreme)) % 2, hi if hi is not None else 1e12,
                                lo if lo is not None else -1e12)
    cases["extreme values"] = extreme
    optional = [c for c in contract.feature_columns if contract.nullable(c)]
    missing = sample.copy()
    for col in optional:
        missing[col] = None if col in contract.categorical else np.nan
    cases[f"missing optional values ({', '.join(optional) or 'none'})"] = missing
    unseen = sample.copy()
    for col in contract.categorical:
        unseen[col] = "__unseen__"
    cases["unseen categories"] = unseen

    results = []
    for name, rows in cases.items():
        try:
            proba = positive_probability(model, rows, contract)
            ok = len(proba) == len(rows) and bool(np.all((proba >= 0) & (proba <= 1)))
            detail = f"{len(proba)} predictions" if ok else f"bad output {proba[:3]}"
        except Exception as exc:  # any crash is the finding
            ok, detail = False, f"{type(exc).__name__}: {exc}"[:200]
        results.append({"case": name, "passed": ok, "detail": detail})
    return results


def directory_size_mb(path: str) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


def evaluate(model, model_dir: str, holdout: pd.DataFrame, contract: Contract,
             importances: dict[str, float], baseline: Baseline) -> Evaluation:
    y = is_positive(holdout[contract.label], contract)
    proba = positive_probability(model, holdout, contract)
    values: dict[str, float | None] = {k: float(v) for k, v in classification_metrics(y, proba).items()}
    values["latency_p95_ms_single"] = latency_p95_ms(model, holdout, contract, batch=1, repeats=200)
    values["latency_p95_ms_batch32"] = latency_p95_ms(model, holdout, contract, batch=32, repeats=50)
    values["model_size_mb"] = directory_size_mb(model_dir)
    values["importance_stability"] = importance_stability(importances, baseline.importances)
    cases = edge_cases(model, holdout, contract)
    values["edge_cases_passed"] = float(all(c["passed"] for c in cases))
    fpr, tpr, thresholds = skm.roc_curve(y, proba)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 101)).astype(int))
    return Evaluation(
        metrics=values,
        baseline=baseline,
        confusion_matrix=skm.confusion_matrix(y, (proba >= THRESHOLD).astype(int), labels=[0, 1]).tolist(),
        roc_curve={"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(),
                   "threshold": np.clip(thresholds[keep], 0, 1).tolist()},
        edge_cases=cases,
    )


def choose_baseline(champion, holdout: pd.DataFrame, label: str, fallback: dict[str, float]) -> Baseline:
    """The production model scored on the candidate's holdout (like for like), with its own contract;
    the baseline metrics file when there is no production model or it needs columns the data lacks."""
    if champion is None:
        return Baseline(source="baseline metrics (no production model yet)", metrics=fallback)
    missing = [c for c in champion.contract.feature_columns if c not in holdout.columns]
    if missing:
        return Baseline(source=f"baseline metrics (production v{champion.version} needs columns {missing})",
                        metrics=fallback)
    y = is_positive(holdout[label], champion.contract)
    scores = classification_metrics(y, positive_probability(champion.model, holdout, champion.contract))
    return Baseline(source=f"production v{champion.version}", version=champion.version,
                    metrics={k: float(v) for k, v in scores.items()}, importances=champion.importances)
