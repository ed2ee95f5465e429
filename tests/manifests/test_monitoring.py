"""The alerts (PrometheusRule) and the Grafana dashboard: valid PromQL on the server's own metrics only,
and alerts that fire on failing traffic and stay quiet on clean traffic (`promtool test rules`)."""
from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.manifests import render

MONITORING = render.MANIFESTS / "components" / "monitoring"
(RULE,) = yaml.safe_load_all((MONITORING / "prometheus-rule.yaml").read_text())
DASHBOARD = json.loads((MONITORING / "grafana-dashboard.json").read_text())
# from the Argo Rollouts controller, not the server
CONTROLLER_METRICS = {"rollout_info"}
# the Pushgateway's own, one per group: when it last received a push
PUSHGATEWAY_METRICS = {"push_time_seconds"}
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")


def exported_metrics() -> set[str]:
    """Every series name the model server exposes, from its metric objects (serving/metrics.py)."""
    from prometheus_client.metrics import MetricWrapperBase

    from serving import metrics

    names = set()
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(obj._type, [""])
            names |= {obj._name + s for s in suffixes}
    return names


def pushed_metrics() -> set[str]:
    """Every series name the drift check, its trigger and the live-performance check push, from the registries
    they push."""
    from components.drift import logic as drift
    from components.performance import logic as performance
    from components.trigger import logic as trigger

    result = {"model_name": "m", "model_version": "1", "decision": "retrain", "samples": 1, "scores": {"f": 0.5}}
    live = {"model_name": "m", "model_version": "1", "decision": "performance_degraded",
            "versions": {"1": {"labelled": 10, "metrics": {"recall": 0.5, "roc_auc": 0.8}}}}
    registries = (drift.gauges(result), trigger.gauges("m", {"submitted": True, "run": "r"}),
                  performance.gauges(live))
    return {s.name for registry in registries for family in registry.collect() for s in family.samples}


def used_metrics(expr: str) -> set[str]:
    if re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr.strip()):  # a bare metric name
        return {expr.strip()}
    return set(SELECTOR.findall(expr)) - {"by", "without", "on", "ignoring"}


def promtool(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([render.require("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def rules() -> list[dict]:
    return [r for g in RULE["spec"]["groups"] for r in g["rules"]]


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    for var in DASHBOARD["templating"]["list"]:
        if var["type"] == "query":
            queries.append(re.fullmatch(r"label_values\((.*), \w+\)", var["query"]["query"]).group(1))
    return queries


# --- the alerts ----------------------------------------------------------------------------------------

def test_rules_pass_promtool_check(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(RULE["spec"]))
    out = promtool("check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_read_only_metrics_that_something_exports():
    recorded = {r["record"] for r in rules() if "record" in r}
    known = exported_metrics() | CONTROLLER_METRICS | pushed_metrics() | PUSHGATEWAY_METRICS | recorded
    for rule in rules():
        unknown = used_metrics(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule['record']}: {unknown} is exported by nothing"


def test_every_promised_alert_exists():
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    assert set(alerts) == {"ModelServerErrorBudgetBurnFast", "ModelServerErrorBudgetBurnSlow",
                           "ModelServerLatencyBudgetBurnFast", "ModelServerLatencyBudgetBurnSlow",
                           "ModelServerSheddingLoad", "InferenceLogRowsDropped", "ModelRolloutDegraded",
                           "ModelDriftRetrainingDue", "ModelDriftCheckNotRunning",
                           "ModelDriftRetrainingSubmissionFailed", "ModelLivePerformanceDegraded",
                           "ModelLivePerformanceCheckNotRunning"}
    assert "absent_over_time(push_time_seconds" in alerts["ModelDriftCheckNotRunning"]["expr"]
    assert 'phase="Degraded"' in alerts["ModelRolloutDegraded"]["expr"]
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in ("critical", "warning"), name
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name


SERVER = 'namespace="mlops", model="fraud-detection", model_version="3", role="stable"'
MINUTES = 80  # series long enough for the 1 h windows and the alerts' `for`


def counter(labels: str, name: str, per_minute: float) -> dict:
    return {"series": f"{name}{{{labels}}}", "values": f"0+{per_minute:g}x{MINUTES}"}


def traffic(errors_5xx: float = 0.0, slow: float = 0.0, shed: float = 0.0, dropped: float = 0.0) -> list[dict]:
    """One server's series at 100 requests/s, with the given shares of 5xx, slow (> 250 ms) and shed
    requests, and dropped inference-log rows per minute."""
    per_minute = 6000
    return [
        counter(SERVER, "model_inference_requests_total", per_minute),
        counter(SERVER + ', kind="server"', "model_inference_errors_total", per_minute * errors_5xx),
        counter(SERVER + ', kind="client"', "model_inference_errors_total", per_minute * 0.02),
        counter(SERVER + ', le="0.1"', "model_inference_duration_seconds_bucket", per_minute * (1 - slow) * 0.9),
        counter(SERVER + ', le="0.25"', "model_inference_duration_seconds_bucket", per_minute * (1 - slow)),
        counter(SERVER + ', le="+Inf"', "model_inference_duration_seconds_bucket", per_minute),
        counter(SERVER, "model_inference_duration_seconds_count", per_minute),
        counter(SERVER, "model_inference_shed_total", per_minute * shed),
        counter(SERVER + ', reason="write_failed"', "model_inference_log_dropped_rows_total", dropped),
    ]


def rollout_phase(phase: str) -> list[dict]:
    return [{"series": f'rollout_info{{name="fraud-detection", namespace="argo-rollouts", phase="{phase}", '
                       f'strategy="canary", traffic_router=""}}', "values": f"1x{MINUTES}"}]


CHECK_GROUP = 'job="fraud-detection", instance=""'  # the drift check's Pushgateway group, scraped with honor_labels
TRIGGER_GROUP = CHECK_GROUP + ', step="trigger-retraining"'
HOURLY = f"0x59 3600x{MINUTES - 60}"  # push times of a check that ran at 0 s and at 3600 s


def drift_check(due: int = 0, pushed: str | None = HOURLY, failed: int | None = None) -> list[dict]:
    """The drift check's gauges (retraining due or not, pushed at the times `pushed`; None: never) and, when
    the trigger ran, its failure gauge with a push time of its own, long ago."""
    series = [] if pushed is None else [
        {"series": f'model_drift_retrain_due{{{CHECK_GROUP}, model="fraud-detection", model_version="3"}}',
         "values": f"{due}x{MINUTES}"},
        {"series": f"push_time_seconds{{{CHECK_GROUP}}}", "values": pushed}]
    if failed is not None:
        series += [{"series": f'model_drift_retraining_submission_failed{{{TRIGGER_GROUP}, model="fraud-detection"}}',
                    "values": f"{failed}x{MINUTES}"},
                   {"series": f"push_time_seconds{{{TRIGGER_GROUP}}}", "values": f"-30000x{MINUTES}"}]
    return series


LIVE_GROUP = CHECK_GROUP + ', step="live-performance"'  # the live-performance check's group


def live_check(degraded: str = f"0x{MINUTES}", pushed: str = HOURLY, version: str = "3", recall: float = 0.625,
               rows: int = 1200) -> list[dict]:
    """The live-performance check's gauges of the production `version` (`degraded`: the values of
    model_live_performance_degraded), pushed at the times `pushed`."""
    keys = f'{LIVE_GROUP}, model="fraud-detection", model_version="{version}"'
    return [{"series": f"model_live_performance_degraded{{{keys}}}", "values": degraded},
            {"series": f'model_live_metric{{{keys}, metric="recall"}}', "values": f"{recall}x{MINUTES}"},
            {"series": f'model_live_metric{{{keys}, metric="roc_auc"}}', "values": f"0.9x{MINUTES}"},
            {"series": f"model_live_labelled_rows{{{keys}}}", "values": f"{rows}x{MINUTES}"},
            {"series": f"push_time_seconds{{{LIVE_GROUP}}}", "values": pushed}]


KEYS = {"namespace": "mlops", "model": "fraud-detection"}
DUE = ("ModelDriftRetrainingDue", {"model": "fraud-detection", "model_version": "3"})
NOT_RUNNING = ("ModelDriftCheckNotRunning", {"job": "fraud-detection"})
SUBMISSION_FAILED = ("ModelDriftRetrainingSubmissionFailed", {"model": "fraud-detection"})
LIVE_DEGRADED = ("ModelLivePerformanceDegraded", {"model": "fraud-detection", "model_version": "3"})
CASES = {
    "clean traffic": (traffic() + rollout_phase("Healthy") + drift_check() + live_check(), []),
    "5% server errors": (traffic(errors_5xx=0.05) + drift_check(), [("ModelServerErrorBudgetBurnFast", KEYS),
                                                                    ("ModelServerErrorBudgetBurnSlow", KEYS)]),
    "0.3% server errors": (traffic(errors_5xx=0.003) + drift_check(), []),  # within 6x of the 0.1% budget
    "30% slow": (traffic(slow=0.3) + drift_check(), [("ModelServerLatencyBudgetBurnFast", KEYS),
                                                     ("ModelServerLatencyBudgetBurnSlow", KEYS)]),
    "10% shed": (traffic(shed=0.1) + drift_check(), [("ModelServerSheddingLoad", KEYS)]),
    "dropped log rows": (traffic(dropped=50) + drift_check(),
                         [("InferenceLogRowsDropped", {**KEYS, "reason": "write_failed"})]),
    "degraded rollout": (traffic() + rollout_phase("Degraded") + drift_check(),
                         [("ModelRolloutDegraded", {"name": "fraud-detection"})]),
    "retraining due, submitted": (traffic() + drift_check(due=1, failed=0), [DUE]),
    "retraining due, submission failed": (traffic() + drift_check(due=1, failed=1),
                                          [DUE, SUBMISSION_FAILED]),
    # the submission failed an hour ago; the drift has gone since: nothing left to submit
    "failed submission, drift gone": (traffic() + drift_check(due=0, failed=1), []),
    "drift check stopped 3 h ago": (traffic() + drift_check(pushed=f"-10800x{MINUTES}"), [NOT_RUNNING]),
    "drift check never pushed": (traffic() + drift_check(pushed=None), [NOT_RUNNING]),
    # the Pushgateway lost its groups 40 minutes ago (a restart): not yet two hours without a check
    "drift check series gone 40 min ago": (traffic() + drift_check(pushed=f"0x{MINUTES - 45} _x44"), []),
    "live performance degraded": (traffic() + drift_check() + live_check(degraded=f"1x{MINUTES}"), [LIVE_DEGRADED]),
    # retraining due on the live gates alone, without drift: its failed submission pages all the same
    "live performance degraded, submission failed": (
        traffic() + drift_check(due=0, failed=1) + live_check(degraded=f"1x{MINUTES}"),
        [LIVE_DEGRADED, SUBMISSION_FAILED]),
    # the drift check still runs; its own alert does not read the live group's push time
    "live check stopped 3 h ago": (traffic() + drift_check() + live_check(pushed=f"-10800x{MINUTES}"),
                                   [("ModelLivePerformanceCheckNotRunning", {"job": "fraud-detection"})]),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_alerts_fire_on_failing_traffic_only(case, tmp_path):
    series, firing = CASES[case]
    spec = json.loads(json.dumps(RULE["spec"]))
    for rule in (r for g in spec["groups"] for r in g["rules"]):
        rule.pop("annotations", None)  # promtool compares annotations too; their templates pass `check rules`
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    expected = {name: [] for name in alerts}
    for name, labels in firing:
        expected[name].append({"exp_labels": {**labels, "severity": alerts[name]["labels"]["severity"]}})
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series,
                       "alert_rule_test": [{"eval_time": f"{MINUTES - 5}m", "alertname": name, "exp_alerts": exp}
                                           for name, exp in expected.items()]}]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    out = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def expanded(template: str, *values: str) -> str:
    """`template` with its `{{ with ... }}...{{ end }}` query blocks replaced by `values` in order."""
    blocks = re.findall(r"\{\{ with .*?\{\{ end \}\}", template)
    assert len(blocks) == len(values), blocks
    for block, value in zip(blocks, values):
        template = template.replace(block, value, 1)
    return template


# model_version -> (live recall, labelled rows) the description shows, per evaluation minute
LIVE_CASES = {
    "degraded": (live_check(degraded=f"1x{MINUTES}"), {MINUTES - 5: {"3": ("62.5%", "1200")}}),
    "healthy": (live_check(), {MINUTES - 5: {}}),
    # the alert does not hang on the recall series (a metric without a value is not pushed)
    "degraded, no recall pushed": ([s for s in live_check(degraded=f"1x{MINUTES}") if "recall" not in s["series"]],
                                   {MINUTES - 5: {"3": ("n/a", "1200")}}),
    # a candidate's poor live recall is measured, but only the production version is judged
    "production at 0, a candidate with low recall": (
        live_check() + [s for s in live_check(version="4", recall=0.1, rows=300) if "push_time" not in s["series"]
                        and "degraded" not in s["series"]], {MINUTES - 5: {}}),
    # version 4 promoted at the push of 60 min (the group replaced) and degraded; version 3 was fine
    "promoted version degraded": (
        live_check(degraded=f"0x59 _x{MINUTES - 60}")
        + [s if "degraded" not in s["series"] else {**s, "values": f"_x59 1x{MINUTES - 60}"}
           for s in live_check(version="4", recall=0.4, rows=800) if "push_time" not in s["series"]],
        {30: {}, MINUTES - 5: {"4": ("40%", "800")}}),
    # the push of 60 min found it recovered
    "resolved": (live_check(degraded=f"1x59 0x{MINUTES - 60}"), {30: {"3": ("62.5%", "1200")}, MINUTES - 5: {}}),
}


@pytest.mark.parametrize("case", LIVE_CASES, ids=list(LIVE_CASES))
def test_live_performance_alert_names_the_version_and_its_live_recall(case, tmp_path):
    series, firing = LIVE_CASES[case]
    (alert,) = (r for r in rules() if r.get("alert") == "ModelLivePerformanceDegraded")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(RULE["spec"]))
    summary, description = alert["annotations"]["summary"], alert["annotations"]["description"]
    labels = {"model": "fraud-detection", "severity": alert["labels"]["severity"]}

    def expected(version: str, recall: str, rows: str) -> dict:
        return {"exp_labels": {**labels, "model_version": version},
                "exp_annotations": {"summary": summary.replace("{{ $labels.model }}", "fraud-detection")
                                    .replace("{{ $labels.model_version }}", version),
                                    "description": expanded(description, recall, rows)}}

    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series,
                       "alert_rule_test": [{"eval_time": f"{minute}m", "alertname": alert["alert"],
                                            "exp_alerts": [expected(v, *shown) for v, shown in versions.items()]}
                                           for minute, versions in firing.items()]}]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    out = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


# --- the dashboard ---------------------------------------------------------------------------------------

def test_dashboard_reads_only_metrics_the_server_exports():
    queries = dashboard_queries()
    assert len(queries) >= 10
    for query in queries:
        used = used_metrics(query)
        assert used, f"no metric in {query}"
        assert used <= exported_metrics(), f"{used - exported_metrics()} is not exported by the server: {query}"


def test_dashboard_covers_every_exported_metric():
    used = set().union(*map(used_metrics, dashboard_queries()))
    families = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    missing = {m for m in exported_metrics() if re.sub(r"_(bucket|sum|count)$", "", m) not in families}
    assert not missing, f"no panel shows {missing}"


def test_dashboard_queries_are_valid_promql(tmp_path):
    def concrete(query: str) -> str:
        return query.replace("$__rate_interval", "5m").replace("$namespace", "mlops").replace("$model", "m")

    path = tmp_path / "dashboard.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": concrete(q)} for i, q in enumerate(dashboard_queries())]}]}))
    out = promtool("check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_is_a_grafana_dashboard_with_unique_panels():
    assert DASHBOARD["uid"] and DASHBOARD["title"] and DASHBOARD["schemaVersion"] >= 36
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
