"""Concept drift in the synthetic data: the label's pattern moves, the features do not."""
import hashlib

import numpy as np
import pandas.testing as pdt
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from mlops import datagen
from mlops.cli import main

# sha256 of generate(500, seed=7, drift=...).to_csv(), computed with the module before `concept` existed
BEFORE = {0.0: "4e23bc6eb1dcd23a6cf89cb5e58e17b4f7ce77bdbde279ddb1d5bb777e76319d",
          0.3: "6f30fda758e1b5fe628633718a100bc4f5842e276df3ca73e02ea7a77515de88"}


def _features(df):
    x = df.drop(columns=[datagen.LABEL])
    return x.astype({c: "category" for c in ("merchant_category", "channel")})


@pytest.mark.parametrize("drift", [0.0, 0.3])
def test_concept_zero_is_the_old_output_bit_for_bit(drift):
    df = datagen.generate(500, seed=7, drift=drift, concept=0.0)
    assert hashlib.sha256(df.to_csv().encode()).hexdigest() == BEFORE[drift]
    pdt.assert_frame_equal(df, datagen.generate(500, 7, drift))


@pytest.mark.parametrize("drift", [0.0, 0.5])
def test_features_are_equal_only_the_label_moves(drift):
    old, new = datagen.generate(20000, seed=5, drift=drift), datagen.generate(20000, seed=5, drift=drift, concept=1)
    pdt.assert_frame_equal(old.drop(columns=[datagen.LABEL]), new.drop(columns=[datagen.LABEL]))
    assert (old[datagen.LABEL] != new[datagen.LABEL]).sum() > 100


def test_fraud_rate_stays_about_the_same():
    for concept in (0.5, 1.0):
        rate = datagen.generate(50000, seed=2, concept=concept)[datagen.LABEL].mean()
        assert 0.02 / 1.5 <= rate <= 0.02 * 1.5, (concept, rate)


def test_a_model_of_the_old_pattern_misses_the_new_fraud():
    train, valid = datagen.generate(60000, seed=11), datagen.generate(60000, seed=12)
    model = HistGradientBoostingClassifier(max_iter=50, categorical_features="from_dtype", random_state=0)
    model.fit(_features(train), train[datagen.LABEL])
    threshold = np.quantile(model.predict_proba(_features(valid))[:, 1], 0.91)  # flags ~9 % of valid rows

    def recall(df):
        flagged = model.predict_proba(_features(df))[:, 1] >= threshold
        return flagged[df[datagen.LABEL].to_numpy() == 1].mean()

    old, new = recall(datagen.generate(60000, seed=13)), recall(datagen.generate(60000, seed=13, concept=1.0))
    assert old > 0.6 and new <= old - 0.3, (old, new)


def test_out_of_range_concept_is_refused(tmp_path, capsys):
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="concept"):
            datagen.generate(10, concept=bad)
    out = tmp_path / "t.parquet"
    assert main(["data", "generate", "--rows", "100", "--concept-drift", "2", "--out", str(out)]) == 2
    assert "--concept-drift must be between 0 and 1, got 2.0" in capsys.readouterr().err
    assert not out.exists()
    assert main(["data", "generate", "--rows", "100", "--concept-drift", "0.5", "--out", str(out)]) == 0
    assert "concept drift 0.5" in capsys.readouterr().out and out.exists()
