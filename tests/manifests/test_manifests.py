"""Kubernetes manifests: every document is valid (strict schema) and the kustomization misses nothing.

Built-in kinds are checked with kubernetes-validate, the Argo Rollouts kinds against their vendored CRDs
(crd.py); the model server's resources have their own tests in test_rollouts.py.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.conftest import require_tool
from tests.manifests import crd

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
BASE = MANIFESTS / "base"
EXAMPLE_SECRET = BASE / "mlops-credentials.example.yaml"
NAMESPACE = "mlops"
# Oldest Kubernetes the project targets; schemas for it ship with every allowed kubernetes-validate.
K8S_VERSION = crd.K8S_VERSION


def yaml_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.rglob("*") if p.suffix in (".yaml", ".yml"))


def is_kustomization(path: Path) -> bool:
    return path.stem == "kustomization"


def documents() -> list[tuple[str, dict]]:
    """(id, document) of every Kubernetes object in manifests/, kustomization files aside."""
    docs = []
    for path in yaml_files():
        if is_kustomization(path):
            continue
        with path.open() as fh:
            for i, doc in enumerate(d for d in yaml.safe_load_all(fh) if d is not None):
                docs.append((f"{path.relative_to(MANIFESTS)}#{i}", doc))
    return docs


def kustomization(directory: Path = BASE) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in documents() if doc.get("kind") == kind]


def validate(doc: dict) -> None:
    """Strict validation: Argo Rollouts kinds against their CRD, every other kind with kubernetes-validate
    (which raises SchemaNotFoundError for a kind it does not know, so nothing passes unchecked)."""
    if crd.is_custom(doc):
        crd.validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


DOCS = documents()


def test_manifests_are_found():
    kinds = {doc["kind"] for _, doc in DOCS}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret", "Service", "Rollout",
            "AnalysisTemplate"} <= kinds


@pytest.mark.parametrize("doc", [d for _, d in DOCS], ids=[i for i, _ in DOCS])
def test_document_is_valid_kubernetes(doc):
    validate(doc)


def test_custom_kinds_go_to_their_crd():
    custom = {(doc["apiVersion"], doc["kind"]) for _, doc in DOCS if crd.is_custom(doc)}
    assert custom == {("argoproj.io/v1alpha1", "Rollout"), ("argoproj.io/v1alpha1", "AnalysisTemplate")}
    unknown = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):  # no CRD vendored: not silently valid
        validate(unknown)


def test_strict_validation_rejects_unknown_fields():
    broken = {"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": "broken"}, "automountServiceAccountTokens": False}  # typo'd field
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_validation_rejects_wrong_types():
    broken = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
              "metadata": {"name": "broken"}, "rules": [{"apiGroups": [""], "resources": "pods", "verbs": ["get"]}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_kustomization_resources_exist():
    k = kustomization()
    assert k["kind"] == "Kustomization"
    assert k["namespace"] == NAMESPACE
    missing = [r for r in k["resources"] if not (BASE / r).is_file()]
    assert not missing, f"listed in kustomization.yaml but missing: {missing}"


def test_every_base_file_is_listed_except_the_example_secret():
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in yaml_files() if p.parent == BASE and not is_kustomization(p)}
    assert EXAMPLE_SECRET.name in on_disk
    assert EXAMPLE_SECRET.name not in listed, "the example Secret must not be applied by kustomize"
    assert sorted(on_disk - {EXAMPLE_SECRET.name} - listed) == [], "YAML files missing from kustomization.yaml"


def test_no_secret_is_part_of_the_build():
    for name in kustomization()["resources"]:
        kinds = {d.get("kind") for d in yaml.safe_load_all((BASE / name).read_text()) if d}
        assert "Secret" not in kinds, f"{name}: Secrets are applied by hand or by a secret manager"


def test_example_secret_matches_what_the_pipeline_reads():
    from pipelines import training

    (secret,) = yaml.safe_load_all(EXAMPLE_SECRET.read_text())
    assert secret["metadata"]["name"] == training.CREDENTIALS_SECRET
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert set(secret["stringData"]) == set(training.CREDENTIAL_KEYS)
    assert all(v == "" for v in secret["stringData"].values()), "the example must hold no credentials"
    assert "data" not in secret


def test_role_binding_ties_the_runner_account_to_its_role():
    roles = {r["metadata"]["name"] for r in by_kind("Role")}
    accounts = {s["metadata"]["name"] for s in by_kind("ServiceAccount")}
    assert "mlops-pipeline-runner" in accounts
    (binding,) = by_kind("RoleBinding")
    assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] in roles
    assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [("ServiceAccount", "mlops-pipeline-runner")]


def test_role_grants_what_deployment_steps_need_and_no_more():
    (role,) = by_kind("Role")
    grants = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
              for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("argoproj.io", r, v) for r in ("rollouts", "analysisruns")
            for v in ("get", "list", "watch", "patch", "update")} <= grants
    assert {("", r, v) for r in ("pods", "services", "configmaps") for v in ("get", "list")} <= grants
    assert not any("*" in g for g in grants), "no wildcards"
    assert not any(v in ("create", "delete", "deletecollection", "escalate", "bind", "impersonate")
                   for _, _, v in grants)


def test_kustomize_build_renders_valid_objects_in_the_namespace():
    kubectl = require_tool("kubectl", "the dev extra installs it")
    out = subprocess.run([kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=True)
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert sorted(d["kind"] for d in rendered) == ["AnalysisTemplate", "Namespace", "Role", "RoleBinding", "Rollout",
                                                  "Service", "Service", "Service", "ServiceAccount"]
    for doc in rendered:
        validate(doc)
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE
    (binding,) = (d for d in rendered if d["kind"] == "RoleBinding")
    assert all(s["namespace"] == NAMESPACE for s in binding["subjects"])
