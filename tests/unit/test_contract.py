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
