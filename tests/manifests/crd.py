"""Argo Rollouts resources in manifests/: validation against their CRDs, and the canary analysis queries.

kubernetes-validate knows Kubernetes' own kinds only. Rollout and AnalysisTemplate documents are
validated here with jsonschema against the openAPIV3Schema of the Argo Rollouts CustomResourceDefinitions
vendored under crds/argo-rollouts/ (origin and version in SOURCE.txt there), after turning the schema's
Kubernetes extensions into plain JSON Schema with the meaning the API server gives them:

- `x-kubernetes-int-or-string`: an integer or a string;
- objects are closed (`additionalProperties: false`), as strict field validation rejects unknown fields,
  unless marked `x-kubernetes-preserve-unknown-fields`;
- `metadata`, which CRD schemas leave open, is checked against Kubernetes' strict ObjectMeta schema
  (through kubernetes-validate).

Not checked: CEL rules (`x-kubernetes-validations`), list-type uniqueness, formats, and what only the
Argo Rollouts controller checks (that referenced Services and templates exist, for instance).

    from tests.manifests.crd import analysis_queries, validate
    analysis_queries()  # {"latency-p95": "histogram_quantile(...)", "error-rate": "sum(rate(...)) / ..."}
    validate(doc)       # raises InvalidResource listing every violation
"""
from __future__ import annotations

import functools
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = Path(__file__).resolve().parent / "crds" / "argo-rollouts"
ANALYSIS_TEMPLATE = ROOT / "manifests" / "base" / "analysis-template.yaml"
# Oldest Kubernetes the project targets (test_manifests.py uses it too): the ObjectMeta schema's version.
K8S_VERSION = "1.31"

# The CRDs are large (~0.6 MB each): libyaml, when PyYAML has it, reads them several times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InvalidResource(ValueError):
    """A custom resource does not match its CRD; the message lists every violation."""


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → openAPIV3Schema, for every served version of the vendored CRDs."""
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_LOADER)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def is_custom(doc: dict) -> bool:
    """Whether `doc` is a kind of the vendored CRDs (and so not for kubernetes-validate)."""
    return (doc.get("apiVersion"), doc.get("kind")) in crd_schemas()


def structural(schema: dict) -> dict:
    """A copy of a CRD schema node as plain JSON Schema with the API server's semantics (see above)."""
    node = dict(schema)
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return node
    if "properties" in node:
        node["properties"] = {name: structural(sub) for name, sub in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = structural(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = structural(node["additionalProperties"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            node[key] = [structural(sub) for sub in node[key]]
    is_object = "properties" in node or node.get("type") == "object"
    if is_object and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        # with no properties at all (an empty struct such as `requiredDuringScheduling...: {}`) this
        # accepts only {}: the API server would prune or reject any field in it
        node["additionalProperties"] = False
    return node


@functools.cache
def _validator(api_version: str, kind: str):
    import jsonschema

    schema = structural(crd_schemas()[(api_version, kind)])
    schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: checked by _metadata_errors
    return jsonschema.Draft7Validator(schema)


def _path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "(document)"


def _metadata_errors(meta) -> list[str]:
    import kubernetes_validate

    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        return ["metadata: a name is required"]
    # the smallest built-in kind with nothing but metadata, to reuse the strict ObjectMeta schema
    try:
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}, K8S_VERSION,
                                     strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{_path(exc.absolute_path)}: {exc.message}"]
    return []


def errors(doc: dict) -> list[str]:
    """Every violation of `doc` against its CRD, as `path: message` (empty when valid)."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in crd_schemas():
        return [f"{key[0]} {key[1]}: no vendored CustomResourceDefinition has this kind"]
    found = [f"{_path(e.absolute_path)}: {e.message}" for e in _validator(*key).iter_errors(doc)]
    return sorted(found + _metadata_errors(doc.get("metadata")))


def validate(doc: dict) -> None:
    """Raise InvalidResource unless `doc` matches its CRD (see errors())."""
    found = errors(doc)
    if found:
        name = (doc.get("metadata") or {}).get("name")
        raise InvalidResource(f"{doc.get('kind')} {name}:\n  " + "\n  ".join(found))


def analysis_metrics(path: Path = ANALYSIS_TEMPLATE) -> dict[str, dict]:
    """Metric name → metric (provider, successCondition, interval, ...) of the AnalysisTemplate in `path`."""
    (template,) = [d for d in yaml.safe_load_all(Path(path).read_text()) if d and d.get("kind") == "AnalysisTemplate"]
    return {metric["name"]: metric for metric in template["spec"]["metrics"]}


def analysis_queries(path: Path = ANALYSIS_TEMPLATE) -> dict[str, str]:
    """Metric name → PromQL query of the canary analysis, exactly as Argo Rollouts sends it to Prometheus."""
    return {name: metric["provider"]["prometheus"]["query"] for name, metric in analysis_metrics(path).items()
            if "prometheus" in metric.get("provider", {})}
