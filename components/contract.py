"""The feature contract: one schema file, the only place that knows its format.

A schema file is JSON with:
  name, version        identify the contract (the version is recorded on every registered model)
  label                the binary label column
  positive_class       the label value of the positive class (the one scored, gated and served as
                       `probabilities`), exactly as it appears in the data: "yes", 1, true, ...
  features             feature column -> kind: "numeric", "categorical" or "boolean"
  pandera              the columns and checks, in pandera's own JSON serialization

pandera's serialization drops column metadata, so label and kinds live beside it.
Validation, training, serving and drift all read the contract from here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import fsspec
import pandas as pd
import pandera.pandas as pa

KINDS = ("numeric", "categorical", "boolean")
# The contract travels inside every saved model under this name, so serving needs nothing else.
MODEL_FILE = "feature_contract.json"


class ContractError(ValueError):
    """The schema file is unreadable or malformed."""


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    label: str
    positive_class: str | int | bool
    features: dict[str, str]
    pandera_json: str
    source: str = "<memory>"

    @cached_property
    def schema(self) -> pa.DataFrameSchema:
        return pa.DataFrameSchema.from_json(self.pandera_json)

    def of_kind(self, kind: str) -> list[str]:
        return [c for c, k in self.features.items() if k == kind]

    @property
    def numeric(self) -> list[str]:
        return self.of_kind("numeric")

    @property
    def categorical(self) -> list[str]:
        return self.of_kind("categorical")

    @property
    def boolean(self) -> list[str]:
        return self.of_kind("boolean")

    @property
    def feature_columns(self) -> list[str]:
        return list(self.features)

    @property
    def feature_schema(self) -> pa.DataFrameSchema:
        """The checks on features alone: what a serving request must satisfy."""
        return self.schema.remove_columns([self.label])

    def nullable(self, column: str) -> bool:
        return bool(self.schema.columns[column].nullable)

    def allowed(self, column: str) -> list | None:
        """The values an `isin` check allows for a column, if it has one."""
        for check in self.schema.columns[column].checks:
            if check.name == "isin":
                return list(check.statistics["allowed_values"])
        return None

    def bounds(self, column: str) -> tuple[float | None, bool, float | None, bool]:
        """(min, min inclusive, max, max inclusive) from the column's range checks; None where unbounded."""
        lo = hi = None
        lo_inc = hi_inc = True
        for check in self.schema.columns[column].checks:
            stats = check.statistics or {}
            if check.name == "in_range":
                lo, hi = stats["min_value"], stats["max_value"]
                lo_inc, hi_inc = stats.get("include_min", True), stats.get("include_max", True)
            elif check.name in ("greater_than_or_equal_to", "greater_than"):
                lo, lo_inc = stats["min_value"], check.name.endswith("equal_to")
            elif check.name in ("less_than_or_equal_to", "less_than"):
                hi, hi_inc = stats["max_value"], check.name.endswith("equal_to")
        return lo, lo_inc, hi, hi_inc

    def dtype(self, column: str) -> str:
        """pandera's name of a column's dtype: float64, int64, bool, str, ..."""
        return str(self.schema.columns[column].dtype)

    def save(self, path: str) -> None:
        with fsspec.open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "label": self.label,
            "positive_class": self.positive_class,
            "features": dict(self.features),
            "pandera": json.loads(self.pandera_json),
        }


def parse(doc: dict, source: str = "<memory>") -> Contract:
    """Build a Contract from a schema document; every inconsistency names the file."""
    if not isinstance(doc, dict):
        raise ContractError(f"{source}: a schema file must hold a JSON object")
    required = ("name", "version", "label", "positive_class", "features", "pandera")
    missing = [k for k in required if k not in doc]
    if missing:
        raise ContractError(f"{source}: missing key(s) {missing}; expected {', '.join(required)}")
    unknown = sorted(set(doc) - {*required, "description"})
    if unknown:
        raise ContractError(f"{source}: unknown key(s) {unknown}")
    features = doc["features"]
    if not isinstance(features, dict) or not features:
        raise ContractError(f"{source}: 'features' must map each feature column to its kind")
    bad_kinds = {c: k for c, k in features.items() if k not in KINDS}
    if bad_kinds:
        raise ContractError(f"{source}: unknown feature kind(s) {bad_kinds}; allowed: {list(KINDS)}")
    label = doc["label"]
    positive = doc["positive_class"]
    if isinstance(positive, float) and positive.is_integer():
        positive = int(positive)
    if not isinstance(positive, (str, int, bool)):
        raise ContractError(f"{source}: positive_class must be the label value of the positive class "
                            f"(a string, integer or boolean), got {positive!r}")
    if label in features:
        raise ContractError(f"{source}: label column {label!r} is also listed as a feature")
    contract = Contract(
        name=str(doc["name"]),
        version=str(doc["version"]),
        label=label,
        positive_class=positive,
        features=dict(features),
        pandera_json=json.dumps(doc["pandera"], sort_keys=False),
        source=source,
    )
    try:
        columns = set(contract.schema.columns)
    except Exception as exc:  # pandera raises several types for a malformed document
        raise ContractError(f"{source}: the 'pandera' section is not a valid pandera schema: {exc}") from exc
    undeclared = [c for c in [*features, label] if c not in columns]
    if undeclared:
        raise ContractError(f"{source}: column(s) {undeclared} have no entry in the pandera columns")
    unused = sorted(columns - set(features) - {label})
    if unused:
        raise ContractError(f"{source}: pandera column(s) {unused} are neither a feature nor the label")
    return contract


def load(uri: str) -> Contract:
    """Load a schema file from a local path or an fsspec URL."""
    try:
        with fsspec.open(uri, "r") as fh:
            doc = json.load(fh)
    except FileNotFoundError as exc:
        raise ContractError(f"{uri}: schema file not found") from exc
    except json.JSONDecodeError as exc:
        raise ContractError(f"{uri}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise ContractError(f"{uri}: cannot read schema file ({exc})") from exc
    return parse(doc, source=uri)


def kind_of_dtype(dtype) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    return "categorical"


def infer_positive_class(values, given=None):
    """The positive class: `given` (matched against the label values as text), else 1 of 0/1 or True of
    False/True; any other label values need it given."""
    found = sorted(pd.unique(pd.Series(values).dropna()).tolist(), key=str)
    if given is not None:
        hits = [v for v in found
                if str(v) == str(given) or (isinstance(v, bool) and str(v).lower() == str(given).lower())]
        if not hits:
            raise ContractError(f"--positive-class {given!r} is not a value of the label; found {found}")
        value = hits[0]
    elif set(found) <= {0, 1} and len(found) == 2:  # 0/1 and False/True (True == 1)
        value = True if any(isinstance(v, bool) for v in found) else 1
    else:
        raise ContractError(f"cannot tell the positive class of label values {found[:20]}: "
                            "give --positive-class VALUE")
    return value.item() if hasattr(value, "item") else value


def infer(df: pd.DataFrame, label: str, name: str, version: str = "1", positive_class=None,
          strict: bool = False) -> dict:
    """A starter schema document for a new table: pandera's dtypes, kinds from dtypes, the label's two classes,
    every feature nullable, and `>= 0` on each numeric feature that is non-negative throughout the sample.
    `strict` takes the rest from the sample too: its ranges, non-nullability and categorical values (so the
    first value beyond the sample is refused)."""
    if label not in df.columns:
        raise ContractError(f"label column {label!r} is not in the data (columns: {list(df.columns)})")
    if df[label].isna().any():
        raise ContractError(f"label column {label!r} is missing on {int(df[label].isna().sum())} row(s)")
    classes = sorted((v.item() if hasattr(v, "item") else v for v in pd.unique(df[label])), key=str)
    if len(classes) != 2:
        raise ContractError(f"label column {label!r} has {len(classes)} value(s) {classes[:20]}: a binary label "
                            "needs exactly 2")
    positive = infer_positive_class(df[label], positive_class)
    features = {c: kind_of_dtype(df[c].dtype) for c in df.columns if c != label}
    schema = pa.infer_schema(df)
    updates = {label: {"checks": [pa.Check.isin(classes)], "nullable": False}}
    for column, kind in features.items():
        values = df[column].dropna()
        if strict:
            checks = list(schema.columns[column].checks)
            if kind == "categorical" and all(isinstance(v, str) for v in values):
                checks.append(pa.Check.isin(sorted(values.unique())))
            updates[column] = {"checks": checks, "nullable": len(values) < len(df)}
        else:
            signed = kind == "numeric" and len(values) and values.min() >= 0
            updates[column] = {"checks": [pa.Check.ge(0)] if signed else [], "nullable": True}
    inferred = json.loads(schema.update_columns(updates).to_json())
    inferred.pop("index", None)
    inferred["coerce"] = False
    inferred["strict"] = True
    for spec in inferred["columns"].values():
        spec.setdefault("nullable", False)
    return {
        "name": name,
        "version": version,
        "label": label,
        "positive_class": positive,
        "features": features,
        "pandera": inferred,
    }
