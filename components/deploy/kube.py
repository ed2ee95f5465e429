"""The Kubernetes side of a deployment: pin a model version in a pod template, follow the rollout.

Uses the official `kubernetes` client, configured exactly as kubectl is (KUBECONFIG or ~/.kube/config,
else the in-cluster service account). Transient failures (5xx, dropped connections) are retried with
backoff; a 403 names the verb and resource the service account lacks.
"""
from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Callable

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "argoproj.io", "v1alpha1"
VERSION_ANNOTATION = "mlops.model-version"
LOADER, SERVER = "model-loader", "model-server"  # container names in manifests/base/rollout.yaml
RETRIES = 5
TRANSIENT = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class KubeError(RuntimeError):
    """A Kubernetes call failed for a reason a retry cannot fix; the message names object and cause."""


def api_client() -> k8s.ApiClient:
    """A client configured as kubectl would be: kubeconfig first, else the in-cluster service account."""
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    default = os.path.expanduser("~/.kube/config")
    try:
        if paths or os.path.exists(default):
            k8s_config.load_kube_config(config_file=paths[0] if paths else default)
        else:
            k8s_config.load_incluster_config()
    except k8s_config.ConfigException as exc:
        raise KubeError(f"no Kubernetes configuration: set KUBECONFIG or run in a pod ({exc})") from None
    return k8s.ApiClient()


def call(verb: str, what: str, fn: Callable, *args, **kwargs):
    """fn(*args, **kwargs), retried on 5xx and connection errors; 403/404 and others as KubeError."""
    delay = 0.5
    for attempt in range(RETRIES):
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 403:
                raise forbidden(verb, what, exc) from None
            if exc.status == 404:
                raise KubeError(f"{what} not found: {_reason(exc)}") from None
            if exc.status < 500 or attempt == RETRIES - 1:
                raise KubeError(f"cannot {verb} {what}: HTTP {exc.status} {_reason(exc)}") from None
        except TRANSIENT as exc:
            if attempt == RETRIES - 1:
                raise KubeError(f"cannot {verb} {what}: API server unreachable ({exc})") from None
        time.sleep(delay)
        delay *= 2


def forbidden(verb: str, what: str, exc: ApiException) -> KubeError:
    return KubeError(f"forbidden: the service account may not {verb} {what} "
                     f"(grant it in the Role; see manifests/base/role.yaml): {_reason(exc)}")


def _reason(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def model_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"


def pin_template(template: dict, name: str, version: str, sha256: str) -> dict:
    """The pod template with the model version pinned: the init container pulls models:/<name>/<N>,
    both containers get MODEL_SHA256 (the registry's hash) and the template the version annotation."""
    template = copy.deepcopy(template)
    meta = template.setdefault("metadata", {})
    meta.setdefault("annotations", {})[VERSION_ANNOTATION] = str(version)
    spec = template["spec"]
    loaders = [c for c in spec.get("initContainers", []) if c["name"] == LOADER]
    if not loaders:
        raise KubeError(f"the pod template has no init container {LOADER!r} to pull the model")
    command = loaders[0].get("command", [])
    if "--model-uri" not in command:
        raise KubeError(f"init container {LOADER!r} has no --model-uri argument in its command")
    command[command.index("--model-uri") + 1] = model_uri(name, version)
    for container in [*loaders, *(c for c in spec["containers"] if c["name"] == SERVER)]:
        env = [e for e in container.get("env", []) if e["name"] not in ("MODEL_SHA256", "MODEL_VERSION")]
        container["env"] = env + [{"name": "MODEL_SHA256", "value": sha256},
                                  {"name": "MODEL_VERSION", "value": str(version)}]
    return template


def pinned_version(obj: dict) -> str | None:
    return ((obj["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get(VERSION_ANNOTATION)


def analysis_steps(steps: list[dict], args: dict[str, str]) -> list[dict]:
    """The canary steps with `args` set on every analysis step (other arguments kept)."""
    steps = copy.deepcopy(steps)
    for step in steps:
        if "analysis" in step:
            kept = [a for a in step["analysis"].get("args", []) if a["name"] not in args]
            step["analysis"]["args"] = kept + [{"name": k, "value": str(v)} for k, v in args.items()]
    return steps


class Rollouts:
    """Get, pin, follow and abort one Argo Rollout."""

    def __init__(self, api: k8s.ApiClient, namespace: str, name: str):
        self.api, self.ns, self.name = k8s.CustomObjectsApi(api), namespace, name
        self.what = f"Rollout {namespace}/{name}"

    def get(self) -> dict:
        return call("get", self.what, self.api.get_namespaced_custom_object, GROUP, VERSION, self.ns,
                    "rollouts", self.name)

    def pin(self, obj: dict, name: str, version: str, sha256: str, args: dict[str, str]) -> dict:
        """Patch the pinned template and analysis args; the resourceVersion guards against a race."""
        body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"template": pin_template(obj["spec"]["template"], name, version, sha256)}}
        canary = obj["spec"].get("strategy", {}).get("canary")
        if canary and canary.get("steps"):
            body["spec"]["strategy"] = {"canary": {"steps": analysis_steps(canary["steps"], args)}}
        return call("patch", self.what, self.api.patch_namespaced_custom_object, GROUP, VERSION, self.ns,
                    "rollouts", self.name, body)

    def abort(self) -> None:
        """What `kubectl argo rollouts abort` does: status.abort through the status subresource."""
        call("patch", f"{self.what} (status subresource)", self.api.patch_namespaced_custom_object_status,
             GROUP, VERSION, self.ns, "rollouts", self.name, {"status": {"abort": True}})

    def failed_analysis(self, pod_hash: str | None) -> list[str]:
        """Failed or errored metrics of this rollout's AnalysisRuns for the canary's pod hash."""
        runs = call("list", f"AnalysisRuns in namespace {self.ns}", self.api.list_namespaced_custom_object,
                    GROUP, VERSION, self.ns, "analysisruns")
        found = []
        for run in runs.get("items", []):
            owners = [o.get("name") for o in run["metadata"].get("ownerReferences", [])]
            labels = run["metadata"].get("labels") or {}
            if self.name not in owners or (pod_hash and labels.get("rollouts-pod-template-hash") != pod_hash):
                continue
            for metric in (run.get("status") or {}).get("metricResults", []):
                if metric.get("phase") in ("Failed", "Error", "Inconclusive"):
                    last = (metric.get("measurements") or [{}])[-1]
                    found.append(f"{run['metadata']['name']}: metric {metric['name']} {metric['phase']}"
                                 f" (value {last.get('value', 'none')}"
                                 f"{', ' + metric['message'] if metric.get('message') else ''})")
        return found

    def follow(self, done: Callable[[dict], bool], deadline: float, resource_version: str) -> dict | None:
        """Watch the Rollout until `done(obj)`; resume after dropped connections or expired versions.
        Returns the object that satisfied `done`, or None at the deadline."""
        rv = resource_version
        while time.monotonic() < deadline:
            remaining = max(1, int(deadline - time.monotonic()))
            try:
                stream = k8s_watch.Watch().stream(
                    self.api.list_namespaced_custom_object, GROUP, VERSION, self.ns, "rollouts",
                    field_selector=f"metadata.name={self.name}", resource_version=rv,
                    timeout_seconds=min(remaining, 60), allow_watch_bookmarks=True)
                for event in stream:
                    obj = event["object"]
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event["type"] in ("ADDED", "MODIFIED") and done(obj):
                        return obj
                    if time.monotonic() >= deadline:
                        return None
            except ApiException as exc:
                if exc.status == 403:
                    raise forbidden("watch", self.what, exc) from None
                if exc.status != 410 and exc.status < 500:
                    raise KubeError(f"cannot watch {self.what}: HTTP {exc.status} {_reason(exc)}") from None
            except TRANSIENT:
                pass
            # the stream ended (server timeout, dropped connection, expired version): re-read, go on
            obj = self.get()
            if done(obj):
                return obj
            rv = obj["metadata"]["resourceVersion"]
            time.sleep(0.2)
        return None


DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
UNIT = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
ANALYSIS_SECONDS = 300   # one analysis step of manifests/base/analysis-template.yaml: 1 m delay + 4 x 1 m
MARGIN_SECONDS = 900     # pods starting, models downloading, controller lag


def seconds(duration) -> float:
    """An Argo/Go duration ("30m", "1h30m", "45s") or a number of seconds, in seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    parts = DURATION.findall(str(duration))
    if not parts or "".join(n + u for n, u in parts) != str(duration):
        raise KubeError(f"cannot read the duration {duration!r}")
    return sum(float(n) * UNIT[u] for n, u in parts)


def expected_seconds(obj: dict) -> float:
    """How long a rollout of `obj` should take: its canary pauses and analysis steps (or a Deployment's
    progress deadline) plus a margin. An indefinite pause (a manual gate) adds nothing: the margin is
    the time left to release it."""
    spec = obj["spec"]
    steps = (spec.get("strategy", {}).get("canary") or {}).get("steps") or []
    total = sum(seconds((s["pause"] or {}).get("duration", 0)) for s in steps if "pause" in s)
    total += ANALYSIS_SECONDS * sum(1 for s in steps if "analysis" in s)
    if not steps:
        total = spec.get("progressDeadlineSeconds", 600)
    return total + MARGIN_SECONDS


def status(obj: dict) -> dict:
    return obj.get("status") or {}


def healthy_on(obj: dict, generation: int, before_hash: str | None) -> bool:
    """The Rollout runs the patched template, fully promoted: observed generation (a string) equals the
    patched generation, the current pod hash is new, it is the stable one, and the phase is Healthy."""
    st = status(obj)
    return (str(st.get("observedGeneration")) == str(generation)
            and st.get("currentPodHash") is not None
            and (before_hash is None or st["currentPodHash"] != before_hash)
            and st.get("stableRS") == st["currentPodHash"]
            and st.get("phase") == "Healthy")


def failed(obj: dict) -> bool:
    st = status(obj)
    return bool(st.get("abort")) or st.get("phase") == "Degraded"
