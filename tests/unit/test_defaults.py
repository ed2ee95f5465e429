import pytest
import yaml

from pipelines import defaults


def test_configs_of_record_load():
    d = defaults.load()
    assert d.model_name and d.schema_uri.endswith(".json")
    # a model tuned for its costs trades accuracy for recall: no accuracy gate, its expected cost gated instead
    assert {"expected_cost", "roc_auc", "average_precision", "latency_p95_ms"} <= set(d.quality_gates["metrics"])
    assert "accuracy" not in d.quality_gates["metrics"]
    assert d.decision == {"objective": "min_cost", "cost_false_negative": 25.0, "cost_false_positive": 1.0}
    assert d.baseline_metrics["roc_auc"] > 0


def test_a_malformed_decision_section_is_an_error_before_anything_trains(tmp_path):
    doc = yaml.safe_load(open(defaults.CONFIG))
    doc["decision"] = {"objective": "max_recall", "min_precision": 2}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(defaults.ConfigError, match="c.yaml: decision: min_precision must be a number with 0 < p <= 1"):
        defaults.load(tmp_path / "c.yaml")
    del doc["decision"]  # without one: fixed at 0.5, as before decisions
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    assert defaults.load(tmp_path / "c.yaml").decision == {"objective": "fixed", "threshold": 0.5}


def _write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("which, mutate, message", [
    ("config", lambda d: d.update(trainig={}), "unknown top-level key(s) ['trainig']"),
    ("config", lambda d: d["registry"].update(url="x"), "section 'registry' has unknown key(s) ['url']"),
    ("config", lambda d: d["training"].update(estimator="svm"), "training.estimator must be one of"),
    ("config", lambda d: d["training"].update(seed="abc"),
     "training.seed must be an int in [0, 4294967295], got 'abc'"),
    ("config", lambda d: d["training"]["tuning"].update(cv=1), "training.tuning.cv must be an int >= 2, got 1"),
    ("config", lambda d: d["training"]["params"].update(max_iter="many"), "training.params.max_iter: "),
    ("gates", lambda d: d["metrics"].update(auc={"minimum": 1}), "unknown metric 'auc'"),
    ("gates", lambda d: d["metrics"]["recall"].update(minimum=True),
     "metrics.recall.minimum must be a finite number, got True"),
    ("gates", lambda d: d["slices"].update(min_rows="many"), "slices.min_rows must be an int >= 0, got 'many'"),
    ("baseline", lambda d: d.update(roc_auc="high"), "roc_auc must be a finite number, got 'high'"),
    ("baseline", lambda d: d.update(roc_auc=True), "roc_auc must be a finite number, got True"),
    ("baseline", lambda d: d.update(roc_acu=0.8), "unknown metric 'roc_acu'; known metrics: ['accuracy', "),
])
def test_bad_config_names_the_file(tmp_path, which, mutate, message):
    files = {"config": defaults.CONFIG, "gates": defaults.GATES, "baseline": defaults.BASELINE}
    docs = {k: yaml.safe_load(open(v)) for k, v in files.items()}
    mutate(docs[which])
    paths = {k: _write(tmp_path, f"{k}.yaml", d) for k, d in docs.items()}
    with pytest.raises(defaults.ConfigError) as err:
        defaults.load(paths["config"], paths["gates"], paths["baseline"])
    assert str(err.value).startswith(str(paths[which])) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_and_missing_yaml(tmp_path):
    bad = _write(tmp_path, "bad.yaml", "training: [unclosed")
    with pytest.raises(defaults.ConfigError, match="bad.yaml: not valid YAML"):
        defaults.load(bad)
    with pytest.raises(defaults.ConfigError, match="nope.yaml: file not found"):
        defaults.load(tmp_path / "nope.yaml")


def _with_resources(tmp_path, resources):
    doc = yaml.safe_load(open(defaults.CONFIG))
    if resources is None:
        del doc["resources"]
    else:
        doc["resources"] = resources
    return _write(tmp_path, "config.yaml", doc)


DEFAULT = {"cpu_request": "500m", "cpu_limit": 1, "memory_request": "1Gi", "memory_limit": "2Gi"}


def test_resources_default_overridden_key_by_key(tmp_path):
    path = _with_resources(tmp_path, {"default": DEFAULT, "train-model": {"cpu_limit": "4", "memory_limit": "8Gi"}})
    resources = defaults.load(path).resources
    assert set(resources) == set(defaults.STEPS + defaults.DRIFT_STEPS)
    assert resources["quality-gate"] == {"cpu_request": "500m", "cpu_limit": "1", "memory_request": "1Gi",
                                         "memory_limit": "2Gi"}
    assert resources["train-model"] == {"cpu_request": "500m", "cpu_limit": "4", "memory_request": "1Gi",
                                        "memory_limit": "8Gi"}
    assert "resources" not in defaults.load(path).as_arguments()  # set on the tasks, not a pipeline parameter


@pytest.mark.parametrize("resources, message", [
    (None, "resources: expected a mapping with a 'default' entry"),
    ({"train-model": DEFAULT}, "resources: expected a mapping with a 'default' entry"),
    ({"default": {**DEFAULT, "gpu": 1}}, "resources.default: expected a mapping of some of"),
    ({"default": {"cpu_request": "1"}}, "resources.default: missing key(s) ['cpu_limit', 'memory_limit', "
                                        "'memory_request']"),
    ({"default": DEFAULT, "train_model": {}}, "resources: unknown step(s) ['train_model']; steps are ['validate-data'"),
    ({"default": {**DEFAULT, "cpu_limit": "two"}}, "resources.validate-data.cpu_limit: 'two' is not a positive "
                                                   "quantity of cores"),
    ({"default": {**DEFAULT, "memory_limit": "2GB"}}, "resources.validate-data.memory_limit: '2GB' is not a "
                                                      "positive quantity of bytes"),
    ({"default": {**DEFAULT, "cpu_request": 0}}, "resources.validate-data.cpu_request: 0 is not a positive"),
    ({"default": {**DEFAULT, "cpu_request": True}}, "resources.validate-data.cpu_request: True is not a positive"),
    ({"default": DEFAULT, "evaluate-model": {"memory_request": "3Gi"}},
     "resources.evaluate-model: memory_request '3Gi' exceeds memory_limit '2Gi'"),
    ({"default": {**DEFAULT, "cpu_request": "1500m"}}, "resources.validate-data: cpu_request '1500m' exceeds "
                                                       "cpu_limit 1"),
])
def test_bad_resources_name_the_file_and_the_step(tmp_path, resources, message):
    path = _with_resources(tmp_path, resources)
    with pytest.raises(defaults.ConfigError) as err:
        defaults.load(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
def test_a_slice_column_that_is_not_a_feature_fails_before_anything_runs(tmp_path, capsys):
    from mlops.cli import main

    gates = yaml.safe_load(open(defaults.GATES))
    gates["slices"]["columns"] = ["channel", "chanel"]
    path = _write(tmp_path, "gates.yaml", gates)
    assert main(["run", "training", "--gates", str(path), "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: slice column(s) ['chanel'] are not features of contract 'card_transactions'" in err
    assert not (tmp_path / "logs").exists()
