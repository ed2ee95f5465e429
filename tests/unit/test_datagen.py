import pandas.testing as pdt
import pytest

from components.validate.logic import validate
from mlops import datagen


def test_generated_data_is_valid_deterministic_and_imbalanced(contract):
    df = datagen.generate(20000, seed=5)
    validate(df, contract)
    assert 0.01 <= df["is_fraud"].mean() <= 0.03
    pdt.assert_frame_equal(df, datagen.generate(20000, seed=5))
    assert not df.equals(datagen.generate(20000, seed=6))


def test_drift_shifts_the_stated_features(contract):
    base, drifted = datagen.generate(20000, seed=5), datagen.generate(20000, seed=5, drift=1.0)
    validate(drifted, contract)
    assert drifted["amount"].median() > 1.5 * base["amount"].median()
    assert drifted["device_trust_score"].mean() < base["device_trust_score"].mean() - 0.1
    assert drifted["txn_count_1h"].mean() > 2 * base["txn_count_1h"].mean()
    share = lambda d: (d["merchant_category"] == "electronics").mean()  # noqa: E731
    assert share(drifted) > share(base)
    pdt.assert_series_equal(base["account_age_days"], drifted["account_age_days"])


def test_rejects_nonsense_arguments():
    with pytest.raises(ValueError, match="rows"):
        datagen.generate(0)
    with pytest.raises(ValueError, match="drift"):
        datagen.generate(10, drift=-1)
