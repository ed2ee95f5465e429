"""Micro-batching: the rows of concurrent requests share one model call.

The loop takes whatever requests are queued (up to MAX_BATCH_SIZE rows); when more than one request is
waiting it gives others MAX_BATCH_WAIT_MS to join. A lone request is predicted at once, so batching
costs nothing at low load. Prediction runs in one worker thread, so the event loop keeps reading
requests meanwhile. `predict(rows, tags)` gets each row's tag (the request id of its request).
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class MicroBatcher:
    def __init__(self, predict, max_batch_size: int, max_wait_ms: float):
        self.predict, self.max_rows, self.max_wait = predict, max_batch_size, max_wait_ms / 1000
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        self.executor.shutdown(wait=True)

    async def submit(self, rows: list, tag=None) -> tuple[np.ndarray, np.ndarray]:
        """`predict` results for these rows, computed together with other requests' rows."""
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((rows, tag, future))
        return await future

    def _take(self, items: list, rows: int) -> int:
        while rows < self.max_rows and not self.queue.empty():
            item = self.queue.get_nowait()
            items.append(item)
            rows += len(item[0])
        return rows

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            rows = self._take(items, len(items[0][0]))
            if 1 < len(items) and rows < self.max_rows and self.max_wait > 0:
                await asyncio.sleep(self.max_wait)
                rows = self._take(items, rows)
            batch = [row for rows, _, _ in items for row in rows]
            tags = [tag for rows, tag, _ in items for _ in rows]
            try:
                labels, proba = await loop.run_in_executor(self.executor, self.predict, batch, tags)
            except Exception as exc:
                if len(items) == 1:
                    _settle(items[0][2], error=exc)
                    continue
                for rows, tag, future in items:  # alone, so one bad request cannot fail the others
                    try:
                        _settle(future, await loop.run_in_executor(self.executor, self.predict, rows,
                                                                   [tag] * len(rows)))
                    except Exception as alone:
                        _settle(future, error=alone)
                continue
            start = 0
            for rows, _, future in items:
                end = start + len(rows)
                _settle(future, (labels[start:end], proba[start:end]))
                start = end


def _settle(future: asyncio.Future, result=None, error: Exception | None = None) -> None:
    if future.done():  # the request went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
