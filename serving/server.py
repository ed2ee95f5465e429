"""Start the server: the metrics port in this process, WORKERS uvicorn processes for HTTP."""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from dataclasses import replace

from serving.config import READY_DIR_ENV, Settings

log = logging.getLogger("serving")


def pin(settings: Settings, folder: str) -> Settings:
    """The workers' settings: a MODEL_URI resolved once (an alias to the version it names now), pulled
    into `folder` and checked there, so every worker loads that one folder, whatever the alias does next."""
    if settings.model_path or not settings.model_uri:
        return settings
    from serving.model import pull

    info = pull(settings.model_uri, folder, settings.model_sha256)
    log.info("%s pinned to %s version %s, model file sha256 %s", settings.model_uri, info.name, info.version,
             info.model_sha256)
    return replace(settings, model_uri=None, model_path=folder, model_sha256=info.model_sha256)


def run(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    multiproc_dir = tempfile.mkdtemp(prefix="mlops-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir  # before prometheus_client is imported
    os.environ[READY_DIR_ENV] = tempfile.mkdtemp(prefix="mlops-ready-")
    model_dir = tempfile.mkdtemp(prefix="mlops-model-")
    try:
        return _serve(settings, f"{model_dir}/model")
    finally:
        for folder in (multiproc_dir, os.environ[READY_DIR_ENV], model_dir):
            shutil.rmtree(folder, ignore_errors=True)


def _serve(settings: Settings, model_dir: str) -> int:
    try:
        settings = pin(settings, model_dir)
    except Exception as exc:  # no worker starts: there is no model to serve
        log.error("model %s cannot be served: %s: %s", settings.model_uri, type(exc).__name__, exc)
        return 1
    os.environ.pop(Settings.env_name("model_uri"), None)  # workers load the pinned folder
    os.environ.update(settings.to_env())  # workers read their settings from the environment
    # one BLAS/OpenMP thread per worker: workers, not threads, use the cores
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import uvicorn

    from serving import metrics
    from serving.protocol import ServingProtocol

    if settings.fail_fast:
        from serving.model import load

        try:
            load(settings.model_path, settings.model_name, settings.model_version, settings.schema_uri,
                 settings.model_sha256)
        except Exception as exc:
            log.error("model failed to load (FAIL_FAST): %s: %s", type(exc).__name__, exc)
            return 1
    metrics.serve(settings.metrics_port, settings.host)
    # a spawned worker re-imports the entry module before it can answer the supervisor's health pings,
    # which takes longer than uvicorn's default 5 s on a busy machine: it would be killed, again and again
    uvicorn.run("serving.app:create_app", factory=True, http=ServingProtocol, host=settings.host,
                port=settings.port, workers=settings.workers, access_log=False, timeout_graceful_shutdown=20,
                log_level="info", timeout_worker_healthcheck=60)
    return 0


if __name__ == "__main__":
    sys.exit(run(Settings.from_env()))
