"""Reading and writing tables: Parquet or CSV in, Parquet out; local paths and fsspec URLs."""
from __future__ import annotations

import hashlib

import fsspec
import pandas as pd


class DataError(ValueError):
    """A table could not be read or is empty."""


def read_table(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet or CSV table (by extension; Parquet otherwise) into a DataFrame; only `columns`, if given."""
    import pyarrow.parquet as pq

    lower = uri.lower()
    is_csv = lower.endswith((".csv", ".csv.gz"))
    try:
        if is_csv:
            df = pd.read_csv(uri, usecols=columns, compression="infer")
        else:  # Arrow's buffers freed column by column as pandas takes them over: the table is never twice
            with fsspec.open(uri, "rb") as fh:
                df = pq.read_table(fh, columns=columns).to_pandas(self_destruct=True, split_blocks=True)
            release_unused()
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


def release_unused() -> None:
    """Give the memory Arrow's pool keeps from freed tables back to the system: a table read from Parquet is
    backed by Arrow's buffers, which its pool does not return on its own when the table goes."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def sha256(uri: str) -> str:
    """The sha256 of a file's bytes (decompressed, for a .gz), read in blocks (the lineage of what was used)."""
    try:
        with fsspec.open(uri, "rb", compression="infer") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError as exc:
        raise DataError(f"{uri}: file not found") from exc


def read_table_and_sha256(uri: str) -> tuple[pd.DataFrame, str]:
    """The table and the sha256 of its file's bytes: hashed in blocks, then parsed, so the bytes are never held
    beside the table."""
    digest = sha256(uri)
    return read_table(uri), digest


def write_table(df: pd.DataFrame, uri: str, chunk_rows: int = 1_000_000) -> None:
    """Write a DataFrame as Parquet to a local path or fsspec URL (parent folders created), `chunk_rows` rows at a
    time: Arrow's copy of the table is never whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, path = fsspec.core.url_to_fs(uri)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    schema = pa.Schema.from_pandas(df, preserve_index=False)
    with fs.open(path, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
        for start in range(0, max(len(df), 1), chunk_rows):
            writer.write_table(pa.Table.from_pandas(df.iloc[start:start + chunk_rows], schema=schema,
                                                    preserve_index=False))
