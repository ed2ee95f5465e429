"""Start the server: the metrics port in this process, WORKERS uvicorn processes for HTTP."""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile

from serving.config import READY_DIR_ENV, Settings


def run(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    multiproc_dir = tempfile.mkdtemp(prefix="mlops-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir  # before prometheus_client is imported
    os.environ[READY_DIR_ENV] = tempfile.mkdtemp(prefix="mlops-ready-")
    os.environ.update(settings.to_env())  # workers read their settings from the environment
    # one BLAS/OpenMP thread per worker: workers, not threads, use the cores
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import uvicorn

    from serving import metrics

    if settings.fail_fast:
        from serving.model import load

        try:
            load(settings.model_path, settings.model_uri, settings.model_name, settings.model_version,
                 settings.schema_uri)
        except Exception as exc:
            logging.getLogger("serving").error("model failed to load (FAIL_FAST): %s: %s", type(exc).__name__, exc)
            return 1
    metrics.serve(settings.metrics_port, settings.host)
    try:
        uvicorn.run("serving.app:create_app", factory=True, host=settings.host, port=settings.port,
                    workers=settings.workers, access_log=False, timeout_graceful_shutdown=20,
                    # a spawned worker answers uvicorn's health check only once its imports are done (~5 s
                    # on a busy core); the default 5 s kills it in a loop
                    timeout_worker_healthcheck=60, log_level="info")
    finally:
        shutil.rmtree(multiproc_dir, ignore_errors=True)
        shutil.rmtree(os.environ[READY_DIR_ENV], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(Settings.from_env()))
