"""The image carries every package the distribution ships."""
import re
import tomllib

from tests.conftest import ROOT


def test_dockerfile_copies_every_package_and_installs_the_cloud_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.M))
    assert packages <= copied, packages - copied
    assert {"configs", "schemas"} <= copied
    assert '".[cloud]"' in dockerfile and "cloud" in project["project"]["optional-dependencies"]
