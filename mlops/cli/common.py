"""What the command groups share: the local state folder, the one rule making local paths absolute, the registry URI."""
from __future__ import annotations

import os
from pathlib import Path

HOME = Path(".mlops")


def absolute(uri: str) -> str:
    """Local paths made absolute (steps run in other folders); URLs as they are."""
    return uri if "://" in uri else str(Path(uri).resolve())


def registry_uri(args) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the local SQLite store under --home."""
    from mlops import local

    return args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or local.local_tracking_uri(args.home)
