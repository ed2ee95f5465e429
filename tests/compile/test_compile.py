import subprocess
import sys

import pytest
import yaml

import compile as compiler_entry
from pipelines import defaults
from tests.conftest import ROOT

IMAGE = "registry.example.com/team/tabular-mlops:1.2.3"
STEPS = {"validate-data", "train-model", "evaluate-model", "quality-gate"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    paths = compiler_entry.compile_all(out, IMAGE)
    assert [p.name for p in paths] == ["training.yaml", "drift-check.yaml"]
    path = paths[0]
    docs = list(yaml.safe_load_all(path.read_text()))
    return path, docs[0], docs[1] if len(docs) > 1 else {}


def branches(spec) -> dict[str, tuple[str, dict]]:
    """condition -> (trigger condition, tasks) of the If/Else on the gate."""
    tasks = spec["root"]["dag"]["tasks"]
    branch_comp = spec["components"][tasks["condition-branches-1"]["componentRef"]["name"]]
    return {name: (task["triggerPolicy"]["condition"],
                   spec["components"][task["componentRef"]["name"]]["dag"]["tasks"])
            for name, task in branch_comp["dag"]["tasks"].items()}


def test_graph_register_and_deploy_only_under_the_gate(compiled):
    _, spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == STEPS | {"condition-branches-1"}
    assert tasks["train-model"]["dependentTasks"] == ["validate-data"]
    assert tasks["evaluate-model"]["dependentTasks"] == ["train-model"]
    assert tasks["quality-gate"]["dependentTasks"] == ["evaluate-model"]
    assert "quality-gate" in tasks["condition-branches-1"]["dependentTasks"]
    (passed, register), (failed, stop) = sorted(branches(spec).values(), key=lambda b: b[0].startswith("!"))
    assert passed == "inputs.parameter_values['pipelinechannel--quality-gate-Output'] == true"
    assert failed == f"!({passed})"
    assert set(register) == {"register-model", "deploy-model"} and set(stop) == {"stop-on-failed-gate"}
    assert register["register-model"]["retryPolicy"]["maxRetryCount"] == 3
    deploy = register["deploy-model"]
    assert deploy["dependentTasks"] == ["register-model"]
    assert deploy["inputs"]["parameters"]["model_version"]["taskOutputParameter"] == {
        "outputParameterKey": "Output", "producerTask": "register-model"}
    assert deploy["inputs"]["parameters"]["deployment_target"]["componentInputParameter"].endswith(
        "deployment_target")


def test_every_executor_uses_the_given_image_and_installs_nothing(compiled):
    path, spec, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 7
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == IMAGE, name
        assert "pip install" not in " ".join(container["command"]), name
    assert ":latest" not in path.read_text()


def test_caching_off_and_display_names(compiled):
    _, spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    guarded = [t for _, inner in branches(spec).values() for t in inner.values()]
    for task in [*(tasks[s] for s in STEPS), *guarded]:
        assert not task["cachingOptions"].get("enableCache", False)
    assert tasks["validate-data"]["taskInfo"]["name"] == "Validate data"


def _numbers_equal(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_numbers_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_numbers_equal, a, b))
    return a == b


def test_parameter_defaults_equal_configs(compiled):
    _, spec, _ = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    expected = defaults.load(root=ROOT).as_arguments()
    for name, value in expected.items():
        assert _numbers_equal(params[name]["defaultValue"], value), name
    assert "defaultValue" not in params["data_uri"]
    assert params["trigger_reason"]["defaultValue"] == "manual"
    assert params["trigger_details"]["defaultValue"] == ""


def test_register_model_records_why_the_run_started(compiled):
    _, spec, _ = compiled
    (register,) = [t for b in branches(spec).values() for n, t in b[1].items() if n == "register-model"]
    for name in ("trigger_reason", "trigger_details"):
        assert register["inputs"]["parameters"][name]["componentInputParameter"].endswith(name)


def test_no_credentials_in_the_yaml(compiled):
    path, spec, platform = compiled
    text = path.read_text()
    for word in ("password:", "token:", "aws_secret_access_key:", "BEGIN PRIVATE KEY"):
        assert word not in text.lower()
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for config in executors.values():
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == "mlops-credentials" and secret["optional"] is True
        assert {m["envVar"] for m in secret["keyToEnv"]} >= {"MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY"}
    # every step that reads data, a schema file or the registry gets them (training reads schema_uri)
    reads = {f"exec-{name.removeprefix('comp-')}" for name, comp in spec["components"].items()
             if {"data_uri", "schema_uri", "tracking_uri"}
             & set(comp.get("inputDefinitions", {}).get("parameters", {}))}
    assert set(executors) == reads
    assert reads == {"exec-validate-data", "exec-train-model", "exec-evaluate-model", "exec-register-model",
                     "exec-deploy-model"}


def test_each_step_has_the_configured_resources(compiled):
    """configs/production.yaml `resources`: `default`, overridden key by key by a step's own entry."""
    _, spec, _ = compiled
    section = yaml.safe_load((ROOT / defaults.CONFIG).read_text())["resources"]
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{step}" for step in defaults.STEPS}
    for step in defaults.STEPS:
        want = {key: str(value) for key, value in {**section["default"], **section.get(step, {})}.items()}
        got = executors[f"exec-{step}"]["container"]["resources"]
        assert {"cpu_request": got["resourceCpuRequest"], "cpu_limit": got["resourceCpuLimit"],
                "memory_request": got["resourceMemoryRequest"],
                "memory_limit": got["resourceMemoryLimit"]} == want, step
    train = executors["exec-train-model"]["container"]["resources"]
    gate = executors["exec-quality-gate"]["container"]["resources"]
    assert train["cpuLimit"] > gate["cpuLimit"] and train["memoryLimit"] > gate["memoryLimit"]


def test_cli_is_deterministic_and_rejects_latest(tmp_path):
    outs = []
    for i in range(2):
        subprocess.run([sys.executable, str(ROOT / "compile.py"), "--output-dir", str(tmp_path / str(i)),
                        "--image", IMAGE], check=True, capture_output=True, cwd=tmp_path)
        outs.append((tmp_path / str(i) / "training.yaml").read_bytes())
    assert outs[0] == outs[1]
    bad = subprocess.run([sys.executable, str(ROOT / "compile.py"), "--output-dir", str(tmp_path / "x"),
                          "--image", "repo/name:latest"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1 and "no ':latest'" in bad.stderr


def test_drift_check_pipeline(tmp_path):
    """Check drift, then live performance (which decides with the drift result), then trigger retraining only
    when it is due; all uncached, with credentials and resources; configs/drift.yaml and the gates file's live
    section as parameter defaults."""
    path = next(p for p in compiler_entry.compile_all(tmp_path, IMAGE) if p.stem == "drift-check")
    spec, platform = yaml.safe_load_all(path.read_text())
    assert spec["pipelineInfo"]["name"] == "drift-check"
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"check-drift", "check-performance", "condition-1"}
    assert tasks["check-drift"]["cachingOptions"] == {} and tasks["check-performance"]["cachingOptions"] == {}
    assert tasks["condition-1"]["triggerPolicy"]["condition"] == \
        "inputs.parameter_values['pipelinechannel--check-performance-Output'] == 'retrain'"
    performance = tasks["check-performance"]["inputs"]
    assert performance["artifacts"]["drift_result"]["taskOutputArtifact"] == {"producerTask": "check-drift",
                                                                               "outputArtifactKey": "result"}
    (given,) = spec["components"]["comp-condition-1"]["dag"]["tasks"].values()  # and only with data to train on
    assert given["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--training_data_uri'] != ''"
    (trigger,) = spec["components"]["comp-condition-2"]["dag"]["tasks"].values()
    assert trigger["componentRef"]["name"] == "comp-trigger-retraining" and trigger["cachingOptions"] == {}
    assert trigger["inputs"]["artifacts"]["drift_result"]["componentInputArtifact"] == \
        "pipelinechannel--check-performance-result"  # the monitoring result, passed into the condition
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["drift_config"]["defaultValue"] == yaml.safe_load((ROOT / defaults.DRIFT).read_text())
    assert "defaultValue" not in params["log_uri"]
    assert set(spec["components"]["comp-check-drift"]["outputDefinitions"]["parameters"]) == {"Output"}  # decision
    assert {"training_parameters", "pushgateway_url", "outbox_uri", "window_end", "outcomes_uri"} <= set(params)
    assert params["outcomes_uri"]["defaultValue"] == ""  # without outcomes: the drift check alone, as before
    gates = yaml.safe_load((ROOT / defaults.GATES).read_text())["live"]
    assert params["live_gates"]["defaultValue"] == {**gates, "window_days": float(gates["window_days"]),
                                                    "label_maturity_days": float(gates["label_maturity_days"])}
    executor = spec["deploymentSpec"]["executors"]["exec-check-drift"]["container"]
    assert executor["image"] == IMAGE and executor["resources"]["resourceMemoryLimit"]
    for step in ("check-drift", "check-performance", "trigger-retraining"):
        secret = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][f"exec-{step}"]["secretAsEnv"]
        assert secret[0]["secretName"] == "mlops-credentials"
