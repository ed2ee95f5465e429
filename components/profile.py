"""The reference profile of a model's training split: how it is built, written, hashed and read back checked.

train_model builds and writes it; register_model stores the file beside the model version with its sha256 in
the version tag PROFILE_TAG; the drift check reads it back, its bytes checked against that tag. Per numeric
feature it holds the inner quantile bin edges and the share of rows per bin, per categorical or boolean
feature the share of each value; both with the share of nulls, which is a bin of its own.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

PROFILE_FILE = "reference_profile.json"
PROFILE_TAG = "reference_profile_sha256"


class ProfileError(ValueError):
    """A model version's reference profile is missing, or not the file that was registered."""


def _json_value(value):
    return value.item() if isinstance(value, np.generic) else value


def build_profile(frame: pd.DataFrame, features: dict[str, str], bins: int = 10, rows=None) -> dict:
    """Reference profile of `frame` (the training split's raw features; kinds as in the contract), or of its rows
    at the positions `rows`, taken a column at a time."""
    out = {}
    positions = rows
    rows = len(frame) if positions is None else len(positions)
    for column, kind in features.items():
        series = frame[column] if positions is None else frame[column].iloc[positions]
        nulls = int(series.isna().sum())
        if kind == "numeric":
            values = series.dropna().to_numpy(dtype=float)
            edges = (np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])) if len(values)
                     else np.array([]))
            counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
            out[column] = {"kind": kind, "edges": edges.tolist()}
        else:
            counts_by_value = series.dropna().value_counts(sort=False)
            order = sorted(counts_by_value.index, key=str)
            counts = np.array([counts_by_value[v] for v in order], dtype=np.int64)
            out[column] = {"kind": kind, "values": [_json_value(v) for v in order]}
        out[column]["shares"] = (counts / rows).tolist() if rows else [0.0] * len(counts)
        out[column]["null_share"] = nulls / rows if rows else 0.0
    return {"rows": rows, "bins": bins, "features": out}


def profile_sha256(data: bytes) -> str:
    """What PROFILE_TAG records of a profile: the sha256 of its file's bytes."""
    return hashlib.sha256(data).hexdigest()


def write_profile(profile: dict, path: str) -> str:
    """Write the profile; return the sha256 of the bytes written."""
    data = json.dumps(profile, indent=1, sort_keys=True).encode()
    with open(path, "wb") as fh:
        fh.write(data)
    return profile_sha256(data)


def read_profile(tracking_uri: str, model_name: str, alias: str = "production",
                 registry_uri: str = "") -> tuple[str, dict]:
    """(version behind `alias`, its reference profile), the profile's bytes checked against the version's tag."""
    import mlflow.artifacts

    from components.registry import client, resolve_registry_uri, version_by_alias

    where = resolve_registry_uri(tracking_uri, registry_uri)
    mv = version_by_alias(client(tracking_uri, where), model_name, alias)
    if mv is None:
        raise ProfileError(f"model {model_name!r} has no {alias} version at {where}: nothing to compare")
    expected = mv.tags.get(PROFILE_TAG)
    if not expected or not mv.run_id:
        raise ProfileError(f"model {model_name!r} version {mv.version} has no reference profile ({PROFILE_TAG} "
                           "tag): it was registered before profiles were recorded; retrain it to measure drift")
    path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=PROFILE_FILE,
                                               tracking_uri=tracking_uri)
    with open(path, "rb") as fh:
        data = fh.read()
    actual = profile_sha256(data)
    if actual != expected:
        raise ProfileError(f"{PROFILE_FILE} of model {model_name!r} version {mv.version}: sha256 {actual} differs "
                           f"from its {PROFILE_TAG} tag {expected}")
    return str(mv.version), json.loads(data)
