"""The model server's canary: the Argo Rollouts resources match their CRDs and keep the server's contract."""
from __future__ import annotations

import copy
import posixpath
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

from tests.conftest import require_tool
from tests.manifests import crd

BASE = crd.ROOT / "manifests" / "base"
ANALYSIS = "model-canary-analysis"


def load(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]


(ROLLOUT,) = load("rollout.yaml")
(TEMPLATE,) = load("analysis-template.yaml")
SERVICES = {s["metadata"]["name"]: s for s in load("services.yaml")}
POD = ROLLOUT["spec"]["template"]["spec"]
(SERVER,) = [c for c in POD["containers"] if c["name"] == "model-server"]
(LOADER,) = [c for c in POD["initContainers"] if c["name"] == "model-loader"]
CONTAINERS = POD["initContainers"] + POD["containers"]
VOLUMES = {v["name"]: v for v in POD["volumes"]}


def env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def argv(container: dict) -> list[str]:
    return container.get("command", []) + container.get("args", [])


def flag(container: dict, name: str) -> str:
    args = argv(container)
    return args[args.index(name) + 1]


def container_port(port) -> int:
    """A probe's or Service's target port (a number or a port name) as the server's container port."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in SERVER["ports"] if p["name"] == port]
    return number


def mount_of(container: dict, path: str) -> dict:
    """The volume mount that holds `path` in `container` (the deepest one)."""
    holding = [m for m in container.get("volumeMounts", [])
               if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert holding, f"{container['name']}: nothing is mounted at {path}"
    return max(holding, key=lambda m: len(m["mountPath"]))


# --- the CRD validator ------------------------------------------------------------------------------

def test_vendored_crds_know_rollout_and_analysis_template():
    assert (crd.CRD_DIR / "SOURCE.txt").is_file(), "keep where the vendored CRDs come from"
    assert {("argoproj.io/v1alpha1", "Rollout"), ("argoproj.io/v1alpha1", "AnalysisTemplate")} <= set(crd.crd_schemas())


@pytest.mark.parametrize("doc", [ROLLOUT, TEMPLATE], ids=["Rollout", "AnalysisTemplate"])
def test_custom_resource_matches_its_crd(doc):
    assert crd.is_custom(doc)
    crd.validate(doc)


DELETE = object()


def changed(doc: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


STEPS = ("spec", "strategy", "canary", "steps")
CONTAINER = ("spec", "template", "spec", "containers", 0)
METRIC = ("spec", "metrics", 0)
BROKEN = {
    "unknown strategy field": (ROLLOUT, ("spec", "strategy", "canary", "canaryWeight"), 10,
                               "'canaryWeight' was unexpected"),
    "string for an integer": (ROLLOUT, ("spec", "replicas"), "five", "'five' is not of type 'integer'"),
    "percent for a step weight": (ROLLOUT, (*STEPS, 0, "setWeight"), "10%", "'10%' is not of type 'integer'"),
    "misspelt pause field": (ROLLOUT, (*STEPS, 1, "pause", "durration"), "30m", "'durration' was unexpected"),
    "misspelt container field": (ROLLOUT, (*CONTAINER, "readinesProbe"), {"httpGet": {"path": "/", "port": 80}},
                                 "'readinesProbe' was unexpected"),
    "unknown field in an analysis step": (ROLLOUT, (*STEPS, 2, "analysis", "template"), ANALYSIS,
                                          "'template' was unexpected"),
    "unknown metadata field": (ROLLOUT, ("metadata", "lables"), {"a": "b"}, "'lables' was unexpected"),
    "no name": (TEMPLATE, ("metadata", "name"), DELETE, "a name is required"),
    "float for int-or-string": (TEMPLATE, (*METRIC, "count"), 1.5, "is not valid under any of the given schemas"),
    "misspelt provider field": (TEMPLATE, (*METRIC, "provider", "prometheus", "querry"), "up",
                                "'querry' was unexpected"),
    "metric without provider": (TEMPLATE, (*METRIC, "provider"), DELETE, "'provider' is a required property"),
}


@pytest.mark.parametrize("case", BROKEN.values(), ids=BROKEN.keys())
def test_validator_rejects_broken_resources(case):
    doc, path, value, reason = case
    with pytest.raises(crd.InvalidResource, match=re.escape(reason)):
        crd.validate(changed(doc, path, value))


ACCEPTED = {
    "int-or-string as a string": (TEMPLATE, (*METRIC, "failureLimit"), "1"),
    "int-or-string as an integer": (ROLLOUT, ("spec", "strategy", "canary", "maxSurge"), 1),
    "fields the CRD preserves": (ROLLOUT, (*CONTAINER, "resources", "limits", "nvidia.com/gpu"), 1),
}


@pytest.mark.parametrize("case", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_validator_accepts_what_the_api_server_accepts(case):
    doc, path, value = case
    crd.validate(changed(doc, path, value))


def as_pod_template(template: dict) -> dict:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": ROLLOUT["metadata"]["name"]},
            "template": template}


def test_pod_template_is_valid_kubernetes():
    """The Rollout CRD leaves volumes and resource quantities open; the strict core schema checks them."""
    kubernetes_validate.validate(as_pod_template(ROLLOUT["spec"]["template"]), crd.K8S_VERSION, strict=True)


def test_pod_template_check_catches_what_the_crd_lets_through():
    volumes = ("spec", "template", "spec", "volumes")
    index = POD["volumes"].index(VOLUMES["podinfo"])
    broken = changed(ROLLOUT, (*volumes, index, "downwardAPI", "items", 0, "fieldRef", "fieldPth"), "x")
    crd.validate(broken)  # volumes are x-kubernetes-preserve-unknown-fields in the CRD
    with pytest.raises(kubernetes_validate.ValidationError, match="'fieldPth' was unexpected"):
        kubernetes_validate.validate(as_pod_template(broken["spec"]["template"]), crd.K8S_VERSION, strict=True)


# --- the Rollout --------------------------------------------------------------------------------------

SEED_STEPS = [{"setWeight": 10}, {"pause": {"duration": "30m"}}, "analysis",
              {"setWeight": 30}, {"pause": {"duration": "30m"}}, "analysis",
              {"setWeight": 60}, {"pause": {"duration": "1h"}}, "analysis"]


def test_canary_steps_are_the_seeds_bake_times_with_an_analysis_before_each_raise():
    """10% → 30 m → analysis → 30% → 30 m → analysis → 60% → 1 h → analysis → 100% (after the last step)."""
    canary = ROLLOUT["spec"]["strategy"]["canary"]
    steps = canary["steps"]
    assert ["analysis" if "analysis" in s else s for s in steps] == SEED_STEPS
    assert "analysis" in steps[-1], "the canary must pass an analysis before it takes 100%"
    referenced = {t["templateName"] for s in steps if "analysis" in s for t in s["analysis"]["templates"]}
    assert referenced == {TEMPLATE["metadata"]["name"]} == {ANALYSIS}
    assert "trafficRouting" not in canary, "the base is replica-weighted; traffic routing belongs in an overlay"


def test_pods_are_labelled_with_their_role():
    canary = ROLLOUT["spec"]["strategy"]["canary"]
    assert canary["canaryMetadata"]["labels"]["role"] == "canary"
    assert canary["stableMetadata"]["labels"]["role"] == "stable"
    assert "role" not in ROLLOUT["spec"]["template"]["metadata"]["labels"], "Argo Rollouts sets it"


def test_rollout_selects_its_pods():
    selector = ROLLOUT["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "fraud-detection"}
    assert ROLLOUT["metadata"]["labels"]["app.kubernetes.io/name"] == "fraud-detection"
    assert selector.items() <= ROLLOUT["spec"]["template"]["metadata"]["labels"].items()


def test_model_server_ports_probes_and_command():
    assert argv(SERVER)[:2] == ["mlops", "serve"]
    assert {p["name"]: p["containerPort"] for p in SERVER["ports"]} == {"http": 8080, "metrics": 9090}
    probes = {kind: SERVER[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/v1/health/ready"
    assert probes["livenessProbe"]["path"] == "/v1/health/live"
    assert {container_port(p["port"]) for p in probes.values()} == {8080}
    if "startupProbe" in SERVER:
        assert SERVER["startupProbe"]["httpGet"]["path"] == "/v1/health/live"


def test_model_server_environment():
    variables = env(SERVER)
    values = {name: e.get("value") for name, e in variables.items()}
    assert values["MODEL_PATH"] == "/models/current"
    assert values["MODEL_NAME"] == "fraud-detection"
    assert (values["WORKERS"], values["MAX_BATCH_SIZE"], values["INFERENCE_LOG_SAMPLE_RATE"]) == ("2", "32", "1.0")
    assert re.match(r"^[a-z0-9]+://", values["INFERENCE_LOG_URI"])
    assert variables["MODEL_ROLE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.labels['role']"}}


def test_role_file_follows_the_role_label():
    role_file = env(SERVER)["MODEL_ROLE_FILE"]["value"]
    assert role_file == "/etc/podinfo/role"
    mount = mount_of(SERVER, role_file)
    volume = VOLUMES[mount["name"]]
    item_path = posixpath.relpath(role_file, mount["mountPath"])
    (item,) = [i for i in volume["downwardAPI"]["items"] if i["path"] == item_path]
    assert item["fieldRef"]["fieldPath"] == "metadata.labels['role']"
    assert "subPath" not in mount, "a subPath mount never sees the file change"


def test_model_loader_fills_the_folder_the_server_reads():
    assert argv(LOADER)[:3] == ["mlops", "model", "pull"]
    assert flag(LOADER, "--model-uri").startswith("models:/fraud-detection")
    model_path = env(SERVER)["MODEL_PATH"]["value"]
    assert flag(LOADER, "--output") == model_path
    loader_mount, server_mount = mount_of(LOADER, model_path), mount_of(SERVER, model_path)
    assert loader_mount["name"] == server_mount["name"] and "emptyDir" in VOLUMES[loader_mount["name"]]
    assert not loader_mount.get("readOnly") and server_mount.get("readOnly")
    assert env(LOADER)["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.mlflow.svc.cluster.local:5000"


READER, WRITER = "mlops-registry-reader", "mlops-inference-log-writer"


def secret_refs(container: dict) -> list[dict]:
    refs = [e["secretRef"] for e in container.get("envFrom", []) if "secretRef" in e]
    refs += [e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
             if "secretKeyRef" in e.get("valueFrom", {})]
    return refs


def test_credentials_are_split_by_need():
    """The loader reads the registry, the server writes the inference log; neither has the pipeline's Secret."""
    assert secret_refs(LOADER) == [{"name": READER, "optional": True}]
    assert secret_refs(SERVER) == [{"name": WRITER, "optional": True}]
    assert {c["name"] for c in CONTAINERS} == {LOADER["name"], SERVER["name"]}, "a new container needs its own"


def test_images_are_the_pinned_project_image():
    from components.image import DEFAULT_IMAGE

    for container in CONTAINERS:
        image = container["image"]
        assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1], f"{image}: pin a tag"
        assert image == DEFAULT_IMAGE, f"{container['name']}: the project image of this version"


def test_pods_run_restricted():
    pod = POD["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert POD.get("automountServiceAccountToken") is False
    for container in CONTAINERS:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], container["name"]
        assert sc.get("runAsUser", pod["runAsUser"]) != 0 and sc.get("privileged") is not True
        assert "emptyDir" in VOLUMES[mount_of(container, "/tmp")["name"]], f"{container['name']}: writable /tmp"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys(), f"{container['name']}: {kind}"


# --- the Services ---------------------------------------------------------------------------------------

def test_services_split_by_role_and_carry_both_ports():
    canary = ROLLOUT["spec"]["strategy"]["canary"]
    assert {canary["stableService"], canary["canaryService"]} == {"fraud-detection-stable", "fraud-detection-canary"}
    assert set(SERVICES) == {"fraud-detection", "fraud-detection-stable", "fraud-detection-canary"}
    pod_labels = ROLLOUT["spec"]["template"]["metadata"]["labels"]
    for name, service in SERVICES.items():
        selector = service["spec"]["selector"]
        assert selector == ROLLOUT["spec"]["selector"]["matchLabels"], name
        assert selector.items() <= pod_labels.items(), name
        ports = {p["name"]: (p["port"], container_port(p["targetPort"])) for p in service["spec"]["ports"]}
        assert ports == {"http": (80, 8080), "metrics": (9090, 9090)}, name


# --- the AnalysisTemplate ---------------------------------------------------------------------------------

ARGS = {"model-name": "fraud-detection", "model-version": "7", "expected-flag-rate-ratio": "3.2",
        "max-latency-p95-seconds": "0.1", "max-error-rate": "0.01", "max-client-error-rate-increase": "0.02",
        "max-shed-rate-increase": "0.02", "max-flag-rate-ratio-drift": "2", "min-flagged-for-flag-rate": "20"}
# the label matchers of the candidate and of its baseline, once Argo has substituted ARGS
CANARY = 'model="fraud-detection",model_version="7",role="canary"'
STABLE = 'model="fraud-detection",role="stable"'


def selectors(query: str) -> list[tuple[str, str]]:
    """(metric, label matchers) of every model-server series the query reads."""
    return re.findall(r"\b(model_inference_\w+)\{([^}]*)\}", query)


def test_analysis_queries_read_the_candidate_and_the_stable_pods():
    from tests.analysis.argo import resolve

    queries = {name: m["provider"]["prometheus"]["query"] for name, m in resolve(TEMPLATE, ARGS).items()}
    assert set(queries) == {"latency-p95", "error-rate", "client-error-regression", "load-shed-regression",
                            "flag-rate-drift"}
    read = {name: {metric for metric, _ in selectors(query)} for name, query in queries.items()}
    assert read["latency-p95"] == {"model_inference_duration_seconds_bucket", "model_inference_duration_seconds_count"}
    assert read["error-rate"] == read["client-error-regression"] == {"model_inference_errors_total",
                                                                     "model_inference_requests_total"}
    assert read["load-shed-regression"] == {"model_inference_shed_total", "model_inference_requests_total"}
    assert read["flag-rate-drift"] == {"model_inference_predicted_positive_total", "model_inference_rows_total"}
    for name, query in queries.items():
        assert len(selectors(query)) == len(re.findall(r"\bmodel_inference_\w+", query)), f"{name}: unscoped series"
        for metric, labels in selectors(query):
            scope = labels.replace(',kind="server"', "").replace(',kind="client"', "")
            assert scope in (CANARY, STABLE), f"{name}: {metric}{{{labels}}} reads neither the candidate nor stable"
            if metric == "model_inference_errors_total":
                assert labels.endswith('kind="server"' if name == "error-rate" else 'kind="client"'), name
        assert CANARY in query, f"{name} must judge the candidate"
        compared = name.endswith("-regression") or name == "flag-rate-drift"
        assert (STABLE in query) == compared, f"{name}: only regressions and the flag rate compare with stable"
    # the flag rate: (canary share / stable share) / expected, only while both sides flagged enough rows
    flags = queries["flag-rate-drift"]
    assert flags.count("/ 3.2 ") == 1 and flags.count(">= 20") == 2
    assert all(window == "5m" for window in re.findall(r"\[(\w+)\]", "".join(queries.values())))


def test_analysis_success_conditions_use_the_online_thresholds():
    metrics = crd.analysis_metrics()
    drift = "{{args.max-flag-rate-ratio-drift}}"
    assert {name: m["successCondition"] for name, m in metrics.items()} == {
        "latency-p95": "result[0] <= {{args.max-latency-p95-seconds}}",
        "error-rate": "result[0] <= {{args.max-error-rate}}",
        "client-error-regression": "result[0] <= {{args.max-client-error-rate-increase}}",
        "load-shed-regression": "result[0] <= {{args.max-shed-rate-increase}}",
        "flag-rate-drift": f"len(result) == 1 && result[0] >= 1 / {drift} && result[0] <= {drift}",
    }
    # only the flag rate can be Inconclusive (neither condition holds: too few rows decided positive)
    assert {name: m.get("failureCondition") for name, m in metrics.items() if "failureCondition" in m} == {
        "flag-rate-drift": f"len(result) == 1 && (result[0] < 1 / {drift} || result[0] > {drift})"}
    for name, metric in metrics.items():
        assert "inconclusiveLimit" not in metric, f"{name}: an inconclusive measurement must pause the Rollout"
        assert (metric["interval"], int(metric["count"]), int(metric["failureLimit"])) == ("1m", 5, 1), name
        assert int(metric["failureLimit"]) < int(metric["count"]), name
        # a canary without traffic errors every measurement: the run must end in Error before it completes
        assert int(metric["consecutiveErrorLimit"]) < int(metric["count"]), name


def test_analysis_arguments():
    """The deploy step supplies the candidate and the thresholds; only the Prometheus address has a default."""
    from components.deploy.online import analysis_args

    args = {a["name"]: a.get("value") for a in TEMPLATE["spec"]["args"]}
    assert args["prometheus-address"] == "http://prometheus-operated.monitoring.svc:9090"
    supplied = set(analysis_args("m", 1, {k.replace("-", "_"): 2 for k in ARGS if k.startswith(("max-", "min-"))}, 1.0))
    assert {name for name, value in args.items() if value is None} == supplied == set(ARGS)
    used = set(re.findall(r"\{\{\s*args\.([\w-]+)\s*\}\}", yaml.safe_dump(TEMPLATE["spec"]["metrics"])))
    assert used == set(args)
    for metric in TEMPLATE["spec"]["metrics"]:
        assert metric["provider"]["prometheus"]["address"] == "{{args.prometheus-address}}"


def test_analysis_queries_are_valid_promql(tmp_path):
    from tests.analysis.argo import resolve

    promtool = require_tool("promtool", "Debian package 'prometheus'")
    rules = {"groups": [{"name": "canary-analysis", "rules": [
        {"record": f"canary:{name.replace('-', '_')}", "expr": metric["provider"]["prometheus"]["query"]}
        for name, metric in resolve(TEMPLATE, ARGS).items()]}]}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
