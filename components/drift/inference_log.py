"""Reading the inference log the model server writes (serving/inference_log.py) for the drift check: the rows
of one model version in a time window, as a pyarrow Table.

Only the window's hour partitions are listed (components.inference_log); each file is read once, in the needed
columns.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone

from components import inference_log
from components.drift import DriftError

log = logging.getLogger(__name__)

META_COLUMNS = ("model_version", "timestamp")
BATCH_ROWS = 262_144  # rows decoded at a time


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


def batches(uri: str, model_name: str, version: str, features: dict[str, str], window_hours: float,
            now: datetime | None = None, skipped: list | None = None, batch_rows: int = BATCH_ROWS):
    """The rows of `version` logged in the `window_hours` up to `now` (default: the current time), as pyarrow
    Tables of at most `batch_rows` rows, in the feature columns: the log is read file by file and row group by
    row group, so memory stays bounded whatever the window holds.

    Only the hour partitions of the window are listed. A file with missing columns or a numeric feature of
    another type is skipped and appended to `skipped` (with the reason, and logged); the others count. A file
    that breaks while being read counts up to where it broke.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    skipped = [] if skipped is None else skipped
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    since = now - timedelta(hours=window_hours)
    try:
        fs, paths = inference_log.files(uri, model_name, since, now)
    except inference_log.LogError as exc:
        raise DriftError(str(exc)) from exc
    columns = [*features, *META_COLUMNS]
    categorical = [c for c, k in features.items() if k == "categorical"]  # read as dictionaries: binned once
    seen = {}
    threads = len(os.sched_getaffinity(0)) > 1  # on one core, Arrow's decoding threads only contend
    low, high = pa.scalar(since, pa.timestamp("ms", "UTC")), pa.scalar(now, pa.timestamp("ms", "UTC"))
    for path in paths:
        name = fs.unstrip_protocol(path)
        try:
            footer = pq.read_metadata(path, filesystem=fs)
            missing = [c for c in columns if c not in footer.schema.names]
            parquet = None if missing else pq.ParquetFile(path, filesystem=fs, metadata=footer,  # parsed once
                                                          read_dictionary=[*categorical, "model_version"])
            wrong = [] if missing else _wrong_types(parquet.schema_arrow, features, seen)
            if missing or wrong:
                reason = ("missing column(s): " + ", ".join(missing)) if missing else \
                    "column(s) of another type: " + "; ".join(wrong)
                skipped.append({"file": name, "reason": reason})
                log.warning("inference log: skipped %s: %s", name, reason)
                continue
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=threads):
                table = pa.Table.from_batches([batch])
                versions = table["model_version"]
                versions = versions if pa.types.is_dictionary(versions.type) else versions.cast(pa.string())
                stamps = table["timestamp"]
                mask = pc.fill_null(pc.and_(pc.equal(versions, version), pc.and_(
                    pc.greater_equal(stamps, low), pc.less_equal(stamps, high))), False)
                table = table.drop_columns(list(META_COLUMNS))
                yield table if pc.all(mask).as_py() else table.filter(mask)  # a copy only when needed
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported and skipped
            skipped.append({"file": name, "reason": f"{type(exc).__name__}: {exc}"})
            log.warning("inference log: skipped %s: %s", name, skipped[-1]["reason"])


def read_log(uri: str, model_name: str, version: str, features: dict[str, str], window_hours: float,
             now: datetime | None = None):
    """(the rows of `batches` in one pyarrow Table, skipped files with reasons): the in-memory path."""
    import pyarrow as pa

    skipped = []
    tables = list(batches(uri, model_name, version, features, window_hours, now, skipped))
    if not tables:
        empty = pa.table({c: pa.array([], pa.float64() if k == "numeric" else pa.null()) for c, k in features.items()})
        return empty, skipped
    return pa.concat_tables(tables, promote_options="permissive"), skipped
