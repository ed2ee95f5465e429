import json

import pandas as pd
import pytest

from components import contract as c
from components.validate.logic import ValidationFailed, validate


def test_worked_example_contract(contract):
    assert contract.label == "is_fraud"
    assert len(contract.features) >= 10
    assert {"numeric", "categorical", "boolean"} == set(contract.features.values())
    assert "merchant_category" in contract.categorical and "channel" in contract.categorical
    assert contract.nullable("device_trust_score") and not contract.nullable("amount")
    assert contract.bounds("hour_of_day") == (0, True, 23, True)
    assert "online" in contract.allowed("channel") and contract.allowed("amount") is None
    assert contract.label not in contract.feature_schema.columns


def _doc(contract):
    return json.loads(json.dumps(contract.to_dict()))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("label"), "missing key(s) ['label']"),
    (lambda d: d.update(extra=1), "unknown key(s) ['extra']"),
    (lambda d: d["features"].update(amount="text"), "unknown feature kind"),
    (lambda d: d["features"].update(is_fraud="boolean"), "also listed as a feature"),
    (lambda d: d["features"].update(ghost="numeric"), "['ghost'] have no entry"),
    (lambda d: d["features"].pop("channel"), "['channel'] are neither a feature nor the label"),
])
def test_malformed_schema_is_rejected_naming_the_problem(contract, change, message):
    doc = _doc(contract)
    change(doc)
    with pytest.raises(c.ContractError, match="my.json") as err:
        c.parse(doc, source="my.json")
    assert message in str(err.value)


def test_unreadable_schema_files(tmp_path):
    with pytest.raises(c.ContractError, match="not found"):
        c.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(c.ContractError, match="not valid JSON"):
        c.load(str(bad))


def loans(n=400, seed=3):
    """A differently shaped binary table: loan applications."""
    import numpy as np

    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.5, 0.5, n).round(0)
    purpose = rng.choice(["car", "home", "education", "business"], n).astype(object)
    term = rng.choice([12, 24, 36, 60], n).astype("int64")
    mortgage = rng.random(n) < 0.4
    debt_ratio = rng.uniform(0, 1.2, n).round(3)
    risk = 2.5 * debt_ratio - (income / income.mean()) + (purpose == "business") * 0.8
    defaulted = (rng.random(n) < 1 / (1 + np.exp(-(risk - 1.0)))).astype("int64")
    return pd.DataFrame({"income": income, "purpose": purpose, "term_months": term, "has_mortgage": mortgage,
                         "debt_ratio": debt_ratio, "defaulted": defaulted})


def test_infer_writes_a_contract_for_another_table():
    df = loans()
    doc = c.infer(df, label="defaulted", name="loans")
    spec = c.parse(json.loads(json.dumps(doc)), source="loans.json")
    assert spec.label == "defaulted"
    assert spec.features == {"income": "numeric", "purpose": "categorical", "term_months": "numeric",
                             "has_mortgage": "boolean", "debt_ratio": "numeric"}
    validate(df, spec)  # the table it was inferred from is valid
    bad = df.assign(surprise=1)
    with pytest.raises(ValidationFailed, match="surprise"):
        validate(bad, spec)


def test_infer_requires_the_label():
    with pytest.raises(c.ContractError, match="label column 'nope'"):
        c.infer(loans(), label="nope", name="loans")


def test_infer_accepts_values_beyond_the_sample_unless_strict():
    from serving.requests import ClientError, RequestReader

    df = loans()
    beyond = df.assign(income=df["income"] * 10, term_months=df["term_months"] + 100,
                       debt_ratio=df["debt_ratio"].where(df.index % 7 > 0), purpose="boat").head(50)
    spec = c.parse(c.infer(df, label="defaulted", name="loans"), source="loans.json")
    validate(beyond, spec)
    row = beyond[spec.feature_columns].head(1).to_dict("records")
    RequestReader(spec).check(row)  # the server accepts what validation does

    strict = c.parse(c.infer(df, label="defaulted", name="loans", strict=True), source="loans.json")
    with pytest.raises(ValidationFailed) as err:
        validate(beyond, strict)
    assert all(col in str(err.value) for col in ("income", "term_months", "debt_ratio", "purpose"))
    with pytest.raises(ClientError):
        RequestReader(strict).check(row)
    validate(df, strict)  # the sample itself keeps the strict contract
    assert strict.bounds("income") == (df["income"].min(), True, df["income"].max(), True)
    assert sorted(strict.allowed("purpose")) == sorted(df["purpose"].unique())


def test_infer_keeps_signs_and_the_label_classes():
    df = loans().assign(balance=lambda d: d["income"] - 40_000)  # negative and positive in the sample
    spec = c.parse(c.infer(df, label="defaulted", name="loans"), source="loans.json")
    assert spec.bounds("income") == (0, True, None, True) and spec.bounds("balance") == (None, True, None, True)
    assert all(spec.nullable(col) for col in spec.features) and not spec.nullable("defaulted")
    assert spec.allowed("defaulted") == [0, 1]
    validate(df.assign(balance=-1e9), spec)
    with pytest.raises(ValidationFailed, match="income"):
        validate(df.assign(income=-1.0), spec)
    with pytest.raises(ValidationFailed, match="defaulted"):
        validate(df.assign(defaulted=2), spec)


@pytest.mark.parametrize("label, message", [
    (pd.Series([0, 1, 2] * 10), r"has 3 value\(s\) \[0, 1, 2\]: a binary label needs exactly 2"),
    (pd.Series([1] * 30), r"has 1 value\(s\) \[1\]"),
    (pd.Series([0, 1, None] * 10), "missing on 10 row"),
])
def test_infer_refuses_a_label_that_is_not_binary(label, message):
    with pytest.raises(c.ContractError, match=message):
        c.infer(loans(30).assign(defaulted=label), label="defaulted", name="loans", positive_class=1)
