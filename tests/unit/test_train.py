import copy

import pytest

from components import modelfile
from components.contract import parse
from components.train import logic
from pipelines import defaults

FAST = {"seed": 1, "test_size": 0.25, "estimator": "hist_gradient_boosting",
        "params": {"max_iter": 30}, "tuning": {"param_grid": {"max_leaf_nodes": [7, 15]}, "cv": 2, "max_rows": 1500},
        "importance": {"n_repeats": 1, "max_rows": 500}}


@pytest.fixture(scope="module")
def trained(transactions, contract):
    return logic.train(transactions, contract, FAST)


def test_training_is_reproducible(trained, transactions, contract):
    again = logic.train(transactions, contract, copy.deepcopy(FAST))
    digest = logic.content_sha256(trained.pipeline, trained.decision)
    assert logic.content_sha256(again.pipeline, again.decision) == digest
    other = logic.train(transactions, contract, {**FAST, "seed": 2})
    assert logic.content_sha256(other.pipeline, other.decision) != digest


def test_split_is_stratified_and_importances_cover_features(trained, transactions, contract):
    train_split = transactions["is_fraud"].iloc[trained.train_rows]
    assert abs(trained.holdout["is_fraud"].mean() - train_split.mean()) < 0.01
    assert len(train_split) + len(trained.holdout) == len(transactions)
    assert not set(trained.holdout.index) & set(transactions.index[trained.train_rows])
    assert set(trained.importances) == set(contract.feature_columns)
    assert trained.best_params["max_leaf_nodes"] in (7, 15)


def test_saved_model_is_mlflow_format_with_skops_and_signature(trained, contract, tmp_path):
    import mlflow.pyfunc
    import mlflow.sklearn
    import yaml

    digest = logic.save_model(trained, contract, str(tmp_path / "model"))
    meta = yaml.safe_load((tmp_path / "model" / "MLmodel").read_text())
    assert meta["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert set(meta["flavors"]["sklearn"]["skops_trusted_types"]) <= set(modelfile.TRUSTED_TYPES)
    assert meta["metadata"]["model_sha256"] == digest
    assert (tmp_path / "model" / "input_example.json").exists() and meta["signature"]["inputs"]
    rows = trained.holdout[contract.feature_columns].head(10)
    loaded = mlflow.sklearn.load_model(str(tmp_path / "model"))
    assert (loaded.predict_proba(rows) == trained.pipeline.predict_proba(rows)).all()
    assert list(mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(rows)) == list(trained.pipeline.predict(rows))


def test_untrusted_types_are_refused(trained, contract, tmp_path, monkeypatch):
    monkeypatch.setattr(modelfile, "TRUSTED_TYPES", ["numpy.dtype"])
    with pytest.raises(TypeError, match="TreePredictor"):
        logic.save_model(trained, contract, str(tmp_path / "m"))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(learning_rate=0.1), "unknown key(s) ['learning_rate'] in 'training'"),
    (lambda c: c["tuning"].update(folds=3), "in 'training.tuning'"),
    (lambda c: c.pop("seed"), "missing key(s) ['seed']"),
    (lambda c: c.update(seed="abc"), "training.seed must be an int in [0, 4294967295], got 'abc'"),
    (lambda c: c.update(seed=True), "training.seed must be an int in [0, 4294967295], got True"),
    (lambda c: c.update(test_size="abc"), "training.test_size must be a number between 0 and 1, exclusive, got 'abc'"),
    (lambda c: c.update(test_size=1.5), "training.test_size must be a number between 0 and 1, exclusive, got 1.5"),
    (lambda c: c.update(estimator="xgboost"), "training.estimator must be one of ['hist_gradient_boosting', "),
    (lambda c: c.update(params={"max_iter": "many"}), "training.params.max_iter: The 'max_iter' parameter"),
    (lambda c: c.update(params={"max_depthh": 3}),
     "training.params.max_depthh is not a parameter of HistGradientBoostingClassifier"),
    (lambda c: c.update(params=[30]), "training.params must be a mapping, got [30]"),
    (lambda c: c.update(tuning="grid"), "training.tuning must be a mapping, got 'grid'"),
    (lambda c: c["tuning"].update(param_grid={"learning_rate": 0.1}),
     "training.tuning.param_grid.learning_rate must be a non-empty list of values to try, got 0.1"),
    (lambda c: c["tuning"].update(param_grid={"learning_rate": []}),
     "training.tuning.param_grid.learning_rate must be a non-empty list of values to try, got []"),
    (lambda c: c["tuning"].update(param_grid={"max_leaf_nodes": [7, "x"]}),
     "training.tuning.param_grid.max_leaf_nodes: The 'max_leaf_nodes' parameter"),
    (lambda c: c["tuning"].update(param_grid={"leaves": [7]}), "training.tuning.param_grid.leaves is not a parameter"),
    (lambda c: c["tuning"].update(cv=1), "training.tuning.cv must be an int >= 2, got 1"),
    (lambda c: c["tuning"].update(cv=2.5), "training.tuning.cv must be an int >= 2, got 2.5"),
    (lambda c: c["tuning"].update(scoring="roc_acu"), "training.tuning.scoring must be one of ['accuracy', "),
    (lambda c: c["tuning"].update(max_rows=0), "training.tuning.max_rows must be an int >= 1, got 0"),
    (lambda c: c["importance"].update(max_rows="all"), "training.importance.max_rows must be an int >= 1, got 'all'"),
    (lambda c: c["importance"].update(n_repeats=0), "training.importance.n_repeats must be an int >= 1, got 0"),
])
def test_bad_training_config(change, message):
    config = copy.deepcopy(FAST)
    change(config)
    with pytest.raises(logic.TrainingConfigError, match="^production.yaml: ") as err:
        logic.check_config(config, "production.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_whole_floats_from_kfp_become_ints():
    config = logic.check_config({**FAST, "params": {"max_iter": 200.0}, "seed": 42.0,
                                 "tuning": {**FAST["tuning"], "cv": 3.0,
                                            "param_grid": {"max_leaf_nodes": [7.0, 15.0]}}})
    assert config["params"]["max_iter"] == 200 and isinstance(config["seed"], int)
    assert isinstance(config["tuning"]["cv"], int) and config["tuning"]["param_grid"]["max_leaf_nodes"] == [7, 15]


def test_default_config_names_a_valid_estimator():
    assert defaults.load().training_config["estimator"] in logic.ESTIMATORS


@pytest.mark.parametrize("estimator", ["logistic_regression", "random_forest"])
def test_other_estimators_and_another_table(estimator):
    from components.contract import infer
    from tests.unit.test_contract import loans

    df = loans(600)
    spec = parse(infer(df, "defaulted", "loans"))
    config = {"seed": 0, "test_size": 0.3, "estimator": estimator,
              "params": {"max_iter": 500} if estimator == "logistic_regression" else {"n_estimators": 20}}
    result = logic.train(df, spec, config)
    assert set(result.importances) == set(spec.feature_columns)
    assert result.pipeline.predict_proba(result.holdout[spec.feature_columns]).shape[1] == 2


@pytest.mark.parametrize("positive, negative", [("fraud", "legit"), ("yes", "no")])
def test_string_labels_score_the_positive_class(transactions, contract, positive, negative):
    """Strings score exactly like integers in the same class order, whether the positive class sorts
    first ("fraud" < "legit") or second ("no" < "yes")."""
    from dataclasses import replace

    config = copy.deepcopy(FAST)
    config["tuning"]["scoring"] = "average_precision"  # a score that needs the positive class (NaN before)
    strings = transactions.assign(is_fraud=transactions["is_fraud"].map({1: positive, 0: negative}))
    result = logic.train(strings, replace(contract, positive_class=positive), config)
    first = positive < negative  # integers in the same order: the positive class is 0 when it sorts first
    integers = transactions.assign(is_fraud=transactions["is_fraud"] ^ int(first))
    same = logic.train(integers, replace(contract, positive_class=int(not first)), copy.deepcopy(config))
    assert 0 < result.cv_score <= 1 and result.cv_score == same.cv_score
    assert result.importances == same.importances and max(result.importances.values()) > 0.01
    assert list(result.pipeline.classes_) == sorted([positive, negative])


def test_positive_class_absent_from_the_label_is_named(transactions, contract):
    from dataclasses import replace

    with pytest.raises(ValueError, match=r"positive_class 'yes' .* not a value of label column 'is_fraud'; "
                                         r"values found: \['fraud', 'legit'\]"):
        logic.train(transactions.assign(is_fraud=transactions["is_fraud"].map({1: "fraud", 0: "legit"})),
                    replace(contract, positive_class="yes"), FAST)


COSTS = {"objective": "min_cost", "cost_false_negative": 25, "cost_false_positive": 1}


@pytest.mark.parametrize("positive, negative", [("fraud", "legit"), ("yes", "no")])
def test_the_threshold_is_tuned_for_the_positive_class_of_string_labels(transactions, contract, positive, negative):
    """The same decision as with 0/1 labels in the same class order, out of fold (2,250 training rows hold too
    few frauds for a validation split of 200)."""
    from dataclasses import replace

    strings = transactions.assign(is_fraud=transactions["is_fraud"].map({1: positive, 0: negative}))
    result = logic.train(strings, replace(contract, positive_class=positive), copy.deepcopy(FAST), COSTS)
    first = positive < negative
    integers = transactions.assign(is_fraud=transactions["is_fraud"] ^ int(first))
    same = logic.train(integers, replace(contract, positive_class=int(not first)), copy.deepcopy(FAST), COSTS)
    assert result.decision == same.decision and result.decision["validation"]["method"] == "out_of_fold_5"
    assert 0 < result.decision["threshold"] < 0.5  # a missed fraud costs 25 false alarms: flag more than at 0.5
    assert abs(result.decision["validation"]["positives"] - transactions["is_fraud"].sum() * 0.75) <= 1


def test_a_validation_split_when_positives_allow_and_costs_change_the_model(contract):
    from mlops import datagen

    table = datagen.generate(40_000, seed=3)  # 30,000 training rows, about 630 frauds: a 200-fraud split
    result = logic.train(table, contract, copy.deepcopy(FAST), COSTS)
    assert result.decision["validation"]["method"] == "validation_split"
    assert result.decision["validation"]["positives"] >= 200
    cheaper = logic.train(table, contract, copy.deepcopy(FAST), {**COSTS, "cost_false_negative": 5})
    assert cheaper.decision["threshold"] >= result.decision["threshold"]
    assert logic.content_sha256(cheaper.pipeline, cheaper.decision) != logic.content_sha256(result.pipeline,
                                                                                             result.decision)



def test_a_text_feature_with_more_values_than_bins_is_coded_by_its_risk():
    """600 merchants, every seventh risky: more values than the trees have bins, so the trees split on the code as
    a number; coded by each value's positive share in training, one split parts the risky merchants from the rest
    (coded in the values' sorted order, the model would barely beat chance). Serving's numpy form agrees."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from components.scoring import positive_probability
    from serving import preprocess

    rng = np.random.default_rng(3)
    merchant = rng.integers(0, 600, 20000)
    risky = merchant % 7 == 0
    table = pd.DataFrame({"merchant": [f"m{m:04d}" for m in merchant], "amount": rng.lognormal(3, 1, 20000),
                          "label": np.where(rng.random(20000) < np.where(risky, 0.35, 0.05), "yes", "no")})
    spec = parse({"name": "claims", "version": "1", "label": "label", "positive_class": "yes",
                  "features": {"merchant": "categorical", "amount": "numeric"},
                  "pandera": {"schema_type": "dataframe", "columns": {
                      "merchant": {"dtype": "str", "nullable": False},
                      "amount": {"dtype": "float64", "nullable": False},
                      "label": {"dtype": "str", "nullable": False}}}})
    trained = logic.train(table, spec, {**FAST, "tuning": {}})
    assert trained.pipeline[-1].categorical_features == [False, False]  # amount; merchant as a number
    order = list(trained.pipeline[0].named_transformers_["discrete"].categories_[0])
    share = table.groupby("merchant")["label"].apply(lambda s: (s == "yes").mean())
    assert share[order[:100]].mean() < 0.1 < 0.25 < share[order[-100:]].mean()
    holdout = trained.holdout
    assert roc_auc_score(holdout["label"] == "yes", positive_probability(trained.pipeline, holdout, spec)) > 0.7
    rows = holdout[spec.feature_columns]
    np.testing.assert_array_equal(preprocess.compile(trained.pipeline[0]).transform(rows),
                                  trained.pipeline[0].transform(rows))
