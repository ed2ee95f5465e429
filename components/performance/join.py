"""The inference log joined with the outcomes, in bounded memory: the log is read file by file, row group by row
group, in the needed columns, and joined about a million rows at a time (the outcomes' hash table built once per
chunk, not per file); only rows that found an outcome (and implicit negatives) are kept. A file counts whole or
not at all.

A logged row is (request_id, row, model_version, timestamp, probability, ...); a client that retried with the
same request id logged its rows twice: the last logged row per (request_id, row, model_version) counts.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import numpy as np

from components import inference_log
from components.outcomes import KEY, last_per_key

log = logging.getLogger(__name__)

LOG_COLUMNS = [*KEY, "model_version", "timestamp", "probability"]
DAY_MS = 86_400_000
BATCH_ROWS = 262_144  # rows decoded at a time
CHUNK_ROWS = 1_048_576  # rows joined at a time: the outcomes' hash table is built once per chunk, not per file


class JoinError(ValueError):
    """The inference log cannot be read."""


@dataclass
class Joined:
    """What one pass over the log found."""
    labelled: object  # pyarrow Table: the window's rows with an outcome (`_label`), last logged per key and version
    implicit: object  # pyarrow Table: let-through rows without outcome old enough to count as negative
    logged: dict = field(default_factory=dict)  # (version, day number since 1970) -> rows logged in the window
    flagged: dict = field(default_factory=dict)  # version -> rows logged in the window at or above its threshold
    matched: np.ndarray | None = None  # per outcome: whether a logged row of the window (or after it) has its key
    skipped: list = field(default_factory=list)  # files that could not be read, with reasons


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _batches(fs, path: str, columns: list[str]):
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, filesystem=fs)
    names = set(parquet.schema_arrow.names)  # schema_arrow builds the schema at each access
    missing = [c for c in columns if c not in names]
    if missing:
        raise JoinError("missing column(s): " + ", ".join(missing))
    yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False)


def join(log_uri: str, model_name: str, outcomes, label: str, start: datetime, stop: datetime, now: datetime,
         threshold: Callable[[str], float | None], implicit_negative_after_days: float | None = None,
         extra_columns: tuple[str, ...] = ()) -> Joined:
    """The predictions logged in [start, stop] joined with `outcomes` (components.outcomes.latest) on
    (request_id, row). Rows logged after `stop` up to `now` only mark outcomes as matched (their truth is not
    an orphan). `threshold(version)`: where the version decides (None: unknown, never an implicit negative).
    With `implicit_negative_after_days`, a row below its version's threshold logged at least that long before
    `now` without an outcome is a negative (`implicit`, without a `_label` column)."""
    import pyarrow as pa

    try:
        fs, paths = inference_log.files(log_uri, model_name, start, now)
    except inference_log.LogError as exc:
        raise JoinError(str(exc)) from exc
    keys = outcomes.select(KEY).append_column("_outcome", pa.array(np.arange(outcomes.num_rows), pa.int64()))
    columns = [*LOG_COLUMNS, *extra_columns]
    found = Joined(labelled=None, implicit=None, matched=np.zeros(outcomes.num_rows, dtype=bool))
    labelled, implicit = [], []
    lo, hi, old = _ms(start), _ms(stop), _ms(now - timedelta(days=implicit_negative_after_days or 0))
    pending, pending_rows = [], 0

    def chunk() -> None:  # the files read so far, joined at once
        table = pa.concat_tables(pending, promote_options="permissive")
        pending.clear()
        stamps = table["timestamp"].cast(pa.int64()).to_numpy()
        hits = table.select(KEY).append_column("_at", pa.array(np.arange(table.num_rows))).join(
            keys, KEY, join_type="inner", use_threads=False)
        window = (stamps >= lo) & (stamps <= hi)
        at = hits["_at"].to_numpy()
        found.matched[hits["_outcome"].to_numpy()[stamps[at] >= lo]] = True  # the hour before: not ours
        mine = window[at]
        labelled.append(table.take(at[mine]).append_column("_outcome", hits["_outcome"].filter(mine)))
        _count(found, table, stamps, window, threshold)
        if implicit_negative_after_days is not None:
            unlabelled = window & (stamps <= old)
            unlabelled[at] = False
            rows = table.filter(unlabelled)
            below = _below(rows, threshold)
            implicit.append(rows.filter(below))

    for path in paths:
        try:  # a file counts whole or not at all
            tables = [_typed(pa.Table.from_batches([batch])) for batch in _batches(fs, path, columns)]
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported and skipped, as the drift check
            found.skipped.append({"file": fs.unstrip_protocol(path), "reason": f"{type(exc).__name__}: {exc}"})
            log.warning("inference log: skipped %s: %s", path, exc)
            continue
        pending += tables
        pending_rows += sum(t.num_rows for t in tables)
        if pending_rows >= CHUNK_ROWS:
            chunk()
            pending_rows = 0
    if pending:
        chunk()
    found.labelled = _last_logged(labelled, outcomes, label)
    found.implicit = _last_logged(implicit, None, label)
    return found


def _typed(table):
    """request_id and model_version as strings, timestamp as ms UTC, whatever a file stored."""
    import pyarrow as pa

    return table.set_column(0, "request_id", table["request_id"].cast(pa.string())).set_column(
        2, "model_version", table["model_version"].cast(pa.string())).set_column(
        3, "timestamp", table["timestamp"].cast(pa.timestamp("ms", "UTC")))


def _count(found: Joined, table, stamps, window, threshold) -> None:
    """Rows logged in the window per version and day, and per version those at or above its threshold."""
    import pyarrow.compute as pc

    versions = table["model_version"].filter(window)
    if not len(versions):
        return
    encoded = pc.dictionary_encode(versions).combine_chunks()
    codes, names = encoded.indices.to_numpy(), encoded.dictionary.to_pylist()
    days = stamps[window] // DAY_MS
    first = int(days.min())
    span = int(days.max()) - first + 1  # (version, day) as one integer: np.unique(axis=0) sorts rows as records
    pairs, counts = np.unique(codes.astype(np.int64) * span + (days - first), return_counts=True)
    for pair, count in zip(pairs.tolist(), counts.tolist()):
        key = (names[pair // span], pair % span + first)
        found.logged[key] = found.logged.get(key, 0) + count
    probability = table["probability"].filter(window).to_numpy(zero_copy_only=False)
    for code, name in enumerate(names):
        cut = threshold(name)
        if cut is not None:
            found.flagged[name] = found.flagged.get(name, 0) + int(np.count_nonzero(
                (codes == code) & (probability >= cut)))


def _below(rows, threshold) -> np.ndarray:
    """Per row: decided negative (below its version's threshold); rows of unknown versions never are."""
    import pyarrow.compute as pc

    if not rows.num_rows:
        return np.zeros(0, dtype=bool)
    encoded = pc.dictionary_encode(rows["model_version"]).combine_chunks()
    cuts = np.array([-np.inf if (t := threshold(v)) is None else t for v in encoded.dictionary.to_pylist()])
    return rows["probability"].to_numpy(zero_copy_only=False) < cuts[encoded.indices.to_numpy()]


def _last_logged(parts: list, outcomes, label: str):
    """The last logged row per (request_id, row, model_version), with the outcome's label as `_label` when
    joined. Joined rows are grouped by integers: their `_outcome` stands for (request_id, row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = [p for p in parts if p.num_rows]
    if not parts:
        return None
    table = pa.concat_tables(parts, promote_options="permissive")
    if outcomes is None:
        table, last = last_per_key(table, [*KEY, "model_version"], "timestamp")
        return table.filter(last)
    outcome = table["_outcome"].to_numpy()
    version = pc.dictionary_encode(table["model_version"]).combine_chunks().indices.to_numpy()
    order = np.lexsort((table["timestamp"].cast(pa.int64()).to_numpy(), version, outcome))  # stable, as sort_by
    outcome, version = outcome[order], version[order]
    last = np.r_[(outcome[1:] != outcome[:-1]) | (version[1:] != version[:-1]), True]
    table = table.take(order[last])
    return table.append_column("_label", outcomes[label].take(table["_outcome"]))


def labelled_table(found: Joined, contract, negative_class):
    """The served rows of a `join` made with the contract's features as `extra_columns`, as a training table:
    the features as the server received them and the label from the outcomes (implicit negatives labelled
    `negative_class`), in the order they were logged; flagged rows without an outcome are never in it."""
    import pandas as pd
    import pyarrow as pa

    parts = []
    if found.labelled is not None:
        parts.append(found.labelled.select([*contract.feature_columns, "timestamp", "_label"]))
    if found.implicit is not None:
        implicit = found.implicit.select([*contract.feature_columns, "timestamp"])
        parts.append(implicit.append_column("_label", pa.array([negative_class] * implicit.num_rows,
                                                               parts[0]["_label"].type if parts else None)))
    if not parts:
        return pd.DataFrame(columns=[*contract.feature_columns, contract.label])
    table = pa.concat_tables(parts, promote_options="permissive").sort_by("timestamp")
    frame = table.drop_columns(["timestamp"]).rename_columns([*contract.feature_columns, contract.label]).to_pandas()
    return frame.astype({contract.label: contract.dtype(contract.label)})
