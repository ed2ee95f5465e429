"""The HTTP application of one worker process (ASGI, served by uvicorn)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving import metrics
from serving.batching import MicroBatcher
from serving.config import READY_DIR_ENV, Settings
from serving.inference_log import InferenceLogger
from serving.model import ServedModel, load
from serving.requests import ClientError, rows_from_body

log = logging.getLogger("serving")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def json_response(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")


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
                s.inference_log_flush_seconds,
                on_drop=lambda n: metrics.LOG_DROPPED.labels(*self.labels()).inc(n),
                on_write=lambda n: metrics.LOG_WRITTEN.labels(*self.labels()).inc(n))
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
        """One prediction request: KServe v1 `:predict` or MLflow's `/invocations`."""
        started = time.perf_counter()
        labels = self.labels()
        metrics.REQUESTS.labels(*labels).inc()
        try:
            if self.model is None:
                metrics.ERRORS.labels(*labels, "server").inc()
                return json_response({"error": "model not loaded yet" if self.load_error is None
                                      else f"model failed to load: {self.load_error}"}, 503)
            if kserve and request.path_params["name"] != self.name:
                raise ClientError(404, f"no model named {request.path_params['name']!r}; this server serves "
                                       f"{self.name!r}")
            payload = await self._read_json(request)
            rows, where = rows_from_body(payload)
            if kserve and where != "instances":
                raise ClientError(400, "the body must hold 'instances': a list of feature -> value objects")
            checked = self.model.reader.check(rows, where)
            predicted, proba = await self.batcher.submit(checked)
            metrics.ROWS.labels(*labels).inc(len(checked))
            # labels as in the training data ("yes", 1, true): tolist() gives JSON-native values
            if not kserve:
                return json_response({"predictions": predicted.tolist()})
            return json_response({"predictions": predicted.tolist(), "probabilities": proba,
                                  "model_version": self.version})
        except ClientError as exc:
            metrics.ERRORS.labels(*labels, "client").inc()
            return json_response(exc.body(), exc.status)
        except Exception:
            metrics.ERRORS.labels(*labels, "server").inc()
            log.exception("prediction failed")
            return json_response({"error": "internal error while predicting; see the server log"}, 500)
        finally:
            metrics.DURATION.labels(*labels).observe(time.perf_counter() - started)

    async def _read_json(self, request: Request):
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ClientError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes (MAX_BODY_BYTES)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ClientError(413, f"body exceeds the limit of {limit} bytes (MAX_BODY_BYTES)")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            try:  # MLflow clients send NaN for missing values, which strict JSON parsers refuse
                return json.loads(body, parse_constant=lambda c: None if c == "NaN" else float(c))
            except ValueError:
                raise ClientError(400, f"malformed JSON: {exc}") from None


def create_app(settings: Settings | None = None) -> Starlette:
    worker = Worker(settings or Settings.from_env())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        def predict(rows):
            """One model call for a micro-batch; its rows go to the inference log from here."""
            labels = worker.labels()
            metrics.BATCH_ROWS.labels(*labels).observe(len(rows))
            frame = worker.model.reader.frame(rows)
            predicted, proba = worker.model.predict(frame)
            if worker.logger:
                worker.logger.log(frame, predicted, proba, worker.version, labels[2])
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
                              "contract": f"{c.name} v{c.version}", "features": c.features})

    return Starlette(routes=[
        Route("/v1/health/live", live),
        Route("/v1/health/ready", ready),
        Route("/v1/models/{name}", metadata),
        Route("/v1/models/{name}:predict", kserve, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ready),
    ], lifespan=lifespan)
