"""Micro-batching: the rows of concurrent requests share one model call.

Requests submitted in the same event-loop turn are taken together (up to MAX_BATCH_SIZE rows); when more than
one is waiting, others get MAX_BATCH_WAIT_MS to join. A lone request is predicted at once, so batching costs
nothing at low load. A batch of at most MAX_BATCH_SIZE rows is predicted on the event loop: it takes a couple
of milliseconds, less than handing it to a thread costs under load. A larger one (a request with many rows) is
predicted in a worker thread, so the loop keeps serving meanwhile. One batch is predicted at a time.
`predict(rows, tags, positions)` gets each row's tag (the request id of its request) and its position in its request
(from 0).
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

log = logging.getLogger("serving")


class MicroBatcher:
    def __init__(self, predict, max_batch_size: int, max_wait_ms: float):
        self.predict, self.max_rows, self.max_wait = predict, max_batch_size, max_wait_ms / 1000
        self.waiting: deque = deque()  # (rows, tag, done)
        self.waiting_rows = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.busy = False  # a turn is scheduled, or a batch is being predicted in the thread

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self.executor.shutdown(wait=True)

    def add(self, rows: list, tag, done) -> None:
        """Queue `rows`; `done(result, error)` is called once, on the event loop, with `predict`'s
        (labels, probabilities) for these rows or the exception that prevented them."""
        self.waiting.append((rows, tag, done))
        self.waiting_rows += len(rows)
        if not self.busy:
            self.busy = True
            self.loop.call_soon(self._turn)

    async def submit(self, rows: list, tag=None) -> tuple[np.ndarray, np.ndarray]:
        """`predict` results for these rows, computed together with other requests' rows."""
        future = self.loop.create_future()
        self.add(rows, tag, lambda result, error: _settle(future, result, error))
        return await future

    def _turn(self, waited: bool = False) -> None:
        if not waited and len(self.waiting) > 1 and self.waiting_rows < self.max_rows and self.max_wait > 0:
            self.loop.call_later(self.max_wait, self._turn, True)
            return
        while self.waiting:
            batch = [self.waiting.popleft()]
            rows = len(batch[0][0])
            while self.waiting and rows + len(self.waiting[0][0]) <= self.max_rows:
                batch.append(self.waiting.popleft())
                rows += len(batch[-1][0])
            self.waiting_rows -= rows
            if rows > self.max_rows:
                try:
                    self.loop.run_in_executor(self.executor, self._predict, batch).add_done_callback(
                        lambda outcome: self._deliver(batch, _outcomes(outcome, len(batch)), then=self._turn))
                    return
                except RuntimeError as exc:  # the executor is shut down: the server is stopping
                    self._deliver(batch, [(None, exc)] * len(batch))
                    continue
            self._deliver(batch, self._predict(batch))
        self.busy = False

    def _predict(self, batch: list) -> list[tuple]:
        """Each request's (result, error): one call for all; after a failure, each alone, so that one bad
        request cannot fail the others."""
        sizes = np.fromiter((len(rows) for rows, _, _ in batch), np.int64, len(batch))
        positions = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        try:
            labels, proba = self.predict([row for rows, _, _ in batch for row in rows],
                                         [tag for rows, tag, _ in batch for _ in rows], positions)
        except Exception as exc:
            if len(batch) == 1:
                return [(None, exc)]
            outcomes = []
            for rows, tag, _ in batch:
                try:
                    outcomes.append((self.predict(rows, [tag] * len(rows), np.arange(len(rows))), None))
                except Exception as alone:
                    outcomes.append((None, alone))
            return outcomes
        outcomes, start = [], 0
        for rows, _, _ in batch:
            outcomes.append(((labels[start:start + len(rows)], proba[start:start + len(rows)]), None))
            start += len(rows)
        return outcomes

    @staticmethod
    def _deliver(batch: list, outcomes: list[tuple], then=None) -> None:
        for (_, _, done), (result, error) in zip(batch, outcomes):
            try:
                done(result, error)
            except Exception:  # one answer that cannot be sent must not stop the others
                log.exception("answering a predicted request failed")
        if then:
            then()


def _outcomes(outcome: asyncio.Future, n: int) -> list[tuple]:
    """The thread's per-request outcomes; if it gave none (cancelled at shutdown), the reason, for each."""
    try:
        return outcome.result()
    except BaseException as exc:
        return [(None, exc)] * n


def _settle(future: asyncio.Future, result=None, error: Exception | None = None) -> None:
    if future.done():  # the request went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
