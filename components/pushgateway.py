"""Pushing a step's gauges to a Prometheus Pushgateway: a failure is logged and returned, never raised."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def push(url: str, job: str, registry, grouping_key: dict | None = None, add: bool = False,
         timeout: float = 10.0) -> dict:
    """Push `registry` to the group job=`job` (+ `grouping_key`): replacing the group's series, or with `add`
    only those pushed. `{"url", "pushed"}`, plus `"error"` when the push failed."""
    from prometheus_client import push_to_gateway, pushadd_to_gateway

    try:
        (pushadd_to_gateway if add else push_to_gateway)(url, job=job, registry=registry,
                                                         grouping_key=grouping_key or {}, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a failed push never fails the step
        log.error("push to the Pushgateway %s (job %s) failed: %s: %s", url, job, type(exc).__name__, exc)
        return {"url": url, "pushed": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"url": url, "pushed": True}
