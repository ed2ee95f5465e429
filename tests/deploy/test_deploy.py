"""deploy_model against a Kubernetes API emulator over real HTTP (client configured from a kubeconfig file,
as against a cluster) and a real MLflow server. A small "controller" plays Argo Rollouts' part."""
from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
import yaml
from mlflow import MlflowClient

from components import lifecycle
from components.deploy import kube
from components.deploy.logic import DeployError, deploy
from tests.conftest import ROOT
from tests.kube_emulator import Emulator, pod_hash

ARGO = "/apis/argoproj.io/v1alpha1"
APPS = "/apis/apps/v1"
NS, ROLLOUT = "mlops", "fraud-detection"
ONLINE = {"max_latency_p95_seconds": 0.1, "max_error_rate": 0.01, "max_client_error_rate_increase": 0.02,
          "max_shed_rate_increase": 0.02, "max_flag_rate_ratio_drift": 2.5, "min_flagged_for_flag_rate": 30}
names = (f"deploy-model-{i}" for i in itertools.count())


class Argo:
    """Plays the Argo Rollouts controller: a new pod template starts a canary that, after `delay`
    seconds, ends Healthy ("healthy"), aborted by a failed analysis ("fail"), paused by an inconclusive
    one ("inconclusive") or never ("hang")."""

    def __init__(self, emu: Emulator, outcome: str = "healthy", delay: float = 0.3):
        self.emu, self.outcome, self.delay = emu, outcome, delay
        emu.on_write(self)

    def __call__(self, key, obj):
        if key[2] != "rollouts":
            return
        threading.Thread(target=self._react, args=(key, obj), daemon=True).start()

    def _react(self, key, obj):
        st = obj.get("status") or {}
        new, gen = pod_hash(obj["spec"]["template"]), str(obj["metadata"]["generation"])
        status = lambda **kw: self.emu.set_status(*key, kw)  # noqa: E731
        if st.get("abort") and st.get("phase") != "Degraded":
            return status(phase="Degraded", message=f"RolloutAborted: Rollout aborted update to revision {gen}")
        if st.get("currentPodHash") == new and st.get("observedGeneration") == gen:
            return
        if new == st.get("stableRS"):  # the template is back on the stable ReplicaSet: fast rollback
            return status(observedGeneration=gen, currentPodHash=new, phase="Healthy", abort=None, message=None)
        status(observedGeneration=gen, currentPodHash=new, phase="Progressing",
               message="more replicas need to be updated")
        time.sleep(self.delay)
        if self.outcome == "healthy":
            status(stableRS=new, phase="Healthy", message=None)
        elif self.outcome == "fail":
            self.emu.put(ARGO, NS, "analysisruns", {
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": f"{ROLLOUT}-{new}-2", "labels": {"rollouts-pod-template-hash": new},
                             "ownerReferences": [{"kind": "Rollout", "name": ROLLOUT}]},
                "status": {"phase": "Failed", "metricResults": [
                    {"name": "error-rate", "phase": "Failed", "measurements": [{"value": "[0.2]"}]}]}})
            status(abort=True, phase="Degraded", message="RolloutAborted: Metric \"error-rate\" assessed Failed "
                                                         "due to failed (2) > failureLimit (1)")
        elif self.outcome == "inconclusive":
            self.emu.put(ARGO, NS, "analysisruns", {
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": f"{ROLLOUT}-{new}-2", "labels": {"rollouts-pod-template-hash": new},
                             "ownerReferences": [{"kind": "Rollout", "name": ROLLOUT}]},
                "status": {"phase": "Inconclusive", "metricResults": [
                    {"name": "flag-rate-drift", "phase": "Inconclusive", "measurements": [{"value": "[]"}]}]}})
            status(phase="Paused", message="InconclusiveAnalysisRun",
                   pauseConditions=[{"reason": "InconclusiveAnalysis"}])


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    emu = Emulator()
    rollout = next(d for d in yaml.safe_load_all((ROOT / "manifests/base/rollout.yaml").read_text()))
    obj = emu.put(ARGO, NS, "rollouts", rollout)
    h = pod_hash(obj["spec"]["template"])
    emu.set_status(ARGO, NS, "rollouts", ROLLOUT,
                   {"observedGeneration": "1", "currentPodHash": h, "stableRS": h, "phase": "Healthy"})
    monkeypatch.setenv("KUBECONFIG", emu.kubeconfig(tmp_path / "kubeconfig"))
    yield emu
    emu.close()


@pytest.fixture
def registry(mlflow_server):
    """A fresh model name with versions 1..4 that passed the gates (staged)."""
    client, name = MlflowClient(mlflow_server), next(names)
    client.create_registered_model(name)
    run = client.create_run(client.create_experiment(name))
    for v in range(1, 5):
        client.create_model_version(name, f"{run.info.artifact_uri}/model-{v}", run_id=run.info.run_id,
                                    tags={"gate_passed": "true", "model_sha256": f"{v:064x}"})
        lifecycle.move(client, name, str(v), "staged", "passed the quality gates")
    return client, name


def run(registry, version, target="canary", **kw):
    client, name = registry
    kw.setdefault("timeout_seconds", 20)
    return deploy(client.tracking_uri, name, str(version), target, namespace=NS, rollout=ROLLOUT,
                  online=ONLINE, pipeline_run="run-1", **kw)


def state(registry, version):
    client, name = registry
    mv = client.get_model_version(name, str(version))
    return lifecycle.state(mv), [h["state"] for h in lifecycle.history(mv)]


def production(registry):
    return lifecycle.aliased_version(registry[0], registry[1], "production")


def test_canary_success_pins_the_version_and_promotes(cluster, registry):
    Argo(cluster)
    result = run(registry, 1)
    assert result.outcome == "promoted" and production(registry) == "1"
    assert state(registry, 1) == ("production", ["staged", "canary", "production"])
    obj = cluster.get(ARGO, NS, "rollouts", ROLLOUT)
    template = obj["spec"]["template"]
    assert template["metadata"]["annotations"][kube.VERSION_ANNOTATION] == "1"
    loader = template["spec"]["initContainers"][0]
    assert loader["command"][loader["command"].index("--model-uri") + 1] == f"models:/{registry[1]}/1"
    server_env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    assert server_env["MODEL_SHA256"] == f"{1:064x}"
    (step, *_) = [s for s in obj["spec"]["strategy"]["canary"]["steps"] if "analysis" in s]
    args = {a["name"]: a["value"] for a in step["analysis"]["args"]}
    assert args["model-version"] == "1" and args["max-latency-p95-seconds"] == "0.1"

    run(registry, 2)  # a second version archives the first
    assert production(registry) == "2"
    assert state(registry, 1)[0] == "archived" and state(registry, 2)[0] == "production"
    mv1 = registry[0].get_model_version(registry[1], "1")
    assert lifecycle.history(mv1)[-1]["reason"] == "replaced by version 2"
    assert lifecycle.aliased_version(*registry, "canary") is None
    assert lifecycle.aliased_version(*registry, "staged") in ("3", "4")


def analysis_args(cluster) -> dict[str, str]:
    """The arguments of the Rollout's first analysis step (the deploy step sets them on every one)."""
    steps = cluster.get(ARGO, NS, "rollouts", ROLLOUT)["spec"]["strategy"]["canary"]["steps"]
    return {a["name"]: a["value"] for a in next(s for s in steps if "analysis" in s)["analysis"]["args"]}


def test_the_canary_analysis_expects_the_versions_flag_rate_ratio(cluster, registry):
    Argo(cluster)
    client, name = registry
    run(registry, 1)  # evaluated without a production model: no tag, expected as production flags
    assert analysis_args(cluster)["expected-flag-rate-ratio"] == "1.0"
    client.set_model_version_tag(name, "2", "metric.flag_rate_ratio", "3.2")  # as register_model writes it
    run(registry, 2)
    args = analysis_args(cluster)
    assert (args["model-version"], args["expected-flag-rate-ratio"]) == ("2", "3.2")
    assert (args["max-flag-rate-ratio-drift"], args["min-flagged-for-flag-rate"]) == ("2.5", "30")


@pytest.mark.parametrize("tag", ["0", "-1", "nan", "inf", "", "high"])
def test_a_bad_flag_rate_ratio_tag_is_refused_and_moves_nothing(cluster, registry, tag):
    Argo(cluster)
    client, name = registry
    client.set_model_version_tag(name, "1", "metric.flag_rate_ratio", tag)
    with pytest.raises(DeployError, match=f"version 1: tag metric.flag_rate_ratio must be a positive number .*"
                                          f"got '{tag}'"):
        run(registry, 1)
    assert not any(r[0] == "patch" for r in cluster.requests)
    assert state(registry, 1)[0] == "staged" and production(registry) is None


def test_an_inconclusive_analysis_pauses_then_times_out_and_rejects(cluster, registry):
    Argo(cluster, outcome="inconclusive", delay=0.1)
    with pytest.raises(DeployError, match="timed out") as failed:
        run(registry, 1, timeout_seconds=2)
    assert "metric flag-rate-drift Inconclusive" in str(failed.value)
    assert ("patch", "rollouts", "status") in cluster.requests  # the abort
    assert state(registry, 1)[0] == "rejected" and production(registry) is None


def test_failed_analysis_rejects_and_rolls_back(cluster, registry):
    argo = Argo(cluster)
    run(registry, 1)
    argo.outcome = "fail"
    with pytest.raises(DeployError, match="error-rate") as failed:
        run(registry, 2)
    assert "production stays version 1" in str(failed.value)
    assert production(registry) == "1" and state(registry, 2)[0] == "rejected"
    assert "error-rate" in lifecycle.history(registry[0].get_model_version(registry[1], "2"))[-1]["reason"]
    assert lifecycle.aliased_version(*registry, "canary") is None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the template is back on version 1, the Rollout Healthy again
        obj = cluster.get(ARGO, NS, "rollouts", ROLLOUT)
        if obj["status"]["phase"] == "Healthy":
            break
        time.sleep(0.1)
    assert kube.pinned_version(obj) == "1" and obj["status"]["phase"] == "Healthy"
    with pytest.raises(DeployError, match="was rejected"):  # refused unless forced
        run(registry, 2)


def test_timeout_aborts_the_rollout(cluster, registry):
    Argo(cluster, outcome="hang")
    with pytest.raises(DeployError, match="timed out"):
        run(registry, 1, timeout_seconds=2)
    assert ("patch", "rollouts", "status") in cluster.requests
    assert state(registry, 1)[0] == "rejected" and production(registry) is None


def test_a_dropped_watch_resumes(cluster, registry):
    Argo(cluster, delay=1.5)

    def drop_the_first_watch():
        while not any(r[0] == "watch" for r in cluster.requests):
            time.sleep(0.05)
        time.sleep(0.2)
        cluster.drop_watches()

    threading.Thread(target=drop_the_first_watch, daemon=True).start()
    assert run(registry, 1).outcome == "promoted"
    assert sum(1 for r in cluster.requests if r[0] == "watch") >= 2


def test_server_errors_are_retried(cluster, registry):
    Argo(cluster)
    cluster.fail(2, 503)
    assert run(registry, 1).outcome == "promoted"


def test_forbidden_names_verb_and_resource_and_moves_nothing(cluster, registry):
    cluster.forbid("patch", "rollouts")
    with pytest.raises(kube.KubeError, match=f"may not patch Rollout {NS}/{ROLLOUT}"):
        run(registry, 1)
    assert state(registry, 1)[0] == "staged" and production(registry) is None


def test_rerun_is_idempotent_and_resumes_after_a_crash(cluster, registry):
    argo = Argo(cluster)
    run(registry, 1)
    before = len([r for r in cluster.requests if r[0] == "patch"])
    assert run(registry, 1).outcome == "unchanged"
    assert len([r for r in cluster.requests if r[0] == "patch"]) == before
    # a step that crashed after patching version 2: the re-run follows without patching again
    argo.delay = 1.0
    obj = cluster.get(ARGO, NS, "rollouts", ROLLOUT)
    client, name = registry
    cluster.put(ARGO, NS, "rollouts", {**obj, "spec": {
        **obj["spec"], "template": kube.pin_template(obj["spec"]["template"], name, "2", f"{2:064x}")},
        "metadata": {**obj["metadata"], "generation": obj["metadata"]["generation"] + 1}})
    patches = len([r for r in cluster.requests if r[0] == "patch"])
    assert run(registry, 2).outcome == "promoted"
    assert len([r for r in cluster.requests if r[0] == "patch"]) == patches
    assert production(registry) == "2"


def test_bad_input_is_refused_and_moves_nothing(cluster, registry, mlflow_server):
    client, name = registry
    with pytest.raises(DeployError, match="has no version '9'"):
        run(registry, 9)
    client.set_model_version_tag(name, "3", "gate_passed", "false")
    with pytest.raises(DeployError, match="never passed the quality gates"):
        run(registry, 3)
    with pytest.raises(kube.KubeError, match=f"Rollout {NS}/missing not found"):
        deploy(mlflow_server, name, "1", "canary", namespace=NS, rollout="missing", online=ONLINE)
    with pytest.raises(DeployError, match="unknown deployment target"):
        run(registry, 1, target="blue-green")
    assert production(registry) is None and state(registry, 1)[0] == "staged"


def test_local_renders_the_pinned_manifests_and_promotes(registry, tmp_path):
    result = run(registry, 1, target="local", output_dir=str(tmp_path / "rendered"))
    assert result.outcome == "promoted" and production(registry) == "1"
    rollout = next(yaml.safe_load_all((tmp_path / "rendered" / "rollout.yaml").read_text()))
    assert kube.pinned_version(rollout) == "1"
    (step, *_) = [s for s in rollout["spec"]["strategy"]["canary"]["steps"] if "analysis" in s]
    assert {a["name"]: a["value"] for a in step["analysis"]["args"]}["expected-flag-rate-ratio"] == "1.0"
    assert run(registry, 1, target="local").outcome == "unchanged"
    run(registry, 2, target="local")
    assert state(registry, 1)[0] == "archived" and production(registry) == "2"


class DeploymentController:
    """Plays the Deployment controller: a new template becomes available, or exceeds its deadline."""

    def __init__(self, emu, ok=True):
        self.emu, self.ok = emu, ok
        emu.on_write(self)

    def __call__(self, key, obj):
        if key[2] == "deployments":
            threading.Thread(target=self._react, args=(key, obj), daemon=True).start()

    def _react(self, key, obj):
        time.sleep(0.2)
        gen, n = obj["metadata"]["generation"], obj["spec"].get("replicas", 1)
        if self.ok:
            self.emu.set_status(*key, {"observedGeneration": gen, "replicas": n, "updatedReplicas": n,
                                       "availableReplicas": n})
        else:
            self.emu.set_status(*key, {"observedGeneration": gen, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet has timed out progressing"}]})


def test_rolling_success_and_failure(cluster, registry):
    rollout = cluster.get(ARGO, NS, "rollouts", ROLLOUT)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": ROLLOUT, "namespace": NS},
                  "spec": {"replicas": 2, "selector": rollout["spec"]["selector"],
                           "template": rollout["spec"]["template"]}}
    cluster.put(APPS, NS, "deployments", deployment)
    controller = DeploymentController(cluster)
    assert run(registry, 1, target="rolling").outcome == "promoted" and production(registry) == "1"
    controller.ok = False
    with pytest.raises(DeployError, match="progress deadline"):
        run(registry, 2, target="rolling", timeout_seconds=5)
    assert state(registry, 2)[0] == "rejected" and production(registry) == "1"
    assert kube.pinned_version(cluster.get(APPS, NS, "deployments", ROLLOUT)) == "1"
    assert json.dumps(state(registry, 1)[1]) == '["staged", "canary", "production"]'


def test_the_default_timeout_follows_the_rollouts_own_steps():
    steps = [{"setWeight": 10}, {"pause": {"duration": "30m"}}, {"analysis": {}}, {"pause": {"duration": "1h30s"}},
             {"pause": {}}]
    expected = 1800 + 3630 + kube.ANALYSIS_SECONDS + kube.MARGIN_SECONDS
    assert kube.expected_seconds({"spec": {"strategy": {"canary": {"steps": steps}}}}) == expected
    assert kube.expected_seconds({"spec": {"progressDeadlineSeconds": 60}}) == 60 + kube.MARGIN_SECONDS
    with pytest.raises(kube.KubeError, match="'30 minutes'"):
        kube.seconds("30 minutes")


def test_mlops_deploy_cli(cluster, registry, capsys):
    from mlops.cli import main

    Argo(cluster)
    client, name = registry
    common = ["--tracking-uri", client.tracking_uri, "--model-name", name, "--namespace", NS, "--rollout", ROLLOUT,
              "--config", str(ROOT / "configs/production.yaml"), "--gates", str(ROOT / "configs/quality_gates.yaml")]
    assert main(["deploy", "--model-version", "1", "--target", "canary", *common]) == 0
    assert "production: version none -> 1" in capsys.readouterr().out
    client.set_model_version_tag(name, "2", "gate_passed", "false")
    assert main(["deploy", "--model-version", "2", "--target", "canary", *common]) == 1
    assert "never passed the quality gates; use --force" in capsys.readouterr().err
    assert production(registry) == "1"


def test_an_unreachable_api_server_is_a_clear_error(registry, tmp_path, monkeypatch):
    from tests.conftest import free_port

    port = free_port()  # nothing listens there
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.setattr(kube, "RETRIES", 2)
    with pytest.raises(kube.KubeError, match=f"cannot get Rollout {NS}/{ROLLOUT}: API server unreachable"):
        run(registry, 1)
    assert state(registry, 1)[0] == "staged" and production(registry) is None
