"""Every verdict of the canary analysis, measured by a real Prometheus as Argo Rollouts measures it.

The real server cannot be made to answer 5xx, shed load or flag a chosen share on demand, so a small exporter
publishes the
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
from tests.analysis.argo import ERROR, FAILED, INCONCLUSIVE, SUCCESSFUL, measure, resolve
from tests.conftest import free_port
from tests.manifests.crd import ANALYSIS_TEMPLATE
from tests.serving.test_prometheus import prometheus, scraped_twice  # noqa: F401 (a fixture)

ONLINE = {"max_latency_p95_seconds": 0.1, "max_error_rate": 0.01, "max_client_error_rate_increase": 0.02,
          "max_shed_rate_increase": 0.02, "max_flag_rate_ratio_drift": 2, "min_flagged_for_flag_rate": 20}
VERSION = "7"


@dataclass
class Pod:
    """A model-server pod's traffic: `sent` requests a second, of which a share shed (503) before
    admission; of the admitted ones, shares of 4xx and 5xx; every admitted request takes `seconds` and
    carries `rows` rows, of which a share `flagged` is decided positive."""
    model: str
    role: str
    sent: float = 50.0
    client: float = 0.0
    server: float = 0.0
    shed: float = 0.0
    seconds: float = 0.02
    rows: float = 20.0
    flagged: float = 0.05
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
        rows = CounterMetricFamily("model_inference_rows", "predicted", labels=LABELS)
        positive = CounterMetricFamily("model_inference_predicted_positive", "decided positive", labels=LABELS)
        for pod in self.pods:
            labels = [pod.model, pod.version, pod.role]
            admitted = pod.sent * (1 - pod.shed) * t
            requests.add_metric(labels, admitted)
            shed.add_metric(labels, pod.sent * pod.shed * t)
            errors.add_metric([*labels, "client"], admitted * pod.client)
            errors.add_metric([*labels, "server"], admitted * pod.server)
            buckets = [(str(le), admitted if pod.seconds <= le else 0.0) for le in BUCKETS] + [("+Inf", admitted)]
            duration.add_metric(labels, buckets, admitted * pod.seconds)
            rows.add_metric(labels, admitted * pod.rows)
            positive.add_metric(labels, admitted * pod.rows * pod.flagged)
        return [requests, shed, errors, duration, rows, positive]


METRICS = ("latency-p95", "error-rate", "client-error-regression", "load-shed-regression", "flag-rate-drift")
S, F, E, N = SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE  # N: inconclusive
# Rows decided positive: 1000 rows a second at 5 % are 50 a second, well over 20 in the seconds of data the
# window holds here; 0.02 % are 0.2 a second, under 20 for the first 100 seconds.
FEW = 0.0002
# scenario: (canary, stable or None, verdicts in the order of METRICS)
SCENARIOS = {
    # 4xx at 3 % against stable's 2 %: within the 2-point margin; a rejected older canary does not count
    "clean": (Pod("clean", "canary", client=0.03), Pod("clean", "stable", client=0.02), (S, S, S, S, S)),
    "slow": (Pod("slow", "canary", seconds=0.2), Pod("slow", "stable"), (F, S, S, S, S)),
    "server-errors": (Pod("server-errors", "canary", server=0.05), Pod("server-errors", "stable"), (S, F, S, S, S)),
    "client-regression": (Pod("client-regression", "canary", client=0.06), Pod("client-regression", "stable",
                                                                            client=0.01), (S, S, F, S, S)),
    "shedding": (Pod("shedding", "canary", shed=0.10), Pod("shedding", "stable", shed=0.01), (S, S, S, F, S)),
    # a tuned threshold that flags 3x what production flags, as its evaluation measured (EXPECTED): a pass
    "tuned": (Pod("tuned", "canary", flagged=0.15), Pod("tuned", "stable", flagged=0.05), (S, S, S, S, S)),
    # the same expectation, but the canary flags 12x: 4x what was expected
    "tuned-4x": (Pod("tuned-4x", "canary", flagged=0.6), Pod("tuned-4x", "stable", flagged=0.05), (S, S, S, S, F)),
    # a quarter of what was expected (1): the lower bound fails too
    "quiet": (Pod("quiet", "canary", flagged=0.0125), Pod("quiet", "stable", flagged=0.05), (S, S, S, S, F)),
    # too few rows decided positive on either side: inconclusive, whatever the ratio
    "few-flags": (Pod("few-flags", "canary", flagged=FEW), Pod("few-flags", "stable"), (S, S, S, S, N)),
    "few-stable-flags": (Pod("few-stable-flags", "canary"), Pod("few-stable-flags", "stable", flagged=FEW),
                         (S, S, S, S, N)),
    "no-traffic": (Pod("no-traffic", "canary", sent=0), Pod("no-traffic", "stable"), (E, E, E, E, N)),
    # no stable baseline: the canary's ratios are compared with 0; its flag rate with nothing
    "no-stable": (Pod("no-stable", "canary", client=0.01, shed=0.01), None, (S, S, S, S, N)),
    "no-stable-regression": (Pod("no-stable-regression", "canary", client=0.05), None, (S, S, F, S, N)),
}
# the candidate's expected flag rate ratio (the registry tag metric.flag_rate_ratio), 1 unless given
EXPECTED = {"tuned": 3.0, "tuned-4x": 3.0}
# other versions and models are out of scope: a failing older canary of "clean", a failing other model
OUT_OF_SCOPE = [Pod("clean", "canary", version="6", server=0.5, client=0.5, shed=0.5, seconds=2.0, flagged=0.9),
                Pod("unrelated", "stable", client=0.9, flagged=0.9)]


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
        metrics = resolve(template, analysis_args(scenario, VERSION, ONLINE, EXPECTED.get(scenario, 1.0)))
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
    # observed / expected flag rate ratio
    assert clean["flag-rate-drift"] == [pytest.approx(1.0)]
    assert values["tuned"]["flag-rate-drift"] == [pytest.approx(1.0)]
    assert values["tuned-4x"]["flag-rate-drift"] == [pytest.approx(4.0)]
    assert values["quiet"]["flag-rate-drift"] == [pytest.approx(0.25)]
    assert values["few-flags"]["flag-rate-drift"] == values["no-stable"]["flag-rate-drift"] == []
