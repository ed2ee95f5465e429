"""Serving building blocks without HTTP: request checks, micro-batching, the inference log, settings."""
import asyncio
import copy
import threading
import time

import fsspec
import numpy as np
import pyarrow.dataset as ds
import pytest
from fsspec.implementations.local import LocalFileSystem

from components.contract import parse
from serving.batching import MicroBatcher
from serving.config import Settings, SettingsError
from serving.inference_log import InferenceLogger
from serving.requests import ClientError, RequestReader, parse_json, rows_from_body


def rows_of(frame):
    import json
    return json.loads(frame.to_json(orient="records"))


def test_reader_builds_the_training_dtypes(contract, transactions):
    reader = RequestReader(contract)
    rows = rows_of(transactions[contract.feature_columns].head(5))
    frame = reader.frame(reader.check(rows))
    assert dict(frame.dtypes.astype(str)) == dict(transactions[contract.feature_columns].dtypes.astype(str))
    assert reader.pandera is None  # every check of the worked example is compiled


def test_reader_falls_back_to_pandera_for_other_checks(contract, transactions):
    doc = copy.deepcopy(contract.to_dict())
    doc["pandera"]["columns"]["merchant_category"]["str_length"] = {"min_value": 3, "max_value": 20}
    reader = RequestReader(parse(doc))
    assert reader.pandera is not None
    row = rows_of(transactions[contract.feature_columns].head(1))[0]
    reader.check([row])
    with pytest.raises(ClientError) as err:
        reader.check([{**row, "merchant_category": "x" * 30}])
    assert "merchant_category" in str(err.value) and err.value.status == 422


def test_whole_floats_pass_for_int_columns_but_fractions_do_not(contract, transactions):
    reader = RequestReader(contract)
    row = rows_of(transactions[contract.feature_columns].head(1))[0]
    assert reader.frame(reader.check([{**row, "hour_of_day": 4.0}]))["hour_of_day"].dtype == "int64"
    with pytest.raises(ClientError, match="whole number"):
        reader.check([{**row, "hour_of_day": 4.5}])


def test_body_shapes():
    assert rows_from_body({"instances": [{"a": 1}]}) == ([{"a": 1}], "instances")
    assert rows_from_body({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}})[0] == [{"a": 1, "b": 2}]
    for bad in ([], {"rows": []}, {"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}):
        with pytest.raises(ClientError):
            rows_from_body(bad)


def test_micro_batcher_groups_concurrent_requests():
    calls = []

    def predict(rows, tags, positions):
        calls.append(len(rows))
        assert tags == [f"r{r['x']}" for r in rows]  # each row arrives with its request's tag
        assert positions.tolist() == [0] * len(rows)  # and its position in its request: one row each
        time.sleep(0.01)
        values = np.array([r["x"] for r in rows])
        return values * 2, values / 10

    async def scenario():
        batcher = MicroBatcher(predict, max_batch_size=8, max_wait_ms=2)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([{"x": i}], f"r{i}") for i in range(20)))
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert [int(r[0][0]) for r in results] == [2 * i for i in range(20)]  # each request gets its own rows
    assert sum(calls) == 20 and len(calls) < 20 and max(calls) <= 8


def test_micro_batcher_predicts_a_large_request_in_its_thread_and_isolates_a_failing_one():
    threads = []

    def predict(rows, tags, positions):
        threads.append(threading.current_thread().name)
        if any(r["x"] < 0 for r in rows):
            raise ValueError("bad row")
        values = np.array([r["x"] for r in rows])
        return values * 2, values / 10

    async def scenario():
        batcher = MicroBatcher(predict, max_batch_size=4, max_wait_ms=0)
        batcher.start()
        big = batcher.submit([{"x": i} for i in range(10)], "big")
        small = [batcher.submit([{"x": x}], f"s{x}") for x in (1, -1, 3)]
        results = await asyncio.gather(big, *small, return_exceptions=True)
        await batcher.stop()
        return results

    big, one, bad, three = asyncio.run(scenario())
    assert big[0].tolist() == [2 * i for i in range(10)]
    assert one[0].tolist() == [2] and isinstance(bad, ValueError) and three[0].tolist() == [6]
    # 10 rows > MAX_BATCH_SIZE: in the thread; then the three together on the loop, and after the failure alone
    assert threads[0].startswith("predict") and threads[1:] == ["MainThread"] * 4


def test_micro_batcher_gives_each_row_its_position_in_its_request():
    calls = []

    def predict(rows, tags, positions):
        calls.append((tags, positions.tolist()))
        if any(r["x"] < 0 for r in rows):
            raise ValueError("bad row")
        values = np.array([r["x"] for r in rows])
        return values * 2, values / 10

    async def scenario(requests):
        batcher = MicroBatcher(predict, max_batch_size=16, max_wait_ms=5)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([{"x": x} for x in xs], tag) for tag, xs in requests),
                                       return_exceptions=True)
        await batcher.stop()
        return results

    # a retried id beside its first try, in the same model call: two requests, each numbered from 0
    asyncio.run(scenario([("a", [1, 2, 3]), ("a", [1, 2, 3]), ("b", [4, 5])]))
    assert calls == [(["a"] * 6 + ["b"] * 2, [0, 1, 2, 0, 1, 2, 0, 1])]
    calls.clear()
    *_, bad = asyncio.run(scenario([("a", [1, 2]), ("b", [3, 4, 5]), ("c", [-1])]))
    assert isinstance(bad, ValueError)  # after the failure, each request alone, still numbered from 0
    assert calls == [(["a"] * 2 + ["b"] * 3 + ["c"], [0, 1, 0, 1, 2, 0]),
                     (["a"] * 2, [0, 1]), (["b"] * 3, [0, 1, 2]), (["c"], [0])]


def test_inference_log_drops_when_full_and_flushes_on_close(tmp_path, transactions):
    frame = transactions.head(4)
    gate = threading.Event()
    dropped, written = [], []
    logger = InferenceLogger(str(tmp_path), "m", queue_size=2, flush_seconds=60, max_file_rows=4,
                             on_drop=lambda n, reason: dropped.append(n), on_write=written.append)
    original = logger._write
    logger._write = lambda path, part: (gate.wait(5), original(path, part))  # a slow store
    for i in range(10):
        logger.log(frame, np.zeros(4, dtype=int), np.zeros(4), "7", "canary", [f"r{i}"] * 4)
    assert sum(dropped) > 0
    gate.set()
    logger.close()
    table = ds.dataset(str(tmp_path), format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(table) == sum(written) == 40 - sum(dropped)
    assert set(table["model_version"]) == {"7"} and str(table["timestamp"].dtype).startswith("datetime64")


def test_sampling_keeps_about_the_rate(tmp_path, transactions):
    logger = InferenceLogger(str(tmp_path), "m", sample_rate=0.25, flush_seconds=60)
    frame = transactions.head(2000)
    logger.log(frame, np.zeros(len(frame), dtype=int), np.zeros(len(frame)), "1", "stable", ["r"] * len(frame))
    logger.close()
    rows = ds.dataset(str(tmp_path), format="parquet", partitioning="hive").count_rows()
    assert 350 < rows < 650


def test_each_row_is_logged_with_its_position_in_its_request(tmp_path, transactions):
    logger = InferenceLogger(str(tmp_path), "m", flush_seconds=60)
    frame = transactions.head(7)
    ids = ["a"] * 3 + ["a"] * 2 + ["b"] * 2  # "a" retried beside its first try: positions given
    logger.log(frame, np.zeros(7, dtype=int), np.zeros(7), "1", "stable", ids, np.array([0, 1, 2, 0, 1, 0, 1]))
    logger.log(frame.head(5), np.zeros(5, dtype=int), np.zeros(5), "1", "stable", ["c"] * 2 + ["d"] * 3)
    logger.close()
    table = logged(tmp_path)
    assert table["row"].dtype == "int64"
    assert table["request_id"].tolist() == [*ids, "c", "c", "d", "d", "d"]
    assert table["row"].tolist() == [0, 1, 2, 0, 1, 0, 1, 0, 1, 0, 1, 2]  # without positions: counted along each id


def test_sampled_rows_keep_their_position_in_their_request(tmp_path, transactions):
    logger = InferenceLogger(str(tmp_path), "m", sample_rate=0.5, flush_seconds=60)
    frame = transactions.head(300).reset_index(drop=True)
    ids = ["a"] * 100 + ["b"] * 200
    logger.log(frame, np.zeros(300, dtype=int), np.zeros(300), "1", "stable", ids)
    logger.log(frame, np.zeros(300, dtype=int), np.zeros(300), "1", "stable", ids, np.r_[0:100, 0:200])
    logger.close()
    table = logged(tmp_path)
    assert 0 < len(table) < 600
    at = table["request_id"].map({"a": 0, "b": 100}) + table["row"]  # each logged row's place in the frame
    assert table["amount"].tolist() == frame["amount"][at].tolist()
    assert table["hour_of_day"].tolist() == frame["hour_of_day"][at].tolist()


def test_settings_from_env_and_flags():
    s = Settings.from_env({"MODEL_PATH": "/m", "WORKERS": "3", "FAIL_FAST": "yes"}, port=1234)
    assert (s.workers, s.fail_fast, s.port, s.metrics_port) == (3, True, 1234, 9090)
    assert Settings.from_env(s.to_env()) == s
    for env, message in (({}, "no model"), ({"MODEL_PATH": "/m", "MAX_BATCH_SIZE": "x"}, "MAX_BATCH_SIZE"),
                         ({"MODEL_PATH": "/m", "MODEL_ROLE": "blue"}, "MODEL_ROLE"),
                         ({"MODEL_PATH": "/m", "INFERENCE_LOG_SAMPLE_RATE": "2"}, "SAMPLE_RATE"),
                         ({"MODEL_PATH": "/m", "MAX_IN_FLIGHT": "0"}, "MAX_IN_FLIGHT")):
        with pytest.raises(SettingsError, match=message):
            Settings.from_env(env)


def test_another_table_with_nullable_boolean_and_categorical_serves_like_it_trained():
    """Served rows must reach the model as training rows did: same dtypes, same missing values."""
    import pandas as pd

    from components.contract import infer
    from components.train.logic import train
    from tests.unit.test_contract import loans

    df = loans(800)
    df["autopay"] = pd.array(np.where(np.arange(800) % 7 == 0, None, df["has_mortgage"]), dtype="boolean")
    df.loc[df.index % 11 == 0, "purpose"] = None
    spec = parse(infer(df, "defaulted", "loans"))
    result = train(df, spec, {"seed": 0, "test_size": 0.25, "estimator": "hist_gradient_boosting",
                              "params": {"max_iter": 20}})
    holdout = result.holdout[spec.feature_columns].reset_index(drop=True)
    reader = RequestReader(spec)
    served = reader.frame(reader.check(rows_of(holdout)))
    assert served["autopay"].isna().sum() == holdout["autopay"].isna().sum() > 0
    np.testing.assert_allclose(result.pipeline.predict_proba(served), result.pipeline.predict_proba(holdout))


def test_role_follows_the_downward_api_file(tmp_path):
    from serving.metrics import Role

    label = tmp_path / "role"
    role = Role("canary", str(label), ttl=0)
    assert role() == "canary"  # no file yet: the starting value
    label.write_text("stable")
    assert role() == "stable"  # promoted: the label changed, the file followed


def test_numpy_preprocessing_gives_the_pipelines_own_probabilities(contract, transactions):
    from sklearn.linear_model import LogisticRegression

    from components.train.logic import train
    from serving.model import ModelInfo, ServedModel
    from tests.unit.test_train import FAST

    result = train(transactions, contract, FAST)
    rows = result.holdout[contract.feature_columns]
    info = ModelInfo(name="m", version="1", source="test")
    served = ServedModel(info, result.pipeline, contract, RequestReader(contract), rows.head(5))
    assert served.use_numpy_preprocessing(rows.head(5))
    np.testing.assert_array_equal(served.predict(rows)[1], result.pipeline.predict_proba(rows)[:, 1])
    np.testing.assert_array_equal(served.predict(rows)[0], result.pipeline.predict(rows))

    other = LogisticRegression().fit(rows[["amount", "hour_of_day"]], result.holdout["is_fraud"])
    bare = ServedModel(info, other, contract, RequestReader(contract), rows.head(5))
    assert not bare.use_numpy_preprocessing(rows.head(5)) and bare.preprocessor is None


def test_a_model_of_the_shape_registered_before_still_serves(contract, transactions, tmp_path):
    """Gradient-boosted trees registered before they split on categories natively (median imputer and scaler,
    one-hot): saved and loaded as a registered model is, they serve through numpy preprocessing, exactly."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from components.train import logic
    from serving import model as served_model
    from tests.unit.test_train import FAST

    result = logic.train(transactions, contract, FAST)
    before = Pipeline([("preprocess", ColumnTransformer([
        ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
         contract.numeric),
        ("discrete", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
         contract.categorical + contract.boolean)], remainder="drop")),
        ("model", HistGradientBoostingClassifier(max_iter=30, random_state=0))])
    rows = result.holdout[contract.feature_columns]
    before.fit(transactions[contract.feature_columns], transactions["is_fraud"])
    result.pipeline = before
    logic.save_model(result, contract, str(tmp_path / "model"))
    served = served_model.load(str(tmp_path / "model"), schema_uri=None)
    assert served.preprocessor is not None  # the one-hot shape compiled, as before
    np.testing.assert_array_equal(served.predict(rows)[1], before.predict_proba(rows)[:, 1])


@pytest.mark.parametrize("positive, negative", [(1, 0), ("fraud", "legit"), (True, False)])
def test_rows_from_the_threshold_on_are_the_positive_class(contract, transactions, positive, negative):
    """The rows just below and exactly at the threshold get opposite labels, the training data's own values (a
    positive class that sorts first included), through numpy preprocessing and scikit-learn alike."""
    from dataclasses import replace

    from components.train.logic import build_pipeline
    from serving.model import ModelInfo, ServedModel

    spec = replace(contract, positive_class=positive)
    labels = transactions["is_fraud"].map({1: positive, 0: negative})
    pipeline = build_pipeline(spec, "hist_gradient_boosting", {"max_iter": 20}, 0)
    pipeline.fit(transactions[spec.feature_columns], labels)
    rows = transactions[spec.feature_columns].head(400)
    proba = pipeline.predict_proba(rows)[:, list(pipeline.classes_).index(positive)]
    ranked = np.unique(proba[proba < 0.5])  # a threshold below 0.5: argmax would decide otherwise
    below, at = ranked[len(ranked) // 2 - 1], ranked[len(ranked) // 2]
    want = np.where(proba >= at, positive, negative)
    assert ((proba >= at) & (proba < 0.5)).any()
    pair = rows.iloc[[np.flatnonzero(proba == below)[0], np.flatnonzero(proba == at)[0]]]
    for numpy_path in (True, False):
        served = ServedModel(ModelInfo("m", "1", "test"), pipeline, spec, RequestReader(spec), rows.head(5), at)
        assert served.use_numpy_preprocessing(rows.head(5)) if numpy_path else served.preprocessor is None
        predicted, probabilities = served.predict(rows)
        np.testing.assert_array_equal(probabilities, proba)
        assert predicted.tolist() == want.tolist() and predicted.dtype == pipeline.classes_.dtype
        assert served.predict(pair)[0].tolist() == [negative, positive]
        assert served.decide(probabilities).sum() == (want == positive).sum()
    default = ServedModel(ModelInfo("m", "1", "test"), pipeline, spec, RequestReader(spec), rows.head(5))
    assert default.predict(rows)[0].tolist() == pipeline.predict(rows).tolist()  # no decision.json: 0.5


class FlakyFileSystem(LocalFileSystem):
    """A real local store, under the `flaky://` protocol, that refuses the next `failures` file writes."""

    protocol = ("flaky",)
    failures = 0
    attempts = 0

    def _open(self, path, mode="rb", **kwargs):
        if "w" in mode:
            type(self).attempts += 1
            if type(self).failures:
                type(self).failures -= 1
                raise OSError("store unavailable")
        return super()._open(path, mode, **kwargs)


@pytest.fixture
def flaky():
    fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)
    FlakyFileSystem.failures = FlakyFileSystem.attempts = 0
    return FlakyFileSystem


def logged(folder):
    return ds.dataset(str(folder), format="parquet", partitioning="hive").to_table().to_pandas()


def test_inference_log_retries_a_store_that_fails_twice_and_loses_nothing(tmp_path, transactions, flaky):
    flaky.failures = 2
    counts = {"written": 0, "dropped": 0, "failures": 0}
    logger = InferenceLogger(f"flaky://{tmp_path}", "m", flush_seconds=60, attempts=3, backoff_seconds=0.01,
                             on_write=lambda n: counts.__setitem__("written", counts["written"] + n),
                             on_drop=lambda n, reason: counts.__setitem__("dropped", counts["dropped"] + n),
                             on_failure=lambda: counts.__setitem__("failures", counts["failures"] + 1))
    frame = transactions.head(6)
    logger.log(frame, np.ones(6, dtype=int), np.full(6, 0.5), "3", "stable", ["a"] * 2 + ["b"] * 4)
    logger.close()
    assert counts == {"written": 6, "dropped": 0, "failures": 2} and flaky.attempts == 3
    table = logged(tmp_path)
    assert len(table) == 6 and table["request_id"].tolist() == ["a", "a", "b", "b", "b", "b"]


def test_inference_log_drops_and_counts_what_a_failing_store_refuses_and_keeps_going(tmp_path, transactions, flaky):
    flaky.failures = 10**9
    drops, failures, written = [], [], []

    def broken_callback(n):  # an error in a metrics callback must not stop the writer either
        written.append(n)
        raise RuntimeError("callback failed")

    logger = InferenceLogger(f"flaky://{tmp_path}", "m", flush_seconds=0.1, attempts=3, backoff_seconds=0.01,
                             on_drop=lambda n, reason: drops.append((n, reason)), on_write=broken_callback,
                             on_failure=lambda: failures.append(1))
    frame = transactions.head(5)
    logger.log(frame, np.zeros(5, dtype=int), np.zeros(5), "3", "stable", ["x"] * 5)
    deadline = time.time() + 10
    while not drops and time.time() < deadline:
        time.sleep(0.05)
    assert drops == [(5, "write_failed")] and len(failures) == 3 and flaky.attempts == 3
    flaky.failures = 0  # the store recovers: the same thread writes the next rows
    logger.log(frame.head(2), np.zeros(2, dtype=int), np.zeros(2), "3", "stable", ["y", "z"])
    logger.close()
    assert written == [2] and logged(tmp_path)["request_id"].tolist() == ["y", "z"]


@pytest.mark.parametrize("body, message", [
    (b"[" * 5000 + b"]" * 5000, "depth limit"),
    (b"[" * 900 + b"NaN" + b"]" * 900 + b"x", "malformed JSON"),
    (b'{"instances": [{"amount": Infinity}]}', "Infinity is not a JSON number"),
    (b'{"instances": [{"amount": 1e400}]}', "beyond the range of a 64-bit float"),
])
def test_bodies_json_cannot_carry_are_400(body, message):
    with pytest.raises(ClientError, match=message) as err:
        parse_json(body)
    assert err.value.status == 400


def test_nan_reads_as_null():
    assert parse_json(b'{"instances": [{"amount": NaN}]}') == {"instances": [{"amount": None}]}
