"""`mlops run drift-check` against a real MLflow server: the production version's profile, its logged rows."""
import json

import numpy as np
import pytest
from mlflow import MlflowClient

from components import profile
from components.registry import ensure_experiment
from mlops import cli
from serving.inference_log import InferenceLogger
from tests.unit.test_drift import KINDS, frame


def version_with_profile(client: MlflowClient, name: str, tmp_path, tamper: bool = False) -> str:
    run = client.create_run(ensure_experiment(client, name))
    path = tmp_path / profile.PROFILE_FILE
    digest = profile.write_profile(profile.build_profile(frame(5000, 1), KINDS), str(path))
    if tamper:
        path.write_text(path.read_text().replace('"rows": 5000', '"rows": 5001'))
    client.log_artifact(run.info.run_id, str(path))
    try:
        client.create_registered_model(name)
    except Exception:  # noqa: BLE001 - exists from an earlier call
        pass
    source = client.get_run(run.info.run_id).info.artifact_uri.rstrip("/") + "/model"
    mv = client.create_model_version(name, source, run_id=run.info.run_id,
                                     tags={profile.PROFILE_TAG: digest})
    client.set_registered_model_alias(name, "production", mv.version)
    return str(mv.version)


def test_cli_checks_the_production_versions_rows(mlflow_server, tmp_path, capsys):
    client = MlflowClient(mlflow_server)
    old = version_with_profile(client, "drifting", tmp_path)
    new = version_with_profile(client, "drifting", tmp_path)
    writer = InferenceLogger(str(tmp_path / "log"), "drifting", flush_seconds=0.05)
    shifted = [*(f"n{i}" for i in range(10)), "c0", "b0"]
    for version, rows, moved in ((new, 10200, shifted), (old, 3000, ())):
        writer.log(frame(rows, 9, moved), np.zeros(rows, dtype=int), np.zeros(rows), version, "stable", ["r"] * rows)
    writer.close()
    args = ["run", "drift-check", "--log-uri", str(tmp_path / "log"), "--model-name", "drifting",
            "--tracking-uri", mlflow_server, "--report", str(tmp_path / "report.html"),
            "--home", str(tmp_path / "home")]
    assert cli.main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["decision"], result["samples"], result["model_version"]) == ("retrain", 10200, new)
    assert sorted(result["drifted_features"]) == sorted(shifted) and result["retraining"] is None
    assert set(result) >= {"drifted_share", "scores"} and len(result["scores"]) == len(KINDS)
    html = (tmp_path / "report.html").read_text()
    assert "<script" not in html and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert html.index("n0 (numeric)") < html.index("n15 (numeric)")  # drifted first
    assert cli.main([*args, "--window-hours", "0.5"]) == 0
    assert "retrain" in capsys.readouterr().out


def test_a_tampered_profile_or_no_production_is_an_error(mlflow_server, tmp_path, capsys):
    client = MlflowClient(mlflow_server)
    version_with_profile(client, "tampered", tmp_path, tamper=True)
    (tmp_path / "log").mkdir()
    base = ["run", "drift-check", "--log-uri", str(tmp_path / "log"), "--tracking-uri", mlflow_server,
            "--home", str(tmp_path / "home")]
    assert cli.main([*base, "--model-name", "tampered"]) == 2
    assert "differs from its reference_profile_sha256" in capsys.readouterr().err
    assert cli.main([*base, "--model-name", "absent"]) == 2
    assert "no production version" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*base, "--window-hours", "x"])


def test_check_drift_component_writes_metrics_report_and_result(mlflow_server, tmp_path):
    from kfp.dsl import HTML, Artifact, Metrics

    from components.drift.component import check_drift
    from tests.unit.test_drift import CONFIG

    client = MlflowClient(mlflow_server)
    version = version_with_profile(client, "component", tmp_path)
    writer = InferenceLogger(str(tmp_path / "log"), "component", flush_seconds=0.05)
    writer.log(frame(500, 3), np.zeros(500, dtype=int), np.zeros(500), version, "stable", ["r"] * 500)
    writer.close()
    out = {n: cls(uri=str(tmp_path / n)) for n, cls in (("metrics", Metrics), ("report", HTML), ("result", Artifact))}
    outputs = check_drift.python_func(log_uri=str(tmp_path / "log"), tracking_uri=mlflow_server, registry_uri="",
                                      model_name="component", drift_config=CONFIG, pushgateway_url="", window_end="",
                                      **out)
    assert outputs == "insufficient_data"
    assert out["metrics"].metadata["samples"] == 500 and "psi.n0" in out["metrics"].metadata
    assert json.loads((tmp_path / "result").read_text())["reason"] == "waiting for more data: 500 of 10000"
    assert "waiting for more data" in (tmp_path / "report").read_text()
