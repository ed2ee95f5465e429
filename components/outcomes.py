"""Outcomes: the truth about predictions, arriving late, appended so it joins the inference log on
(request_id, row).

Stored as Parquet under `<uri>/model=<name>/date=<YYYY-MM-DD of observed_at>/part-<sha256 of the rows>.parquet`
with the columns request_id (string), row (int64), the contract's label column and observed_at (UTC, ms).
"""
from __future__ import annotations

import hashlib

import fsspec
import pandas as pd

from components.contract import Contract

KEY = ["request_id", "row"]
MAX_ID_LENGTH = 128
SHOWN = 5


class OutcomesError(ValueError):
    """An outcomes table that cannot be ingested."""


def _refuse_if(source: str, column: str, what: str, bad: pd.Series, values: pd.Series) -> None:
    """Raise, when any is bad, naming the column, the count, a few offending values and their 0-based positions."""
    if not bad.any():
        return
    where = list(bad[bad].index[:SHOWN])
    shown = [None if pd.isna(v) else v for v in values[bad].iloc[:SHOWN].tolist()]
    raise OutcomesError(f"{source}: column {column!r}: {int(bad.sum())} {what}, e.g. {shown} at row(s) {where} "
                        "of the file")


def check(frame: pd.DataFrame, contract: Contract, source: str) -> pd.DataFrame:
    """The outcomes of one file, checked and in stored form; OutcomesError names what is wrong."""
    label = contract.label
    missing = [c for c in ("request_id", label) if c not in frame.columns]
    if missing:
        raise OutcomesError(f"{source}: missing column(s) {missing}; found {list(frame.columns)}")
    frame = frame.reset_index(drop=True)
    ids = frame["request_id"]
    text = ids.astype(str).str.strip()
    _refuse_if(source, "request_id", "empty request id(s)", ids.isna() | (text == ""), ids)
    _refuse_if(source, "request_id", f"request id(s) over {MAX_ID_LENGTH} characters",
               text.str.len() > MAX_ID_LENGTH, text.str.slice(0, 40) + "...")
    labels = frame[label]
    known = contract.allowed(label)
    unknown = labels.isna() | (~labels.isin(known) if known is not None else False)
    _refuse_if(source, label, f"label value(s) the contract does not know (known: {known})", unknown, labels)
    rows = frame["row"] if "row" in frame.columns else pd.Series(0, index=frame.index)
    numbers = pd.to_numeric(rows, errors="coerce")
    _refuse_if(source, "row", "value(s) not a non-negative integer",
               numbers.isna() | (numbers < 0) | (numbers % 1 != 0), rows)
    now = pd.Timestamp.now(tz="UTC")
    if "observed_at" in frame.columns:
        raw = frame["observed_at"]
        observed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
        _refuse_if(source, "observed_at", "unparseable time(s)", observed.isna() & raw.notna(), raw)
        observed = observed.fillna(now)
    else:
        observed = pd.Series(now, index=frame.index)
    return pd.DataFrame({
        "request_id": text.astype("string"),
        "row": numbers.astype("int64"),
        label: labels.astype(contract.dtype(label)),
        "observed_at": observed.dt.as_unit("ms"),
    })


def stored(uri: str, model_name: str, contract: Contract) -> pd.DataFrame:
    """The (request_id, row, label, observed_at) already stored for a model, read in those columns only."""
    label = contract.label
    fs, root = fsspec.core.url_to_fs(f"{uri.rstrip('/')}/model={model_name}")
    parts = [pd.DataFrame({"request_id": pd.Series(dtype="string"), "row": pd.Series(dtype="int64"),
                           label: pd.Series(dtype=contract.dtype(label)),
                           "observed_at": pd.Series(dtype="datetime64[ms, UTC]")})]
    for path in sorted(fs.glob(f"{root}/date=*/*.parquet")):
        with fs.open(path, "rb") as fh:
            parts.append(pd.read_parquet(fh, columns=[*KEY, label, "observed_at"]).astype(
                {"request_id": "string", "observed_at": "datetime64[ms, UTC]"}))
    return pd.concat(parts, ignore_index=True)


def ingest(frames: dict[str, pd.DataFrame], uri: str, model_name: str, contract: Contract) -> list[dict]:
    """Check every file, then append each one's new rows; per file: rows ingested, dates and files written,
    duplicates skipped and conflicting keys (stored, or given in this call, with another label). A duplicate is
    a row whose request_id, row, label and observed_at are stored, or whose label is its (request_id, row)'s
    latest, observed no earlier: re-ingesting a file adds nothing (with or without observed_at), and a label
    given again after another one counts again."""
    label = contract.label
    checked = {source: check(frame, contract, source) for source, frame in frames.items()}
    seen = stored(uri, model_name, contract)
    fs, root = fsspec.core.url_to_fs(f"{uri.rstrip('/')}/model={model_name}")
    summary = []
    for source, frame in checked.items():
        exact = frame.merge(seen.drop_duplicates().assign(_seen=True), on=[*KEY, label, "observed_at"], how="left")
        latest = seen.sort_values("observed_at", kind="stable").drop_duplicates(KEY, keep="last").rename(
            columns={label: "_label", "observed_at": "_at"})
        last = frame.merge(latest, on=KEY, how="left")
        # nothing new: the same truth at the same time, or the key's latest label again at a later time (a file
        # without observed_at ingested again: its rows are observed "now")
        again = (last[label] == last["_label"]).fillna(False).to_numpy() & (last["observed_at"] >= last["_at"]).fillna(
            False).to_numpy()
        new = frame[exact["_seen"].isna().to_numpy() & ~again].drop_duplicates([*KEY, label, "observed_at"])
        seen = pd.concat([seen, new], ignore_index=True)
        labels = seen.groupby(KEY)[label].nunique()
        conflicting = int((labels[labels > 1].index.isin(pd.MultiIndex.from_frame(new[KEY]))).sum())
        dates, files = [], []
        for date, part in new.groupby(new["observed_at"].dt.strftime("%Y-%m-%d"), sort=True):
            part = part.sort_values([*KEY, "observed_at"]).reset_index(drop=True)
            digest = hashlib.sha256(part.to_csv(index=False).encode()).hexdigest()
            path = f"{root}/date={date}/part-{digest}.parquet"
            fs.makedirs(f"{root}/date={date}", exist_ok=True)
            with fs.open(path, "wb") as fh:
                part.to_parquet(fh, index=False)
            dates.append(date)
            files.append(fs.unstrip_protocol(path))
        summary.append({"file": source, "rows": len(new), "dates": dates, "files": files,
                        "duplicates": len(frame) - len(new), "conflicting": conflicting})
    return summary



def last_per_key(table, keys: list[str], order: str):
    """(`table` sorted by `keys` then `order`, a mask of its last row of each distinct `keys`) for a pyarrow
    Table: one sort, then comparisons of neighbours."""
    import numpy as np
    import pyarrow.compute as pc

    table = table.sort_by([*((k, "ascending") for k in keys), (order, "ascending")])
    n = table.num_rows
    same = np.ones(max(n - 1, 0), dtype=bool)  # row i and row i + 1 have the same keys
    for key in keys:
        column = table[key].combine_chunks()
        same &= pc.equal(column.slice(0, n - 1), column.slice(1)).to_numpy(zero_copy_only=False)
    return table, np.r_[~same, True] if n else np.zeros(0, dtype=bool)


def latest(uri: str, model_name: str, label: str, since=None) -> tuple[object, int]:
    """(the outcomes observed since `since` (a datetime; None: all), one row per (request_id, row): the latest
    observed_at's, as a pyarrow Table of request_id, row, `label`, observed_at; the number of those keys given
    more than one label). Only the date partitions from `since`'s day on are read, in these columns."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    fs, root = fsspec.core.url_to_fs(f"{uri.rstrip('/')}/model={model_name}")
    first = f"date={since:%Y-%m-%d}" if since is not None else ""
    dates = sorted(p for p in (fs.ls(root, detail=False) if fs.isdir(root) else [])
                   if p.rsplit("/", 1)[-1].startswith("date=") and p.rsplit("/", 1)[-1] >= first)
    columns = [*KEY, label, "observed_at"]
    types = {"request_id": pa.string(), "row": pa.int64(), "observed_at": pa.timestamp("ms", "UTC")}
    tables = []
    for path in (path for date in dates for path in sorted(fs.glob(f"{date}/*.parquet"))):
        table = pq.read_table(path, columns=columns, filesystem=fs)
        tables.append(table.cast(pa.schema([(c, types.get(c, table.schema.field(c).type)) for c in columns])))
    if not tables:
        return pa.table({**{c: pa.array([], t) for c, t in types.items() if c != "observed_at"},
                         label: pa.array([], pa.string()), "observed_at": pa.array([], types["observed_at"])}), 0
    table = pa.concat_tables(tables, promote_options="permissive")
    if since is not None:
        table = table.filter(pc.greater_equal(table["observed_at"], pa.scalar(since, types["observed_at"])))
    table, last = last_per_key(table, KEY, "observed_at")
    labels = table[label].combine_chunks()
    n = len(labels)
    same = ~last[:-1]
    differs = same & pc.not_equal(labels.slice(0, n - 1), labels.slice(1)).to_numpy(zero_copy_only=False) \
        if n > 1 else np.zeros(0, dtype=bool)
    group = np.cumsum(np.r_[0, ~same]) if n else np.zeros(0, dtype=np.int64)  # key number of each row
    return table.filter(last), int(len(np.unique(group[:-1][differs])))
