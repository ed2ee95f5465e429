"""What Argo Rollouts does with one metric of an AnalysisTemplate, for tests against a real Prometheus.

- resolve(): `{{args.NAME}}` substitution across the whole metric (query and conditions alike). Argo
  marshals the metric to JSON and substitutes with fasttemplate (utils/template/template.go,
  ResolveQuotedArgs): values given in the Rollout's analysis step override the template's; an argument
  with no value is an error ("argument was not supplied"), and so is a tag that names no argument.
- measure(): one measurement of a Prometheus metric (metricproviders/prometheus/prometheus.go): an instant
  query; a query error is an Error; a vector is passed to the conditions as a list of floats (an empty
  vector as an empty list), a scalar as a float.
- phase(): utils/evaluate/evaluate.go, EvaluateResult: with only a successCondition, not successful means
  Failed; with only a failureCondition, not failed means Successful; both false is Inconclusive; a condition
  that errors (e.g. `result[0]` on an empty vector) makes the measurement an Error, which counts against
  consecutiveErrorLimit, not failureLimit.
"""
from __future__ import annotations

import copy
import json
import re
import urllib.parse
import urllib.request

from tests.analysis.expr import ExprError, evaluate

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR = "Successful", "Failed", "Inconclusive", "Error"
TAG = re.compile(r"\{\{(.*?)\}\}")


def resolve(template: dict, supplied: dict[str, str]) -> dict[str, dict]:
    """Metric name → metric of the AnalysisTemplate with every {{args.x}} substituted, as in an AnalysisRun."""
    values = {a["name"]: a.get("value") for a in template["spec"].get("args", [])}
    unknown = set(supplied) - set(values)
    if unknown:
        raise ValueError(f"arguments {sorted(unknown)} are not declared by the template")
    values.update(supplied)
    for name, value in values.items():
        if value is None:
            raise ValueError(f'argument "{name}" was not supplied')

    def substitute(match: re.Match) -> str:
        tag = match.group(1).strip()
        if not tag.startswith("args.") or tag[len("args."):] not in values:
            raise ValueError(f"failed to resolve {{{{{match.group(1)}}}}}")
        return json.dumps(str(values[tag[len("args."):]]))[1:-1]  # escaped for the JSON it lands in

    metrics = copy.deepcopy(template["spec"]["metrics"])
    return {m["name"]: json.loads(TAG.sub(substitute, json.dumps(m))) for m in metrics}


def phase(metric: dict, result) -> str:
    """The measurement's phase for `result` under the metric's successCondition / failureCondition."""
    success, failure = metric.get("successCondition", ""), metric.get("failureCondition", "")
    try:
        succeeded = evaluate(success, result) if success else False
        failed = evaluate(failure, result) if failure else False
    except ExprError:
        return ERROR
    if not success and not failure:
        return SUCCESSFUL
    if success and not failure:
        failed = not succeeded
    elif failure and not success:
        succeeded = not failed
    if failed:
        return FAILED
    return SUCCESSFUL if succeeded else INCONCLUSIVE


def query(prometheus_url: str, promql: str):
    """Prometheus's instant-query answer as Argo passes it on: a list of floats (vector) or a float (scalar)."""
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    data = body["data"]
    if data["resultType"] == "vector":
        return [float(sample["value"][1]) for sample in data["result"]]
    if data["resultType"] == "scalar":
        return float(data["result"][1])
    raise ValueError(f"Prometheus metric type not supported: {data['resultType']}")


def measure(prometheus_url: str, metric: dict) -> tuple[str, object]:
    """(phase, value) of one measurement of a resolved Prometheus metric; a failed query is an Error."""
    try:
        result = query(prometheus_url, metric["provider"]["prometheus"]["query"])
    except (OSError, ValueError) as exc:  # HTTP errors (bad query: 400) are OSErrors
        return ERROR, str(exc)
    return phase(metric, result), result
