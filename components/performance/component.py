"""check_performance: the served predictions joined with their outcomes, per model version; with the drift check's
result, the monitoring run's decision."""
from kfp.dsl import HTML, Artifact, Input, Metrics, Output

from components.image import component


@component
def check_performance(
    drift_result: Input[Artifact],
    drift_report: Input[HTML],
    log_uri: str,
    outcomes_uri: str,
    tracking_uri: str,
    registry_uri: str,
    model_name: str,
    live_gates: dict,
    window_end: str,
    pushgateway_url: str,
    metrics: Output[Metrics],
    report: Output[HTML],
    result: Output[Artifact],
) -> str:
    """With `outcomes_uri`, measure each version's live performance on the window the `live_gates` (the gates
    file's `live:` section) set, ending at `window_end` ("": now) less the label maturity, judge the production
    version, push gauges to `pushgateway_url` (empty: PUSHGATEWAY_URL, if set), and return "retrain" when the
    drift check or the live gates say so; `result` is the drift check's result with `performance` and
    `reasons`, `report` the drift report with a section per version. Without `outcomes_uri`: the drift check's
    result, report and decision, unchanged."""
    import json
    import os
    import shutil

    from components import memory
    from components.gates import check_live
    from components.inference_log import window_end as end_of
    from components.performance import logic
    from components.performance.report import add_to, render_sections

    with open(drift_result.path) as fh:
        drift = json.load(fh)
    performance = None
    if outcomes_uri:
        live = check_live(live_gates, "live_gates")
        performance = logic.check(log_uri, outcomes_uri, tracking_uri, model_name, live, now=end_of(window_end),
                                  registry_uri=registry_uri,
                                  pushgateway_url=pushgateway_url or os.environ.get("PUSHGATEWAY_URL"))
        for name, value in performance["metrics"].items():
            if value is not None:
                metrics.log_metric(f"live.{name}", value)
        metrics.log_metric("live.labelled", performance["labelled"])
        with open(drift_report.path) as fh, open(report.path, "w") as out:
            out.write(add_to(fh.read(), render_sections(performance)))
    else:
        shutil.copyfile(drift_report.path, report.path)
    outcome = logic.combine(drift, performance)
    with open(result.path, "w") as fh:
        json.dump(outcome, fh, indent=2)
    result.metadata.update({k: outcome[k] for k in ("decision", "model_version")})
    if performance:
        result.metadata["performance"] = performance["decision"]
    memory.report()
    return outcome["decision"]
