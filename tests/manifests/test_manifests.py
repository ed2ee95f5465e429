"""Kubernetes manifests as rendered by kustomize, for every overlay: strictly valid, secure, complete.

Built-in kinds are checked with kubernetes-validate (strict: unknown fields are errors), the Argo Rollouts
kinds against their vendored CRDs (crd.py), the Prometheus Operator kinds structurally
(prometheus_operator.py). The model server's Rollout has its own tests in test_rollouts.py, the alerts and
the dashboard in test_monitoring.py.
"""
from __future__ import annotations

import ast
import copy
import re

import kubernetes_validate
import pytest
import yaml

from tests.manifests import crd, pod_security, prometheus_operator, render
from tests.manifests.render import MANIFESTS, VARIANTS, of_kind, one, variant, workloads

BASE = MANIFESTS / "base"
SECRETS = MANIFESTS / "secrets"
NAMESPACE = "mlops"
ROLLOUT_NAME = "fraud-detection"
K8S_VERSION = crd.K8S_VERSION
ARGO_KINDS = {"Rollout", "AnalysisTemplate"}


def validate(doc: dict) -> None:
    """Strict validation: Argo Rollouts kinds against their CRD, Prometheus Operator kinds against their
    structural schema, every other kind with kubernetes-validate (which raises SchemaNotFoundError for a
    kind it does not know, so nothing passes unchecked)."""
    if crd.is_custom(doc):
        crd.validate(doc)
    elif prometheus_operator.is_prometheus_operator(doc):
        prometheus_operator.validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


VARIANT_IDS = list(VARIANTS)


@pytest.fixture(params=VARIANT_IDS)
def rendered(request) -> list[dict]:
    return variant(request.param)


# --- every build: valid, namespaced, nothing cluster-wide -------------------------------------------------

def test_overlays_are_the_documented_ones():
    assert render.OVERLAYS == ["dev", "prod", "rolling", "traffic-nginx"]
    assert render.COMPONENTS == ["kubeflow-profile", "manual-gate", "monitoring"]


def test_every_object_is_valid(rendered):
    failures = []
    for doc in rendered:
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, crd.InvalidResource) as exc:
            failures.append(f"{doc['kind']} {doc['metadata']['name']}: {exc}")
    assert not failures, "\n".join(failures)


def test_pod_templates_are_valid_core_pod_templates(rendered):
    """The Rollout CRD leaves volumes and quantities open: the strict core schema checks every template."""
    for workload in workloads(rendered):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                                      "template": workload["spec"]["template"]}, K8S_VERSION, strict=True)


def test_everything_lives_in_one_namespace_and_nothing_is_cluster_wide(rendered):
    (namespace,) = of_kind(rendered, "Namespace")
    name = namespace["metadata"]["name"]
    for doc in rendered:
        assert doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ClusterAnalysisTemplate"), doc["kind"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == name, f"{doc['kind']} {doc['metadata']['name']}"


def test_no_secret_is_part_of_any_build(rendered):
    assert not of_kind(rendered, "Secret"), "Secrets are applied by hand or by a secret manager"


def test_validators_reject_misspelled_fields():
    broken_core = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "b"},
                   "automountServiceAccountTokens": False}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken_core)
    rollout = one(variant("prod"), "Rollout")
    rollout["spec"]["strategy"]["canary"]["steps"][1]["pause"]["durations"] = "30m"
    with pytest.raises(crd.InvalidResource, match="'durations' was unexpected"):
        validate(rollout)
    monitor = one(variant("prod"), "PodMonitor")
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(crd.InvalidResource, match="'intervall' was unexpected"):
        validate(monitor)
    rule = one(variant("prod"), "PrometheusRule")
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    with pytest.raises(crd.InvalidResource, match="'expr' is a required property"):
        validate(rule)


def test_unknown_custom_kinds_are_not_silently_valid():
    unknown = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate(unknown)


# --- security on every build ------------------------------------------------------------------------------

def test_namespace_enforces_the_restricted_pod_security_standard(rendered):
    (namespace,) = of_kind(rendered, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_pods_meet_the_restricted_pod_security_standard(rendered):
    assert workloads(rendered)
    for workload in workloads(rendered):
        assert pod_security.violations(workload["spec"]["template"]["spec"]) == [], workload["metadata"]["name"]


def test_pod_security_check_catches_violations():
    pod = copy.deepcopy(one(variant("prod"), "Rollout")["spec"]["template"]["spec"])
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["initContainers"][0]["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    pod["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["hostNetwork"] = True
    found = "\n".join(pod_security.violations(pod))
    for expected in ("allowPrivilegeEscalation", "NET_BIND_SERVICE", "Unconfined", "hostPath", "hostNetwork"):
        assert expected in found


def test_images_are_pinned(rendered):
    for workload in workloads(rendered):
        spec = workload["spec"]["template"]["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            image = container["image"]
            tag = image.rsplit("/", 1)[-1]
            assert ("@sha256:" in image or ":" in tag) and not tag.endswith(":latest"), f"{image}: pin a tag"


def bound_accounts(docs: list[dict]) -> set[str]:
    namespace = one(docs, "Namespace")["metadata"]["name"]
    return {s["name"] for b in of_kind(docs, "RoleBinding") for s in b["subjects"]
            if s["kind"] == "ServiceAccount" and s.get("namespace", namespace) == namespace}


def test_pods_run_as_their_own_account_without_a_token_they_do_not_use(rendered):
    accounts = {a["metadata"]["name"]: a for a in of_kind(rendered, "ServiceAccount")}
    for workload in workloads(rendered):
        spec = workload["spec"]["template"]["spec"]
        name = spec.get("serviceAccountName", "default")
        assert name != "default" and name in accounts, f"{workload['metadata']['name']}: its own service account"
        if name not in bound_accounts(rendered):  # no permissions: a token would only be a liability
            assert spec.get("automountServiceAccountToken") is False
            assert accounts[name].get("automountServiceAccountToken") is False


def selects(selector: dict, labels: dict) -> bool:
    if set(selector) - {"matchLabels", "matchExpressions"}:
        raise AssertionError(f"unknown selector {selector}")
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]) \
                or (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def test_a_network_policy_selects_every_pod_for_ingress_and_egress(rendered):
    policies = of_kind(rendered, "NetworkPolicy")
    for workload in workloads(rendered):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        types = {t for p in covering for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, f"{workload['metadata']['name']}: not isolated ({types})"


def test_network_policy_admits_what_the_server_needs_and_little_else(rendered):
    policy = one(rendered, "NetworkPolicy", ROLLOUT_NAME)
    pod = workloads(rendered)[0]["spec"]["template"]["spec"]
    ports = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
    ingress = {p["port"]: rule["from"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert set(ingress) == ports == {"http", "metrics"}, "one rule per served port, each with its sources"
    assert ingress["metrics"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert {"podSelector": {}} in ingress["http"]
    egress = policy["spec"]["egress"]
    assert all(rule.get("to") and rule.get("ports") for rule in egress), "every egress rule names peers and ports"
    assert {p["port"] for rule in egress for p in rule["ports"]} == {53, 5000, 443}
    blocks = [peer["ipBlock"] for rule in egress for peer in rule["to"] if "ipBlock" in peer]
    assert blocks and all(b["cidr"] != "0.0.0.0/0" for b in blocks), "the object store by address, not anywhere"


# --- RBAC: exactly the deploy step's calls -------------------------------------------------------------

DEPLOY_CODE = render.ROOT / "components" / "deploy"
# kubernetes client method → (API group, resource suffix, verb); the resource comes from the call's
# plural argument for custom objects
CLIENT_METHODS = {
    "get_namespaced_custom_object": ("", "get"),
    "list_namespaced_custom_object": ("", "list"),
    "patch_namespaced_custom_object": ("", "patch"),
    "patch_namespaced_custom_object_status": ("/status", "patch"),
    "read_namespaced_deployment": ("apps/deployments", "get"),
    "patch_namespaced_deployment": ("apps/deployments", "patch"),
}
KUBE_METHOD = re.compile(r"^(get|list|read|patch|replace|create|delete|watch|connect)_(namespaced_|cluster_)?\w+")
CUSTOM_PLURALS = {"rollouts", "analysisruns"}


def deploy_calls() -> set[tuple[str, str, str, bool]]:
    """(group, resource, verb, names one object) of every Kubernetes API call in the deploy step's code,
    read from its source: client methods called directly, passed to a retry helper, or watched."""
    files = sorted(DEPLOY_CODE.glob("*.py"))
    assert files, f"no deploy step code under {DEPLOY_CODE}"
    calls = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            watched = callee == "stream"
            refs = [a for a in [node.func, *node.args] if isinstance(a, ast.Attribute) and KUBE_METHOD.match(a.attr)]
            for ref in refs:
                if ref is node.func and callee not in CLIENT_METHODS:
                    continue  # a method of something else with a similar name (dict.get, ...)
                assert ref.attr in CLIENT_METHODS, (f"{path.name}:{node.lineno}: Kubernetes call {ref.attr} is not "
                                                    "mapped: add it to CLIENT_METHODS and to the Role")
                resource, verb = CLIENT_METHODS[ref.attr]
                strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                keywords = {k.arg for k in node.keywords}
                if resource.startswith("apps/"):
                    group, plural = resource.split("/")
                else:
                    (plural,) = [s for s in strings if s in CUSTOM_PLURALS]
                    group, plural = "argoproj.io", plural + resource
                if watched:
                    verb = "watch"
                    named = "field_selector" in keywords  # with metadata.name=<name>
                else:
                    named = verb != "list"
                calls.add((group, plural, verb, named))
    return calls


def grants(role: dict) -> set[tuple[str, str, str, tuple]]:
    return {(group, resource, verb, tuple(rule.get("resourceNames", ())))
            for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


def expected_grants(calls, groups: set[str]) -> set[tuple[str, str, str, tuple]]:
    return {(g, r, v, (ROLLOUT_NAME,) if named else ()) for g, r, v, named in calls if g in groups}


def test_deploy_code_calls_are_found():
    calls = deploy_calls()
    assert ("argoproj.io", "rollouts", "watch", True) in calls, "the watch by field selector"
    assert ("argoproj.io", "rollouts/status", "patch", True) in calls, "the abort"
    assert ("apps", "deployments", "patch", True) in calls, "the rolling target"


@pytest.mark.parametrize("name", [v for v in VARIANT_IDS if not v.startswith("rolling")])
def test_canary_role_grants_exactly_the_deploy_steps_rollout_calls(name):
    role = one(variant(name), "Role", "mlops-pipeline-runner")
    assert grants(role) == expected_grants(deploy_calls(), {"argoproj.io"})


def test_rolling_role_grants_exactly_the_deploy_steps_deployment_calls():
    role = one(variant("rolling"), "Role", "mlops-pipeline-runner")
    assert grants(role) == expected_grants(deploy_calls(), {"apps"})


def test_role_names_the_workload_the_deploy_step_follows(rendered):
    role = one(rendered, "Role", "mlops-pipeline-runner")
    names = {n for rule in role["rules"] for n in rule.get("resourceNames", [])}
    assert names == {w["metadata"]["name"] for w in workloads(rendered)} == {ROLLOUT_NAME}
    assert not any("*" in x for rule in role["rules"] for x in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]])


def test_role_binding_ties_the_runner_account_to_its_role(rendered):
    namespace = one(rendered, "Namespace")["metadata"]["name"]
    binding = one(rendered, "RoleBinding", "mlops-pipeline-runner")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "mlops-pipeline-runner"}
    assert {"kind": "ServiceAccount", "name": "mlops-pipeline-runner", "namespace": namespace} in binding["subjects"]
    one(rendered, "ServiceAccount", "mlops-pipeline-runner")


def test_kubeflow_profile_account_keeps_its_own_namespace():
    binding = one(variant("prod+kubeflow-profile"), "RoleBinding", "mlops-pipeline-runner")
    assert [(s["name"], s["namespace"]) for s in binding["subjects"]] == [
        ("mlops-pipeline-runner", NAMESPACE), ("default-editor", "kubeflow-user-example-com")]


# --- the overlays' own promises ----------------------------------------------------------------------

def test_dev_runs_one_replica_with_short_pauses_in_cluster_mlflow_and_annotation_scraping():
    docs = variant("dev")
    rollout = one(docs, "Rollout")
    assert rollout["metadata"]["namespace"] == "mlops-dev" and rollout["spec"]["replicas"] == 1
    pauses = [s["pause"]["duration"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "pause" in s]
    assert pauses == ["30s", "30s", "30s"]
    loader = rollout["spec"]["template"]["spec"]["initContainers"][0]
    assert {e["name"]: e.get("value") for e in loader["env"]}["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    annotations = rollout["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9090"
    assert not of_kind(docs, "PodMonitor")
    policy = one(docs, "NetworkPolicy")
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}}} in policy["spec"]["egress"][1]["to"]


def test_dev_changes_nothing_else_in_the_steps():
    base, dev = (one(variant(v), "Rollout")["spec"]["strategy"]["canary"]["steps"] for v in ("prod", "dev"))
    assert [("pause" if "pause" in s else s) for s in base] == [("pause" if "pause" in s else s) for s in dev]


def test_prod_monitors_scales_and_protects_the_rollout():
    docs = variant("prod")
    rollout = one(docs, "Rollout")
    labels = rollout["spec"]["template"]["metadata"]["labels"]
    monitor = one(docs, "PodMonitor")
    assert selects(monitor["spec"]["selector"], labels)
    server_ports = {p["name"] for c in rollout["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"] and "metrics" in server_ports
    pdb = one(docs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"], labels) and pdb["spec"]["maxUnavailable"] == 1
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                             "name": rollout["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] == rollout["spec"]["replicas"] < hpa["spec"]["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    spread = rollout["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert all(selects(c["labelSelector"], labels) for c in spread)
    assert one(docs, "PrometheusRule") and one(docs, "ConfigMap", "fraud-detection-dashboard")
    assert one(docs, "ConfigMap")["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_manual_gate_adds_an_indefinite_pause_before_full_promotion():
    for overlay in ("prod", "dev"):
        plain = one(variant(overlay), "Rollout")["spec"]["strategy"]["canary"]["steps"]
        gated = one(variant(f"{overlay}+manual-gate"), "Rollout")["spec"]["strategy"]["canary"]["steps"]
        assert gated == [*plain, {"pause": {}}]
        assert "analysis" in gated[-2], "a person decides after the last analysis passed"


def test_traffic_nginx_routes_exact_weights_through_the_stable_ingress():
    docs = variant("traffic-nginx")
    canary = one(docs, "Rollout")["spec"]["strategy"]["canary"]
    ingress = one(docs, "Ingress", canary["trafficRouting"]["nginx"]["stableIngress"])
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {canary["stableService"]}
    one(docs, "Service", canary["stableService"])
    one(docs, "Service", canary["canaryService"])
    http_sources = one(docs, "NetworkPolicy")["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in http_sources
    assert {k: v for k, v in canary.items() if k != "trafficRouting"} == \
        one(variant("prod"), "Rollout")["spec"]["strategy"]["canary"]


def test_rolling_is_the_same_pod_template_as_a_plain_deployment():
    docs = variant("rolling")
    assert not [d for d in docs if d["kind"] in ARGO_KINDS]
    deployment = one(docs, "Deployment")
    (rollout,) = yaml.safe_load_all((BASE / "rollout.yaml").read_text())
    template = copy.deepcopy(deployment["spec"]["template"])
    assert template["metadata"]["labels"].pop("role") == "stable", "no canary: every pod serves as stable"
    assert template == rollout["spec"]["template"]
    assert deployment["metadata"]["name"] == rollout["metadata"]["name"]
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
    assert {s["metadata"]["name"] for s in of_kind(docs, "Service")} == {ROLLOUT_NAME}


# --- example Secrets: outside every build, matching what reads them -------------------------------------

def example(name: str) -> dict:
    (secret,) = yaml.safe_load_all((SECRETS / f"{name}.example.yaml").read_text())
    return secret


def test_example_secrets_are_the_ones_referenced_and_hold_nothing():
    from pipelines import training

    files = {p.name.removesuffix(".example.yaml") for p in SECRETS.glob("*.yaml")}
    assert files == {training.CREDENTIALS_SECRET, "mlops-registry-reader", "mlops-inference-log-writer"}
    pod = one(variant("prod"), "Rollout")["spec"]["template"]["spec"]
    referenced = {r["secretRef"]["name"] for c in [*pod["initContainers"], *pod["containers"]]
                  for r in c.get("envFrom", []) if "secretRef" in r}
    assert referenced == files - {training.CREDENTIALS_SECRET}, "the server's pods never see the pipeline's Secret"
    for name in files:
        secret = example(name)
        assert secret["metadata"] == {"name": name, "namespace": NAMESPACE}
        assert "data" not in secret and all(v == "" for v in secret["stringData"].values()), name
    assert set(example(training.CREDENTIALS_SECRET)["stringData"]) == set(training.CREDENTIAL_KEYS)
    assert not [k for k in example("mlops-inference-log-writer")["stringData"] if k.startswith("MLFLOW")], \
        "the server needs no registry access"


def test_no_manifest_outside_the_builds_is_forgotten():
    """Every YAML file under manifests/ is a kustomization, part of a build, or an example Secret."""
    used = set()
    for directory in [*(MANIFESTS / "overlays").iterdir(), *(MANIFESTS / "components").iterdir(), BASE]:
        k = yaml.safe_load((directory / "kustomization.yaml").read_text())
        used |= {(directory / r).resolve() for r in k.get("resources", []) if (directory / r).is_file()}
        used |= {(directory / f).resolve() for g in k.get("configMapGenerator", []) for f in g.get("files", [])}
    on_disk = {p.resolve() for p in MANIFESTS.rglob("*") if p.suffix in (".yaml", ".yml", ".json")
               and p.stem != "kustomization" and p.parent != SECRETS}
    assert sorted(map(str, on_disk - used)) == []
