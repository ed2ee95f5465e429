"""Upload the compiled pipelines to a KFP server as a version named by the git commit: `mlops upload`.

A pipeline not yet on the server is created (KFP names its first version after the pipeline), then the
version is added; a version name already there is left as it is. The training pipeline's `git_commit`
parameter defaults to the commit, so every run of the version records it.
"""
from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.kfp_api import find_pipeline, find_version
from components.source import Commit
from pipelines import drift_check, training
from pipelines.defaults import SOURCE  # the source tree, where compile.py lives

PIPELINES = (training.NAME, drift_check.NAME)  # every compiled pipeline: <compiled dir>/<name>.yaml
SOURCE_REPO = SOURCE  # the git work tree whose commit names what is compiled from SOURCE


class UploadError(ValueError):
    """Nothing to upload, or no name for the version: a dirty work tree, no commit, a missing compiled file."""


@dataclass(frozen=True)
class Version:
    name: str  # the pipeline version's name
    commit: str  # the training pipeline's git_commit default ("unknown" outside a git work tree)


@dataclass(frozen=True)
class Uploaded:
    pipeline: str
    version: str
    pipeline_id: str
    version_id: str
    outcome: str  # "created" (pipeline and version), "added" (version), "exists" (nothing done)


def version_for(commit: Commit | None, version: str | None = None, allow_dirty: bool = False) -> Version:
    """The version name (`version`, else the short commit; with `-dirty` added for a dirty tree that is
    allowed) and the commit the compiled pipeline records (`<sha>-dirty` likewise)."""
    if commit is None:
        if not version:
            raise UploadError("no git commit to name the version after (not a git work tree, or no commit "
                              "yet): commit first, or give --version")
        return Version(version, "unknown")
    if commit.dirty and not allow_dirty:
        raise UploadError(f"the work tree has changes not committed to {commit.short} (git status): commit them, "
                          "or give --allow-dirty to upload them as version "
                          f"{(version or commit.short) + '-dirty'!r}")
    suffix = "-dirty" if commit.dirty else ""
    return Version((version or commit.short) + suffix, commit.sha + suffix)


def compiled_commit(path: Path) -> str | None:
    """The git_commit default compiled into a training pipeline file."""
    try:
        spec = next(yaml.safe_load_all(path.read_text()))
        return spec["root"]["inputDefinitions"]["parameters"].get("git_commit", {}).get("defaultValue")
    except (yaml.YAMLError, StopIteration, KeyError, TypeError, AttributeError) as exc:
        raise UploadError(f"{path} is not a compiled KFP pipeline (python compile.py writes one): "
                          f"{type(exc).__name__}: {exc}") from exc


def packages(directory: str | Path, version: Version) -> dict[str, Path]:
    """The compiled file of every pipeline in `directory`, checked: all there, and the training pipeline
    compiled for the version's commit."""
    paths = {name: Path(directory) / f"{name}.yaml" for name in PIPELINES}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise UploadError(f"compiled pipeline not found: {', '.join(missing)}; run `python compile.py --output-dir "
                          f"{directory} --git-commit {version.commit}`, or leave out --compiled-dir to compile now")
    found = compiled_commit(paths[training.NAME])
    if version.commit != "unknown" and found != version.commit:
        raise UploadError(f"{paths[training.NAME]} was compiled with git_commit {found!r}, not this commit "
                          f"{version.commit!r}: compile again with --git-commit {version.commit}")
    return paths


def compile_into(directory: str | Path, image: str | None, version: Version) -> dict[str, Path]:
    """Compile every pipeline with compile.py's `compile_all` (from the source tree) into `directory`."""
    path = SOURCE / "compile.py"
    if not path.is_file():
        raise UploadError(f"{path} not found (an installed package, not a source tree): give --compiled-dir")
    spec = importlib.util.spec_from_file_location("compile", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.compile_all(directory, image or module.DEFAULT_IMAGE, git_commit=version.commit)
    return packages(directory, version)


def create_pipeline(client, package: str | Path, name: str, namespace: str = "") -> str:
    """Create the pipeline `name` from `package` (in `namespace`, else shared); its id."""
    return client.upload_pipeline(str(package), pipeline_name=name, namespace=namespace or None).pipeline_id


def upload_one(client, package: str | Path, name: str, version: Version, namespace: str = "") -> Uploaded:
    """Version `version.name` of the pipeline `name`: created with the pipeline when there is none, added when
    the pipeline has no version of that name, else left as it is (never a second one of the same name)."""
    from kfp_server_api.exceptions import ApiException

    pipeline_id = find_pipeline(client, name, namespace)
    outcome = "added"
    if pipeline_id is None:
        pipeline_id, outcome = create_pipeline(client, package, name, namespace), "created"
    else:
        found = find_version(client, pipeline_id, version.name)
        if found is not None:
            return Uploaded(name, version.name, pipeline_id, found.pipeline_version_id, "exists")
    try:
        added = client.upload_pipeline_version(str(package), version.name, pipeline_id=pipeline_id,
                                               description=f"git commit {version.commit}")
    except ApiException as exc:
        found = find_version(client, pipeline_id, version.name) if exc.status == 409 else None
        if found is None:  # 409: uploaded meanwhile by another job
            raise
        return Uploaded(name, version.name, pipeline_id, found.pipeline_version_id, "exists")
    return Uploaded(name, version.name, pipeline_id, added.pipeline_version_id, outcome)


def upload(client, version: Version, compiled_dir: str | Path | None = None, image: str | None = None,
           namespace: str = "", names: tuple[str, ...] = PIPELINES) -> list[Uploaded]:
    """The pipelines `names` (default: every one) as `version`: the files in `compiled_dir`, else compiled now on
    `image`. Every file is checked before the first request."""
    def each(paths: dict[str, Path]) -> list[Uploaded]:
        return [upload_one(client, paths[name], name, version, namespace) for name in names]

    if compiled_dir is not None:
        return each(packages(compiled_dir, version))
    with tempfile.TemporaryDirectory(prefix="mlops-compiled-") as tmp:
        return each(compile_into(tmp, image, version))
