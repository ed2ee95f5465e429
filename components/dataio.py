"""Reading and writing tables: Parquet or CSV in, Parquet out; local paths and fsspec URLs."""
from __future__ import annotations

import hashlib

import fsspec
import pandas as pd


class DataError(ValueError):
    """A table could not be read or is empty."""


def read_table(uri: str) -> pd.DataFrame:
    """Read a Parquet or CSV table (by extension; Parquet otherwise) into a DataFrame."""
    lower = uri.lower()
    is_csv = lower.endswith((".csv", ".csv.gz"))
    try:
        with fsspec.open(uri, "rb", compression="infer") as fh:
            df = pd.read_csv(fh) if is_csv else pd.read_parquet(fh)
    except FileNotFoundError as exc:
        raise DataError(f"{uri}: file not found") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{uri}: the file is empty") from exc
    except Exception as exc:  # pyarrow and the csv parser raise many types for a corrupt file
        kind = "CSV" if is_csv else "Parquet"
        raise DataError(f"{uri}: cannot read as {kind} ({type(exc).__name__}: {exc})") from exc
    if df.empty:
        raise DataError(f"{uri}: the table has no rows")
    return df


def sha256(uri: str) -> str:
    """sha256 of a file's bytes: the data lineage recorded on a registered model."""
    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_table(df: pd.DataFrame, uri: str) -> None:
    """Write a DataFrame as Parquet to a local path or fsspec URL (parent folders created)."""
    fs, path = fsspec.core.url_to_fs(uri)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as fh:
        df.to_parquet(fh, index=False)
