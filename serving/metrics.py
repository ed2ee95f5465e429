"""Prometheus metrics: names and labels are a contract with the canary AnalysisTemplate.

Workers are separate processes, so metrics use prometheus_client's multiprocess mode: every process
writes its samples under PROMETHEUS_MULTIPROC_DIR, and the metrics port serves their sum. The variable
must be set before prometheus_client is first imported (`serving.server` does it).
"""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

LABELS = ("model", "model_version", "role")
# Resolves 5-100 ms finely: the canary analysis compares p95 latency against 100 ms.
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.075,
           0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)

DURATION = Histogram("model_inference_duration_seconds", "Prediction request latency, body read to response.",
                     LABELS, buckets=BUCKETS)
BATCH_ROWS = Histogram("model_inference_batch_rows", "Rows per model call after micro-batching.", LABELS,
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024))
REQUESTS = Counter("model_inference_requests_total",
                   "Prediction requests admitted (shed ones are counted in model_inference_shed_total only).", LABELS)
ROWS = Counter("model_inference_rows_total", "Rows predicted.", LABELS)
PREDICTED_POSITIVE = Counter("model_inference_predicted_positive_total",
                             "Rows decided positive: the positive class's probability at least the model's "
                             "decision threshold.", LABELS)
ERRORS = Counter("model_inference_errors_total",
                 "Failed prediction requests: kind=client for rejected requests, kind=server for failures "
                 "inside the server or model.", (*LABELS, "kind"))
SHED = Counter("model_inference_shed_total",
               "Prediction requests refused with 503 because the worker already held MAX_IN_FLIGHT requests; "
               "not errors: the canary's error rate does not count them.", LABELS)
LOG_DROPPED = Counter("model_inference_log_dropped_rows_total",
                      "Inference-log rows dropped: reason=queue_full (the write queue was full) or "
                      "reason=write_failed (every write attempt failed).", (*LABELS, "reason"))
LOG_WRITTEN = Counter("model_inference_log_written_rows_total", "Inference-log rows written.", LABELS)
LOG_FAILURES = Counter("model_inference_log_write_failures_total",
                       "Failed inference-log write attempts (retried ones included) and writer errors.", LABELS)


class Role:
    """The pod's role: MODEL_ROLE at start, then the downward-API file, which follows label changes."""

    def __init__(self, initial: str, path: str | None, ttl: float = 5.0):
        self.value, self.path, self.ttl, self.read_at = initial, path, ttl, 0.0

    def __call__(self) -> str:
        if self.path and time.monotonic() - self.read_at > self.ttl:
            self.read_at = time.monotonic()
            try:
                with open(self.path) as fh:
                    self.value = fh.read().strip().strip('"') or self.value
            except (OSError, UnicodeDecodeError):  # unreadable: keep the last value
                pass
        return self.value


def initialise(model: str, version: str, role: str) -> None:
    """Create every series at zero, so error rates read 0 rather than 'no data' on clean traffic."""
    for kind in ("client", "server"):
        ERRORS.labels(model, version, role, kind)
    for reason in ("queue_full", "write_failed"):
        LOG_DROPPED.labels(model, version, role, reason)
    for metric in (REQUESTS, ROWS, PREDICTED_POSITIVE, SHED, LOG_WRITTEN, LOG_FAILURES):
        metric.labels(model, version, role)


def serve(port: int, host: str = "0.0.0.0") -> None:
    """Serve the sum of all workers' metrics on `port` (a thread of the calling process)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)
