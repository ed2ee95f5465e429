"""Drift scoring on constructed data: the guide's rule, edge cases, the window and the production version."""
import time
import warnings
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.drift import inference_log, logic
from components.drift.report import render_html
from components.profile import build_profile
from serving.inference_log import InferenceLogger

CONFIG = {"min_samples": 10000, "drift_threshold": 0.15, "drifted_share": 0.30, "window_hours": 24, "bins": 10}
KINDS = {**{f"n{i}": "numeric" for i in range(20)}, **{f"c{i}": "categorical" for i in range(6)},
         **{f"b{i}": "boolean" for i in range(4)}}
CATS = ["a", "b", "c", "d"]


def frame(rows: int, seed: int, shifted=()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = {}
    for name, kind in KINDS.items():
        moved = name in shifted
        if kind == "numeric":
            out[name] = rng.normal(1.0 if moved else 0.0, 1.0, rows) * 10 + 100
        elif kind == "categorical":
            out[name] = rng.choice(CATS, rows, p=[0.1, 0.2, 0.3, 0.4] if moved else [0.4, 0.3, 0.2, 0.1])
        else:
            out[name] = rng.random(rows) < (0.7 if moved else 0.2)
    return pd.DataFrame(out)


@pytest.fixture(scope="module")
def profile():
    return build_profile(frame(20000, 1), KINDS)


def run(current: pd.DataFrame, profile) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result, _ = logic.evaluate(pa.Table.from_pandas(current, preserve_index=False), profile, CONFIG)
    assert all(np.isfinite(v) for v in [*result["scores"].values(), *result["ks"].values()])
    return result


def test_profile_holds_quantile_bins_and_value_shares(profile):
    spec = profile["features"]["n0"]
    assert len(spec["edges"]) == 9 and spec["edges"] == sorted(spec["edges"])
    assert np.allclose(spec["shares"], 0.1, atol=0.002) and spec["null_share"] == 0
    assert profile["features"]["c0"]["values"] == CATS
    assert np.allclose(profile["features"]["c0"]["shares"], [0.4, 0.3, 0.2, 0.1], atol=0.02)
    assert profile["features"]["b0"]["values"] == [False, True]


def test_no_drift_flags_nothing(profile):
    result = run(frame(12000, 2), profile)
    assert result["decision"] == "no_drift" and result["drifted_features"] == []
    assert max(result["scores"].values()) < 0.02 and max(result["ks"].values()) < 0.03


def test_twelve_of_thirty_shifted_are_exactly_flagged_and_retraining_due(profile):
    shifted = [*(f"n{i}" for i in range(8)), "c0", "c1", "b0", "b1"]
    result = run(frame(12000, 3, shifted), profile)
    assert sorted(result["drifted_features"]) == sorted(shifted)
    assert result["decision"] == "retrain" and result["drifted_share"] == pytest.approx(12 / 30, abs=1e-6)
    assert result["samples"] == 12000 and len(result["scores"]) == 30
    assert all(result["ks"][f] > 0.3 for f in shifted if f.startswith("n"))


def test_five_of_thirty_flagged_but_not_due(profile):
    shifted = ["n1", "n5", "n9", "c3", "b2"]
    result = run(frame(12000, 4, shifted), profile)
    assert sorted(result["drifted_features"]) == sorted(shifted)
    assert result["decision"] == "no_drift"


def test_under_min_samples_no_decision(profile):
    result = run(frame(9999, 5, [f"n{i}" for i in range(20)]), profile)
    assert result["decision"] == "insufficient_data" and result["drifted_features"] == []
    assert result["reason"] == "waiting for more data: 9999 of 10000"


def test_unseen_categories_constant_features_empty_bins_and_nulls():
    reference = pd.DataFrame({"const": np.full(1000, 5.0), "cat": ["x"] * 600 + ["y"] * 400,
                              "gap": np.r_[np.zeros(500), np.ones(500)],
                              "holes": np.r_[np.arange(900.0), [np.nan] * 100], "flag": [True] * 1000})
    kinds = {"const": "numeric", "cat": "categorical", "gap": "numeric", "holes": "numeric", "flag": "boolean"}
    profile = build_profile(reference, kinds)
    assert profile["features"]["const"]["edges"] == [5.0] or profile["features"]["const"]["edges"] == []
    assert profile["features"]["holes"]["null_share"] == pytest.approx(0.1)
    current = pd.DataFrame({"const": [5.0] * 10000 + [None] * 2000, "cat": ["z"] * 6000 + [None] * 6000,
                            "gap": np.full(12000, 0.5), "holes": [None] * 12000, "flag": [False] * 12000})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result, detail = logic.evaluate(pa.Table.from_pandas(current, preserve_index=False), profile, CONFIG)
    for feature, d in detail.items():
        assert np.isfinite(d["psi"]) and np.isfinite(d["current"]).all(), feature
    assert detail["cat"]["current"][-2:] == [0.5, 0.5]  # unseen bin, null bin
    assert detail["holes"]["ks"] is None  # no values to compare
    assert set(result["drifted_features"]) == {"const", "cat", "holes", "flag", "gap"}
    assert "<svg" in render_html({**result, "skipped_files": []}, detail, profile)


def test_psi_is_finite_and_zero_on_equal_shares():
    assert logic.psi(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.5, 0.0])) == 0
    assert np.isfinite(logic.psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])))


def test_window_scores_only_the_production_versions_rows(tmp_path, profile):
    writer = InferenceLogger(str(tmp_path / "log"), "fraud", flush_seconds=0.05)
    for version, shifted, rows in (("3", (), 10500), ("4", tuple(KINDS), 4000)):
        data = frame(rows, int(version), shifted)
        writer.log(data, np.zeros(rows, dtype=int), np.zeros(rows), version, "stable", [f"r{i}" for i in range(rows)])
    writer.close()
    table, skipped = inference_log.read_log(str(tmp_path / "log"), "fraud", "3", KINDS, 24)
    assert table.num_rows == 10500 and skipped == [] and table.column_names == list(KINDS)
    result, _ = logic.evaluate(table, profile, CONFIG)
    assert result["decision"] == "no_drift"
    later = datetime.now(timezone.utc).replace(year=datetime.now().year + 1)
    assert inference_log.read_log(str(tmp_path / "log"), "fraud", "3", KINDS, 24, now=later)[0].num_rows == 0


def test_unreadable_files_are_skipped_by_name_and_the_others_count(tmp_path, profile):
    writer = InferenceLogger(str(tmp_path), "fraud", flush_seconds=0.05)
    writer.log(frame(100, 7), np.zeros(100, dtype=int), np.zeros(100), "3", "stable", ["r"] * 100)
    writer.close()
    hour = next((tmp_path / "model=fraud").iterdir())
    frame(5, 8).drop(columns=["n3"]).to_parquet(hour / "missing.parquet")
    frame(5, 8).astype({"n4": str}).assign(model_version="3", timestamp=pd.Timestamp.now(tz="UTC")).to_parquet(
        hour / "typed.parquet")
    logged = frame(5, 8).assign(model_version="3", timestamp=pd.Timestamp.now(tz="UTC"))
    logged.astype({"c0": "category"}).assign(c0=1).to_parquet(hour / "x-category.parquet")
    logged.assign(b0="yes").to_parquet(hour / "x-boolean.parquet")
    logged.assign(timestamp="2026-01-01").to_parquet(hour / "x-timestamp.parquet")
    table, skipped = inference_log.read_log(str(tmp_path), "fraud", "3", KINDS, 24)
    assert table.num_rows == 100
    assert [(s["file"].rsplit("/", 1)[-1], s["reason"]) for s in skipped] == [
        ("missing.parquet", "missing column(s): n3, model_version, timestamp"),
        ("typed.parquet", "column(s) of another type: n4 is string, expected a number"),
        ("x-boolean.parquet", "column(s) of another type: b0 is string, expected boolean"),
        ("x-category.parquet", "column(s) of another type: c0 is int64, expected string as in the files before"),
        ("x-timestamp.parquet", "column(s) of another type: timestamp is string, expected a timestamp")]
    with pytest.raises(logic.DriftError, match="no such folder"):
        inference_log.read_log(str(tmp_path / "nowhere"), "fraud", "3", KINDS, 24)


def test_logs_with_and_without_the_row_column_both_read(tmp_path):
    writer = InferenceLogger(str(tmp_path), "fraud", flush_seconds=0.05)
    writer.log(frame(100, 7), np.zeros(100, dtype=int), np.zeros(100), "3", "stable", ["r"] * 100)
    writer.close()
    hour = next((tmp_path / "model=fraud").iterdir())
    (new,) = hour.glob("*.parquet")
    logged = pd.read_parquet(new)
    assert logged["row"].tolist() == list(range(100))
    logged.drop(columns="row").to_parquet(hour / "older.parquet", index=False)  # as written before the column
    table, skipped = inference_log.read_log(str(tmp_path), "fraud", "3", KINDS, 24)
    assert table.num_rows == 200 and skipped == [] and table.column_names == list(KINDS)


@pytest.mark.parametrize("change, message", [({"bins": 0}, "bins"), ({"drifted_share": 1.5}, "drifted_share"),
                                             ({"extra": 1}, "unknown key"), ({"window_hours": "x"}, "window_hours")])
def test_config_errors_name_the_key(change, message):
    with pytest.raises(logic.DriftError, match=message):
        logic.check_config({**CONFIG, **change}, "configs/drift.yaml")


values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.integers(-5, 5).map(float))


@settings(max_examples=300, deadline=None)
@given(edges=st.lists(st.integers(-5, 5).map(float) | st.floats(-1e6, 1e6), min_size=1, max_size=12)
       .map(sorted), chunks=st.lists(st.lists(values, max_size=40), min_size=1, max_size=3))
def test_numeric_bin_counts_equal_numpy_searchsorted(edges, chunks):
    """The counting fast path bins exactly as np.searchsorted(side="right") does; null and NaN to the null bin."""
    column = pa.chunked_array([pa.array(c, pa.float64()) for c in chunks], pa.float64())
    x = np.array([np.nan if v is None else v for c in chunks for v in c], dtype=float)
    idx = np.searchsorted(np.array(edges), x, side="right")
    idx[np.isnan(x)] = len(edges) + 1
    expected = np.bincount(idx, minlength=len(edges) + 2)
    got = logic.current_counts(column, {"kind": "numeric", "edges": edges})
    assert got.tolist() == expected.tolist()


def test_a_window_end_keeps_the_rows_logged_up_to_it(tmp_path):
    writer = InferenceLogger(str(tmp_path / "log"), "fraud", flush_seconds=0.05)
    writer.log(frame(300, 1), np.zeros(300, dtype=int), np.zeros(300), "3", "stable", ["r"] * 300)
    writer.close()
    end = datetime.now(timezone.utc)
    time.sleep(0.01)  # the log's times are in milliseconds
    writer = InferenceLogger(str(tmp_path / "log"), "fraud", flush_seconds=0.05)
    writer.log(frame(200, 2), np.zeros(200, dtype=int), np.zeros(200), "3", "stable", ["r"] * 200)
    writer.close()
    read = inference_log.read_log
    assert read(str(tmp_path / "log"), "fraud", "3", KINDS, 1)[0].num_rows == 500
    assert read(str(tmp_path / "log"), "fraud", "3", KINDS, 1, now=logic.window_end(end.isoformat()))[0].num_rows == 300
    in_paris = end.astimezone(timezone(pd.Timedelta(hours=1).to_pytimedelta()))  # the same instant, another offset
    assert read(str(tmp_path / "log"), "fraud", "3", KINDS, 1, now=in_paris)[0].num_rows == 300


@pytest.mark.parametrize("text", ["yesterday", "2026-01-31T12:00:00"])
def test_a_window_end_needs_an_iso_time_with_its_offset(text):
    with pytest.raises(logic.DriftError, match=f"window_end '{text}': expected an ISO 8601 time with a UTC offset"):
        logic.window_end(text)


def test_streamed_batches_score_exactly_as_the_window_in_memory(tmp_path, profile):
    """The check streams the log batch by batch (bounded memory); the scores, KS and decision are those of the
    whole window read into one table, whatever the batch size."""
    writer = InferenceLogger(str(tmp_path / "log"), "fraud", flush_seconds=0.05, max_file_rows=2000)
    for version, shifted, rows in (("3", ("n1", "c2", "b0"), 12000), ("4", tuple(KINDS), 3000)):
        data = frame(rows, int(version), shifted).astype({"c1": "category"})
        data.loc[data.index % 7 == 0, "n2"] = np.nan
        writer.log(data, np.zeros(rows, dtype=int), np.zeros(rows), version, "stable", [f"r{i}" for i in range(rows)])
    writer.close()
    table, _ = inference_log.read_log(str(tmp_path / "log"), "fraud", "3", KINDS, 24)
    in_memory = logic.evaluate(table, profile, {**CONFIG, "min_samples": 100})
    for rows in (97, 5000):
        streamed = logic.evaluate(inference_log.batches(str(tmp_path / "log"), "fraud", "3", KINDS, 24,
                                                        batch_rows=rows), profile, {**CONFIG, "min_samples": 100})
        assert streamed == in_memory
    assert in_memory[0]["samples"] == 12000 and in_memory[0]["decision"] == "no_drift"
    assert {"n1", "c2", "b0"} <= set(in_memory[0]["drifted_features"])
