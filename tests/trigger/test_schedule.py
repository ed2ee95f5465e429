"""`mlops schedule` against the KFP v2beta1 REST emulator over real HTTP: create, update, list, delete."""
from __future__ import annotations

import pytest
import yaml

import compile as compiler_entry
from components.image import DEFAULT_IMAGE
from mlops import cli, schedule, upload
from tests.conftest import free_port
from tests.kfp_emulator import API, KfpEmulator
from tests.upload.test_upload import commit, git

pytestmark = pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")


@pytest.fixture
def kfp(tmp_path, monkeypatch):
    emulator = KfpEmulator()
    monkeypatch.setenv("HOME", str(tmp_path))  # no kfp context file of the machine's user
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-token"))
    yield emulator
    emulator.close()


@pytest.mark.parametrize("given, stored", [("0 * * * *", "0 0 * * * *"),
                                           ("*/15 2-4 * * MON-FRI", "0 */15 2-4 * * MON-FRI"),
                                           ("30 0 * * * *", "30 0 * * * *")])
def test_five_fields_get_a_seconds_field_six_are_kept(given, stored):
    assert schedule.kfp_cron(given) == stored


@pytest.mark.parametrize("bad, why", [("* * * *", "got 4"), ("0 * * * * * *", "got 7"), ("0 * * * $", "'\\$'")])
def test_malformed_cron_is_refused(bad, why):
    with pytest.raises(schedule.ScheduleError, match=why):
        schedule.kfp_cron(bad)


DATA = ("--param", "log_uri=s3://bucket/log", "--param", "training_data_uri=s3://bucket/labelled.parquet")


def mlops(kfp, *args):
    return cli.main(["schedule", *args, "--host", kfp.url, "--namespace", "team-fraud"])


def test_create_uploads_the_pipeline_then_update_replaces_the_recurring_run(kfp, tmp_path, capsys):
    package = tmp_path / "drift-check.yaml"
    package.write_text("pipelineInfo:\n  name: drift-check\n")
    assert mlops(kfp, "drift-check", "--cron", "0 * * * *", "--package", str(package),
                 "--service-account", "pipeline-runner", "--param", "window_hours=24", *DATA) == 0
    pipeline_id = next(iter(kfp.pipelines))
    # looked up in the profile's namespace, then among the shared pipelines; uploaded into the namespace
    assert kfp.calls() == [("GET", f"{API}/pipelines"), ("GET", f"{API}/pipelines"),
                           ("POST", f"{API}/pipelines/upload"),
                           ("GET", f"{API}/pipelines"), ("GET", f"{API}/pipelines/{pipeline_id}/versions"),
                           ("GET", f"{API}/experiments"), ("POST", f"{API}/experiments"),
                           ("GET", f"{API}/recurringruns"), ("POST", f"{API}/recurringruns")]
    upload = kfp.requests[2]
    assert upload["query"]["name"] == ["drift-check"] and upload["query"]["namespace"] == ["team-fraud"]
    assert "name: drift-check" in upload["body"]
    (first,) = kfp.recurring.values()
    assert first["display_name"] == "drift-check"
    assert first["trigger"] == {"cron_schedule": {"cron": "0 0 * * * *"}}
    assert first["max_concurrency"] == 1 and first["no_catchup"] is True and first["mode"] == "ENABLE"
    assert first["service_account"] == "pipeline-runner"
    assert first["runtime_config"]["parameters"] == {"window_hours": 24, "log_uri": "s3://bucket/log",
                                                     "training_data_uri": "s3://bucket/labelled.parquet"}
    (version,) = kfp.versions[pipeline_id]
    assert first["pipeline_version_reference"] == {"pipeline_id": pipeline_id,
                                                   "pipeline_version_id": version["pipeline_version_id"]}
    assert first["experiment_id"] == next(iter(kfp.experiments))
    out = capsys.readouterr().out
    assert "uploaded" in out and "created: drift-check" in out and "cron '0 0 * * * *'" in out
    assert "max_concurrency 1" in out and "catch-up off" in out

    kfp.requests.clear()
    assert mlops(kfp, "drift-check", "--cron", "0 */2 * * *", "--package", str(package), *DATA) == 0
    (second,) = kfp.recurring.values()  # one schedule, never two
    assert second["trigger"]["cron_schedule"]["cron"] == "0 0 */2 * * *"
    calls = kfp.calls()
    assert ("POST", f"{API}/pipelines/upload") not in calls and ("POST", f"{API}/experiments") not in calls
    # KFP has no update: the new one is created before the old one is deleted
    assert calls[-2:] == [("POST", f"{API}/recurringruns"),
                          ("DELETE", f"{API}/recurringruns/{first['recurring_run_id']}")]
    out = capsys.readouterr().out
    assert "updated: drift-check" in out and first["recurring_run_id"] in out

    assert mlops(kfp, "list") == 0
    assert f"drift-check  id {second['recurring_run_id']}  cron '0 0 */2 * * *'" in capsys.readouterr().out
    assert mlops(kfp, "delete") == 0
    assert kfp.recurring == {}
    assert mlops(kfp, "delete") == 2
    assert "no recurring run named 'drift-check'" in capsys.readouterr().err


def test_no_pipeline_and_a_given_package_absent_is_a_clear_error(kfp, tmp_path, capsys):
    absent = tmp_path / "absent.yaml"
    assert mlops(kfp, "drift-check", "--cron", "0 * * * *", "--package", str(absent), *DATA) == 1
    err = capsys.readouterr().err
    assert "no pipeline named 'drift-check' is uploaded" in err and f"the package to upload, {absent}," in err
    assert ("POST", f"{API}/pipelines/upload") not in kfp.calls() and kfp.recurring == {}


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """A folder with no compiled package, the current directory; the source tree's commit is a new repository's."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    monkeypatch.setattr(upload, "SOURCE_REPO", repo)
    monkeypatch.chdir(tmp_path)
    return commit(repo, "v1")


def test_without_a_compiled_package_the_pipeline_is_compiled_and_uploaded_as_the_commits_version(
        kfp, fresh_clone, tmp_path, capsys):
    sha, short = fresh_clone
    assert mlops(kfp, "drift-check", "--cron", "0 * * * *", *DATA) == 0
    (pipeline_id,) = kfp.pipelines
    assert kfp.pipelines[pipeline_id]["display_name"] == "drift-check"
    # created (KFP names its first version after the pipeline), then the commit's version added, as `mlops upload`
    assert [v["display_name"] for v in kfp.versions[pipeline_id]] == ["drift-check", short]
    added = kfp.versions[pipeline_id][1]
    assert added["description"] == f"git commit {sha}"
    compiler_entry.compile_all(tmp_path / "expected", DEFAULT_IMAGE)  # this source tree's drift-check pipeline
    assert added["pipeline_spec"] == (tmp_path / "expected" / "drift-check.yaml").read_text()
    assert [r["upload"] for r in kfp.requests if r["upload"]] == [{"uploadfile": "drift-check.yaml"}] * 2
    (scheduled,) = kfp.recurring.values()
    assert scheduled["pipeline_version_reference"] == {"pipeline_id": pipeline_id,
                                                       "pipeline_version_id": added["pipeline_version_id"]}
    out = capsys.readouterr().out
    assert f"uploaded version '{short}' compiled now as pipeline 'drift-check'" in out and "created: drift-check" in out
    assert not (tmp_path / "compiled").exists()


def test_image_compiles_on_that_image_even_with_a_compiled_package_there(kfp, fresh_clone, tmp_path, capsys):
    image = "ghcr.io/acme/fraud:0123abc"
    (tmp_path / "compiled").mkdir()
    (tmp_path / "compiled" / "drift-check.yaml").write_text("pipelineInfo:\n  name: drift-check\n")
    assert mlops(kfp, "drift-check", "--cron", "0 * * * *", "--image", image, *DATA) == 0
    (pipeline_id,) = kfp.pipelines
    spec = next(yaml.safe_load_all(kfp.versions[pipeline_id][-1]["pipeline_spec"]))
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {image}
    assert "compiled now" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # a file to upload or an image to compile on, not both
        mlops(kfp, "drift-check", "--cron", "0 * * * *", "--image", image, "--package", "compiled/drift-check.yaml")
    assert "not allowed with argument" in capsys.readouterr().err


def test_uncommitted_changes_compiled_now_are_named_dirty(kfp, fresh_clone, tmp_path, capsys):
    _, short = fresh_clone
    (upload.SOURCE_REPO / "model.py").write_text("not committed")
    assert mlops(kfp, "drift-check", "--cron", "0 * * * *", *DATA) == 0
    (pipeline_id,) = kfp.pipelines
    assert [v["display_name"] for v in kfp.versions[pipeline_id]] == ["drift-check", f"{short}-dirty"]
    assert f"uploaded version '{short}-dirty' compiled now" in capsys.readouterr().out


def test_the_default_package_when_there_is_uploaded_as_it_is(kfp, fresh_clone, tmp_path, capsys):
    (tmp_path / "compiled").mkdir()
    (tmp_path / "compiled" / "drift-check.yaml").write_text("pipelineInfo:\n  name: drift-check\n")
    assert mlops(kfp, "drift-check", "--cron", "0 * * * *", *DATA) == 0
    (pipeline_id,) = kfp.pipelines
    (only,) = kfp.versions[pipeline_id]
    assert only["pipeline_spec"] == "pipelineInfo:\n  name: drift-check\n"
    assert "uploaded compiled/drift-check.yaml as pipeline 'drift-check'" in capsys.readouterr().out


def test_malformed_cron_or_no_log_changes_nothing(kfp, capsys):
    kfp.add_pipeline("drift-check")
    assert mlops(kfp, "drift-check", "--cron", "hourly", *DATA) == 2
    assert "cron 'hourly': expected 5 fields" in capsys.readouterr().err
    assert mlops(kfp, "drift-check", "--cron", "0 * * * *", *DATA[2:]) == 2
    assert "the drift check needs --param log_uri=URI" in capsys.readouterr().err
    assert kfp.calls() == [] and kfp.recurring == {}


def test_unreachable_host_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    host = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["schedule", "list", "--host", host, "--namespace", "team-fraud"]) == 1
    err = capsys.readouterr().err
    assert f"KFP at {host}" in err and "refused" in err


def test_version_names_the_pipeline_version_to_schedule(kfp, capsys):
    pipeline_id = kfp.add_pipeline("drift-check", versions=3)
    old = kfp.versions[pipeline_id][0]
    assert mlops(kfp, "drift-check", "--cron", "0 * * * *", "--version", old["display_name"], *DATA) == 0
    (scheduled,) = kfp.recurring.values()
    assert scheduled["pipeline_version_reference"]["pipeline_version_id"] == old["pipeline_version_id"]
    assert mlops(kfp, "drift-check", "--cron", "0 * * * *", "--version", "no-such", *DATA) == 1
    assert "has no version named 'no-such'" in capsys.readouterr().err
    assert list(kfp.recurring.values()) == [scheduled]  # the schedule in place stays
