"""Drift of the production model's inputs: its inference log scored against the reference profile of its
training split.

The profile (`reference_profile.json`, written by train_model, stored with the version by register_model) holds
per numeric feature the inner quantile bin edges and the share of rows per bin, per categorical or boolean
feature the share of each value; both with the share of nulls, which is a bin of its own. The check reads the
log's hour partitions of the window once, in columns, keeps the production version's rows, bins them with
`searchsorted` / `index_in` and `bincount`, and scores each feature with PSI (plus, for numeric features, the
Kolmogorov-Smirnov distance on the same bins).
"""
from __future__ import annotations

import logging
import math
import os
from datetime import datetime, timedelta, timezone

import numpy as np

from components.profile import ProfileError, read_profile

log = logging.getLogger(__name__)

EPSILON = 1e-4  # share given to an empty bin before taking logs: PSI stays finite
CONFIG_KEYS = {"min_samples": int, "drift_threshold": float, "drifted_share": float, "window_hours": float,
               "bins": int}
META_COLUMNS = ("model_version", "timestamp")


class DriftError(ValueError):
    """The check cannot run: missing log, profile or production version, or a malformed config."""


def check_config(doc, source: str = "drift config") -> dict:
    """The drift settings with their types; an error naming the key and value otherwise."""
    if not isinstance(doc, dict):
        raise DriftError(f"{source}: expected a mapping of {sorted(CONFIG_KEYS)}")
    unknown, missing = sorted(set(doc) - set(CONFIG_KEYS)), sorted(set(CONFIG_KEYS) - set(doc))
    if unknown or missing:
        raise DriftError(f"{source}: unknown key(s) {unknown} / missing key(s) {missing}; "
                         f"expected {sorted(CONFIG_KEYS)}")
    out = {}
    for key, kind in CONFIG_KEYS.items():
        value = doc[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if kind is int:
            ok = ok and float(value).is_integer() and value >= 1
        if not ok or value < 0:
            raise DriftError(f"{source}: {key} must be a {'positive integer' if kind is int else 'number >= 0'}, "
                             f"got {value!r}")
        out[key] = kind(value)
    if out["drifted_share"] > 1:
        raise DriftError(f"{source}: drifted_share is a share of the features (0 to 1), got {out['drifted_share']}")
    if out["window_hours"] <= 0:
        raise DriftError(f"{source}: window_hours must be > 0, got {out['window_hours']}")
    return out


# --- reading the inference log ----------------------------------------------------------------------------

def _numeric_type(t) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t) or pa.types.is_decimal(t)


def _value_type(t):
    """A column's type as far as binning goes: a dictionary's values, large strings as strings."""
    import pyarrow as pa

    t = t.value_type if pa.types.is_dictionary(t) else t
    return pa.string() if pa.types.is_large_string(t) else t


def _wrong_types(schema, features: dict[str, str], seen: dict) -> list[str]:
    """Columns of this file whose type cannot be read with the others: a numeric feature that is not a number,
    a boolean one that is not boolean, another feature whose type differs from the files read before (`seen`,
    filled here), a timestamp that is not one."""
    import pyarrow as pa

    wrong = []
    for column, kind in [*features.items(), ("timestamp", "timestamp"), ("model_version", "categorical")]:
        t = _value_type(schema.field(column).type)
        if pa.types.is_null(t):
            continue
        if kind == "numeric":
            ok = _numeric_type(t)
        elif kind == "boolean":
            ok = pa.types.is_boolean(t)
        elif kind == "timestamp":
            ok = pa.types.is_timestamp(t)
        else:
            ok = seen.setdefault(column, t) == t
        if not ok:
            expected = {"numeric": "a number", "boolean": "boolean", "timestamp": "a timestamp"}.get(
                kind, f"{seen.get(column)} as in the files before")
            wrong.append(f"{column} is {schema.field(column).type}, expected {expected}")
    return wrong


def read_log(uri: str, model_name: str, version: str, features: dict[str, str], window_hours: float,
             now: datetime | None = None):
    """(rows of `version` logged in the last `window_hours` as a pyarrow Table, skipped files with reasons).

    Only the hour partitions of the window are listed; each file is read once, in the needed columns. A file
    with missing columns or a numeric feature of another type is skipped and reported; the others count.
    """
    import fsspec
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    now = now or datetime.now(timezone.utc)
    since = now - timedelta(hours=window_hours)
    try:
        fs, root = fsspec.core.url_to_fs(uri.rstrip("/"))
        if not fs.isdir(root):
            raise DriftError(f"inference log {uri}: no such folder")
        base = f"{root}/model={model_name}"
        hours = [p for p in (fs.ls(base, detail=False) if fs.isdir(base) else [])
                 if p.rsplit("/", 1)[-1].startswith("hour=")]
    except DriftError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, or a cloud SDK's own (no credentials, ...)
        raise DriftError(f"inference log {uri}: cannot list it: {type(exc).__name__}: {exc}") from exc
    first = f"{since:%Y-%m-%dT%H}"
    hours = sorted(p for p in hours if p.rsplit("=", 1)[-1] >= first)
    columns = [*features, *META_COLUMNS]
    categorical = [c for c, k in features.items() if k == "categorical"]  # read as dictionaries: binned once
    tables, skipped, seen = [], [], {}
    threads = len(os.sched_getaffinity(0)) > 1  # on one core, Arrow's decoding threads only contend
    for hour in hours:
        for path in sorted(fs.glob(f"{hour}/*.parquet")):
            name = fs.unstrip_protocol(path)
            try:
                footer = pq.read_metadata(path, filesystem=fs)
                missing = [c for c in columns if c not in footer.schema.names]
                if missing:
                    skipped.append({"file": name, "reason": "missing column(s): " + ", ".join(missing)})
                    continue
                parquet = pq.ParquetFile(path, filesystem=fs, metadata=footer,  # the footer parsed once
                                         read_dictionary=[*categorical, "model_version"])
                table = parquet.read(columns, use_threads=threads)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported and skipped
                skipped.append({"file": name, "reason": f"{type(exc).__name__}: {exc}"})
                continue
            wrong = _wrong_types(table.schema, features, seen)
            if wrong:
                skipped.append({"file": name, "reason": "column(s) of another type: " + "; ".join(wrong)})
                continue
            versions = table["model_version"]
            versions = versions if pa.types.is_dictionary(versions.type) else versions.cast(pa.string())
            mask = pc.fill_null(pc.and_(pc.equal(versions, version), pc.greater_equal(
                table["timestamp"], pa.scalar(since, pa.timestamp("ms", "UTC")))), False)
            table = table.drop_columns(list(META_COLUMNS))
            tables.append(table if pc.all(mask).as_py() else table.filter(mask))  # a copy only when needed
    for s in skipped:
        log.warning("inference log: skipped %s: %s", s["file"], s["reason"])
    if not tables:
        empty = pa.table({c: pa.array([], pa.float64() if k == "numeric" else pa.null()) for c, k in features.items()})
        return empty, skipped
    return pa.concat_tables(tables, promote_options="permissive"), skipped


# --- scoring ----------------------------------------------------------------------------------------------

def current_counts(column, spec: dict) -> np.ndarray:
    """Counts of a pyarrow column on the reference bins: value bins, [unseen,] null (chunk by chunk)."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    size = len(spec["edges"]) + 2 if spec["kind"] == "numeric" else len(spec["values"]) + 2
    return sum((_chunk_counts(chunk, spec) for chunk in chunks), np.zeros(size, dtype=np.int64))


def _chunk_counts(chunk, spec: dict) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if spec["kind"] == "numeric":
        # bin k holds edges[k-1] <= x < edges[k] (np.searchsorted side="right"); counting x >= edge for each
        # edge gives the same counts in a few vectorised passes, without a binary search per value
        x = chunk.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
        present = len(x) - int(np.count_nonzero(np.isnan(x)))  # NaN in a request reads as null
        at_least = [present, *(int(np.count_nonzero(x >= edge)) for edge in spec["edges"]), 0]
        return np.array([*np.subtract(at_least[:-1], at_least[1:]), len(x) - present], dtype=np.int64)
    n = len(spec["values"])
    if pa.types.is_dictionary(chunk.type):  # bin the dictionary once, then count its indices
        per_entry = np.bincount(pc.fill_null(chunk.indices, len(chunk.dictionary)).to_numpy(zero_copy_only=False),
                                minlength=len(chunk.dictionary) + 1)
        codes = np.append(_codes(chunk.dictionary, spec["values"]), n + 1)
        return np.bincount(codes, weights=per_entry, minlength=n + 2).astype(np.int64)
    return np.bincount(_codes(chunk, spec["values"]), minlength=n + 2)


def _codes(array, values: list) -> np.ndarray:
    """Bin of each value: its index among the reference values, len(values) when unseen, +1 when null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(values)
    if len(array) == 0 or pa.types.is_null(array.type):
        return np.full(len(array), n + 1, dtype=np.int64)
    try:
        value_set = pa.array(values).cast(array.type) if values else pa.array([], array.type)
        idx = pc.index_in(array, value_set=value_set)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # another type than in training: every value unseen
        idx = pa.nulls(len(array), pa.int32())
    codes = pc.fill_null(idx, n).to_numpy(zero_copy_only=False).astype(np.int64)
    codes[array.is_null().to_numpy(zero_copy_only=False)] = n + 1
    return codes


def reference_shares(spec: dict) -> np.ndarray:
    """Reference shares on the same bins as current_counts (an unseen bin of 0 for categoricals)."""
    unseen = [] if spec["kind"] == "numeric" else [0.0]
    return np.array([*spec["shares"], *unseen, spec["null_share"]], dtype=float)


def _smoothed(shares: np.ndarray) -> np.ndarray:
    shares = np.maximum(shares, EPSILON)
    return shares / shares.sum()


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors on the same bins; empty bins smoothed, never inf."""
    r, c = _smoothed(reference), _smoothed(current)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_on_bins(reference: np.ndarray, current: np.ndarray) -> float | None:
    """Kolmogorov-Smirnov distance of the non-null values on the bins; None when either side has none."""
    r, c = reference[:-1], current[:-1]
    if r.sum() <= 0 or c.sum() <= 0:
        return None
    return float(np.max(np.abs(np.cumsum(r / r.sum()) - np.cumsum(c / c.sum()))))


def score(table, profile: dict) -> dict:
    """Per feature: PSI, KS (numeric), and the reference and current shares on the bins."""
    out = {}
    rows = table.num_rows
    for feature, spec in profile["features"].items():
        counts = current_counts(table[feature], spec)
        current = counts / rows if rows else np.zeros(len(counts))
        reference = reference_shares(spec)
        out[feature] = {"psi": psi(reference, current) if rows else 0.0,
                        "ks": ks_on_bins(reference, current) if spec["kind"] == "numeric" else None,
                        "reference": reference.tolist(), "current": current.tolist()}
    return out


def decide(samples: int, scores: dict[str, float], config: dict) -> dict:
    """The guide's rule: no decision under min_samples rows; retrain when more than drifted_share of the
    features score above drift_threshold."""
    drifted = sorted((f for f, s in scores.items() if s > config["drift_threshold"]), key=lambda f: -scores[f])
    share = len(drifted) / len(scores) if scores else 0.0
    if samples < config["min_samples"]:
        return {"decision": "insufficient_data", "drifted_features": [], "drifted_share": 0.0,
                "reason": f"waiting for more data: {samples} of {config['min_samples']}"}
    if share > config["drifted_share"]:
        return {"decision": "retrain", "drifted_features": drifted, "drifted_share": share,
                "reason": f"{len(drifted)} of {len(scores)} features drifted (PSI > {config['drift_threshold']}): "
                          f"share {share:.2f} > {config['drifted_share']}"}
    return {"decision": "no_drift", "drifted_features": drifted, "drifted_share": share,
            "reason": f"{len(drifted)} of {len(scores)} features drifted (PSI > {config['drift_threshold']}): "
                      f"share {share:.2f} <= {config['drifted_share']}"}


def evaluate(table, profile: dict, config: dict) -> tuple[dict, dict]:
    """(result without context, per-feature detail) for a table of logged rows."""
    detail = score(table, profile)
    scores = {f: round(d["psi"], 6) for f, d in detail.items()}
    verdict = decide(table.num_rows, scores, config)
    result = {"decision": verdict["decision"], "samples": table.num_rows,
              "drifted_share": round(verdict["drifted_share"], 6), "drifted_features": verdict["drifted_features"],
              "scores": scores, "reason": verdict["reason"],
              "ks": {f: round(d["ks"], 6) for f, d in detail.items() if d["ks"] is not None}}
    return result, detail


def check(log_uri: str, tracking_uri: str, model_name: str, config: dict, now: datetime | None = None,
          pushgateway_url: str | None = None) -> tuple[dict, dict, dict]:
    """One drift check of the production model: (result, per-feature detail, profile)."""
    try:
        version, profile = read_profile(tracking_uri, model_name)
    except ProfileError as exc:
        raise DriftError(str(exc)) from exc
    kinds = {f: s["kind"] for f, s in profile["features"].items()}
    table, skipped = read_log(log_uri, model_name, version, kinds, config["window_hours"], now)
    result, detail = evaluate(table, profile, config)
    result.update({"model_name": model_name, "model_version": version, "window_hours": config["window_hours"],
                   "thresholds": {k: config[k] for k in ("min_samples", "drift_threshold", "drifted_share")},
                   "skipped_files": skipped})
    result["pushgateway"] = push(pushgateway_url, result) if pushgateway_url else None
    return result, detail, profile


# --- outputs ----------------------------------------------------------------------------------------------

def gauges(result: dict):
    """The check's result as Prometheus gauges, in a registry of their own."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    model, version = result["model_name"], result["model_version"]
    scores = Gauge("model_feature_drift_score", "PSI of a feature against the training reference",
                   ["model", "model_version", "feature"], registry=registry)
    for feature, value in result["scores"].items():
        scores.labels(model, version, feature).set(value)
    Gauge("model_drift_samples", "Logged rows the drift check scored", ["model", "model_version"],
          registry=registry).labels(model, version).set(result["samples"])
    Gauge("model_drift_retrain_due", "1 when the drift check found retraining due", ["model", "model_version"],
          registry=registry).labels(model, version).set(1 if result["decision"] == "retrain" else 0)
    return registry


def push(url: str, result: dict, timeout: float = 10.0) -> dict:
    """Push the scores to a Prometheus Pushgateway under job=<model name>, replacing that group (its
    push_time_seconds is when the check last ran); a failure is logged and returned."""
    from components import pushgateway

    return pushgateway.push(url, result["model_name"], gauges(result), timeout=timeout)


def _bin_labels(spec: dict) -> list[str]:
    if spec["kind"] == "numeric":
        edges = [f"{e:.4g}" for e in spec["edges"]]
        if not edges:
            return ["all", "null"]
        return [f"< {edges[0]}", *(f"{a}..{b}" for a, b in zip(edges, edges[1:])), f">= {edges[-1]}", "null"]
    return [*(str(v) for v in spec["values"]), "unseen", "null"]


def _svg(labels: list[str], reference: list[float], current: list[float]) -> str:
    from html import escape

    width, height, pad = 560, 150, 24
    n = len(labels)
    step = (width - 2 * pad) / max(n, 1)
    top = max([*reference, *current, 1e-9])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" role="img">']
    for i, (label, r, c) in enumerate(zip(labels, reference, current)):
        x = pad + i * step
        for j, (share, color) in enumerate(((r, "#8c8c8c"), (c, "#d9534f"))):
            h = (height - pad) * share / top
            parts.append(f'<rect x="{x + j * step * 0.4 + step * 0.1:.1f}" y="{height - h:.1f}" '
                         f'width="{step * 0.38:.1f}" height="{h:.1f}" fill="{color}">'
                         f'<title>{escape(label)}: {"reference" if j == 0 else "current"} {share:.3%}</title></rect>')
        parts.append(f'<text x="{x + step / 2:.1f}" y="{height + 14}" font-size="9" text-anchor="middle">'
                     f'{escape(label[:12])}</text>')
    parts.append(f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#333"/></svg>')
    return "".join(parts)


def render_html(result: dict, detail: dict, profile: dict) -> str:
    """A self-contained report: the decision and its reasons, then a plot per feature, drifted ones first."""
    from html import escape

    order = sorted(detail, key=lambda f: (f not in result["drifted_features"], -detail[f]["psi"]))
    rows = []
    for feature in order:
        d, spec = detail[feature], profile["features"][feature]
        flag = "DRIFTED" if feature in result["drifted_features"] else "stable"
        ks = f", KS {d['ks']:.3f}" if d["ks"] is not None else ""
        rows.append(f"<section><h3>{escape(feature)} ({spec['kind']}): PSI {d['psi']:.3f}{ks}: {flag}</h3>"
                    f"{_svg(_bin_labels(spec), d['reference'], d['current'])}</section>")
    skipped = "".join(f"<li>{escape(s['file'])}: {escape(s['reason'])}</li>" for s in result.get("skipped_files", []))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Drift check</title>"
        "<style>body{font-family:sans-serif;margin:1em}h3{font-size:1em;margin:.8em 0 .2em}</style></head><body>"
        f"<h1>Drift check: {escape(result['decision'])}</h1>"
        f"<p>Model {escape(str(result.get('model_name', '')))} version {escape(str(result.get('model_version', '')))}; "
        f"{result['samples']} logged rows in the last {result.get('window_hours', '')} h.</p>"
        f"<p><strong>{escape(result['reason'])}</strong></p>"
        f"<p>Drifted: {escape(', '.join(result['drifted_features']) or 'none')}. "
        "Bars: grey the training reference, red the logged rows.</p>"
        + (f"<p>Skipped files:</p><ul>{skipped}</ul>" if skipped else "")
        + "".join(rows) + "</body></html>")
