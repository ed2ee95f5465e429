"""Train a scikit-learn Pipeline whose preprocessing comes from the feature contract."""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib.hashing import NumpyHasher
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from components import dataio, decision, modelfile
from components.contract import MODEL_FILE as CONTRACT_FILE
from components.contract import Contract
from components.numbers import finite_number, is_int, whole_numbers
from components.profile import build_profile
from components.scoring import SCORES, is_positive, positive_index, positive_probability, scorer

TREES = "hist_gradient_boosting"  # the estimator that splits on categories natively (build_pipeline)
TRANSFORM_CHUNK = 500_000  # rows transformed at a time when the trees' input is built
ESTIMATORS = {
    "hist_gradient_boosting": HistGradientBoostingClassifier,
    "random_forest": RandomForestClassifier,
    "logistic_regression": LogisticRegression,
}


class TrainingConfigError(ValueError):
    """The training configuration is malformed."""


def _int(low: int, high: float = float("inf")):
    """A check that a value is an int (not a bool) in [low, high], and what the check asks for."""
    return ((lambda v: is_int(v) and low <= v <= high),
            f"an int >= {low}" if high == float("inf") else f"an int in [{low}, {high}]")


def _share(value) -> bool:
    return finite_number(value) and 0 < value < 1


# Section -> allowed key -> (check, what it asks for), or None where check_config looks at the value itself.
SETTINGS = {
    "training": {"seed": _int(0, 2**32 - 1), "test_size": (_share, "a number between 0 and 1, exclusive"),
                 "estimator": (lambda v: isinstance(v, str) and v in ESTIMATORS, f"one of {sorted(ESTIMATORS)}"),
                 "params": None, "tuning": None, "importance": None},
    "training.tuning": {"param_grid": None, "cv": _int(2), "max_rows": _int(1),
                        "scoring": (lambda v: isinstance(v, str) and v in SCORES, f"one of {sorted(SCORES)}")},
    "training.importance": {"n_repeats": _int(1), "max_rows": _int(1)},
}


def _mapping(value, path: str, source: str) -> dict:
    """An optional section: absent or null is empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TrainingConfigError(f"{source}: {path} must be a mapping, got {value!r}")
    return value


def _check_param(cls, name: str, value, path: str, source: str) -> None:
    """scikit-learn's own validation; its constraints are per parameter, so one value at a time names the culprit."""
    if name not in cls().get_params():
        raise TrainingConfigError(f"{source}: {path} is not a parameter of {cls.__name__}; "
                                  f"allowed: {sorted(cls().get_params())}")
    try:
        cls(**{name: value})._validate_params()
    except ValueError as exc:  # sklearn's InvalidParameterError
        raise TrainingConfigError(f"{source}: {path}: {exc}") from exc


def check_config(config: dict, source: str = "training config") -> dict:
    """The config with whole numbers as int; reject unknown, missing or bad keys and values, naming the source."""
    if not isinstance(config, dict):
        raise TrainingConfigError(f"{source}: expected a mapping, got {type(config).__name__}")
    missing = sorted({"seed", "test_size", "estimator"} - set(config))
    if missing:
        raise TrainingConfigError(f"{source}: missing key(s) {missing} in 'training'")
    config = whole_numbers(config)
    sections = {"training": config,
                "training.tuning": _mapping(config.get("tuning"), "training.tuning", source),
                "training.importance": _mapping(config.get("importance"), "training.importance", source)}
    for path, section in sections.items():
        allowed = SETTINGS[path]
        unknown = sorted(set(section) - set(allowed))
        if unknown:
            raise TrainingConfigError(f"{source}: unknown key(s) {unknown} in '{path}'; allowed: {sorted(allowed)}")
        for key, value in section.items():
            if allowed[key] and not allowed[key][0](value):
                raise TrainingConfigError(f"{source}: {path}.{key} must be {allowed[key][1]}, got {value!r}")
    cls = ESTIMATORS[config["estimator"]]
    for name, value in _mapping(config.get("params"), "training.params", source).items():
        _check_param(cls, name, value, f"training.params.{name}", source)
    grid = _mapping(sections["training.tuning"].get("param_grid"), "training.tuning.param_grid", source)
    for name, values in grid.items():
        path = f"training.tuning.param_grid.{name}"
        if not isinstance(values, list) or not values:
            raise TrainingConfigError(f"{source}: {path} must be a non-empty list of values to try, got {values!r}")
        for value in values:
            _check_param(cls, name, value, path, source)
    return config


def build_pipeline(contract: Contract, estimator: str, params: dict, seed: int) -> Pipeline:
    """Gradient-boosted trees: numeric features as float64 (missing: NaN; trees need no imputing or scaling, and
    route missing values themselves), categorical and boolean ones as category codes (unknown and missing:
    missing) split on natively. Other estimators: impute and scale numeric features, one-hot categorical and
    boolean ones (missing is a category)."""
    discrete = contract.categorical + contract.boolean
    cls = ESTIMATORS[estimator]
    kwargs = dict(params)
    if "random_state" in cls().get_params():
        kwargs.setdefault("random_state", seed)
    if estimator == TREES:
        codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
        floats = StandardScaler(with_mean=False, with_std=False)  # scales nothing: the numbers as floats, NaN kept
        steps = (("numeric", floats, contract.numeric), ("discrete", codes, discrete))
        kwargs.setdefault("categorical_features", [False] * len(contract.numeric) + [True] * len(discrete))
    else:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        steps = (("numeric", numeric, contract.numeric),
                 ("discrete", OneHotEncoder(handle_unknown="ignore", sparse_output=False), discrete))
    pre = ColumnTransformer([step for step in steps if step[2]], remainder="drop")
    return Pipeline([("preprocess", pre), ("model", cls(**kwargs))])


def _is_trees(pipeline: Pipeline) -> bool:
    return isinstance(pipeline[-1], HistGradientBoostingClassifier) and any(
        isinstance(t, OrdinalEncoder) for _, t, _ in pipeline[0].transformers)


def _distinct(df: pd.DataFrame, rows: np.ndarray, contract: Contract) -> pd.DataFrame:
    """A few rows holding every distinct value each categorical and boolean feature takes in `rows`: what
    fitting the preprocessing needs (the encoder's categories are the sorted distinct values; passing numeric
    features through learns nothing), without copying the table."""
    discrete = contract.categorical + contract.boolean
    values = {c: pd.unique(df[c].iloc[rows]) for c in discrete}
    length = max([1, *(len(v) for v in values.values())])
    return pd.DataFrame({c: df[c].iloc[rows[:1]].repeat(length).reset_index(drop=True)
                         if c not in values else pd.Series(np.resize(values[c], length), dtype=df[c].dtype)
                         for c in contract.feature_columns})


def _prepare(pipeline: Pipeline, df: pd.DataFrame, rows: np.ndarray, contract: Contract):
    """Fit the trees' preprocessing on `rows`; the trees split on codes as categories, except a feature with more
    values than bins: its code as a number, text values coded by their positive share among `rows`."""
    pre, model = pipeline[0], pipeline[-1]
    pre.fit(_distinct(df, rows, contract))
    if "discrete" not in pre.named_transformers_:
        return pre
    discrete = contract.categorical + contract.boolean
    categories = list(pre.named_transformers_["discrete"].categories_)
    native = [sum(not pd.isna(v) for v in c) <= model.max_bins for c in categories]
    wide = [i for i, c in enumerate(categories) if not native[i] and c.dtype.kind == "O"]
    if wide:  # a split on the code then parts riskier values from safer ones
        positive = pd.Series(is_positive(df[contract.label].iloc[rows], contract).astype(float))
        for i in wide:
            rate = positive.groupby(df[discrete[i]].iloc[rows].to_numpy()).mean()
            values = sorted((v for v in categories[i] if not pd.isna(v)), key=lambda v: (rate.get(v, 0.0), str(v)))
            categories[i] = np.array(values + [v for v in categories[i] if pd.isna(v)], dtype=object)
        pipeline.set_params(preprocess__discrete__categories=[c.tolist() for c in categories])
        pre.fit(_distinct(df, rows, contract))
    model.set_params(categorical_features=[False] * len(contract.numeric) + native)
    return pre


def _transform(pre, df: pd.DataFrame, rows: np.ndarray, features: list[str]) -> np.ndarray:
    """pre.transform of `rows`, a chunk at a time into one float64 array: no copy of the table."""
    out = None
    for start in range(0, len(rows), TRANSFORM_CHUNK):
        part = pre.transform(df.iloc[rows[start:start + TRANSFORM_CHUNK]][features])
        if out is None:
            out = np.empty((len(rows), part.shape[1]), dtype=np.float64)
        out[start:start + len(part)] = part
    return out if out is not None else np.empty((0, 0))


@dataclass
class Table:
    """The table trained on, held in one place so that training can let it go (`frame = None`) once the trees'
    input is built: the table and the fit's own copies of its input are then never in memory together."""
    frame: pd.DataFrame | None


def _fit(pipeline: Pipeline, table: Table, rows: np.ndarray, contract: Contract,
         validation: np.ndarray | None = None) -> np.ndarray | None:
    """Fit `pipeline` on `rows` of the table; with `validation` rows, return their positive-class probabilities.
    Trees: the input built a chunk at a time (the validation rows also their early stopping's), then the
    table let go before the fit."""
    features, label = contract.feature_columns, contract.label
    if not _is_trees(pipeline):
        df = table.frame
        pipeline.fit(df.iloc[rows][features], df[label].iloc[rows])
        return None if validation is None else positive_probability(pipeline, df.iloc[validation], contract)
    pre, model = _prepare(pipeline, table.frame, rows, contract), pipeline[-1]
    x, y = _transform(pre, table.frame, rows, features), table.frame[label].iloc[rows].to_numpy()
    x_val = None if validation is None else _transform(pre, table.frame, validation, features)
    y_val = None if validation is None else table.frame[label].iloc[validation].to_numpy()
    table.frame = None
    dataio.release_unused()
    model.fit(x, y, **({"X_val": x_val, "y_val": y_val} if x_val is not None and model.early_stopping is not False
                       else {}))
    return None if x_val is None else model.predict_proba(x_val)[:, positive_index(model.classes_, contract)]


# Where the threshold is tuned: a stratified validation split of the training split, VALIDATION_SHARE of it or
# more, so that it holds MIN_VALIDATION_POSITIVES rows of the positive class; when that would take more than
# MAX_VALIDATION_SHARE, out-of-fold predictions of the whole training split (OUT_OF_FOLD folds) instead.
VALIDATION_SHARE, MAX_VALIDATION_SHARE, MIN_VALIDATION_POSITIVES, OUT_OF_FOLD = 0.2, 0.5, 200, 5


@dataclass
class TrainResult:
    pipeline: Pipeline
    train_rows: np.ndarray  # positions of the training split's rows in the table trained on
    holdout: pd.DataFrame
    best_params: dict
    cv_score: float | None
    importances: dict[str, float]
    decision: dict  # the policy, the threshold it chose and the validation figures (components.decision)
    profile: dict  # the reference profile of the training split's raw features (components.profile)


def _sample(rows: np.ndarray, y: pd.Series, max_rows: int | None, seed: int) -> np.ndarray:
    """A stratified sample of `rows` (labels `y`) of at most `max_rows`."""
    if not max_rows or len(rows) <= max_rows:
        return rows
    sample, _ = train_test_split(rows, train_size=max_rows, stratify=y, random_state=seed)
    return sample


def check_labels(df: pd.DataFrame, contract: Contract) -> None:
    """Exactly two label values, one of them the contract's positive class."""
    label = contract.label
    found = sorted(pd.unique(df[label].dropna()).tolist(), key=str)
    if len(found) != 2:
        raise ValueError(f"label column {label!r} must hold exactly 2 classes to train, found {len(found)}: "
                         f"{found[:20]}")
    if not is_positive(found, contract).any():
        raise ValueError(f"positive_class {contract.positive_class!r} of {contract.source} is not a value of "
                         f"label column {label!r}; values found: {found}")


def fit_and_tune(pipeline: Pipeline, table: Table, train_rows: np.ndarray, contract: Contract, policy: dict,
                 seed: int) -> dict:
    """Fit `pipeline` on the training split (`train_rows` of the table) and choose its threshold on predictions
    the holdout never contributed to; the decision. The table may be let go (`Table`).

    `fixed`: fit on the whole training split, nothing to tune. Otherwise on a validation split carved from the
    training split (the served model is fit without it; trees stop early on it), or, when the training split
    has too few positives for one, on out-of-fold predictions of the whole training split (the served model is
    fit on all of it)."""
    features, label = contract.feature_columns, contract.label
    if policy["objective"] == "fixed":
        _fit(pipeline, table, train_rows, contract)
        return {**policy, "validation": None}
    y = table.frame[label].iloc[train_rows]
    positives = int(is_positive(y, contract).sum())
    share = max(VALIDATION_SHARE, MIN_VALIDATION_POSITIVES / max(positives, 1))
    if share <= MAX_VALIDATION_SHARE:
        fit_rows, validation = train_test_split(train_rows, test_size=share, stratify=y, random_state=seed)
        positive, method = is_positive(table.frame[label].iloc[validation], contract), "validation_split"
        probability = _fit(pipeline, table, fit_rows, contract, validation)
    else:
        train_df = table.frame.iloc[train_rows]
        folds = StratifiedKFold(OUT_OF_FOLD, shuffle=True, random_state=seed)
        proba = cross_val_predict(pipeline, train_df[features], train_df[label], cv=folds, method="predict_proba")
        probability = proba[:, positive_index(np.unique(train_df[label]), contract)]
        positive, method = is_positive(train_df[label], contract), f"out_of_fold_{OUT_OF_FOLD}"
        del train_df
        _fit(pipeline, table, train_rows, contract)
    threshold = decision.tune(probability, positive, policy)
    figures = decision.figures(probability, positive, threshold, policy)
    return {**policy, "threshold": threshold, "validation": {"method": method, **figures}}


def _split(df: pd.DataFrame, contract: Contract, config: dict, seed: int, bins: int):
    """(training split's row positions, holdout (a copy), the reference profile of the training split's raw
    features, the grid search's stratified sample (a copy) or None)."""
    label, tuning = contract.label, config.get("tuning") or {}
    check_labels(df, contract)
    # positions, not copies: the training split is read where it is, the holdout copied out for evaluation
    train_rows, holdout_rows = train_test_split(np.arange(len(df)), test_size=float(config["test_size"]),
                                                stratify=df[label], random_state=seed)
    profile = build_profile(df, contract.features, bins, rows=train_rows)
    sample = df.iloc[_sample(train_rows, df[label].iloc[train_rows], tuning.get("max_rows"), seed)] \
        if tuning.get("param_grid") else None
    return train_rows, df.iloc[holdout_rows], profile, sample


def train(data: pd.DataFrame | Table, contract: Contract, config: dict, policy: dict | None = None,
          profile_bins: int = 10) -> TrainResult:
    """Stratified split, optional grid search on a sample, then the fit and the decision threshold of
    `policy` (components.decision; default: fixed at 0.5) by fit_and_tune, and the reference profile of the
    training split's raw features (`profile_bins` quantile bins).

    `data`: the table, or a Table holding the only reference to it, which training lets go before the trees'
    fit. Every score (grid search, permutation importance) is of the contract's positive class.
    """
    policy = decision.check_decision(policy)
    config = check_config(config)
    seed = int(config["seed"])
    label = contract.label
    table = data if isinstance(data, Table) else Table(data)
    del data
    train_rows, holdout, profile, sample = _split(table.frame, contract, config, seed, profile_bins)
    pipeline = build_pipeline(contract, config["estimator"], config.get("params") or {}, seed)
    features = contract.feature_columns
    best_params, cv_score = {}, None
    tuning = config.get("tuning") or {}
    if tuning.get("param_grid"):
        grid = {f"model__{k}": v for k, v in tuning["param_grid"].items()}
        if _is_trees(pipeline):  # which codes are categories: as the final fit will decide, on the sample
            _prepare(pipeline, sample, np.arange(len(sample)), contract)
        scoring = tuning.get("scoring", "roc_auc")
        search = GridSearchCV(pipeline, grid, scoring=scorer(scoring, contract),
                              cv=StratifiedKFold(int(tuning.get("cv", 3)), shuffle=True, random_state=seed),
                              n_jobs=1, refit=False, error_score="raise")
        search.fit(sample[features], sample[label])
        if not np.isfinite(search.best_score_):
            raise ValueError(f"grid search scored {scoring} as {search.best_score_} on every point: the "
                             f"{len(sample)}-row sample has too few rows of each class for {search.n_splits_} folds")
        best_params = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
        cv_score = float(search.best_score_)
        pipeline.set_params(**search.best_params_)
    del sample
    chosen = fit_and_tune(pipeline, table, train_rows, contract, policy, seed)

    imp_cfg = config.get("importance") or {}
    imp_df = holdout.iloc[_sample(np.arange(len(holdout)), holdout[label], imp_cfg.get("max_rows"), seed)]
    result = permutation_importance(pipeline, imp_df[features], imp_df[label], scoring=scorer("roc_auc", contract),
                                    n_repeats=int(imp_cfg.get("n_repeats", 3)), random_state=seed, n_jobs=1)
    importances = {f: round(float(v), 6) for f, v in zip(features, result.importances_mean)}
    not_finite = sorted(f for f, v in importances.items() if not np.isfinite(v))
    if not_finite:
        raise ValueError(f"permutation importance is not finite for {not_finite}")
    return TrainResult(pipeline, train_rows, holdout, best_params, cv_score, importances, chosen, profile)


def save_model(result: TrainResult, contract: Contract, path: str) -> str:
    """Write an MLflow-format model directory (skops, signature, input example); return the sha256 of
    the model file's bytes.

    Serving needs nothing else: the directory names its requirements and the types skops must trust.
    """
    from importlib.metadata import version

    import mlflow.sklearn
    import skops.io as sio
    from mlflow.models import Model, infer_signature

    untrusted = set(sio.get_untrusted_types(data=sio.dumps(result.pipeline)))
    unknown = sorted(untrusted - set(modelfile.TRUSTED_TYPES))
    if unknown:
        raise TypeError(f"the model holds types skops is not told to trust: {unknown}; "
                        f"review them and add them to TRUSTED_TYPES in {modelfile.__name__}")
    example = result.holdout[contract.feature_columns].head(5)
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values; the contract says which can
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(example, result.pipeline.predict(example))
    mlflow.sklearn.save_model(
        result.pipeline, path, serialization_format="skops", skops_trusted_types=sorted(untrusted),
        signature=signature, input_example=example,
        pip_requirements=[f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "skops", "pandas")],
        metadata={"content_sha256": content_sha256(result.pipeline, result.decision),
                  "contract": f"{contract.name} v{contract.version}"})
    contract.save(f"{path}/{CONTRACT_FILE}")
    decision.write(path, {k: v for k, v in result.decision.items() if k not in ("threshold", "validation")},
                   result.decision["threshold"], result.decision["validation"])
    # skops files differ byte for byte between saves of one model; this save's hash is what the registry
    # records as model_sha256 (here for reading only: loading checks the registry's tag)
    digest = modelfile.file_sha256(f"{path}/{modelfile.MODEL_FILE}")
    meta = Model.load(path)
    meta.metadata["model_sha256"] = digest
    meta.save(f"{path}/MLmodel")
    return digest


def content_sha256(pipeline: Pipeline, chosen: dict) -> str:
    """Hash of the fitted estimator's content (arrays by value) and of its decision (policy and threshold):
    same data and config, same hash, whatever the bytes of a save; a change of costs alone is a new model.
    Registration finds an already registered model by it."""
    return NumpyHasher(hash_name="sha256").hash((pipeline, {k: v for k, v in chosen.items() if k != "validation"}))


def config_sha256(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
