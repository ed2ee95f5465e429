"""Evaluate a candidate model on the holdout and compare it with the baseline.

A metric that cannot be computed is None, with its reason in `Evaluation.missing`: never NaN or infinity.
"""
from __future__ import annotations

import math
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn import metrics as skm

from components import decision
from components.contract import Contract
from components.metrics import CLASSIFICATION_METRICS, METRICS, Slices, metric_text
from components.scoring import class_names, is_positive, positive_probability, score

MEMORY_ROWS = 10_000
SLICE_METRICS = ("recall", "precision", "roc_auc")


@dataclass
class Baseline:
    source: str                                  # "production v3" or the baseline metrics file
    metrics: dict[str, float]
    importances: dict[str, float] | None = None
    version: str | None = None
    production_model: bool = False               # a production model exists (even one that failed to load)
    error: str | None = None                     # why the production model could not be loaded or scored
    missing: dict[str, str] = field(default_factory=dict)  # its metrics that could not be computed, and why
    importances_error: str | None = None
    decision: dict | None = None                 # the production model's decision; None: none recorded
    note: str | None = None                      # how it was measured, when that is not its own decision

    def to_dict(self) -> dict:
        return {"source": self.source, "version": self.version, "production_model": self.production_model,
                "error": self.error, "metrics": self.metrics, "missing": self.missing, "decision": self.decision,
                "note": self.note}


@dataclass
class Evaluation:
    metrics: dict[str, float | None]
    missing: dict[str, str]                      # metric -> why it has no value
    baseline: Baseline
    class_names: list[str]                       # [negative, positive]
    confusion_matrix: list[list[int]]
    roc_curve: dict[str, list[float]] | None
    slices: list[dict] = field(default_factory=list)
    edge_cases: list[dict] = field(default_factory=list)
    decision: dict | None = None                 # the candidate's decision (decision.json); None: 0.5
    pr_curve: dict[str, list[float]] | None = None  # precision, recall, threshold (for the plot)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "missing": self.missing, "baseline": self.baseline.to_dict(),
                "class_names": self.class_names, "slices": self.slices, "edge_cases": self.edge_cases,
                "decision": self.decision}

    def to_markdown(self) -> str:
        lines = [f"## Evaluation against {self.baseline.source}", ""]
        if self.baseline.error:
            lines += [f"**Baseline error:** {self.baseline.error}", ""]
        decided = decision.summary_lines(self.to_dict())
        lines += ["Decisions on the holdout:", "", *(f"- {line}" for line in decided), ""]
        lines += ["| metric | candidate | baseline | delta | note |", "|---|---|---|---|---|"]
        for name in METRICS:
            value, base = self.metrics.get(name), self.baseline.metrics.get(name)
            delta = f"{value - base:+.4f}" if value is not None and base is not None else ""
            lines.append(f"| {name} | {metric_text(value)} | {metric_text(base)} | {delta} | "
                         f"{self.missing.get(name, '')} |")
        lines += ["", f"Positive class: `{self.class_names[1]}`; negative class: `{self.class_names[0]}`.", "",
                  "| slice | rows | positives | recall | precision | roc_auc | gated |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {s['column']}={s['value']} | {s['rows']} | {s['positives']} | {metric_text(s['recall'])} | "
                  f"{metric_text(s['precision'])} | {metric_text(s['roc_auc'])} | "
                  f"{'yes' if s['gated'] else 'no (too small)'} |"
                  for s in self.slices]
        lines += ["", "| edge case | passed | detail |", "|---|---|---|"]
        lines += [f"| {c['case']} | {c['passed']} | {c['detail']} |" for c in self.edge_cases]
        return "\n".join(lines) + "\n"

    def kfp_metrics(self) -> dict[str, float]:
        """Every finite number for KFP's Metrics: the metrics, then `slice.<column>=<value>.<metric>`."""
        out = {k: v for k, v in self.metrics.items() if v is not None}
        for s in self.slices:
            out.update({f"slice.{s['column']}={s['value']}.{m}": s[m] for m in SLICE_METRICS if s[m] is not None})
        return out


def _finite(compute) -> tuple[float | None, str | None]:
    """(value, None), or (None, why) when computing raises ValueError or gives NaN / infinity."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns, then answers NaN: the NaN is reported instead
            value = float(compute())
    except ValueError as exc:
        return None, f"not computed: {exc}"
    return (value, None) if math.isfinite(value) else (None, f"not computed: the result is {value}")


def _undefined(name: str, y: np.ndarray, proba: np.ndarray, threshold: float) -> str | None:
    """Why metric `name` is undefined on these rows (scikit-learn would answer 0 or NaN), or None."""
    if name in ("recall", "average_precision") and not y.any():
        return "not computed: no rows of the positive class"
    if name == "precision" and not (proba >= threshold).any():
        return "not computed: no row predicted positive"
    if name == "roc_auc" and (y.all() or not y.any()):
        return "not computed: needs rows of both classes"
    return None


def classification_metrics(y_true, proba, names=CLASSIFICATION_METRICS,
                           threshold: float = decision.DEFAULT_THRESHOLD) -> tuple[dict[str, float], dict[str, str]]:
    """(metric -> value, metric -> why it is missing) of 0/1 labels against the positive class's probability,
    the thresholded ones deciding positive at `threshold`."""
    y_true, proba = np.asarray(y_true), np.asarray(proba)
    values, missing = {}, {}
    for name in names:
        reason = _undefined(name, y_true, proba, threshold)
        value, reason = (None, reason) if reason else _finite(lambda: score(name, y_true, proba, threshold))
        if reason:
            missing[name] = reason
        else:
            values[name] = value
    return values, missing


def latency_p95_ms(model, frame: pd.DataFrame, contract: Contract, batch: int, repeats: int) -> float:
    """p95 wall time of predicting `batch` rows, over `repeats` calls cycling through the frame, on one
    OpenMP/BLAS thread as in each server worker (more would measure contention on a busy machine)."""
    from threadpoolctl import threadpool_limits

    times = []
    with threadpool_limits(limits=1):
        positive_probability(model, frame.head(batch), contract)  # warm-up
        for i in range(repeats):
            start = (i * batch) % max(len(frame) - batch, 1)
            rows = frame.iloc[start:start + batch]
            t0 = time.perf_counter()
            positive_probability(model, rows, contract)
            times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 95))


def memory_mb(model, frame: pd.DataFrame, contract: Contract, rows: int = MEMORY_ROWS) -> float:
    """Peak memory (MB, tracemalloc: Python and numpy allocations) added by predicting `rows` rows at once."""
    batch = frame[contract.feature_columns].sample(n=rows, replace=len(frame) < rows, random_state=0)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        positive_probability(model, batch, contract)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if started:
            tracemalloc.stop()
    return (peak - before) / 1e6


def slice_table(frame: pd.DataFrame, positive: np.ndarray, proba: np.ndarray, columns: list[str],
                slices: Slices, threshold: float = decision.DEFAULT_THRESHOLD) -> list[dict]:
    """Recall, precision and ROC AUC per value of each column (None where undefined, with the reason)."""
    table = []
    for column in columns:
        groups = frame.groupby(frame[column].astype(object), dropna=False, sort=True).indices
        for value, idx in groups.items():
            y, p = positive[idx], proba[idx]
            row = {"column": column, "value": "(missing)" if pd.isna(value) else str(value), "rows": len(idx),
                   "positives": int(y.sum()),
                   "gated": bool(len(idx) >= slices.min_rows and y.sum() >= slices.min_positives)}
            found, row["missing"] = classification_metrics(y, p, SLICE_METRICS, threshold)
            row.update({name: found.get(name) for name in SLICE_METRICS})
            table.append(row)
    return table


def max_slice_recall_gap(recall: float | None, table: list[dict], slices: Slices) -> tuple[float | None, str | None]:
    """Overall recall minus the worst gated slice's recall."""
    if recall is None:
        return None, "not computed: no overall recall"
    recalls = [s["recall"] for s in table if s["gated"] and s["recall"] is not None]
    if not recalls:
        return None, (f"not computed: no slice has at least {slices.min_rows} rows and "
                      f"{max(slices.min_positives, 1)} of the positive class")
    return recall - min(recalls), None


def importance_stability(candidate: dict[str, float], baseline: Baseline) -> tuple[float | None, str | None]:
    """Spearman rank correlation of feature importances over the features both models know."""
    if baseline.error:
        return None, baseline.error
    if not baseline.production_model:
        return None, "not applicable: no baseline"
    if baseline.importances_error:
        return None, baseline.importances_error
    if not baseline.importances:
        return None, f"production v{baseline.version} has no recorded feature importances"
    common = sorted(set(candidate) & set(baseline.importances))
    if len(common) < 3:
        return None, f"not computed: only {len(common)} feature(s) in common with production v{baseline.version}"
    return _finite(lambda: spearmanr([candidate[f] for f in common], [baseline.importances[f] for f in common])
                   .statistic)


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


def measure(model, holdout: pd.DataFrame, contract: Contract, y: np.ndarray, slice_columns: list[str],
            slices: Slices, threshold: float = decision.DEFAULT_THRESHOLD, policy: dict | None = None):
    """The shared metrics of a model (scored with its own `contract`) against the holdout's 0/1 labels `y`,
    deciding at `threshold`, its decisions costed with `policy`'s costs when it names them: (values, missing
    reasons, slice table, probabilities)."""
    proba = positive_probability(model, holdout, contract)
    values, missing = classification_metrics(y, proba, threshold=threshold)
    decided = decision.figures(proba, y, threshold, policy or {})
    values.update(threshold=float(threshold), flag_rate=decided["flag_rate"],
                  brier_score=_finite(lambda: np.mean((proba - y) ** 2))[0])
    if "expected_cost" in decided:
        values["expected_cost"] = decided["expected_cost"]
    else:
        missing["expected_cost"] = "not computed: no costs in the decision policy"
    for name in ("flag_rate", "brier_score"):
        if values[name] is None:
            del values[name]
            missing[name] = "not computed: no rows"
    values["latency_p95_ms"] = latency_p95_ms(model, holdout, contract, batch=1, repeats=200)
    values["latency_p95_ms_batch32"] = latency_p95_ms(model, holdout, contract, batch=32, repeats=50)
    values["memory_mb"] = memory_mb(model, holdout, contract)
    table = slice_table(holdout, y, proba, slice_columns, slices, threshold)
    gap, reason = max_slice_recall_gap(values.get("recall"), table, slices)
    if reason:
        missing["max_slice_recall_gap"] = reason
    else:
        values["max_slice_recall_gap"] = gap
    return values, missing, table, proba


def flag_rate_ratio(flag_rate: float | None, baseline: Baseline) -> tuple[float | None, str | None]:
    """The candidate's flag rate over production's, both on the candidate's holdout."""
    if baseline.error:
        return None, baseline.error
    if not baseline.production_model:
        return None, "not applicable: no baseline"
    base = baseline.metrics.get("flag_rate")
    if flag_rate is None or not base:
        return None, f"not computed: production flags {metric_text(base)} of the holdout"
    return flag_rate / base, None


def precision_recall(y: np.ndarray, proba: np.ndarray, points: int = 201) -> dict[str, list[float]] | None:
    """The precision-recall curve, at most `points` points, for the plot; None without both classes."""
    if y.all() or not y.any():
        return None
    precision, recall, thresholds = skm.precision_recall_curve(y, proba)
    keep = np.unique(np.linspace(0, len(thresholds) - 1, min(len(thresholds), points)).astype(int))
    return {"precision": precision[keep].tolist(), "recall": recall[keep].tolist(),
            "threshold": thresholds[keep].tolist()}


def evaluate(model, model_dir: str, holdout: pd.DataFrame, contract: Contract,
             importances: dict[str, float], baseline: Baseline, slices: Slices = Slices()) -> Evaluation:
    """The candidate measured at its own decision (its decision.json in `model_dir`; none: 0.5), beside the
    baseline."""
    chosen = decision.read(model_dir)
    threshold = decision.threshold_of(chosen)
    y = is_positive(holdout[contract.label], contract)
    measured, missing, table, proba = measure(model, holdout, contract, y, slices.resolve(contract), slices,
                                              threshold, chosen)
    values: dict[str, float | None] = {name: measured.get(name) for name in METRICS}
    values["flag_rate_ratio"], reason = flag_rate_ratio(measured.get("flag_rate"), baseline)
    if reason:
        missing["flag_rate_ratio"] = reason
    values["model_size_mb"] = directory_size_mb(model_dir)
    values["feature_importance_stability"], reason = importance_stability(importances, baseline)
    if reason:
        missing["feature_importance_stability"] = reason
    cases = edge_cases(model, holdout, contract)
    values["edge_cases_passed"] = float(all(c["passed"] for c in cases))
    roc = None
    if "roc_auc" not in missing:
        fpr, tpr, thresholds = skm.roc_curve(y, proba)
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 101)).astype(int))
        roc = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(),
               "threshold": np.clip(thresholds[keep], 0, 1).tolist()}
    return Evaluation(
        metrics=values, missing=missing, baseline=baseline, class_names=class_names(model.classes_, contract),
        confusion_matrix=skm.confusion_matrix(y, (proba >= threshold).astype(int), labels=[0, 1]).tolist(),
        roc_curve=roc, slices=table, edge_cases=cases, decision=chosen, pr_curve=precision_recall(y, proba),
    )


def choose_baseline(load_champion, holdout: pd.DataFrame, contract: Contract, fallback: dict[str, float],
                    slices: Slices = Slices(), policy: dict | None = None) -> Baseline:
    """The production model (from `load_champion()`, None when there is none) measured on the candidate's
    holdout, like for like, with its own contract, at its own threshold (0.5 without a decision.json), its
    decisions costed with the candidate's `policy`; the baseline metrics file when there is no production
    model or it needs columns the data lacks. A production model that fails to load or score is an error,
    never "no baseline"."""
    columns = slices.resolve(contract)
    try:
        champion = load_champion()
    except Exception as exc:  # whatever stops the production model from loading fails the gates that need it
        return Baseline(source="production model (failed to load)", metrics={}, production_model=True,
                        error=f"the production model could not be loaded: {type(exc).__name__}: {exc}")
    if champion is None:
        return Baseline(source="baseline metrics (no production model yet)", metrics=fallback)
    known = {"version": champion.version, "production_model": True, "importances": champion.importances,
             "importances_error": champion.importances_error, "decision": champion.decision,
             "note": None if champion.decision else (f"production v{champion.version} has no decision.json: "
                                                     f"measured at {decision.DEFAULT_THRESHOLD}")}
    missing = [c for c in champion.contract.feature_columns if c not in holdout.columns]
    if missing:
        return Baseline(source=f"baseline metrics (production v{champion.version} needs columns {missing})",
                        metrics=fallback, **known)
    try:
        scores, reasons, *_ = measure(champion.model, holdout, champion.contract,
                                      is_positive(holdout[contract.label], contract), columns, slices,
                                      decision.threshold_of(champion.decision), policy)
    except Exception as exc:  # as above: an error, recorded, that fails the gates needing the baseline
        return Baseline(source=f"production v{champion.version} (failed to score)", metrics={}, **known,
                        error=f"production v{champion.version} could not be scored on the holdout: "
                              f"{type(exc).__name__}: {exc}")
    return Baseline(source=f"production v{champion.version}", metrics=scores, missing=reasons, **known)
