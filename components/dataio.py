"""Reading and writing tables: Parquet or CSV in, Parquet out; local paths and fsspec URLs."""
from __future__ import annotations

import hashlib
import io

import fsspec
import pandas as pd


class DataError(ValueError):
    """A table could not be read or is empty."""


def read_table(uri: str) -> pd.DataFrame:
    """Read a Parquet or CSV table (by extension; Parquet otherwise) into a DataFrame."""
    return read_table_and_sha256(uri)[0]


def read_table_and_sha256(uri: str) -> tuple[pd.DataFrame, str]:
    """The table and the sha256 of the very bytes it was parsed from (the lineage of what was used)."""
    lower = uri.lower()
    is_csv = lower.endswith((".csv", ".csv.gz"))
    try:
        with fsspec.open(uri, "rb", compression="infer") as fh:
            data = fh.read()
        digest = hashlib.sha256(data).hexdigest()
        df = pd.read_csv(io.BytesIO(data)) if is_csv else pd.read_parquet(io.BytesIO(data))
    except FileNotFoundError as exc:
        raise DataError(f"{uri}: file not found") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{uri}: the file is empty") from exc
    except Exception as exc:  # pyarrow and the csv parser raise many types for a corrupt file
        kind = "CSV" if is_csv else "Parquet"
        raise DataError(f"{uri}: cannot read as {kind} ({type(exc).__name__}: {exc})") from exc
    if df.empty:
        raise DataError(f"{uri}: the table has no rows")
    return df, digest


def write_table(df: pd.DataFrame, uri: str) -> None:
    """Write a DataFrame as Parquet to a local path or fsspec URL (parent folders created)."""
    fs, path = fsspec.core.url_to_fs(uri)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as fh:
        df.to_parquet(fh, index=False)
