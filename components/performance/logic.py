"""Live performance of each model version: the predictions it made in a window joined with their outcomes, measured
at the version's own threshold and costs; the production version judged by the live gates (the gates file's
`live:` section, components.gates); the gauges it pushes; and the monitoring verdict with the drift check's.

The window holds the predictions made between `label_maturity_days + window_days` and `label_maturity_days`
before the check's time. Thresholded metrics count the labelled rows; `flag_rate` counts every logged row of
the window; `roc_auc` and `average_precision` are scikit-learn's on the logged probabilities.
"""
from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from components import decision, outcomes
from components.gates import LIVE_METRICS, judge
from components.performance.join import DAY_MS, Joined, JoinError, join

GROUPING_KEY = {"step": "live-performance"}  # its Pushgateway group, beside the drift check's job=<model>
# Why a metric has no value when the truth is what is short: no verdict on it, the check waits for outcomes.
NO_ROWS, NO_POSITIVES = "no labelled rows", "no labelled row of the positive class"
ONE_CLASS = "only one class labelled"


class PerformanceError(ValueError):
    """The check cannot run: no production version, an unreadable log or registry."""


def measure(positive, probability, threshold: float, costs: tuple[float, float] | None) -> tuple[dict, dict]:
    """(metrics, missing: metric -> why) of labelled rows decided positive at probability >= threshold.
    precision, recall and f1 are counted as scikit-learn counts them (a property test compares them);
    flag_rate here is the labelled rows' (the caller replaces it with the logged rows')."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    positive = np.asarray(positive, dtype=bool)
    probability = np.asarray(probability, dtype="float64")
    flagged = probability >= threshold
    n = len(positive)
    tp = int(np.count_nonzero(flagged & positive))
    fp, fn = int(np.count_nonzero(flagged)) - tp, int(np.count_nonzero(positive)) - tp
    metrics, missing = dict.fromkeys(LIVE_METRICS), {}
    if not n:
        return metrics, dict.fromkeys(LIVE_METRICS, NO_ROWS)
    metrics["flag_rate"] = (tp + fp) / n
    if tp + fp:
        metrics["precision"] = tp / (tp + fp)
    else:
        missing["precision"] = "no labelled row decided positive"
    if tp + fn:
        metrics["recall"] = tp / (tp + fn)
    else:
        missing["recall"] = NO_POSITIVES
    if tp + fp + fn:
        metrics["f1"] = 2 * tp / (2 * tp + fp + fn)  # scikit-learn's: 0 when nothing right, defined
    else:
        missing["f1"] = "no labelled row of the positive class, and none decided positive"
    if costs:
        metrics["expected_cost"] = (costs[0] * fn + costs[1] * fp) / n
    else:
        missing["expected_cost"] = "the version has no costs (its decision names none)"
    if 0 < tp + fn < n:
        metrics["roc_auc"] = float(roc_auc_score(positive, probability))
        metrics["average_precision"] = float(average_precision_score(positive, probability))
    else:
        why = f"{ONE_CLASS} ({tp + fn} of {n} rows positive)"
        missing.update(roc_auc=why, average_precision=why)
    return metrics, missing


class Versions:
    """What each version is measured with, read once from the registry: threshold, costs, registered metrics
    (its metric.* tags) and the positive share of the data its threshold was chosen on."""

    def __init__(self, client, tracking_uri: str, model_name: str):
        self.client, self.tracking_uri, self.model_name, self.seen = client, tracking_uri, model_name, {}

    def __call__(self, version: str) -> dict:
        if version not in self.seen:
            self.seen[version] = self._read(version)
        return self.seen[version]

    def threshold(self, version: str) -> float | None:
        return self(version)["threshold"]

    def _read(self, version: str) -> dict:
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(self.model_name, version)
            sha = mv.tags.get(decision.TAG)
            chosen = None
            if sha:
                with tempfile.TemporaryDirectory() as tmp:
                    path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, dst_path=tmp,
                                                               artifact_path=f"model/{decision.FILE}",
                                                               tracking_uri=self.tracking_uri)
                    chosen = decision.read(Path(path).parent, sha, registered=True)
        except (MlflowException, OSError, ValueError) as exc:
            return {"threshold": None, "costs": None, "registered": {}, "training_prevalence": None,
                    "error": f"version {version} of {self.model_name!r}: {type(exc).__name__}: {exc}"}
        validation = (chosen or {}).get("validation") or {}
        return {"threshold": decision.threshold_of(chosen), "costs": decision.costs(chosen or {}),
                "registered": {k.removeprefix("metric."): float(v) for k, v in mv.tags.items()
                               if k.startswith("metric.") and k.removeprefix("metric.") in LIVE_METRICS},
                "training_prevalence": validation["positives"] / validation["rows"] if validation.get("rows") else None,
                "error": None}


def window(now: datetime, live: dict) -> tuple[datetime, datetime]:
    """(start, stop) of the predictions a check at `now` measures."""
    stop = now - timedelta(days=live["label_maturity_days"])
    return stop - timedelta(days=live["window_days"]), stop


def _group(positive, probability, version: dict, logged: int, flagged: int) -> dict:
    """The figures of a group of rows: logged, labelled, metrics (flag_rate of the logged rows) and missing."""
    metrics, missing = measure(positive, probability, version["threshold"], version["costs"])
    metrics["flag_rate"] = flagged / logged if logged else None
    if logged:
        missing.pop("flag_rate", None)
    else:
        missing["flag_rate"] = "no logged rows"
    return {"logged": logged, "labelled": int(len(positive)), "metrics": metrics, "missing": missing}


def per_version(found: Joined, versions: Versions, positive_class) -> dict:
    """Each version's figures: all its rows, those it flagged, those it let through; labelled rows per day."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = [t for t in (found.labelled, found.implicit) if t is not None]
    names = sorted({v for v, _ in found.logged} | {v for t in parts for v in pc.unique(t["model_version"]).to_pylist()},
                   key=lambda v: (len(v), v))
    out = {}
    for name in names:
        info = versions(name)
        logged = sum(n for (v, _), n in found.logged.items() if v == name)
        chosen = [t.filter(pc.equal(t["model_version"], name)) for t in parts]
        probability = np.concatenate([t["probability"].to_numpy(zero_copy_only=False) for t in chosen] or [[]])
        positive = np.concatenate([_positive(t, positive_class) for t in chosen] or [np.zeros(0, bool)])
        days = np.concatenate([t["timestamp"].cast(pa.timestamp("ms", "UTC")).cast(pa.int64()).to_numpy() // DAY_MS
                               for t in chosen] or [np.zeros(0, np.int64)])
        entry = {"threshold": info["threshold"], "costs": info["costs"], "error": info["error"],
                 "registered": info["registered"], "training_prevalence": info["training_prevalence"],
                 "implicit_negatives": int(found.implicit.filter(pc.equal(found.implicit["model_version"], name))
                                           .num_rows) if found.implicit is not None else 0}
        if info["threshold"] is None:
            out[name] = {**entry, **_unmeasured(info["error"]), "logged": logged, "labelled": len(positive)}
            continue
        flagged, flags = probability >= info["threshold"], found.flagged.get(name, 0)
        entry.update(_group(positive, probability, info, logged, flags))
        entry["coverage"] = entry["labelled"] / logged if logged else None
        entry["prevalence"] = float(positive.mean()) if len(positive) else None
        entry["positives"] = int(positive.sum())
        entry["flagged"] = _group(positive[flagged], probability[flagged], info, flags, flags)
        entry["let_through"] = _group(positive[~flagged], probability[~flagged], info, logged - flags, 0)
        entry["labelled_by_day"] = _by_day(found, name, days)
        out[name] = entry
    return out


def _unmeasured(why: str) -> dict:
    """The figures of a version that cannot be measured (`why`)."""
    return {"metrics": dict.fromkeys(LIVE_METRICS), "missing": dict.fromkeys(LIVE_METRICS, why), "positives": 0}


def _positive(table, positive_class) -> np.ndarray:
    """Per joined row: its label is the positive class; implicit negatives (no label column) never are."""
    import pyarrow.compute as pc

    if "_label" not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    return pc.fill_null(pc.equal(table["_label"], positive_class), False).to_numpy(zero_copy_only=False)


def _by_day(found: Joined, name: str, days: np.ndarray) -> list[dict]:
    labelled = dict(zip(*np.unique(days, return_counts=True))) if len(days) else {}
    logged = {d: n for (v, d), n in found.logged.items() if v == name}
    return [{"date": datetime.fromtimestamp(int(d) * 86400, timezone.utc).strftime("%Y-%m-%d"),
             "logged": int(logged.get(d, 0)), "labelled": int(labelled.get(d, 0))}
            for d in sorted(set(logged) | set(labelled))]


def verdict(entry: dict | None, live: dict) -> tuple[str, str, list[dict]]:
    """(decision, reason, gate rows) for the production version's figures."""
    labelled = entry.get("labelled", 0) if entry else 0
    positives = entry.get("positives", 0) if entry else 0
    if entry and entry.get("error"):
        return "insufficient_labels", f"cannot measure: {entry['error']}", []
    short = [f"{have} of {need} {what}" for have, need, what in
             ((labelled, live["min_labelled"], "labelled rows"),
              (positives, live["min_labelled_positives"], "positives")) if have < need]
    if short:
        return "insufficient_labels", "waiting for outcomes: " + ", ".join(short), []
    metrics, missing = entry["metrics"], entry["missing"]
    short = [m for m in live["metrics"] if metrics.get(m) is None
             and missing.get(m, "").startswith((NO_ROWS, NO_POSITIVES, ONE_CLASS))]
    if short:  # never a verdict on a metric the labels cannot give yet (a ranking with one class, ...)
        return "insufficient_labels", f"waiting for outcomes: {short[0]}: {missing[short[0]]}", []
    rows = judge(live["metrics"], metrics, missing, {"metrics": entry["registered"],
                                                     "production_model": True})
    failed = [r for r in rows if r["verdict"] == "fail"]
    if failed:
        return "performance_degraded", "; ".join(f"live {r['metric']} {_text(r['value'])}: {r['reason']}"
                                                 for r in failed), rows
    return "ok", f"{len(rows)} live gate(s) passed on {labelled} labelled rows ({positives} positives)", rows


def _text(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def check(log_uri: str, outcomes_uri: str, tracking_uri: str, model_name: str, live: dict,
          now: datetime | None = None, registry_uri: str = "", pushgateway_url: str | None = None) -> dict:
    """The live performance of every version that served in the window, and the production version's verdict."""
    from components import contract, registry

    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    client = registry.client(tracking_uri, registry_uri)
    production = registry.version_by_alias(client, model_name, "production")
    if production is None:
        raise PerformanceError(f"model {model_name!r} has no production version at "
                               f"{registry.resolve_registry_uri(tracking_uri, registry_uri)}: nothing to measure")
    spec = _contract(contract, production, tracking_uri)
    start, stop = window(now, live)
    truth, conflicting = outcomes.latest(outcomes_uri, model_name, spec.label, since=start)
    versions = Versions(client, tracking_uri, model_name)
    try:
        found = join(log_uri, model_name, truth, spec.label, start, stop, now, versions.threshold,
                     live.get("implicit_negative_after_days"))
    except JoinError as exc:
        raise PerformanceError(str(exc)) from exc
    figures = per_version(found, versions, spec.positive_class)
    name = str(production.version)
    entry = figures.get(name) or {**versions(name), **_unmeasured(f"version {name} logged no rows in the window"),
                                  "logged": 0, "labelled": 0}
    decided, reason, gates = verdict(entry, live)
    result = {"decision": decided, "reason": reason, "model_name": model_name, "model_version": name,
              "window": {"start": start.isoformat(), "end": stop.isoformat(), "checked_at": now.isoformat()},
              "label": spec.label, "positive_class": spec.positive_class,
              **{k: v for k, v in entry.items() if k not in ("costs",)},
              "orphan_outcomes": int(truth.num_rows - found.matched.sum()), "conflicting": conflicting,
              "outcomes": truth.num_rows, "gates": gates, "skipped_files": found.skipped,
              "versions": {v: {k: x for k, x in e.items() if k != "costs"} for v, e in figures.items()}}
    result["pushgateway"] = push(pushgateway_url, result) if pushgateway_url else None
    return result


def _contract(contract, production, tracking_uri: str):
    """The production version's feature contract (its label and positive class), as registered."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=production.run_id,
                                                   artifact_path=f"model/{contract.MODEL_FILE}",
                                                   dst_path=tmp, tracking_uri=tracking_uri)
        return contract.load(path)


def combine(drift: dict, performance: dict | None) -> dict:
    """The monitoring run's result: the drift check's, and with outcomes its `performance`, `reasons` ("drift",
    "performance") and `decision` "retrain" when either says so (else the drift check's decision)."""
    if performance is None:
        return drift
    reasons = [why for why, due in (("drift", drift["decision"] == "retrain"),
                                    ("performance", performance["decision"] == "performance_degraded")) if due]
    return {**drift, "decision": "retrain" if reasons else drift["decision"], "drift_decision": drift["decision"],
            "reasons": reasons, "performance": performance}


def gauges(result: dict):
    """`model_live_metric{model, model_version, metric}`, `model_live_labelled_rows{model, model_version}` per
    version, and `model_live_performance_degraded{model, model_version}` (1: the production version failed a
    live gate on enough truth) in a registry of their own."""
    from prometheus_client import CollectorRegistry, Gauge

    registry, model = CollectorRegistry(), result["model_name"]
    metric = Gauge("model_live_metric", "A model version's live metric on predictions joined with outcomes",
                   ["model", "model_version", "metric"], registry=registry)
    rows = Gauge("model_live_labelled_rows", "Predictions of the window joined with an outcome",
                 ["model", "model_version"], registry=registry)
    for version, entry in result["versions"].items():
        rows.labels(model, version).set(entry.get("labelled", 0))
        for name, value in (entry.get("metrics") or {}).items():
            if value is not None:
                metric.labels(model, version, name).set(value)
    Gauge("model_live_performance_degraded", "1 when the production version failed a live gate on enough truth",
          ["model", "model_version"], registry=registry).labels(model, result["model_version"]).set(
        1 if result["decision"] == "performance_degraded" else 0)
    return registry


def push(url: str, result: dict, timeout: float = 10.0) -> dict:
    """Push `gauges` under job=<model>, GROUPING_KEY, replacing that group; a failure is logged and returned."""
    from components import pushgateway

    return pushgateway.push(url, result["model_name"], gauges(result), GROUPING_KEY, timeout=timeout)
