"""The source tree the package runs from, and the git commit a work tree is at."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]  # the source tree: configs/, schemas/, compile.py


@dataclass(frozen=True)
class Commit:
    sha: str
    short: str
    dirty: bool


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except OSError:  # no git at all
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def head(cwd: str | Path = ".") -> Commit | None:
    """The commit checked out in `cwd` and whether the work tree differs from it (untracked files too);
    None outside a git work tree or before the first commit."""
    sha = _git(Path(cwd), "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if not sha:
        return None
    return Commit(sha, _git(Path(cwd), "rev-parse", "--short", sha) or sha[:7],
                  bool(_git(Path(cwd), "status", "--porcelain")))


def commit(cwd: str | Path = ".") -> str:
    """The sha of the commit checked out in `cwd`, "unknown" outside a git work tree."""
    found = head(cwd)
    return found.sha if found else "unknown"
