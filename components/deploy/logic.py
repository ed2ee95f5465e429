"""deploy_model: roll a registered version out and keep the registry's lifecycle in step with what happened.

Targets:
  canary   pin the version in the Argo Rollout's pod template (a new template is a canary), follow the
           Rollout; Healthy on the new template -> production, the previous production archived;
           aborted or Degraded -> rejected, the template pinned back to production, the step fails;
           timeout -> abort the Rollout, then as for an abort.
  rolling  the same with a plain Deployment: wait for the rollout to complete, else roll back.
  local    no cluster: render the pinned manifests into a folder and promote directly.
  none     do nothing.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components import lifecycle, registry
from components.deploy import TARGETS, kube
from components.deploy.online import analysis_args

# Where the manifests live: the project root's manifests/, or MLOPS_MANIFESTS (the image sets it).
MANIFESTS = Path(os.environ.get("MLOPS_MANIFESTS", Path(__file__).resolve().parents[2] / "manifests"))
FLAG_RATE_RATIO_TAG = "metric.flag_rate_ratio"


class DeployError(RuntimeError):
    """The deployment was refused or failed; the message names the object and the cause."""


@dataclass
class DeployResult:
    name: str
    version: str
    target: str
    outcome: str                      # promoted | unchanged | skipped
    previous_production: str | None
    message: str
    rendered: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _version(client: MlflowClient, name: str, version: str):
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise DeployError(f"model {name!r} has no version {version!r} in the registry ({exc.message})") from None


def check_deployable(mv, force: bool) -> None:
    """Only a version that passed the gates and was not rejected, unless forced. An archived version
    may be deployed again: that is how a user rolls back."""
    if force:
        return
    if mv.tags.get("gate_passed") != "true":
        raise DeployError(f"model {mv.name!r} version {mv.version} never passed the quality gates; "
                          "use --force to deploy it anyway")
    if lifecycle.state(mv) == "rejected":
        past = lifecycle.history(mv)
        raise DeployError(f"model {mv.name!r} version {mv.version} was rejected "
                          f"({past[-1]['reason'] if past else 'no reason'}); use --force to deploy it anyway")


def expected_flag_rate_ratio(mv) -> float:
    """The version's share of holdout rows decided positive over production's (tag metric.flag_rate_ratio):
    what the canary analysis expects of live traffic; 1 without the tag (no production model to compare)."""
    tag = mv.tags.get(FLAG_RATE_RATIO_TAG)
    if tag is None:
        return 1.0
    try:
        value = float(tag)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise DeployError(f"model {mv.name!r} version {mv.version}: tag {FLAG_RATE_RATIO_TAG} must be a positive "
                          f"number (the expected flag rate ratio of the canary analysis), got {tag!r}")
    return value


def _analysis_args(mv, online: dict) -> dict[str, str]:
    return analysis_args(mv.name, mv.version, online, expected_flag_rate_ratio(mv))


def _promote(client, name: str, version: str, previous: str | None, reason: str, run: str) -> None:
    if previous and previous != str(version):
        lifecycle.move(client, name, previous, "archived", f"replaced by version {version}", run)
    lifecycle.move(client, name, version, "production", reason, run)


def deploy(tracking_uri: str, name: str, version: str, target: str, *, namespace: str = "mlops",
           rollout: str = "fraud-detection", timeout_seconds: float | None = None, online: dict | None,
           pipeline_run: str = "", force: bool = False, output_dir: str | None = None,
           api=None, registry_uri: str = "") -> DeployResult:
    """Deploy `name` version `version` to `target`; see the module docstring. `online` is the checked
    online section of the gates file (components.deploy.online), passed to the canary's analysis with the
    version's expected flag rate ratio (the cluster targets need it; `local` renders the analysis arguments
    only when it is given). Without
    a timeout, the rollout may take as long as the Rollout's own pauses and analyses plus a margin."""
    if target not in TARGETS:
        raise DeployError(f"unknown deployment target {target!r}; targets: {list(TARGETS)}")
    client = registry.client(tracking_uri, registry_uri)
    version = str(version)
    mv = _version(client, name, version)
    previous = lifecycle.aliased_version(client, name, "production")
    if target == "none":
        return DeployResult(name, version, target, "skipped", previous, "deployment target 'none': nothing done")
    check_deployable(mv, force)
    sha = mv.tags.get("model_sha256")
    if not sha:
        raise DeployError(f"model {name!r} version {version} has no model_sha256 tag: was it registered by "
                          "register_model?")
    if target == "local":
        args = _analysis_args(mv, online) if online is not None else None
        rendered = render(name, version, sha, args, output_dir) if output_dir else []
        if previous == version and lifecycle.state(mv) == "production":
            return DeployResult(name, version, target, "unchanged", previous,
                                f"version {version} is already production", rendered)
        _promote(client, name, version, previous, "local deployment: no cluster, promoted without canary "
                                                  "analysis", pipeline_run)
        return DeployResult(name, version, target, "promoted", previous,
                            f"production: version {previous or 'none'} -> {version}", rendered)
    if online is None:
        raise DeployError(f"target {target!r} needs the gates file's 'online' section: the thresholds of the "
                          "canary analysis (see configs/quality_gates.yaml)")
    api = api or kube.api_client()
    if target == "canary":
        return _canary(client, api, mv, sha, previous, namespace, rollout, timeout_seconds, online,
                       pipeline_run)
    return _rolling(client, api, mv, sha, previous, namespace, rollout, timeout_seconds, pipeline_run)


def _canary(client, api, mv, sha, previous, namespace, rollout, timeout, online, run) -> DeployResult:
    name, version = mv.name, str(mv.version)
    ro = kube.Rollouts(api, namespace, rollout)
    obj = ro.get()
    timeout = timeout or kube.expected_seconds(obj)
    deadline = time.monotonic() + timeout
    if kube.pinned_version(obj) == version:
        generation, before = obj["metadata"]["generation"], None
        if kube.healthy_on(obj, generation, None) and previous == version:
            return DeployResult(name, version, "canary", "unchanged", previous,
                                f"version {version} is already production and {ro.what} is Healthy")
        # a rollout of this version is under way (a retried step): follow it, do not patch again
    else:
        before = kube.status(obj).get("currentPodHash")
        obj = ro.pin(obj, name, version, sha, _analysis_args(mv, online))
        generation = obj["metadata"]["generation"]
    lifecycle.move(client, name, version, "canary", f"canary started on {ro.what}", run)
    done = ro.follow(lambda o: kube.healthy_on(o, generation, before) or kube.failed(o), deadline,
                     obj["metadata"]["resourceVersion"])
    if done is not None and kube.healthy_on(done, generation, before):
        _promote(client, name, version, previous, f"every canary analysis passed on {ro.what}", run)
        return DeployResult(name, version, "canary", "promoted", previous,
                            f"production: version {previous or 'none'} -> {version}")
    if done is None:
        ro.abort()
        done = ro.get()
        why = f"timed out after {timeout:.0f} s; the Rollout was aborted"
    else:
        why = "the Rollout was aborted" if kube.status(done).get("abort") else "the Rollout is Degraded"
    details = [kube.status(done).get("message", "")] + ro.failed_analysis(kube.status(done).get("currentPodHash"))
    reason = f"{why}: " + "; ".join(d for d in details if d) if any(details) else why
    lifecycle.move(client, name, version, "rejected", reason, run)
    if previous and previous != version:  # fast rollback to the stable ReplicaSet
        prod = client.get_model_version(name, previous)
        ro.pin(ro.get(), name, previous, prod.tags.get("model_sha256", ""), _analysis_args(prod, online))
    raise DeployError(f"canary of model {name!r} version {version} failed: {reason}; "
                      f"production stays version {previous or 'none'}")


def _rolling(client, api, mv, sha, previous, namespace, name_, timeout, run) -> DeployResult:
    """The plain Deployment path: patch the pinned template, wait until updated and available."""
    from kubernetes import client as k8s

    name, version = mv.name, str(mv.version)
    apps = k8s.AppsV1Api(api)
    what = f"Deployment {namespace}/{name_}"

    def get():
        return api.sanitize_for_serialization(kube.call("get", what, apps.read_namespaced_deployment,
                                                        name_, namespace))

    def patch(obj, ver, digest):
        template = kube.pin_template(obj["spec"]["template"], name, ver, digest)
        ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]},
               {"op": "replace", "path": "/spec/template", "value": template}]
        return api.sanitize_for_serialization(kube.call("patch", what, apps.patch_namespaced_deployment,
                                                        name_, namespace, ops))

    obj = get()
    timeout = timeout or kube.expected_seconds(obj)
    if kube.pinned_version(obj) == version and previous == version:
        return DeployResult(name, version, "rolling", "unchanged", previous, f"version {version} is already production")
    if kube.pinned_version(obj) != version:
        obj = patch(obj, version, sha)
    generation = obj["metadata"]["generation"]
    lifecycle.move(client, name, version, "canary", f"rolling update started on {what}", run)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, want = obj.get("status") or {}, obj["spec"].get("replicas", 1)
        stuck = [c for c in st.get("conditions") or [] if c.get("reason") == "ProgressDeadlineExceeded"]
        if stuck:
            reason = f"{what} exceeded its progress deadline: {stuck[0].get('message', '')}"
            break
        if (st.get("observedGeneration") == generation and st.get("updatedReplicas") == want
                and st.get("availableReplicas") == want and st.get("replicas") == want):
            _promote(client, name, version, previous, f"rolling update of {what} completed", run)
            return DeployResult(name, version, "rolling", "promoted", previous,
                                f"production: version {previous or 'none'} -> {version}")
        time.sleep(1)
        obj = get()
    else:
        reason = f"{what} did not complete within {timeout:.0f} s"
    lifecycle.move(client, name, version, "rejected", reason, run)
    if previous and previous != version:
        patch(get(), previous, client.get_model_version(name, previous).tags.get("model_sha256", ""))
    raise DeployError(f"rolling update of model {name!r} version {version} failed: {reason}; "
                      f"rolled back to version {previous or 'none'}")


def render(name: str, version: str, sha: str, args: dict[str, str] | None, output_dir: str) -> list[str]:
    """Write the base manifests with the version pinned and the analysis arguments `args` (when given):
    what a cluster deployment would apply."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted((MANIFESTS / "base").glob("*.yaml")):
        docs = list(yaml.safe_load_all(source.read_text()))
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") in ("Rollout", "Deployment"):
                doc["spec"]["template"] = kube.pin_template(doc["spec"]["template"], name, version, sha)
                canary = doc["spec"].get("strategy", {}).get("canary")
                if canary and canary.get("steps") and args is not None:
                    canary["steps"] = kube.analysis_steps(canary["steps"], args)
        target = out / source.name
        target.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        written.append(str(target))
    return written
