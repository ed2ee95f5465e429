"""The kustomize builds under test, and the external tools the manifest tests run.

A missing tool skips a test on a developer's machine and fails it under CI=true, where nothing may pass
unchecked.

    from tests.manifests import render
    render.build("prod")          # the rendered objects of manifests/overlays/prod
    render.build("prod", "manual-gate", "kubeflow-profile")   # with components added
    render.require("promtool")    # its path, or skip / fail
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
COMPONENTS = sorted(p.name for p in (MANIFESTS / "components").iterdir() if (p / "kustomization.yaml").is_file())
# Every build the tests check: each overlay, and the components on the overlays they are meant for.
VARIANTS = {name: (name,) for name in OVERLAYS} | {
    "prod+manual-gate": ("prod", "manual-gate"),
    "prod+kubeflow-profile": ("prod", "kubeflow-profile"),
    "dev+manual-gate": ("dev", "manual-gate"),
}


def require(tool: str) -> str:
    """The path of `tool`; when it is missing, fail under CI=true and skip otherwise."""
    return require_tool(tool)


def kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return [require("kubectl"), "kustomize"]


@functools.cache
def _build(overlay: str, components: tuple[str, ...]) -> tuple[dict, ...]:
    command = kustomize_command()
    with tempfile.TemporaryDirectory() as tmp:
        target = MANIFESTS / "overlays" / overlay
        if components:
            # kustomize takes relative paths only
            rel = Path(os.path.relpath(MANIFESTS, tmp))
            (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump({
                "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                "resources": [str(rel / "overlays" / overlay)],
                "components": [str(rel / "components" / c) for c in components]}))
            target = Path(tmp)
        out = subprocess.run([*command, str(target)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kustomize build of {overlay} {components}: {out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def build(overlay: str, *components: str) -> list[dict]:
    """The objects `kubectl kustomize` renders for an overlay, with the given components added (copies)."""
    import copy

    return copy.deepcopy(list(_build(overlay, components)))


def variant(name: str) -> list[dict]:
    return build(*VARIANTS[name])


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def workloads(docs: list[dict]) -> list[dict]:
    """The objects that run pods (they have a pod template)."""
    return [d for d in docs if isinstance(d.get("spec"), dict) and "template" in d["spec"]
            and d["kind"] in ("Rollout", "Deployment", "StatefulSet", "DaemonSet", "Job")]
