"""The lock hash recorded on every registered version: the lock the environment was installed from."""
import hashlib

import pytest

from components import lockfile
from tests.conftest import ROOT


def test_local_runs_hash_the_projects_lock(monkeypatch):
    monkeypatch.delenv(lockfile.LOCK_ENV, raising=False)
    assert lockfile.lock_path() == ROOT / "requirements.lock"
    assert lockfile.lock_sha256() == hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()


def test_the_image_names_its_lock(monkeypatch, tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.0.0 --hash=sha256:00\n")
    monkeypatch.setenv(lockfile.LOCK_ENV, str(lock))
    assert lockfile.lock_sha256() == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert lockfile.lock_sha256() != hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()


def test_a_missing_lock_is_an_error_naming_it(monkeypatch, tmp_path):
    monkeypatch.setenv(lockfile.LOCK_ENV, str(tmp_path / "nope.lock"))
    with pytest.raises(lockfile.LockFileError, match=r"nope\.lock: cannot read the dependency lock .*MLOPS_LOCK_FILE"):
        lockfile.lock_sha256()
