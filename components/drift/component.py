"""check_drift: the production model's inference log against its reference profile; the decision as output."""
from kfp.dsl import HTML, Artifact, Metrics, Output

from components.image import component


@component
def check_drift(
    log_uri: str,
    tracking_uri: str,
    registry_uri: str,
    model_name: str,
    drift_config: dict,
    pushgateway_url: str,
    window_end: str,
    metrics: Output[Metrics],
    report: Output[HTML],
    result: Output[Artifact],
) -> str:
    """Score the window of the log that ends at `window_end` (ISO 8601 with a UTC offset; "": now, the
    scheduled check's case; a time: a re-run or backfill of that window); push gauges to `pushgateway_url`
    (empty: PUSHGATEWAY_URL, if set). Returns the decision, the one output parameter: kfp.local resolves a
    condition on a component's single output ("Output") but not on a named one. The sample count and drifted
    share are in `metrics`."""
    import json
    import os

    from components import memory
    from components.drift import logic
    from components.drift.report import render_html

    config = logic.check_config(drift_config, "drift_config")
    outcome, detail, profile = logic.check(log_uri, tracking_uri, model_name, config, now=logic.window_end(window_end),
                                           pushgateway_url=pushgateway_url or os.environ.get("PUSHGATEWAY_URL"),
                                           registry_uri=registry_uri)
    for feature, value in outcome["scores"].items():
        metrics.log_metric(f"psi.{feature}", value)
    metrics.log_metric("samples", outcome["samples"])
    metrics.log_metric("drifted_share", outcome["drifted_share"])
    with open(report.path, "w") as fh:
        fh.write(render_html(outcome, detail, profile))
    with open(result.path, "w") as fh:
        json.dump(outcome, fh, indent=2)
    result.metadata.update({k: outcome[k] for k in ("decision", "samples", "drifted_share", "model_version")})
    memory.report()
    return outcome["decision"]
