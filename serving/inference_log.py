"""The inference log: sampled request rows with prediction, model version, role and time, as Parquet.

Files land under INFERENCE_LOG_URI as `model=<name>/hour=<YYYY-MM-DDTHH>/part-<time>-<pid>-<id>.parquet`
(hive partitions; `pyarrow.dataset.dataset(uri, partitioning="hive")` reads them). Requests only enqueue;
a thread writes. A full queue drops rows (counted) instead of slowing requests; close() flushes.
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


class InferenceLogger:
    def __init__(self, uri: str, model: str, sample_rate: float = 1.0, queue_size: int = 10_000,
                 flush_seconds: float = 5.0, max_file_rows: int = 100_000, on_drop=None, on_write=None):
        self.uri, self.model = uri.rstrip("/"), model
        self.sample_rate, self.flush_seconds, self.max_file_rows = sample_rate, flush_seconds, max_file_rows
        self.on_drop, self.on_write = on_drop or (lambda n: None), on_write or (lambda n: None)
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.rng = np.random.default_rng()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def log(self, frame: pd.DataFrame, predictions, probabilities, version: str, role: str) -> None:
        """Enqueue a request's rows (sampled); never blocks."""
        if self.sample_rate < 1.0:
            keep = self.rng.random(len(frame)) < self.sample_rate
            if not keep.any():
                return
            frame, predictions, probabilities = frame[keep], predictions[keep], probabilities[keep]
        try:
            self.queue.put_nowait((frame, predictions, probabilities, version, role, datetime.now(timezone.utc)))
        except queue.Full:
            self.on_drop(len(frame))

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
                self._write(pending)
                pending, rows, last = [], 0, time.monotonic()
        if pending:
            self._write(pending)

    def _write(self, items: list) -> None:
        frames = []
        for frame, predictions, probabilities, version, role, at in items:
            frames.append(frame.reset_index(drop=True).assign(
                prediction=predictions, probability=probabilities, model_version=version, role=role,
                timestamp=pd.Timestamp(at)))
        table = pd.concat(frames, ignore_index=True)
        table["timestamp"] = table["timestamp"].astype("datetime64[ms, UTC]")
        hours = table["timestamp"].dt.strftime("%Y-%m-%dT%H")
        stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for hour, part in table.groupby(hours):
            path = f"{self.uri}/model={self.model}/hour={hour}/part-{stamp}.parquet"
            try:
                fs, fs_path = fsspec.core.url_to_fs(path)
                fs.makedirs(fs_path.rsplit("/", 1)[0], exist_ok=True)
                with fs.open(fs_path, "wb") as fh:
                    part.to_parquet(fh, index=False)
                self.on_write(len(part))
            except Exception:  # the log must never take the server down
                log.exception("inference log: could not write %d rows to %s", len(part), path)
                self.on_drop(len(part))

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop."""
        self._stop.set()
        self._thread.join(timeout)
