"""Every verdict of the canary analysis, measured by a real Prometheus as Argo Rollouts measures it.

The real server cannot be made to answer 5xx or shed load on demand, so a small exporter publishes the
server's metric names and labels (serving/metrics.py) with counters that grow at fixed rates: one model
name per scenario, a canary and a stable pod each, all scraped by one Prometheus. The rendered queries
run against it and the successConditions are evaluated on the answers (tests/analysis).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from components.deploy.online import analysis_args
from serving.metrics import BUCKETS, LABELS
from tests.analysis.argo import ERROR, FAILED, SUCCESSFUL, measure, resolve
from tests.conftest import free_port
from tests.manifests.crd import ANALYSIS_TEMPLATE
from tests.serving.test_prometheus import prometheus, scraped_twice  # noqa: F401 (a fixture)

ONLINE = {"max_latency_p95_seconds": 0.1, "max_error_rate": 0.01, "max_client_error_rate_increase": 0.02,
          "max_shed_rate_increase": 0.02}
VERSION = "7"


@dataclass
class Pod:
    """A model-server pod's traffic: `sent` requests a second, of which a share shed (503) before
    admission; of the admitted ones, shares of 4xx and 5xx; every admitted request takes `seconds`."""
    model: str
    role: str
    sent: float = 50.0
    client: float = 0.0
    server: float = 0.0
    shed: float = 0.0
    seconds: float = 0.02
    version: str = VERSION


class Exporter:
    """The pods' counters after `t` seconds, as the server's /metrics page would show them."""

    def __init__(self, pods: list[Pod]):
        self.pods, self.started = pods, time.monotonic()

    def collect(self):
        t = time.monotonic() - self.started
        requests = CounterMetricFamily("model_inference_requests", "admitted", labels=LABELS)
        shed = CounterMetricFamily("model_inference_shed", "shed", labels=LABELS)
        errors = CounterMetricFamily("model_inference_errors", "failed", labels=(*LABELS, "kind"))
        duration = HistogramMetricFamily("model_inference_duration_seconds", "latency", labels=LABELS)
        for pod in self.pods:
            labels = [pod.model, pod.version, pod.role]
            admitted = pod.sent * (1 - pod.shed) * t
            requests.add_metric(labels, admitted)
            shed.add_metric(labels, pod.sent * pod.shed * t)
            errors.add_metric([*labels, "client"], admitted * pod.client)
            errors.add_metric([*labels, "server"], admitted * pod.server)
            buckets = [(str(le), admitted if pod.seconds <= le else 0.0) for le in BUCKETS] + [("+Inf", admitted)]
            duration.add_metric(labels, buckets, admitted * pod.seconds)
        return [requests, shed, errors, duration]


METRICS = ("latency-p95", "error-rate", "client-error-regression", "load-shed-regression")
S, F, E = SUCCESSFUL, FAILED, ERROR
# scenario: (canary, stable or None, verdicts in the order of METRICS)
SCENARIOS = {
    # 4xx at 3 % against stable's 2 %: within the 2-point margin; a rejected older canary does not count
    "clean": (Pod("clean", "canary", client=0.03), Pod("clean", "stable", client=0.02), (S, S, S, S)),
    "slow": (Pod("slow", "canary", seconds=0.2), Pod("slow", "stable"), (F, S, S, S)),
    "server-errors": (Pod("server-errors", "canary", server=0.05), Pod("server-errors", "stable"), (S, F, S, S)),
    "client-regression": (Pod("client-regression", "canary", client=0.06), Pod("client-regression", "stable",
                                                                            client=0.01), (S, S, F, S)),
    "shedding": (Pod("shedding", "canary", shed=0.10), Pod("shedding", "stable", shed=0.01), (S, S, S, F)),
    "no-traffic": (Pod("no-traffic", "canary", sent=0), Pod("no-traffic", "stable"), (E, E, E, E)),
    # no stable baseline: the canary's ratios are compared with 0
    "no-stable": (Pod("no-stable", "canary", client=0.01, shed=0.01), None, (S, S, S, S)),
    "no-stable-regression": (Pod("no-stable-regression", "canary", client=0.05), None, (S, S, F, S)),
}
# other versions and models are out of scope: a failing older canary of "clean", a failing other model
OUT_OF_SCOPE = [Pod("clean", "canary", version="6", server=0.5, client=0.5, shed=0.5, seconds=2.0),
                Pod("unrelated", "stable", client=0.9)]


@pytest.fixture(scope="module")
def exporter():
    registry = CollectorRegistry()
    pods = [pod for canary, stable, _ in SCENARIOS.values() for pod in (canary, stable) if pod] + OUT_OF_SCOPE
    registry.register(Exporter(pods))
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port
    server.shutdown()
    thread.join(timeout=10)


def test_canary_analysis_verdicts(exporter, prometheus):  # noqa: F811
    url = prometheus(exporter)
    scraped_twice(url, targets=1)
    time.sleep(1.5)  # a third scrape: rates from more than two points
    template = yaml.safe_load(ANALYSIS_TEMPLATE.read_text())
    verdicts, values = {}, {}
    for scenario in SCENARIOS:
        metrics = resolve(template, analysis_args(scenario, VERSION, ONLINE))
        measured = {name: measure(url, metrics[name]) for name in METRICS}
        verdicts[scenario] = tuple(phase for phase, _ in measured.values())
        values[scenario] = {name: value for name, (_, value) in measured.items()}
    assert verdicts == {name: expected for name, (_, _, expected) in SCENARIOS.items()}, values
    # the values themselves: ratios of rates are exact for counters that grow linearly
    clean = values["clean"]
    assert clean["error-rate"] == [0.0]
    assert clean["client-error-regression"] == [pytest.approx(0.01)]
    assert clean["load-shed-regression"] == [0.0]
    assert values["shedding"]["load-shed-regression"] == [pytest.approx(0.09)]
    assert values["server-errors"]["error-rate"] == [pytest.approx(0.05)]
    assert 0.015 < clean["latency-p95"][0] <= 0.02 and 0.15 < values["slow"]["latency-p95"][0] <= 0.25
    assert values["no-traffic"] == dict.fromkeys(METRICS, [])
