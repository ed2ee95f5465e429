"""The HTTP application of one worker process (ASGI, served by uvicorn)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from pathlib import Path

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from serving import metrics
from serving.batching import MicroBatcher
from serving.config import READY_DIR_ENV, Settings
from serving.inference_log import InferenceLogger
from serving.model import ServedModel, load
from serving.requests import ClientError, parse_json, rows_from_body

log = logging.getLogger("serving")
RETRY_AFTER = 1          # seconds, in the Retry-After header of a 503
OFF_LOOP_BYTES = 65_536  # bodies larger than this are parsed and checked in a thread, off the event loop
BODY_LATE_JSON = orjson.dumps({"error": "the request body did not arrive within BODY_TIMEOUT_SECONDS"})
PREDICT_FAILED = orjson.dumps({"error": "internal error while predicting; see the server log"})
SHED_BODY = orjson.dumps({"error": f"overloaded: this worker already holds MAX_IN_FLIGHT requests; "
                                   f"retry after {RETRY_AFTER} s"})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def request_id_of(scope: dict) -> str:
    """The caller's X-Request-ID if it is a plain token (1-128 visible ASCII characters), else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id" and 0 < len(value) <= 128 and all(33 <= c <= 126 for c in value):
            return value.decode("ascii")
    return f"{random.getrandbits(128):032x}"  # 128 random bits as uuid4().hex gives, without a syscall


def is_prediction(scope: dict) -> bool:
    path = scope["path"]
    return scope["method"] == "POST" and (path == "/invocations" or
                                          (path.startswith("/v1/models/") and path.endswith(":predict")))


class Admission:
    """Bounds the prediction requests a worker holds (MAX_IN_FLIGHT); beyond it, 503 with Retry-After at once.

    Plain ASGI around the application, so a shed request costs as little as possible: under a flood, the
    event loop's time goes to the admitted requests rather than to refusing the others.
    """

    current: "Admission | None" = None  # this process's, for serving.protocol

    def __init__(self, app, worker: "Worker"):
        self.app, self.worker, self.in_flight = app, worker, 0
        self.limit = worker.settings.max_in_flight
        Admission.current = self

    def admit(self) -> bool:
        """Take a slot for one prediction request, if there is one."""
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not is_prediction(scope):
            return await self.app(scope, receive, send)
        scope["request_id"] = request_id = request_id_of(scope)
        # a request serving.protocol admitted while parsing it holds its slot already
        if not scope.pop("admitted", False) and not self.admit():  # no body read, no queueing
            metrics.SHED.labels(*self.worker.labels()).inc()
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", str(RETRY_AFTER).encode()),
                (b"x-request-id", request_id.encode())]})
            await send({"type": "http.response.body", "body": SHED_BODY})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.release()


def json_response(body: dict | bytes, status: int = 200, request_id: str | None = None,
                  retry: bool = False) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else {}
    if retry:
        headers["Retry-After"] = str(RETRY_AFTER)
    content = body if isinstance(body, bytes) else orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, status, headers, media_type="application/json")


class Worker:
    """One process's state: the model (loaded in the background), the batcher and the inference log."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.model: ServedModel | None = None
        self.load_error: str | None = None
        self.role = metrics.Role(settings.model_role, settings.model_role_file)
        self.batcher: MicroBatcher | None = None
        self.logger: InferenceLogger | None = None
        self.name = settings.model_name or "model"
        self.version = settings.model_version or "loading"

    def labels(self) -> tuple[str, str, str]:
        return self.name, self.version, self.role()

    def load(self) -> None:
        s = self.settings
        try:
            model = load(s.model_path, s.model_name, s.model_version, s.schema_uri, s.model_sha256)
        except Exception as exc:  # readiness stays false and says why
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("model failed to load, readiness stays false: %s", self.load_error)
            return
        self.name, self.version = model.info.name, model.info.version
        metrics.initialise(*self.labels())
        if s.inference_log_uri:
            self.logger = InferenceLogger(
                s.inference_log_uri, self.name, s.inference_log_sample_rate, s.inference_log_queue_size,
                s.inference_log_flush_seconds, attempts=s.inference_log_attempts,
                backoff_seconds=s.inference_log_backoff_seconds,
                on_drop=lambda n, reason: metrics.LOG_DROPPED.labels(*self.labels(), reason).inc(n),
                on_write=lambda n: metrics.LOG_WRITTEN.labels(*self.labels()).inc(n),
                on_failure=lambda: metrics.LOG_FAILURES.labels(*self.labels()).inc())
        self.model = model
        if READY_DIR_ENV in os.environ:  # tell the other workers, for the pod's readiness
            Path(os.environ[READY_DIR_ENV], str(os.getpid())).touch()

    def all_workers_ready(self) -> bool:
        """Readiness is the pod's: every worker process has its model, not just the one asked."""
        folder = os.environ.get(READY_DIR_ENV)
        if self.model is None:
            return False
        if not folder:
            return True
        alive = [p for p in Path(folder).iterdir() if _alive(int(p.name))]
        return len(alive) >= self.settings.workers

    async def predict(self, request: Request, kserve: bool) -> Response:
        """One prediction request: KServe v1 `:predict` or MLflow's `/invocations`. Every answer carries
        X-Request-ID: the caller's, or one made here; the inference log records it with each row."""
        request_id = request.scope["request_id"]
        labels = self.labels()
        started = time.perf_counter()
        metrics.REQUESTS.labels(*labels).inc()
        try:
            if self.model is None:
                metrics.ERRORS.labels(*labels, "server").inc()
                return json_response({"error": "model not loaded yet" if self.load_error is None
                                      else f"model failed to load: {self.load_error}"}, 503, request_id,
                                     retry=self.load_error is None)
            if kserve and request.path_params["name"] != self.name:
                raise ClientError(404, f"no model named {request.path_params['name']!r}; this server serves "
                                       f"{self.name!r}")
            try:
                async with asyncio.timeout(self.settings.body_timeout_seconds):
                    body = await self._read_body(request)
            except TimeoutError:  # a trickled or stalled upload must not hold its slot: 408, and close
                metrics.ERRORS.labels(*labels, "client").inc()
                return Response(BODY_LATE_JSON, 408, {"X-Request-ID": request_id, "Connection": "close"},
                                media_type="application/json")
            if len(body) > OFF_LOOP_BYTES:  # parse and check in a thread: other requests keep being served
                checked = await asyncio.get_running_loop().run_in_executor(None, self._rows, body, kserve)
            else:
                checked = self._rows(body, kserve)
            result = await self.batcher.submit(checked, request_id)
            return json_response(self.answer(labels, checked, result, kserve), request_id=request_id)
        except ClientError as exc:
            metrics.ERRORS.labels(*labels, "client").inc()
            return json_response(exc.body(), exc.status, request_id)
        except ClientDisconnect:  # gone before its body arrived: the client's doing, not a server error
            metrics.ERRORS.labels(*labels, "client").inc()
            return json_response({"error": "the client went away"}, 400, request_id)  # nobody to send it to
        except Exception:
            return json_response(self.failed(labels, request_id), 500, request_id)
        finally:
            metrics.DURATION.labels(*labels).observe(time.perf_counter() - started)

    def answer(self, labels: tuple, rows: list, result: tuple, kserve: bool) -> bytes:
        """The body of a 200, its rows and those decided positive counted: labels decided at the model's threshold,
        as in the training data ("yes", 1, true; tolist() gives JSON-native values) and, for KServe, the positive
        class's probabilities."""
        predicted, proba = result
        body = {"predictions": predicted.tolist()}
        if kserve:
            body.update(probabilities=proba, model_version=self.version)
        content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        metrics.ROWS.labels(*labels).inc(len(rows))
        metrics.PREDICTED_POSITIVE.labels(*labels).inc(int(np.count_nonzero(self.model.decide(proba))))
        return content

    @staticmethod
    def failed(labels: tuple, request_id: str) -> bytes:
        """The body of a 500, called while handling the exception: counted and logged."""
        metrics.ERRORS.labels(*labels, "server").inc()
        log.exception("prediction failed (request %s)", request_id)
        return PREDICT_FAILED

    def predict_now(self, kserve: bool, name: str | None, body: bytes, request_id: str, reply) -> bool:
        """The direct path of serving.protocol, for a small body already read whole: no ASGI task, no response
        object. False, with nothing done, for what `predict` answers with an error (no model yet, another
        model's name, rows the contract refuses); else True, and later `reply(status, body bytes)` once."""
        if self.model is None or (kserve and name != self.name):
            return False
        started = time.perf_counter()
        try:
            rows = self._rows(body, kserve)
        except Exception:  # predict answers it: a 4xx naming the problem, or a 500 logged
            return False
        labels = self.labels()
        metrics.REQUESTS.labels(*labels).inc()

        def done(result, error) -> None:
            try:
                if error is not None:
                    raise error
                status, body = 200, self.answer(labels, rows, result, kserve)
            except Exception:
                status, body = 500, self.failed(labels, request_id)
            metrics.DURATION.labels(*labels).observe(time.perf_counter() - started)
            reply(status, body)

        self.batcher.add(rows, request_id, done)
        return True

    def _rows(self, body: bytes, kserve: bool) -> list[dict]:
        """The body's rows, checked against the contract."""
        rows, where = rows_from_body(parse_json(body))
        if kserve and where != "instances":
            raise ClientError(400, "the body must hold 'instances': a list of feature -> value objects")
        return self.model.reader.check(rows, where)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ClientError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes (MAX_BODY_BYTES)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ClientError(413, f"body exceeds the limit of {limit} bytes (MAX_BODY_BYTES)")
        return bytes(body)


def create_app(settings: Settings | None = None) -> Admission:
    worker = Worker(settings or Settings.from_env())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        def predict(rows, request_ids, positions):
            """One model call for a micro-batch; its rows go to the inference log from here, each with its
            request's id and its position in that request."""
            labels = worker.labels()
            metrics.BATCH_ROWS.labels(*labels).observe(len(rows))
            frame = worker.model.reader.frame(rows)
            predicted, proba = worker.model.predict(frame)
            if worker.logger:
                worker.logger.log(frame, predicted, proba, worker.version, labels[2], request_ids, positions)
            return predicted, proba

        worker.batcher = MicroBatcher(predict,
                                      worker.settings.max_batch_size, worker.settings.max_batch_wait_ms)
        worker.batcher.start()
        threading.Thread(target=worker.load, name="model-loader", daemon=True).start()
        yield
        await worker.batcher.stop()
        if worker.logger:
            await asyncio.get_running_loop().run_in_executor(None, worker.logger.close)

    async def live(request):
        return json_response({"status": "alive"})

    async def ready(request):
        if not worker.all_workers_ready():
            reason = worker.load_error or ("loading" if worker.model is None else "other workers loading")
            return json_response({"status": "not ready", "reason": reason}, 503)
        return json_response({"status": "ready", "model": worker.name, "model_version": worker.version})

    async def kserve(request):
        return await worker.predict(request, kserve=True)

    async def invocations(request):
        return await worker.predict(request, kserve=False)

    async def metadata(request):
        if worker.model is None:
            return json_response({"error": "model not loaded yet"}, 503)
        c = worker.model.contract
        return json_response({"name": worker.name, "model_version": worker.version,
                              "contract": f"{c.name} v{c.version}", "features": c.features,
                              "threshold": worker.model.threshold})

    return Admission(Starlette(routes=[
        Route("/v1/health/live", live),
        Route("/v1/health/ready", ready),
        Route("/v1/models/{name}", metadata),
        Route("/v1/models/{name}:predict", kserve, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ready),
    ], lifespan=lifespan), worker)
