"""Structural checks of the Prometheus Operator kinds (PodMonitor, PrometheusRule) in manifests/.

Their CustomResourceDefinitions are not vendored, so this is not the upstream schema: it is a closed JSON
Schema of the fields these manifests may use, with the names, types and required fields of the
monitoring.coreos.com/v1 CRDs. A field outside it is an error, either a typo or a field to add here after
checking the upstream CRD. Metadata is checked against Kubernetes' strict ObjectMeta (crd.py), the rules'
PromQL by promtool (test_monitoring.py).
"""
from __future__ import annotations

import jsonschema

from tests.manifests import crd

API_VERSION = "monitoring.coreos.com/v1"


def _closed(properties: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                         r"(([0-9]+)s)?(([0-9]+)ms)?)$"}
LABEL_SELECTOR = _closed({
    "matchLabels": STRING_MAP,
    "matchExpressions": {"type": "array", "items": _closed(
        {"key": {"type": "string"}, "operator": {"type": "string"}, "values": {"type": "array"}},
        ("key", "operator"))}})
RELABELING = _closed({"action": {"type": "string"}, "sourceLabels": {"type": "array", "items": {"type": "string"}},
                      "separator": {"type": "string"}, "targetLabel": {"type": "string"},
                      "regex": {"type": "string"}, "replacement": {"type": "string"}, "modulus": {"type": "integer"}})

SCHEMAS = {
    "PodMonitor": _closed({
        "selector": LABEL_SELECTOR,
        "namespaceSelector": _closed({"any": {"type": "boolean"},
                                      "matchNames": {"type": "array", "items": {"type": "string"}}}),
        "jobLabel": {"type": "string"},
        "podTargetLabels": {"type": "array", "items": {"type": "string"}},
        "sampleLimit": {"type": "integer"},
        "podMetricsEndpoints": {"type": "array", "items": _closed({
            "port": {"type": "string"}, "path": {"type": "string"}, "scheme": {"enum": ["http", "https"]},
            "interval": DURATION, "scrapeTimeout": DURATION, "honorLabels": {"type": "boolean"},
            "relabelings": {"type": "array", "items": RELABELING},
            "metricRelabelings": {"type": "array", "items": RELABELING}})},
    }, ("selector",)),
    "PrometheusRule": _closed({
        "groups": {"type": "array", "items": _closed({
            "name": {"type": "string", "minLength": 1}, "interval": DURATION, "limit": {"type": "integer"},
            "rules": {"type": "array", "items": {
                **_closed({"record": {"type": "string"}, "alert": {"type": "string"},
                           "expr": {"type": ["string", "integer"]}, "for": DURATION, "keep_firing_for": DURATION,
                           "labels": STRING_MAP, "annotations": STRING_MAP}, ("expr",)),
                "oneOf": [{"required": ["record"]}, {"required": ["alert"]}]}},
        }, ("name",))},
    }),
}


def is_prometheus_operator(doc: dict) -> bool:
    return doc.get("apiVersion") == API_VERSION and doc.get("kind") in SCHEMAS


def errors(doc: dict) -> list[str]:
    schema = _closed({"apiVersion": {"const": API_VERSION}, "kind": {"const": doc.get("kind")},
                      "metadata": {"type": "object"}, "spec": SCHEMAS[doc["kind"]]},
                     ("apiVersion", "kind", "metadata", "spec"))
    found = [f"{crd._path(e.absolute_path)}: {e.message}"
             for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    return sorted(found + crd._metadata_errors(doc.get("metadata")))


def validate(doc: dict) -> None:
    found = errors(doc)
    if found:
        raise crd.InvalidResource(f"{doc.get('kind')} {(doc.get('metadata') or {}).get('name')}:\n  "
                                  + "\n  ".join(found))
