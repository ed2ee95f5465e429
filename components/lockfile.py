"""The dependency lock the steps run on; its sha256 is part of every registered version's lineage."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

LOCK_ENV = "MLOPS_LOCK_FILE"  # set in the image, where the package is installed rather than run from source
LOCK_FILE = Path(__file__).resolve().parents[1] / "requirements.lock"  # the project root, for local runs


class LockFileError(FileNotFoundError):
    """The lock file cannot be found or read."""


def lock_path() -> Path:
    """$MLOPS_LOCK_FILE when set, else requirements.lock at the project root."""
    return Path(os.environ[LOCK_ENV]) if os.environ.get(LOCK_ENV) else LOCK_FILE


def lock_sha256() -> str:
    """sha256 of the lock file's bytes; a missing file is an error, never an empty or made-up hash."""
    path = lock_path()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise LockFileError(f"{path}: cannot read the dependency lock ({exc.strerror}); set {LOCK_ENV} to the "
                            "requirements.lock the environment was installed from") from exc
