"""The inference log: sampled request rows with prediction, request id, position in the request (`row`), model
version, role and time, as Parquet. Outcomes join predictions on (request_id, row).

Files land under INFERENCE_LOG_URI as `model=<name>/hour=<YYYY-MM-DDTHH>/part-<time>-<pid>-<id>.parquet`
(hive partitions; `pyarrow.dataset.dataset(uri, partitioning="hive")` reads them). Requests only enqueue;
a thread writes. A failed write is retried with exponential backoff; only rows whose every attempt failed,
or that found the queue full, are dropped (counted). The thread survives any exception; close() flushes.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from datetime import datetime, timezone

import fsspec
import numpy as np
import pandas as pd

log = logging.getLogger("serving")


def _quietly(callback, *args) -> None:
    """A metrics callback must never stop the writer."""
    try:
        callback(*args)
    except Exception:
        log.exception("inference log: callback %r failed", callback)


class InferenceLogger:
    def __init__(self, uri: str, model: str, sample_rate: float = 1.0, queue_size: int = 10_000,
                 flush_seconds: float = 5.0, max_file_rows: int = 100_000, attempts: int = 3,
                 backoff_seconds: float = 0.5, on_drop=None, on_write=None, on_failure=None):
        """on_write(rows) after a write; on_drop(rows, reason) with reason "queue_full" or "write_failed";
        on_failure() after each failed attempt or unexpected error."""
        self.uri, self.model = uri.rstrip("/"), model
        self.sample_rate, self.flush_seconds, self.max_file_rows = sample_rate, flush_seconds, max_file_rows
        self.attempts, self.backoff = attempts, backoff_seconds
        self.on_drop = on_drop or (lambda n, reason: None)
        self.on_write, self.on_failure = on_write or (lambda n: None), on_failure or (lambda: None)
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.rng = np.random.default_rng()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def log(self, frame: pd.DataFrame, predictions, probabilities, version: str, role: str, request_ids,
            positions=None) -> None:
        """Enqueue a batch's rows (sampled), each with its request's id and its position in that request (from 0);
        never blocks. Without `positions`, rows are counted along each run of equal consecutive ids: right for
        one request per call, or requests with distinct ids (the server passes them: a retried id may sit beside
        its first try in one micro-batch)."""
        request_ids = np.asarray(request_ids, dtype=object)
        if positions is None:
            starts = np.flatnonzero(np.r_[True, request_ids[1:] != request_ids[:-1]])
            positions = np.arange(len(request_ids)) - np.repeat(starts, np.diff(np.r_[starts, len(request_ids)]))
        positions = np.asarray(positions, dtype=np.int64)
        if self.sample_rate < 1.0:
            keep = self.rng.random(len(frame)) < self.sample_rate
            if not keep.any():
                return
            frame, predictions, probabilities, request_ids, positions = (
                frame[keep], predictions[keep], probabilities[keep], request_ids[keep], positions[keep])
        item = (frame, predictions, probabilities, request_ids, positions, version, role,
                datetime.now(timezone.utc))
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            _quietly(self.on_drop, len(frame), "queue_full")

    def _run(self) -> None:
        pending, rows, last = [], 0, time.monotonic()
        while not (self._stop.is_set() and self.queue.empty()):
            try:
                item = self.queue.get(timeout=0.2)
                pending.append(item)
                rows += len(item[0])
            except queue.Empty:
                pass
            if pending and (rows >= self.max_file_rows or time.monotonic() - last >= self.flush_seconds
                            or self._stop.is_set()):
                self._flush(pending, rows)
                pending, rows, last = [], 0, time.monotonic()
        if pending:
            self._flush(pending, rows)

    def _flush(self, items: list, rows: int) -> None:
        """Write the items; whatever happens, the thread goes on."""
        try:
            parts = self._parts(items)
        except Exception:
            log.exception("inference log: could not build the table of %d rows; dropped", rows)
            _quietly(self.on_failure)
            _quietly(self.on_drop, rows, "write_failed")
            return
        for path, part in parts:
            self._write(path, part)

    def _parts(self, items: list) -> list[tuple[str, pd.DataFrame]]:
        """(file path, rows) per hour partition."""
        frames = []
        for frame, predictions, probabilities, request_ids, positions, version, role, at in items:
            frames.append(frame.reset_index(drop=True).assign(
                prediction=predictions, probability=probabilities, request_id=request_ids.astype(str), row=positions,
                model_version=version, role=role, timestamp=pd.Timestamp(at)))
        table = pd.concat(frames, ignore_index=True)
        table["timestamp"] = table["timestamp"].astype("datetime64[ms, UTC]")
        hours = table["timestamp"].dt.strftime("%Y-%m-%dT%H")
        stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return [(f"{self.uri}/model={self.model}/hour={hour}/part-{stamp}.parquet", part)
                for hour, part in table.groupby(hours)]

    def _write(self, path: str, part: pd.DataFrame) -> None:
        """Write one file, retrying with backoff (backoff, 2 x backoff, ...); drop its rows if every attempt fails."""
        for attempt in range(1, self.attempts + 1):
            try:
                fs, fs_path = fsspec.core.url_to_fs(path)
                fs.makedirs(fs_path.rsplit("/", 1)[0], exist_ok=True)
                with fs.open(fs_path, "wb") as fh:
                    part.to_parquet(fh, index=False)
            except Exception as exc:  # the log must never take the server down
                _quietly(self.on_failure)
                if attempt == self.attempts:
                    log.error("inference log: %d rows to %s dropped after %d attempts: %s: %s",
                              len(part), path, attempt, type(exc).__name__, exc)
                    _quietly(self.on_drop, len(part), "write_failed")
                    return
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning("inference log: writing %s failed (attempt %d of %d, retrying in %.1f s): %s: %s",
                            path, attempt, self.attempts, delay, type(exc).__name__, exc)
                time.sleep(delay)
            else:
                _quietly(self.on_write, len(part))
                return

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop."""
        self._stop.set()
        self._thread.join(timeout)
