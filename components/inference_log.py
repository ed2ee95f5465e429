"""Where the inference log keeps what: the layout the model server writes (serving/inference_log.py), Parquet
under `<uri>/model=<name>/hour=<YYYY-MM-DDTHH>/`, and the files of a time span, found by listing only its hours."""
from __future__ import annotations

from datetime import datetime


class LogError(ValueError):
    """The inference log cannot be listed."""


def files(uri: str, model_name: str, since: datetime, until: datetime) -> tuple[object, list[str]]:
    """(fsspec filesystem, the Parquet files of the hour partitions from `since` to `until`, in time order)."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(uri.rstrip("/"))
        if not fs.isdir(root):
            raise LogError(f"inference log {uri}: no such folder")
        base = f"{root}/model={model_name}"
        hours = [p for p in (fs.ls(base, detail=False) if fs.isdir(base) else [])
                 if p.rsplit("/", 1)[-1].startswith("hour=")]
        first, last = f"{since:%Y-%m-%dT%H}", f"{until:%Y-%m-%dT%H}"
        hours = sorted(p for p in hours if first <= p.rsplit("=", 1)[-1] <= last)
        # fs.ls, not fs.glob: a glob compiles a regular expression per folder (re's cache holds 512)
        return fs, [path for hour in hours for path in sorted(fs.ls(hour, detail=False)) if path.endswith(".parquet")]
    except LogError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, or a cloud SDK's own (no credentials, ...)
        raise LogError(f"inference log {uri}: cannot list it: {type(exc).__name__}: {exc}") from exc


def window_end(text: str) -> datetime | None:
    """The end of the window a check reads: None (now) for "", else an ISO 8601 time with its UTC offset."""
    if not text:
        return None
    try:
        end = datetime.fromisoformat(text)
    except ValueError:
        end = None
    if end is None or end.tzinfo is None:
        raise LogError(f"window_end {text!r}: expected an ISO 8601 time with a UTC offset, e.g. "
                       "2026-01-31T12:00:00+00:00, or \"\" for now")
    return end
