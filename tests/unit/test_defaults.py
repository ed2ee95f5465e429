import pytest
import yaml

from pipelines import defaults


def test_configs_of_record_load():
    d = defaults.load()
    assert d.model_name and d.schema_uri.endswith(".json")
    assert "gates" in d.quality_gates and d.baseline_metrics["roc_auc"] > 0


def _write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("which, mutate, message", [
    ("config", lambda d: d.update(trainig={}), "unknown top-level key(s) ['trainig']"),
    ("config", lambda d: d["registry"].update(url="x"), "section 'registry' has unknown key(s) ['url']"),
    ("config", lambda d: d["training"].update(estimator="svm"), "unknown estimator 'svm'"),
    ("gates", lambda d: d["gates"].update(auc={"minimum": 1}), "unknown metric 'auc'"),
    ("baseline", lambda d: d.update(roc_auc="high"), "baseline metrics must be numbers"),
])
def test_bad_config_names_the_file(tmp_path, which, mutate, message):
    files = {"config": defaults.CONFIG, "gates": defaults.GATES, "baseline": defaults.BASELINE}
    docs = {k: yaml.safe_load(open(v)) for k, v in files.items()}
    mutate(docs[which])
    paths = {k: _write(tmp_path, f"{k}.yaml", d) for k, d in docs.items()}
    with pytest.raises(defaults.ConfigError) as err:
        defaults.load(paths["config"], paths["gates"], paths["baseline"])
    assert f"{which}.yaml" in str(err.value) and message in str(err.value)


def test_malformed_and_missing_yaml(tmp_path):
    bad = _write(tmp_path, "bad.yaml", "training: [unclosed")
    with pytest.raises(defaults.ConfigError, match="bad.yaml: not valid YAML"):
        defaults.load(bad)
    with pytest.raises(defaults.ConfigError, match="nope.yaml: file not found"):
        defaults.load(tmp_path / "nope.yaml")
