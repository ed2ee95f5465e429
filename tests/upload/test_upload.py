"""`mlops upload` and `mlops submit training` against the KFP v2beta1 REST emulator over real HTTP, in a
temporary git work tree: the exact requests of a first upload, a new version and a repeated one; bad input."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

import compile as compiler_entry
from mlops import cli, upload
from tests.conftest import free_port
from tests.kfp_emulator import API, KfpEmulator

pytestmark = pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")
IMAGE = "ghcr.io/acme/fraud:0123abc"
TOKEN = "ci-token"
GIT_ENV = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "dev",
           "GIT_COMMITTER_EMAIL": "dev@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True,
                          capture_output=True, text=True).stdout.strip()


def commit(repo, text: str) -> tuple[str, str]:
    """Commit `text` as the model code; (full sha, short sha)."""
    (repo / "model.py").write_text(text)
    git(repo, "add", "model.py")
    git(repo, "commit", "-q", "-m", text)
    return git(repo, "rev-parse", "HEAD"), git(repo, "rev-parse", "--short", "HEAD")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git work tree with one commit, the current directory; no kfp context file, no service-account token."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    monkeypatch.chdir(path)
    monkeypatch.setattr(upload, "SOURCE_REPO", path)  # as if the package's source tree were this repository
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-token"))
    return path


@pytest.fixture
def kfp():
    emulator = KfpEmulator(token=TOKEN)
    yield emulator
    emulator.close()


def compiled_for(directory, sha: str):
    compiler_entry.compile_all(directory, IMAGE, git_commit=sha)
    return directory


def mlops(kfp, *args, token: str | None = TOKEN):
    return cli.main(["upload", "--host", kfp.url, "--namespace", "team-fraud", *(["--token", token] if token else []),
                     *args])


def names(kfp, pipeline: str) -> list[str]:
    (pipeline_id,) = [p for p, v in kfp.pipelines.items() if v["display_name"] == pipeline]
    return [v["display_name"] for v in kfp.versions[pipeline_id]]


def test_first_upload_then_a_new_version_then_the_same_version_again(kfp, repo, tmp_path, capsys):
    sha, short = commit(repo, "v1")
    first_dir = compiled_for(tmp_path / "c1", sha)
    assert mlops(kfp, "--compiled-dir", str(first_dir)) == 0

    training_id, drift_id = (next(p for p, v in kfp.pipelines.items() if v["display_name"] == n)
                             for n in ("training", "drift-check"))
    # per pipeline: looked up in the namespace, then among the shared ones; created in the namespace (KFP names
    # its first version after it); then the commit's version added
    assert kfp.calls() == [("GET", f"{API}/pipelines"), ("GET", f"{API}/pipelines"),
                           ("POST", f"{API}/pipelines/upload"), ("POST", f"{API}/pipelines/upload_version")] * 2
    lookup, shared, create, add = kfp.requests[:4]
    assert json.loads(lookup["query"]["filter"][0])["predicates"] == [
        {"operation": "EQUALS", "key": "display_name", "stringValue": "training"}]
    assert lookup["query"]["namespace"] == ["team-fraud"] and "namespace" not in shared["query"]
    assert create["query"] == {"name": ["training"], "namespace": ["team-fraud"]}
    assert add["query"] == {"name": [short], "pipelineid": [training_id], "description": [f"git commit {sha}"]}
    for request, name in ((create, "training"), (add, "training"), (kfp.requests[6], "drift-check"),
                          (kfp.requests[7], "drift-check")):
        assert request["upload"] == {"uploadfile": f"{name}.yaml"}  # the multipart form kfp.Client sends
        assert request["body"] == (first_dir / f"{name}.yaml").read_text()
    assert kfp.requests[7]["query"]["pipelineid"] == [drift_id]
    assert {r["authorization"] for r in kfp.requests} == {f"Bearer {TOKEN}"}
    assert names(kfp, "training") == ["training", short] and names(kfp, "drift-check") == ["drift-check", short]
    uploaded = next(yaml.safe_load_all(kfp.versions[training_id][1]["pipeline_spec"]))
    assert uploaded["root"]["inputDefinitions"]["parameters"]["git_commit"]["defaultValue"] == sha
    out = capsys.readouterr().out
    assert f"training: created the pipeline with version '{short}'" in out
    assert f"training runs of version '{short}' record git_commit {sha}" in out

    kfp.requests.clear()
    sha2, short2 = commit(repo, "v2")
    second_dir = compiled_for(tmp_path / "c2", sha2)
    assert mlops(kfp, "--compiled-dir", str(second_dir)) == 0
    assert kfp.calls() == [("GET", f"{API}/pipelines"), ("GET", f"{API}/pipelines/{training_id}/versions"),
                           ("POST", f"{API}/pipelines/upload_version"),
                           ("GET", f"{API}/pipelines"), ("GET", f"{API}/pipelines/{drift_id}/versions"),
                           ("POST", f"{API}/pipelines/upload_version")]
    find = kfp.requests[1]
    assert json.loads(find["query"]["filter"][0])["predicates"][0]["stringValue"] == short2
    assert kfp.requests[2]["query"]["name"] == [short2]
    assert names(kfp, "training") == ["training", short, short2]
    assert f"training: added version '{short2}'" in capsys.readouterr().out

    kfp.requests.clear()
    assert mlops(kfp, "--compiled-dir", str(second_dir)) == 0  # the same version again: nothing uploaded
    assert kfp.calls() == [("GET", f"{API}/pipelines"), ("GET", f"{API}/pipelines/{training_id}/versions"),
                           ("GET", f"{API}/pipelines"), ("GET", f"{API}/pipelines/{drift_id}/versions")]
    assert names(kfp, "training") == ["training", short, short2]
    assert names(kfp, "drift-check") == ["drift-check", short, short2]
    assert f"training: version '{short2}' is already uploaded; nothing to do" in capsys.readouterr().out


def test_compiles_when_no_folder_is_given_and_a_dirty_tree_only_when_allowed(kfp, repo, capsys):
    sha, short = commit(repo, "v1")
    (repo / "model.py").write_text("not committed")
    assert mlops(kfp, "--image", IMAGE) == 2
    err = capsys.readouterr().err
    assert f"the work tree has changes not committed to {short}" in err and "--allow-dirty" in err
    assert kfp.requests == []

    assert mlops(kfp, "--image", IMAGE, "--allow-dirty") == 0
    (training_id,) = [p for p, v in kfp.pipelines.items() if v["display_name"] == "training"]
    assert names(kfp, "training") == ["training", f"{short}-dirty"]
    spec = next(yaml.safe_load_all(kfp.versions[training_id][1]["pipeline_spec"]))
    assert spec["root"]["inputDefinitions"]["parameters"]["git_commit"]["defaultValue"] == f"{sha}-dirty"
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {IMAGE}


def test_compile_py_sets_the_commit_and_stays_deterministic(tmp_path):
    first = compiled_for(tmp_path / "a", "0" * 40) / "training.yaml"
    again = compiled_for(tmp_path / "b", "0" * 40) / "training.yaml"
    assert first.read_bytes() == again.read_bytes() and upload.compiled_commit(first) == "0" * 40


def test_no_commit_needs_a_version(kfp, repo, tmp_path, capsys):
    assert mlops(kfp, "--compiled-dir", str(tmp_path)) == 2  # `git init` without a commit
    assert "no git commit to name the version after" in capsys.readouterr().err
    assert kfp.requests == []
    compiled = compiled_for(tmp_path / "c", "unknown")
    assert mlops(kfp, "--compiled-dir", str(compiled), "--version", "release-1") == 0
    assert names(kfp, "training") == ["training", "release-1"]


def test_missing_or_stale_compiled_file_is_refused_before_any_request(kfp, repo, tmp_path, capsys):
    sha, _ = commit(repo, "v1")
    compiled = compiled_for(tmp_path / "c", "f" * 40)  # another commit's
    assert mlops(kfp, "--compiled-dir", str(compiled)) == 2
    assert f"was compiled with git_commit '{'f' * 40}', not this commit '{sha}'" in capsys.readouterr().err
    (compiled / "drift-check.yaml").unlink()
    assert mlops(kfp, "--compiled-dir", str(compiled)) == 2
    assert f"compiled pipeline not found: {compiled / 'drift-check.yaml'}" in capsys.readouterr().err
    assert kfp.requests == [] and kfp.pipelines == {}


def test_unauthorized_and_unreachable_hosts_are_clear_errors(kfp, repo, tmp_path, capsys):
    sha, _ = commit(repo, "v1")
    compiled = compiled_for(tmp_path / "c", sha)
    assert mlops(kfp, "--compiled-dir", str(compiled), token=None) == 1
    assert f"KFP at {kfp.url} refused the request: HTTP 401 Unauthorized" in capsys.readouterr().err
    assert mlops(kfp, "--compiled-dir", str(compiled), token="someone-else") == 1
    assert "HTTP 403 Forbidden (the credentials lack permission in namespace 'team-fraud')" in \
        capsys.readouterr().err
    # without a namespace kfp.Client asks /healthz first: its 401 is reported at once, not after five retries
    assert cli.main(["upload", "--host", kfp.url, "--compiled-dir", str(compiled)]) == 1
    assert f"KFP at {kfp.url} refused the request: HTTP 401 Unauthorized" in capsys.readouterr().err
    assert kfp.pipelines == {}
    host = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["upload", "--host", host, "--compiled-dir", str(compiled)]) == 1
    err = capsys.readouterr().err
    assert f"KFP at {host} is unreachable" in err and "refused" in err


def test_submit_runs_the_named_version_once(kfp, repo, tmp_path, capsys):
    sha, short = commit(repo, "v1")
    assert mlops(kfp, "--compiled-dir", str(compiled_for(tmp_path / "c1", sha))) == 0
    sha2, short2 = commit(repo, "v2")
    assert mlops(kfp, "--compiled-dir", str(compiled_for(tmp_path / "c2", sha2))) == 0
    (training_id,) = [p for p, v in kfp.pipelines.items() if v["display_name"] == "training"]
    first_version = kfp.versions[training_id][1]["pipeline_version_id"]

    def submit(version):
        return cli.main(["submit", "training", "--host", kfp.url, "--namespace", "team-fraud", "--token", TOKEN,
                         "--version", version, "--param", "data_uri=s3://data/labelled.parquet",
                         "--param", "trigger_reason=ci"])

    assert submit(short) == 0
    (run,) = kfp.runs.values()
    assert run["pipeline_version_reference"] == {"pipeline_id": training_id, "pipeline_version_id": first_version}
    assert run["runtime_config"]["parameters"] == {"data_uri": "s3://data/labelled.parquet", "trigger_reason": "ci"}
    assert f"submitted training run {run['run_id']} of version '{short}'" in capsys.readouterr().out
    assert submit(short) == 0 and len(kfp.runs) == 1  # the same job again: the same run
    assert submit(short2) == 0 and len(kfp.runs) == 2  # the same parameters, another version: another run
    assert submit("0000000") == 1
    assert "pipeline 'training' on" in capsys.readouterr().err


def test_a_dirty_tree_allowed_says_so_in_the_version_name_given_or_not():
    dirty, clean = upload.Commit("a" * 40, "aaaaaaa", True), upload.Commit("b" * 40, "bbbbbbb", False)
    assert upload.version_for(dirty, None, allow_dirty=True) == upload.Version("aaaaaaa-dirty", "a" * 40 + "-dirty")
    assert upload.version_for(dirty, "v5", allow_dirty=True).name == "v5-dirty"
    assert upload.version_for(clean, "v5") == upload.Version("v5", "b" * 40)
    with pytest.raises(upload.UploadError, match="'v5-dirty'"):
        upload.version_for(dirty, "v5")


def test_compiled_now_is_named_by_the_source_trees_commit_wherever_it_runs(kfp, repo, tmp_path, monkeypatch):
    _, short = commit(repo, "v1")
    elsewhere = tmp_path / "elsewhere"  # not a git work tree: its own commit would be none
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert mlops(kfp, "--image", IMAGE) == 0
    assert names(kfp, "training") == ["training", short]
