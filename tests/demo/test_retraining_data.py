"""The demo's retraining data: the served rows labelled by their outcomes, then as many fresh labelled rows of
the generator as v1 trained on; the served rows alone when they are as many or more."""
import pandas as pd

from components import contract
from mlops import datagen
from mlops.demo import performance
from tests.conftest import ROOT

SERVED = datagen.generate(3000, 7)


def test_fresh_rows_follow_fewer_served_rows_than_v1_trained_on(tmp_path):
    spec = contract.load(ROOT / "schemas" / "features_v2.json")
    frauds = int(SERVED[datagen.LABEL].sum())

    path, why = performance.retraining_data(tmp_path, "few", SERVED, spec, 4000, 1, 0.3)
    table = pd.read_parquet(path)
    assert len(table) == 7000 and list(table.columns) == list(SERVED.columns)
    pd.testing.assert_frame_equal(table.iloc[:3000], SERVED)
    pd.testing.assert_frame_equal(table.iloc[3000:].reset_index(drop=True), datagen.generate(4000, 1, 0.3))
    assert why.startswith(f"3,000 served rows labelled by their outcomes ({frauds} frauds) + 4,000 fresh labelled "
                          "rows with drift 0.3: served rows alone are fewer than v1's 4,000"), why
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "data" / "served-few.parquet"), SERVED)

    path, why = performance.retraining_data(tmp_path, "enough", SERVED, spec, 3000, 1, 0.3)
    pd.testing.assert_frame_equal(pd.read_parquet(path), SERVED)
    assert why.endswith("alone: as many rows as v1 trained on (3,000) or more"), why
