"""What the command groups share: the local state folder, where the tracking server and the registry are."""
from __future__ import annotations

import os
from pathlib import Path

HOME = Path(".mlops")
REGISTRY_HELP = ("MLflow model registry URI (default: the tracking URI; an MLFLOW_REGISTRY_URI that differs from it "
                 "is an error unless given here)")


def tracking_uri(args) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the local SQLite store under --home."""
    from mlops import local

    return args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or local.local_tracking_uri(args.home)


def registry_uri(args, tracking: str) -> str:
    """--registry-uri, else `tracking`; an MLFLOW_REGISTRY_URI that differs without --registry-uri is an error
    naming both, before anything runs (components.registry.resolve_registry_uri)."""
    from components.registry import resolve_registry_uri

    return resolve_registry_uri(tracking, args.registry_uri or "")
