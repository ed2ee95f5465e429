"""The whole training pipeline under kfp.local, driven through `mlops run training`, against a real
MLflow tracking server."""
import hashlib
import json
import subprocess
import sys

import pytest
import yaml
from mlflow import MlflowClient

from components import dataio, lifecycle
from mlops import datagen
from tests.conftest import ROOT

MODEL = "fraud-e2e"
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, mlflow_server):
    tmp = tmp_path_factory.mktemp("e2e")
    data = tmp / "transactions.parquet"
    dataio.write_table(datagen.generate(10_000, seed=21), str(data))
    config = yaml.safe_load((ROOT / "configs" / "production.yaml").read_text())
    config["registry"]["model_name"] = MODEL
    config["training"]["tuning"]["param_grid"] = {"max_leaf_nodes": [15, 31]}
    (tmp / "production.yaml").write_text(yaml.safe_dump(config))
    # 10,000 rows give a weaker model than the 100,000 the defaults of record are set for
    gates = yaml.safe_load((ROOT / "configs" / "quality_gates.yaml").read_text())
    gates["metrics"].update(recall={"minimum": 0.05}, average_precision={"minimum": 0.2, "comparison": "gte"},
                            # timing depends on what else the machine runs; benchmarks measure it
                            latency_p95_ms={"maximum": 5000}, latency_p95_ms_batch32={"maximum": 5000},
                            # a 2,000-row holdout has few frauds per slice
                            max_slice_recall_gap={"maximum": 1})
    (tmp / "gates.yaml").write_text(yaml.safe_dump(gates))
    (tmp / "baseline.yaml").write_text(yaml.safe_dump({"roc_auc": 0.8, "average_precision": 0.2}))
    return {"tmp": tmp, "data": data, "uri": mlflow_server, "client": MlflowClient(mlflow_server)}


def mlops(ws, *extra, data=None):
    cmd = [sys.executable, "-m", "mlops.cli", "run", "training", "--data", str(data or ws["data"]),
           "--config", str(ws["tmp"] / "production.yaml"), "--gates", str(ws["tmp"] / "gates.yaml"),
           "--baseline", str(ws["tmp"] / "baseline.yaml"), "--tracking-uri", ws["uri"],
           "--home", str(ws["tmp"] / "home"), "--git-commit", "0123abcd", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def versions(ws):
    return ws["client"].search_model_versions(f"name = '{MODEL}'")


def test_first_run_registers_a_staged_version_with_lineage(workspace):
    result = mlops(workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "10,000 rows" in result.stdout and "quality gate: PASSED" in result.stdout
    assert f"model '{MODEL}' version 1, alias 'staged' (new version)" in result.stdout
    assert "deployed (local): production: version none -> 1" in result.stdout

    client = workspace["client"]
    (mv,) = versions(workspace)
    assert client.get_model_version_by_alias(MODEL, "production").version == mv.version
    assert lifecycle.aliased_version(client, MODEL, "staged") is None
    tags = mv.tags
    assert tags["git_commit"] == "0123abcd"
    assert tags["data_sha256"] == hashlib.sha256(workspace["data"].read_bytes()).hexdigest()
    assert tags["feature_schema"] == "card_transactions" and tags["feature_schema_version"] == "2"
    assert len(tags["model_sha256"]) == 64 and len(tags["config_sha256"]) == 64
    assert tags["lock_sha256"] == hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()
    assert tags["pipeline_run_id"] and tags["gate_passed"] == "true"
    assert tags["trigger_reason"] == "manual" and "trigger_details" not in tags  # started by hand
    assert tags["lifecycle"] == "production"
    assert [h["state"] for h in json.loads(tags["lifecycle_history"])] == ["staged", "production"]
    assert float(tags["metric.roc_auc"]) > 0.8 and "edge_cases_passed" in tags["gate_report"]
    assert float(tags["metric.memory_mb"]) > 0 and "metric.max_slice_recall_gap" in tags
    (stability,) = [line for line in result.stdout.splitlines() if "feature_importance_stability" in line]
    assert stability.rstrip().endswith("not applicable")  # no production model yet
    run = client.get_run(mv.run_id)
    assert run.data.metrics["roc_auc"] == pytest.approx(float(tags["metric.roc_auc"]), rel=1e-5)
    artifacts = {a.path for a in client.list_artifacts(mv.run_id)}
    assert {"model", "feature_importances.json", "gate_report.json", "evaluation.json"} <= artifacts


def test_second_identical_run_registers_nothing_new(workspace):
    result = mlops(workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "version 1, alias 'production' (already registered, unchanged)" in result.stdout
    assert "deployed (local): version 1 is already production" in result.stdout
    assert len(versions(workspace)) == 1
    experiment = workspace["client"].get_experiment_by_name(MODEL)
    assert len(workspace["client"].search_runs([experiment.experiment_id])) == 1


def test_a_new_model_that_passes_the_gates_replaces_production(workspace):
    gates = yaml.safe_load((workspace["tmp"] / "gates.yaml").read_text())
    for gate in gates["metrics"].values():  # absolute bounds only: 10,000-row models differ by chance
        gate.pop("comparison", None), gate.pop("tolerance", None)
    gates["metrics"] = {metric: gate for metric, gate in gates["metrics"].items() if gate}  # expected_cost: none
    gates["metrics"]["feature_importance_stability"] = {"minimum": -1}
    (workspace["tmp"] / "absolute.yaml").write_text(yaml.safe_dump(gates))
    fresh = workspace["tmp"] / "fresh.parquet"
    dataio.write_table(datagen.generate(10_000, seed=23), str(fresh))
    result = mlops(workspace, "--gates", str(workspace["tmp"] / "absolute.yaml"), data=fresh)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "deployed (local): production: version 1 -> 2; version 1 archived" in result.stdout
    client = workspace["client"]
    assert lifecycle.aliased_version(client, MODEL, "production") == "2"
    v1 = client.get_model_version(MODEL, "1")
    assert v1.tags["lifecycle"] == "archived"
    assert json.loads(v1.tags["lifecycle_history"])[-1]["reason"] == "replaced by version 2"


def test_data_breaking_the_contract_fails_at_validation(workspace):
    bad = datagen.generate(2_000, seed=3).drop(columns=["channel"])
    bad.loc[5, "hour_of_day"] = 42
    path = workspace["tmp"] / "bad.parquet"
    dataio.write_table(bad, str(path))
    result = mlops(workspace, data=path)
    assert result.returncode == 1
    assert "step 'validate-data' failed: ValidationFailed" in result.stderr
    assert "'channel': missing column" in result.stderr and "hour_of_day" in result.stderr and "42" in result.stderr
    assert "Nothing was registered" in result.stderr
    assert len(versions(workspace)) == 2


def test_gate_failure_against_production_registers_nothing(workspace):
    gates = yaml.safe_load((workspace["tmp"] / "gates.yaml").read_text())
    gates["metrics"]["roc_auc"]["minimum"] = 0.9999
    (workspace["tmp"] / "strict.yaml").write_text(yaml.safe_dump(gates))
    other = workspace["tmp"] / "other.parquet"
    dataio.write_table(datagen.generate(10_000, seed=22), str(other))
    result = mlops(workspace, "--gates", str(workspace["tmp"] / "strict.yaml"), data=other)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "quality gate: FAILED" in result.stdout and "below minimum 0.9999" in result.stdout
    assert "registered: nothing" in result.stdout
    stability = [line for line in result.stdout.splitlines()
                 if line.strip().startswith("feature_importance_stability")]
    assert stability and "n/a" not in stability[0]  # compared with the production model's importances
    assert len(versions(workspace)) == 2


def test_bad_config_fails_before_anything_runs(workspace, tmp_path):
    config = yaml.safe_load((workspace["tmp"] / "production.yaml").read_text())
    config["training"]["estimatr"] = "x"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(config))
    result = mlops(workspace, "--config", str(tmp_path / "broken.yaml"))
    assert result.returncode == 2
    assert "broken.yaml" in result.stderr and "estimatr" in result.stderr
    assert not (workspace["tmp"] / "home" / "logs").exists() or len(versions(workspace)) == 2
