"""One rule for where the registry is: --registry-uri, else the tracking URI; an MLFLOW_REGISTRY_URI that
differs without --registry-uri is an error naming both, before anything runs. Two local registries, as a new
user would have them."""
import pytest
import yaml
from mlflow import MlflowClient

from components import dataio
from components.registry import RegistryUriError, client, resolve_registry_uri
from mlops import cli, datagen
from tests.conftest import ROOT
from tests.local.test_drift_loop import GATES, TRAINING

pytestmark = pytest.mark.filterwarnings("ignore")


def test_the_rule(monkeypatch):
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert resolve_registry_uri("sqlite:///t.db") == "sqlite:///t.db"
    assert resolve_registry_uri("sqlite:///t.db", "sqlite:///r.db") == "sqlite:///r.db"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///t.db")  # the same registry: nothing to choose
    assert resolve_registry_uri("sqlite:///t.db") == "sqlite:///t.db"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///other.db")
    assert resolve_registry_uri("sqlite:///t.db", "sqlite:///r.db") == "sqlite:///r.db"  # given: it wins
    with pytest.raises(RegistryUriError, match="MLFLOW_REGISTRY_URI is 'sqlite:///other.db', another registry than "
                                               "the tracking URI 'sqlite:///t.db'.*--registry-uri sqlite:///other.db"):
        resolve_registry_uri("sqlite:///t.db")
    with pytest.raises(RegistryUriError):
        client("http://127.0.0.1:1")
    assert client("http://127.0.0.1:1", "http://127.0.0.1:2")._registry_uri == "http://127.0.0.1:2"


@pytest.fixture(scope="module")
def two_registries(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registries")
    dataio.write_table(datagen.generate(2000, seed=5), str(tmp / "data.parquet"))
    config = yaml.safe_load((ROOT / "configs" / "production.yaml").read_text())
    (tmp / "production.yaml").write_text(yaml.safe_dump({**config, "training": TRAINING}))
    (tmp / "gates.yaml").write_text(yaml.safe_dump(GATES))
    return tmp, f"sqlite:///{tmp / 'first.db'}", f"sqlite:///{tmp / 'second.db'}"


def training(tmp, tracking: str, *more: str) -> list[str]:
    return ["run", "training", "--data", str(tmp / "data.parquet"), "--config", str(tmp / "production.yaml"),
            "--gates", str(tmp / "gates.yaml"), "--schema", str(ROOT / "schemas" / "features_v2.json"),
            "--tracking-uri", tracking, "--home", str(tmp / "home"), "--git-commit", "0123abcd", *more]


def versions(uri: str) -> list[str]:
    return [str(mv.version) for mv in MlflowClient(uri, registry_uri=uri).search_model_versions()]


def test_a_stray_registry_variable_is_refused_before_anything_runs(two_registries, monkeypatch, capsys):
    tmp, first, second = two_registries
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", first)
    for argv in (training(tmp, second),
                 ["deploy", "--model-version", "1", "--target", "local", "--tracking-uri", second,
                  "--home", str(tmp / "home")],
                 ["run", "drift-check", "--log-uri", str(tmp), "--tracking-uri", second, "--home", str(tmp / "home")]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert f"MLFLOW_REGISTRY_URI is '{first}', another registry than the tracking URI '{second}'" in err
        assert f"--registry-uri {first}" in err
    assert not (tmp / "home" / "pipeline_root").exists()  # nothing ran


def test_a_separate_registry_given_by_flag_is_where_the_model_lands(two_registries, monkeypatch, capsys):
    tmp, first, second = two_registries
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", first)
    assert cli.main(training(tmp, second, "--registry-uri", first)) == 0, capsys.readouterr()
    assert versions(first) == ["1"] and versions(second) == []
    monkeypatch.delenv("MLFLOW_REGISTRY_URI")
    # the same data and settings with the tracking server as the registry: its own version 1 there
    assert cli.main(training(tmp, second)) == 0, capsys.readouterr()
    assert versions(first) == ["1"] and versions(second) == ["1"]
